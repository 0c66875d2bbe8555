//! The sink kinds, one file each, named like their `kind` string. The line
//! below is their registry: adding a sink is a file plus its name here
//! ([`crate::registry`] looks kinds up).

kinds!(crate::sink::SinkKind: jsonl, depth_png, null, mcap, video, foxglove, #[cfg(feature = "zenoh")] zenoh);
