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
    /// Pushes buffered output to its destination.
    fn flush(&mut self) -> io::Result<()>;
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
    /// Rejects an output this kind cannot write to, saying why.
    pub check: fn(&OutputPath) -> Result<(), String>,
    /// Opens the output.
    pub open: fn(&OutputPath) -> io::Result<Box<dyn Sink>>,
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
