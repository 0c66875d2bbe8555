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
            | SourceError::NoTimestamps { .. } => true,
            SourceError::Stream { bad_input, .. } => *bad_input,
            _ => false,
        }
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

    /// A short human description (`file /path`, `uri rtsp://…`).
    fn describe(&self) -> String;
}
