//! The pipeline file as written by the user (TOML, `version = 1`).
//!
//! These types mirror the file one to one: unknown fields are rejected and the
//! fields that later validation can complain about keep their byte span, so
//! every error can name its line. [`super::plan`] turns them into a validated
//! [`super::Plan`].

use serde::Deserialize;
use serde_spanned::Spanned;

/// The whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Format version; only `1` exists.
    pub version: Spanned<u32>,
    /// A human name shown in summaries.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Per-frame time budget from capture to output, milliseconds (default:
    /// one frame period). Applies to live and paced (`realtime`) sources.
    pub budget_ms: Option<Spanned<f64>>,
    /// Sources, in order (`[[source]]`); read in the second pass, like stages.
    #[serde(rename = "source", default)]
    pub sources: Vec<serde::de::IgnoredAny>,
    /// Stereo pairs made of sources (`[[stereo]]`).
    #[serde(rename = "stereo", default)]
    pub stereo: Vec<StereoSpec>,
    /// Stages, in processing order (`[[stage]]`). Each kind reads its own
    /// fields ([`StageSpec`] has the common ones), so the stage tables are
    /// read in a second pass that keeps their spans.
    #[serde(rename = "stage", default)]
    pub stages: Vec<serde::de::IgnoredAny>,
    /// Sinks (`[[sink]]`); every frame record goes to each of them. Each
    /// kind reads its own options ([`SinkSpec`] has the common fields), so
    /// the sink tables are read in a second pass, like stages.
    #[serde(rename = "sink", default)]
    pub sinks: Vec<serde::de::IgnoredAny>,
}

/// How a source hands frames over when downstream is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Every decoded frame is delivered; the decoder waits (recordings).
    Lossless,
    /// Only the newest frame is kept (cameras, paced recordings).
    Latest,
}

/// The fields every `[[source]]` table has; the rest belong to its kind
/// (each kind's settings type under `sources/`, unknown fields rejected).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Unique id.
    pub id: Spanned<String>,
    /// The source kind (see [`crate::registry::SOURCES`]).
    pub kind: Spanned<String>,
    /// Frame count at which the source ends (any kind).
    pub max_frames: Option<Spanned<u64>>,
    /// Output width in pixels; the source scales when set.
    pub width: Option<Spanned<u32>>,
    /// Output height in pixels.
    pub height: Option<Spanned<u32>>,
    /// `lossless` or `latest`; default: lossless for recordings, latest for live.
    pub delivery: Option<Spanned<Delivery>>,
    /// Pixel format frames are delivered in (GStreamer name): RGB, BGR, RGBA, BGRA, GRAY8, I420, NV12.
    pub format: Option<Spanned<String>>,
}

/// The keys of [`SourceSpec`]: every other key of a source table is its kind's.
pub const SOURCE_COMMON_FIELDS: [&str; 7] = [
    "id",
    "kind",
    "max_frames",
    "width",
    "height",
    "delivery",
    "format",
];

/// The fields every `[[stage]]` table has; the rest belong to its kind
/// (each kind's settings type under `stages/`, unknown fields rejected).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Unique id.
    pub id: Spanned<String>,
    /// The stage kind (see [`crate::registry::STAGES`]).
    pub kind: Spanned<String>,
    /// Source ids whose frames this stage works on; others pass through. Default: all.
    pub streams: Option<Spanned<Vec<String>>>,
    /// The stage's input edge.
    pub queue: Option<QueueSpec>,
    /// Skip a frame when this stage's recent p95 latency would end past the
    /// frame's deadline (default: true for model stages, false for `track` and `image_stats`).
    pub admission: Option<Spanned<bool>>,
    /// Work on every Nth frame of a stream, or `"auto"` (N from the stage's
    /// latency and the frame period). Default 1.
    pub interval: Option<Spanned<IntervalSpec>>,
    /// With `interval = N`: work on frames K, K + N, K + 2N, ... of those of
    /// a stream that reach the stage (counted from 0) instead of 0, N, 2N,
    /// ...; 0 <= K < N. Staggers stages that share the CPU, e.g. two
    /// `interval = 2` stages on alternate frames (while no frame is dropped
    /// between them). Default 0.
    pub interval_offset: Option<Spanned<u32>>,
    /// Run beside the stream instead of in it (kinds that allow it: `detect`):
    /// frames pass while a detection runs on an earlier one, whose result reaches the tracker late.
    #[serde(rename = "async")]
    pub asynchronous: Option<Spanned<bool>>,
    /// `"inline"` (default), `"async"` (the same as `async = true`) or
    /// `"auto"`: in line while the stage's recent p95 latency fits the frame
    /// period, beside the stream when it does not.
    pub schedule: Option<Spanned<String>>,
    /// Beside the stream, with a deadline (`budget_ms`): how long a frame
    /// may wait for the helper's result, due soon, so that it rides on this
    /// frame. `"next_frame"` (default): until the next frame arrives;
    /// `"deadline"`: until the frame's deadline (fresher results, later
    /// outputs; `docs/realtime.md`).
    pub wait_for_result: Option<Spanned<super::types::ResultWait>>,
    /// Load tests: spend this many more milliseconds on every frame the stage works on.
    pub simulate_ms: Option<Spanned<f64>>,
}

/// The keys of [`StageSpec`]: every other key of a stage table is its kind's.
pub const STAGE_COMMON_FIELDS: [&str; 11] = [
    "id",
    "kind",
    "streams",
    "queue",
    "admission",
    "interval",
    "interval_offset",
    "async",
    "schedule",
    "wait_for_result",
    "simulate_ms",
];

/// A stage's `interval`: a number or `"auto"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IntervalSpec {
    /// Every Nth frame.
    Every(u32),
    /// A named interval: only `"auto"`.
    Named(String),
}

/// One `[[stereo]]` table: two sources paired by time, or one side-by-side source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StereoSpec {
    /// The paired stream's id (what stages list in `streams`).
    pub id: Spanned<String>,
    /// Source id of the left camera.
    pub left: Option<Spanned<String>>,
    /// Source id of the right camera.
    pub right: Option<Spanned<String>>,
    /// Source id of a side-by-side stream (left half, right half).
    pub side_by_side: Option<Spanned<String>>,
    /// Largest |right time − left time| of a pair, milliseconds (default 10).
    pub max_skew_ms: Option<Spanned<f64>>,
    /// Live sources: how long a frame waits for its partner, milliseconds (default 100).
    pub max_wait_ms: Option<Spanned<f64>>,
}

/// The fields every `[[sink]]` table has; the rest are its kind's options
/// ([`crate::sink::SinkKind::options`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// The sink kind (see [`crate::registry::SINKS`]).
    pub kind: Spanned<String>,
    /// Output path (`-` for standard output).
    pub path: Option<Spanned<String>>,
    /// The sink's input edge.
    pub queue: Option<QueueSpec>,
}

/// The keys of [`SinkSpec`]: every other key of a sink table is its kind's.
pub const SINK_COMMON_FIELDS: [&str; 3] = ["kind", "path", "queue"];

/// A bounded edge into a stage or sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// Items the queue holds (at least 1).
    pub capacity: Option<Spanned<usize>>,
    /// `block` or `drop_oldest`.
    pub policy: Option<Spanned<EdgePolicy>>,
}

pub use crate::edge::EdgePolicy;

/// The names the pipeline file uses for each enum value.
macro_rules! file_names {
    ($($ty:ident { $($variant:ident => $name:literal),+ $(,)? })+) => {$(
        impl $ty {
            /// The value's name in a pipeline file.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

file_names! {
    Delivery { Lossless => "lossless", Latest => "latest" }
}
