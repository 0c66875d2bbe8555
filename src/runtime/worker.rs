//! The scheduling core: a stage on its thread. It filters by stream, decides
//! per frame whether and how to work on it ([`Scheduler`]: interval,
//! admission control against the frame's deadline, in line or beside the
//! stream), times the work, records failures and skips, and forwards the
//! frame. An asynchronous stage works beside the stream on a helper thread
//! (`docs/realtime.md`).
//!
//! A stage with a [`BatchPolicy`] (`batch`) collects the frames it works on
//! into batches ([`BatchRule`]: full, timeout, or the earliest frame's
//! deadline) and runs each with [`Stage::process_batch`]; frames it does not
//! work on wait beside the open batch so every frame leaves in arrival order.
//!
//! A stage with several instances (`instances = N`: N copies built from the
//! same settings) works on N frames at once, each copy on its own helper
//! thread; the frames it works on go to the copies in turn, and every frame
//! leaves in arrival order ([`StageWorker::run_instances`]).
//!
//! Every decision is a function of the frame, the stage's recent latency and
//! a time passed in ([`Scheduler::decide`], [`BatchRule::close`]), so the unit
//! tests below run them on a virtual clock, exactly; only the worker loop
//! reads the monotonic clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crate::clock;
use crate::config::{Interval, ResultWait, Schedule, StagePlan};
use crate::edge::{EdgeRx, Outputs};
use crate::error::Error;
use crate::frame::{DEFAULT_PERIOD_NS, Frame, FrameMeta};
use crate::meter::RecentLatency;
use crate::record::{CameraInfo, Failure, Record, Skip, SkipReason, Work};
use crate::stage::{BatchPolicy, Stage, StageError};

use super::stats::StageStats;
use super::streams::{EndRx, StreamEnd};

/// A stream's end notice whose last frame never reaches a stage (dropped on
/// a full edge, filtered) takes effect after this long.
pub(crate) const END_GRACE: Duration = Duration::from_secs(5);

/// A stage skipping every frame for its deadline still runs once this often.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(1);

/// `schedule = "auto"` moves a stage beside the stream when its recent p95
/// exceeds the frame period, and back in line below this share of it.
pub(crate) const AUTO_BACK_INLINE: f64 = 0.8;

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Pass it on, noting why.
    Skip(SkipReason),
    /// Work on it now; its record waits.
    Inline,
    /// Hand it to the helper thread; the result rides on a later frame.
    Async,
}

/// The per-frame decisions of one stage: interval, admission control,
/// in line or asynchronous. Times are in nanoseconds of one clock (the
/// monotonic clock in a run, a virtual one in tests).
pub(crate) struct Scheduler {
    id: Arc<str>,
    admission: bool,
    interval: Interval,
    /// With `Interval::Every(n)`: the frame index, modulo n, worked on.
    interval_offset: u64,
    schedule: Schedule,
    recent: RecentLatency,
    /// How long after capture recent frames with a deadline reached the
    /// stage while it was idle (the source's and earlier stages' delay, not
    /// time spent in this stage's own queue): [`Scheduler::arrived`].
    arrival: RecentLatency,
    /// Copies of the stage working at once (`instances`), at least 1.
    instances: u64,
    /// Frames seen per stream, for `interval`.
    counters: Vec<(Arc<str>, u64)>,
    last_run_ns: u64,
    warned: bool,
    /// `schedule = "auto"`: currently beside the stream.
    beside: bool,
    /// Beside the stream: how long a frame waits for the helper's result.
    wait: ResultWait,
}

impl Scheduler {
    pub(crate) fn new(plan: &StagePlan) -> Scheduler {
        Scheduler {
            id: Arc::from(plan.id.as_str()),
            admission: plan.admission,
            interval: plan.interval,
            interval_offset: u64::from(plan.interval_offset),
            schedule: plan.schedule,
            recent: RecentLatency::new(),
            arrival: RecentLatency::new(),
            instances: plan.instances.max(1) as u64,
            counters: Vec::new(),
            last_run_ns: 0,
            warned: false,
            beside: plan.schedule == Schedule::Async,
            wait: plan.wait_for_result,
        }
    }

    /// Forgets a stream that ended (its `interval` counter).
    pub(crate) fn forget(&mut self, stream: &str) {
        self.counters.retain(|(s, _)| &**s != stream);
    }

    /// Notes the cost of one run of the stage (one batch, when batching).
    pub(crate) fn ran(&mut self, took_ns: u64) {
        self.recent.record(took_ns);
    }

    /// Notes that a frame with a deadline reached the stage, idle, `lag_ns`
    /// after its capture.
    pub(crate) fn arrived(&mut self, lag_ns: u64) {
        self.arrival.record(lag_ns);
    }

    /// The stage's recent p95 run time, ns; `None` before enough runs.
    pub(crate) fn p95(&mut self) -> Option<u64> {
        self.recent.p95()
    }

    /// The frame period: the frame's duration, else its budget, else 30 fps.
    fn period_ns(meta: &FrameMeta) -> u64 {
        meta.duration_ns
            .filter(|d| *d > 0)
            .or(meta.deadline_ns.map(|d| d.saturating_sub(meta.capture_ns)))
            .filter(|d| *d > 0)
            .unwrap_or(DEFAULT_PERIOD_NS)
    }

    /// Decides for one frame at `now_ns`: `helper_busy` when the helper
    /// thread still works on an earlier frame, `newer_waiting` when a later
    /// frame already waits in the stage's queue.
    ///
    /// 1. `interval`: every Nth frame of each stream, from its frame
    ///    `interval_offset` (`"auto"`: N = ceil(recent p95 / frame period),
    ///    from its first frame); the others are skipped (`interval`).
    /// 2. Beside the stream (`schedule = "async"`, or `"auto"` while the
    ///    recent p95 exceeds the frame period, back in line below
    ///    [`AUTO_BACK_INLINE`] of it): to the helper when it is free, else
    ///    skipped (`busy`). No deadline check: the result is late by design.
    /// 3. In line with admission control and a deadline: run when the recent
    ///    p95 ends before the deadline. When the p95 plus the least time a
    ///    recent frame took to reach the idle stage after its capture (the
    ///    last 32 such frames, [`Scheduler::arrived`]) exceeds the whole
    ///    budget, no frame can make it: run on the newest frame only (skip
    ///    those with a later one waiting), at the rate the stage sustains,
    ///    late, instead of starving. Otherwise skip (`deadline`), but run once after
    ///    [`PROBE_AFTER`] without a run so the estimate follows the load.
    pub(crate) fn decide(
        &mut self,
        meta: &FrameMeta,
        now_ns: u64,
        helper_busy: bool,
        newer_waiting: bool,
    ) -> Decision {
        let period = Self::period_ns(meta);
        let p95 = self.recent.p95();
        let every = match self.interval {
            Interval::Every(n) => u64::from(n),
            // `instances` copies work on that many frames at once.
            Interval::Auto => p95.map_or(1, |p| p.div_ceil(period * self.instances).max(1)),
        };
        let index = match self.counters.iter().position(|(s, _)| *s == meta.stream) {
            Some(i) => i,
            None => {
                self.counters.push((meta.stream.clone(), 0));
                self.counters.len() - 1
            }
        };
        let count = &mut self.counters[index].1;
        // Counted over the frames that reach the stage, so a stage works on
        // 1 in N of them whatever was dropped upstream. `interval_offset` is
        // below `every` for a numeric interval (checked by the plan), 0 with
        // "auto".
        let turn = *count % every == self.interval_offset % every;
        *count += 1;
        if !turn {
            return Decision::Skip(SkipReason::Interval);
        }
        if self.schedule == Schedule::Auto
            && let Some(p) = p95
        {
            if !self.beside && p > period {
                self.beside = true;
                tracing::info!(stage = %self.id, "recent p95 {:.1} ms exceeds the frame period {:.1} ms: running beside the stream", p as f64 / 1e6, period as f64 / 1e6);
            } else if self.beside && (p as f64) < AUTO_BACK_INLINE * period as f64 {
                self.beside = false;
                tracing::info!(stage = %self.id, "recent p95 {:.1} ms fits the frame period {:.1} ms again: running in line", p as f64 / 1e6, period as f64 / 1e6);
            }
        }
        if self.beside {
            if helper_busy {
                return Decision::Skip(SkipReason::Busy);
            }
            self.last_run_ns = now_ns;
            return Decision::Async;
        }
        if helper_busy {
            // Switched back in line while the helper finishes a frame.
            return Decision::Skip(SkipReason::Busy);
        }
        if self.admission
            && let (Some(deadline), Some(p95)) = (meta.deadline_ns, p95)
            && now_ns + p95 > deadline
        {
            let budget = deadline.saturating_sub(meta.capture_ns);
            // The soonest a frame reaches this stage after its capture: even
            // a stage that fits the budget on its own misses every deadline
            // when the frames come this late.
            let reach = self.arrival.min().unwrap_or(0);
            if p95 + reach > budget {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(
                        stage = %self.id,
                        "recent p95 latency {:.1} ms, after frames reach the stage {:.1} ms past capture, exceeds the frame budget {:.1} ms: it works on the newest frame only, late; raise `budget_ms` or use `schedule = \"auto\"`",
                        p95 as f64 / 1e6,
                        reach as f64 / 1e6,
                        budget as f64 / 1e6,
                    );
                }
                if newer_waiting {
                    return Decision::Skip(SkipReason::Deadline);
                }
            } else if now_ns.saturating_sub(self.last_run_ns) < PROBE_AFTER.as_nanos() as u64 {
                return Decision::Skip(SkipReason::Deadline);
            }
        }
        self.last_run_ns = now_ns;
        Decision::Inline
    }

    /// Beside the stream, with the helper busy on an earlier frame of the
    /// same stream since `started_ns`: whether this frame, at `now_ns`, waits
    /// for that result so it rides on this frame rather than a later one.
    /// The result is due at `started_ns` + the recent median run time. Only
    /// with a deadline, and never past it:
    /// - `wait_for_result = "next_frame"`: it waits when the result is due
    ///   from now until the next frame would arrive (one frame period from
    ///   now). An overdue result (a run longer than the median) is not
    ///   waited for: a stalled helper never holds frame after frame. The
    ///   worker also stops waiting when another frame arrives.
    /// - `"deadline"`: it waits when the result is due by its deadline,
    ///   until the result comes, the deadline, or the recent p95 run time
    ///   and a quarter after `started_ns` (the run time is the stage's own
    ///   work; the hand-off to and from the helper thread comes on top),
    ///   whichever is first (a stalled helper holds frames no longer);
    ///   frames that arrive meanwhile, of any stream, queue behind it. Each
    ///   frame of lag costs per-frame accuracy, one frame the least
    ///   (`benches/track_replay.rs` on vtest, detection on one frame in
    ///   three: per-frame MOTA 0.926 in line, 0.924 one frame late, 0.886
    ///   two, 0.853 three), and outputs leave up to the budget late.
    ///
    /// Returns the time to wait until at the latest; `None`: pass the frame
    /// on now (no deadline, no run measured yet, or the result not due in
    /// that window).
    pub(crate) fn wait_for_result(
        &mut self,
        meta: &FrameMeta,
        now_ns: u64,
        started_ns: u64,
    ) -> Option<u64> {
        let deadline = meta.deadline_ns?;
        if !self.beside {
            return None;
        }
        let run = self.recent.p50()?;
        let due = started_ns + run;
        match self.wait {
            ResultWait::NextFrame => {
                let next_ns = now_ns + Self::period_ns(meta);
                (now_ns <= due && due < next_ns && due <= deadline).then_some(next_ns.min(deadline))
            }
            ResultWait::Deadline => {
                let p95 = self.recent.p95().unwrap_or(run).max(run);
                let until = deadline.min(started_ns + p95 + p95 / 4);
                (due <= deadline && now_ns < until).then_some(until)
            }
        }
    }

    /// With the helper free, before it takes this frame (at `now_ns`;
    /// `waited`: the frame waited for the last result; `queued`: it came
    /// while the stage was busy, not to an idle stage): whether it should
    /// rather be left free for the next frame, whose result would ride
    /// fewer frames after it than this one's after this one (at the same
    /// detection rate, fresher results). Frames reach the stage `reach`
    /// after their capture (the least of the recent arrival delays); the
    /// next frame is started when it arrives (or now, if that has passed).
    /// With run the recent median run time, P the period, B the budget
    /// (deadline − capture), a result started `age` after its frame's
    /// capture rides on the frame that many periods later:
    /// - `"next_frame"`: the last frame that reaches the stage before it is
    ///   ready, (age − reach + run) / P rounded down; only after a wait.
    /// - `"deadline"`: the first whose deadline is at or after it is ready,
    ///   (age + run − B) / P rounded up, at least 1; only after a wait or
    ///   in a queue (often behind a frame that waited). A frame that came
    ///   to an idle stage is never skipped, however late after capture it
    ///   came: the next frame would come as late (a stream with more
    ///   upstream delay than another through the stage is not starved).
    ///
    /// Only with a deadline and a stage that works on every frame
    /// (`interval = 1`: with a longer interval the helper's next frame is
    /// not the next one).
    pub(crate) fn fresher_next(
        &mut self,
        meta: &FrameMeta,
        now_ns: u64,
        waited: bool,
        queued: bool,
    ) -> bool {
        // Only a frame late to start: after a wait, or (holding until the
        // deadline) queued.
        let late = waited || (queued && self.wait == ResultWait::Deadline);
        if !late || self.interval != Interval::Every(1) {
            return false;
        }
        let (Some(deadline), Some(run)) = (meta.deadline_ns, self.recent.p50()) else {
            return false;
        };
        let period = Self::period_ns(meta);
        let age = now_ns.saturating_sub(meta.capture_ns);
        let reach = self.arrival.min().unwrap_or(0);
        match self.wait {
            ResultWait::NextFrame => (age.saturating_sub(reach) + run) / period > run / period,
            ResultWait::Deadline => {
                let budget = deadline.saturating_sub(meta.capture_ns);
                let lands = |age: u64| (age + run).saturating_sub(budget).div_ceil(period).max(1);
                let next_age = age.max(period + reach) - period;
                lands(next_age) < lands(age)
            }
        }
    }
}

/// Why a batch closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// It holds `max` frames.
    Full,
    /// `timeout` has passed since its first frame arrived.
    Timeout,
    /// Waiting longer would make its earliest-deadline frame miss that
    /// deadline: now + the stage's recent p95 run time reaches it.
    Deadline,
}

/// When an open batch closes (`batch = { max, timeout_ms }`): a function of
/// the frames' arrival times and deadlines, the stage's recent p95 run time
/// and a time passed in, so the tests run it on a virtual clock. Times in
/// nanoseconds of one clock.
#[derive(Debug)]
pub(crate) struct BatchRule {
    max: usize,
    timeout_ns: u64,
    /// Frames in the open batch.
    len: usize,
    /// Arrival of its first frame.
    opened_ns: u64,
    /// The earliest deadline among its frames.
    deadline_ns: Option<u64>,
}

impl BatchRule {
    pub(crate) fn new(policy: BatchPolicy) -> BatchRule {
        BatchRule {
            max: policy.max.max(1),
            timeout_ns: u64::try_from(policy.timeout.as_nanos()).unwrap_or(u64::MAX),
            len: 0,
            opened_ns: 0,
            deadline_ns: None,
        }
    }

    /// Frames in the open batch (0: none open).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A frame with `deadline_ns` joins the batch at `now_ns` (the first one opens it).
    pub(crate) fn add(&mut self, now_ns: u64, deadline_ns: Option<u64>) {
        if self.len == 0 {
            self.opened_ns = now_ns;
            self.deadline_ns = None;
        }
        self.len += 1;
        self.deadline_ns = match (self.deadline_ns, deadline_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The batch ran: none is open.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.deadline_ns = None;
    }

    /// The latest time the open batch may wait until (`None`: none open):
    /// its timeout, or earlier its earliest deadline less `p95_ns` (the
    /// stage's recent run time, when known).
    pub(crate) fn close_at(&self, p95_ns: Option<u64>) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let timeout = self.opened_ns.saturating_add(self.timeout_ns);
        Some(match (self.deadline_ns, p95_ns) {
            (Some(d), Some(p)) => timeout.min(d.saturating_sub(p)),
            _ => timeout,
        })
    }

    /// Whether the open batch closes at `now_ns`, and why.
    pub(crate) fn close(&self, now_ns: u64, p95_ns: Option<u64>) -> Option<Close> {
        if self.len == 0 {
            return None;
        }
        if self.len >= self.max {
            return Some(Close::Full);
        }
        if now_ns >= self.opened_ns.saturating_add(self.timeout_ns) {
            return Some(Close::Timeout);
        }
        match (self.deadline_ns, p95_ns) {
            (Some(d), Some(p)) if now_ns.saturating_add(p) >= d => Some(Close::Deadline),
            _ => None,
        }
    }
}

/// Frames held beside an open batch (skipped, or for other streams) so that
/// frames leave in arrival order; when this many wait, the batch closes.
const HELD_MAX: usize = 64;

/// A stage on its thread: filter by stream, schedule, time, record failures
/// and skips, forward.
pub(crate) struct StageWorker {
    id: Arc<str>,
    streams: Option<Vec<String>>,
    stage: Box<dyn Stage>,
    stats: Arc<StageStats>,
    scheduler: Scheduler,
    simulate: Option<Duration>,
    schedule: Schedule,
    /// Frames per run across streams; `None`: one at a time.
    batch: Option<BatchPolicy>,
    /// [`Stage::camera`], asked once.
    camera: Option<Arc<CameraInfo>>,
    ends: Ends,
    /// More copies of the stage (`instances = N`: N - 1 of them), each
    /// working on its own frames beside the first; empty: one instance.
    extra: Vec<Box<dyn Stage>>,
    /// The frame in hand reached the stage while it waited for one (its
    /// queue was empty): its delay since capture is the upstream's alone.
    fresh: bool,
}

/// Streams that ended upstream, waiting until their last frame has passed
/// this stage; and the last sequence number seen per stream.
pub(crate) struct Ends {
    rx: EndRx,
    pending: Vec<StreamEnd>,
    seen: Vec<(Arc<str>, u64)>,
    /// Streams whose state can go now (reused buffer).
    due: Vec<Arc<str>>,
}

impl Ends {
    pub(crate) fn new(rx: EndRx) -> Ends {
        Ends {
            rx,
            pending: Vec::new(),
            seen: Vec::new(),
            due: Vec::new(),
        }
    }

    /// After frame `meta` passed the stage at `now_ns`: fills `due` with
    /// the streams whose last frame has now passed (or that waited longer
    /// than [`END_GRACE`]).
    pub(crate) fn after(&mut self, meta: &FrameMeta, now_ns: u64) {
        match self.seen.iter_mut().find(|(s, _)| *s == meta.stream) {
            Some((_, seq)) => *seq = meta.seq,
            None => self.seen.push((meta.stream.clone(), meta.seq)),
        }
        while let Ok(end) = self.rx.try_recv() {
            self.pending.push(end);
        }
        self.due.clear();
        let (seen, due) = (&mut self.seen, &mut self.due);
        self.pending.retain(|end| {
            let last_seen = seen.iter().find(|(s, _)| *s == end.stream).map(|s| s.1);
            let passed = match (end.last_seq, last_seen) {
                (None, _) => true,
                (Some(last), Some(at)) => at >= last,
                (Some(_), None) => false,
            };
            let stale = now_ns.saturating_sub(end.at_ns) > END_GRACE.as_nanos() as u64;
            if passed || stale {
                seen.retain(|(s, _)| *s != end.stream);
                due.push(end.stream.clone());
                false
            } else {
                true
            }
        });
    }
}

/// What the helper thread is given.
// A job moves by value like every frame on an edge; boxing it would allocate per frame.
#[allow(clippy::large_enum_variant)]
enum Task {
    /// A frame to work on.
    Frame(Job),
    /// A stream ended: drop the stage's state for it.
    End(Arc<str>),
}

/// A frame for the helper thread.
struct Job {
    frame: Frame,
    record: Record,
    /// The worker waits for it (in line under `schedule = "auto"`).
    inline: bool,
}

/// A finished frame, back from the helper thread.
struct Finished {
    stream: Arc<str>,
    /// The frame's sequence number in its stream.
    seq: u64,
    /// The frame's time, seconds.
    t_s: f64,
    record: Record,
    result: Result<(), StageError>,
    took_ns: u64,
    inline: bool,
    /// [`Stage::fatal`] after a failure.
    fatal: bool,
}

/// Stands in for a stage that moved to its helper thread.
struct Idle;

impl Stage for Idle {
    fn process(&mut self, _: &Frame, _: &mut Record) -> Result<(), StageError> {
        Ok(())
    }
}

/// How a helper thread ended: `Err((action, error))` names what failed
/// (`"start"`, `"stop"`, or `"run"` for a panic) for [`Error::Stage`].
type HelperEnd = Result<(), (&'static str, StageError)>;

/// Waits for the helper thread of stage `id` and turns its failure into the
/// run's error.
fn join_helper(id: &str, thread: thread::JoinHandle<HelperEnd>) -> Result<(), Error> {
    thread
        .join()
        .unwrap_or_else(|_| Err(("run", StageError::msg("panicked"))))
        .map_err(|(action, e)| Error::Stage {
            stage: id.to_string(),
            action,
            message: e.to_string(),
        })
}

/// Starts a helper thread named `name` that owns `stage`: it starts the
/// stage, works on each [`Task`] from `jobs` in turn and sends each result
/// to `done`, until `jobs` closes or `done` is gone; then stops the stage.
/// A failed start ends the thread at once, so the worker's next send fails
/// and [`join_helper`] reports the start's error.
fn spawn_helper(
    name: String,
    mut stage: Box<dyn Stage>,
    simulate: Option<Duration>,
    jobs: crossbeam_channel::Receiver<Task>,
    done: crossbeam_channel::Sender<Finished>,
) -> std::io::Result<thread::JoinHandle<HelperEnd>> {
    thread::Builder::new()
        .name(name)
        .spawn(move || -> HelperEnd {
            stage.start().map_err(|e| ("start", e))?;
            while let Ok(task) = jobs.recv() {
                let Job {
                    frame,
                    mut record,
                    inline,
                } = match task {
                    Task::Frame(job) => job,
                    Task::End(stream) => {
                        stage.end_stream(&stream);
                        continue;
                    }
                };
                let t0 = clock::monotonic_ns();
                let result = stage.process(&frame, &mut record);
                if let Some(extra) = simulate {
                    thread::sleep(extra);
                }
                let took = clock::monotonic_ns() - t0;
                let finished = Finished {
                    stream: frame.meta.stream.clone(),
                    seq: frame.meta.seq,
                    t_s: frame.meta.time_s(),
                    fatal: result.is_err() && stage.fatal(),
                    record,
                    result,
                    took_ns: took,
                    inline,
                };
                if done.send(finished).is_err() {
                    break;
                }
            }
            stage.stop().map_err(|e| ("stop", e))
        })
}

/// A helper thread that owns a copy of the stage (asynchronous work, or one
/// of `instances`), and the channels to it (one frame in flight at a time).
struct Instance {
    jobs: crossbeam_channel::Sender<Task>,
    done: crossbeam_channel::Receiver<Finished>,
    thread: thread::JoinHandle<HelperEnd>,
}

/// What [`StageWorker::leave`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Nothing: only frames already finished leave.
    Ready,
    /// Instance `k`'s result (and the results before it).
    For(usize),
    /// Every result: the input has closed.
    All,
}

/// A frame waiting to leave a stage with several instances, in arrival order.
struct Waiting {
    work: Work,
    /// The instance working on it; `None`: it only waits its turn (skipped,
    /// another stream's, or already finished).
    on: Option<usize>,
}

impl StageWorker {
    pub(crate) fn new(
        plan: &StagePlan,
        stage: Box<dyn Stage>,
        stats: Arc<StageStats>,
        ends: EndRx,
    ) -> Self {
        StageWorker {
            ends: Ends::new(ends),
            id: Arc::from(plan.id.as_str()),
            streams: plan.streams.clone(),
            stats,
            scheduler: Scheduler::new(plan),
            simulate: plan.simulate,
            schedule: plan.schedule,
            batch: plan.batch.filter(|b| b.max > 1),
            camera: stage.camera(),
            stage,
            extra: Vec::new(),
            fresh: false,
        }
    }

    /// Adds copies of the stage (built from the same settings) that work on
    /// frames at the same time as the first (`instances`; in line only).
    pub(crate) fn with_instances(mut self, extra: Vec<Box<dyn Stage>>) -> Self {
        self.extra = extra;
        self
    }

    /// Puts the stage's calibration into a record that has none (an `Arc`
    /// clone: no allocation).
    fn stamp(&self, record: &mut Record) {
        if record.camera.is_none() {
            record.camera.clone_from(&self.camera);
        }
    }

    /// Counts a skip and notes it in the record.
    fn skip(&self, record: &mut Record, reason: SkipReason) {
        let counter = match reason {
            SkipReason::Deadline => Some(&self.stats.skipped_deadline),
            SkipReason::Interval => Some(&self.stats.skipped_interval),
            SkipReason::Busy | SkipReason::Fresher => Some(&self.stats.skipped_busy),
            SkipReason::Async => None,
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        record.skipped.push(Skip {
            stage: self.id.clone(),
            reason,
        });
    }

    /// Counts a finished run and its failure, if any.
    fn finished(&mut self, done: &Finished) {
        self.scheduler.ran(done.took_ns);
        self.stats.latency.record_ns(done.took_ns);
        self.stats.processed.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &done.result {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(stage = %self.id, "{e}");
        }
    }

    /// With a helper thread (`schedule = "async"` or `"auto"`): it works on
    /// one frame at a time. Beside the stream, frames keep flowing and a
    /// finished result rides to the tracker on the next frame of its stream
    /// (`Record::late`); frames that arrive while the helper is busy are
    /// skipped (`busy`), the one it takes is marked `async`. In line (`auto`
    /// while the stage keeps up), the worker waits for the helper and the
    /// result goes into the frame's own record.
    fn run_with_helper(mut self, rx: &EdgeRx, out: &Outputs) -> Result<(), Error> {
        let stage = std::mem::replace(&mut self.stage, Box::new(Idle));
        let id = self.id.clone();
        let Instance {
            jobs: job_tx,
            done: done_rx,
            thread: helper,
        } = self.start_helper(format!("stage:{id}:async"), stage)?;
        // The stream of the frame the helper works on beside the stream, and
        // when it took it (`Some` while the helper is busy with it).
        let mut started: Option<(Arc<str>, u64)> = None;
        let mut ready: Vec<Finished> = Vec::new();
        // With `wait_for_result = "next_frame"`, waiting for a result ends
        // when it comes or another frame arrives; built once (a `Select`
        // allocates its list of operations).
        let until_next_frame = self.scheduler.wait == ResultWait::NextFrame;
        let mut select = crossbeam_channel::Select::new();
        let done_op = select.recv(&done_rx);
        select.recv(rx.receiver());
        'frames: while let Some(mut work) = self.receive(rx) {
            let applies = self.applies_to(&work);
            let mut now = if applies {
                self.arrival(&work.frame.meta)
            } else {
                clock::monotonic_ns()
            };
            let mut result = done_rx.try_recv().ok();
            let mut waited = false;
            if result.is_none()
                && applies
                && (!until_next_frame || rx.receiver().is_empty())
                && let Some((stream, since)) = &started
                && *stream == work.frame.meta.stream
                && let Some(until) = self
                    .scheduler
                    .wait_for_result(&work.frame.meta, now, *since)
            {
                // Its result is due soon: it rides on this frame, unless
                // (waiting until the next frame) another frame arrives first.
                let timeout = Duration::from_nanos(until.saturating_sub(now));
                result = if !until_next_frame {
                    done_rx.recv_timeout(timeout).ok()
                } else if select.ready_timeout(timeout) == Ok(done_op) {
                    done_rx.try_recv().ok()
                } else {
                    None
                };
                waited = result.is_some();
                if waited {
                    self.stats.waited.fetch_add(1, Ordering::Relaxed);
                }
                now = clock::monotonic_ns();
            }
            if let Some(done) = result {
                started = None;
                self.finished(&done);
                ready.push(done);
            }
            if applies {
                self.stamp(&mut work.record);
                let stream = &work.frame.meta.stream;
                if let Some(i) = ready.iter().position(|d| d.stream == *stream) {
                    let mut done = ready.swap_remove(i);
                    if done.result.is_ok() {
                        work.record.receive_late(&mut done.record, done.t_s);
                        self.stats
                            .rode(work.frame.meta.seq.saturating_sub(done.seq));
                    }
                }
                let newer = !rx.receiver().is_empty();
                let busy = started.is_some();
                match self.scheduler.decide(&work.frame.meta, now, busy, newer) {
                    Decision::Skip(reason) => self.skip(&mut work.record, reason),
                    Decision::Async
                        if self.scheduler.fresher_next(
                            &work.frame.meta,
                            now,
                            waited,
                            !self.fresh,
                        ) =>
                    {
                        self.skip(&mut work.record, SkipReason::Fresher);
                    }
                    Decision::Async => {
                        started = Some((work.frame.meta.stream.clone(), now));
                        let job = Job {
                            frame: work.frame.clone(),
                            record: Record::default(),
                            inline: false,
                        };
                        if job_tx.send(Task::Frame(job)).is_err() {
                            break;
                        }
                        self.skip(&mut work.record, SkipReason::Async);
                    }
                    Decision::Inline => {
                        let job = Job {
                            frame: work.frame.clone(),
                            record: std::mem::take(&mut work.record),
                            inline: true,
                        };
                        if job_tx.send(Task::Frame(job)).is_err() {
                            break;
                        }
                        // The helper was idle, so the next result is this frame's.
                        loop {
                            let Ok(done) = done_rx.recv() else {
                                break 'frames;
                            };
                            self.finished(&done);
                            if !done.inline {
                                ready.push(done);
                                continue;
                            }
                            work.record = done.record;
                            if let Err(e) = done.result {
                                work.record.failed.push(Failure {
                                    stage: self.id.clone(),
                                    error: e.to_string(),
                                });
                            }
                            break;
                        }
                    }
                }
            }
            self.ends.after(&work.frame.meta, clock::monotonic_ns());
            for stream in &self.ends.due {
                self.scheduler.forget(stream);
                ready.retain(|d| d.stream != *stream);
                if job_tx.send(Task::End(stream.clone())).is_err() {
                    break 'frames;
                }
            }
            if out.send(work).is_err() {
                break;
            }
        }
        drop(select);
        drop(job_tx);
        drop(done_rx);
        join_helper(&id, helper)
    }

    /// Starts a helper thread named `name` that owns `stage` ([`spawn_helper`]),
    /// with its channels (one frame in flight at a time).
    fn start_helper(&self, name: String, stage: Box<dyn Stage>) -> Result<Instance, Error> {
        let (jobs, job_rx) = crossbeam_channel::bounded::<Task>(1);
        let (done_tx, done) = crossbeam_channel::bounded::<Finished>(1);
        let thread = spawn_helper(name, stage, self.simulate, job_rx, done_tx).map_err(|e| {
            Error::Stage {
                stage: self.id.to_string(),
                action: "spawn its helper thread",
                message: e.to_string(),
            }
        })?;
        Ok(Instance { jobs, done, thread })
    }

    /// In line: stamps the record and asks the scheduler whether the stage
    /// works on this frame, which it can start at `ready_ns` at the earliest
    /// (an instance still busy; 0: now); a skip is counted and noted in the
    /// record. `Some(start)`, when the work would start, when it works on it.
    fn admit(&mut self, work: &mut Work, rx: &EdgeRx, ready_ns: u64) -> Option<u64> {
        self.stamp(&mut work.record);
        let now = self.arrival(&work.frame.meta);
        let start = now.max(ready_ns);
        let newer = !rx.receiver().is_empty();
        match self.scheduler.decide(&work.frame.meta, start, false, newer) {
            Decision::Skip(reason) => {
                self.skip(&mut work.record, reason);
                None
            }
            Decision::Inline | Decision::Async => Some(start),
        }
    }

    /// The time now; notes a fresh frame's delay since capture
    /// ([`Scheduler::arrived`]) when it has a deadline.
    fn arrival(&mut self, meta: &FrameMeta) -> u64 {
        let now = clock::monotonic_ns();
        if self.fresh && meta.deadline_ns.is_some() {
            self.scheduler.arrived(now.saturating_sub(meta.capture_ns));
        }
        now
    }

    /// The next frame (`None` once the input is closed and empty), noting
    /// whether it came to an idle stage.
    fn receive(&mut self, rx: &EdgeRx) -> Option<Work> {
        self.fresh = rx.receiver().is_empty();
        rx.recv()
    }

    fn applies_to(&self, work: &Work) -> bool {
        self.streams
            .as_ref()
            .is_none_or(|s| s.iter().any(|id| **id == *work.frame.meta.stream))
    }

    /// Works until the input edge closes, then stops the stage.
    pub(crate) fn run(mut self, rx: &EdgeRx, out: &Outputs) -> Result<(), Error> {
        if self.schedule != Schedule::Inline {
            return self.run_with_helper(rx, out);
        }
        if !self.extra.is_empty() {
            return self.run_instances(rx, out);
        }
        if let Some(policy) = self.batch {
            return self.run_batched(rx, out, policy);
        }
        let id = self.id.clone();
        let stage_error = |action, e: StageError| Error::Stage {
            stage: id.to_string(),
            action,
            message: e.to_string(),
        };
        self.stage.start().map_err(|e| stage_error("start", e))?;
        while let Some(mut work) = self.receive(rx) {
            if self.applies_to(&work) {
                let Some(t0) = self.admit(&mut work, rx, 0) else {
                    self.passed(&work.frame.meta);
                    if out.send(work).is_err() {
                        break;
                    }
                    continue;
                };
                let result = self.stage.process(&work.frame, &mut work.record);
                if let Some(extra) = self.simulate {
                    thread::sleep(extra);
                }
                let took = clock::monotonic_ns() - t0;
                self.scheduler.ran(took);
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
                        error: e.to_string(),
                    });
                }
            }
            self.passed(&work.frame.meta);
            if out.send(work).is_err() {
                break;
            }
        }
        self.stage.stop().map_err(|e| stage_error("stop", e))
    }

    /// In line with several instances of the stage (`instances = N`): each
    /// instance (its own model session) works on a helper thread, one frame
    /// at a time, and the frames the scheduler admits go to them in turn, so
    /// N frames are worked on at once. Every frame still leaves in arrival
    /// order with its own result: a frame waits for the frames before it, and
    /// a frame that finds its instance busy waits for it. This buys
    /// throughput, not latency (each frame takes one instance's time). Frames
    /// not worked on wait their turn beside them (at most [`HELD_MAX`]).
    /// Buffers are sized once: no allocation per frame.
    fn run_instances(mut self, rx: &EdgeRx, out: &Outputs) -> Result<(), Error> {
        let id = self.id.clone();
        let first = std::mem::replace(&mut self.stage, Box::new(Idle));
        let stages: Vec<Box<dyn Stage>> = std::iter::once(first)
            .chain(std::mem::take(&mut self.extra))
            .collect();
        let mut instances = Vec::with_capacity(stages.len());
        for (k, stage) in stages.into_iter().enumerate() {
            instances.push(self.start_helper(format!("stage:{id}:{k}"), stage)?);
        }
        let mut waiting = VecDeque::with_capacity(instances.len() + HELD_MAX);
        let outcome = self.instances_loop(rx, out, &instances, &mut waiting);
        drop(waiting);
        let mut failure = Ok(());
        for Instance { jobs, done, thread } in instances {
            drop(jobs);
            drop(done);
            let ended = join_helper(&id, thread);
            if failure.is_ok() {
                failure = ended;
            }
        }
        outcome?;
        failure
    }

    /// The frame loop of [`StageWorker::run_instances`]: returns when the
    /// input closes and every frame has left, when the outputs or an
    /// instance are gone (the instance's own error is reported by its
    /// thread), or with `Err` on a fatal failure.
    fn instances_loop(
        &mut self,
        rx: &EdgeRx,
        out: &Outputs,
        instances: &[Instance],
        waiting: &mut VecDeque<Waiting>,
    ) -> Result<(), Error> {
        let n = instances.len();
        let capacity = waiting.capacity();
        let mut next = 0;
        // When each instance started (or is expected to start) its frame.
        let mut started = vec![0_u64; n];
        'frames: loop {
            if !self.leave(waiting, instances, out, Wait::Ready)? {
                return Ok(());
            }
            let oldest = waiting.front().and_then(|w| w.on);
            self.fresh = rx.receiver().is_empty();
            let mut work = match oldest {
                // Wait for the next frame or the oldest result, whichever comes first.
                Some(k) => crossbeam_channel::select! {
                    recv(rx.receiver()) -> w => match w {
                        Ok(w) => {
                            rx.note_depth();
                            w
                        }
                        Err(_) => break 'frames,
                    },
                    recv(instances[k].done) -> done => {
                        let Ok(done) = done else { return Ok(()) };
                        self.land(waiting, done)?;
                        continue 'frames;
                    }
                },
                None => match rx.recv() {
                    Some(w) => w,
                    None => break 'frames,
                },
            };
            let mut on = None;
            // The next instance is free once the frame it works on is done.
            let busy = waiting.iter().any(|w| w.on == Some(next));
            let ready = match (busy, self.scheduler.p95()) {
                (true, Some(p95)) => started[next] + p95,
                _ => 0,
            };
            if self.applies_to(&work)
                && let Some(start) = self.admit(&mut work, rx, ready)
            {
                started[next] = start;
                if busy && !self.leave(waiting, instances, out, Wait::For(next))? {
                    return Ok(());
                }
                let job = Job {
                    frame: work.frame.clone(),
                    record: std::mem::take(&mut work.record),
                    inline: true,
                };
                if instances[next].jobs.send(Task::Frame(job)).is_err() {
                    return Ok(());
                }
                on = Some(next);
                next = (next + 1) % n;
            }
            if waiting.len() == capacity {
                let oldest = waiting.front().and_then(|w| w.on);
                if let Some(k) = oldest
                    && !self.leave(waiting, instances, out, Wait::For(k))?
                {
                    return Ok(());
                }
            }
            waiting.push_back(Waiting { work, on });
        }
        self.leave(waiting, instances, out, Wait::All)?;
        Ok(())
    }

    /// Sends on the frames at the front of `waiting` whose turn has come
    /// (frames not worked on, and frames whose instance has finished), in
    /// order; with [`Wait::For`] or [`Wait::All`] it waits for results.
    /// `Ok(false)` when the outputs or an instance are gone.
    fn leave(
        &mut self,
        waiting: &mut VecDeque<Waiting>,
        instances: &[Instance],
        out: &Outputs,
        mut wait: Wait,
    ) -> Result<bool, Error> {
        while let Some(front) = waiting.front() {
            if let Some(k) = front.on {
                let done = match wait {
                    Wait::Ready => match instances[k].done.try_recv() {
                        Ok(d) => d,
                        Err(crossbeam_channel::TryRecvError::Empty) => return Ok(true),
                        Err(crossbeam_channel::TryRecvError::Disconnected) => return Ok(false),
                    },
                    Wait::For(_) | Wait::All => match instances[k].done.recv() {
                        Ok(d) => d,
                        Err(_) => return Ok(false),
                    },
                };
                self.land(waiting, done)?;
                if wait == Wait::For(k) {
                    wait = Wait::Ready;
                }
            }
            let Some(w) = waiting.pop_front() else {
                break;
            };
            self.ends.after(&w.work.frame.meta, clock::monotonic_ns());
            for stream in &self.ends.due {
                self.scheduler.forget(stream);
                for instance in instances {
                    if instance.jobs.send(Task::End(stream.clone())).is_err() {
                        return Ok(false);
                    }
                }
            }
            if out.send(w.work).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Puts an instance's result into the oldest waiting frame (the one it
    /// worked on: each instance finishes its frames in order, and frames go
    /// to the instances in turn). `Err` on a fatal failure.
    fn land(&mut self, waiting: &mut VecDeque<Waiting>, done: Finished) -> Result<(), Error> {
        self.finished(&done);
        let Some(front) = waiting.front_mut() else {
            return Ok(());
        };
        front.on = None;
        front.work.record = done.record;
        if let Err(e) = done.result {
            if done.fatal {
                // Frames already out are kept; this one and the rest are not.
                return Err(Error::Stage {
                    stage: self.id.to_string(),
                    action: "process frames",
                    message: e.to_string(),
                });
            }
            front.work.record.failed.push(Failure {
                stage: self.id.clone(),
                error: e.to_string(),
            });
        }
        Ok(())
    }

    /// A frame of the stage's own thread has passed: drops the state of
    /// streams whose last frame this was (or that waited past [`END_GRACE`]).
    fn passed(&mut self, meta: &FrameMeta) {
        self.ends.after(meta, clock::monotonic_ns());
        for stream in &self.ends.due {
            self.scheduler.forget(stream);
            self.stage.end_stream(stream);
        }
    }

    /// In line, with batches (`batch`): frames the scheduler admits join the
    /// open batch; it runs when [`BatchRule::close`] says so (checked as each
    /// frame arrives, and the worker waits for the next frame only until
    /// [`BatchRule::close_at`]), at end of stream, or when [`HELD_MAX`]
    /// frames wait beside it. Skipped frames and other streams' frames do not
    /// join; while a batch is open they wait with it, and everything leaves
    /// in arrival order. Buffers are sized once: no allocation per batch.
    /// Each frame of a batch counts the batch's run time as its latency;
    /// `simulate_ms` is spent once per batch.
    fn run_batched(mut self, rx: &EdgeRx, out: &Outputs, policy: BatchPolicy) -> Result<(), Error> {
        let id = self.id.clone();
        let stage_error = |action, e: StageError| Error::Stage {
            stage: id.to_string(),
            action,
            message: e.to_string(),
        };
        self.stage.start().map_err(|e| stage_error("start", e))?;
        let mut batch = Batch {
            rule: BatchRule::new(policy),
            works: Vec::with_capacity(policy.max),
            results: (0..policy.max).map(|_| Ok(())).collect(),
            held: Vec::with_capacity(HELD_MAX),
            order: Vec::with_capacity(policy.max + HELD_MAX),
        };
        loop {
            let mut work = if batch.rule.len() == 0 {
                match self.receive(rx) {
                    Some(w) => w,
                    None => break,
                }
            } else {
                let now = clock::monotonic_ns();
                let until = batch.rule.close_at(self.scheduler.p95()).unwrap_or(now);
                if now >= until {
                    if !self.run_batch(&mut batch, out, &stage_error)? {
                        return self.stage.stop().map_err(|e| stage_error("stop", e));
                    }
                    continue;
                }
                self.fresh = rx.receiver().is_empty();
                match rx.recv_timeout(Duration::from_nanos(until - now)) {
                    Ok(w) => w,
                    Err(false) => {
                        if !self.run_batch(&mut batch, out, &stage_error)? {
                            return self.stage.stop().map_err(|e| stage_error("stop", e));
                        }
                        continue;
                    }
                    Err(true) => break,
                }
            };
            let mut joins = false;
            if self.applies_to(&work)
                && let Some(now) = self.admit(&mut work, rx, 0)
            {
                batch.rule.add(now, work.frame.meta.deadline_ns);
                joins = true;
            }
            if joins {
                batch.works.push(work);
                batch.order.push(true);
            } else if batch.rule.len() == 0 {
                self.passed(&work.frame.meta);
                if out.send(work).is_err() {
                    break;
                }
                continue;
            } else {
                batch.held.push(work);
                batch.order.push(false);
            }
            let now = clock::monotonic_ns();
            if (batch.rule.close(now, self.scheduler.p95()).is_some()
                || batch.held.len() >= HELD_MAX)
                && !self.run_batch(&mut batch, out, &stage_error)?
            {
                return self.stage.stop().map_err(|e| stage_error("stop", e));
            }
        }
        self.run_batch(&mut batch, out, &stage_error)?;
        self.stage.stop().map_err(|e| stage_error("stop", e))
    }

    /// Runs the open batch (if any frame joined it), records each frame's
    /// outcome, and sends every waiting frame on in arrival order. `Ok(false)`
    /// when the outputs are gone; `Err` on a fatal stage failure.
    fn run_batch(
        &mut self,
        batch: &mut Batch,
        out: &Outputs,
        stage_error: &dyn Fn(&'static str, StageError) -> Error,
    ) -> Result<bool, Error> {
        let n = batch.works.len();
        if n > 0 {
            for r in &mut batch.results[..n] {
                *r = Ok(());
            }
            let t0 = clock::monotonic_ns();
            self.stage
                .process_batch(&mut batch.works, &mut batch.results[..n]);
            if let Some(extra) = self.simulate {
                thread::sleep(extra);
            }
            let took = clock::monotonic_ns() - t0;
            self.scheduler.ran(took);
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.stats
                .batched_frames
                .fetch_add(n as u64, Ordering::Relaxed);
            for (work, result) in batch.works.iter_mut().zip(&mut batch.results[..n]) {
                self.stats.latency.record_ns(took);
                self.stats.processed.fetch_add(1, Ordering::Relaxed);
                let outcome = std::mem::replace(result, Ok(()));
                if let Err(e) = outcome {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if self.stage.fatal() {
                        return Err(stage_error("process frames", e));
                    }
                    tracing::warn!(stage = %self.id, seq = work.frame.meta.seq, "{e}");
                    work.record.failed.push(Failure {
                        stage: self.id.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
        batch.rule.clear();
        let mut open = true;
        let mut works = batch.works.drain(..);
        let mut held = batch.held.drain(..);
        for joined in batch.order.drain(..) {
            let next = if joined { works.next() } else { held.next() };
            if let Some(w) = next
                && open
            {
                self.passed(&w.frame.meta);
                if out.send(w).is_err() {
                    open = false;
                }
            }
        }
        Ok(open)
    }
}

/// The batch buffers of a batching worker, sized once.
struct Batch {
    rule: BatchRule,
    /// Frames that joined the open batch, in arrival order (capacity `max`).
    works: Vec<Work>,
    /// One outcome per frame of the batch.
    results: Vec<Result<(), StageError>>,
    /// Frames waiting beside it (capacity [`HELD_MAX`]).
    held: Vec<Work>,
    /// Arrival order: true for a frame of `works`, false for one of `held`.
    order: Vec<bool>,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use gstreamer_video as gst_video;

    use super::*;
    use crate::edge::{self, EdgePlan, EdgePolicy, Shared};
    use crate::pool::VecPool;
    use crate::record::Detection;

    const MS: u64 = 1_000_000;

    /// Writes one detection per frame it works on; sleeps `work_ms` first.
    struct Fake {
        work_ms: u64,
        pool: VecPool<Detection>,
        calls: Arc<AtomicU64>,
    }

    impl Stage for Fake {
        fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
            thread::sleep(Duration::from_millis(self.work_ms));
            self.calls.fetch_add(1, Ordering::Relaxed);
            detect_one(
                &mut self.pool,
                record,
                [frame.meta.seq as f32, 0.0, 1.0, 1.0],
            );
            Ok(())
        }
    }

    /// Writes one detection, box `bbox`, into `record`.
    fn detect_one(pool: &mut VecPool<Detection>, record: &mut Record, bbox: [f32; 4]) {
        let mut d = pool.take();
        d.push(Detection {
            bbox,
            class_id: 0,
            class: Arc::from("x"),
            score: 1.0,
            position: None,
        });
        record.detections = Some(d);
    }

    fn plan(interval: Interval, admission: bool, schedule: Schedule) -> StagePlan {
        StagePlan {
            id: "s".into(),
            kind: "delay",
            streams: None,
            input: EdgePlan::default(),
            settings: Arc::new(crate::stages::delay::DelaySettings {
                delay: Duration::ZERO,
            }),
            admission,
            interval,
            interval_offset: 0,
            simulate: None,
            schedule,
            wait_for_result: ResultWait::NextFrame,
            batch: None,
            instances: 1,
        }
    }

    /// A stage beside the stream whose frames wait for its result until
    /// their deadline (`wait_for_result = "deadline"`).
    fn holding() -> Scheduler {
        let mut p = plan(Interval::Every(1), false, Schedule::Async);
        p.wait_for_result = ResultWait::Deadline;
        Scheduler::new(&p)
    }

    /// [`holding`] after runs of these costs, ms.
    fn holding_after(runs_ms: &[u64]) -> Scheduler {
        let mut s = holding();
        for ms in runs_ms {
            s.ran(ms * MS);
        }
        s
    }

    fn scheduler(interval: Interval, admission: bool, schedule: Schedule) -> Scheduler {
        Scheduler::new(&plan(interval, admission, schedule))
    }

    fn worker(
        interval: Interval,
        schedule: Schedule,
        work_ms: u64,
    ) -> (StageWorker, Arc<AtomicU64>) {
        let (w, calls, _) = worker_for(&plan(interval, false, schedule), work_ms);
        (w, calls)
    }

    /// A worker of `p` over a [`Fake`] stage: the worker, the stage's call
    /// count and the stage's counters.
    fn worker_for(p: &StagePlan, work_ms: u64) -> (StageWorker, Arc<AtomicU64>, Arc<StageStats>) {
        let calls = Arc::new(AtomicU64::new(0));
        let stage = Fake {
            work_ms,
            pool: VecPool::default(),
            calls: calls.clone(),
        };
        let stats = Arc::new(StageStats::new("s"));
        let w = StageWorker::new(
            p,
            Box::new(stage),
            stats.clone(),
            crate::runtime::streams::end_channel().1,
        );
        (w, calls, stats)
    }

    /// A frame `seq` of a stream at `period_ms`, captured at `capture_ns`.
    fn frame_at(
        seq: u64,
        stream: &str,
        period_ms: u64,
        capture_ns: u64,
        deadline_ns: Option<u64>,
    ) -> Frame {
        gstreamer::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 2, 2)
            .build()
            .unwrap();
        let mut f = crate::frame::test_frame(info, vec![0; 4], seq);
        f.meta.stream = Arc::from(stream);
        f.meta.pts_ns = Some(seq * period_ms * MS);
        f.meta.duration_ns = Some(period_ms * MS);
        f.meta.capture_ns = capture_ns;
        f.meta.deadline_ns = deadline_ns;
        f
    }

    fn frame(seq: u64, stream: &str, capture_ns: u64, deadline_ns: Option<u64>) -> Frame {
        frame_at(seq, stream, 100, capture_ns, deadline_ns)
    }

    /// What a paced camera gives one stage on a virtual clock: frames every
    /// `period_ms` with a deadline `budget_ms` after capture, a stage whose
    /// every run costs `cost_ms`. In line, the stage's thread is busy until
    /// the run ends and later frames queue (the queue is what `newer_waiting`
    /// sees); beside the stream, the helper's result is ready `cost_ms` after
    /// it took the frame and rides on the first frame after that.
    /// Returns the decision per frame and, for async runs, the frame each
    /// result rode on.
    fn simulate(
        s: &mut Scheduler,
        frames: u64,
        period_ms: u64,
        budget_ms: u64,
        cost_ms: u64,
    ) -> (Vec<Decision>, Vec<(u64, u64)>) {
        simulate_late(s, frames, period_ms, budget_ms, cost_ms, 0)
    }

    /// [`simulate`] with frames reaching the stage `lag_ms` after capture
    /// (the source's and the stages' before it). `budget_ms` 0: frames have
    /// no deadline. A frame that [`Scheduler::wait_for_result`] holds waits
    /// for the helper's result (or until its deadline) and the result rides
    /// on it.
    fn simulate_late(
        s: &mut Scheduler,
        frames: u64,
        period_ms: u64,
        budget_ms: u64,
        cost_ms: u64,
        lag_ms: u64,
    ) -> (Vec<Decision>, Vec<(u64, u64)>) {
        let (period, cost) = (period_ms * MS, cost_ms * MS);
        let mut free_at = 0; // the stage thread (in line, or waiting)
        let mut helper: Option<(u64, u64, u64)> = None; // (frame, took it at, ready at)
        let (mut decisions, mut rides) = (Vec::new(), Vec::new());
        for seq in 0..frames {
            let capture = 1_000 * MS + seq * period;
            let mut now = (capture + lag_ms * MS).max(free_at);
            let queued = free_at > capture + lag_ms * MS;
            if !queued {
                // It came to an idle stage: its delay is the upstream's.
                s.arrived(now - capture);
            }
            let deadline = (budget_ms > 0).then_some(capture + budget_ms * MS);
            let f = frame_at(seq, "a", period_ms, capture, deadline);
            let mut waited = false;
            // The next frame reaches the stage then (and ends a wait until
            // the next frame).
            let next = capture + period + lag_ms * MS;
            if let Some((from, took, ready)) = helper {
                let until = if ready <= now {
                    Some(now)
                } else if s.wait == ResultWait::Deadline {
                    s.wait_for_result(&f.meta, now, took)
                } else if now < next {
                    s.wait_for_result(&f.meta, now, took).map(|u| u.min(next))
                } else {
                    None
                };
                if let Some(until) = until {
                    waited = ready > now && ready <= until;
                    now = now.max(ready.min(until));
                    free_at = now;
                }
                if ready <= now {
                    rides.push((from, seq));
                    helper = None;
                    // The helper's cost, as the worker records it when the
                    // result comes back.
                    s.ran(cost);
                }
            }
            // Frames captured while this one waited are queued behind it.
            let newer = now >= capture + period;
            let mut d = s.decide(&f.meta, now, helper.is_some(), newer);
            if d == Decision::Async && s.fresher_next(&f.meta, now, waited, queued) {
                d = Decision::Skip(SkipReason::Fresher);
            }
            match d {
                Decision::Inline => {
                    s.ran(cost);
                    free_at = now + cost;
                }
                Decision::Async => helper = Some((seq, now, now + cost)),
                Decision::Skip(_) => {}
            }
            decisions.push(d);
        }
        (decisions, rides)
    }

    fn count(d: &[Decision], want: Decision) -> usize {
        d.iter().filter(|x| **x == want).count()
    }

    #[test]
    fn a_stream_end_waits_for_the_last_frame_to_pass() {
        let (tx, rx) = crate::runtime::streams::end_channel();
        let mut ends = Ends::new(rx);
        let end = |s: &str, last_seq| StreamEnd {
            stream: Arc::from(s),
            last_seq,
            at_ns: 0,
        };
        let due = |ends: &Ends| ends.due.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The notice comes before the stream's last frame has passed: it waits.
        tx.send(end("a", Some(2))).unwrap();
        ends.after(&frame(0, "a", 0, None).meta, 10);
        assert!(ends.due.is_empty());
        ends.after(&frame(1, "b", 0, None).meta, 20);
        assert!(ends.due.is_empty());
        ends.after(&frame(2, "a", 0, None).meta, 30);
        assert_eq!(due(&ends), ["a"]);
        // The notice comes after the last frame passed: due at the next frame.
        ends.after(&frame(5, "b", 0, None).meta, 40);
        assert!(ends.due.is_empty());
        tx.send(end("b", Some(5))).unwrap();
        ends.after(&frame(0, "c", 0, None).meta, 50);
        assert_eq!(due(&ends), ["b"]);
        // A source that sent nothing: due at once.
        tx.send(end("d", None)).unwrap();
        ends.after(&frame(1, "c", 0, None).meta, 60);
        assert_eq!(due(&ends), ["d"]);
        // The last frame never comes (dropped on a full edge): due after the grace.
        tx.send(end("c", Some(9))).unwrap();
        ends.after(&frame(2, "c", 0, None).meta, 70);
        assert!(ends.due.is_empty());
        ends.after(
            &frame(3, "c", 0, None).meta,
            END_GRACE.as_nanos() as u64 + 1,
        );
        assert_eq!(due(&ends), ["c"]);
    }

    #[test]
    fn interval_counts_each_stream_on_its_own() {
        let mut s = scheduler(Interval::Every(3), false, Schedule::Inline);
        let mut got = Vec::new();
        for seq in 0..6 {
            for stream in ["a", "b"] {
                got.push(s.decide(&frame(seq, stream, 0, None).meta, 0, false, false));
            }
        }
        let runs: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Decision::Inline)
            .map(|(i, _)| i)
            .collect();
        // Frames 0 and 3 of each stream.
        assert_eq!(runs, vec![0, 1, 6, 7]);
        assert_eq!(count(&got, Decision::Skip(SkipReason::Interval)), 8);
    }

    #[test]
    fn interval_offset_moves_each_stream_s_turn() {
        let mut p = plan(Interval::Every(3), false, Schedule::Inline);
        p.interval_offset = 2;
        let mut s = Scheduler::new(&p);
        let runs: Vec<u64> = (0..8)
            .filter(|seq| {
                s.decide(&frame(*seq, "a", 0, None).meta, 0, false, false) == Decision::Inline
            })
            .collect();
        assert_eq!(runs, vec![2, 5]);
        // A stream that starts later counts from its own first frame.
        let first = s.decide(&frame(8, "b", 0, None).meta, 0, false, false);
        assert_eq!(first, Decision::Skip(SkipReason::Interval));
    }

    #[test]
    fn auto_interval_follows_recent_latency_over_the_frame_period() {
        let mut s = scheduler(Interval::Auto, false, Schedule::Inline);
        // No estimate yet: every frame.
        assert_eq!(
            s.decide(&frame(0, "a", 0, None).meta, 0, false, false),
            Decision::Inline
        );
        // Frames `seqs` after runs of 250 ms: how many the stage works on.
        let runs_after_250_ms = |s: &mut Scheduler, seqs: std::ops::Range<u64>| {
            for _ in 0..8 {
                s.ran(250 * MS);
            }
            seqs.filter(|q| {
                s.decide(&frame(*q, "a", 0, None).meta, 0, false, false) == Decision::Inline
            })
            .count()
        };
        // 250 ms of work per 100 ms frame: every third frame.
        assert_eq!(runs_after_250_ms(&mut s, 1..10), 3);
        // Two instances work on two frames at once: every other frame.
        let mut p = plan(Interval::Auto, false, Schedule::Inline);
        p.instances = 2;
        assert_eq!(runs_after_250_ms(&mut Scheduler::new(&p), 0..10), 5);
    }

    #[test]
    fn admission_skips_frames_that_would_miss_their_deadline_and_probes() {
        let mut s = scheduler(Interval::Every(1), true, Schedule::Inline);
        for _ in 0..8 {
            s.ran(50 * MS);
            // Frames have reached the stage as soon as they were captured.
            s.arrival.record(0);
        }
        let now = 10_000 * MS;
        s.last_run_ns = now - 10 * MS;
        // 50 ms of work, 40 ms left of a 100 ms budget: skipped.
        let late = frame(0, "a", now - 60 * MS, Some(now + 40 * MS));
        assert_eq!(
            s.decide(&late.meta, now, false, false),
            Decision::Skip(SkipReason::Deadline)
        );
        // 60 ms left: runs.
        let fits = frame(1, "a", now - 40 * MS, Some(now + 60 * MS));
        assert_eq!(s.decide(&fits.meta, now, false, false), Decision::Inline);
        // No deadline (a recording): always runs.
        assert_eq!(
            s.decide(&frame(2, "a", 0, None).meta, now, false, false),
            Decision::Inline
        );
        // Not run for longer than PROBE_AFTER: runs anyway to re-measure.
        s.last_run_ns = now - PROBE_AFTER.as_nanos() as u64 - 1;
        assert_eq!(s.decide(&late.meta, now, false, false), Decision::Inline);
        // Without admission control the deadline does not matter.
        let mut free = scheduler(Interval::Every(1), false, Schedule::Inline);
        free.ran(50 * MS);
        assert_eq!(free.decide(&late.meta, now, false, false), Decision::Inline);
    }

    #[test]
    fn admission_never_starves_a_stage_slower_than_its_budget() {
        // 45 ms of work, 20 ms frames, a 40 ms budget: no frame can make its
        // deadline. The stage runs on the newest frame each time it is free:
        // as often as it can (6 s of frames / 45 ms = 133 runs), not once a
        // second; frames that queued behind a run are skipped.
        let mut s = scheduler(Interval::Every(1), true, Schedule::Inline);
        let (d, _) = simulate(&mut s, 300, 20, 40, 45);
        let runs = count(&d, Decision::Inline);
        assert!(
            (runs as f64 - 300.0 * 20.0 / 45.0).abs() <= 1.0,
            "{runs}: {d:?}"
        );
        assert_eq!(count(&d, Decision::Skip(SkipReason::Deadline)), 300 - runs);
        // A stage that fits its budget (15 ms of work) runs on every frame.
        let mut s = scheduler(Interval::Every(1), true, Schedule::Inline);
        let (d, _) = simulate(&mut s, 300, 20, 40, 15);
        assert_eq!(count(&d, Decision::Inline), 300);
        // 28 ms of work fits a 30 ms budget, but frames reach the stage 3 ms
        // after capture: no frame can make it either. It runs on the newest
        // frame each time it is free (at least once per run plus one
        // period), not once a second.
        let mut s = scheduler(Interval::Every(1), true, Schedule::Inline);
        let (d, _) = simulate_late(&mut s, 300, 15, 30, 28, 3);
        let runs = count(&d, Decision::Inline);
        assert!(
            runs as f64 >= 300.0 * 15.0 / (28.0 + 15.0) && runs as f64 <= 300.0 * 15.0 / 28.0 + 1.0,
            "{runs}: {d:?}"
        );
        // With frames that come at once, the same stage runs on every frame
        // it can finish in time: every other one (the next has waited 13 ms
        // behind each run).
        let mut s = scheduler(Interval::Every(1), true, Schedule::Inline);
        let (d, _) = simulate(&mut s, 300, 15, 30, 28);
        assert_eq!(count(&d, Decision::Inline), 150, "{d:?}");
    }

    #[test]
    fn a_stage_back_within_its_budget_leaves_the_late_mode() {
        // 15 ms frames, a 30 ms budget. The first 100 runs cost 40 ms: no
        // frame can make it, and the stage works on the newest frame, late;
        // its own queue then delays every frame it takes, which must not
        // count as the upstream's delay. Then 29.97 ms runs, which fit: once
        // the slow runs leave the p95 it runs every other frame, on time (the
        // frame behind each run has waited 14.97 ms). Counted as upstream
        // delay, the queue's wait (0.03 ms less at each run in the late
        // mode) would keep it late for hundreds of frames more.
        let mut s = scheduler(Interval::Every(1), true, Schedule::Inline);
        let (period, budget) = (15 * MS, 30 * MS);
        let mut free_at = 0;
        let (mut runs, mut late) = (0, 0);
        for seq in 0..600_u64 {
            let capture = 1_000 * MS + seq * period;
            let now = capture.max(free_at);
            if free_at <= capture {
                s.arrived(0);
            }
            let f = frame_at(seq, "a", 15, capture, Some(capture + budget));
            let newer = now >= capture + period;
            if s.decide(&f.meta, now, false, newer) == Decision::Inline {
                let cost = if seq < 100 { 40 * MS } else { 29_970_000 };
                s.ran(cost);
                free_at = now + cost;
                if seq >= 250 {
                    runs += 1;
                    late += u32::from(free_at > capture + budget);
                }
            }
        }
        assert_eq!((runs, late), (175, 0));
    }

    #[test]
    fn async_hands_off_one_frame_at_a_time_and_results_ride_on_the_next_free_frame() {
        // 45 ms of work on 20 ms frames without deadlines: the helper takes
        // frame 0, is busy for frames 1 and 2, and its result rides on frame
        // 3, which it takes next.
        let mut s = scheduler(Interval::Every(1), false, Schedule::Async);
        let (d, rides) = simulate(&mut s, 30, 20, 0, 45);
        assert_eq!(
            &d[..4],
            &[
                Decision::Async,
                Decision::Skip(SkipReason::Busy),
                Decision::Skip(SkipReason::Busy),
                Decision::Async
            ]
        );
        assert_eq!(count(&d, Decision::Async), 10);
        assert_eq!(&rides[..3], &[(0, 3), (3, 6), (6, 9)]);
        // Deadlines do not skip frames beside the stream: admission changes nothing.
        let mut a = scheduler(Interval::Every(1), true, Schedule::Async);
        assert_eq!(simulate(&mut a, 30, 20, 0, 45).0, d);
    }

    #[test]
    fn a_frame_waits_within_its_deadline_for_a_result_due_before_the_next() {
        // The same stage with a 40 ms budget. The first result is not waited
        // for (no run measured yet): it rides on frame 3, which the helper
        // takes at 60 ms. Frame 5 arrives at 100; that result is due at 105,
        // before frame 6 (120) and within frame 5's deadline (140): frame 5
        // waits 5 ms and the result rides on it, two frames late instead of
        // three, and the helper takes frame 5. Its 45 ms runs then drift 5 ms
        // a cycle against two frames. Frame 9 waits 15 ms: its own result
        // would be 60 ms past its capture, three frames late, so the helper
        // takes frame 10 instead (`fresher`), whose result rides on frame 12.
        let mut s = scheduler(Interval::Every(1), false, Schedule::Async);
        let (d, rides) = simulate(&mut s, 30, 20, 40, 45);
        assert_eq!(&rides[..5], &[(0, 3), (3, 5), (5, 7), (7, 9), (10, 12)]);
        assert_eq!(d[9], Decision::Skip(SkipReason::Fresher));
        assert!(
            rides[1..].iter().all(|(from, on)| on - from == 2),
            "{rides:?}"
        );
        // More runs than without the wait (10 of 30), each two frames late.
        assert_eq!(count(&d, Decision::Async), 13);
        // A budget the result does not fit (frame 2's deadline at 43 ms, the
        // result at 45): nothing waits, results ride three frames late.
        let mut tight = scheduler(Interval::Every(1), false, Schedule::Async);
        let (_, rides) = simulate(&mut tight, 30, 20, 3, 45);
        assert_eq!(&rides[..3], &[(0, 3), (3, 6), (6, 9)]);
        // 55 ms of work: frame 5 waits 15 ms for frame 3's result, and would
        // itself be 15 + 55 = 70 ms old when its result is ready, riding on
        // frame 8 (three frames late); frame 6, taken as it arrives, gives a
        // result that rides on frame 8 two frames late. So the helper waits
        // for frame 6: every third frame, each result two frames late (three
        // without waiting).
        let mut s = scheduler(Interval::Every(1), false, Schedule::Async);
        let (d, rides) = simulate(&mut s, 30, 20, 40, 55);
        assert_eq!(&rides[..4], &[(0, 3), (3, 5), (6, 8), (9, 11)]);
        assert_eq!(d[5], Decision::Skip(SkipReason::Fresher));
        assert_eq!(d[6], Decision::Async);
        // Frames that reach the stage 10 ms after capture give the decisions
        // of the 45 ms run above (a 5 ms wait, 15 ms after capture, costs no
        // frame).
        same_in_either_wait(ResultWait::NextFrame);
    }

    #[test]
    fn a_frame_is_held_within_its_deadline_for_the_helpers_result() {
        // `wait_for_result = "deadline"`, 45 ms of work on 20 ms frames, a
        // 40 ms budget. The first result is not held
        // for (no run measured yet): it rides on frame 3, which the helper
        // takes at 60 ms. That result is due at 105, within frame 4's
        // deadline (120): frame 4 is held 25 ms and the result rides on it,
        // one frame late instead of three. Frame 4 itself, started 25 ms
        // after its capture, would give a result due 70 ms after it, past
        // frame 5's deadline, riding on frame 6; frame 5, queued behind it
        // and started 5 ms after its capture, gives one that frame 6 is held
        // for. So the helper takes frame 5 (`fresher` on frame 4), and every
        // second frame from then on, each result one frame late.
        let mut s = holding();
        let (d, rides) = simulate(&mut s, 30, 20, 40, 45);
        assert_eq!(&rides[..5], &[(0, 3), (3, 4), (5, 6), (7, 8), (9, 10)]);
        assert_eq!(d[4], Decision::Skip(SkipReason::Fresher));
        assert_eq!(d[5], Decision::Async);
        assert!(
            rides[1..].iter().all(|(from, on)| on - from == 1),
            "{rides:?}"
        );
        // More runs than without holding (10 of 30), each one frame late.
        assert_eq!(count(&d, Decision::Async), 13);
        // A budget the result does not fit (frame 4's deadline at 83 ms, the
        // result at 105): nothing is held, results ride three frames late.
        let mut tight = holding();
        let (d, rides) = simulate(&mut tight, 30, 20, 3, 45);
        assert_eq!(&rides[..3], &[(0, 3), (3, 6), (6, 9)]);
        assert_eq!(count(&d, Decision::Skip(SkipReason::Fresher)), 0);
        // 55 ms of work: a frame taken as it arrives has its result due 55 ms
        // later, within the next frame's deadline (60): every third frame,
        // each result one frame late (three without holding).
        let mut s = holding();
        let (d, rides) = simulate(&mut s, 30, 20, 40, 55);
        assert_eq!(&rides[..4], &[(0, 3), (3, 4), (6, 7), (9, 10)]);
        assert_eq!(
            &d[4..7],
            &[
                Decision::Skip(SkipReason::Fresher),
                Decision::Skip(SkipReason::Fresher),
                Decision::Async
            ]
        );
        // 65 ms: past the next frame's deadline, within the one after: each
        // result two frames late, the helper never idle for long.
        let mut s = holding();
        let (_, rides) = simulate(&mut s, 30, 20, 40, 65);
        assert!(
            rides[1..].iter().all(|(from, on)| on - from == 2),
            "{rides:?}"
        );
        same_in_either_wait(ResultWait::Deadline);
    }

    /// What holds with either `wait_for_result`: frames that reach the
    /// stage 10 ms after capture, with a budget 10 ms longer, give the
    /// decisions and rides of on-time ones (45 ms of work, 20 ms frames, 40
    /// ms budget); without deadlines nothing waits (55 ms of work: results
    /// three frames late); an in-line stage never waits for a helper.
    fn same_in_either_wait(wait: ResultWait) {
        let make = |schedule| {
            let mut p = plan(Interval::Every(1), false, schedule);
            p.wait_for_result = wait;
            Scheduler::new(&p)
        };
        let (mut on_time, mut late) = (make(Schedule::Async), make(Schedule::Async));
        assert_eq!(
            simulate_late(&mut late, 30, 20, 50, 45, 10),
            simulate(&mut on_time, 30, 20, 40, 45)
        );
        let (_, rides) = simulate(&mut make(Schedule::Async), 30, 20, 0, 55);
        assert_eq!(&rides[..3], &[(0, 3), (3, 6), (6, 9)]);
        let mut inline = make(Schedule::Inline);
        let f = frame_at(1, "a", 20, 20 * MS, Some(60 * MS));
        inline.ran(45 * MS);
        assert_eq!(inline.wait_for_result(&f.meta, 20 * MS, 0), None);
    }

    #[test]
    fn a_held_frame_waits_a_margin_past_the_p95_and_no_longer() {
        // 18 runs of 40 ms, then two of 48: p50 40, p95 48. A frame held
        // for a result started at 0 waits until 48 + 12 = 60 ms (the
        // hand-off to and from the helper comes on top of the run), within
        // its 100 ms deadline; past that the helper is stalled and no frame
        // is held.
        let mut s = holding_after(&[&[40; 18][..], &[48; 2]].concat());
        let f = frame_at(1, "a", 20, 20 * MS, Some(100 * MS));
        assert_eq!(s.wait_for_result(&f.meta, 25 * MS, 0), Some(60 * MS));
        assert_eq!(s.wait_for_result(&f.meta, 60 * MS, 0), None);
        // A deadline before that ends the hold; one before the result is
        // due (40 ms) means no hold at all.
        let f = frame_at(1, "a", 20, 20 * MS, Some(50 * MS));
        assert_eq!(s.wait_for_result(&f.meta, 25 * MS, 0), Some(50 * MS));
        let f = frame_at(1, "a", 20, 20 * MS, Some(39 * MS));
        assert_eq!(s.wait_for_result(&f.meta, 25 * MS, 0), None);
    }

    #[test]
    fn a_frame_that_comes_to_an_idle_stage_is_never_left_for_the_next() {
        // Holding until the deadline, 35 ms of work on 20 ms frames with a
        // 40 ms budget; stream "a" reaches the stage 1 ms after capture,
        // stream "b" 12 ms. A frame of "b" started 12 ms after capture lands
        // ceil((12 + 35 - 40) / 20) = 1 frame later, as its next frame would:
        // taken. 30 ms after capture (2 frames later) it is skipped only if
        // it waited or was queued; fresh from upstream it is taken, or a
        // stream slower upstream than another would never be detected.
        let mut s = holding_after(&[35; 20]);
        s.arrived(MS);
        s.arrived(12 * MS);
        let capture = 1_000 * MS;
        let f = frame_at(7, "b", 20, capture, Some(capture + 40 * MS));
        let at = |ms: u64| capture + ms * MS;
        assert!(!s.fresher_next(&f.meta, at(12), false, true));
        assert!(!s.fresher_next(&f.meta, at(30), false, false));
        assert!(s.fresher_next(&f.meta, at(30), false, true));
        assert!(s.fresher_next(&f.meta, at(30), true, false));
    }

    #[test]
    fn auto_schedule_goes_beside_the_stream_when_the_stage_cannot_keep_up_and_back() {
        // 15 ms of work on 20 ms frames: in line on every frame.
        let mut s = scheduler(Interval::Every(1), true, Schedule::Auto);
        let (d, rides) = simulate(&mut s, 50, 20, 40, 15);
        assert_eq!(count(&d, Decision::Inline), 50);
        assert!(rides.is_empty());
        // Then the stage slows to 45 ms: the first run measures it, and from
        // the next frame on it works beside the stream.
        let (d, rides) = simulate(&mut s, 60, 20, 40, 45);
        let first_async = d.iter().position(|x| *x == Decision::Async).unwrap();
        assert!(first_async <= 40, "{d:?}");
        assert!(
            d[first_async..].iter().all(|x| *x != Decision::Inline),
            "{d:?}"
        );
        assert!(!rides.is_empty());
        // Fast again (10 ms, below 0.8 of the period): back in line once the
        // recent p95 (last 32 runs) has come down.
        let (d, _) = simulate(&mut s, 100, 20, 40, 10);
        assert_eq!(d.last(), Some(&Decision::Inline), "{d:?}");
    }

    /// A frame with an empty record, as a source sends it.
    fn work(frame: Frame) -> Work {
        Work {
            frame,
            record: Record::default(),
        }
    }

    fn edges() -> (edge::EdgeTx, EdgeRx, Outputs, EdgeRx<Shared>) {
        let plan = EdgePlan {
            capacity: 64,
            policy: EdgePolicy::Block,
        };
        let (in_tx, in_rx) = edge::edge("s", plan);
        let (out_tx, out_rx) = edge::edge::<Shared>("sink", plan);
        (in_tx, in_rx, Outputs::Sinks(vec![out_tx]), out_rx)
    }

    #[test]
    fn synchronous_stage_writes_its_result_into_each_record() {
        for schedule in [Schedule::Inline, Schedule::Auto] {
            let (w, calls) = worker(Interval::Every(2), schedule, 0);
            let (tx, rx, out, sink) = edges();
            for seq in 0..4 {
                tx.send(work(frame(seq, "a", 0, None))).unwrap();
            }
            drop(tx);
            w.run(&rx, &out).unwrap();
            drop(out);
            let got: Vec<(u64, bool, Vec<SkipReason>)> = std::iter::from_fn(|| sink.recv())
                .map(|w| {
                    (
                        w.frame.meta.seq,
                        w.record.detections.is_some(),
                        w.record.skipped.iter().map(|s| s.reason).collect(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (0, true, vec![]),
                    (1, false, vec![SkipReason::Interval]),
                    (2, true, vec![]),
                    (3, false, vec![SkipReason::Interval]),
                ],
                "{schedule:?}"
            );
            assert_eq!(calls.load(Ordering::Relaxed), 2);
        }
    }

    /// One of several instances (`instances`): writes its index into each
    /// detection (`bbox = [seq, index, …]`), counts how many instances work
    /// at once, and notes the stream ends it hears.
    struct Copy {
        index: usize,
        pool: VecPool<Detection>,
        active: Arc<AtomicU64>,
        most: Arc<AtomicU64>,
        ends: Arc<std::sync::Mutex<Vec<(usize, String)>>>,
    }

    impl Stage for Copy {
        fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(5));
            self.active.fetch_sub(1, Ordering::SeqCst);
            let bbox = [frame.meta.seq as f32, self.index as f32, 1.0, 1.0];
            detect_one(&mut self.pool, record, bbox);
            Ok(())
        }

        fn end_stream(&mut self, stream: &str) {
            if let Ok(mut ends) = self.ends.lock() {
                ends.push((self.index, stream.to_string()));
            }
        }
    }

    #[test]
    fn instances_work_at_once_and_every_frame_leaves_in_order_with_its_own_result() {
        let mut p = plan(Interval::Every(2), false, Schedule::Inline);
        p.streams = Some(vec!["a".into(), "b".into()]);
        let (active, most) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let ends = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut copies = (0..3).map(|index| -> Box<dyn Stage> {
            Box::new(Copy {
                index,
                pool: VecPool::default(),
                active: active.clone(),
                most: most.clone(),
                ends: ends.clone(),
            })
        });
        let first = copies.next().unwrap();
        let (end_tx, end_rx) = crate::runtime::streams::end_channel();
        let stats = Arc::new(StageStats::new("s"));
        let w = StageWorker::new(&p, first, stats.clone(), end_rx).with_instances(copies.collect());
        let (tx, rx, out, sink) = edges();
        // Streams a and b interleaved, and c, which the stage does not work on.
        let sent: Vec<(&str, u64)> = (0..12)
            .flat_map(|seq| [("a", seq), ("b", seq), ("c", seq)])
            .collect();
        for &(stream, seq) in &sent {
            tx.send(work(frame(seq, stream, 0, None))).unwrap();
        }
        end_tx
            .send(StreamEnd {
                stream: Arc::from("a"),
                last_seq: Some(11),
                at_ns: clock::monotonic_ns(),
            })
            .unwrap();
        drop(tx);
        w.run(&rx, &out).unwrap();
        drop(out);
        let got: Vec<Shared> = std::iter::from_fn(|| sink.recv()).collect();
        let order: Vec<(&str, u64)> = got
            .iter()
            .map(|w| (&*w.frame.meta.stream, w.frame.meta.seq))
            .collect();
        assert_eq!(order, sent, "frames leave in arrival order");
        let mut used = [0; 3];
        for w in &got {
            let (stream, seq) = (&*w.frame.meta.stream, w.frame.meta.seq);
            let worked = stream != "c" && seq % 2 == 0;
            match &w.record.detections {
                Some(d) if worked => {
                    assert_eq!(d.len(), 1);
                    assert_eq!(
                        d[0].bbox[0], seq as f32,
                        "{stream} {seq}: another frame's result"
                    );
                    used[d[0].bbox[1] as usize] += 1;
                }
                None if !worked => {
                    let skips: Vec<_> = w.record.skipped.iter().map(|s| s.reason).collect();
                    let want = if stream == "c" {
                        vec![]
                    } else {
                        vec![SkipReason::Interval]
                    };
                    assert_eq!(skips, want, "{stream} {seq}");
                }
                other => panic!("{stream} {seq}: worked {worked}, detections {other:?}"),
            }
        }
        // 12 frames worked on, in turn: 4 each; and more than one at a time.
        assert_eq!(used, [4, 4, 4]);
        assert_eq!(stats.processed.load(Ordering::Relaxed), 12);
        assert!(
            most.load(Ordering::SeqCst) >= 2,
            "the instances never overlapped"
        );
        // Stream a's end reached every instance after its last frame.
        let mut heard = ends.lock().unwrap().clone();
        heard.sort();
        assert_eq!(
            heard,
            [(0, "a".to_string()), (1, "a".into()), (2, "a".into())]
        );
    }

    /// A stage whose start fails, as a model that cannot load does.
    struct NoStart;

    impl Stage for NoStart {
        fn start(&mut self) -> Result<(), StageError> {
            Err(StageError::msg("model.onnx: no such file"))
        }

        fn process(&mut self, _: &Frame, _: &mut Record) -> Result<(), StageError> {
            Ok(())
        }
    }

    #[test]
    fn a_helper_that_cannot_start_is_reported_as_a_failed_start() {
        for (schedule, copies) in [(Schedule::Async, 0), (Schedule::Inline, 2)] {
            let p = plan(Interval::Every(1), false, schedule);
            let (_end_tx, end_rx) = crate::runtime::streams::end_channel();
            let stats = Arc::new(StageStats::new("s"));
            let extra: Vec<Box<dyn Stage>> = (0..copies)
                .map(|_| -> Box<dyn Stage> { Box::new(NoStart) })
                .collect();
            let w = StageWorker::new(&p, Box::new(NoStart), stats, end_rx).with_instances(extra);
            let (tx, rx, out, _sink) = edges();
            for seq in 0..3 {
                tx.send(work(frame(seq, "a", 0, None))).unwrap();
            }
            drop(tx);
            match w.run(&rx, &out) {
                Err(Error::Stage {
                    stage,
                    action,
                    message,
                }) => {
                    assert_eq!((stage.as_str(), action), ("s", "start"), "{schedule:?}");
                    assert!(message.contains("model.onnx"), "{message}");
                }
                other => panic!("{schedule:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn batch_closes_when_full_on_timeout_and_before_its_earliest_deadline() {
        let policy = BatchPolicy {
            max: 4,
            timeout: Duration::from_millis(10),
        };
        let mut rule = BatchRule::new(policy);
        assert_eq!(rule.close(0, None), None, "no batch open");
        assert_eq!(rule.close_at(None), None);
        // Full: the fourth frame closes it, whatever the time.
        for i in 0..4 {
            assert_eq!(rule.close(i * MS, None), None);
            rule.add(i * MS, None);
        }
        assert_eq!(rule.close(3 * MS, None), Some(Close::Full));
        rule.clear();
        // Timeout: 10 ms after the first frame arrived, not after the last.
        rule.add(100 * MS, None);
        rule.add(108 * MS, None);
        assert_eq!(rule.close_at(None), Some(110 * MS));
        assert_eq!(rule.close(109 * MS, None), None);
        assert_eq!(rule.close(110 * MS, None), Some(Close::Timeout));
        rule.clear();
        // Deadline: 45 ms runs, a frame due at 50 ms: it must start by 5 ms.
        rule.add(0, Some(50 * MS));
        assert_eq!(rule.close_at(Some(45 * MS)), Some(5 * MS));
        assert_eq!(rule.close(4 * MS, Some(45 * MS)), None);
        assert_eq!(rule.close(5 * MS, Some(45 * MS)), Some(Close::Deadline));
        // A later frame with an earlier deadline moves the close earlier; one
        // with a later deadline (or none) does not.
        rule.add(MS, Some(48 * MS));
        rule.add(2 * MS, Some(90 * MS));
        assert_eq!(rule.close_at(Some(45 * MS)), Some(3 * MS));
        assert_eq!(rule.close(3 * MS, Some(45 * MS)), Some(Close::Deadline));
        // Before any run there is no p95: the timeout alone.
        assert_eq!(rule.close_at(None), Some(10 * MS));
        assert_eq!(rule.close(9 * MS, None), None);
        // Cleared, the next batch starts afresh.
        rule.clear();
        rule.add(200 * MS, None);
        assert_eq!(rule.close_at(Some(45 * MS)), Some(210 * MS));
    }

    #[test]
    fn batched_frames_leave_in_arrival_order_with_per_frame_skips() {
        let mut p = plan(Interval::Every(2), false, Schedule::Inline);
        p.batch = Some(BatchPolicy {
            max: 4,
            // Long: batches close when full, or at the end of the stream.
            timeout: Duration::from_secs(30),
        });
        p.streams = Some(vec!["a".into(), "b".into()]);
        let (w, calls, stats) = worker_for(&p, 0);
        let (tx, rx, out, sink) = edges();
        // Streams a and b interleaved (every 2nd frame of each is worked on),
        // and c, which the stage does not work on.
        let mut sent = Vec::new();
        for seq in 0..10 {
            for stream in ["a", "b", "c"] {
                tx.send(work(frame(seq, stream, 0, None))).unwrap();
                sent.push((stream.to_string(), seq));
            }
        }
        drop(tx);
        w.run(&rx, &out).unwrap();
        drop(out);
        let got: Vec<Shared> = std::iter::from_fn(|| sink.recv()).collect();
        let order: Vec<(String, u64)> = got
            .iter()
            .map(|w| (w.frame.meta.stream.to_string(), w.frame.meta.seq))
            .collect();
        assert_eq!(order, sent, "arrival order");
        for w in &got {
            let (stream, seq) = (&*w.frame.meta.stream, w.frame.meta.seq);
            let worked = stream != "c" && seq % 2 == 0;
            assert_eq!(w.record.detections.is_some(), worked, "{stream} {seq}");
            if let Some(d) = &w.record.detections {
                assert_eq!(d[0].bbox[0] as u64, seq, "its own result");
            }
            let skipped: Vec<SkipReason> = w.record.skipped.iter().map(|s| s.reason).collect();
            let want = if stream != "c" && !worked {
                vec![SkipReason::Interval]
            } else {
                vec![]
            };
            assert_eq!(skipped, want, "{stream} {seq}");
        }
        // 10 frames worked on: batches of 4, 4 and the 2 left at the end.
        assert_eq!(calls.load(Ordering::Relaxed), 10);
        assert_eq!(stats.batches.load(Ordering::Relaxed), 3);
        assert_eq!(stats.batched_frames.load(Ordering::Relaxed), 10);
        assert_eq!(stats.processed.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn a_batch_that_does_not_fill_runs_after_its_timeout() {
        // The real clock: one frame, then nothing for a while. The batch runs
        // after its 20 ms timeout, not at the end of the stream.
        let mut p = plan(Interval::Every(1), false, Schedule::Inline);
        p.batch = Some(BatchPolicy {
            max: 4,
            timeout: Duration::from_millis(20),
        });
        let (w, calls, _) = worker_for(&p, 0);
        let (tx, rx, out, sink) = edges();
        let producer = thread::Builder::new()
            .name("producer".into())
            .spawn(move || {
                tx.send(work(frame(0, "a", 0, None))).unwrap();
                thread::sleep(Duration::from_millis(300));
                tx.send(work(frame(1, "a", 0, None))).unwrap();
            })
            .unwrap();
        let started = std::time::Instant::now();
        let worker = thread::Builder::new()
            .name("worker".into())
            .spawn(move || w.run(&rx, &out))
            .unwrap();
        let first = sink.recv().unwrap();
        let waited = started.elapsed();
        assert_eq!(first.frame.meta.seq, 0);
        assert!(first.record.detections.is_some());
        assert!(
            waited < Duration::from_millis(250),
            "the first frame waited {waited:?}, for the second"
        );
        producer.join().unwrap();
        worker.join().unwrap().unwrap();
        assert_eq!(sink.recv().map(|w| w.frame.meta.seq), Some(1));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    /// Runs `w` on frames `make(0..n)`, fed from a thread every
    /// `period_ms`; returns what came out, in order.
    fn run_fed(
        w: StageWorker,
        n: u64,
        period_ms: u64,
        make: impl Fn(u64) -> Frame + Send + 'static,
    ) -> Vec<Shared> {
        let (tx, rx, out, sink) = edges();
        let producer = thread::Builder::new()
            .name("producer".into())
            .spawn(move || {
                for seq in 0..n {
                    if tx.send(work(make(seq))).is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(period_ms));
                }
            })
            .unwrap();
        w.run(&rx, &out).unwrap();
        drop(out);
        producer.join().unwrap();
        std::iter::from_fn(|| sink.recv()).collect()
    }

    /// Feeds 16 frames every `period_ms`, each with a 200 ms budget, to a
    /// worker of `p` over a [`Fake`] stage of `work_ms` (the threads for
    /// real); checks that every frame comes out in order. Returns how many
    /// frames after its own each result rode, and the stage's counters.
    fn paced_lags(p: &StagePlan, work_ms: u64, period_ms: u64) -> (Vec<u64>, Arc<StageStats>) {
        let (w, _, stats) = worker_for(p, work_ms);
        let records = run_fed(w, 16, period_ms, move |seq| {
            let capture = clock::monotonic_ns();
            frame_at(seq, "a", period_ms, capture, Some(capture + 200 * MS))
        });
        let seqs: Vec<u64> = records.iter().map(|w| w.frame.meta.seq).collect();
        assert_eq!(seqs, (0..16).collect::<Vec<_>>());
        let lags = records
            .iter()
            .filter_map(|w| {
                let from = w.record.late.as_ref()?.detections[0].bbox[0] as u64;
                Some(w.frame.meta.seq - from)
            })
            .collect();
        (lags, stats)
    }

    #[test]
    fn with_a_deadline_a_result_due_before_the_next_frame_rides_on_this_one() {
        // The threads for real: 30 ms of work on frames every 25 ms, each
        // with a 200 ms budget. Without the wait, frame k's result (done at
        // 30 ms) could only ride on frame k + 2 (50 ms); a frame that waits
        // for it carries it one frame after its own. (The first result is
        // never waited for: no run is measured yet.)
        let p = plan(Interval::Every(1), false, Schedule::Async);
        let (lags, stats) = paced_lags(&p, 30, 25);
        assert!(lags.iter().all(|l| *l >= 1), "{lags:?}");
        assert!(
            lags.contains(&1),
            "no result rode on the next frame: {lags:?}"
        );
        assert!(stats.waited.load(Ordering::Relaxed) >= 1);
        // The summary's account of the lags is the records'.
        let counted: Vec<u64> = stats
            .result_lag
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        let mut want = [0_u64; crate::runtime::stats::LAG_BINS];
        for l in &lags {
            want[(*l as usize).min(want.len()) - 1] += 1;
        }
        assert_eq!(counted, want, "{lags:?}");
    }

    #[test]
    fn held_until_the_deadline_a_result_rides_on_the_frame_after_its_own() {
        // The threads for real: 50 ms of work on frames every 20 ms, with a
        // 200 ms budget. Frame k + 1 is held past frame k + 2's arrival (40
        // ms) for frame k's result (50 ms), which then rides on it; waiting
        // only until the next frame, it would ride on frame k + 2 or later.
        let mut p = plan(Interval::Every(1), false, Schedule::Async);
        p.wait_for_result = ResultWait::Deadline;
        let (lags, stats) = paced_lags(&p, 50, 20);
        // The first result is not held for (no run measured yet).
        assert!(lags.len() >= 4, "{lags:?}");
        assert!(lags[1..].iter().all(|l| *l == 1), "{lags:?}");
        assert!(stats.waited.load(Ordering::Relaxed) >= 3);
    }

    #[test]
    fn asynchronous_results_ride_on_a_later_frame_of_their_stream() {
        // The threads for real (the decisions are tested on a virtual clock
        // above): all frames come out, results only on later frames.
        let (w, calls) = worker(Interval::Every(1), Schedule::Async, 30);
        let records = run_fed(w, 12, 10, |seq| frame(seq, "a", 0, None));
        assert_eq!(records.len(), 12);
        assert_eq!(records[0].record.skipped[0].reason, SkipReason::Async);
        // Results never ride on their own frame; each late result comes from
        // an earlier frame (its detection's x is that frame's seq) and keeps its time.
        for w in &records {
            assert!(w.record.detections.is_none());
            if let Some(l) = &w.record.late {
                let from = l.detections[0].bbox[0] as u64;
                assert!(from < w.frame.meta.seq, "{from} on {}", w.frame.meta.seq);
                assert!((l.t_s - from as f64 * 0.1).abs() < 1e-9);
            }
        }
        assert!(calls.load(Ordering::Relaxed) >= 1);
    }
}
