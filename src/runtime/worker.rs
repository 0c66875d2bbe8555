//! The scheduling core: a stage on its thread. It filters by stream, decides
//! per frame whether to work on it (interval, admission control against the
//! frame's deadline), times the work, records failures and skips, and
//! forwards the frame. An asynchronous stage works beside the stream on a
//! helper thread (`docs/realtime.md`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crate::clock;
use crate::config::{Interval, StagePlan};
use crate::edge::{EdgeRx, Outputs};
use crate::error::Error;
use crate::frame::{DEFAULT_PERIOD_NS, Frame};
use crate::meter::RecentLatency;
use crate::record::{Failure, Record, Skip, SkipReason, Work};
use crate::stage::{Stage, StageError};

use super::stats::StageStats;

/// A stage skipping every frame for its deadline still runs once this often.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(1);

/// A stage on its thread: filter by stream, admission control, interval,
/// time, record failures and skips, forward.
pub(crate) struct StageWorker {
    id: Arc<str>,
    streams: Option<Vec<String>>,
    stage: Box<dyn Stage>,
    stats: Arc<StageStats>,
    admission: bool,
    interval: Interval,
    simulate: Option<Duration>,
    recent: RecentLatency,
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
    record: Record,
    result: Result<(), StageError>,
    took_ns: u64,
}

/// Stands in for a stage that moved to its helper thread.
struct Idle;

impl Stage for Idle {
    fn process(&mut self, _: &Frame, _: &mut Record) -> Result<(), StageError> {
        Ok(())
    }
}

impl StageWorker {
    pub(crate) fn new(plan: &StagePlan, stage: Box<dyn Stage>, stats: Arc<StageStats>) -> Self {
        StageWorker {
            id: Arc::from(plan.id.as_str()),
            streams: plan.streams.clone(),
            stage,
            stats,
            admission: plan.admission,
            interval: plan.interval,
            simulate: plan.simulate,
            recent: RecentLatency::new(),
            counters: Vec::new(),
            last_run_ns: 0,
            warned: false,
            asynchronous: plan.asynchronous,
        }
    }

    /// Counts a skip and notes it in the record.
    fn skip(&self, record: &mut Record, reason: SkipReason) {
        let counter = match reason {
            SkipReason::Deadline => Some(&self.stats.skipped_deadline),
            SkipReason::Interval => Some(&self.stats.skipped_interval),
            SkipReason::Busy => Some(&self.stats.skipped_busy),
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

    /// Asynchronous mode: a helper thread works on one frame at a time while
    /// the frames keep flowing; a finished result rides to the tracker on the
    /// next frame of its stream (`Record::late`). Frames that arrive while the
    /// helper is busy are skipped (`busy`); the one it takes is marked `async`.
    fn run_beside(mut self, rx: &EdgeRx, out: &Outputs) -> Result<(), Error> {
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Frame>(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<Finished>(1);
        let mut stage = std::mem::replace(&mut self.stage, Box::new(Idle));
        let simulate = self.simulate;
        let id = self.id.clone();
        let helper = thread::Builder::new()
            .name(format!("stage:{id}:async"))
            .spawn(move || -> Result<(), StageError> {
                stage.start()?;
                while let Ok(frame) = job_rx.recv() {
                    let t0 = clock::monotonic_ns();
                    let mut record = Record::default();
                    let result = stage.process(&frame, &mut record);
                    if let Some(extra) = simulate {
                        thread::sleep(extra);
                    }
                    let took = clock::monotonic_ns() - t0;
                    let finished = Finished {
                        stream: frame.meta.stream.clone(),
                        t_s: frame.meta.time_s(),
                        record,
                        result,
                        took_ns: took,
                    };
                    if done_tx.send(finished).is_err() {
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
                    let mut done = ready.swap_remove(i);
                    if done.result.is_ok() {
                        work.record.receive_late(&mut done.record, done.t_s);
                    }
                }
                let t0 = clock::monotonic_ns();
                let reason = match self.skip_reason(&work.frame, t0) {
                    Some(reason) => reason,
                    None if busy => SkipReason::Busy,
                    None => {
                        busy = true;
                        self.last_run_ns = t0;
                        if job_tx.send(work.frame.clone()).is_err() {
                            break;
                        }
                        SkipReason::Async
                    }
                };
                self.skip(&mut work.record, reason);
            }
            if out.send(work).is_err() {
                break;
            }
        }
        drop(job_tx);
        drop(done_rx);
        let result = helper
            .join()
            .unwrap_or_else(|_| Err(StageError::msg("panicked")));
        result.map_err(|e| Error::Stage {
            stage: id.to_string(),
            action: "run",
            message: e.to_string(),
        })
    }

    /// Why this frame should not be worked on, if it should not.
    fn skip_reason(&mut self, frame: &Frame, now_ns: u64) -> Option<SkipReason> {
        let meta = &frame.meta;
        let every = match self.interval {
            Interval::Every(n) => u64::from(n),
            Interval::Auto => {
                let period = meta
                    .duration_ns
                    .filter(|d| *d > 0)
                    .or(meta.deadline_ns.map(|d| d.saturating_sub(meta.capture_ns)))
                    .unwrap_or(DEFAULT_PERIOD_NS)
                    .max(1);
                self.recent.p95().map_or(1, |p| p.div_ceil(period).max(1))
            }
        };
        let index = match self.counters.iter().position(|(s, _)| *s == meta.stream) {
            Some(i) => i,
            None => {
                self.counters.push((meta.stream.clone(), 0));
                self.counters.len() - 1
            }
        };
        let count = &mut self.counters[index].1;
        let turn = (*count).is_multiple_of(every);
        *count += 1;
        if !turn {
            return Some(SkipReason::Interval);
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
                return Some(SkipReason::Deadline);
            }
        }
        None
    }

    fn applies_to(&self, work: &Work) -> bool {
        self.streams
            .as_ref()
            .is_none_or(|s| s.iter().any(|id| **id == *work.frame.meta.stream))
    }

    /// Works until the input edge closes, then stops the stage.
    pub(crate) fn run(mut self, rx: &EdgeRx, out: &Outputs) -> Result<(), Error> {
        if self.asynchronous {
            return self.run_beside(rx, out);
        }
        let id = self.id.clone();
        let stage_error = |action, e: StageError| Error::Stage {
            stage: id.to_string(),
            action,
            message: e.to_string(),
        };
        self.stage.start().map_err(|e| stage_error("start", e))?;
        while let Some(mut work) = rx.recv() {
            if self.applies_to(&work) {
                let t0 = clock::monotonic_ns();
                if let Some(reason) = self.skip_reason(&work.frame, t0) {
                    self.skip(&mut work.record, reason);
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
                        error: e.to_string(),
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
            let mut d = self.pool.take();
            d.push(Detection {
                bbox: [frame.meta.seq as f32, 0.0, 1.0, 1.0],
                class_id: 0,
                class: Arc::from("x"),
                score: 1.0,
                position: None,
            });
            record.detections = Some(d);
            Ok(())
        }
    }

    fn plan(interval: Interval, admission: bool, asynchronous: bool) -> StagePlan {
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
            simulate: None,
            asynchronous,
        }
    }

    fn worker(
        interval: Interval,
        admission: bool,
        asynchronous: bool,
        work_ms: u64,
    ) -> (StageWorker, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let stage = Fake {
            work_ms,
            pool: VecPool::default(),
            calls: calls.clone(),
        };
        let w = StageWorker::new(
            &plan(interval, admission, asynchronous),
            Box::new(stage),
            Arc::new(StageStats::new("s")),
        );
        (w, calls)
    }

    fn frame(seq: u64, stream: &str, capture_ns: u64, deadline_ns: Option<u64>) -> Frame {
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 2, 2)
            .build()
            .unwrap();
        let mut f = crate::frame::test_frame(info, vec![0; 4], seq);
        f.meta.stream = Arc::from(stream);
        f.meta.pts_ns = Some(seq * 100 * MS);
        f.meta.duration_ns = Some(100 * MS);
        f.meta.capture_ns = capture_ns;
        f.meta.deadline_ns = deadline_ns;
        f
    }

    #[test]
    fn interval_counts_each_stream_on_its_own() {
        let (mut w, _) = worker(Interval::Every(3), false, false, 0);
        let mut got = Vec::new();
        for seq in 0..6 {
            for stream in ["a", "b"] {
                got.push(w.skip_reason(&frame(seq, stream, 0, None), 0));
            }
        }
        let runs: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_none())
            .map(|(i, _)| i)
            .collect();
        // Frames 0 and 3 of each stream.
        assert_eq!(runs, vec![0, 1, 6, 7]);
        assert!(got.iter().flatten().all(|r| *r == SkipReason::Interval));
    }

    #[test]
    fn auto_interval_follows_recent_latency_over_the_frame_period() {
        let (mut w, _) = worker(Interval::Auto, false, false, 0);
        // No estimate yet: every frame.
        assert_eq!(w.skip_reason(&frame(0, "a", 0, None), 0), None);
        // 250 ms of work per 100 ms frame: every third frame.
        for _ in 0..8 {
            w.recent.record(250 * MS);
        }
        let runs = (1..10)
            .filter(|s| w.skip_reason(&frame(*s, "a", 0, None), 0).is_none())
            .count();
        assert_eq!(runs, 3);
    }

    #[test]
    fn admission_skips_frames_that_would_miss_their_deadline_and_probes() {
        let (mut w, _) = worker(Interval::Every(1), true, false, 0);
        for _ in 0..8 {
            w.recent.record(50 * MS);
        }
        let now = 10_000 * MS;
        w.last_run_ns = now - 10 * MS;
        // 50 ms of work, 40 ms left: skipped.
        let late = frame(0, "a", now - 60 * MS, Some(now + 40 * MS));
        assert_eq!(w.skip_reason(&late, now), Some(SkipReason::Deadline));
        // 60 ms left: runs.
        let fits = frame(1, "a", now - 40 * MS, Some(now + 60 * MS));
        assert_eq!(w.skip_reason(&fits, now), None);
        // No deadline (a recording): always runs.
        assert_eq!(w.skip_reason(&frame(2, "a", 0, None), now), None);
        // Not run for longer than PROBE_AFTER: runs anyway to re-measure.
        w.last_run_ns = now - PROBE_AFTER.as_nanos() as u64 - 1;
        assert_eq!(w.skip_reason(&late, now), None);
        // Without admission control the deadline does not matter.
        let (mut free, _) = worker(Interval::Every(1), false, false, 0);
        free.recent.record(50 * MS);
        assert_eq!(free.skip_reason(&late, now), None);
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
        let (w, calls) = worker(Interval::Every(2), false, false, 0);
        let (tx, rx, out, sink) = edges();
        for seq in 0..4 {
            tx.send(Work {
                frame: frame(seq, "a", 0, None),
                record: Record::default(),
            })
            .unwrap();
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
            ]
        );
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn asynchronous_results_ride_on_a_later_frame_of_their_stream() {
        let (w, calls) = worker(Interval::Every(1), false, true, 30);
        let (tx, rx, out, sink) = edges();
        let producer = thread::Builder::new()
            .name("producer".into())
            .spawn(move || {
                for seq in 0..12 {
                    let work = Work {
                        frame: frame(seq, "a", 0, None),
                        record: Record::default(),
                    };
                    if tx.send(work).is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            })
            .unwrap();
        w.run(&rx, &out).unwrap();
        drop(out);
        producer.join().unwrap();
        let records: Vec<Shared> = std::iter::from_fn(|| sink.recv()).collect();
        assert_eq!(records.len(), 12);
        // The helper took frame 0; frames arriving while it worked were busy.
        assert_eq!(records[0].record.skipped[0].reason, SkipReason::Async);
        assert!(
            records.iter().any(|w| w
                .record
                .skipped
                .iter()
                .any(|s| s.reason == SkipReason::Busy)),
            "no busy frame"
        );
        // Results never ride on their own frame; each late result comes from
        // an earlier frame (its detection's x is that frame's seq) and keeps its time.
        let mut late = 0;
        for w in &records {
            assert!(w.record.detections.is_none());
            if let Some(l) = &w.record.late {
                late += 1;
                let from = l.detections[0].bbox[0] as u64;
                assert!(from < w.frame.meta.seq, "{from} on {}", w.frame.meta.seq);
                assert!((l.t_s - from as f64 * 0.1).abs() < 1e-9);
            }
        }
        assert!(late >= 1, "no late result");
        assert!(calls.load(Ordering::Relaxed) as usize >= late);
    }
}
