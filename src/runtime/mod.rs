//! The runtime: one named thread per source, stage and sink, joined by
//! bounded edges ([`edge`]), with counters and latency histograms ([`stats`]).
//!
//! ```text
//! src:<id> ─┐
//! src:<id> ─┴─▶ [edge] stage:<a> ─▶ [edge] stage:<b> ─▶ [edge] sink:<kind> (one per sink)
//! ```
//! End of stream closes the edges in order, so every stage drains before the
//! sinks flush. A stop request (Ctrl-C) ends the sources only; what is in
//! flight still reaches the sinks. A failure anywhere halts the sources and
//! drains the rest the same way, so output already produced is kept.

pub mod control;
pub mod stats;
pub mod streams;
mod worker;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gstreamer as gst;

use crate::clock;
use crate::config::Plan;
use crate::edge::{self, EdgePlan, EdgePolicy, EdgeRx, Outputs, Shared};
use crate::error::Error;
use crate::meter::Latency;
use crate::registry;
use crate::sink::Sink;
use stats::{RunStats, SinkStats, StageStats, Summary};
use worker::StageWorker;

/// How often the monitor thread wakes to draw progress.
const MONITOR_TICK: Duration = Duration::from_millis(100);

/// How a run is driven from outside.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Set to stop the sources (Ctrl-C); the run drains and ends cleanly.
    pub stop: Arc<AtomicBool>,
    /// Print a stats snapshot this often.
    pub stats_every: Option<Duration>,
    /// Draw a progress bar for file sources (only when stderr is a terminal).
    pub progress: bool,
    /// Append a summary snapshot as one JSON line every `stats_every` (default 1 s).
    pub metrics_out: Option<std::path::PathBuf>,
    /// With `metrics_out`: do not also print the snapshots.
    pub quiet_stats: bool,
    /// Serve the operations endpoint (`/health`, `/metrics`, `/streams`) here.
    pub control: Option<std::net::SocketAddr>,
}

/// The end of a run: its summary, and the error that ended it, if any.
/// Output produced before an error is kept and counted in the summary.
#[derive(Debug)]
pub struct RunOutcome {
    /// Counters and latencies of the run.
    pub summary: Summary,
    /// The error that ended the run, if one did.
    pub error: Option<Error>,
}

/// Initialises GStreamer once per process. GStreamer's own debug log
/// (`GST_DEBUG`) is printed through [`crate::redact`], so credentials in
/// URIs that elements log are masked there too.
pub fn init_gstreamer() -> Result<(), Error> {
    static LOG: std::sync::Once = std::sync::Once::new();
    gst::init().map_err(Error::GstInit)?;
    LOG.call_once(|| {
        gst::log::remove_default_log_function();
        gst::log::add_log_function(|category, level, file, function, line, object, message| {
            use std::io::Write;
            let object = object.map(|o| o.to_string()).unwrap_or_default();
            let text = format!(
                "gst {level:?} {} {file}:{line}:{function}:{object} {}\n",
                category.name(),
                message.get().as_deref().map_or("", |m| m.as_str())
            );
            // Nothing to do when stderr is gone.
            let _ = std::io::stderr().write_all(crate::redact::redact(&text).as_bytes());
        });
    });
    Ok(())
}

/// Runs a plan to completion. Errors before the first frame (a pipeline that
/// cannot be built, an output that cannot be opened) return `Err`.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<RunOutcome, Error> {
    init_gstreamer()?;
    // Bound before anything starts: an address in use fails the run at once.
    let control_server = options.control.map(control::bind).transpose()?;
    let sources = plan
        .sources
        .iter()
        .map(registry::build_source)
        .collect::<Result<Vec<_>, _>>()?;
    let mut end_senders = Vec::with_capacity(plan.stages.len());
    // Models load before any thread starts, so a bad one fails the run at once.
    let mut built = Vec::with_capacity(plan.stages.len());
    for stage_plan in &plan.stages {
        let stage = registry::build_stage(stage_plan).map_err(|source| Error::Model {
            stage: stage_plan.id.clone(),
            source,
        })?;
        if let Some(info) = &stage.info {
            tracing::info!(stage = %stage_plan.id, "{}: loaded in {:.1} ms, warm-up {:.1} ms", info.description, info.load_ms, info.warmup_ms);
        }
        // `instances`: more copies from the same settings, each its own session.
        let mut extra = Vec::with_capacity(stage_plan.instances.saturating_sub(1));
        for _ in 1..stage_plan.instances {
            let copy = registry::build_stage(stage_plan).map_err(|source| Error::Model {
                stage: stage_plan.id.clone(),
                source,
            })?;
            extra.push(copy.stage);
        }
        built.push((stage, extra));
    }
    let names = registry::sink_names(&plan.sinks);
    let mut sinks: Vec<(String, Box<dyn Sink>, &crate::config::SinkPlan)> = Vec::new();
    for (i, (s, name)) in plan.sinks.iter().zip(names).enumerate() {
        let sink = registry::build_sink(s).map_err(|source| {
            // An option that only fails when used (a port in use) is bad input.
            match source
                .get_ref()
                .and_then(|e| e.downcast_ref::<crate::sink::SinkCheckError>())
            {
                Some(e) => Error::Config(crate::config::ConfigError::Plan {
                    path: plan.path.clone(),
                    message: format!("`sink[{i}].{}`: {}", e.field, e.message),
                }),
                None => Error::Sink {
                    sink: name.clone(),
                    path: s.output.to_string().into(),
                    source,
                },
            }
        })?;
        sinks.push((name, sink, s));
    }

    let halt = Arc::new(AtomicBool::new(false));
    let mut stats = RunStats::default();
    let mut threads: Vec<(String, JoinHandle<Result<(), Error>>)> = Vec::new();
    let started = Instant::now();

    // Sinks first, so every producer has somewhere to send.
    let mut sink_edges = Vec::new();
    for (name, sink, sink_plan) in sinks {
        let (tx, rx) = edge::edge(&name, sink_plan.input);
        stats.edges.push(tx.stats().clone());
        let sink_stats = Arc::new(SinkStats {
            name: name.clone(),
            written: AtomicU64::new(0),
            latency: Latency::default(),
            with_deadline: AtomicU64::new(0),
            deadline_missed: AtomicU64::new(0),
            dropped: sink.dropped(),
        });
        stats.sinks.push(sink_stats.clone());
        let path = sink_plan.output.to_string();
        let halt = halt.clone();
        threads.push(spawn(format!("sink:{name}"), move || {
            let result = sink_loop(sink, &rx, &sink_stats).map_err(|source| Error::Sink {
                sink: sink_stats.name.clone(),
                path: path.into(),
                source,
            });
            if result.is_err() {
                halt.store(true, Ordering::Relaxed);
            }
            result
        })?);
        sink_edges.push(tx);
    }

    // Stages from last to first, each sending into the one after it.
    let mut downstream = Outputs::Sinks(sink_edges);
    for stage_plan in plan.stages.iter().rev() {
        let (tx, rx) = edge::edge(&stage_plan.id, stage_plan.input);
        stats.edges.push(tx.stats().clone());
        let stage_stats = Arc::new(StageStats::new(&stage_plan.id));
        stats.stages.insert(0, stage_stats.clone());
        let Some((built, extra)) = built.pop() else {
            break;
        };
        let (end_tx, end_rx) = streams::end_channel();
        end_senders.push(end_tx);
        let worker =
            StageWorker::new(stage_plan, built.stage, stage_stats, end_rx).with_instances(extra);
        let out = std::mem::replace(&mut downstream, Outputs::Stage(tx));
        let halt = halt.clone();
        threads.push(spawn(format!("stage:{}", stage_plan.id), move || {
            let result = worker.run(&rx, &out);
            if result.is_err() {
                halt.store(true, Ordering::Relaxed);
            }
            result
        })?);
    }

    // Stereo pairs: their sources feed a pairing thread, which feeds the stages.
    let mut source_outputs: Vec<Option<Outputs>> = vec![None; plan.sources.len()];
    for pair in &plan.stereo {
        let pair_stats = Arc::new(crate::meter::PairStats::default());
        stats.pairs.push((pair.id.clone(), pair_stats.clone()));
        let index = |id: &str| plan.sources.iter().position(|s| s.id == id);
        let edge_plan = EdgePlan {
            capacity: edge::DEFAULT_QUEUE_CAPACITY,
            policy: if pair.settings.max_wait_ns.is_some() {
                EdgePolicy::DropOldest
            } else {
                EdgePolicy::Block
            },
        };
        let out = downstream.clone();
        let halt = halt.clone();
        let name = format!("pair:{}", pair.id);
        match &pair.input {
            crate::config::StereoInput::Pair { left, right } => {
                let (ltx, lrx) = edge::edge(&format!("{}/left", pair.id), edge_plan);
                let (rtx, rrx) = edge::edge(&format!("{}/right", pair.id), edge_plan);
                stats.edges.push(ltx.stats().clone());
                stats.edges.push(rtx.stats().clone());
                if let (Some(l), Some(r)) = (index(left), index(right)) {
                    source_outputs[l] = Some(Outputs::Stage(ltx));
                    source_outputs[r] = Some(Outputs::Stage(rtx));
                }
                let pairer = crate::stereo::Pairer::new(&pair.id, pair.settings, pair_stats);
                threads.push(spawn(name, move || {
                    crate::stereo::pair_loop(pairer, &lrx, &rrx, &out);
                    Ok(())
                })?);
            }
            crate::config::StereoInput::SideBySide(source) => {
                let (tx, rx) = edge::edge(&pair.id, edge_plan);
                stats.edges.push(tx.stats().clone());
                if let Some(i) = index(source) {
                    source_outputs[i] = Some(Outputs::Stage(tx));
                }
                let split = crate::stereo::SideBySide::new(&pair.id, pair_stats);
                let id = pair.id.clone();
                threads.push(spawn(name, move || {
                    let result = crate::stereo::split_loop(split, &rx, &out).map_err(|message| {
                        Error::Stage {
                            stage: format!("stereo {id}"),
                            action: "split side-by-side frames",
                            message,
                        }
                    });
                    if result.is_err() {
                        halt.store(true, Ordering::Relaxed);
                    }
                    result
                })?);
            }
        }
    }

    let stats = Arc::new(stats);
    let streams = streams::Streams::new(
        plan,
        downstream,
        stats.clone(),
        options.stop.clone(),
        halt.clone(),
        end_senders,
    );
    for ((source, source_plan), paired) in
        sources.into_iter().zip(&plan.sources).zip(source_outputs)
    {
        streams
            .start(source, source_plan, paired, false)
            .map_err(|e| Error::Stage {
                stage: format!("src:{}", source_plan.id),
                action: "spawn its thread",
                message: e.to_string(),
            })?;
    }

    // Dropped when the run ends: wakes the monitor at once instead of at its next tick.
    let (done, done_rx) = crossbeam_channel::bounded::<()>(1);
    let monitor = start_monitor(plan, options, stats.clone(), done_rx, started)?;
    let control = control_server
        .map(|server| {
            control::Control::serve(server, plan, stats.clone(), streams.clone(), started)
        })
        .transpose()?;

    // Join producers before consumers so the first error reported is the cause:
    // the sources (when none is left running), then the rest, last made first.
    let sources = streams.wait();
    let mut error = None;
    for (name, handle) in sources.into_iter().chain(threads.into_iter().rev()) {
        let result = handle.join().unwrap_or_else(|_| Err(Error::Panic(name)));
        if let Err(e) = result {
            tracing::debug!("{e}");
            error.get_or_insert(e);
        }
    }
    drop(done);
    if let Some(m) = monitor {
        let _ = m.join();
    }
    if let Some(c) = control {
        c.finish();
    }
    let stopped = options.stop.load(Ordering::Relaxed);
    Ok(RunOutcome {
        summary: stats.summary(&plan.name, started.elapsed(), stopped),
        error,
    })
}

fn spawn(
    name: String,
    f: impl FnOnce() -> Result<(), Error> + Send + 'static,
) -> Result<(String, JoinHandle<Result<(), Error>>), Error> {
    let handle = thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| Error::Stage {
            stage: name.clone(),
            action: "spawn its thread",
            message: e.to_string(),
        })?;
    Ok((name, handle))
}

/// Writes until the edge closes; flushes whenever the queue runs empty.
fn sink_loop(
    mut sink: Box<dyn Sink>,
    rx: &EdgeRx<Shared>,
    stats: &SinkStats,
) -> std::io::Result<()> {
    loop {
        let work = match rx.try_recv() {
            Ok(work) => work,
            Err(true) => break,
            Err(false) => {
                sink.flush()?;
                match rx.recv() {
                    Some(work) => work,
                    None => break,
                }
            }
        };
        let emit_ns = clock::monotonic_ns();
        sink.write(&work, emit_ns)?;
        stats.written.fetch_add(1, Ordering::Relaxed);
        stats
            .latency
            .record_ns(emit_ns.saturating_sub(work.frame.meta.capture_ns));
        if let Some(deadline) = work.frame.meta.deadline_ns {
            stats.with_deadline.fetch_add(1, Ordering::Relaxed);
            if emit_ns > deadline {
                stats.deadline_missed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    sink.finish()
}

/// Progress bar and periodic stats, on a thread of their own.
fn start_monitor(
    plan: &Plan,
    options: &RunOptions,
    stats: Arc<RunStats>,
    done: crossbeam_channel::Receiver<()>,
    started: Instant,
) -> Result<Option<JoinHandle<()>>, Error> {
    let has_file = plan.sources.iter().any(|s| s.input.file().is_some());
    let bar = (options.progress && has_file && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s media  {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let every = options.stats_every;
    let print_every = every.filter(|_| !options.quiet_stats);
    let mut metrics = match &options.metrics_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| Error::Sink {
                sink: "metrics".into(),
                path: path.clone(),
                source,
            })?,
        )),
        None => None,
    };
    let metrics_every = every.unwrap_or(Duration::from_secs(1));
    let name = plan.name.clone();
    let handle = thread::Builder::new()
        .name("monitor".into())
        .spawn(move || {
            let mut next_stats = print_every.map(|e| Instant::now() + e);
            let mut next_metrics = Instant::now() + metrics_every;
            loop {
                // Ticks until the run drops the sender (Disconnected).
                let ended = !matches!(
                    done.recv_timeout(MONITOR_TICK),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout)
                );
                stats.memory.sample(started.elapsed());
                if ended {
                    break;
                }
                if let Some(out) = metrics.as_mut()
                    && Instant::now() >= next_metrics
                {
                    let snapshot = stats.interval(&name, started.elapsed());
                    // A metrics line that cannot be written is not worth failing the run.
                    if serde_json::to_writer(&mut *out, &snapshot).is_ok() {
                        let _ = writeln!(out).and_then(|()| out.flush());
                    }
                    next_metrics += metrics_every;
                }
                if let Some(bar) = &bar {
                    let (pos, len) = stats.sources().iter().fold((0, 0), |(p, l), (_, s)| {
                        (
                            p.max(s.position_ns.load(Ordering::Relaxed)),
                            l.max(s.duration_ns.load(Ordering::Relaxed)),
                        )
                    });
                    bar.set_length(len / 1_000_000_000);
                    bar.set_position(pos / 1_000_000_000);
                    let frames: u64 = stats
                        .sinks
                        .first()
                        .map_or(0, |s| s.written.load(Ordering::Relaxed));
                    bar.set_message(format!("{frames} frames"));
                }
                if let (Some(at), Some(every)) = (next_stats, print_every)
                    && Instant::now() >= at
                {
                    let snapshot = stats.summary(&name, started.elapsed(), false);
                    match &bar {
                        Some(bar) => bar.suspend(|| eprintln!("{snapshot}")),
                        None => eprintln!("{snapshot}"),
                    }
                    next_stats = Some(at + every);
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        })
        .map_err(|e| Error::Stage {
            stage: "monitor".into(),
            action: "spawn its thread",
            message: e.to_string(),
        })?;
    Ok(Some(handle))
}
