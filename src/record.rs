//! The record that travels with each frame, and the per-stage result types.
//!
//! Each stage writes its part; the record is written once, by the sinks,
//! after the last stage (its JSON form is [`crate::schema`]). This is
//! vocabulary: it imports no stage, sink or source, so any of them can use it.

use std::sync::Arc;

use serde::Serialize;

use crate::frame::Frame;
use crate::pool::Pooled;

/// Per-channel statistics of a frame (the `image_stats` stage).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImageStats {
    /// Channels counted, in the frame's channel order (e.g. R, G, B).
    pub channels: u8,
    /// Mean per channel (the first `channels` entries are used).
    pub mean: [f64; 4],
    /// Minimum per channel.
    pub min: [u8; 4],
    /// Maximum per channel.
    pub max: [u8; 4],
}

/// One detected object, in source pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in source pixels.
    pub bbox: [f32; 4],
    /// The model's class index.
    pub class_id: u32,
    /// The class name.
    pub class: Arc<str>,
    /// Confidence (an SVM margin for HOG).
    pub score: f32,
    /// Where it is in 3D, once a depth stage has run.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

/// Where a depth value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DepthSource {
    /// Rectified stereo and SGBM disparity.
    Stereo,
    /// A monocular depth model (metric after fitting to stereo or a set scale).
    Mono,
}

/// An object's 3D position in the left rectified camera frame (x right,
/// y down, z forward), metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Position {
    /// `[x, y, z]`, metres.
    pub position_m: [f32; 3],
    /// Which depth it came from.
    pub depth_source: DepthSource,
}

/// A depth map in metres (0 = invalid), row-major, `width × height`, in the
/// left rectified view (stereo) or the depth model's output grid (mono).
#[derive(Debug, Clone, Default)]
pub struct DepthMap {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `width × height` depths, metres.
    pub metres: Pooled<f32>,
    /// Stereo or mono.
    pub source: Option<DepthSource>,
    /// The pinhole camera the map is in (stereo maps); shared by every frame.
    pub camera: Option<Arc<DepthCamera>>,
}

/// The camera a depth map is in: pixel (u, v) with depth z (metres, along
/// the optical axis) is the point z · K⁻¹ (u, v, 1) of this camera. For
/// `stereo_depth` this is the left *rectified* view (OpenCV `stereoRectify`
/// with alpha 0, or `fisheye::stereoRectify` with balance 0): its matrix is
/// the left 3x3 of `P1`, not the calibration's left matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepthCamera {
    /// Which view: `rectified_left` (OpenCV's `P1`) or `left` (the original left camera).
    pub view: &'static str,
    /// Camera matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], pixels.
    pub k: [[f64; 3]; 3],
    /// Baseline of the rectified pair, metres (`|P2[0, 3] / P2[0, 0]|`).
    pub baseline_m: f64,
    /// Map columns, pixels.
    pub width: u32,
    /// Map rows, pixels.
    pub height: u32,
}

/// Detections of an earlier frame (see [`Record::late`]).
#[derive(Debug, Clone)]
pub struct LateDetections {
    /// The time of the frame they were computed on in seconds (PTS, else capture time).
    pub t_s: f64,
    /// The detections.
    pub detections: Detections,
}

/// The map from a monocular model's relative output `r` to metric depth:
/// `z = 1 / (scale · r + shift)` for inverse-depth models, else `scale · r + shift`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MonoFit {
    /// Multiplier.
    pub scale: f32,
    /// Offset.
    pub shift: f32,
    /// Stereo pixels the fit used; 0 for a fixed scale from the pipeline file.
    pub samples: u32,
}

/// How a stereo pair was put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairClock {
    /// Media timestamps (recordings).
    Pts,
    /// The GStreamer pipeline clock's capture times (live sources).
    Pipeline,
    /// The senders' NTP times (RTSP/RTP with RTCP sender reports).
    Ntp,
}

/// A stereo pair's bookkeeping, written with its record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairInfo {
    /// The left frame's per-source sequence number.
    pub left_seq: u64,
    /// The right frame's per-source sequence number.
    pub right_seq: u64,
    /// Right time minus left time, ns.
    pub skew_ns: i64,
    /// The clock the pair was matched on.
    pub clock: PairClock,
}

/// A frame's detections.
pub type Detections = Pooled<Detection>;

/// A track's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackState {
    /// Not yet confirmed.
    Tentative,
    /// Matched long and often enough.
    Confirmed,
    /// Not matched recently; kept for a while.
    Lost,
}

/// A track as written with a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackOut {
    /// Run-wide id, from 1, never reused.
    pub id: u64,
    /// `[x1, y1, x2, y2]` in source pixels.
    pub bbox: [f32; 4],
    /// Class index of its detections.
    pub class_id: u32,
    /// Class name.
    pub class: Arc<str>,
    /// Score of the last matched detection.
    pub score: f32,
    /// Box centre velocity, pixels per second: the Kalman filter's, zero
    /// until the track has been measured three times; with `motion = "flow"`,
    /// the pixels' shift over the last three frames (the filter's until then).
    pub velocity_px_s: [f32; 2],
    /// Seconds since the track started.
    pub age_s: f32,
    /// Its life stage.
    pub state: TrackState,
    /// The box is the filter's prediction: no detection matched it on this frame.
    pub predicted: bool,
    /// Where it is in 3D, once a depth stage has run.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// Where the track is forecast to be a little after the frame (the
    /// tracker's `forecast_s`); `None` when the tracker does not forecast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
}

/// A track's box forecast `after_ns` past its frame's capture instant, by
/// constant velocity (`velocity_px_s`): where a consumer reading the record
/// later should look (streaming perception, Li et al. 2020, forecasts the
/// same way).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    /// Horizon past the frame's capture instant (`capture_wall_ns`), ns.
    pub after_ns: u64,
    /// `[x1, y1, x2, y2]` in source pixels, clipped to the image; `None` when
    /// less than half of it would be inside (the object is forecast to have
    /// left the view).
    pub bbox: Option<[f32; 4]>,
}

/// A frame's tracks.
pub type Tracks = Pooled<TrackOut>;

/// Appearance embeddings of a frame's detections, in detection order, L2-normalised.
#[derive(Debug, Clone, Default)]
pub struct Embeddings {
    /// `detections × dim` values.
    pub values: Pooled<f32>,
    /// Values per embedding.
    pub dim: usize,
}

/// What a classifier (the `cascade` stage) decided for a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// Class index.
    pub class_id: u32,
    /// Class name.
    pub class: Arc<str>,
    /// Its score.
    pub score: f32,
    /// The exit the answer came from, from 1.
    pub exit: u32,
}

/// Why a stage did not work on a frame. The runtime decides; the record
/// says so (`skipped: [{stage, reason}]`) and the summary counts each reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The stage's recent p95 latency would end past the frame's deadline.
    Deadline,
    /// Not this stage's turn (`interval`).
    Interval,
    /// An asynchronous stage was busy with an earlier frame.
    Busy,
    /// An asynchronous stage took this frame; its result rides on a later one.
    Async,
    /// An asynchronous stage's helper was free, but this frame came to it so
    /// late (after waiting for a result, or queued behind a frame that did)
    /// that the next frame, started on when it arrives, gives a result that
    /// rides sooner after its own frame.
    Fresher,
}

impl SkipReason {
    /// The reason's name in records and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Deadline => "deadline",
            SkipReason::Interval => "interval",
            SkipReason::Busy => "busy",
            SkipReason::Async => "async",
            SkipReason::Fresher => "fresher",
        }
    }
}

/// A stage that did not produce its result for a frame, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    /// The stage id.
    pub stage: Arc<str>,
    /// Why.
    pub reason: SkipReason,
}

/// A stage's failure on one frame: the frame still goes out, marked failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The stage id.
    pub stage: Arc<str>,
    /// What went wrong.
    pub error: String,
}

/// The results that travel with a frame; each stage fills its part.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// From an `image_stats` stage.
    pub image_stats: Option<ImageStats>,
    /// From a `detect` stage.
    pub detections: Option<Detections>,
    /// From a `reid` stage: one embedding per detection.
    pub embeddings: Option<Embeddings>,
    /// From a `track` stage.
    pub tracks: Option<Tracks>,
    /// From the stereo pairing.
    pub pair: Option<PairInfo>,
    /// From a `stereo_depth` or `depth` stage.
    pub depth: Option<DepthMap>,
    /// From a `depth` stage: how its relative output became metric.
    pub mono_fit: Option<MonoFit>,
    /// From a classifier (`cascade` stage).
    pub classification: Option<Classification>,
    /// Detections an asynchronous `detect` stage finished for an earlier frame
    /// of this stream, delivered with the first frame after they were ready.
    pub late: Option<LateDetections>,
    /// Inline up to four entries: skipping a frame allocates nothing.
    pub skipped: smallvec::SmallVec<[Skip; 4]>,
    /// Stages that failed on this frame.
    pub failed: Vec<Failure>,
    /// The calibration of the frame's image (its left view for a stereo
    /// pair), when a stage loaded one; shared by every frame of the stream.
    /// The first stage that knows it sets it (`stereo_depth`, `depth`).
    pub camera: Option<Arc<CameraInfo>>,
}

/// A camera's calibration in the form of ROS `sensor_msgs/CameraInfo` and
/// `foxglove.CameraCalibration`: the image as it arrives (distorted) is
/// described by `k` and `d`; `r` rotates the camera frame into the
/// rectified frame and `p` projects that rectified frame (for one camera:
/// `r` identity, `p = [k | 0]`). Matrices are row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    /// Image columns, pixels.
    pub width: u32,
    /// Image rows, pixels.
    pub height: u32,
    /// `plumb_bob` (k1, k2, p1, p2, k3), `rational_polynomial` (k1, k2, p1,
    /// p2, k3, k4, k5, k6) or `kannala_brandt` (fisheye k1..k4), as ROS and
    /// Foxglove name them.
    pub distortion_model: &'static str,
    /// Distortion coefficients in `distortion_model`'s order.
    pub d: Vec<f64>,
    /// Camera matrix `[fx, 0, cx, 0, fy, cy, 0, 0, 1]`, pixels.
    pub k: [f64; 9],
    /// Rectifying rotation (OpenCV `stereoRectify`'s `R1`).
    pub r: [f64; 9],
    /// Projection of the rectified frame, 3x4 (`P1`), pixels.
    pub p: [f64; 12],
}

/// The unit that moves along the edges: a frame and its growing record.
#[derive(Debug)]
pub struct Work {
    /// The frame.
    pub frame: Frame,
    /// Its results so far.
    pub record: Record,
}

impl Record {
    /// Takes what an asynchronous stage computed on an earlier frame (at
    /// `t_s`) into this frame's record, as [`Record::late`]. The stage's
    /// other results stay with the earlier frame's helper record.
    pub fn receive_late(&mut self, earlier: &mut Record, t_s: f64) {
        if let Some(detections) = earlier.detections.take() {
            self.late = Some(LateDetections { t_s, detections });
        }
    }
}
