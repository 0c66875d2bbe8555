//! The stage kinds, one folder each, named like their `kind` string. Each
//! holds its settings (unknown fields rejected), its resolve and build steps
//! and its `Stage`. The line below is their registry: adding a stage kind is
//! a folder plus its name here ([`crate::registry`] looks kinds up).

kinds!(crate::config::resolve::StageKind: image_stats, delay, detect, track, reid, stereo_depth, depth, cascade);
