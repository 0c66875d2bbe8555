//! `reid`: appearance embeddings of a frame's detections. Each detection's box
//! is cropped and resized straight into a preallocated batch tensor, all crops
//! of a frame go through the ONNX embedding model in one run (or in runs of
//! `max_batch`), and every embedding is L2-normalised. The `track` stage fuses
//! them with motion; without this stage tracking is motion only.
//!
//! Early exit: no detections, no work; and a detection that is the same
//! object as one embedded on the previous frame (IoU at least `reuse.iou`, its
//! area within `reuse.grow` times) reuses that embedding until it is
//! `reuse.refresh_s` old. Only the others go through the model.

mod settings;

pub use settings::KIND;


use crate::geometry::iou;
use crate::frame::Frame;
use crate::pool::VecPool;
use crate::record::{Embeddings, Record};
use crate::model::contract::dims_text;
use crate::model::{Engine, ModelError, ModelSettings};
use crate::stage::{Stage, StageError};

/// Vectors kept for reuse across frames in flight.
const POOL: usize = 64;

/// When a detection may reuse the previous frame's embedding of its object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReuseSettings {
    /// Minimum IoU with the previous frame's box; above 1 turns reuse off.
    pub iou: f32,
    /// Largest area ratio (either way) between the two boxes.
    pub grow: f32,
    /// An embedding is recomputed once it is this old.
    pub refresh_s: f32,
}

impl Default for ReuseSettings {
    fn default() -> Self {
        ReuseSettings {
            iou: 0.7,
            grow: 1.25,
            refresh_s: 1.0,
        }
    }
}

/// The embeddings of one stream's last frame.
#[derive(Default)]
struct Cache {
    stream: Option<std::sync::Arc<str>>,
    /// Box, time it was embedded, offset into `values`.
    entries: Vec<([f32; 4], f64, usize)>,
    values: Vec<f32>,
}

/// The `reid` stage.
pub struct ReidStage {
    engine: Box<Engine>,
    output: String,
    dim: usize,
    max_batch: usize,
    reuse: ReuseSettings,
    regions: Vec<[f32; 4]>,
    /// Per detection: `Some(offset in the cache)` or `None` (to compute).
    plan: Vec<Option<(usize, f64)>>,
    computed: Vec<f32>,
    caches: Vec<Cache>,
    next: Cache,
    crops_run: u64,
    pool: VecPool<f32>,
}

impl ReidStage {
    /// Loads the model and checks its contract: one image input `[N, 3, H, W]`
    /// and a first output `[N, D]` with `D` fixed.
    pub fn new(settings: &ModelSettings) -> Result<ReidStage, ModelError> {
        Self::with_reuse(settings, ReuseSettings::default())
    }

    /// Crops that went through the model so far.
    pub fn crops_run(&self) -> u64 {
        self.crops_run
    }

    /// Loads the embedding model with reuse settings.
    pub fn with_reuse(
        settings: &ModelSettings,
        reuse: ReuseSettings,
    ) -> Result<ReidStage, ModelError> {
        let mut engine = Engine::load(settings)?;
        let out = engine.outputs.first().cloned().ok_or_else(|| {
            ModelError::contract(&settings.path, "output", "the model has no outputs")
        })?;
        let dim = match out.dims.as_slice() {
            [_, Some(d)] if out.is_f32() && *d > 0 => *d as usize,
            _ => {
                return Err(ModelError::contract(
                    &settings.path,
                    &out.name,
                    format!(
                        "a re-ID model needs an f32 output [N, D] with D fixed, found {} {}",
                        out.dtype,
                        dims_text(&out.dims)
                    ),
                ));
            }
        };
        engine.warm_up()?;
        Ok(ReidStage {
            engine: Box::new(engine),
            output: out.name,
            dim,
            max_batch: settings.max_batch.max(1),
            reuse,
            regions: Vec::new(),
            plan: Vec::new(),
            computed: Vec::new(),
            caches: Vec::new(),
            next: Cache::default(),
            crops_run: 0,
            pool: VecPool::new(POOL, 0),
        })
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&mut self, frame: &Frame, values: &mut Vec<f32>) -> Result<(), String> {
        values.clear();
        for chunk in self.regions.chunks(self.max_batch) {
            let n = self
                .engine
                .preprocess_regions(frame, chunk)
                .map_err(|e| e.to_string())?;
            // A fixed batch dimension runs all its slots: the first n are these crops.
            let run = self.engine.run_size(n);
            let outputs = self.engine.run_batch(n).map_err(|e| e.to_string())?;
            let (_, data) = outputs[self.output.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| format!("output `{}`: {e}", self.output))?;
            if data.len() != run * self.dim {
                return Err(format!(
                    "output `{}` has {} values for {run} crops of {}",
                    self.output,
                    data.len(),
                    self.dim
                ));
            }
            for e in data[..n * self.dim].chunks_exact(self.dim) {
                let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                values.extend(e.iter().map(|x| x / norm));
            }
        }
        Ok(())
    }
}

impl Stage for ReidStage {
    fn end_stream(&mut self, stream: &str) {
        self.caches.retain(|c| c.stream.as_deref() != Some(stream));
    }

    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        // Cascade: no detections, no work.
        let Some(detections) = record.detections.as_ref().filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        let meta = &frame.meta;
        let t_s = meta.time_s();
        let ci = match self
            .caches
            .iter()
            .position(|c| c.stream.as_deref() == Some(&*meta.stream))
        {
            Some(i) => i,
            None => {
                self.caches.push(Cache {
                    stream: Some(meta.stream.clone()),
                    ..Cache::default()
                });
                self.caches.len() - 1
            }
        };
        // Which detections can reuse last frame's embedding of their object.
        let r = self.reuse;
        let cache = &self.caches[ci];
        self.plan.clear();
        self.regions.clear();
        for d in detections.iter() {
            let area = |b: &[f32; 4]| ((b[2] - b[0]) * (b[3] - b[1])).max(1e-6);
            let hit = cache.entries.iter().find(|(b, at, _)| {
                let ratio = area(&d.bbox) / area(b);
                iou(b, &d.bbox) >= r.iou
                    && ratio <= r.grow
                    && ratio >= 1.0 / r.grow
                    && ((t_s - at) as f32) < r.refresh_s
            });
            match hit {
                Some(&(_, at, offset)) => self.plan.push(Some((offset, at))),
                None => {
                    self.plan.push(None);
                    self.regions.push(d.bbox);
                }
            }
        }
        let mut computed = std::mem::take(&mut self.computed);
        let result = if self.regions.is_empty() {
            computed.clear();
            Ok(())
        } else {
            self.embed(frame, &mut computed)
        };
        self.crops_run += self.regions.len() as u64;
        self.computed = computed;
        result.map_err(StageError::msg)?;
        let mut values = self.pool.take();
        let (dim, cache) = (self.dim, &self.caches[ci]);
        let out = values.as_mut_vec();
        out.clear();
        self.next.entries.clear();
        self.next.values.clear();
        let mut k = 0;
        for (d, p) in detections.iter().zip(&self.plan) {
            let (e, at) = match *p {
                Some((offset, at)) => (&cache.values[offset..offset + dim], at),
                None => {
                    k += 1;
                    (&self.computed[(k - 1) * dim..k * dim], t_s)
                }
            };
            out.extend_from_slice(e);
            self.next.entries.push((d.bbox, at, self.next.values.len()));
            self.next.values.extend_from_slice(e);
        }
        // The new cache becomes this stream's; the old one is reused next time.
        let stream = self.caches[ci].stream.take();
        std::mem::swap(&mut self.caches[ci], &mut self.next);
        self.caches[ci].stream = stream;
        record.embeddings = Some(Embeddings {
            values,
            dim: self.dim,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use gstreamer as gst;
    use gstreamer_video as gst_video;

    use super::*;
    use crate::record::{Detection, Detections};

    /// A dark 120x80 RGB frame with squares of the given colours at x = 10, 50, 90 (-ish).
    fn frame(colours: &[[u8; 3]]) -> Frame {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 121, 80)
            .build()
            .unwrap();
        let stride = info.stride()[0] as usize;
        let mut bytes = vec![20u8; info.size()];
        for (k, c) in colours.iter().enumerate() {
            for y in 20..50 {
                for x in 10 + 40 * k..30 + 40 * k {
                    bytes[y * stride + x * 3..y * stride + x * 3 + 3].copy_from_slice(c);
                }
            }
        }
        crate::frame::test_frame(info, bytes, 0)
    }

    fn detections(n: usize) -> Detections {
        let mut d = Detections::default();
        for k in 0..n {
            let x = (10 + 40 * k) as f32;
            d.push(Detection {
                bbox: [x, 20.0, x + 20.0, 50.0],
                class_id: 0,
                class: Arc::from("x"),
                score: 0.9,
                position: None,
            });
        }
        d
    }

    fn model() -> ModelSettings {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models/colour_embed.onnx");
        ModelSettings {
            max_batch: 2,
            ..ModelSettings::new(path)
        }
    }

    #[test]
    fn crops_of_one_frame_get_normalised_embeddings_that_separate_colours() {
        let mut settings = model();
        settings.preprocess.resize = crate::model::preprocess::Resize::Stretch;
        let mut stage = ReidStage::new(&settings).unwrap();
        assert_eq!(stage.dim(), 24);
        // Three crops with a batch of two: two runs.
        let red = [230, 30, 30];
        let f = frame(&[red, [240, 110, 20], red]);
        let mut record = Record {
            detections: Some(detections(3)),
            ..Record::default()
        };
        stage.process(&f, &mut record).unwrap();
        let e = record.embeddings.as_ref().unwrap();
        assert_eq!((e.dim, e.values.len()), (24, 72));
        let v: Vec<&[f32]> = e.values.chunks(24).collect();
        for x in &v {
            assert!((x.iter().map(|a| a * a).sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let cos = |a: &[f32], b: &[f32]| 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!(cos(v[0], v[2]) < 1e-5, "same colour, same embedding");
        assert!(cos(v[0], v[1]) > 0.2, "red vs orange: {}", cos(v[0], v[1]));
        // No detections: no work, no embeddings.
        let mut empty = Record {
            detections: Some(detections(0)),
            ..Record::default()
        };
        stage.process(&f, &mut empty).unwrap();
        assert!(empty.embeddings.is_none());
    }

    #[test]
    fn the_same_objects_on_the_next_frame_reuse_their_embeddings_until_refresh() {
        let mut settings = model();
        settings.preprocess.resize = crate::model::preprocess::Resize::Stretch;
        let mut stage = ReidStage::new(&settings).unwrap();
        let red = [230, 30, 30];
        let mut f = frame(&[red, [240, 110, 20], [30, 220, 40]]);
        let run = |stage: &mut ReidStage, f: &Frame, dets: Detections| {
            let mut record = Record {
                detections: Some(dets),
                ..Record::default()
            };
            stage.process(f, &mut record).unwrap();
            record.embeddings.unwrap().values.to_vec()
        };
        let first = run(&mut stage, &f, detections(3));
        assert_eq!(stage.crops_run(), 3);
        // Next frame, same boxes: no crop runs, same embeddings, same order.
        f.meta.pts_ns = Some(100_000_000);
        assert_eq!(run(&mut stage, &f, detections(3)), first);
        assert_eq!(stage.crops_run(), 3);
        // One box moved far (IoU below 0.7): only that one runs.
        let mut moved = detections(3);
        moved.as_mut_vec()[1].bbox[0] += 12.0;
        moved.as_mut_vec()[1].bbox[2] += 12.0;
        run(&mut stage, &f, moved);
        assert_eq!(stage.crops_run(), 4);
        // A second later everything is recomputed.
        f.meta.pts_ns = Some(1_200_000_000);
        run(&mut stage, &f, detections(3));
        assert_eq!(stage.crops_run(), 7);
    }

    #[test]
    fn a_fixed_batch_model_cannot_take_batches() {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models/squares_yolov8.onnx");
        let e = ReidStage::new(&ModelSettings {
            max_batch: 8,
            ..ModelSettings::new(path)
        })
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("tensor `images`") && e.to_string().contains("dynamic batch"),
            "{e}"
        );
    }
}
