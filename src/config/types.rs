//! The resolved plan: what a validated pipeline file describes, ready to
//! build and run. Plain data; [`super::plan`] produces it, the registry and
//! the runtime consume it.

use std::path::PathBuf;
use std::time::Duration;

use gstreamer_video as gst_video;

pub use crate::edge::{EdgePlan, EdgePolicy};
use std::sync::Arc;

use super::file::Delivery;
use crate::sink::{OutputPath, SinkKind};
use crate::source::SourceInput;
use crate::stage::StageSettings;

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub name: String,
    pub sources: Vec<SourcePlan>,
    pub stereo: Vec<StereoPlan>,
    pub stages: Vec<StagePlan>,
    pub sinks: Vec<SinkPlan>,
}

/// A resolved source.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub id: String,
    /// Its kind's name (see [`crate::registry::SOURCES`]).
    pub kind: &'static str,
    /// What it reads (the kind's resolved input).
    pub input: Arc<dyn SourceInput>,
    pub format: gst_video::VideoFormat,
    /// Scale to this size when set.
    pub size: Option<(u32, u32)>,
    pub max_frames: Option<u64>,
    /// Produces frames in real time whether or not anyone reads them.
    pub live: bool,
    /// A recording paced at its native rate.
    pub realtime: bool,
    pub delivery: Delivery,
    /// Capture-to-output budget per frame; `None`: one frame period.
    pub budget: Option<Duration>,
}

/// Where a stereo pair's views come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StereoInput {
    /// Two sources, paired by time.
    Pair { left: String, right: String },
    /// One source whose frames hold both views side by side.
    SideBySide(String),
}

/// A resolved `[[stereo]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoPlan {
    pub id: String,
    pub input: StereoInput,
    pub settings: crate::stereo::PairSettings,
}

impl StereoPlan {
    /// The source ids this pair consumes.
    pub fn consumes(&self, source: &str) -> bool {
        match &self.input {
            StereoInput::Pair { left, right } => left == source || right == source,
            StereoInput::SideBySide(s) => s == source,
        }
    }
}

/// A resolved stage.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub id: String,
    /// Its kind's name (see [`crate::registry::STAGES`]).
    pub kind: &'static str,
    /// Streams the stage works on; `None` = all.
    pub streams: Option<Vec<String>>,
    pub input: EdgePlan,
    /// Its kind's resolved settings.
    pub settings: Arc<dyn StageSettings>,
    /// Skip frames this stage cannot finish before their deadline.
    pub admission: bool,
    pub interval: Interval,
    /// Extra time spent on each frame worked on (load tests).
    pub simulate: Option<Duration>,
    /// Runs beside the stream (`detect` only): see [`crate::runtime`].
    pub asynchronous: bool,
}

/// How often a stage works on a stream's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Every Nth frame (1 = all).
    Every(u32),
    /// N = ceil(recent p95 latency / frame period), at least 1.
    Auto,
}

/// A resolved sink.
#[derive(Debug, Clone)]
pub struct SinkPlan {
    /// Its kind, from the registry.
    pub kind: &'static SinkKind,
    /// Where it writes.
    pub output: OutputPath,
    pub input: EdgePlan,
}

impl SourcePlan {
    /// A short human description of the input.
    pub fn describe(&self) -> String {
        self.input.describe()
    }
}
