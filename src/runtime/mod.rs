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

pub mod edge;
pub mod stats;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gstreamer as gst;

use crate::clock;
use crate::config::{Plan, SourceInput, StagePlan};
use crate::error::Error;
use crate::frame::{Failure, Work};
use crate::sink::{JsonlSink, Sink};
use crate::source::{Source, SourceStats};
use crate::stage::{self, Stage};
use edge::{EdgeRx, Outputs};
use stats::{Latency, RunStats, SinkStats, StageStats, Summary};

/// How often the monitor thread wakes to draw progress.
const MONITOR_TICK: Duration = Duration::from_millis(100);
/// A stage skipping every frame for its deadline still runs once this often.
const PROBE_AFTER: Duration = Duration::from_secs(1);
/// How often a pairing thread with nothing to read checks its waiting frames.
const PAIR_TICK: Duration = Duration::from_millis(5);

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
}

/// The end of a run: its summary, and the error that ended it, if any.
/// Output produced before an error is kept and counted in the summary.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    pub error: Option<Error>,
}

/// Initialises GStreamer once per process.
pub fn init_gstreamer() -> Result<(), Error> {
    gst::init().map_err(Error::GstInit)
}

/// Runs a plan to completion. Errors before the first frame (a pipeline that
/// cannot be built, an output that cannot be opened) return `Err`.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<RunOutcome, Error> {
    init_gstreamer()?;
    let sources = plan
        .sources
        .iter()
        .map(Source::build)
        .collect::<Result<Vec<_>, _>>()?;
    // Models load before any thread starts, so a bad one fails the run at once.
    let mut built = Vec::with_capacity(plan.stages.len());
    for stage_plan in &plan.stages {
        let stage = stage::build(stage_plan).map_err(|source| Error::Model {
            stage: stage_plan.id.clone(),
            source,
        })?;
        if let Some(info) = &stage.detector {
            tracing::info!(stage = %stage_plan.id, "{}: loaded in {:.1} ms, warm-up {:.1} ms", info.description, info.load_ms, info.warmup_ms);
        }
        built.push(stage);
    }
    let mut sinks: Vec<(String, Box<dyn Sink>, &crate::config::SinkPlan)> = Vec::new();
    for (i, s) in plan.sinks.iter().enumerate() {
        let name = if plan.sinks.len() == 1 {
            "jsonl".to_string()
        } else {
            format!("jsonl{i}")
        };
        let sink: std::io::Result<Box<dyn Sink>> = match (s.kind, &s.output) {
            (crate::config::SinkKind::DepthPng, crate::config::OutputPath::File(dir)) => {
                crate::sink::DepthPngSink::create(dir.clone()).map(|x| Box::new(x) as Box<dyn Sink>)
            }
            (crate::config::SinkKind::DepthPng, _) => Err(std::io::Error::other(
                "depth_png needs a folder, not standard output",
            )),
            _ => JsonlSink::create(&s.output).map(|x| Box::new(x) as Box<dyn Sink>),
        };
        let sink = sink.map_err(|source| Error::Sink {
            sink: name.clone(),
            path: s.output.to_string().into(),
            source,
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
    let mut downstream = Outputs::new(sink_edges);
    for stage_plan in plan.stages.iter().rev() {
        let (tx, rx) = edge::edge(&stage_plan.id, stage_plan.input);
        stats.edges.push(tx.stats().clone());
        let stage_stats = Arc::new(StageStats::new(&stage_plan.id));
        stats.stages.insert(0, stage_stats.clone());
        let Some(built) = built.pop() else {
            break;
        };
        let worker = StageWorker::new(stage_plan, built.stage, stage_stats);
        let out = std::mem::replace(&mut downstream, Outputs::new(vec![tx]));
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
        let pair_stats = Arc::new(crate::stereo::PairStats::default());
        stats.pairs.push((pair.id.clone(), pair_stats.clone()));
        let index = |id: &str| plan.sources.iter().position(|s| s.id == id);
        let edge_plan = crate::config::EdgePlan {
            capacity: crate::config::plan::DEFAULT_QUEUE_CAPACITY,
            policy: if pair.settings.max_wait_ns.is_some() {
                crate::config::EdgePolicy::DropOldest
            } else {
                crate::config::EdgePolicy::Block
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
                    source_outputs[l] = Some(Outputs::new(vec![ltx]));
                    source_outputs[r] = Some(Outputs::new(vec![rtx]));
                }
                let pairer = crate::stereo::Pairer::new(&pair.id, pair.settings, pair_stats);
                threads.push(spawn(name, move || {
                    pair_loop(pairer, &lrx, &rrx, &out);
                    Ok(())
                })?);
            }
            crate::config::StereoInput::SideBySide(source) => {
                let (tx, rx) = edge::edge(&pair.id, edge_plan);
                stats.edges.push(tx.stats().clone());
                if let Some(i) = index(source) {
                    source_outputs[i] = Some(Outputs::new(vec![tx]));
                }
                let mut split = crate::stereo::SideBySide::new(&pair.id, pair_stats);
                let id = pair.id.clone();
                threads.push(spawn(name, move || {
                    while let Some(work) = rx.recv() {
                        let work = split.split(work).map_err(|message| Error::Stage {
                            stage: format!("stereo {id}"),
                            action: "split side-by-side frames",
                            message,
                        });
                        let work = match work {
                            Ok(w) => w,
                            Err(e) => {
                                halt.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        };
                        if out.send(work).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })?);
            }
        }
    }

    for ((source, source_plan), own_out) in
        sources.into_iter().zip(&plan.sources).zip(source_outputs)
    {
        let id = source_plan.id.clone();
        let source_stats = Arc::new(SourceStats::default());
        stats.sources.push((id.clone(), source_stats.clone()));
        let out = own_out.unwrap_or_else(|| downstream.clone());
        let stop = options.stop.clone();
        let halt = halt.clone();
        threads.push(spawn(format!("src:{id}"), move || {
            let should_stop = || stop.load(Ordering::Relaxed) || halt.load(Ordering::Relaxed);
            let result = source
                .run(&out, &should_stop, &source_stats)
                .map_err(Error::from);
            if result.is_err() {
                halt.store(true, Ordering::Relaxed);
            }
            result
        })?);
    }
    drop(downstream);

    let stats = Arc::new(stats);
    let done = Arc::new(AtomicBool::new(false));
    let monitor = start_monitor(plan, options, stats.clone(), done.clone(), started)?;

    // Join producers before consumers so the first error reported is the cause.
    let mut error = None;
    for (name, handle) in threads.into_iter().rev() {
        let result = handle.join().unwrap_or_else(|_| Err(Error::Panic(name)));
        if let Err(e) = result {
            tracing::debug!("{e}");
            error.get_or_insert(e);
        }
    }
    done.store(true, Ordering::Relaxed);
    if let Some(m) = monitor {
        let _ = m.join();
    }
    let stopped = options.stop.load(Ordering::Relaxed);
    Ok(RunOutcome {
        summary: stats.summary(&plan.name, started.elapsed(), stopped),
        error,
    })
}

/// Pairs two edges' frames by time until both end (see [`crate::stereo::Pairer`]).
fn pair_loop(mut pairer: crate::stereo::Pairer, left: &EdgeRx, right: &EdgeRx, out: &Outputs) {
    use crate::stereo::Side;
    let mut ended = [false, false];
    let mut closed = false;
    while !pairer.done() && !closed {
        let never = crossbeam_channel::never();
        let l = if ended[0] || !pairer.wants(Side::Left) {
            &never
        } else {
            left.receiver()
        };
        let r = if ended[1] || !pairer.wants(Side::Right) {
            &never
        } else {
            right.receiver()
        };
        crossbeam_channel::select! {
            recv(l) -> m => match m {
                Ok(w) => pairer.push(Side::Left, w, clock::monotonic_ns()),
                Err(_) => { ended[0] = true; pairer.end(Side::Left); }
            },
            recv(r) -> m => match m {
                Ok(w) => pairer.push(Side::Right, w, clock::monotonic_ns()),
                Err(_) => { ended[1] = true; pairer.end(Side::Right); }
            },
            default(PAIR_TICK) => {}
        }
        pairer.poll(clock::monotonic_ns(), |w| closed |= out.send(w).is_err());
    }
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
fn sink_loop(mut sink: Box<dyn Sink>, rx: &EdgeRx, stats: &SinkStats) -> std::io::Result<()> {
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
    sink.flush()
}

/// A stage on its thread: filter by stream, admission control, interval,
/// time, record failures and skips, forward.
struct StageWorker {
    id: Arc<str>,
    streams: Option<Vec<String>>,
    stage: Box<dyn Stage>,
    stats: Arc<StageStats>,
    admission: bool,
    interval: crate::config::Interval,
    simulate: Option<Duration>,
    recent: stats::RecentLatency,
    /// Frames seen per stream, for `interval`.
    counters: Vec<(Arc<str>, u64)>,
    last_run_ns: u64,
    warned: bool,
    asynchronous: bool,
}

/// An asynchronous stage's finished frame, back from its helper thread.
struct Finished {
    stream: Arc<str>,
    /// The frame's time, seconds.
    t_s: f64,
    record: crate::frame::Record,
    result: Result<(), stage::StageError>,
    took_ns: u64,
}

/// Stands in for a stage that moved to its helper thread.
struct Idle;

impl Stage for Idle {
    fn process(
        &mut self,
        _: &crate::frame::Frame,
        _: &mut crate::frame::Record,
    ) -> Result<(), stage::StageError> {
        Ok(())
    }
}

impl StageWorker {
    fn new(plan: &StagePlan, stage: Box<dyn Stage>, stats: Arc<StageStats>) -> StageWorker {
        StageWorker {
            id: Arc::from(plan.id.as_str()),
            streams: plan.streams.clone(),
            stage,
            stats,
            admission: plan.admission,
            interval: plan.interval,
            simulate: plan.simulate,
            recent: stats::RecentLatency::new(),
            counters: Vec::new(),
            last_run_ns: 0,
            warned: false,
            asynchronous: plan.asynchronous,
        }
    }

    /// Asynchronous mode: a helper thread works on one frame at a time while
    /// the frames keep flowing; a finished result rides to the tracker on the
    /// next frame of its stream (`Record::late`). Frames that arrive while the
    /// helper is busy are skipped (`busy`); the one it takes is marked `async`.
    fn run_beside(mut self, rx: &EdgeRx, out: &Outputs) -> Result<(), Error> {
        let (job_tx, job_rx) = crossbeam_channel::bounded::<crate::frame::Frame>(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<Finished>(1);
        let mut stage = std::mem::replace(&mut self.stage, Box::new(Idle));
        let simulate = self.simulate;
        let id = self.id.clone();
        let helper = thread::Builder::new()
            .name(format!("stage:{id}:async"))
            .spawn(move || -> Result<(), stage::StageError> {
                stage.start()?;
                while let Ok(frame) = job_rx.recv() {
                    let t0 = clock::monotonic_ns();
                    let mut record = crate::frame::Record::default();
                    let result = stage.process(&frame, &mut record);
                    if let Some(extra) = simulate {
                        thread::sleep(extra);
                    }
                    let meta = &frame.meta;
                    let t_s = meta.pts_ns.unwrap_or(meta.capture_ns) as f64 / 1e9;
                    let took = clock::monotonic_ns() - t0;
                    if done_tx
                        .send(Finished {
                            stream: meta.stream.clone(),
                            t_s,
                            record,
                            result,
                            took_ns: took,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
                stage.stop()
            })
            .map_err(|e| Error::Stage {
                stage: id.to_string(),
                action: "spawn its helper thread",
                message: e.to_string(),
            })?;
        let mut busy = false;
        let mut ready: Vec<Finished> = Vec::new();
        while let Some(mut work) = rx.recv() {
            if let Ok(done) = done_rx.try_recv() {
                busy = false;
                self.stats.latency.record_ns(done.took_ns);
                self.stats.processed.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = &done.result {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(stage = %self.id, "{e}");
                }
                ready.push(done);
            }
            if self.applies_to(&work) {
                let stream = &work.frame.meta.stream;
                if let Some(i) = ready.iter().position(|d| d.stream == *stream) {
                    let done = ready.swap_remove(i);
                    if done.result.is_ok()
                        && let Some(detections) = done.record.detections
                    {
                        work.record.late = Some(crate::frame::LateDetections {
                            t_s: done.t_s,
                            detections,
                        });
                    }
                }
                let t0 = clock::monotonic_ns();
                let reason = match self.skip_reason(&work, t0) {
                    Some(reason) => reason,
                    None if busy => "busy",
                    None => {
                        busy = true;
                        self.last_run_ns = t0;
                        if job_tx.send(work.frame.clone()).is_err() {
                            break;
                        }
                        "async"
                    }
                };
                let counter = match reason {
                    "deadline" => Some(&self.stats.skipped_deadline),
                    "interval" => Some(&self.stats.skipped_interval),
                    "busy" => Some(&self.stats.skipped_busy),
                    _ => None,
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                work.record.skipped.push(crate::frame::Skip {
                    stage: self.id.clone(),
                    reason,
                });
            }
            if out.send(work).is_err() {
                break;
            }
        }
        drop(job_tx);
        drop(done_rx);
        let result = helper
            .join()
            .unwrap_or_else(|_| Err(stage::StageError("panicked".into())));
        result.map_err(|e| Error::Stage {
            stage: id.to_string(),
            action: "run",
            message: e.0,
        })
    }

    /// Why this frame should not be worked on, if it should not.
    fn skip_reason(&mut self, work: &Work, now_ns: u64) -> Option<&'static str> {
        let meta = &work.frame.meta;
        let every = match self.interval {
            crate::config::Interval::Every(n) => u64::from(n),
            crate::config::Interval::Auto => {
                let period = meta
                    .duration_ns
                    .filter(|d| *d > 0)
                    .or(meta.deadline_ns.map(|d| d.saturating_sub(meta.capture_ns)))
                    .unwrap_or(crate::source::DEFAULT_PERIOD_NS)
                    .max(1);
                self.recent.p95().map_or(1, |p| p.div_ceil(period).max(1))
            }
        };
        let count = match self.counters.iter_mut().find(|(s, _)| *s == meta.stream) {
            Some((_, c)) => c,
            None => {
                self.counters.push((meta.stream.clone(), 0));
                let last = self.counters.len() - 1;
                &mut self.counters[last].1
            }
        };
        let turn = (*count).is_multiple_of(every);
        *count += 1;
        if !turn {
            return Some("interval");
        }
        if self.admission
            && let (Some(deadline), Some(p95)) = (meta.deadline_ns, self.recent.p95())
            && now_ns + p95 > deadline
        {
            let budget = deadline.saturating_sub(meta.capture_ns);
            if p95 > budget && !self.warned {
                self.warned = true;
                tracing::warn!(
                    stage = %self.id,
                    "recent p95 latency {:.1} ms exceeds the frame budget {:.1} ms: it runs only once per {} s to re-measure; raise `budget_ms`",
                    p95 as f64 / 1e6,
                    budget as f64 / 1e6,
                    PROBE_AFTER.as_secs_f64()
                );
            }
            // A stage that has not run for a while runs anyway, so that its
            // estimate follows the load down again.
            if now_ns.saturating_sub(self.last_run_ns) < PROBE_AFTER.as_nanos() as u64 {
                return Some("deadline");
            }
        }
        None
    }

    fn applies_to(&self, work: &Work) -> bool {
        self.streams
            .as_ref()
            .is_none_or(|s| s.iter().any(|id| **id == *work.frame.meta.stream))
    }

    fn run(mut self, rx: &EdgeRx, out: &Outputs) -> Result<(), Error> {
        if self.asynchronous {
            return self.run_beside(rx, out);
        }
        let id = self.id.clone();
        let stage_error = |action, e: stage::StageError| Error::Stage {
            stage: id.to_string(),
            action,
            message: e.0,
        };
        self.stage.start().map_err(|e| stage_error("start", e))?;
        while let Some(mut work) = rx.recv() {
            if self.applies_to(&work) {
                let t0 = clock::monotonic_ns();
                if let Some(reason) = self.skip_reason(&work, t0) {
                    let counter = if reason == "deadline" {
                        &self.stats.skipped_deadline
                    } else {
                        &self.stats.skipped_interval
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    work.record.skipped.push(crate::frame::Skip {
                        stage: self.id.clone(),
                        reason,
                    });
                    if out.send(work).is_err() {
                        break;
                    }
                    continue;
                }
                self.last_run_ns = t0;
                let result = self.stage.process(&work.frame, &mut work.record);
                if let Some(extra) = self.simulate {
                    thread::sleep(extra);
                }
                let took = clock::monotonic_ns() - t0;
                self.recent.record(took);
                self.stats.latency.record_ns(took);
                self.stats.processed.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = result {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if self.stage.fatal() {
                        // Frames already out are kept; this one and the rest are not.
                        return Err(stage_error("process frames", e));
                    }
                    tracing::warn!(stage = %self.id, seq = work.frame.meta.seq, "{e}");
                    work.record.failed.push(Failure {
                        stage: self.id.clone(),
                        error: e.0,
                    });
                }
            }
            if out.send(work).is_err() {
                break;
            }
        }
        self.stage.stop().map_err(|e| stage_error("stop", e))
    }
}

/// Progress bar and periodic stats, on a thread of their own.
fn start_monitor(
    plan: &Plan,
    options: &RunOptions,
    stats: Arc<RunStats>,
    done: Arc<AtomicBool>,
    started: Instant,
) -> Result<Option<JoinHandle<()>>, Error> {
    let has_file = plan
        .sources
        .iter()
        .any(|s| matches!(s.input, SourceInput::File(_)));
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
            while !done.load(Ordering::Relaxed) {
                thread::sleep(MONITOR_TICK);
                stats.memory.sample(started.elapsed());
                if let Some(out) = metrics.as_mut()
                    && Instant::now() >= next_metrics
                {
                    let snapshot = stats.summary(&name, started.elapsed(), false);
                    // A metrics line that cannot be written is not worth failing the run.
                    if serde_json::to_writer(&mut *out, &snapshot).is_ok() {
                        let _ = writeln!(out).and_then(|()| out.flush());
                    }
                    next_metrics += metrics_every;
                }
                if let Some(bar) = &bar {
                    let (pos, len) = stats.sources.iter().fold((0, 0), |(p, l), (_, s)| {
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
