//! Frames and the result record that travels with each frame.
//!
//! A [`Frame`] keeps the decoder's `gst::Buffer` (reference counted, never
//! copied) and its video layout. Pixels are read through
//! [`Frame::pixels`], which maps the buffer read-only and honours row
//! strides. The [`Record`] collects each stage's results; the sink writes it
//! once, after the last stage.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer_video as gst_video;
use serde::Serialize;

/// Which clock a frame's `capture_ns` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureClock {
    /// The time the frame entered percept (recordings, or no usable clock).
    Arrival,
    /// The pipeline clock's capture time of a live source (base time + running time).
    Pipeline,
}

/// What is known about a frame besides its pixels.
#[derive(Debug, Clone)]
pub struct FrameMeta {
    /// The source id.
    pub stream: Arc<str>,
    /// Per-stream sequence number of delivered frames, from 0.
    pub seq: u64,
    /// Media time (PTS) in ns, when the stream has one.
    pub pts_ns: Option<u64>,
    /// Frame duration in ns, when known.
    pub duration_ns: Option<u64>,
    /// Monotonic capture time in ns (see [`crate::clock`]).
    pub capture_ns: u64,
    pub capture_clock: CaptureClock,
    /// Wall-clock capture time in ns since the Unix epoch.
    pub capture_wall_ns: u64,
    /// Monotonic time by which the frame's output is due (live and paced
    /// sources: capture + budget); `None` for recordings read as fast as possible.
    pub deadline_ns: Option<u64>,
    /// The sender's NTP time (ns since 1900) when the stream carries one (RTSP
    /// with RTCP sender reports); stereo pairing prefers it.
    pub ntp_ns: Option<u64>,
}

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub meta: FrameMeta,
    pub buffer: gst::Buffer,
    /// Layout of `buffer`: format, size, strides. Shared while caps do not change.
    pub info: Arc<gst_video::VideoInfo>,
    /// The right view of a stereo pair (this frame is the left one).
    pub right: Option<Box<Frame>>,
}

impl Frame {
    pub fn width(&self) -> u32 {
        self.info.width()
    }

    pub fn height(&self) -> u32 {
        self.info.height()
    }

    pub fn format(&self) -> gst_video::VideoFormat {
        self.info.format()
    }

    /// Maps the pixels read-only. Walk rows with `plane_stride()`, never `width * bpp`.
    pub fn pixels(
        &self,
    ) -> Result<gst_video::VideoFrameRef<&gst::BufferRef>, gst::glib::BoolError> {
        gst_video::VideoFrameRef::from_buffer_ref_readable(self.buffer.as_ref(), &self.info)
    }
}

/// Per-channel statistics of a frame (the `image_stats` stage).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImageStats {
    /// Channels counted, in the frame's channel order (e.g. R, G, B).
    pub channels: u8,
    pub mean: [f64; 4],
    pub min: [u8; 4],
    pub max: [u8; 4],
}

/// One detected object, in source pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in source pixels.
    pub bbox: [f32; 4],
    pub class_id: u32,
    pub class: Arc<str>,
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
    pub position_m: [f32; 3],
    pub depth_source: DepthSource,
}

/// A depth map in metres (0 = invalid), row-major, `width × height`, in the
/// left rectified view (stereo) or the depth model's output grid (mono).
#[derive(Debug, Clone, Default)]
pub struct DepthMap {
    pub width: u32,
    pub height: u32,
    pub metres: Pooled<f32>,
    pub source: Option<DepthSource>,
}

/// Detections of an earlier frame (see [`Record::late`]).
#[derive(Debug, Clone)]
pub struct LateDetections {
    /// The time of the frame they were computed on in seconds (PTS, else capture time).
    pub t_s: f64,
    pub detections: Detections,
}

/// The map from a monocular model's relative output `r` to metric depth:
/// `z = 1 / (scale · r + shift)` for inverse-depth models, else `scale · r + shift`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MonoFit {
    pub scale: f32,
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
    pub left_seq: u64,
    pub right_seq: u64,
    /// Right time minus left time, ns.
    pub skew_ns: i64,
    pub clock: PairClock,
}

/// A per-frame result vector borrowed from the producing stage's pool and
/// returned to it when the record is dropped, so steady state allocates nothing.
#[derive(Debug)]
pub struct Pooled<T> {
    items: Vec<T>,
    home: Option<crossbeam_channel::Sender<Vec<T>>>,
}

impl<T> Pooled<T> {
    /// Wraps a vector that goes back to `home` (cleared) when dropped.
    pub fn new(items: Vec<T>, home: crossbeam_channel::Sender<Vec<T>>) -> Pooled<T> {
        Pooled {
            items,
            home: Some(home),
        }
    }

    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }

    pub fn as_mut_vec(&mut self) -> &mut Vec<T> {
        &mut self.items
    }
}

impl<T> Default for Pooled<T> {
    fn default() -> Self {
        Pooled {
            items: Vec::new(),
            home: None,
        }
    }
}

impl<T> std::ops::Deref for Pooled<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T: Clone> Clone for Pooled<T> {
    /// A copy for another sink; it does not return to the pool.
    fn clone(&self) -> Self {
        Pooled {
            items: self.items.clone(),
            home: None,
        }
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            let mut items = std::mem::take(&mut self.items);
            items.clear();
            // A full pool just lets this vector go.
            let _ = home.try_send(items);
        }
    }
}

/// A frame's detections.
pub type Detections = Pooled<Detection>;
/// A frame's tracks.
pub type Tracks = Pooled<crate::track::TrackOut>;

/// Appearance embeddings of a frame's detections, in detection order, L2-normalised.
#[derive(Debug, Clone, Default)]
pub struct Embeddings {
    /// `detections × dim` values.
    pub values: Pooled<f32>,
    pub dim: usize,
}

/// Why a stage did not produce its result for a frame.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub stage: Arc<str>,
    pub reason: &'static str,
}

/// A stage's failure on one frame: the frame still goes out, marked failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub stage: Arc<str>,
    pub error: String,
}

/// The results that travel with a frame; each stage fills its part.
#[derive(Debug, Clone, Default)]
pub struct Record {
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
    /// From a `cascade` stage.
    pub classification: Option<crate::cascade::Classification>,
    /// Detections an asynchronous `detect` stage finished for an earlier frame
    /// of this stream, delivered with the first frame after they were ready.
    pub late: Option<LateDetections>,
    /// Inline up to four entries: skipping a frame allocates nothing.
    pub skipped: smallvec::SmallVec<[Skip; 4]>,
    pub failed: Vec<Failure>,
}

/// The unit that moves along the edges: a frame and its growing record.
#[derive(Debug)]
pub struct Work {
    pub frame: Frame,
    pub record: Record,
}

impl Frame {
    /// A frame over raw bytes laid out as `info` says (tests, benchmarks,
    /// frames from outside GStreamer): PTS 0, no deadline.
    pub fn from_bytes(info: gst_video::VideoInfo, bytes: Vec<u8>, stream: &str, seq: u64) -> Frame {
        Frame {
            meta: FrameMeta {
                stream: Arc::from(stream),
                seq,
                pts_ns: Some(0),
                duration_ns: None,
                capture_ns: 0,
                capture_clock: CaptureClock::Arrival,
                capture_wall_ns: 0,
                deadline_ns: None,
                ntp_ns: None,
            },
            buffer: gst::Buffer::from_slice(bytes),
            info: Arc::new(info),
            right: None,
        }
    }
}

/// A frame over raw bytes laid out as `info` says, for unit tests.
#[cfg(test)]
pub(crate) fn test_frame(info: gst_video::VideoInfo, bytes: Vec<u8>, seq: u64) -> Frame {
    gst::init().expect("GStreamer");
    Frame::from_bytes(info, bytes, "t", seq)
}
