//! Library error types and how the CLI maps them to exit codes.
//!
//! Library code returns these typed errors; only the CLI edge adds `anyhow`
//! context. Exit codes: 2 = bad input or configuration, 1 = run-time failure.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::source::SourceError;

/// Exit code for bad input or configuration.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for a failure at run time.
pub const EXIT_RUNTIME: i32 = 1;

/// Any error percept's library can return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("stage `{stage}`")]
    Model {
        stage: String,
        #[source]
        source: crate::model::ModelError,
    },
    #[error("stage `{stage}` failed to {action}: {message}")]
    Stage {
        stage: String,
        action: &'static str,
        message: String,
    },
    #[error("sink `{sink}` could not write {path}")]
    Sink {
        sink: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("GStreamer could not be initialised")]
    GstInit(#[source] gstreamer::glib::Error),
    #[error("thread `{0}` panicked")]
    Panic(String),
}

impl Error {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => EXIT_BAD_INPUT,
            Error::Source(e) if e.is_bad_input() => EXIT_BAD_INPUT,
            Error::Model { .. } => EXIT_BAD_INPUT,
            _ => EXIT_RUNTIME,
        }
    }
}
