//! Integration tests: the real `percept` binary on real GStreamer sources and media.
//! Media comes from the set-up script (`scripts/setup.sh`); a missing file fails, never skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod batch;
mod calib_fisheye;
mod coco;
mod config_errors;
mod control;
mod depth_camera;
mod detect;
mod failures;
mod fault_injection;
mod golden;
mod inputs;
mod live;
mod models;
mod network;
mod outputs;
mod parsers_never_panic;
mod realtime;
mod recording;
mod ros2;
mod runtime;
mod signals;
mod sources;
mod stereo;
mod track;
#[cfg(feature = "zenoh")]
mod zenoh;
