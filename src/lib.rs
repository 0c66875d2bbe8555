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

pub mod calib;
pub mod cascade;
pub mod clock;
pub mod config;
pub mod cvmat;
pub mod depth;
pub mod detect;
pub mod error;
pub mod eval;
pub mod frame;
pub mod model;
pub mod reid;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod stage;
pub mod stereo;
pub mod track;

pub use error::Error;
