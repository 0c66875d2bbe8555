//! `zenoh`: frames a camera node publishes on Zenoh (a `zenoh` sink with
//! `frames = "jpeg"` or `"raw"`), for an inference node on this or another
//! machine.
//!
//! ```toml
//! [[source]]
//! id = "cam0"
//! kind = "zenoh"
//! key = "percept/cam0/frame"       # default: percept/<this source's id>/frame
//! listen = ["tcp/0.0.0.0:7447"]    # session fields as on the sink: mode, connect,
//! scouting = false                 # listen, scouting, config
//! ```
//!
//! Frames go into the same GStreamer engine as every source
//! ([`crate::sources::appsink`]) through an `appsrc` and `decodebin`, so
//! `format`, `width`, `height` and `delivery` work as for a camera.
//!
//! **Time**: each frame keeps the capture time the camera node stamped
//! (`capture_clock = "sender"`): `capture_wall_ns` is the camera's, and the
//! record adds `arrival_wall_ns`, when it arrived here. The capture time
//! rides on the buffer as a `timestamp/x-ntp` reference timestamp, so two
//! camera nodes pair as a stereo pair by capture time, as RTSP cameras do.
//! Clocks of different machines must be synchronised (NTP, PTP) for these
//! times to compare.
//!
//! **Losses and gaps**: the camera's sequence numbers travel with each
//! frame; a jump counts as frames `lost` (summary, `/metrics`). A camera
//! node that disappears is noticed by its Zenoh liveliness token going
//! (a warning); the subscription stays, and the first frame after the node
//! returns is a gap: it carries `gap_ms`, the summary counts a reconnect
//! and sums `gap_s`, and PTS continue across the gap. A camera node that
//! finishes its recording publishes an end of stream, and this source ends;
//! one that never returns keeps the source waiting, as a camera would,
//! until Ctrl-C or `DELETE /streams/<id>`.
//!
//! Back-pressure: the subscriber hands frames to `appsrc`, which holds at
//! most [`QUEUE`] and then blocks Zenoh's receive task for that camera node,
//! so a slow inference node slows that link and the camera node's
//! congestion control decides: `drop` (frames lost, counted here) or `block`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;
use zenoh::Wait;
use zenoh::pubsub::Subscriber;
use zenoh::sample::{Sample, SampleKind};

use crate::config::ConfigError;
use crate::config::resolve::{
    ResolvedSource, Resolver, SourceContext, SourceKind, expand, field_names,
};
use crate::pubsub::{Payload, SampleHeader, SessionOptions, check_key};
use crate::source::SourceInput;
use crate::sources::appsink::{NTP_UNIX_OFFSET_NS, RESUME_CAPS, SENDER_PTS_CAPS};

/// The `zenoh` kind.
pub static KIND: SourceKind = SourceKind {
    name: "zenoh",
    fields: field_names::<ZenohSpec>,
    resolve,
};

/// Frames `appsrc` holds before the subscriber waits.
pub const QUEUE: u64 = 4;

/// A `zenoh` source's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZenohSpec {
    /// Key expression of the frames (default `percept/<id>/frame`).
    key: Option<Spanned<String>>,
    /// `peer` or `client`.
    mode: Option<Spanned<String>>,
    /// Endpoints to connect to.
    connect: Option<Spanned<Vec<String>>>,
    /// Endpoints to listen on.
    listen: Option<Spanned<Vec<String>>>,
    /// Multicast scouting.
    scouting: Option<Spanned<bool>>,
    /// A Zenoh JSON5 configuration file (relative to the pipeline file).
    config: Option<Spanned<String>>,
}

/// What one subscription keeps alive, replaced at each (re)build.
#[derive(Default)]
struct Subscription {
    _frames: Option<Subscriber<()>>,
    _alive: Option<Subscriber<()>>,
    _session: Option<Arc<zenoh::Session>>,
}

/// A Zenoh subscription to one camera node's frames.
pub struct ZenohInput {
    /// Session settings.
    pub session: SessionOptions,
    /// Key expression of the frames.
    pub key: String,
    state: Arc<State>,
    /// Taken once, when `appsrc` first asks for data (it is playing then,
    /// so no frame is refused for arriving too early).
    subscription: Arc<Mutex<Option<Subscription>>>,
}

impl Default for State {
    fn default() -> State {
        State {
            finished: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            last_run: AtomicU64::new(u64::MAX),
            last_seq: AtomicU64::new(u64::MAX),
            failure: Mutex::new(None),
        }
    }
}

/// What the subscription's callbacks tell the source thread.
struct State {
    /// The camera node published its end of stream.
    finished: AtomicBool,
    /// The camera node's liveliness token went since the last frame.
    lost: AtomicBool,
    /// The last frame's run id and sequence number (`u64::MAX`: none yet).
    last_run: AtomicU64,
    last_seq: AtomicU64,
    /// Why the subscription could not start.
    failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for ZenohInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohInput")
            .field("session", &self.session)
            .field("key", &self.key)
            .finish()
    }
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &SourceContext<'_>,
) -> Result<ResolvedSource, ConfigError> {
    let spec: ZenohSpec = r.typed(table)?;
    let id = ctx.id;
    let key = spec
        .key
        .as_ref()
        .map_or_else(|| format!("percept/{id}/frame"), |k| k.get_ref().clone());
    if let Err(why) = check_key(&key) {
        let span = spec.key.as_ref().map_or(ctx.kind_span.clone(), Spanned::span);
        return Err(r.invalid(span, ctx.field("key"), why));
    }
    let config = match &spec.config {
        Some(c) => {
            let expanded =
                expand(c.get_ref()).map_err(|m| r.invalid(c.span(), ctx.field("config"), m))?;
            Some(r.base.join(expanded))
        }
        None => None,
    };
    let session = SessionOptions {
        mode: spec.mode.as_ref().map(|m| m.get_ref().clone()),
        connect: spec.connect.as_ref().map(|c| c.get_ref().clone()),
        listen: spec.listen.as_ref().map(|l| l.get_ref().clone()),
        scouting: spec.scouting.as_ref().map(|s| *s.get_ref()),
        config,
    };
    if let Err((field, why)) = session.check() {
        let span = match field {
            "mode" => spec.mode.as_ref().map(Spanned::span),
            "connect" => spec.connect.as_ref().map(Spanned::span),
            "listen" => spec.listen.as_ref().map(Spanned::span),
            "scouting" => spec.scouting.as_ref().map(Spanned::span),
            _ => spec.config.as_ref().map(Spanned::span),
        }
        .unwrap_or(ctx.kind_span.clone());
        return Err(r.invalid(span, ctx.field(field), why));
    }
    Ok(ResolvedSource {
        input: Arc::new(ZenohInput {
            session,
            key,
            state: Arc::new(State::default()),
            subscription: Arc::new(Mutex::new(None)),
        }),
        live: Some(true),
        realtime: None,
        reconnect: None,
    })
}

/// The caps of a frame sample, `None` for other samples.
fn caps_of(header: &SampleHeader) -> Option<gst::Caps> {
    let (w, h) = (
        i32::try_from(header.width).ok()?,
        i32::try_from(header.height).ok()?,
    );
    match header.payload {
        Payload::Jpeg => Some(
            gst::Caps::builder("image/jpeg")
                .field("width", w)
                .field("height", h)
                .field("framerate", gst::Fraction::new(0, 1))
                .build(),
        ),
        Payload::Raw => Some(
            gst::Caps::builder("video/x-raw")
                .field("format", header.format.as_ref())
                .field("width", w)
                .field("height", h)
                .field("framerate", gst::Fraction::new(0, 1))
                .build(),
        ),
        Payload::Record | Payload::End => None,
    }
}

/// Hands one sample to `appsrc`: a frame as a buffer (PTS, duration, the
/// sender's sequence number as offset, its capture time as an NTP reference
/// timestamp), an end of stream as end of stream.
/// The caps of the last frame and what they were made from (payload type,
/// size, format), so caps are built only when they change.
type LastCaps = Option<((Payload, u32, u32, String), gst::Caps)>;

/// The three reference timestamp caps, built once.
fn meta_caps() -> &'static [gst::Caps; 3] {
    static CAPS: std::sync::OnceLock<[gst::Caps; 3]> = std::sync::OnceLock::new();
    CAPS.get_or_init(|| {
        [
            gst::Caps::new_empty_simple("timestamp/x-ntp"),
            gst::Caps::new_empty_simple(SENDER_PTS_CAPS),
            gst::Caps::new_empty_simple(RESUME_CAPS),
        ]
    })
}

fn deliver(
    appsrc: &gst_app::AppSrc,
    sample: &Sample,
    state: &State,
    key: &str,
    last_caps: &mut LastCaps,
) {
    let header = match sample.attachment().map(|a| a.to_bytes()) {
        Some(bytes) => match SampleHeader::read(&bytes) {
            Ok(h) => h,
            Err(why) => {
                tracing::warn!(key, "zenoh sample ignored: {why}");
                return;
            }
        },
        None => {
            tracing::warn!(key, "zenoh sample without percept's header ignored");
            return;
        }
    };
    if header.payload == Payload::End {
        state.finished.store(true, Ordering::SeqCst);
        let _ = appsrc.end_of_stream();
        return;
    }
    let same = last_caps.as_ref().is_some_and(|((p, w, h, f), _)| {
        (*p, *w, *h, f.as_str())
            == (header.payload, header.width, header.height, header.format.as_ref())
    });
    if !same {
        let Some(caps) = caps_of(&header) else {
            return;
        };
        appsrc.set_caps(Some(&caps));
        *last_caps = Some((
            (
                header.payload,
                header.width,
                header.height,
                header.format.to_string(),
            ),
            caps,
        ));
    }
    let mut buffer = gst::Buffer::from_mut_slice(sample.payload().to_bytes().into_owned());
    {
        let Some(b) = buffer.get_mut() else {
            return;
        };
        b.set_pts(header.pts_ns.map(gst::ClockTime::from_nseconds));
        b.set_duration(header.duration_ns.map(gst::ClockTime::from_nseconds));
        b.set_offset(header.seq);
        let [ntp, pts_caps, resume_caps] = meta_caps();
        gst::ReferenceTimestampMeta::add(
            b,
            ntp,
            gst::ClockTime::from_nseconds(header.capture_wall_ns.saturating_add(NTP_UNIX_OFFSET_NS)),
            gst::ClockTime::NONE,
        );
        if let Some(pts) = header.pts_ns {
            gst::ReferenceTimestampMeta::add(
                b,
                pts_caps,
                gst::ClockTime::from_nseconds(pts),
                gst::ClockTime::NONE,
            );
        }
        // After a gap: a new run of the node (it restarted), or frames
        // missing after its liveliness token went (it came back). A token
        // that goes just before the node's last frames (Zenoh sends
        // declarations ahead of queued data) is no gap.
        let last_run = state.last_run.swap(header.run, Ordering::SeqCst);
        let last_seq = state.last_seq.swap(header.seq, Ordering::SeqCst);
        let went = state.lost.swap(false, Ordering::SeqCst);
        let resumed = last_run != u64::MAX
            && (last_run != header.run || (went && header.seq != last_seq.wrapping_add(1)));
        if resumed {
            gst::ReferenceTimestampMeta::add(
                b,
                resume_caps,
                gst::ClockTime::ZERO,
                gst::ClockTime::NONE,
            );
        }
    }
    // Refused once the pipeline stops or ends: the frame is part of the gap.
    let _ = appsrc.push_buffer(buffer);
}

/// Subscribes `appsrc` to the frames on `key` and to the liveliness of
/// the node publishing them.
fn subscribe(
    options: &SessionOptions,
    key: &str,
    state: &Arc<State>,
    appsrc: &gst_app::AppSrc,
) -> Result<Subscription, String> {
    let session = crate::pubsub::session(options)?;
    let weak = appsrc.downgrade();
    let on_frame = (state.clone(), key.to_string());
    let frames = session
        .declare_subscriber(key.to_string())
        .callback_mut({
            let mut last_caps: LastCaps = None;
            move |sample| {
                if let Some(appsrc) = weak.upgrade() {
                    deliver(&appsrc, &sample, &on_frame.0, &on_frame.1, &mut last_caps);
                }
            }
        })
        .wait()
        .map_err(|e| format!("cannot subscribe to `{key}`: {e}"))?;
    let (state, owned_key) = (state.clone(), key.to_string());
    let alive = session
        .liveliness()
        .declare_subscriber(key.to_string())
        .history(true)
        .callback(move |sample| {
            let key = &owned_key;
            match sample.kind() {
                SampleKind::Delete if !state.finished.load(Ordering::SeqCst) => {
                    state.lost.store(true, Ordering::SeqCst);
                    tracing::warn!(key, "the node publishing `{key}` left (its liveliness token went)");
                }
                SampleKind::Put => tracing::info!(key, "a node publishes `{key}`"),
                SampleKind::Delete => {}
            }
        })
        .wait()
        .map_err(|e| format!("cannot watch the liveliness of `{key}`: {e}"))?;
    Ok(Subscription {
        _frames: Some(frames),
        _alive: Some(alive),
        _session: Some(session),
    })
}

impl SourceInput for ZenohInput {
    fn launch_head(&self, src_name: &str, _live: bool) -> String {
        format!(
            "appsrc name={src_name} is-live=true format=time do-timestamp=false block=true max-buffers={QUEUE} ! decodebin"
        )
    }

    /// Subscribes when `appsrc` first asks for data. A session that cannot
    /// open or a subscription Zenoh refuses ends the stream at once with
    /// the reason ([`SourceInput::failure`]).
    fn configure(&self, src: &gst::Element) {
        let Some(appsrc) = src.downcast_ref::<gst_app::AppSrc>() else {
            return;
        };
        let (options, key, state, slot) = (
            self.session.clone(),
            self.key.clone(),
            self.state.clone(),
            self.subscription.clone(),
        );
        appsrc.set_callbacks(
            gst_app::AppSrcCallbacks::builder()
                .need_data(move |appsrc, _| {
                    let Ok(mut slot) = slot.lock() else {
                        return;
                    };
                    if slot.is_some() {
                        return;
                    }
                    *slot = Some(match subscribe(&options, &key, &state, appsrc) {
                        Ok(s) => s,
                        Err(why) => {
                            if let Ok(mut f) = state.failure.lock() {
                                *f = Some(format!("zenoh: {why}"));
                            }
                            let _ = appsrc.end_of_stream();
                            Subscription::default()
                        }
                    });
                })
                .build(),
        );
    }

    fn live(&self, _explicit: Option<bool>) -> bool {
        true
    }

    fn is_network(&self) -> bool {
        true
    }

    fn sender_clock(&self) -> bool {
        true
    }

    fn numbers_frames(&self) -> bool {
        true
    }

    fn finished(&self) -> bool {
        self.state.finished.load(Ordering::SeqCst)
    }

    fn failure(&self) -> Option<String> {
        self.state.failure.lock().ok().and_then(|f| f.clone())
    }

    fn describe(&self) -> String {
        format!("zenoh {}", self.key)
    }
}
