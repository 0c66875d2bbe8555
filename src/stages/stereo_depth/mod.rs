//! The `stereo_depth` stage: rectify both views (maps computed once), match
//! them with OpenCV's StereoSGBM, turn disparity into metric depth
//! `Z = f · B / d` (0 where invalid), and place every detection and track in
//! 3D in the left rectified camera frame, or with `depth_frame = "left"` in
//! the original left camera's view and frame: each pixel of the left image
//! takes the rectified depth where its ray lands in the rectified view
//! (`undistortPoints` with `R1`, `P1`, computed once; nearest pixel, never
//! blending two depths), converted from the rectified z to the left camera's
//! z along that ray; positions rotate by `R1ᵀ`.
//!
//! All images live in buffers reused frame after frame; the per-frame depth
//! map is a pooled vector that travels with the record.

mod settings;

pub(crate) use settings::depth_limits;
pub use settings::KIND;

use std::path::PathBuf;
use std::sync::Arc;

use opencv::calib3d::{self, StereoSGBM};
use opencv::core::{CV_16S, Mat, Point2f, Ptr, Scalar, Vector};
use opencv::prelude::*;

use crate::calib::StereoCalibration;
use crate::calib::rectify::{Rectification, published_camera};
use crate::cvmat::{to_gray_code, with_frame_mat};
use crate::frame::Frame;
use crate::geometry::median_position;
use crate::pool::VecPool;
use crate::record::{CameraInfo, DepthCamera, DepthMap, DepthSource, Position, Record};
use crate::stage::{Stage, StageError};

/// Depth maps kept for reuse across frames in flight.
const POOL: usize = 16;

/// StereoSGBM's matching mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SgbmMode {
    /// Five directions, OpenCV's default.
    Sgbm,
    /// Full eight directions (slower, more memory).
    Hh,
    /// Three-way, the fastest.
    #[serde(rename = "3way")]
    ThreeWay,
}

/// StereoSGBM parameters (OpenCV's meaning and units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgbmSettings {
    /// Smallest disparity searched.
    pub min_disparity: i32,
    /// A multiple of 16.
    pub num_disparities: i32,
    /// Odd, 1..=11.
    pub block_size: i32,
    /// Smoothness penalties; default 8·bs² and 32·bs².
    pub p1: Option<i32>,
    /// Penalty for larger disparity changes (default from the block size).
    pub p2: Option<i32>,
    /// Largest left-right check difference.
    pub disp12_max_diff: i32,
    /// Prefilter cap.
    pub pre_filter_cap: i32,
    /// Uniqueness margin, percent.
    pub uniqueness_ratio: i32,
    /// Speckle filter window.
    pub speckle_window_size: i32,
    /// Speckle filter range.
    pub speckle_range: i32,
    /// SGBM variant.
    pub mode: SgbmMode,
    /// Pad both views on the left by the search range before matching, so
    /// that the left strip (which SGBM otherwise leaves unmatched) gets
    /// disparities wherever its match is inside the right view.
    pub full_width: bool,
}

impl Default for SgbmSettings {
    fn default() -> Self {
        SgbmSettings {
            min_disparity: 0,
            num_disparities: 128,
            block_size: 5,
            p1: None,
            p2: None,
            disp12_max_diff: 1,
            pre_filter_cap: 63,
            uniqueness_ratio: 10,
            speckle_window_size: 100,
            speckle_range: 32,
            mode: SgbmMode::Sgbm,
            full_width: true,
        }
    }
}

/// The view depth maps and 3D positions are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthFrame {
    /// The left rectified view (`P1`), the default.
    Rectified,
    /// The original left view (the calibration's left camera).
    Left,
}

/// Settings of the `stereo_depth` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoDepthSettings {
    /// The calibration file.
    pub calibration_path: PathBuf,
    /// Its contents.
    pub calibration: StereoCalibration,
    /// Matcher parameters.
    pub sgbm: SgbmSettings,
    /// Depths beyond this are marked invalid (0 = no limit).
    pub max_depth_m: f32,
    /// Each side of a box shrinks by this fraction before its median depth is taken.
    pub box_shrink: f32,
    /// The view of the depth map and positions.
    pub depth_frame: DepthFrame,
}

/// Rectification plus SGBM on reused buffers: the work of one stereo pair.
pub struct StereoMatcher {
    /// Rectification of the pair.
    pub rect: Rectification,
    sgbm: Ptr<StereoSGBM>,
    min_disparity: i32,
    gray: [Mat; 2],
    rectified: [Mat; 2],
    padded: [Mat; 2],
    pad: i32,
    padded_disparity: Mat,
    disparity: Mat,
}

impl StereoMatcher {
    /// A matcher for the calibration's rectified views.
    pub fn new(c: &StereoCalibration, s: &SgbmSettings) -> opencv::Result<StereoMatcher> {
        let cn = 1;
        let bs2 = s.block_size * s.block_size;
        let sgbm = StereoSGBM::create(
            s.min_disparity,
            s.num_disparities,
            s.block_size,
            s.p1.unwrap_or(8 * cn * bs2),
            s.p2.unwrap_or(32 * cn * bs2),
            s.disp12_max_diff,
            s.pre_filter_cap,
            s.uniqueness_ratio,
            s.speckle_window_size,
            s.speckle_range,
            match s.mode {
                SgbmMode::Sgbm => calib3d::StereoSGBM_MODE_SGBM,
                SgbmMode::Hh => calib3d::StereoSGBM_MODE_HH,
                SgbmMode::ThreeWay => calib3d::StereoSGBM_MODE_SGBM_3WAY,
            },
        )?;
        Ok(StereoMatcher {
            rect: Rectification::new(c)?,
            sgbm,
            min_disparity: s.min_disparity,
            gray: [Mat::default(), Mat::default()],
            rectified: [Mat::default(), Mat::default()],
            padded: [Mat::default(), Mat::default()],
            pad: if s.full_width {
                (s.min_disparity + s.num_disparities).max(0)
            } else {
                0
            },
            padded_disparity: Mat::default(),
            disparity: Mat::default(),
        })
    }

    /// Rectifies one view (`side` 0 left, 1 right) from an 8-bit image.
    fn rectify(&mut self, side: usize, image: &Mat, gray_code: Option<i32>) -> opencv::Result<()> {
        if self.rect.identity {
            // Already rectified: only the conversion to gray (or a copy).
            return match gray_code {
                Some(code) => opencv::imgproc::cvt_color(image, &mut self.rectified[side], code, 0),
                None => image.copy_to(&mut self.rectified[side]),
            };
        }
        let src = match gray_code {
            Some(code) => {
                opencv::imgproc::cvt_color(image, &mut self.gray[side], code, 0)?;
                &self.gray[side]
            }
            None => image,
        };
        let (m1, m2) = if side == 0 {
            (&self.rect.left_map.0, &self.rect.left_map.1)
        } else {
            (&self.rect.right_map.0, &self.rect.right_map.1)
        };
        opencv::imgproc::remap(
            src,
            &mut self.rectified[side],
            m1,
            m2,
            opencv::imgproc::INTER_LINEAR,
            opencv::core::BORDER_CONSTANT,
            Scalar::all(0.0),
        )
    }

    /// Rectifies and matches a pair of 8-bit images (gray, or colour with the
    /// conversion code to gray).
    pub fn compute(
        &mut self,
        left: &Mat,
        right: &Mat,
        gray_code: Option<i32>,
    ) -> opencv::Result<()> {
        self.rectify(0, left, gray_code)?;
        self.rectify(1, right, gray_code)?;
        if self.pad == 0 {
            return self
                .sgbm
                .compute(&self.rectified[0], &self.rectified[1], &mut self.disparity);
        }
        for i in 0..2 {
            opencv::core::copy_make_border(
                &self.rectified[i],
                &mut self.padded[i],
                0,
                0,
                self.pad,
                0,
                opencv::core::BORDER_REPLICATE,
                Scalar::all(0.0),
            )?;
        }
        self.sgbm
            .compute(&self.padded[0], &self.padded[1], &mut self.padded_disparity)?;
        let size = self.rectified[0].size()?;
        let view = self.padded_disparity.roi(opencv::core::Rect::new(
            self.pad,
            0,
            size.width,
            size.height,
        ))?;
        view.copy_to(&mut self.disparity)
    }

    /// Rectified gray views of the last pair.
    pub fn rectified(&self) -> &[Mat; 2] {
        &self.rectified
    }

    /// Disparity of the last pair in the left rectified view: `CV_16S`, 16 per pixel.
    pub fn disparity(&self) -> &Mat {
        &self.disparity
    }

    /// Metric depth of the last pair into `out` (row-major, 0 = invalid).
    pub fn depth_into(&self, max_depth_m: f32, out: &mut Vec<f32>) -> opencv::Result<()> {
        debug_assert_eq!(self.disparity.typ(), CV_16S);
        let fb = (self.rect.focal_px * self.rect.baseline_m) as f32 * 16.0;
        // SGBM marks unmatched pixels with (min_disparity - 1) · 16.
        let lowest = (self.min_disparity * 16).max(1) as i16;
        let limit = if max_depth_m > 0.0 {
            max_depth_m
        } else {
            f32::INFINITY
        };
        out.clear();
        let rows = self.disparity.rows();
        for y in 0..rows {
            let row = self.disparity.at_row::<i16>(y)?;
            out.extend(row.iter().map(|&d| {
                if d >= lowest {
                    let z = fb / f32::from(d);
                    if z <= limit { z } else { 0.0 }
                } else {
                    0.0
                }
            }));
        }
        Ok(())
    }
}

/// The camera of the left rectified view: the left 3x3 of `P1`, the baseline.
fn rectified_camera(r: &Rectification) -> opencv::Result<DepthCamera> {
    let mut k = [[0.0; 3]; 3];
    for (i, row) in k.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = *r.p1.at_2d::<f64>(i as i32, j as i32)?;
        }
    }
    Ok(DepthCamera {
        view: "rectified_left",
        k,
        baseline_m: r.baseline_m,
        width: r.size.width as u32,
        height: r.size.height as u32,
    })
}

/// The camera of the original left view: the calibration's left matrix.
fn left_camera(c: &StereoCalibration, r: &Rectification) -> DepthCamera {
    let m = &c.left.matrix;
    let mut k = [[0.0; 3]; 3];
    for (i, row) in k.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = m[(i, j)];
        }
    }
    DepthCamera {
        view: "left",
        k,
        baseline_m: r.baseline_m,
        width: c.image_size.0,
        height: c.image_size.1,
    }
}

/// From the left rectified view to the original left view, computed once.
struct LeftView {
    /// Per pixel of the left image: the rectified map's index, `u32::MAX` outside it.
    index: Vec<u32>,
    /// Per pixel of the left image: the left camera's z over the rectified z along its ray.
    scale: Vec<f32>,
    /// `R1ᵀ`: the left rectified frame into the left camera frame.
    r1t: [[f32; 3]; 3],
}

impl LeftView {
    fn new(r: &Rectification) -> opencv::Result<LeftView> {
        let (w, h) = (r.size.width, r.size.height);
        let mut raw = Vector::<Point2f>::with_capacity((w * h) as usize);
        for v in 0..h {
            for u in 0..w {
                raw.push(Point2f::new(u as f32, v as f32));
            }
        }
        let mut rect = Vector::<Point2f>::new();
        r.undistort_left(&raw, &mut rect)?;
        let mut r1t = [[0.0f64; 3]; 3];
        for (i, row) in r1t.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = *r.r1.at_2d::<f64>(j as i32, i as i32)?;
            }
        }
        let fy = *r.p1.at_2d::<f64>(1, 1)?;
        let mut index = Vec::with_capacity(rect.len());
        let mut scale = Vec::with_capacity(rect.len());
        for p in rect.iter() {
            let (x, y) = (p.x.round(), p.y.round());
            let inside = x >= 0.0 && y >= 0.0 && (x as i32) < w && (y as i32) < h;
            index.push(if inside {
                y as u32 * w as u32 + x as u32
            } else {
                u32::MAX
            });
            // The ray (rectified frame, z = 1) into the left frame: its z.
            let ray = [
                (f64::from(p.x) - r.cx) / r.focal_px,
                (f64::from(p.y) - r.cy) / fy,
                1.0,
            ];
            let z: f64 = (0..3).map(|j| r1t[2][j] * ray[j]).sum();
            scale.push(z as f32);
        }
        Ok(LeftView {
            index,
            scale,
            r1t: r1t.map(|row| row.map(|x| x as f32)),
        })
    }

    /// The rectified map `rect` in the left view, into `out`.
    fn map(&self, rect: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.index.iter().zip(&self.scale).map(|(&i, &s)| {
            match rect.get(i as usize) {
                Some(&z) if z > 0.0 => z * s,
                _ => 0.0,
            }
        }));
    }

    /// A point of the left rectified frame in the left camera frame.
    fn rotate(&self, p: [f32; 3]) -> [f32; 3] {
        self.r1t
            .map(|row| row[0] * p[0] + row[1] * p[1] + row[2] * p[2])
    }
}

/// The `stereo_depth` stage.
pub struct StereoDepthStage {
    left_view: Option<LeftView>,
    rect_depth: Vec<f32>,
    settings: StereoDepthSettings,
    matcher: StereoMatcher,
    corners: Vector<Point2f>,
    corners_rect: Vector<Point2f>,
    samples: Vec<f32>,
    pool: VecPool<f32>,
    fatal: bool,
    camera: Arc<DepthCamera>,
    info: Option<Arc<CameraInfo>>,
}

impl StereoDepthStage {
    /// Computes rectification maps and the matcher once.
    pub fn new(settings: &StereoDepthSettings) -> Result<StereoDepthStage, String> {
        let c = &settings.calibration;
        let fail = |e: opencv::Error| format!("{}: {e}", settings.calibration_path.display());
        let matcher = StereoMatcher::new(c, &settings.sgbm).map_err(fail)?;
        let (camera, left_view) = match settings.depth_frame {
            DepthFrame::Rectified => (rectified_camera(&matcher.rect).map_err(fail)?, None),
            DepthFrame::Left => (
                left_camera(c, &matcher.rect),
                Some(LeftView::new(&matcher.rect).map_err(fail)?),
            ),
        };
        let camera = Arc::new(camera);
        let info = published_camera(&matcher.rect, c, &settings.calibration_path);
        Ok(StereoDepthStage {
            info,
            left_view,
            rect_depth: Vec::new(),
            camera,
            matcher,
            settings: settings.clone(),
            corners: Vector::new(),
            corners_rect: Vector::new(),
            samples: Vec::new(),
            pool: VecPool::new(POOL, 0),
            fatal: false,
        })
    }

    fn check_size(&self, frame: &Frame, what: &str) -> Result<(), String> {
        let (w, h) = self.settings.calibration.image_size;
        if (frame.width(), frame.height()) != (w, h) {
            return Err(format!(
                "{}: `image_size` is {w}x{h} but the {what} frames are {}x{}",
                self.settings.calibration_path.display(),
                frame.width(),
                frame.height()
            ));
        }
        Ok(())
    }

    /// The robust depth of a box (source pixels of the left view) in the
    /// rectified map `depth` and its 3D position (in the frame `depth_frame`
    /// names), or `None` without enough valid depth inside it.
    fn locate(&mut self, bbox: &[f32; 4], depth: &[f32]) -> Result<Option<[f32; 3]>, String> {
        let [x1, y1, x2, y2] = *bbox;
        self.corners.clear();
        for (x, y) in [(x1, y1), (x2, y1), (x1, y2), (x2, y2)] {
            self.corners.push(Point2f::new(x, y));
        }
        let r = &self.matcher.rect;
        r.undistort_left(&self.corners, &mut self.corners_rect)
            .map_err(|e| e.to_string())?;
        let (mut a, mut b) = ((f32::MAX, f32::MAX), (f32::MIN, f32::MIN));
        for p in self.corners_rect.iter() {
            a = (a.0.min(p.x), a.1.min(p.y));
            b = (b.0.max(p.x), b.1.max(p.y));
        }
        let (w, h) = (r.size.width as f32, r.size.height as f32);
        let s = self.settings.box_shrink.clamp(0.0, 0.49);
        let (dx, dy) = ((b.0 - a.0) * s, (b.1 - a.1) * s);
        let (u0, v0) = ((a.0 + dx).clamp(0.0, w), (a.1 + dy).clamp(0.0, h));
        let (u1, v1) = ((b.0 - dx).clamp(0.0, w), (b.1 - dy).clamp(0.0, h));
        self.samples.clear();
        let stride = r.size.width as usize;
        for v in v0 as usize..(v1.ceil() as usize).min(r.size.height as usize) {
            let row = &depth[v * stride..(v + 1) * stride];
            let end = (u1.ceil() as usize).min(stride);
            self.samples.extend(
                row[u0 as usize..end.max(u0 as usize)]
                    .iter()
                    .filter(|z| **z > 0.0),
            );
        }
        let p = median_position(
            &mut self.samples,
            ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0),
            (r.focal_px as f32, r.cx as f32, r.cy as f32),
        );
        Ok(match &self.left_view {
            Some(left) => p.map(|p| left.rotate(p)),
            None => p,
        })
    }
}

impl Stage for StereoDepthStage {
    fn fatal(&self) -> bool {
        self.fatal
    }

    fn camera(&self) -> Option<Arc<CameraInfo>> {
        self.info.clone()
    }

    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        let Some(right) = frame.right.as_deref() else {
            self.fatal = true;
            return Err(StageError::msg(
                "stereo_depth needs stereo pairs: list a `[[stereo]]` id in `streams`",
            ));
        };
        let sizes = self
            .check_size(frame, "left")
            .and_then(|()| self.check_size(right, "right"));
        if let Err(e) = sizes {
            self.fatal = true;
            return Err(StageError::msg(e));
        }
        let matcher = &mut self.matcher;
        with_frame_mat(frame, |left, format| {
            with_frame_mat(right, |right, _| {
                matcher
                    .compute(left, right, to_gray_code(format))
                    .map_err(|e| e.to_string())
            })
        })
        .map_err(StageError::msg)?;
        let mut metres = self.pool.take();
        self.matcher
            .depth_into(self.settings.max_depth_m, &mut self.rect_depth)
            .map_err(|e| StageError::msg(e.to_string()))?;
        let rect_depth = std::mem::take(&mut self.rect_depth);
        let position = |p: Option<[f32; 3]>| {
            p.map(|position_m| Position {
                position_m,
                depth_source: DepthSource::Stereo,
            })
        };
        if let Some(dets) = record.detections.as_mut() {
            for d in dets.as_mut_vec() {
                d.position =
                    position(self.locate(&d.bbox, &rect_depth).map_err(StageError::msg)?);
            }
        }
        if let Some(tracks) = record.tracks.as_mut() {
            for t in tracks.as_mut_vec() {
                t.position =
                    position(self.locate(&t.bbox, &rect_depth).map_err(StageError::msg)?);
            }
        }
        match &self.left_view {
            Some(left) => left.map(&rect_depth, metres.as_mut_vec()),
            None => {
                let out = metres.as_mut_vec();
                out.clear();
                out.extend_from_slice(&rect_depth);
            }
        }
        self.rect_depth = rect_depth;
        let size = self.matcher.rect.size;
        record.depth = Some(DepthMap {
            width: size.width as u32,
            height: size.height as u32,
            metres,
            source: Some(DepthSource::Stereo),
            camera: Some(self.camera.clone()),
        });
        Ok(())
    }
}
