//! Frames: the decoder's `gst::Buffer` and what is known about it.
//!
//! A [`Frame`] keeps the decoder's `gst::Buffer` (reference counted, never
//! copied) and its video layout. Pixels are read through
//! [`Frame::pixels`], which maps the buffer read-only and honours row
//! strides. The results that travel with a frame are in [`crate::record`].
//! A leaf: it imports nothing of percept.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer_video as gst_video;
use serde::Serialize;

/// Frame period assumed when a stream declares no frame rate (30 fps).
pub const DEFAULT_PERIOD_NS: u64 = 33_333_333;

/// Which clock a frame's `capture_ns` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureClock {
    /// The time the frame entered percept (recordings, or no usable clock).
    Arrival,
    /// The pipeline clock's capture time of a live source (base time + running time).
    Pipeline,
    /// The capture time the sending node stamped (a `zenoh` source: a camera
    /// node's capture wall time), moved onto this machine's monotonic clock.
    Sender,
}

/// Where a frame's media time ([`FrameMeta::pts_ns`]) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The buffer's own presentation timestamp.
    Pts,
    /// The buffer had none: first PTS + frame number / frame rate (the caps'
    /// rate, else the source's declared `framerate`).
    Framerate,
    /// No media time: the capture clock (`capture_ns`), for live sources only.
    Arrival,
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
    /// Which clock `capture_ns` is on.
    pub capture_clock: CaptureClock,
    /// Wall-clock capture time in ns since the Unix epoch.
    pub capture_wall_ns: u64,
    /// Monotonic time by which the frame's output is due (live and paced
    /// sources: capture + budget); `None` for recordings read as fast as possible.
    pub deadline_ns: Option<u64>,
    /// The sender's NTP time (ns since 1900) when the stream carries one (RTSP
    /// with RTCP sender reports); stereo pairing prefers it.
    pub ntp_ns: Option<u64>,
    /// Where `pts_ns` came from (`Arrival` when it is `None`).
    pub time_source: TimeSource,
    /// The `image-orientation` tag that was applied to make the frame
    /// upright (`rotate-90`, `flip-rotate-0`, …; GStreamer's names, as
    /// `videoflip video-direction=auto` reads them), `None` when the stream
    /// carries no orientation tag.
    pub orientation: Option<&'static str>,
    /// On the first frame after a reconnecting source came back: the time
    /// without frames, ns (this frame's capture time minus the previous
    /// frame's). `None` on every other frame.
    pub gap_ns: Option<u64>,
    /// When the capture time came from the sender ([`CaptureClock::Sender`]):
    /// the monotonic time the frame arrived here, ns. `None` otherwise.
    pub arrival_ns: Option<u64>,
}

impl FrameMeta {
    /// The frame's time in seconds: its PTS, else its capture time. Trackers,
    /// late detections and re-ID reuse all count time with this.
    pub fn time_s(&self) -> f64 {
        self.pts_ns.unwrap_or(self.capture_ns) as f64 / 1e9
    }
}

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// What is known about the frame besides its pixels.
    pub meta: FrameMeta,
    /// The decoded pixels (reference counted).
    pub buffer: gst::Buffer,
    /// Layout of `buffer`: format, size, strides. Shared while caps do not change.
    pub info: Arc<gst_video::VideoInfo>,
    /// The right view of a stereo pair (this frame is the left one).
    pub right: Option<Arc<Frame>>,
}

impl Frame {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.info.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.info.height()
    }

    /// Pixel format.
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
                time_source: TimeSource::Pts,
                orientation: None,
                gap_ns: None,
                arrival_ns: None,
            },
            buffer: gst::Buffer::from_slice(bytes),
            info: Arc::new(info),
            right: None,
        }
    }
}

/// A frame over raw bytes laid out as `info` says, for unit tests.
#[cfg(test)]
#[allow(clippy::expect_used)]
pub(crate) fn test_frame(info: gst_video::VideoInfo, bytes: Vec<u8>, seq: u64) -> Frame {
    gst::init().expect("GStreamer");
    Frame::from_bytes(info, bytes, "t", seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_s_prefers_pts_over_capture_time() {
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 2, 2)
            .build()
            .unwrap();
        let mut f = test_frame(info, vec![0; 4], 0);
        f.meta.pts_ns = Some(1_500_000_000);
        f.meta.capture_ns = 7_000_000_000;
        assert_eq!(f.meta.time_s(), 1.5);
        f.meta.pts_ns = None;
        assert_eq!(f.meta.time_s(), 7.0);
    }
}
