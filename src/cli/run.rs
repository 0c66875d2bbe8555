//! `percept run`: run a pipeline, print a summary, keep every output produced.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use percept::runtime::{self, RunOptions};

use super::PipelineArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print statistics every N seconds while running.
    #[arg(long, value_name = "SECONDS")]
    stats_every: Option<f64>,
    /// Also write the end-of-run summary as JSON to this file.
    #[arg(long, value_name = "PATH")]
    summary_json: Option<PathBuf>,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Write a stats snapshot as one JSON line to this file every --stats-every
    /// seconds (default 1), for plotting.
    #[arg(long, value_name = "PATH")]
    metrics_out: Option<PathBuf>,
    /// Serve the operations endpoint (HTTP: GET /health, /metrics in
    /// Prometheus text format, /streams) on this address, e.g. 127.0.0.1:9090.
    #[arg(long, value_name = "ADDR:PORT")]
    control: Option<std::net::SocketAddr>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let plan = args.pipeline.load()?;
    let stats_every = match args.stats_every {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(percept::Error::Config(percept::config::ConfigError::Plan {
                path: plan.path.clone(),
                message: format!("--stats-every must be a positive number of seconds, not {s}"),
            })
            .into());
        }
        s => s.map(Duration::from_secs_f64),
    };
    let stop = Arc::new(AtomicBool::new(false));
    install_stop_handler(stop.clone())?;
    let options = RunOptions {
        stop,
        stats_every,
        progress: !args.no_progress,
        quiet_stats: args.metrics_out.is_some() && args.stats_every.is_none(),
        metrics_out: args.metrics_out.clone(),
        control: args.control,
    };

    let outcome = runtime::run(&plan, &options)
        .with_context(|| format!("cannot start pipeline {}", plan.path.display()))?;
    eprintln!("{}", percept::redact::redact(&outcome.summary.to_string()));
    for sink in &plan.sinks {
        eprintln!("  output: {}", sink.output);
    }
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&outcome.summary)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write summary {}", path.display()))?;
    }
    match outcome.error {
        Some(e) => {
            Err(anyhow::Error::new(e).context(format!("pipeline {} failed", plan.path.display())))
        }
        None => Ok(()),
    }
}

/// First Ctrl-C (or SIGTERM): stop the sources and drain. Second: exit at once.
fn install_stop_handler(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("percept: second interrupt, exiting without draining");
            std::process::exit(130);
        }
        eprintln!("percept: stopping sources, draining frames in flight (Ctrl-C again to abort)");
    })
    .context("cannot install the Ctrl-C handler")
}
