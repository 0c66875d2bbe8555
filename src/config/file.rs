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
    /// Sources, in order (`[[source]]`).
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceSpec>,
    /// Stereo pairs made of sources (`[[stereo]]`).
    #[serde(rename = "stereo", default)]
    pub stereo: Vec<StereoSpec>,
    /// Stages, in processing order (`[[stage]]`).
    #[serde(rename = "stage", default)]
    pub stages: Vec<StageSpec>,
    /// Sinks (`[[sink]]`); every frame record goes to each of them.
    #[serde(rename = "sink", default)]
    pub sinks: Vec<SinkSpec>,
}

/// Where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A recording on disk, any container/codec GStreamer decodes.
    File,
    /// A URI: `rtsp://`, `http(s)://`, `file://`.
    Uri,
    /// A V4L2 camera device.
    V4l2,
    /// GStreamer's `videotestsrc`.
    Test,
    /// A raw `gst-launch-1.0` fragment that ends in raw video.
    Gst,
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

/// One `[[source]]` table. Which optional fields apply depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub id: Spanned<String>,
    pub kind: Spanned<SourceKind>,
    /// File path (`file`), URI (`uri`) or device (`v4l2`). `${VAR}` and `~` expand.
    pub location: Option<Spanned<String>>,
    /// `videotestsrc` pattern name (`test`).
    pub pattern: Option<Spanned<String>>,
    /// A `gst-launch-1.0` fragment producing raw video (`gst`).
    pub launch: Option<Spanned<String>>,
    /// Frame count at which the source ends (any kind).
    pub max_frames: Option<Spanned<u64>>,
    /// Output width/height in pixels; the source scales when set.
    pub width: Option<Spanned<u32>>,
    pub height: Option<Spanned<u32>>,
    /// Frames per second of a `test` source.
    pub framerate: Option<Spanned<u32>>,
    /// Make a `test` source behave like a live camera.
    pub live: Option<Spanned<bool>>,
    /// Pace a recording at its native frame rate, like a camera.
    pub realtime: Option<Spanned<bool>>,
    /// `lossless` or `latest`; default: lossless for recordings, latest for live.
    pub delivery: Option<Spanned<Delivery>>,
    /// Pixel format frames are delivered in (GStreamer name): RGB, BGR, RGBA, BGRA, GRAY8, I420, NV12.
    pub format: Option<Spanned<String>>,
}

/// One `[[stage]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub id: Spanned<String>,
    pub kind: Spanned<StageKind>,
    /// Source ids whose frames this stage works on; others pass through. Default: all.
    pub streams: Option<Spanned<Vec<String>>>,
    /// The stage's input edge.
    pub queue: Option<QueueSpec>,
    /// `delay`: milliseconds the stage spends on each frame.
    pub delay_ms: Option<Spanned<f64>>,
    /// `detect`: `onnx` (default) or `hog_people`.
    pub backend: Option<Spanned<DetectBackend>>,
    /// `detect` with ONNX: the output layout (default `yolov8`).
    pub layout: Option<Spanned<crate::detect::decode::Layout>>,
    /// `detect` with ONNX: output tensor names the layout reads, in order.
    pub outputs: Option<Spanned<Vec<String>>>,
    /// `detect`: minimum score (default 0.25 for ONNX, 0 for HOG's SVM margin).
    pub confidence: Option<Spanned<f32>>,
    /// `detect`: NMS IoU threshold (default 0.45).
    pub iou: Option<Spanned<f32>>,
    /// `detect`: at most this many detections per frame (default 100).
    pub max_detections: Option<Spanned<usize>>,
    /// `detect`: keep only these class ids.
    pub classes: Option<Spanned<Vec<u32>>>,
    /// `detect`: class names, one per line (default: the model's metadata, else COCO for 80 classes).
    pub labels: Option<Spanned<String>>,
    /// `detect` with ONNX: the model (`[stage.model]`).
    pub model: Option<Spanned<ModelSpec>>,
    /// `detect` with `hog_people`: search settings (`[stage.hog]`).
    pub hog: Option<Spanned<HogSpec>>,
    /// `track`: tracker parameters (`[stage.tracker]`).
    pub tracker: Option<Spanned<TrackerSpec>>,
    /// `cascade`: the first exit's confidence threshold (the `[stage.model]`).
    pub threshold: Option<Spanned<f32>>,
    /// `cascade`: the later exits, in order (`[[stage.exit]]`).
    pub exit: Option<Spanned<Vec<ExitSpec>>>,
    /// `reid`: when a detection reuses its object's last embedding (`[stage.reuse]`).
    pub reuse: Option<Spanned<ReuseSpec>>,
    /// `stereo_depth`: the calibration file (TOML, see calibration/README.md).
    pub calibration: Option<Spanned<String>>,
    /// `stereo_depth`: StereoSGBM parameters (`[stage.sgbm]`).
    pub sgbm: Option<Spanned<SgbmSpec>>,
    /// `stereo_depth`: depths beyond this are invalid (metres; default: no limit).
    pub max_depth_m: Option<Spanned<f32>>,
    /// `stereo_depth`: each side of a box shrinks by this fraction before its median depth (default 0.25).
    pub box_shrink: Option<Spanned<f32>>,
    /// Skip a frame when this stage's recent p95 latency would end past the
    /// frame's deadline (default: true for model stages, false for `track` and `image_stats`).
    pub admission: Option<Spanned<bool>>,
    /// Work on every Nth frame of a stream, or `"auto"` (N from the stage's
    /// latency and the frame period). Default 1.
    pub interval: Option<Spanned<IntervalSpec>>,
    /// `detect`: run beside the stream instead of in it: frames pass while a
    /// detection runs on an earlier one, whose result reaches the tracker late.
    #[serde(rename = "async")]
    pub asynchronous: Option<Spanned<bool>>,
    /// Load tests: spend this many more milliseconds on every frame the stage works on.
    pub simulate_ms: Option<Spanned<f64>>,
    /// `depth`: the model outputs relative inverse depth (default true).
    pub inverse: Option<Spanned<bool>>,
    /// `depth`: fixed map to metric depth, `scale · r + shift` (inverted for inverse models).
    pub scale: Option<Spanned<f32>>,
    pub shift: Option<Spanned<f32>>,
}

/// `[stage.tracker]`: ByteTrack parameters; times in seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSpec {
    pub high_score: Option<Spanned<f32>>,
    pub low_score: Option<Spanned<f32>>,
    pub new_track_score: Option<Spanned<f32>>,
    pub match_iou: Option<Spanned<f32>>,
    pub low_match_iou: Option<Spanned<f32>>,
    pub max_lost_s: Option<Spanned<f32>>,
    pub confirm_s: Option<Spanned<f32>>,
    pub appearance_weight: Option<Spanned<f32>>,
    pub appearance_gate: Option<Spanned<f32>>,
    pub embedding_ema: Option<Spanned<f32>>,
    pub reacquire_sizes: Option<Spanned<f32>>,
}

/// Which detector a `detect` stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectBackend {
    Onnx,
    HogPeople,
}

/// `[stage.model]`: an ONNX model and how frames are fed to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The `.onnx` file.
    pub path: Spanned<String>,
    /// `cpu` (default), `cuda`, `tensorrt` (need the cargo features of the same names).
    pub provider: Option<Spanned<crate::model::Provider>>,
    /// Intra-op threads (default: ONNX Runtime's choice).
    pub threads: Option<Spanned<usize>>,
    /// Let idle inference threads spin-wait (default false: they would take the other stages' cores).
    pub spin_wait: Option<Spanned<bool>>,
    /// `disable`, `basic`, `extended`, `all` (default).
    pub optimization: Option<Spanned<crate::model::Optimization>>,
    /// `[width, height]`; needed when the model's input size is dynamic.
    pub input_size: Option<Spanned<[u32; 2]>>,
    /// Images per run (`reid`: crops; default 32 for `reid`, 1 otherwise).
    pub max_batch: Option<Spanned<usize>>,
    /// `letterbox` (default) or `stretch`.
    pub resize: Option<Spanned<crate::model::preprocess::Resize>>,
    /// Letterbox padding value, 0..255 (default 114).
    pub pad_value: Option<Spanned<u8>>,
    /// Per channel, after scaling to 0..1 (default [0, 0, 0]).
    pub mean: Option<Spanned<[f32; 3]>>,
    /// Per channel, after the mean (default [1, 1, 1]).
    pub std: Option<Spanned<[f32; 3]>>,
    /// `rgb` (default) or `bgr`.
    pub color: Option<Spanned<crate::model::preprocess::ColorOrder>>,
    /// `nchw` (default) or `nhwc`.
    pub input_layout: Option<Spanned<crate::model::preprocess::TensorLayout>>,
}

/// `[stage.hog]`: HOG people detector search settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HogSpec {
    /// Pyramid step, > 1 (default 1.05).
    pub scale: Option<Spanned<f64>>,
    /// Window stride in pixels, a multiple of 8 (default 8).
    pub win_stride: Option<Spanned<i32>>,
    /// Resize frames by this factor first (default 1).
    pub upscale: Option<Spanned<f64>>,
    /// Minimum neighbouring hits for a grouped box (default 2).
    pub group_threshold: Option<Spanned<f64>>,
}

/// The built-in stage kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Per-channel mean/min/max of the frame's pixels.
    ImageStats,
    /// Sleeps a fixed time per frame: stands in for a slow model.
    Delay,
    /// Object detection (ONNX detector or HOG people).
    Detect,
    /// Multi-object tracking of the detections (ByteTrack + Kalman).
    Track,
    /// Appearance embeddings of the detections (ONNX re-ID model).
    Reid,
    /// Rectification + SGBM disparity → metric depth and 3D positions (stereo pairs).
    StereoDepth,
    /// Monocular depth (ONNX), made metric by a fit to stereo or a fixed scale.
    Depth,
    /// A multi-exit classifier: a chain of ONNX sub-models with early exit.
    Cascade,
}

/// A stage's `interval`: a number or `"auto"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IntervalSpec {
    Every(u32),
    Named(String),
}

/// One `[[stage.exit]]` of a `cascade` stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitSpec {
    pub path: Spanned<String>,
    /// Stop here when the best score reaches this (default 0: the last exit always answers).
    pub threshold: Option<Spanned<f32>>,
    pub threads: Option<Spanned<usize>>,
}

/// `[stage.reuse]` of a `reid` stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReuseSpec {
    pub iou: Option<Spanned<f32>>,
    pub grow: Option<Spanned<f32>>,
    pub refresh_s: Option<Spanned<f32>>,
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

/// `[stage.sgbm]`: OpenCV StereoSGBM parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgbmSpec {
    pub min_disparity: Option<Spanned<i32>>,
    pub num_disparities: Option<Spanned<i32>>,
    pub block_size: Option<Spanned<i32>>,
    pub p1: Option<Spanned<i32>>,
    pub p2: Option<Spanned<i32>>,
    pub disp12_max_diff: Option<Spanned<i32>>,
    pub pre_filter_cap: Option<Spanned<i32>>,
    pub uniqueness_ratio: Option<Spanned<i32>>,
    pub speckle_window_size: Option<Spanned<i32>>,
    pub speckle_range: Option<Spanned<i32>>,
    pub mode: Option<Spanned<crate::stereo::depth::SgbmMode>>,
    pub full_width: Option<Spanned<bool>>,
}

/// One `[[sink]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    pub kind: Spanned<SinkKind>,
    /// Output path (`-` for standard output).
    pub path: Option<Spanned<String>>,
    /// The sink's input edge.
    pub queue: Option<QueueSpec>,
}

/// The built-in sink kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// 16-bit PNG depth maps in millimetres, one file per frame, into the folder `path`.
    DepthPng,
    /// One JSON object per frame and line.
    Jsonl,
}

/// A bounded edge into a stage or sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub capacity: Option<Spanned<usize>>,
    pub policy: Option<Spanned<EdgePolicy>>,
}

/// What a full edge does with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgePolicy {
    /// The sender waits (back-pressure). Default for recordings.
    Block,
    /// The oldest queued item is dropped and counted. Default for live sources.
    DropOldest,
}

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
    SourceKind { File => "file", Uri => "uri", V4l2 => "v4l2", Test => "test", Gst => "gst" }
    Delivery { Lossless => "lossless", Latest => "latest" }
    StageKind { ImageStats => "image_stats", Delay => "delay", Detect => "detect", Track => "track", Reid => "reid", StereoDepth => "stereo_depth", Depth => "depth", Cascade => "cascade" }
    DetectBackend { Onnx => "onnx", HogPeople => "hog_people" }
    SinkKind { Jsonl => "jsonl", DepthPng => "depth_png" }
    EdgePolicy { Block => "block", DropOldest => "drop_oldest" }
}
