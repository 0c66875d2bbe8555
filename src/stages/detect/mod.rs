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
use crate::model::preprocess::Letterbox;
use crate::model::{Engine, ModelError, ModelSettings};
use crate::pool::VecPool;
use crate::record::{Detection, Record, Work};
use crate::stage::{BatchPolicy, Stage, StageError};
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
    /// Frames per model run across streams (ONNX only; the model's
    /// `max_batch` is set to `max`); `None`: one at a time.
    pub batch: Option<BatchPolicy>,
    /// Copies of the detector working on frames at once (each its own
    /// session and thread; frames leave in order), at least 1.
    pub instances: usize,
}

enum Detector {
    Onnx {
        engine: Box<Engine>,
        contract: OutputContract,
        best: Vec<f32>,
        /// Per batch slot: the letterbox of the frame preprocessed into it,
        /// `None` when its preprocessing failed (capacity: the engine's batch slots).
        letterboxes: Vec<Option<Letterbox>>,
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
                let slots = engine.max_batch();
                let detector = Detector::Onnx {
                    engine: Box::new(engine),
                    contract,
                    best: Vec::new(),
                    letterboxes: Vec::with_capacity(slots),
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
                ..
            } => {
                let letterbox = engine.preprocess(frame).map_err(|e| e.to_string())?;
                let run = engine.run_size(1);
                let outputs = engine.run().map_err(|e| e.to_string())?;
                decode_outputs(
                    &outputs,
                    contract,
                    (0, run),
                    &self.filter,
                    best,
                    &mut self.candidates,
                )?;
                select(
                    contract,
                    &letterbox,
                    (self.iou, self.max),
                    &mut self.candidates,
                    &mut self.kept,
                )?;
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

/// Writes one frame's kept candidates into its record as its detections.
fn write(kept: &[Candidate], labels: &Labels, pool: &VecPool<Detection>, record: &mut Record) {
    let mut detections = pool.take();
    for c in kept {
        detections.push(Detection {
            bbox: c.bbox,
            class_id: c.class_id,
            class: labels.name(c.class_id),
            score: c.score,
            position: None,
        });
    }
    record.detections = Some(detections);
}

/// Highest output rank a batched decode reads.
const MAX_RANK: usize = 8;

/// Reads the contract's outputs of one run of `run` images and decodes image
/// `slot` of them into `out`: each output's first dimension is the batch, and
/// the decoder sees image `slot` as a batch of one (`[1, ...]`), exactly as
/// an unbatched run gives it.
fn decode_outputs(
    outputs: &ort::session::SessionOutputs<'_>,
    contract: &OutputContract,
    (slot, run): (usize, usize),
    filter: &Filter,
    best: &mut Vec<f32>,
    out: &mut Vec<Candidate>,
) -> Result<(), String> {
    let mut dims = [[0i64; MAX_RANK]; decode::MAX_OUTPUTS];
    let mut data: [&[f32]; decode::MAX_OUTPUTS] = [&[]; decode::MAX_OUTPUTS];
    let mut ranks = [0usize; decode::MAX_OUTPUTS];
    for (i, name) in contract.names.iter().enumerate().take(decode::MAX_OUTPUTS) {
        let (shape, values) = outputs[name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("output `{name}`: {e}"))?;
        let rank = shape.len();
        if rank == 0 || rank > MAX_RANK || shape[0] != run as i64 || values.len() % run != 0 {
            return Err(format!(
                "output `{name}` of shape {:?} does not have the run's {run} images as its first dimension",
                &shape[..]
            ));
        }
        let per = values.len() / run;
        dims[i][..rank].copy_from_slice(&shape[..]);
        dims[i][0] = 1;
        ranks[i] = rank;
        data[i] = &values[slot * per..(slot + 1) * per];
    }
    let used = contract.names.len().min(decode::MAX_OUTPUTS);
    let mut views: [View<'_>; decode::MAX_OUTPUTS] = std::array::from_fn(|_| View {
        dims: &[],
        data: &[],
    });
    for (i, view) in views.iter_mut().enumerate().take(used) {
        *view = View {
            dims: &dims[i][..ranks[i]],
            data: data[i],
        };
    }
    decode::candidates(contract, &views[..used], filter, best, out)
}

/// One image's decoded candidates → its detections in source pixels in
/// `kept`: the probability check, NMS (or the first `max` of an end-to-end
/// layout), then the letterbox inverse.
fn select(
    contract: &OutputContract,
    letterbox: &Letterbox,
    (iou, max): (f32, usize),
    candidates: &mut [Candidate],
    kept: &mut Vec<Candidate>,
) -> Result<(), String> {
    decode::check_probabilities(contract, candidates)?;
    if contract.layout.needs_nms() {
        nms::nms(candidates, iou, max, kept);
    } else {
        kept.clear();
        kept.extend(candidates.iter().take(max).copied());
    }
    for c in kept.iter_mut() {
        c.bbox = letterbox.to_source(c.bbox);
    }
    Ok(())
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
    let run = engine.run_size(1);
    let outputs = engine.run()?;
    decode_outputs(&outputs, contract, (0, run), &all, &mut Vec::new(), &mut found)
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

impl DetectStage {
    /// One model run over `works` (at most the engine's batch slots): each
    /// frame preprocessed into its slot, one run, each slot decoded into its
    /// frame's record. A frame whose preprocessing fails fails alone; a
    /// failed run fails every frame of the batch.
    fn detect_batch(&mut self, works: &mut [Work], results: &mut [Result<(), StageError>]) {
        let Detector::Onnx {
            engine,
            contract,
            best,
            letterboxes,
        } = &mut self.detector
        else {
            return;
        };
        letterboxes.clear();
        for (slot, (work, result)) in works.iter().zip(results.iter_mut()).enumerate() {
            match engine.preprocess_slot(&work.frame, slot) {
                Ok(l) => {
                    letterboxes.push(Some(l));
                    *result = Ok(());
                }
                Err(e) => {
                    letterboxes.push(None);
                    *result = Err(StageError::msg(e.to_string()));
                }
            }
        }
        if letterboxes.iter().all(Option::is_none) {
            return;
        }
        let run = engine.run_size(works.len());
        let outputs = match engine.run_batch(works.len()) {
            Ok(o) => o,
            Err(e) => {
                for r in results.iter_mut() {
                    *r = Err(StageError::msg(e.to_string()));
                }
                return;
            }
        };
        for (slot, (work, result)) in works.iter_mut().zip(results.iter_mut()).enumerate() {
            let Some(letterbox) = letterboxes[slot] else {
                continue;
            };
            let done = decode_outputs(
                &outputs,
                contract,
                (slot, run),
                &self.filter,
                best,
                &mut self.candidates,
            )
            .and_then(|()| {
                select(
                    contract,
                    &letterbox,
                    (self.iou, self.max),
                    &mut self.candidates,
                    &mut self.kept,
                )
            });
            match done {
                Ok(()) => write(&self.kept, &self.labels, &self.pool, &mut work.record),
                Err(e) => *result = Err(StageError::msg(e)),
            }
        }
    }

    /// The engine's batch slots (1 for HOG).
    fn slots(&self) -> usize {
        match &self.detector {
            Detector::Onnx { engine, .. } => engine.max_batch(),
            Detector::Hog(_) => 1,
        }
    }
}

impl Stage for DetectStage {
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        self.detect(frame).map_err(StageError::msg)?;
        write(&self.kept, &self.labels, &self.pool, record);
        Ok(())
    }

    /// ONNX with batch slots: one model run per `max_batch` frames (each
    /// frame's detections as [`Stage::process`] gives them alone, to within
    /// ONNX Runtime's arithmetic); otherwise frame by frame.
    fn process_batch(&mut self, batch: &mut [Work], results: &mut [Result<(), StageError>]) {
        let slots = self.slots();
        if slots <= 1 || batch.len() <= 1 {
            for (work, result) in batch.iter_mut().zip(results.iter_mut()) {
                *result = self.process(&work.frame, &mut work.record);
            }
            return;
        }
        for (works, results) in batch.chunks_mut(slots).zip(results.chunks_mut(slots)) {
            self.detect_batch(works, results);
        }
    }
}
