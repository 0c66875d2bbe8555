//! `percept check`: validate a pipeline without running it and print what would run.

use anyhow::Context;
use clap::Args;
use percept::config::{EdgePlan, Plan};
use percept::detect::DetectorInfo;
use percept::runtime;
use percept::source::Source;
use percept::stage;

use super::PipelineArgs;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
}

pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let plan = args.pipeline.load()?;
    runtime::init_gstreamer()?;
    // Building each GStreamer pipeline finds missing plugins and bad properties.
    let launches = plan
        .sources
        .iter()
        .map(|s| Source::build(s).map(|src| src.launch().to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(percept::Error::from)
        .with_context(|| format!("pipeline {} cannot run", plan.path.display()))?;
    // Loading every model checks its tensor contract against its decoder.
    let mut detectors = Vec::new();
    for st in &plan.stages {
        let built = stage::build(st)
            .map_err(|source| percept::Error::Model {
                stage: st.id.clone(),
                source,
            })
            .with_context(|| format!("pipeline {} cannot run", plan.path.display()))?;
        detectors.push(built.detector);
    }
    print!("{}", describe(&plan, &launches, &detectors));
    Ok(())
}

fn edge(e: &EdgePlan) -> String {
    format!(
        "capacity {}, {}",
        e.capacity,
        serde_json::to_value(e.policy)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    )
}

fn describe(plan: &Plan, launches: &[String], detectors: &[Option<DetectorInfo>]) -> String {
    let mut out = format!("pipeline `{}` ({}): OK\n", plan.name, plan.path.display());
    for (s, launch) in plan.sources.iter().zip(launches) {
        out += &format!(
            "  source {}: {} -> {}{}, {} delivery{}\n    gst: {launch}\n",
            s.id,
            s.describe(),
            s.format.to_str(),
            s.size.map(|(w, h)| format!(" {w}x{h}")).unwrap_or_default(),
            serde_json::to_value(s.delivery)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            if s.live {
                ", live"
            } else if s.realtime {
                ", paced in real time"
            } else {
                ""
            },
        );
    }
    for (st, detector) in plan.stages.iter().zip(detectors) {
        out += &format!(
            "  stage {}: {} on {} (input: {})\n",
            st.id,
            st.kind,
            st.streams
                .as_ref()
                .map_or_else(|| "all streams".to_string(), |s| s.join(", ")),
            edge(&st.input)
        );
        if let Some(d) = detector {
            out += &format!(
                "    {}: loaded in {:.1} ms, warm-up run {:.1} ms\n",
                d.description, d.load_ms, d.warmup_ms
            );
        }
    }
    for sk in &plan.sinks {
        out += &format!(
            "  sink {}: {} (input: {})\n",
            sk.kind,
            sk.output,
            edge(&sk.input)
        );
    }
    out
}
