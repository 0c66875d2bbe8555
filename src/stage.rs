//! The `Stage` trait: the per-frame work between sources and sinks.
//!
//! Lifecycle: built from plain settings (each kind's folder under
//! [`crate::stages`]), `start` once on the stage's own thread (sessions,
//! buffers), `process` per frame (no allocation in steady state), `stop` at
//! end of stream. A stage writes its result into the frame's [`Record`]; a
//! failure on one frame is recorded on that frame, which still goes out.
//! This is the floor every stage stands on: it names no stage kind.

use std::sync::Arc;
use std::time::Duration;

use crate::frame::Frame;
use crate::model::ModelError;
use crate::record::{CameraInfo, Record, Work};

/// A stage's error on start, on one frame, or on stop.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The model engine failed (preprocessing, inference, output contract).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// OpenCV failed.
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
    /// The frame cannot be used by this stage (format, layout, size).
    #[error("{0}")]
    Input(String),
    /// Anything else, described.
    #[error("{0}")]
    Failed(String),
}

impl StageError {
    /// A described failure.
    pub fn msg(message: impl Into<String>) -> StageError {
        StageError::Failed(message.into())
    }
}

/// One step of per-frame work.
pub trait Stage: Send {
    /// Creates per-run state. Runs on the stage's thread before the first frame.
    fn start(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    /// Works on one frame and writes the result into `record`.
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError>;

    /// Works on several frames at once (a batch the runtime collected under
    /// the stage's [`BatchPolicy`], in arrival order, at most `max` of them):
    /// writes each frame's result into its own record and its outcome into
    /// `results[i]` (`results.len() == batch.len()`; a failure of the whole
    /// batch is written to each). Each frame's result must equal what
    /// [`Stage::process`] gives it alone. The default calls `process` on each.
    fn process_batch(&mut self, batch: &mut [Work], results: &mut [Result<(), StageError>]) {
        for (work, result) in batch.iter_mut().zip(results.iter_mut()) {
            *result = self.process(&work.frame, &mut work.record);
        }
    }

    /// After an error from `process`: true when the stage cannot work on any
    /// later frame either (wrong calibration for the stream), so the run stops.
    fn fatal(&self) -> bool {
        false
    }

    /// The stream `stream` has ended (its source finished or was removed
    /// while running) and its last frame has passed this stage: drop what
    /// the stage keeps for it (a tracker, a cache). Called at most once per
    /// ended stream; a stream added again later with the same id starts
    /// afresh, except that what must stay unique (track ids) goes on.
    fn end_stream(&mut self, _stream: &str) {}

    /// Releases per-run state after the last frame.
    fn stop(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    /// The calibration of the images this stage works on, when it loaded
    /// one: the runtime puts it in [`Record::camera`] of every frame the
    /// stage sees (processed or skipped) that has none yet. Asked once,
    /// before the first frame.
    fn camera(&self) -> Option<Arc<CameraInfo>> {
        None
    }
}

/// Batching across frames and streams (`batch = { max = N, timeout_ms = T }`
/// of a `detect` stage): the runtime hands the stage up to `max` frames at a
/// time ([`Stage::process_batch`]). A batch closes when it is full, when
/// `timeout` has passed since its first frame arrived, or when waiting longer
/// would make its earliest frame miss its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Frames per batch, at least 1.
    pub max: usize,
    /// Longest wait for a batch to fill, from its first frame's arrival.
    pub timeout: Duration,
}

/// What a built stage reports about itself for `percept check` and the log
/// (a loaded model's description and load / warm-up times).
#[derive(Debug, Clone)]
pub struct StageInfo {
    /// One line: what runs.
    pub description: String,
    /// Model load time, ms.
    pub load_ms: f64,
    /// Warm-up run time, ms.
    pub warmup_ms: f64,
}

/// A stage ready to run, with what it reports about itself.
pub struct Built {
    /// The stage.
    pub stage: Box<dyn Stage>,
    /// A loaded model's description and load / warm-up times.
    pub info: Option<StageInfo>,
}

/// A stage kind's resolved settings: plain data (from the pipeline file,
/// validated) that builds the stage. Each kind's folder under `stages/`
/// implements it; the plan holds it without knowing the kind.
pub trait StageSettings: std::fmt::Debug + Send + Sync {
    /// Builds the stage. Models load (and warm up) here, before any frame
    /// flows, so a bad model fails the run at start.
    fn build(&self) -> Result<Built, ModelError>;

    /// A short description of the settings for `percept check` (empty: nothing to add).
    fn describe(&self) -> String {
        String::new()
    }

    /// How the runtime batches frames for this stage; `None` (the default):
    /// one frame at a time.
    fn batch(&self) -> Option<BatchPolicy> {
        None
    }

    /// How many copies of the stage work on frames at the same time
    /// (`instances` of a `detect` stage), each built by [`StageSettings::build`]
    /// and run on its own thread; frames still leave in order. Only for a
    /// stage whose result for a frame does not depend on other frames.
    /// Default 1.
    fn instances(&self) -> usize {
        1
    }
}
