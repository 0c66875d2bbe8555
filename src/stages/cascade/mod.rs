//! The `cascade` stage: a multi-exit model split into a chain of ONNX
//! sub-models. The first takes the frame; each later one takes the previous
//! one's `features` output. Every exit outputs `scores` `[1, C]`
//! (probabilities); the chain stops at the first exit whose best score reaches
//! its threshold, or at the last exit the frame's deadline allows (each exit's
//! recent p95 latency must fit before the deadline), and writes
//! `classification: {class_id, class, score, exit}`.

mod settings;

pub use settings::KIND;

use ort::session::Session;
use ort::value::TensorRef;

use crate::frame::Frame;
pub use crate::record::Classification;
use crate::record::Record;
use crate::model::contract::{TensorInfo, dims_text, session_tensors};
use crate::model::{Engine, ModelError, ModelSettings, open_session};
use crate::meter::RecentLatency;
use crate::stage::{Stage, StageError};

/// One exit after the first.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitSettings {
    /// The exit's model.
    pub model: ModelSettings,
    /// Stop here when the best score reaches this.
    pub threshold: f32,
}

/// Settings of the `cascade` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct CascadeSettings {
    /// The first exit: takes the frame (preprocessing settings apply).
    pub first: ExitSettings,
    /// The later exits, in order.
    pub rest: Vec<ExitSettings>,
}

struct Exit {
    session: Session,
    input: String,
    threshold: f32,
    recent: RecentLatency,
}

/// The `cascade` stage.
pub struct CascadeStage {
    first: Box<Engine>,
    first_threshold: f32,
    rest: Vec<Exit>,
    labels: Vec<std::sync::Arc<str>>,
    features: Vec<f32>,
    shape: Vec<usize>,
    scores: Vec<f32>,
}

/// Checks that a sub-model has `scores` and, unless it is the last exit, `features`.
fn check_outputs(
    path: &std::path::Path,
    outputs: &[TensorInfo],
    last: bool,
) -> Result<(), ModelError> {
    let find = |name: &str| outputs.iter().find(|o| o.name == name);
    match find("scores") {
        Some(s) if s.is_f32() && s.dims.len() == 2 => {}
        Some(s) => {
            return Err(ModelError::contract(
                path,
                "scores",
                format!(
                    "must be f32 [1, C], found {} {}",
                    s.dtype,
                    dims_text(&s.dims)
                ),
            ));
        }
        None => {
            return Err(ModelError::contract(
                path,
                "scores",
                "an exit must output `scores` [1, C]",
            ));
        }
    }
    if !last && find("features").is_none_or(|f| !f.is_f32()) {
        return Err(ModelError::contract(
            path,
            "features",
            "every exit but the last must output f32 `features` for the next one",
        ));
    }
    Ok(())
}

impl CascadeStage {
    /// Loads and checks every exit, warms the first up.
    pub fn new(settings: &CascadeSettings) -> Result<CascadeStage, ModelError> {
        let mut first = Engine::load(&settings.first.model)?;
        let last = settings.rest.is_empty();
        check_outputs(&settings.first.model.path, &first.outputs, last)?;
        first.warm_up()?;
        let mut rest = Vec::new();
        for (i, exit) in settings.rest.iter().enumerate() {
            let session = open_session(&exit.model)?;
            let (inputs, outputs) = session_tensors(&session);
            let [input] = inputs.as_slice() else {
                return Err(ModelError::contract(
                    &exit.model.path,
                    "input",
                    format!(
                        "an exit takes one input (the features), found {}",
                        inputs.len()
                    ),
                ));
            };
            check_outputs(&exit.model.path, &outputs, i + 1 == settings.rest.len())?;
            rest.push(Exit {
                session,
                input: input.name.clone(),
                threshold: exit.threshold,
                recent: RecentLatency::new(),
            });
        }
        // Class names from the first model's `names` metadata, else numbers.
        let labels = first
            .metadata("names")
            .and_then(|n| serde_json::from_str::<Vec<String>>(&n).ok())
            .unwrap_or_default();
        Ok(CascadeStage {
            first: Box::new(first),
            first_threshold: settings.first.threshold,
            rest,
            labels: labels.into_iter().map(std::sync::Arc::from).collect(),
            features: Vec::new(),
            shape: Vec::new(),
            scores: Vec::new(),
        })
    }

    /// Copies `scores` and `features` of a run's outputs into the stage's buffers.
    fn take(
        outputs: &ort::session::SessionOutputs<'_>,
        scores: &mut Vec<f32>,
        features: &mut Vec<f32>,
        shape: &mut Vec<usize>,
    ) -> Result<(), String> {
        let (_, s) = outputs["scores"]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("output `scores`: {e}"))?;
        scores.clear();
        scores.extend_from_slice(s);
        if let Some(f) = outputs.get("features") {
            let (dims, data) = f
                .try_extract_tensor::<f32>()
                .map_err(|e| format!("output `features`: {e}"))?;
            shape.clear();
            shape.extend(dims.iter().map(|d| *d as usize));
            features.clear();
            features.extend_from_slice(data);
        }
        Ok(())
    }

    fn best(&self) -> (u32, f32) {
        self.scores
            .iter()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |b, (i, s)| if *s > b.1 { (i as u32, *s) } else { b },
            )
    }

    fn decide(&self, exit: u32) -> Classification {
        let (class_id, score) = self.best();
        let class = self
            .labels
            .get(class_id as usize)
            .cloned()
            .unwrap_or_else(|| std::sync::Arc::from(class_id.to_string()));
        Classification {
            class_id,
            class,
            score,
            exit,
        }
    }
}

impl Stage for CascadeStage {
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        self.first
            .preprocess(frame)
            .map_err(StageError::from)?;
        {
            let outputs = self.first.run().map_err(StageError::from)?;
            Self::take(
                &outputs,
                &mut self.scores,
                &mut self.features,
                &mut self.shape,
            )
            .map_err(StageError::msg)?;
        }
        let mut threshold = self.first_threshold;
        let mut exit = 1;
        for k in 0..self.rest.len() {
            if self.best().1 >= threshold {
                break;
            }
            let now = crate::clock::monotonic_ns();
            if let Some(deadline) = frame.meta.deadline_ns
                && now + self.rest[k].recent.p95().unwrap_or(0) > deadline
            {
                // The deadline allows no further exit: keep this one's answer.
                break;
            }
            let e = &mut self.rest[k];
            {
                let input = TensorRef::from_array_view((self.shape.as_slice(), &*self.features))
                    .map_err(|x| StageError::msg(format!("exit {}: {x}", k + 2)))?;
                let outputs = e
                    .session
                    .run(ort::inputs![e.input.as_str() => input])
                    .map_err(|x| StageError::msg(format!("exit {}: {x}", k + 2)))?;
                Self::take(
                    &outputs,
                    &mut self.scores,
                    &mut self.features,
                    &mut self.shape,
                )
                .map_err(StageError::msg)?;
            }
            e.recent.record(crate::clock::monotonic_ns() - now);
            threshold = e.threshold;
            exit = k as u32 + 2;
        }
        record.classification = Some(self.decide(exit));
        Ok(())
    }
}
