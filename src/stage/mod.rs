//! Stages: the per-frame work between sources and sinks.
//!
//! Lifecycle: built from a [`StagePlan`] (plain settings), `start` once on
//! the stage's own thread (sessions, buffers), `process` per frame (no
//! allocation in steady state), `stop` at end of stream. A stage writes its
//! result into the frame's [`Record`]; a failure on one frame is recorded on
//! that frame, which still goes out.

mod delay;
mod image_stats;

pub use delay::Delay;
pub use image_stats::{ImageStatsStage, image_stats_from_frame};

use crate::config::{StageKind, StagePlan};
use crate::frame::{Frame, Record};

/// A stage's error on start, on one frame, or on stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StageError(pub String);

/// One step of per-frame work.
pub trait Stage: Send {
    /// Creates per-run state. Runs on the stage's thread before the first frame.
    fn start(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    /// Works on one frame and writes the result into `record`.
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError>;

    /// Releases per-run state after the last frame.
    fn stop(&mut self) -> Result<(), StageError> {
        Ok(())
    }
}

/// Builds the stage a plan describes.
pub fn build(plan: &StagePlan) -> Box<dyn Stage> {
    match plan.kind {
        StageKind::ImageStats => Box::new(ImageStatsStage),
        StageKind::Delay => Box::new(Delay::new(plan.delay)),
    }
}
