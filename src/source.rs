//! The `Source` trait: where frames come from. Today every kind runs on
//! GStreamer ([`crate::sources::appsink`]); a source that is not GStreamer
//! (a Zenoh camera node) implements the same trait.

use gstreamer as gst;

use crate::edge::Outputs;
pub use crate::meter::SourceStats;

/// A source that can run: built (elements created, properties set) but not started.
pub trait Source: Send {
    /// One line for `percept check`: what runs (a GStreamer description).
    fn describe(&self) -> String;

    /// Delivers frames into `out` until end of stream, `max_frames`, a stop
    /// request (`should_stop`), a closed output or an error.
    fn run(
        self: Box<Self>,
        out: &Outputs,
        should_stop: &dyn Fn() -> bool,
        stats: &SourceStats,
    ) -> Result<(), SourceError>;
}

/// How a live source comes back after it fails (`reconnect = { after_s,
/// backoff_max_s, attempts }` on `uri` and `v4l2` sources): its GStreamer
/// pipeline is rebuilt after a bus error, an end of stream of a live source,
/// or `after_s` without a frame, waiting `after_s`, then twice as long
/// after each attempt that delivers no frame, up to `backoff_max_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// Seconds without a frame after which the source counts as lost (the
    /// no-frame watchdog; also how long a new attempt gets for its first
    /// frame), and the first wait before rebuilding.
    pub after_s: f64,
    /// The longest wait between attempts, seconds.
    pub backoff_max_s: f64,
    /// Attempts in a row without a frame before the source fails with the
    /// last error; `None`: forever.
    pub attempts: Option<u32>,
}

impl ReconnectPolicy {
    /// Seconds to wait before attempt `n` (1, 2, …) of a run of attempts:
    /// `after_s`, doubling, at most `backoff_max_s`.
    pub fn delay_s(&self, n: u32) -> f64 {
        let doublings = n.saturating_sub(1).min(62);
        (self.after_s * (1u64 << doublings) as f64).min(self.backoff_max_s)
    }

    /// `after 2 s, backoff up to 30 s, forever` (for `percept check` and logs).
    pub fn describe(&self) -> String {
        format!(
            "reconnect after {} s without frames, backoff up to {} s, {}",
            self.after_s,
            self.backoff_max_s,
            match self.attempts {
                Some(n) => format!("{n} attempts"),
                None => "forever".to_string(),
            }
        )
    }
}

/// Exit code for a network source that cannot be reached or stops answering
/// (connection refused, no route, name not resolved, timeout, connection lost).
pub const EXIT_NETWORK: i32 = 3;
/// Exit code for a network source that refuses the credentials (RTSP or HTTP 401, 403).
pub const EXIT_AUTH: i32 = 4;

/// What kind of network failure ended a network source; each kind has one
/// exit code whatever the protocol (RTSP, HTTP, …) or the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkFailure {
    /// Refused, unreachable, not resolved, timed out or dropped (exit 3).
    Unreachable,
    /// The server refused the credentials: 401 or 403 (exit 4).
    Unauthorized,
}

impl NetworkFailure {
    /// Classifies a GStreamer error of a network source from its error kind
    /// and, since not every element uses `NotAuthorized`, its text.
    pub fn of(error: &gst::glib::Error, debug: Option<&str>) -> NetworkFailure {
        let text = format!("{} {}", error.message(), debug.unwrap_or(""));
        let auth = matches!(
            error.kind::<gst::ResourceError>(),
            Some(gst::ResourceError::NotAuthorized)
        ) || ["401", "403", "Unauthorized", "Forbidden"]
            .iter()
            .any(|w| text.contains(w));
        if auth {
            NetworkFailure::Unauthorized
        } else {
            NetworkFailure::Unreachable
        }
    }

    /// Its exit code ([`EXIT_NETWORK`], [`EXIT_AUTH`]).
    pub fn exit_code(self) -> i32 {
        match self {
            NetworkFailure::Unreachable => EXIT_NETWORK,
            NetworkFailure::Unauthorized => EXIT_AUTH,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            NetworkFailure::Unreachable => {
                "network source unreachable or not answering (refused, timeout or lost)"
            }
            NetworkFailure::Unauthorized => "network source refused the credentials",
        }
    }
}

/// A source that failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{id}`: cannot build GStreamer pipeline `{launch}`")]
    /// The GStreamer description cannot be built.
    Build {
        /// The source id.
        id: String,
        /// The GStreamer description.
        launch: String,
        #[source]
        /// GStreamer's error.
        error: gst::glib::Error,
    },
    #[error("source `{id}`: GStreamer element {element}: {message}{}", debug.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    /// GStreamer reported an error while running.
    Stream {
        /// The source id.
        id: String,
        /// The failing element's path.
        element: String,
        /// What went wrong.
        message: String,
        /// GStreamer's debug detail.
        debug: Option<String>,
        /// The input is at fault (exit code 2), not the run.
        bad_input: bool,
    },
    #[error("source `{id}`: {}: GStreamer element {element}: {message}{}", failure.describe(), debug.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    /// A network source failed (see [`NetworkFailure`] for the exit codes).
    Network {
        /// The source id.
        id: String,
        /// What kind of failure.
        failure: NetworkFailure,
        /// The failing element's path.
        element: String,
        /// What went wrong.
        message: String,
        /// GStreamer's debug detail.
        debug: Option<String>,
    },
    #[error("source `{id}`: no frame for {after_s} s")]
    /// A reconnecting source's watchdog: no frame for `after_s`.
    Stalled {
        /// The source id.
        id: String,
        /// The watchdog's time, seconds.
        after_s: f64,
        /// A network source (exit code 3 when it gives up), not a device.
        network: bool,
    },
    #[error(
        "source `{id}`: no frame, no error and no end of stream for {after_s} s: GStreamer stalled on this input (a damaged file?)"
    )]
    /// A recording read as fast as it decodes that stops giving frames
    /// without an error or an end of stream (seen with damaged MP4 headers:
    /// the demuxer pauses without posting an error). Bad input.
    Stuck {
        /// The source id.
        id: String,
        /// The time without a frame, seconds.
        after_s: f64,
    },
    #[error("source `{id}`: the live stream ended (end of stream)")]
    /// A live source with `reconnect` reached an end of stream (the server
    /// or device stopped sending).
    Ended {
        /// The source id.
        id: String,
        /// A network source (exit code 3 when it gives up).
        network: bool,
    },
    #[error("source `{id}`: the pipeline did not start ({message})")]
    /// The pipeline did not start.
    Start {
        /// The source id.
        id: String,
        /// Why.
        message: String,
    },
    #[error("source `{id}`: frame with unusable caps `{caps}`")]
    /// A frame arrived with caps percept cannot use.
    Caps {
        /// The source id.
        id: String,
        /// The caps, as text.
        caps: String,
    },
    #[error("source `{id}` ({location}): {detail}: the file is truncated or damaged")]
    /// A file ended well before its declared duration.
    Truncated {
        /// The source id.
        id: String,
        /// The file.
        location: String,
        /// What shows the damage.
        detail: String,
    },
    #[error(
        "source `{id}`: frame {seq} has no timestamp (PTS) and neither its caps nor the pipeline give a frame rate, so its time is unknown; set `framerate = 25` (frames per second, or \"30000/1001\") on the source, or give the caps a rate (e.g. `caps=image/jpeg,framerate=25/1`)"
    )]
    /// A recording's frame has no PTS and no frame rate is known (image
    /// sequences read without a rate): its time would be arrival time.
    NoTimestamps {
        /// The source id.
        id: String,
        /// The frame's number in the stream, from 0.
        seq: u64,
    },
}

impl SourceError {
    /// Whether the input itself is at fault (exit code 2) rather than the run.
    pub fn is_bad_input(&self) -> bool {
        match self {
            SourceError::Build { .. }
            | SourceError::Truncated { .. }
            | SourceError::NoTimestamps { .. }
            | SourceError::Stuck { .. } => true,
            SourceError::Stream { bad_input, .. } => *bad_input,
            _ => false,
        }
    }

    /// Whether rebuilding the pipeline may help (a reconnecting source
    /// retries these): not for a description that cannot be built, caps
    /// percept cannot use or a damaged file.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            SourceError::Build { .. }
                | SourceError::Caps { .. }
                | SourceError::Truncated { .. }
                | SourceError::NoTimestamps { .. }
                | SourceError::Stuck { .. }
        )
    }
}

/// A source kind's resolved input: what to read and how GStreamer reads it.
/// Each kind's file under `sources/` implements it; the plan holds it
/// without knowing the kind.
pub trait SourceInput: std::fmt::Debug + Send + Sync {
    /// The head of the GStreamer description, up to raw video; the element
    /// that [`SourceInput::configure`] sets up is named `src_name`.
    fn launch_head(&self, src_name: &str, live: bool) -> String;

    /// Sets the element's properties (location, URI, device): set as
    /// properties, never spliced into the description, so no quoting can break.
    fn configure(&self, _src: &gst::Element) {}

    /// The source produces the requested size itself (no `videoscale`).
    fn sizes_itself(&self) -> bool {
        false
    }

    /// Whether frames come in real time: by nature (a camera), or as the
    /// pipeline file's `live` says (`explicit`).
    fn live(&self, explicit: Option<bool>) -> bool {
        explicit.unwrap_or(false)
    }

    /// A recording that `--realtime` paces at its native rate.
    fn can_pace(&self) -> bool {
        false
    }

    /// The recording's file, for the progress bar and the truncation check.
    fn file(&self) -> Option<&std::path::Path> {
        None
    }

    /// The frame rate (numerator, denominator) in frames per second the
    /// pipeline file declares for this source (`framerate`), used for frames
    /// without a PTS when the caps carry no rate.
    fn declared_framerate(&self) -> Option<(u32, u32)> {
        None
    }

    /// Whether frames come over a network (RTSP, HTTP, …): its failures
    /// are [`SourceError::Network`], with one exit code per kind.
    fn is_network(&self) -> bool {
        false
    }

    /// Whether `reconnect` applies: live network streams and devices, never
    /// files.
    fn reconnects(&self) -> bool {
        false
    }

    /// Whether each buffer's capture time comes from the sender: a
    /// `timestamp/x-ntp` reference timestamp meta holding the sender's
    /// capture wall time ([`crate::frame::CaptureClock::Sender`]).
    fn sender_clock(&self) -> bool {
        false
    }

    /// Whether buffer offsets are the sender's frame numbers, so a jump is
    /// frames lost on the way ([`crate::meter::SourceStats::lost`]).
    fn numbers_frames(&self) -> bool {
        false
    }

    /// Whether the sender said the stream is over: the next end of stream
    /// ends the source for good, without reconnecting.
    fn finished(&self) -> bool {
        false
    }

    /// Why the input could not start, when it ended its stream because of
    /// a failure outside GStreamer (a Zenoh session that did not open).
    fn failure(&self) -> Option<String> {
        None
    }

    /// A short human description (`file /path`, `uri rtsp://…`).
    fn describe(&self) -> String;
}
