//! The GStreamer engine every source kind runs on: a pipeline per source
//! ending in `appsink`, pulled on the source's own thread into [`Frame`]s.
//!
//! Every source kind becomes one `gst-launch` description with a fixed tail,
//! `videoconvert ! [videoscale !] capsfilter ! appsink`, so frames arrive in
//! the format the pipeline file asks for. Locations are set as element
//! properties, never spliced into the description, so no quoting can break.
//!
//! Orientation: `videoflip video-direction=auto` turns frames upright as
//! the stream's `image-orientation` tag says (phones' rotation matrices in
//! MP4, EXIF), so frames have the size a player shows; the tag applied is
//! recorded per frame ([`FrameMeta::orientation`]). The `videoconvert`
//! before it gives `videoflip` a format it handles (passthrough otherwise).
//!
//! Time: a buffer without a PTS (image sequences) gets one from the frame
//! rate of its caps, else the source's declared `framerate`; a recording with
//! neither stops with [`SourceError::NoTimestamps`]; only live sources fall
//! back to the capture clock ([`TimeSource`]).
//!
//! Delivery: `lossless` lets the appsink queue fill and back-pressure the
//! decoder; `latest` keeps one buffer and drops older ones inside GStreamer
//! (counted from buffer offset gaps when the source numbers its buffers).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::clock;
use crate::config::{Delivery, SourcePlan};
use crate::edge::Outputs;
use crate::frame::{CaptureClock, Frame, FrameMeta, TimeSource};
use crate::meter::SourceStats;
use crate::record::{Record, Work};
use crate::source::{Source, SourceError};

use crate::frame::DEFAULT_PERIOD_NS;
const SINK_NAME: &str = "percept_sink";
const SRC_NAME: &str = "percept_src";
const FLIP_NAME: &str = "percept_orient";
/// GStreamer's `image-orientation` tag values that `videoflip
/// video-direction=auto` applies; index + 1 is stored, 0 means no tag.
const ORIENTATIONS: [&str; 8] = [
    "rotate-0",
    "rotate-90",
    "rotate-180",
    "rotate-270",
    "flip-rotate-0",
    "flip-rotate-90",
    "flip-rotate-180",
    "flip-rotate-270",
];
/// How long one pull waits before the loop looks at the bus and the stop flag.
const PULL_TIMEOUT_MS: u64 = 50;

/// A recording read as fast as it decodes (not live, not paced) that gives
/// no frame, no error and no end of stream for this long has stalled
/// ([`SourceError::Stuck`]). Decoding one frame takes milliseconds; a
/// loaded machine may take a second.
const STUCK_AFTER_S: f64 = 10.0;
/// A file that ends this much before its declared duration is reported as truncated
/// (or three frame periods, whichever is longer).
const TRUNCATION_TOLERANCE_NS: u64 = 1_000_000_000;

/// A source whose GStreamer pipeline is built but not started.
pub struct GstSource {
    plan: SourcePlan,
    stream: Arc<str>,
    launch: String,
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    /// The last `image-orientation` tag seen before `videoflip` (index into
    /// [`ORIENTATIONS`] + 1; 0: none).
    orientation: Arc<AtomicU8>,
}

/// NTP time (since 1900) minus Unix time (since 1970), ns: 70 years and
/// 17 leap days (RFC 5905).
pub const NTP_UNIX_OFFSET_NS: u64 = 2_208_988_800 * 1_000_000_000;

/// The caps name of a reference timestamp meta a source puts on the first
/// buffer after its sender came back ([`crate::source::SourceInput::sender_clock`]
/// sources): the frame after a gap.
pub const RESUME_CAPS: &str = "timestamp/x-percept-resume";
/// The caps name of a reference timestamp meta holding the sender's PTS
/// ([`crate::source::SourceInput::sender_clock`] sources): decoders may
/// move a buffer's own PTS, a meta travels unchanged.
pub const SENDER_PTS_CAPS: &str = "timestamp/x-percept-pts";

/// The timestamp of a buffer's reference timestamp meta with caps `name`.
pub fn reference_time(buffer: &gst::BufferRef, name: &str) -> Option<u64> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|m| m.reference().structure(0).is_some_and(|s| s.name() == name))
        .map(|m| m.timestamp().nseconds())
}

/// Whether a buffer carries a reference timestamp meta with caps `name`.
pub fn has_reference(buffer: &gst::BufferRef, name: &str) -> bool {
    reference_time(buffer, name).is_some()
}

/// The sender's NTP time of a buffer (ns since 1900), when GStreamer attached
/// one (`GstReferenceTimestampMeta` with `timestamp/x-ntp` caps: rtspsrc with
/// `add-reference-timestamp-meta`, from RTCP sender reports).
pub fn ntp_time(buffer: &gst::BufferRef) -> Option<u64> {
    reference_time(buffer, "timestamp/x-ntp")
}

/// Sets a `videoflip` to turn frames upright from orientation tags, passing
/// upright frames through uncopied.
///
/// `videoflip` starts with identity as its active method, and `auto` turns on
/// passthrough only when the method it resolves to changes: set once to
/// `auto`, it copies every upright frame (a full-frame memcpy, 7.7 % of a
/// decode-only run's CPU by `perf`, GStreamer 1.22). Going through `90r` first
/// makes `auto` a change. An orientation tag still turns frames
/// (tests/inputs.rs).
fn orient_from_tags(flip: &gst::Element) {
    flip.set_property_from_str("video-direction", "90r");
    flip.set_property_from_str("video-direction", "auto");
}

/// The GStreamer description a source plan runs.
pub fn launch_description(plan: &SourcePlan) -> String {
    let head = plan.input.launch_head(SRC_NAME, plan.live);
    let scale = if plan.input.sizes_itself() || plan.size.is_none() {
        ""
    } else {
        "videoscale ! "
    };
    format!(
        "{head} ! videoconvert ! videoflip name={FLIP_NAME} video-direction=auto ! videoconvert ! {scale}appsink name={SINK_NAME}"
    )
}

impl GstSource {
    /// Builds the pipeline (in the NULL state). Fails on missing elements or bad properties.
    pub fn build(plan: &SourcePlan) -> Result<GstSource, SourceError> {
        let launch = launch_description(plan);
        let build_err = |error| SourceError::Build {
            id: plan.id.clone(),
            launch: launch.clone(),
            error,
        };
        let mut context = gst::ParseContext::new();
        let element =
            gst::parse::launch_full(&launch, Some(&mut context), gst::ParseFlags::FATAL_ERRORS)
                .map_err(build_err)?;
        let pipeline = element.downcast::<gst::Pipeline>().map_err(|_| {
            build_err(gst::glib::Error::new(
                gst::CoreError::Failed,
                "description is not a pipeline",
            ))
        })?;
        let appsink = pipeline
            .by_name(SINK_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| {
                build_err(gst::glib::Error::new(
                    gst::CoreError::Failed,
                    "no appsink in the pipeline",
                ))
            })?;

        if let Some(src) = pipeline.by_name(SRC_NAME) {
            plan.input.configure(&src);
        }

        let orientation = Arc::new(AtomicU8::new(0));
        let flip = pipeline.by_name(FLIP_NAME);
        if let Some(flip) = &flip {
            orient_from_tags(flip);
        }
        if let Some(pad) = flip.and_then(|flip| flip.static_pad("sink")) {
            let seen = orientation.clone();
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(event)) = &info.data
                    && let gst::EventView::Tag(tag) = event.view()
                    && let Some(value) = tag.tag().get::<gst::tags::ImageOrientation>()
                    && let Some(i) = ORIENTATIONS.iter().position(|o| *o == value.get())
                {
                    seen.store(i as u8 + 1, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        }

        let mut caps = gst::Caps::builder("video/x-raw").field("format", plan.format.to_str());
        if let Some((w, h)) = plan.size {
            caps = caps.field("width", w as i32).field("height", h as i32);
        }
        appsink.set_caps(Some(&caps.build()));
        let latest = plan.delivery == Delivery::Latest;
        appsink.set_max_buffers(if latest { 1 } else { 2 });
        appsink.set_drop(latest);
        appsink.set_sync(plan.realtime);
        appsink.set_enable_last_sample(false);

        Ok(GstSource {
            plan: plan.clone(),
            stream: Arc::from(plan.id.as_str()),
            launch,
            pipeline,
            appsink,
            orientation,
        })
    }

    /// The GStreamer description this source runs.
    pub fn launch(&self) -> &str {
        &self.launch
    }

    /// Pulls frames until end of stream, `max_frames`, the stop flag, a
    /// closed output or an error. `carry` is what the source keeps across
    /// rebuilds (sequence numbers, the last frame's times); with a
    /// `reconnect` policy, `after_s` without a frame is
    /// [`SourceError::Stalled`] and a live stream's end of stream is
    /// [`SourceError::Ended`].
    fn pump(
        &self,
        out: &Outputs,
        should_stop: &dyn Fn() -> bool,
        stats: &SourceStats,
        carry: &mut Carry,
    ) -> Result<(), SourceError> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| self.start_error("pipeline has no bus"))?;
        if let Err(e) = self.pipeline.set_state(gst::State::Playing) {
            // The bus usually holds the real reason.
            self.check_bus(&bus)?;
            return Err(self.start_error(&e.to_string()));
        }

        let mut seq: u64 = carry.seq;
        let mut info: Option<(gst::Caps, Arc<gst_video::VideoInfo>)> = None;
        let mut last_offset: Option<u64> = None;
        let mut last_end_ns: Option<u64> = None;
        // The last frame with a PTS: (PTS, seq).
        let mut last_pts: Option<(u64, u64)> = None;
        let mut frame_period_ns: u64 = 0;
        let timeout = gst::ClockTime::from_mseconds(PULL_TIMEOUT_MS);
        let watchdog = self
            .plan
            .reconnect
            .map(|r| std::time::Duration::from_secs_f64(r.after_s));
        let mut last_activity = std::time::Instant::now();
        // This pipeline's PTS offset (see `Carry::map_pts`), set at its first frame.
        let mut pts_offset: Option<i128> = None;

        loop {
            self.check_bus(&bus)?;
            if should_stop() {
                tracing::info!(source = %self.stream, "stop requested");
                return Ok(());
            }
            let Some(sample) = self.appsink.try_pull_sample(timeout) else {
                if self.appsink.is_eos() {
                    self.check_bus(&bus)?;
                    if let Some(message) = self.plan.input.failure() {
                        return Err(SourceError::Start {
                            id: self.plan.id.clone(),
                            message,
                        });
                    }
                    if self.plan.input.finished() {
                        tracing::info!(source = %self.stream, "the sender ended the stream");
                        return Ok(());
                    }
                    if self.plan.reconnect.is_some() && self.plan.live {
                        return Err(SourceError::Ended {
                            id: self.plan.id.clone(),
                            network: self.plan.input.is_network(),
                        });
                    }
                    return self.check_complete(last_end_ns, frame_period_ns, seq, stats);
                }
                if !self.plan.live
                    && !self.plan.realtime
                    && last_activity.elapsed().as_secs_f64() >= STUCK_AFTER_S
                {
                    return Err(SourceError::Stuck {
                        id: self.plan.id.clone(),
                        after_s: STUCK_AFTER_S,
                    });
                }
                if let (Some(policy), Some(after)) = (self.plan.reconnect, watchdog)
                    && last_activity.elapsed() >= after
                {
                    return Err(SourceError::Stalled {
                        id: self.plan.id.clone(),
                        after_s: policy.after_s,
                        network: self.plan.input.is_network(),
                    });
                }
                continue;
            };
            let arrival_ns = clock::monotonic_ns();
            let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else {
                continue;
            };
            let layout = match &info {
                Some((c, layout)) if c.as_ptr() == caps.as_ptr() => layout.clone(),
                _ => {
                    let layout =
                        gst_video::VideoInfo::from_caps(caps).map_err(|_| SourceError::Caps {
                            id: self.plan.id.clone(),
                            caps: caps.to_string(),
                        })?;
                    let layout = Arc::new(layout);
                    info = Some((caps.to_owned(), layout.clone()));
                    if stats.duration_ns.load(Ordering::Relaxed) == 0
                        && let Some(d) = self.appsink.query_duration::<gst::ClockTime>()
                    {
                        stats.duration_ns.store(d.nseconds(), Ordering::Relaxed);
                    }
                    layout
                }
            };

            let pts = match self.plan.input.sender_clock() {
                true => reference_time(buffer.as_ref(), SENDER_PTS_CAPS),
                false => buffer.pts().map(gst::ClockTime::nseconds),
            };
            let (pts_ns, time_source) = match pts {
                Some(p) => {
                    last_pts = Some((p, seq));
                    (Some(p), TimeSource::Pts)
                }
                None => match self.frame_rate(&layout) {
                    Some((n, d)) => {
                        // Exact per frame: no rounding error accumulates.
                        let (pts, at) = last_pts.unwrap_or((0, 0));
                        let offset =
                            u128::from(seq - at) * 1_000_000_000 * u128::from(d) / u128::from(n);
                        (
                            Some(pts + u64::try_from(offset).unwrap_or(u64::MAX)),
                            TimeSource::Framerate,
                        )
                    }
                    None if self.plan.live => (None, TimeSource::Arrival),
                    None => {
                        return Err(SourceError::NoTimestamps {
                            id: self.plan.id.clone(),
                            seq,
                        });
                    }
                },
            };
            let duration_ns = buffer.duration().map(|t| t.nseconds()).or_else(|| {
                (time_source == TimeSource::Framerate)
                    .then(|| self.frame_rate(&layout))
                    .flatten()
                    .map(|(n, d)| 1_000_000_000 * d / n)
            });
            if let Some(d) = duration_ns {
                frame_period_ns = d;
            }
            if let Some(p) = pts_ns {
                last_end_ns = Some(p + duration_ns.unwrap_or(0));
                stats.position_ns.store(p, Ordering::Relaxed);
            }
            if self.plan.input.numbers_frames() {
                // The sender's sequence numbers: a jump is frames lost on the way.
                let offset = buffer.offset();
                if offset != gst::format::Buffers::OFFSET_NONE {
                    if let Some(prev) = last_offset
                        && offset > prev + 1
                    {
                        stats.lost.fetch_add(offset - prev - 1, Ordering::Relaxed);
                    }
                    last_offset = Some(offset);
                }
            } else if self.plan.delivery == Delivery::Latest {
                let offset = buffer.offset();
                if offset != gst::format::Buffers::OFFSET_NONE {
                    if let Some(prev) = last_offset
                        && offset > prev + 1
                    {
                        stats
                            .dropped_latest
                            .fetch_add(offset - prev - 1, Ordering::Relaxed);
                    }
                    last_offset = Some(offset);
                }
            }
            let sender_wall_ns = self
                .plan
                .input
                .sender_clock()
                .then(|| ntp_time(buffer.as_ref()))
                .flatten()
                .map(|ntp| ntp.saturating_sub(NTP_UNIX_OFFSET_NS));
            let (capture_ns, capture_clock) = match sender_wall_ns {
                // The sender's capture time on this machine's monotonic clock
                // (never after the arrival: clocks a little apart).
                Some(wall) => (
                    arrival_ns.saturating_sub(clock::wall_ns().saturating_sub(wall)),
                    CaptureClock::Sender,
                ),
                None => self.capture_time(&sample, pts_ns, arrival_ns),
            };
            // A sender that came back (a `zenoh` camera node restarted):
            // a gap in this same pipeline, and its PTS restart.
            if self.plan.input.sender_clock()
                && has_reference(buffer.as_ref(), RESUME_CAPS)
                && carry.last_capture_ns.is_some()
            {
                carry.after_gap = true;
                pts_offset = None;
            }
            // After a rebuild the new pipeline's PTS restart: continue the
            // previous pipeline's, plus the time without frames.
            let pts_ns = pts_ns.map(|raw| {
                let offset = *pts_offset.get_or_insert_with(|| carry.pts_offset(raw, capture_ns));
                u64::try_from((i128::from(raw) + offset).max(0)).unwrap_or(u64::MAX)
            });
            let gap_ns = carry
                .after_gap
                .then_some(carry.last_capture_ns)
                .flatten()
                .map(|last| capture_ns.saturating_sub(last));
            if let Some(gap) = gap_ns {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                stats.gap_ns.fetch_add(gap, Ordering::Relaxed);
                tracing::warn!(
                    source = %self.stream,
                    "back after {:.2} s without frames (frame {seq})",
                    gap as f64 / 1e9
                );
            }
            let ntp_ns = ntp_time(buffer.as_ref());
            let deadline_ns = (self.plan.live || self.plan.realtime).then(|| {
                let period = match layout.fps() {
                    f if f.numer() > 0 && f.denom() > 0 => {
                        1_000_000_000 * f.denom() as u64 / f.numer() as u64
                    }
                    _ if frame_period_ns > 0 => frame_period_ns,
                    _ => DEFAULT_PERIOD_NS,
                };
                capture_ns + self.plan.budget.map_or(period, |b| b.as_nanos() as u64)
            });

            let work = Work {
                frame: Frame {
                    meta: FrameMeta {
                        stream: self.stream.clone(),
                        seq,
                        pts_ns,
                        duration_ns,
                        capture_ns,
                        capture_clock,
                        capture_wall_ns: sender_wall_ns
                            .unwrap_or_else(|| clock::wall_ns_of(capture_ns)),
                        arrival_ns: sender_wall_ns.map(|_| arrival_ns),
                        deadline_ns,
                        ntp_ns,
                        time_source,
                        orientation: match self.orientation.load(Ordering::Relaxed) {
                            0 => None,
                            i => ORIENTATIONS.get(usize::from(i) - 1).copied(),
                        },
                        gap_ns,
                    },
                    buffer,
                    info: layout,
                    right: None,
                },
                record: Record::default(),
            };
            stats.frames.fetch_add(1, Ordering::Relaxed);
            carry.after_gap = false;
            carry.last_capture_ns = Some(capture_ns);
            carry.last_pts_ns = pts_ns;
            if out.send(work).is_err() {
                tracing::debug!(source = %self.stream, "downstream closed");
                return Ok(());
            }
            seq += 1;
            carry.seq = seq;
            last_activity = std::time::Instant::now();
            if self.plan.max_frames.is_some_and(|m| seq >= m) {
                return Ok(());
            }
        }
    }

    /// The frame rate (numerator, denominator; frames per second) for frames
    /// without a PTS: the caps' rate, else the source's declared `framerate`;
    /// `None` when neither is known.
    fn frame_rate(&self, layout: &gst_video::VideoInfo) -> Option<(u64, u64)> {
        let caps = layout.fps();
        let (n, d) = if caps.numer() > 0 && caps.denom() > 0 {
            (caps.numer() as u64, caps.denom() as u64)
        } else {
            let (n, d) = self.plan.input.declared_framerate()?;
            (u64::from(n), u64::from(d))
        };
        (n > 0 && d > 0).then_some((n, d))
    }

    /// For a live source on the (monotonic) system clock: base time + running time.
    fn capture_time(
        &self,
        sample: &gst::Sample,
        pts_ns: Option<u64>,
        arrival_ns: u64,
    ) -> (u64, CaptureClock) {
        if !(self.plan.live || self.plan.realtime) {
            return (arrival_ns, CaptureClock::Arrival);
        }
        let running = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .zip(pts_ns)
            .and_then(|(seg, pts)| seg.to_running_time(gst::ClockTime::from_nseconds(pts)));
        let monotonic_clock = self
            .pipeline
            .clock()
            .is_some_and(|c| c.is::<gst::SystemClock>());
        match (running, self.pipeline.base_time()) {
            (Some(running), Some(base)) if monotonic_clock => {
                let capture = base.nseconds() + running.nseconds();
                // Trust it only when it is in the recent past.
                if capture <= arrival_ns && arrival_ns - capture < 5_000_000_000 {
                    return (capture, CaptureClock::Pipeline);
                }
                (arrival_ns, CaptureClock::Arrival)
            }
            _ => (arrival_ns, CaptureClock::Arrival),
        }
    }

    /// After end of stream, judged for this video stream, not the container:
    /// - a RIFF file shorter than its header's size is truncated (exit 2);
    /// - an AVI whose video header declares more frames than were decoded
    ///   from a complete file gets a warning with both figures, counted in
    ///   the summary ([`SourceStats::declared_frames`]): players and OpenCV
    ///   report the header's count, GStreamer decodes what the index has;
    /// - a stream that ended well before the container's duration is complete
    ///   when another stream of the file reaches that duration (a longer
    ///   second video or audio track: [`container_reach`]), else truncated.
    fn check_complete(
        &self,
        last_end_ns: Option<u64>,
        frame_period_ns: u64,
        decoded: u64,
        stats: &SourceStats,
    ) -> Result<(), SourceError> {
        let Some(path) = self.plan.input.file() else {
            return Ok(());
        };
        let truncated = |detail: String| SourceError::Truncated {
            id: self.plan.id.clone(),
            location: path.display().to_string(),
            detail,
        };
        // Demuxers that index by scanning (AVI) shorten the duration to what is
        // there; the RIFF header still tells the size the file should have.
        if let Some((declared, actual)) = riff_sizes(path)
            && actual < declared
        {
            return Err(truncated(format!(
                "the file has {actual} bytes but its RIFF header declares {declared}"
            )));
        }
        if let Some(declared) = avi_video_frames(path)
            && declared > decoded
        {
            tracing::warn!(
                source = %self.stream,
                "{}: the AVI header declares {declared} video frames but {decoded} were decoded",
                path.display()
            );
            stats.declared_frames.store(declared, Ordering::Relaxed);
        }
        let declared = stats.duration_ns.load(Ordering::Relaxed);
        let Some(ended) = last_end_ns else {
            return Ok(());
        };
        let tolerance = TRUNCATION_TOLERANCE_NS.max(3 * frame_period_ns);
        if declared > 0 && ended + tolerance < declared {
            let from = ended.max(declared.saturating_sub(2 * tolerance));
            match container_reach(path, from) {
                Some(reach) if reach + tolerance >= declared => {
                    tracing::info!(
                        source = %self.stream,
                        "the video stream ended at {:.2} s; another stream of the file runs to {:.2} s (the container's duration)",
                        ended as f64 / 1e9,
                        reach as f64 / 1e9
                    );
                }
                reach => {
                    return Err(truncated(format!(
                        "stream ended at {:.2} s but declares {:.2} s (no stream of the file reaches it{})",
                        ended as f64 / 1e9,
                        declared as f64 / 1e9,
                        reach.map_or_else(String::new, |r| format!(
                            ": the longest ends at {:.2} s",
                            r as f64 / 1e9
                        ))
                    )));
                }
            }
        }
        Ok(())
    }

    fn start_error(&self, message: &str) -> SourceError {
        SourceError::Start {
            id: self.plan.id.clone(),
            message: message.to_string(),
        }
    }

    /// Turns a pending bus error into a typed error; logs warnings.
    fn check_bus(&self, bus: &gst::Bus) -> Result<(), SourceError> {
        while let Some(msg) =
            bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning])
        {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    let error = err.error();
                    let element = msg
                        .src()
                        .map_or_else(|| "?".into(), |s| s.path_string().to_string());
                    let debug = err.debug().map(|d| d.to_string());
                    if self.plan.input.is_network() {
                        return Err(SourceError::Network {
                            id: self.plan.id.clone(),
                            failure: crate::source::NetworkFailure::of(&error, debug.as_deref()),
                            element,
                            message: error.message().to_string(),
                            debug,
                        });
                    }
                    let bad_input = error.is::<gst::StreamError>()
                        || matches!(
                            error.kind::<gst::ResourceError>(),
                            Some(
                                gst::ResourceError::NotFound
                                    | gst::ResourceError::OpenRead
                                    | gst::ResourceError::Read
                            )
                        )
                        || matches!(
                            error.kind::<gst::CoreError>(),
                            Some(gst::CoreError::MissingPlugin)
                        );
                    return Err(SourceError::Stream {
                        id: self.plan.id.clone(),
                        element,
                        message: error.message().to_string(),
                        debug,
                        bad_input,
                    });
                }
                gst::MessageView::Warning(w) => {
                    tracing::warn!(
                        source = %self.stream,
                        element = %msg.src().map_or_else(|| "?".into(), |s| s.path_string().to_string()),
                        "{}",
                        w.error()
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// How long [`container_reach`] waits for the file to preroll, then to end.
const REACH_TIMEOUT_S: u64 = 10;

/// The latest end time (PTS + duration, ns) of any elementary stream of the
/// file, demuxed without decoding (`parsebin`, one fake sink per stream)
/// from `from_ns` on (a key-unit seek, so only the file's tail is read).
/// `None` when the file cannot be read that way or does not end in time.
fn container_reach(path: &std::path::Path, from_ns: u64) -> Option<u64> {
    use std::sync::atomic::AtomicU64;
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str()?)
        .build()
        .ok()?;
    let parse = gst::ElementFactory::make("parsebin").build().ok()?;
    pipeline.add_many([&src, &parse]).ok()?;
    src.link(&parse).ok()?;
    let reach = Arc::new(AtomicU64::new(0));
    let weak = pipeline.downgrade();
    let seen = reach.clone();
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        // A queue per stream, so one stream's sink prerolling does not hold
        // the demuxer before the others have data.
        let (Ok(queue), Ok(sink)) = (
            gst::ElementFactory::make("queue")
                .property("max-size-time", 5_000_000_000u64)
                .build(),
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build(),
        ) else {
            return;
        };
        if pipeline.add_many([&queue, &sink]).is_err() || queue.link(&sink).is_err() {
            return;
        }
        let _ = queue.sync_state_with_parent();
        let _ = sink.sync_state_with_parent();
        if let Some(sinkpad) = queue.static_pad("sink") {
            let _ = pad.link(&sinkpad);
        }
        let seen = seen.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && let Some(p) = b.pts()
            {
                let end = p.nseconds() + b.duration().map_or(0, |d| d.nseconds());
                seen.fetch_max(end, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    });
    let result = (|| {
        let bus = pipeline.bus()?;
        let timeout = gst::ClockTime::from_seconds(REACH_TIMEOUT_S);
        pipeline.set_state(gst::State::Paused).ok()?;
        let msg = bus.timed_pop_filtered(
            timeout,
            &[gst::MessageType::AsyncDone, gst::MessageType::Error],
        )?;
        if let gst::MessageView::Error(_) = msg.view() {
            return None;
        }
        // A file that cannot seek is read from the start.
        let _ = pipeline.seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
            gst::ClockTime::from_nseconds(from_ns),
        );
        pipeline.set_state(gst::State::Playing).ok()?;
        // An error (the damage itself) still leaves what was read.
        bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error])?;
        Some(reach.load(Ordering::Relaxed))
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The video frame count an AVI file's header declares: the first video
/// stream header's `dwLength` (`strh` with `fccType` `vids`), else the main
/// header's `dwTotalFrames` (`avih`). `None` for other files. Reads the
/// first 64 KiB (the `hdrl` list comes first).
fn avi_video_frames(path: &std::path::Path) -> Option<u64> {
    use std::io::Read;
    let mut head = Vec::with_capacity(65_536);
    std::fs::File::open(path)
        .ok()?
        .take(65_536)
        .read_to_end(&mut head)
        .ok()?;
    if head.get(..4)? != b"RIFF" || head.get(8..12)? != b"AVI " {
        return None;
    }
    let u32_at = |at: usize| -> Option<u64> {
        let b = head.get(at..at + 4)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let find = |tag: &[u8], from: usize| -> Option<usize> {
        head.get(from..)?
            .windows(4)
            .position(|w| w == tag)
            .map(|i| from + i)
    };
    let mut at = 12;
    while let Some(i) = find(b"strh", at) {
        // strh: fccType at +8, dwLength at +8 + 32.
        if head.get(i + 8..i + 12)? == b"vids" {
            return u32_at(i + 40);
        }
        at = i + 4;
    }
    // avih: dwTotalFrames at +8 + 16.
    find(b"avih", 12).and_then(|i| u32_at(i + 24))
}

/// For a RIFF file (AVI, WAV): (size its header declares, actual size) in bytes.
fn riff_sizes(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 8];
    file.read_exact(&mut header).ok()?;
    if &header[..4] != b"RIFF" {
        return None;
    }
    let declared = u64::from(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ])) + 8;
    let actual = file.metadata().ok()?.len();
    Some((declared, actual))
}
/// What a source keeps across rebuilds of its pipeline (`reconnect`):
/// sequence numbers go on, and times continue from the last frame.
#[derive(Debug, Default)]
struct Carry {
    /// The next frame's sequence number.
    seq: u64,
    /// The last delivered frame's capture time, ns (monotonic).
    last_capture_ns: Option<u64>,
    /// The last delivered frame's PTS as written, ns.
    last_pts_ns: Option<u64>,
    /// The pipeline was rebuilt since the last delivered frame: the next
    /// frame is the first after a gap.
    after_gap: bool,
}

impl Carry {
    /// The offset (ns) added to a pipeline's PTS from its first frame on
    /// (raw PTS `raw_ns`, captured at `capture_ns`): 0 for the first
    /// pipeline; after a rebuild, whatever makes that frame's PTS the last
    /// frame's PTS plus the capture time between them, so PTS keep
    /// increasing and show the gap.
    fn pts_offset(&self, raw_ns: u64, capture_ns: u64) -> i128 {
        match (self.after_gap, self.last_pts_ns, self.last_capture_ns) {
            (true, Some(pts), Some(capture)) => {
                i128::from(pts) + i128::from(capture_ns.saturating_sub(capture).max(1))
                    - i128::from(raw_ns)
            }
            _ => 0,
        }
    }
}

/// Sleeps up to `seconds` in short steps; `true` when a stop was requested.
fn wait_or_stop(seconds: f64, should_stop: &dyn Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    while std::time::Instant::now() < until {
        if should_stop() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(PULL_TIMEOUT_MS));
    }
    should_stop()
}

impl GstSource {
    /// Runs this pipeline once; it is stopped (NULL) on return.
    fn run_once(
        &self,
        out: &Outputs,
        should_stop: &dyn Fn() -> bool,
        stats: &SourceStats,
        carry: &mut Carry,
    ) -> Result<(), SourceError> {
        let result = self.pump(out, should_stop, stats, carry);
        // Stopping a pipeline cannot fail in a way we could act on.
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }
}

impl Source for GstSource {
    fn describe(&self) -> String {
        self.launch.clone()
    }

    /// Without `reconnect`, one run of the pipeline. With it, the pipeline
    /// is rebuilt after each retryable failure ([`SourceError::is_retryable`])
    /// with backoff ([`crate::source::ReconnectPolicy::delay_s`]), one warning
    /// per attempt, until a stop request, `max_frames`, a closed output, or
    /// `attempts` in a row without a frame (then the last error).
    fn run(
        self: Box<Self>,
        out: &Outputs,
        should_stop: &dyn Fn() -> bool,
        stats: &SourceStats,
    ) -> Result<(), SourceError> {
        let mut carry = Carry::default();
        let Some(policy) = self.plan.reconnect else {
            return self.run_once(out, should_stop, stats, &mut carry);
        };
        let plan = self.plan.clone();
        let mut next = Some(*self);
        // Attempts in a row that delivered no frame.
        let mut failed: u32 = 0;
        let mut reconnecting = || -> Result<(), SourceError> {
            loop {
                let source = match next.take() {
                    Some(source) => source,
                    None => GstSource::build(&plan)?,
                };
                let before = carry.seq;
                let error = match source.run_once(out, should_stop, stats, &mut carry) {
                    Ok(()) => return Ok(()),
                    Err(e) if !e.is_retryable() => return Err(e),
                    Err(e) => e,
                };
                drop(source);
                if should_stop() {
                    return Ok(());
                }
                if carry.seq > before {
                    failed = 0;
                }
                failed += 1;
                let of = match policy.attempts {
                    Some(n) if failed > n => {
                        tracing::error!(
                            source = %plan.id,
                            "giving up after {n} reconnect attempts without a frame"
                        );
                        return Err(error);
                    }
                    Some(n) => format!("{n}"),
                    None => "forever".to_string(),
                };
                let delay_s = policy.delay_s(failed);
                tracing::warn!(
                    source = %plan.id,
                    "{}; reconnect attempt {failed} (of {of}) in {delay_s:.1} s ({})",
                    crate::redact::redact(&error.to_string()).replace('\n', " "),
                    plan.describe()
                );
                if carry.last_capture_ns.is_some() {
                    carry.after_gap = true;
                }
                if wait_or_stop(delay_s, should_stop) {
                    return Ok(());
                }
                stats.reconnect_attempts.fetch_add(1, Ordering::Relaxed);
            }
        };
        let result = reconnecting();
        // Stopped (or given up) while the source was lost: that time is a gap too.
        if carry.after_gap
            && let Some(last) = carry.last_capture_ns
        {
            let gap = crate::clock::monotonic_ns().saturating_sub(last);
            stats.gap_ns.fetch_add(gap, Ordering::Relaxed);
            tracing::warn!(source = %plan.id, "ended {:.2} s after its last frame, without it coming back", gap as f64 / 1e9);
        }
        result
    }
}

#[cfg(test)]
mod carry_tests {
    use super::Carry;
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn upright_frames_pass_through_the_orientation_flip_uncopied() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc num-buffers=5 ! video/x-raw,format=RGB,width=64,height=48 \
             ! videoflip name=f video-direction=auto ! fakesink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let flip = pipeline.by_name("f").unwrap();
        super::orient_from_tags(&flip);
        // The buffer each pad saw, by address: the same one on both sides
        // when the element passes it through.
        let seen: Arc<Mutex<[Vec<usize>; 2]>> = Arc::default();
        for (side, pad) in ["sink", "src"].into_iter().enumerate() {
            let seen = seen.clone();
            flip.static_pad(pad)
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                        seen.lock().unwrap()[side].push(b.as_ptr() as usize);
                    }
                    gst::PadProbeReturn::Ok
                });
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(10),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .unwrap();
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(msg.type_(), gst::MessageType::Eos);
        let [into, out] = seen.lock().unwrap().clone();
        assert_eq!(into.len(), 5);
        assert_eq!(into, out, "frames were copied by videoflip");
    }

    #[test]
    fn pts_continue_across_a_rebuild_and_show_the_gap() {
        let mut carry = Carry::default();
        // The first pipeline keeps its own PTS.
        assert_eq!(carry.pts_offset(40_000_000, 1_000_000_000), 0);
        carry.last_pts_ns = Some(5_000_000_000);
        carry.last_capture_ns = Some(10_000_000_000);
        // A pipeline started without a gap (no rebuild) keeps its PTS too.
        assert_eq!(carry.pts_offset(0, 13_000_000_000), 0);
        // After a rebuild, 3 s later by the capture clock, its PTS restart
        // near 0: they continue from 5 s, 3 s on.
        carry.after_gap = true;
        let offset = carry.pts_offset(100_000_000, 13_000_000_000);
        assert_eq!(100_000_000 + offset, 8_000_000_000);
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let p = crate::source::ReconnectPolicy {
            after_s: 2.0,
            backoff_max_s: 30.0,
            attempts: None,
        };
        let delays: Vec<f64> = (1..=6).map(|n| p.delay_s(n)).collect();
        assert_eq!(delays, [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
        assert_eq!(p.delay_s(u32::MAX), 30.0);
    }
}
