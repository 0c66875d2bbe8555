//! The `Sink` trait: where finished frame records go. Each kind lives in
//! [`crate::sinks`] and is named in [`crate::registry`] only.
//!
//! The runtime flushes a sink whenever its input queue runs empty, so output
//! is prompt when percept keeps up and batched when it is busy, and always
//! flushed at the end, including after an error or Ctrl-C.

use std::io;

use crate::record::Work;

/// A consumer of finished frames.
pub trait Sink: Send {
    /// Writes one frame's record. `emit_ns` is the monotonic time of output.
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()>;
    /// Pushes buffered output to its destination. Called whenever the
    /// sink's queue runs empty, so it must be cheap when nothing is pending.
    fn flush(&mut self) -> io::Result<()>;
    /// Ends the output at the end of the run (end of stream, Ctrl-C, or
    /// another thread's failure): writes trailers and indexes. Default: [`Sink::flush`].
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// A count of messages the sink dropped rather than wait (a live
    /// view's slow clients), for the summary. Default: none kept.
    fn dropped(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }
}

/// A sink table's own fields (everything but `kind`, `path` and `queue`),
/// as written in the pipeline file. Each kind reads its typed settings from
/// it ([`SinkKind::check`] at plan time, [`SinkKind::open`] at start).
pub type SinkOptions = toml::Table;

/// A sink output or option that a kind rejects: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkCheckError {
    /// `path`, or the name of the option at fault.
    pub field: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl SinkCheckError {
    /// An error about `path`.
    pub fn path(message: impl Into<String>) -> SinkCheckError {
        SinkCheckError {
            field: "path".into(),
            message: message.into(),
        }
    }

    /// An error about the option `field`.
    pub fn option(field: &str, message: impl Into<String>) -> SinkCheckError {
        SinkCheckError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::error::Error for SinkCheckError {}

impl std::fmt::Display for SinkCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// Reads a kind's typed options from its table (`T` should
/// `#[serde(deny_unknown_fields)]` and every field be optional). The error
/// names the field at fault: the first one that does not read on its own.
pub fn typed_options<T: serde::de::DeserializeOwned>(
    options: &SinkOptions,
) -> Result<T, SinkCheckError> {
    let read = |t: &SinkOptions| -> Result<T, String> {
        toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())
    };
    read(options).map_err(|message| {
        for (k, v) in options {
            let mut one = SinkOptions::new();
            one.insert(k.clone(), v.clone());
            if let Err(message) = read(&one) {
                return SinkCheckError::option(k, message);
            }
        }
        SinkCheckError::option("sink", message)
    })
}

/// [`SinkKind::check`] of a kind with no options: only `path` is checked, by `path_ok`.
pub fn no_options(options: &SinkOptions) -> Result<(), SinkCheckError> {
    match options.keys().next() {
        None => Ok(()),
        Some(k) => Err(SinkCheckError::option(
            k,
            format!("unknown field `{k}`, expected one of `kind`, `path`, `queue`"),
        )),
    }
}

/// Where a sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputPath {
    /// Standard output (`-` in a pipeline file).
    Stdout,
    /// A file or folder.
    File(std::path::PathBuf),
}

impl std::fmt::Display for OutputPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputPath::Stdout => f.write_str("standard output"),
            OutputPath::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A sink kind as the registry lists it: its name in pipeline files, how
/// its output is checked (by `percept check` and before a run) and how it
/// is opened. Each kind's file under `sinks/` defines one.
pub struct SinkKind {
    /// The `kind` string.
    pub name: &'static str,
    /// What `path` means, for error messages.
    pub path_help: &'static str,
    /// Whether a sink table must give `path` (a kind without one, such as
    /// the live view, gets [`OutputPath::Stdout`] when `path` is left out).
    pub needs_path: bool,
    /// The kind's own option names (besides `kind`, `path`, `queue`), for error messages.
    pub options: &'static [&'static str],
    /// Those of its options that name files: at plan time `${VAR}` and `~`
    /// expand and a relative path starts from the pipeline file's folder.
    pub path_options: &'static [&'static str],
    /// Rejects an output or option this kind cannot work with, naming the
    /// field and saying why (`percept check` and plan time: nothing is opened).
    pub check: fn(&OutputPath, &SinkOptions) -> Result<(), SinkCheckError>,
    /// Opens the output (at the start of a run, before any frame flows).
    pub open: fn(&OutputPath, &SinkOptions) -> io::Result<Box<dyn Sink>>,
}

impl std::fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for SinkKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
