//! Sinks: where finished frame records go. JSON Lines for now.
//!
//! The runtime flushes a sink whenever its input queue runs empty, so output
//! is prompt when percept keeps up and batched when it is busy, and always
//! flushed at the end, including after an error or Ctrl-C.

mod depth_png;
mod jsonl;

pub use depth_png::DepthPngSink;
pub use jsonl::{JsonlSink, OUTPUT_SCHEMA_VERSION};

use std::io;

use crate::frame::Work;

/// A consumer of finished frames.
pub trait Sink: Send {
    /// Writes one frame's record. `emit_ns` is the monotonic time of output.
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()>;
    /// Pushes buffered output to its destination.
    fn flush(&mut self) -> io::Result<()>;
}
