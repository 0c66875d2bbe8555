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

use crate::config::{StagePlan, StageSettings};
use crate::detect::{DetectStage, DetectorInfo};
use crate::frame::{Frame, Record};
use crate::model::ModelError;

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

    /// After an error from `process`: true when the stage cannot work on any
    /// later frame either (wrong calibration for the stream), so the run stops.
    fn fatal(&self) -> bool {
        false
    }

    /// Releases per-run state after the last frame.
    fn stop(&mut self) -> Result<(), StageError> {
        Ok(())
    }
}

/// A stage ready to run, with what it reports about itself.
pub struct Built {
    pub stage: Box<dyn Stage>,
    /// A loaded detector's description and load / warm-up times.
    pub detector: Option<DetectorInfo>,
}

/// Builds the stage a plan describes. Models load (and warm up) here, before
/// any frame flows, so a bad model fails the run at start.
pub fn build(plan: &StagePlan) -> Result<Built, ModelError> {
    Ok(match &plan.settings {
        StageSettings::ImageStats => Built {
            stage: Box::new(ImageStatsStage),
            detector: None,
        },
        StageSettings::Delay(delay) => Built {
            stage: Box::new(Delay::new(*delay)),
            detector: None,
        },
        StageSettings::Detect(settings) => {
            let stage = DetectStage::new(settings)?;
            let info = stage.info();
            Built {
                stage: Box::new(stage),
                detector: Some(info),
            }
        }
        StageSettings::Reid(settings, reuse) => Built {
            stage: Box::new(crate::reid::ReidStage::with_reuse(settings, *reuse)?),
            detector: None,
        },
        StageSettings::Track(settings) => Built {
            stage: Box::new(crate::track::TrackStage::new(*settings)),
            detector: None,
        },
        StageSettings::Cascade(settings) => Built {
            stage: Box::new(crate::cascade::CascadeStage::new(settings)?),
            detector: None,
        },
        StageSettings::Depth(settings) => Built {
            stage: Box::new(crate::depth::MonoDepthStage::new(settings)?),
            detector: None,
        },
        StageSettings::StereoDepth(settings) => Built {
            stage: Box::new(
                crate::stereo::depth::StereoDepthStage::new(settings).map_err(|message| {
                    ModelError::Run {
                        path: settings.calibration_path.clone(),
                        message,
                    }
                })?,
            ),
            detector: None,
        },
    })
}
