//! percept: a streaming video perception pipeline.
//!
//! ```text
//!  sources (GStreamer → appsink)     one thread per source; frames keep their gst::Buffer
//!       │  Work { frame, record }
//!       ▼
//!  stage → stage → …                 one named thread each, bounded edges (block | drop_oldest)
//!       ▼
//!  sinks                             JSON Lines; the record of a frame is written once, at the end
//! ```
//!
//! A pipeline file ([`config`]) resolves into a [`config::Plan`];
//! [`runtime::run`] builds the threads and edges and returns a summary.
//! See `ARCHITECTURE.md` for one line per module.

/// Declares the kind modules of a folder and the table of their `KIND`s:
/// `kinds!(SinkKind: jsonl, depth_png)` is `pub mod jsonl; pub mod depth_png;`
/// and `pub static KINDS: &[&SinkKind] = &[&jsonl::KIND, &depth_png::KIND];`.
/// Each folder's `mod.rs` has one such line: the registry of its kinds.
macro_rules! kinds {
    ($kind:ty: $($(#[$attr:meta])* $name:ident),+ $(,)?) => {
        $($(#[$attr])* pub mod $name;)+
        /// Every kind of this folder, in the order `percept check` lists them.
        pub static KINDS: &[&$kind] = &[$($(#[$attr])* &$name::KIND),+];
    };
}

// Vocabulary and leaves: they import no stage, sink or source kind.
pub mod clock;
pub mod edge;
pub mod frame;
pub mod geometry;
pub mod meter;
pub mod pool;
pub mod record;
pub mod redact;
pub mod schema;

// Floors: the traits kinds implement, and the engines they share.
pub mod calib;
pub mod cvmat;
pub mod messages;
pub mod model;
pub mod overlay;
#[cfg(feature = "zenoh")]
pub mod pubsub;
pub mod ros2;
pub mod sink;
pub mod source;
pub mod stage;
pub mod stereo;

// Kinds, and the one registry that names them.
pub mod registry;
pub mod sinks;
pub mod sources;
pub mod stages;

// Core: configuration, the runtime, errors, tools.
pub mod config;
pub mod error;
pub mod eval;
pub mod runtime;

pub use error::Error;
