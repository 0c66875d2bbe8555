//! The resolved plan: what a validated pipeline file describes, ready to
//! build and run. Plain data; [`super::plan`] produces it, the registry and
//! the runtime consume it.

use std::path::PathBuf;
use std::time::Duration;

use gstreamer_video as gst_video;

pub use crate::edge::{EdgePlan, EdgePolicy};
use std::sync::Arc;

use super::file::Delivery;
use crate::sink::{OutputPath, SinkKind, SinkOptions};
use crate::source::SourceInput;
use crate::stage::StageSettings;

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The pipeline file.
    pub path: PathBuf,
    /// A human name (the file's `name`, else its stem).
    pub name: String,
    /// Sources, in file order.
    pub sources: Vec<SourcePlan>,
    /// Stereo pairs made of sources.
    pub stereo: Vec<StereoPlan>,
    /// Stages, in processing order.
    pub stages: Vec<StagePlan>,
    /// Sinks; every record goes to each.
    pub sinks: Vec<SinkPlan>,
    /// `--realtime` was given: recordings added while running are paced too.
    pub realtime: bool,
    /// The pipeline's per-frame budget (`budget_ms`), for sources added while running.
    pub budget: Option<std::time::Duration>,
}

/// A resolved source.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Unique id; the stream name of its frames.
    pub id: String,
    /// Its kind's name (see [`crate::registry::SOURCES`]).
    pub kind: &'static str,
    /// What it reads (the kind's resolved input).
    pub input: Arc<dyn SourceInput>,
    /// Pixel format frames are delivered in.
    pub format: gst_video::VideoFormat,
    /// Scale to this size when set.
    pub size: Option<(u32, u32)>,
    /// Frame count at which the source ends.
    pub max_frames: Option<u64>,
    /// Produces frames in real time whether or not anyone reads them.
    pub live: bool,
    /// A recording paced at its native rate.
    pub realtime: bool,
    /// Whether every frame is delivered or only the newest.
    pub delivery: Delivery,
    /// Capture-to-output budget per frame; `None`: one frame period.
    pub budget: Option<Duration>,
    /// Rebuild the pipeline when it fails or stops sending (live network
    /// streams and devices only); `None`: a failure ends the source.
    pub reconnect: Option<crate::source::ReconnectPolicy>,
}

/// Where a stereo pair's views come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StereoInput {
    /// Two sources, paired by time.
    Pair {
        /// Source id of the left camera.
        left: String,
        /// Source id of the right camera.
        right: String,
    },
    /// One source whose frames hold both views side by side.
    SideBySide(String),
}

/// A resolved `[[stereo]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoPlan {
    /// Unique id; the stream name of the pairs.
    pub id: String,
    /// Where its two views come from.
    pub input: StereoInput,
    /// Pairing tolerances.
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
    /// Unique id.
    pub id: String,
    /// Its kind's name (see [`crate::registry::STAGES`]).
    pub kind: &'static str,
    /// Streams the stage works on; `None` = all.
    pub streams: Option<Vec<String>>,
    /// Its input edge.
    pub input: EdgePlan,
    /// Its kind's resolved settings.
    pub settings: Arc<dyn StageSettings>,
    /// Skip frames this stage cannot finish before their deadline.
    pub admission: bool,
    /// How often it works on a stream's frames.
    pub interval: Interval,
    /// With `Interval::Every(n)`: the first frame worked on, `0..n`.
    pub interval_offset: u32,
    /// Extra time spent on each frame worked on (load tests).
    pub simulate: Option<Duration>,
    /// In line, beside the stream, or chosen from the measured cost.
    pub schedule: Schedule,
    /// Beside the stream: how long a frame may wait for the helper's result.
    pub wait_for_result: ResultWait,
    /// Frames batched across streams (`batch` of a `detect` stage; only with
    /// `schedule = "inline"`); `None`: one frame at a time.
    pub batch: Option<crate::stage::BatchPolicy>,
    /// Copies of the stage working on frames at once (`instances` of a
    /// `detect` stage; only with `schedule = "inline"`), at least 1.
    pub instances: usize,
}

/// Where a stage works on its frames (`schedule`; `async = true` is `"async"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// On the stage's thread, each frame waiting for its result.
    Inline,
    /// On a helper thread beside the stream, one frame at a time; results
    /// reach a later frame (`detect` only).
    Async,
    /// In line while the recent p95 fits the frame period, else beside the
    /// stream (`detect` only; the rule is in `runtime::worker::Scheduler::decide`).
    Auto,
}

/// How long a frame may wait for an asynchronous stage's result, due soon,
/// so that the result rides on it (`wait_for_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultWait {
    /// Until the next frame arrives, within the frame's deadline: outputs
    /// leave at most about a period late (the default).
    #[default]
    NextFrame,
    /// Until the frame's deadline: results ride on fresher frames, outputs
    /// leave up to the whole budget late.
    Deadline,
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
    /// Its kind's own fields, checked by the kind at plan time.
    pub options: SinkOptions,
    /// Its input edge.
    pub input: EdgePlan,
}

impl SourcePlan {
    /// A short human description of the input.
    pub fn describe(&self) -> String {
        self.input.describe()
    }
}
