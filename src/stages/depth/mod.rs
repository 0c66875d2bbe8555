//! The `depth` stage: a monocular depth network (MiDaS / Depth Anything style
//! ONNX export, relative inverse depth by default) made metric, and objects
//! placed in 3D with it.
//!
//! The relative output `r` becomes metric depth in one of two ways:
//! - after a `stereo_depth` stage on the same frame, by a least-squares fit of
//!   `1 / z_stereo ≈ scale · r + shift` over the pixels where stereo is valid
//!   (refitted without outliers), every frame;
//! - with a fixed `scale` and `shift` from the pipeline file.
//!
//! Objects that stereo could not place get `depth_source: "mono"`. Without a
//! stereo map the stage's own map becomes the frame's depth map (the model's
//! output grid). Camera intrinsics come from the calibration's left camera.

mod settings;

pub use settings::KIND;

use std::path::PathBuf;
use std::sync::Arc;

use opencv::core::{Point2f, Vector};

use crate::calib::StereoCalibration;
use crate::calib::rectify::{Rectification, published_camera};
use crate::frame::Frame;
use crate::pool::VecPool;
use crate::record::{CameraInfo, DepthMap, DepthSource, MonoFit, Position, Record};
use crate::model::contract::dims_text;
use crate::model::preprocess::Letterbox;
use crate::model::{Engine, ModelError, ModelSettings};
use crate::stage::{Stage, StageError};
use crate::geometry::median_position;

/// Depth maps kept for reuse across frames in flight.
const POOL: usize = 16;
/// Grid step (model pixels) of the points sampled for the stereo fit.
const FIT_STEP: usize = 4;
/// Depth bands of the robust fit.
const BANDS: usize = 16;
/// Fewest samples for a band to count.
const MIN_BAND_SAMPLES: usize = 5;
/// Stereo must agree this far (pixels) around a fit sample.
const EDGE_PX: usize = 8;
/// Fewest valid stereo samples for a fit.
const MIN_FIT_SAMPLES: usize = 50;

/// Settings of the `depth` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct MonoDepthSettings {
    /// The depth model.
    pub model: ModelSettings,
    /// The calibration file.
    pub calibration_path: PathBuf,
    /// Its contents (the left camera's intrinsics).
    pub calibration: StereoCalibration,
    /// The model outputs relative inverse depth (MiDaS, Depth Anything); else depth.
    pub inverse: bool,
    /// A fixed map to metric depth; `None`: fit against stereo on every frame.
    pub fixed: Option<(f32, f32)>,
    /// Depths beyond this are invalid, metres (0: no limit).
    pub max_depth_m: f32,
    /// Fraction each side of a box shrinks before its median depth.
    pub box_shrink: f32,
}

/// Where a model output pixel is in the source frame.
#[derive(Debug, Clone, Copy)]
struct Grid {
    out: (usize, usize),
    /// Source pixels per output pixel and the source position of output (0, 0).
    scale: (f32, f32),
    offset: (f32, f32),
}

impl Grid {
    fn new(lb: &Letterbox, input: (u32, u32), out: (usize, usize)) -> Grid {
        let kx = input.0 as f32 / out.0 as f32;
        let ky = input.1 as f32 / out.1 as f32;
        Grid {
            out,
            scale: (lb.scale_x as f32 * kx, lb.scale_y as f32 * ky),
            offset: (
                -(lb.left as f32) * lb.scale_x as f32,
                -(lb.top as f32) * lb.scale_y as f32,
            ),
        }
    }

    /// Source pixel of the centre of output pixel `(u, v)`.
    fn source_of(&self, u: usize, v: usize) -> (f32, f32) {
        (
            (u as f32 + 0.5) * self.scale.0 + self.offset.0,
            (v as f32 + 0.5) * self.scale.1 + self.offset.1,
        )
    }

    /// Output pixel range covering a source box (clipped).
    fn cover(&self, b: &[f32; 4]) -> (usize, usize, usize, usize) {
        let fx = |x: f32| ((x - self.offset.0) / self.scale.0).clamp(0.0, self.out.0 as f32);
        let fy = |y: f32| ((y - self.offset.1) / self.scale.1).clamp(0.0, self.out.1 as f32);
        (
            fx(b[0]) as usize,
            fy(b[1]) as usize,
            fx(b[2]).ceil() as usize,
            fy(b[3]).ceil() as usize,
        )
    }
}

/// The `depth` stage.
pub struct MonoDepthStage {
    settings: MonoDepthSettings,
    engine: Box<Engine>,
    output: String,
    rectification: Rectification,
    camera: Option<Arc<CameraInfo>>,
    relative: Vec<f32>,
    grid: Option<(Grid, (u32, u32))>,
    /// Output index → stereo map index of the fit samples, per stereo map size.
    fit_points: Vec<(usize, usize)>,
    fit_for: Option<((u32, u32), bool)>,
    fit_x: Vec<f32>,
    fit_y: Vec<f32>,
    pairs: Vec<(f32, f32)>,
    bin_x: Vec<f32>,
    bin_y: Vec<f32>,
    samples: Vec<f32>,
    pool: VecPool<f32>,
}

impl MonoDepthStage {
    /// Loads the model and checks its output.
    pub fn new(settings: &MonoDepthSettings) -> Result<MonoDepthStage, ModelError> {
        let mut engine = Engine::load(&settings.model)?;
        let out = engine.outputs.first().cloned().ok_or_else(|| {
            ModelError::contract(&settings.model.path, "output", "the model has no outputs")
        })?;
        let ok = out.is_f32()
            && match out.dims.as_slice() {
                [_, Some(h), Some(w)] | [_, Some(1), Some(h), Some(w)] => *h > 0 && *w > 0,
                _ => false,
            };
        if !ok {
            return Err(ModelError::contract(
                &settings.model.path,
                &out.name,
                format!(
                    "a depth model needs an f32 output [1, H, W] or [1, 1, H, W] with H, W fixed, found {} {}",
                    out.dtype,
                    dims_text(&out.dims)
                ),
            ));
        }
        engine.warm_up()?;
        let cal = &settings.calibration;
        let fail = |e: opencv::Error| ModelError::Run {
            path: settings.calibration_path.clone(),
            message: e.to_string(),
        };
        let rectification = Rectification::new(cal).map_err(fail)?;
        let camera = published_camera(&rectification, cal, &settings.calibration_path);
        Ok(MonoDepthStage {
            rectification,
            camera,
            settings: settings.clone(),
            engine: Box::new(engine),
            output: out.name,
            relative: Vec::new(),
            grid: None,
            fit_points: Vec::new(),
            fit_for: None,
            fit_x: Vec::new(),
            fit_y: Vec::new(),
            pairs: Vec::new(),
            bin_x: Vec::new(),
            bin_y: Vec::new(),
            samples: Vec::new(),
            pool: VecPool::new(POOL, 0),
        })
    }

    /// Runs the model; leaves its output in `self.relative`, returns the grid.
    fn infer(&mut self, frame: &Frame) -> Result<Grid, String> {
        let lb = self.engine.preprocess(frame).map_err(|e| e.to_string())?;
        let input = self.engine.input_size();
        let outputs = self.engine.run().map_err(|e| e.to_string())?;
        let (shape, data) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("output `{}`: {e}", self.output))?;
        let n = shape.len();
        let (h, w) = (shape[n - 2] as usize, shape[n - 1] as usize);
        self.relative.clear();
        self.relative.extend_from_slice(&data[..w * h]);
        let size = (frame.width(), frame.height());
        match self.grid {
            Some((g, s)) if s == size => Ok(g),
            _ => {
                let g = Grid::new(&lb, input, (w, h));
                self.grid = Some((g, size));
                self.fit_for = None;
                Ok(g)
            }
        }
    }

    /// Pairs of (output index, stereo map index) sampled on a grid, through
    /// the rectification of the left view (`left_view`: the stereo map is
    /// already in the original left view, `depth_frame = "left"`).
    fn fit_points(
        &mut self,
        grid: &Grid,
        stereo: (u32, u32),
        left_view: bool,
    ) -> Result<(), String> {
        if self.fit_for == Some((stereo, left_view)) {
            return Ok(());
        }
        let mut raw = Vector::<Point2f>::new();
        let mut index = Vec::new();
        for v in (FIT_STEP / 2..grid.out.1).step_by(FIT_STEP) {
            for u in (FIT_STEP / 2..grid.out.0).step_by(FIT_STEP) {
                let (x, y) = grid.source_of(u, v);
                raw.push(Point2f::new(x, y));
                index.push(v * grid.out.0 + u);
            }
        }
        let mut rect = Vector::<Point2f>::new();
        if left_view {
            rect = raw;
        } else {
            let r = &self.rectification;
            r.undistort_left(&raw, &mut rect)
                .map_err(|e| e.to_string())?;
        }
        self.fit_points.clear();
        for (i, p) in index.into_iter().zip(rect.iter()) {
            let (x, y) = (p.x.round(), p.y.round());
            if x >= 0.0 && y >= 0.0 && (x as u32) < stereo.0 && (y as u32) < stereo.1 {
                self.fit_points
                    .push((i, y as usize * stereo.0 as usize + x as usize));
            }
        }
        self.fit_for = Some((stereo, left_view));
        Ok(())
    }

    /// `y ≈ scale · x + shift` over the stereo samples (`y` = 1 / z for
    /// inverse-depth models), through the medians of depth bands.
    fn fit(&mut self, stereo: &DepthMap) -> Option<MonoFit> {
        self.fit_x.clear();
        self.fit_y.clear();
        let (w, n) = (stereo.width as usize, stereo.metres.len());
        // Only where stereo is flat around the sample: off object borders,
        // where the model's output blurs two depths together.
        let flat = |j: usize, z: f32| {
            [
                j.wrapping_sub(EDGE_PX),
                j + EDGE_PX,
                j.wrapping_sub(EDGE_PX * w),
                j + EDGE_PX * w,
            ]
            .iter()
            .all(|&k| k < n && (stereo.metres[k] - z).abs() <= 0.05 * z)
        };
        for &(i, j) in &self.fit_points {
            let z = stereo.metres[j];
            if z > 0.0 && flat(j, z) {
                self.fit_x.push(self.relative[i]);
                self.fit_y
                    .push(if self.settings.inverse { 1.0 / z } else { z });
            }
        }
        if self.fit_x.len() < MIN_FIT_SAMPLES {
            return None;
        }
        // Robust to noise in r and to one depth covering most of the view:
        // the line goes through per-depth-band medians, one point per band.
        self.pairs.clear();
        self.pairs
            .extend(self.fit_x.iter().copied().zip(self.fit_y.iter().copied()));
        self.pairs.sort_unstable_by(|a, b| a.1.total_cmp(&b.1));
        let (lo, hi) = (self.pairs[0].1, self.pairs[self.pairs.len() - 1].1);
        if hi - lo < 1e-6 {
            return None;
        }
        self.bin_x.clear();
        self.bin_y.clear();
        let band = |y: f32| (((y - lo) / (hi - lo) * BANDS as f32) as usize).min(BANDS - 1);
        let mut start = 0;
        while start < self.pairs.len() {
            let b = band(self.pairs[start].1);
            let end = start
                + self.pairs[start..]
                    .iter()
                    .take_while(|p| band(p.1) == b)
                    .count();
            if end - start >= MIN_BAND_SAMPLES {
                let group = &mut self.pairs[start..end];
                let mid = group.len() / 2;
                let y = group[mid].1;
                let (_, x, _) = group.select_nth_unstable_by(mid, |a, b| a.0.total_cmp(&b.0));
                self.bin_x.push(x.0);
                self.bin_y.push(y);
            }
            start = end;
        }
        let (s, t) = line_fit(&self.bin_x, &self.bin_y, 2)?;
        Some(MonoFit {
            scale: s,
            shift: t,
            samples: self.fit_x.len() as u32,
        })
    }

    fn metric(&self, r: f32, fit: &MonoFit) -> f32 {
        let v = fit.scale * r + fit.shift;
        let z = if self.settings.inverse { 1.0 / v } else { v };
        let max = self.settings.max_depth_m;
        if z.is_finite() && z > 0.0 && (max <= 0.0 || z <= max) {
            z
        } else {
            0.0
        }
    }

    fn locate(&mut self, grid: &Grid, b: &[f32; 4], metres: &[f32]) -> Option<[f32; 3]> {
        let s = self.settings.box_shrink;
        let (dx, dy) = ((b[2] - b[0]) * s, (b[3] - b[1]) * s);
        let inner = [b[0] + dx, b[1] + dy, b[2] - dx, b[3] - dy];
        let (u0, v0, u1, v1) = grid.cover(&inner);
        self.samples.clear();
        for v in v0..v1.min(grid.out.1) {
            let row = &metres[v * grid.out.0..(v + 1) * grid.out.0];
            self.samples.extend(
                row[u0..u1.min(grid.out.0).max(u0)]
                    .iter()
                    .filter(|z| **z > 0.0),
            );
        }
        let k = &self.settings.calibration.left.matrix;
        let p = median_position(
            &mut self.samples,
            ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0),
            (k[(0, 0)] as f32, k[(0, 2)] as f32, k[(1, 2)] as f32),
        )?;
        // fy may differ from fx.
        let ratio = (k[(0, 0)] / k[(1, 1)]) as f32;
        Some([p[0], p[1] * ratio, p[2]])
    }
}

/// Least squares of `y = s·x + t` over at least `min_points` points.
fn line_fit(x: &[f32], y: &[f32], min_points: usize) -> Option<(f32, f32)> {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (f64::from(a), f64::from(b));
        n += 1.0;
        sx += a;
        sy += b;
        sxx += a * a;
        sxy += a * b;
    }
    let det = n * sxx - sx * sx;
    if n < min_points as f64 || det.abs() < 1e-12 {
        return None;
    }
    let s = (n * sxy - sx * sy) / det;
    Some((s as f32, ((sy - s * sx) / n) as f32))
}

impl Stage for MonoDepthStage {
    fn camera(&self) -> Option<Arc<CameraInfo>> {
        self.camera.clone()
    }

    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        let grid = self.infer(frame).map_err(StageError::msg)?;
        let stereo = record
            .depth
            .as_ref()
            .filter(|d| d.source == Some(DepthSource::Stereo));
        let fit = match (stereo, self.settings.fixed) {
            (Some(stereo), _) => {
                let left_view = stereo.camera.as_ref().is_some_and(|c| c.view == "left");
                self.fit_points(&grid, (stereo.width, stereo.height), left_view)
                    .map_err(StageError::msg)?;
                self.fit(stereo)
            }
            (None, Some((scale, shift))) => Some(MonoFit {
                scale,
                shift,
                samples: 0,
            }),
            (None, None) => None,
        };
        let Some(fit) = fit else {
            // Not enough stereo to fit against: nothing metric this frame.
            return Ok(());
        };
        record.mono_fit = Some(fit);
        let mut metres = self.pool.take();
        {
            let m = metres.as_mut_vec();
            m.clear();
            m.extend(self.relative.iter().map(|r| self.metric(*r, &fit)));
        }
        let position = |p: Option<[f32; 3]>| {
            p.map(|position_m| Position {
                position_m,
                depth_source: DepthSource::Mono,
            })
        };
        if let Some(dets) = record.detections.as_mut() {
            for d in dets
                .as_mut_vec()
                .iter_mut()
                .filter(|d| d.position.is_none())
            {
                d.position = position(self.locate(&grid, &d.bbox, &metres));
            }
        }
        if let Some(tracks) = record.tracks.as_mut() {
            for t in tracks
                .as_mut_vec()
                .iter_mut()
                .filter(|t| t.position.is_none())
            {
                t.position = position(self.locate(&grid, &t.bbox, &metres));
            }
        }
        if record.depth.is_none() {
            record.depth = Some(DepthMap {
                width: grid.out.0 as u32,
                height: grid.out.1 as u32,
                metres,
                source: Some(DepthSource::Mono),
                camera: None,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::line_fit;

    #[test]
    fn line_fit_recovers_scale_and_shift() {
        let x: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let y: Vec<f32> = x.iter().map(|x| 2.0 * x - 0.2).collect();
        let (s, t) = line_fit(&x, &y, 2).unwrap();
        assert!((s - 2.0).abs() < 1e-4 && (t + 0.2).abs() < 1e-4, "{s} {t}");
        assert!(line_fit(&x[..1], &y[..1], 2).is_none(), "too few points");
        assert!(line_fit(&[0.5; 4], &[1.0; 4], 2).is_none(), "no spread");
    }
}
