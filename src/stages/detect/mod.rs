//! Detection: an ONNX detector (model engine + fused preprocessing + a
//! layout decoder + NMS) or OpenCV's HOG people detector, both giving
//! `detections: [{bbox, class_id, class, score}]` in source pixels.

pub mod decode;
pub mod hog;
pub mod labels;
pub mod nms;
mod settings;

pub use settings::KIND;

use std::path::PathBuf;


use crate::frame::Frame;
use crate::pool::VecPool;
use crate::record::{Detection, Record};
use crate::model::{Engine, ModelError, ModelSettings};
use crate::stage::{Stage, StageError};
use decode::{Filter, Hints, Layout, OutputContract, View};
use hog::{HogPeople, HogSettings};
use labels::Labels;
use nms::Candidate;

/// Vectors kept for reuse: enough for every record in flight on bounded edges.
const POOL: usize = 64;

/// Which detector runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// An ONNX detector.
    Onnx {
        /// The model.
        model: ModelSettings,
        /// How its outputs are laid out.
        layout: Layout,
        /// Output tensor names the layout reads, in order.
        outputs: Option<Vec<String>>,
    },
    /// OpenCV's HOG people detector.
    HogPeople(HogSettings),
}

/// Plain detection settings, from the pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectSettings {
    /// Which detector.
    pub backend: Backend,
    /// Minimum score.
    pub confidence: f32,
    /// NMS IoU threshold.
    pub iou: f32,
    /// At most this many detections per frame.
    pub max_detections: usize,
    /// Keep only these class ids.
    pub classes: Option<Vec<u32>>,
    /// Class names file, one per line.
    pub labels: Option<PathBuf>,
}

enum Detector {
    Onnx {
        engine: Box<Engine>,
        contract: OutputContract,
        best: Vec<(f32, u32)>,
    },
    Hog(Box<HogPeople>),
}

/// The `detect` stage.
pub struct DetectStage {
    detector: Detector,
    filter: Filter,
    iou: f32,
    max: usize,
    labels: Labels,
    candidates: Vec<Candidate>,
    kept: Vec<Candidate>,
    pool: VecPool<Detection>,
}

/// What a loaded detector reports for `percept check`.
pub type DetectorInfo = crate::stage::StageInfo;

impl DetectStage {
    /// Loads the model, checks its contract against the layout, warms it up.
    pub fn new(settings: &DetectSettings) -> Result<DetectStage, ModelError> {
        let (detector, labels) = match &settings.backend {
            Backend::Onnx {
                model,
                layout,
                outputs,
            } => {
                let mut engine = Engine::load(model)?;
                let named = declared_labels(settings, &engine)?;
                let hints = Hints {
                    input: engine.input_size(),
                    classes: named.as_ref().map(Labels::len),
                };
                let contract = decode::check_outputs(
                    *layout,
                    &engine.outputs,
                    outputs.as_deref(),
                    &model.path,
                    hints,
                )?;
                let labels = named.unwrap_or_else(|| {
                    if contract.classes == 80 {
                        Labels::coco()
                    } else {
                        Labels::numbered(contract.classes)
                    }
                });
                engine.warm_up()?;
                check_warm_up_scores(&mut engine, &contract)?;
                let detector = Detector::Onnx {
                    engine: Box::new(engine),
                    contract,
                    best: Vec::new(),
                };
                (detector, labels)
            }
            Backend::HogPeople(hog) => {
                let detector = HogPeople::new(hog.clone()).map_err(|e| ModelError::Load {
                    path: PathBuf::from("opencv:hog_people"),
                    message: e.to_string(),
                })?;
                (Detector::Hog(Box::new(detector)), Labels::coco())
            }
        };
        Ok(DetectStage {
            detector,
            filter: Filter {
                confidence: settings.confidence,
                classes: settings.classes.clone(),
            },
            iou: settings.iou,
            max: settings.max_detections,
            labels,
            candidates: Vec::new(),
            kept: Vec::with_capacity(settings.max_detections),
            pool: VecPool::new(POOL, settings.max_detections),
        })
    }

    /// The loaded detector's description and load times.
    pub fn info(&self) -> DetectorInfo {
        match &self.detector {
            Detector::Onnx {
                engine, contract, ..
            } => {
                let (w, h) = engine.input_size();
                DetectorInfo {
                    description: format!(
                        "onnx {} ({} layout, input {w}x{h}, outputs `{}`, {} classes; read as {})",
                        engine.path().display(),
                        contract.layout.as_str(),
                        contract.names.join("`, `"),
                        if contract.classes > 0 {
                            contract.classes
                        } else {
                            self.labels.len()
                        },
                        contract.reason
                    ),
                    load_ms: engine.load_ms,
                    warmup_ms: engine.warmup_ms,
                }
            }
            Detector::Hog(_) => DetectorInfo {
                description: "hog_people (OpenCV HOG + linear SVM)".into(),
                load_ms: 0.0,
                warmup_ms: 0.0,
            },
        }
    }

    /// Candidates of one frame in source pixels, after NMS, into `self.kept`.
    fn detect(&mut self, frame: &Frame) -> Result<(), String> {
        match &mut self.detector {
            Detector::Onnx {
                engine,
                contract,
                best,
            } => {
                let letterbox = engine.preprocess(frame).map_err(|e| e.to_string())?;
                let outputs = engine.run().map_err(|e| e.to_string())?;
                decode_outputs(&outputs, contract, &self.filter, best, &mut self.candidates)?;
                decode::check_probabilities(contract, &self.candidates)?;
                if contract.layout.needs_nms() {
                    nms::nms(&mut self.candidates, self.iou, self.max, &mut self.kept);
                } else {
                    self.kept.clear();
                    self.kept
                        .extend(self.candidates.iter().take(self.max).copied());
                }
                for c in &mut self.kept {
                    c.bbox = letterbox.to_source(c.bbox);
                }
            }
            Detector::Hog(hog) => {
                hog.detect(frame, &mut self.candidates)?;
                self.candidates
                    .retain(|c| self.filter.confidence <= c.score);
                nms::nms(&mut self.candidates, self.iou, self.max, &mut self.kept);
            }
        }
        Ok(())
    }
}

/// Reads the contract's outputs of one run and decodes them into `out`.
fn decode_outputs(
    outputs: &ort::session::SessionOutputs<'_>,
    contract: &OutputContract,
    filter: &Filter,
    best: &mut Vec<(f32, u32)>,
    out: &mut Vec<Candidate>,
) -> Result<(), String> {
    let mut views: [View<'_>; decode::MAX_OUTPUTS] = std::array::from_fn(|_| View {
        dims: &[],
        data: &[],
    });
    for (slot, name) in views.iter_mut().zip(&contract.names) {
        let (shape, data) = outputs[name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("output `{name}`: {e}"))?;
        *slot = View { dims: shape, data };
    }
    let used = contract.names.len().min(views.len());
    decode::candidates(contract, &views[..used], filter, best, out)
}

/// Decodes one run on the padding-filled input with no threshold and refuses
/// the model (exit 2) when a score is not a probability: the outputs do not
/// hold the layout they are read as (a transposed or foreign export), and
/// every number written would be wrong.
fn check_warm_up_scores(engine: &mut Engine, contract: &OutputContract) -> Result<(), ModelError> {
    let path = engine.path().to_path_buf();
    let all = Filter {
        confidence: f32::NEG_INFINITY,
        classes: None,
    };
    let mut found = Vec::new();
    let outputs = engine.run()?;
    decode_outputs(&outputs, contract, &all, &mut Vec::new(), &mut found)
        .and_then(|()| decode::check_probabilities(contract, &found))
        .map_err(|message| ModelError::contract(&path, &contract.names.join("`, `"), message))
}

/// Class names the pipeline or the model declares: a labels file, else the
/// model's `names` metadata; `None` when neither says.
fn declared_labels(
    settings: &DetectSettings,
    engine: &Engine,
) -> Result<Option<Labels>, ModelError> {
    if let Some(path) = &settings.labels {
        return Labels::from_file(path)
            .map(Some)
            .map_err(|e| ModelError::Load {
                path: path.clone(),
                message: format!("cannot read labels file: {e}"),
            });
    }
    Ok(engine
        .metadata("names")
        .and_then(|n| Labels::from_metadata(&n)))
}

impl Stage for DetectStage {
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        self.detect(frame).map_err(StageError::msg)?;
        let mut detections = self.pool.take();
        for c in &self.kept {
            detections.push(Detection {
                bbox: c.bbox,
                class_id: c.class_id,
                class: self.labels.name(c.class_id),
                score: c.score,
                position: None,
            });
        }
        record.detections = Some(detections);
        Ok(())
    }
}
