//! `reid`: appearance embeddings of a frame's detections. Each detection's box
//! is cropped and resized straight into a preallocated batch tensor, all crops
//! of a frame go through the ONNX embedding model in one run (or in runs of
//! `max_batch`), and every embedding is L2-normalised. The `track` stage fuses
//! them with motion; without this stage tracking is motion only.

use crossbeam_channel::{Receiver, Sender};

use crate::frame::{Embeddings, Frame, Pooled, Record};
use crate::model::contract::dims_text;
use crate::model::{Engine, ModelError, ModelSettings};
use crate::stage::{Stage, StageError};

/// Vectors kept for reuse across frames in flight.
const POOL: usize = 64;

pub struct ReidStage {
    engine: Box<Engine>,
    output: String,
    dim: usize,
    max_batch: usize,
    regions: Vec<[f32; 4]>,
    pool: (Sender<Vec<f32>>, Receiver<Vec<f32>>),
}

impl ReidStage {
    /// Loads the model and checks its contract: one image input `[N, 3, H, W]`
    /// and a first output `[N, D]` with `D` fixed.
    pub fn new(settings: &ModelSettings) -> Result<ReidStage, ModelError> {
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
            regions: Vec::new(),
            pool: crossbeam_channel::bounded(POOL),
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
            let outputs = self.engine.run_batch(n).map_err(|e| e.to_string())?;
            let (_, data) = outputs[self.output.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| format!("output `{}`: {e}", self.output))?;
            if data.len() != n * self.dim {
                return Err(format!(
                    "output `{}` has {} values for {n} crops of {}",
                    self.output,
                    data.len(),
                    self.dim
                ));
            }
            for e in data.chunks_exact(self.dim) {
                let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                values.extend(e.iter().map(|x| x / norm));
            }
        }
        Ok(())
    }
}

impl Stage for ReidStage {
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        // Cascade: no detections, no work.
        let Some(detections) = record.detections.as_ref().filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        self.regions.clear();
        self.regions.extend(detections.iter().map(|d| d.bbox));
        let mut values = Pooled::new(
            self.pool.1.try_recv().unwrap_or_default(),
            self.pool.0.clone(),
        );
        self.embed(frame, values.as_mut_vec()).map_err(StageError)?;
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
    use crate::frame::{Detection, Detections};

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
