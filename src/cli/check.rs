//! `percept check`: validate a pipeline without running it and print what would run.

use anyhow::Context;
use clap::Args;
use percept::config::{EdgePlan, Interval, Plan, ResultWait, Schedule, StereoInput};
use percept::registry;
use percept::runtime;
use percept::stage::StageInfo as DetectorInfo;

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
        .map(|s| registry::build_source(s).map(|src| src.describe()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(percept::Error::from)
        .with_context(|| format!("pipeline {} cannot run", plan.path.display()))?;
    // Loading every model checks its tensor contract against its decoder.
    let mut detectors = Vec::new();
    for st in &plan.stages {
        let built = registry::build_stage(st)
            .map_err(|source| percept::Error::Model {
                stage: st.id.clone(),
                source,
            })
            .with_context(|| format!("pipeline {} cannot run", plan.path.display()))?;
        detectors.push(built.info);
    }
    print!(
        "{}",
        percept::redact::redact(&describe(&plan, &launches, &detectors))
    );
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
            "  source {}: {} -> {}{}, {} delivery{}{}\n    gst: {launch}\n",
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
            s.reconnect
                .map(|r| format!(", {}", r.describe()))
                .unwrap_or_default(),
        );
    }
    for p in &plan.stereo {
        let input = match &p.input {
            StereoInput::Pair { left, right } => format!("{left} + {right} by time"),
            StereoInput::SideBySide(s) => format!("{s} split side by side"),
        };
        out += &format!(
            "  stereo {}: {input}, max skew {:.1} ms{}\n",
            p.id,
            p.settings.max_skew_ns as f64 / 1e6,
            p.settings
                .max_wait_ns
                .map(|w| format!(", waits at most {:.1} ms", w as f64 / 1e6))
                .unwrap_or_default()
        );
    }
    for (st, detector) in plan.stages.iter().zip(detectors) {
        let mut schedule = Vec::new();
        match st.interval {
            Interval::Every(1) => {}
            Interval::Every(n) => schedule.push(format!("every {n} frames")),
            Interval::Auto => schedule.push("interval auto".into()),
        }
        match st.schedule {
            Schedule::Async => schedule.push("asynchronous".into()),
            Schedule::Auto => schedule.push(
                "schedule auto (in line while its p95 fits the frame period, else asynchronous)"
                    .into(),
            ),
            Schedule::Inline => {}
        }
        if st.wait_for_result == ResultWait::Deadline {
            schedule.push("frames wait for results until their deadline".into());
        }
        if st.admission && st.schedule != Schedule::Async {
            schedule.push("admission control for frames with deadlines".into());
        }
        if let Some(s) = st.simulate {
            schedule.push(format!("+{:.0} ms simulated", s.as_secs_f64() * 1e3));
        }
        out += &format!(
            "  stage {}: {} on {} (input: {}{})\n",
            st.id,
            st.kind,
            st.streams
                .as_ref()
                .map_or_else(|| "all streams".to_string(), |s| s.join(", ")),
            edge(&st.input),
            schedule
                .iter()
                .map(|s| format!("; {s}"))
                .collect::<String>()
        );
        let settings = st.settings.describe();
        if !settings.is_empty() {
            out += &format!("    {settings}\n");
        }
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
            if sk.kind.needs_path {
                sk.output.to_string()
            } else {
                sk.kind.path_help.to_string()
            },
            edge(&sk.input)
        );
    }
    out
}
