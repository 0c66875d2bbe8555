//! `percept check`: validate a pipeline without running it and print what would run.

use anyhow::Context;
use clap::Args;
use percept::config::{EdgePlan, Plan};
use percept::runtime;
use percept::source::Source;

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
    print!("{}", describe(&plan, &launches));
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

fn describe(plan: &Plan, launches: &[String]) -> String {
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
    for st in &plan.stages {
        out += &format!(
            "  stage {}: {} on {} (input: {})\n",
            st.id,
            st.kind,
            st.streams
                .as_ref()
                .map_or_else(|| "all streams".to_string(), |s| s.join(", ")),
            edge(&st.input)
        );
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
