//! Library error types and how the CLI maps them to exit codes.
//!
//! Library code returns these typed errors; only the CLI edge adds `anyhow`
//! context. Exit codes: 2 = bad input or configuration, 1 = run-time failure,
//! 3 = a network source could not be reached or stopped answering (refused,
//! unreachable, timeout, dropped connection), 4 = a network source refused
//! the credentials (401, 403), whatever the protocol.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::source::SourceError;

/// Exit code for bad input or configuration.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for a failure at run time.
pub const EXIT_RUNTIME: i32 = 1;
pub use crate::source::{EXIT_AUTH, EXIT_NETWORK};

/// Any error percept's library can return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    /// A pipeline file that cannot be used.
    Config(#[from] ConfigError),
    #[error(transparent)]
    /// A source that failed.
    Source(#[from] SourceError),
    #[error("stage `{stage}`")]
    /// A stage whose model (or calibration) cannot be loaded.
    Model {
        /// The stage id.
        stage: String,
        #[source]
        /// The model error.
        source: crate::model::ModelError,
    },
    #[error("stage `{stage}` failed to {action}: {message}")]
    /// A stage that failed at start, on a frame it cannot go on from, or at stop.
    Stage {
        /// The stage id.
        stage: String,
        /// What it was doing.
        action: &'static str,
        /// What went wrong.
        message: String,
    },
    #[error("sink `{sink}` could not write {path}")]
    /// A sink that cannot open or write its output.
    Sink {
        /// The sink name.
        sink: String,
        /// Where it writes.
        path: PathBuf,
        #[source]
        /// The I/O error.
        source: std::io::Error,
    },
    #[error("--control {addr}: cannot serve the operations endpoint there: {message}")]
    /// The operations endpoint's address cannot be bound (in use, not local).
    Control {
        /// The address asked for.
        addr: String,
        /// Why not.
        message: String,
    },
    #[error("GStreamer could not be initialised")]
    /// GStreamer could not be initialised.
    GstInit(#[source] gstreamer::glib::Error),
    #[error("thread `{0}` panicked")]
    /// A thread panicked: its name.
    Panic(String),
}

impl Error {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => EXIT_BAD_INPUT,
            Error::Source(SourceError::Network { failure, .. }) => failure.exit_code(),
            Error::Source(
                SourceError::Stalled { network: true, .. }
                | SourceError::Ended { network: true, .. },
            ) => EXIT_NETWORK,
            Error::Source(e) if e.is_bad_input() => EXIT_BAD_INPUT,
            Error::Model { .. } | Error::Control { .. } => EXIT_BAD_INPUT,
            _ => EXIT_RUNTIME,
        }
    }
}
