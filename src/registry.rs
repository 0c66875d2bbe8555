//! The registry: kinds looked up by name. The tables themselves are one line
//! in each kind folder's `mod.rs` (`stages/`, `sinks/`); besides those lines
//! and the CLI shorthands below (`--output`, `--depth-out`), no code outside
//! a kind's own folder names a kind.

use std::io;

use std::sync::Arc;

use crate::config::resolve::{SourceKind, StageKind};
use crate::config::types::{SinkPlan, SourcePlan, StagePlan};
use crate::model::ModelError;
use crate::sink::{Sink, SinkKind};
use crate::sinks;
use crate::source::{Source, SourceError, SourceInput};
use crate::sources;
use crate::stage::Built;
use crate::stages;

/// The stage kinds (their table is `stages/mod.rs`).
pub static STAGES: &[&StageKind] = stages::KINDS;

/// The stage kind called `name`.
pub fn stage_kind(name: &str) -> Option<&'static StageKind> {
    STAGES.iter().copied().find(|k| k.name == name)
}

/// Builds the stage a plan describes. Models load (and warm up) here, before
/// any frame flows, so a bad model fails the run at start.
pub fn build_stage(plan: &StagePlan) -> Result<Built, ModelError> {
    plan.settings.build()
}

/// The source kinds (their table is `sources/mod.rs`).
pub static SOURCES: &[&SourceKind] = sources::KINDS;

/// The source kind called `name`.
pub fn source_kind(name: &str) -> Option<&'static SourceKind> {
    SOURCES.iter().copied().find(|k| k.name == name)
}

/// `--input`: picks the source kind by the form of `raw` (URI, device, file).
pub fn source_from_cli(raw: &str) -> Result<Arc<dyn SourceInput>, String> {
    sources::input_from_cli(raw)
}

/// Builds the source a plan describes (GStreamer elements created and
/// configured, not started): missing plugins and bad properties fail here.
pub fn build_source(plan: &SourcePlan) -> Result<Box<dyn Source>, SourceError> {
    Ok(Box::new(sources::appsink::GstSource::build(plan)?))
}

/// The sink kinds (their table is `sinks/mod.rs`).
pub static SINKS: &[&SinkKind] = sinks::KINDS;

/// The sink kind called `name`.
pub fn sink_kind(name: &str) -> Option<&'static SinkKind> {
    SINKS.iter().copied().find(|k| k.name == name)
}

/// The sink `--output` adds or redirects.
pub fn output_sink() -> &'static SinkKind {
    &sinks::jsonl::KIND
}

/// The sink `--depth-out` adds.
pub fn depth_out_sink() -> &'static SinkKind {
    &sinks::depth_png::KIND
}

/// Opens the sink a plan describes.
pub fn build_sink(plan: &SinkPlan) -> io::Result<Box<dyn Sink>> {
    (plan.kind.open)(&plan.output, &plan.options)
}

/// The sinks' names in summaries and errors: their kind, numbered from 0
/// when a kind appears more than once (`jsonl`, `depth_png`; `jsonl0`, `jsonl1`).
pub fn sink_names(plans: &[SinkPlan]) -> Vec<String> {
    plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let kind = p.kind.name;
            let same = plans.iter().filter(|q| q.kind == p.kind).count();
            if same == 1 {
                kind.to_string()
            } else {
                let n = plans[..i].iter().filter(|q| q.kind == p.kind).count();
                format!("{kind}{n}")
            }
        })
        .collect()
}
