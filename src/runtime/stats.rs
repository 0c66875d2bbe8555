//! Run statistics: latency histograms, counters, and the summary printed at
//! the end of a run (and every `--stats-every` seconds).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::edge::EdgeStats;
pub use crate::meter::{Latency, LatencySummary};
use crate::meter::{PairStats, SourceStats};

/// The process's resident memory (from /proc/self/statm), sampled by the monitor.
#[derive(Debug, Default)]
pub struct Memory {
    /// First sample after the run's first second (models loaded, buffers warm).
    pub settled_kb: AtomicU64,
    /// Highest sample, kB.
    pub max_kb: AtomicU64,
}

impl Memory {
    /// Resident set size now, kB (0 where /proc is unavailable).
    pub fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4)
    }

    /// Takes a sample (`elapsed`: time since the run started).
    pub fn sample(&self, elapsed: Duration) {
        let kb = Self::rss_kb();
        if elapsed >= Duration::from_secs(1) && self.settled_kb.load(Ordering::Relaxed) == 0 {
            self.settled_kb.store(kb, Ordering::Relaxed);
        }
        self.max_kb.fetch_max(kb, Ordering::Relaxed);
    }
}

/// Memory in the summary.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemorySummary {
    /// Resident memory after the first second, kB.
    pub rss_settled_kb: u64,
    /// Highest resident memory, kB.
    pub rss_max_kb: u64,
    /// Resident memory at the end, kB.
    pub rss_end_kb: u64,
}

/// Bins of [`StageStats::result_lag`]: 1 to 7 frames late, then 8 or more.
pub const LAG_BINS: usize = 8;

/// Counters of one stage.
#[derive(Debug)]
pub struct StageStats {
    /// The stage id.
    pub id: String,
    /// Frames worked on.
    pub processed: AtomicU64,
    /// Frames it failed on.
    pub failed: AtomicU64,
    /// Time per frame worked on.
    pub latency: Latency,
    /// Frames not worked on: the deadline could not be met.
    pub skipped_deadline: AtomicU64,
    /// Frames not worked on: not this stage's turn (`interval`).
    pub skipped_interval: AtomicU64,
    /// Frames not worked on: an asynchronous stage was busy with an earlier frame.
    pub skipped_busy: AtomicU64,
    /// Asynchronous: frames that waited for the helper's result (until the
    /// next frame or their deadline, `wait_for_result`) and carried it
    /// ([`StageSummary::waited_for_result`]).
    pub waited: AtomicU64,
    /// Asynchronous: results by how many frames after their own frame they
    /// rode (index k: k + 1 frames; the last, [`LAG_BINS`] or more).
    pub result_lag: [AtomicU64; LAG_BINS],
    /// Batched runs (`batch`): calls of `Stage::process_batch`.
    pub batches: AtomicU64,
    /// Frames in those runs (their mean size: `batched_frames / batches`).
    pub batched_frames: AtomicU64,
}

impl StageStats {
    /// Zeroed counters for stage `id`.
    pub fn new(id: &str) -> StageStats {
        StageStats {
            id: id.to_string(),
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: Latency::default(),
            skipped_deadline: AtomicU64::new(0),
            skipped_interval: AtomicU64::new(0),
            skipped_busy: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            result_lag: std::array::from_fn(|_| AtomicU64::new(0)),
            batches: AtomicU64::new(0),
            batched_frames: AtomicU64::new(0),
        }
    }

    /// Notes that an asynchronous result rode on a frame `frames_late`
    /// frames after the one it was computed on. A result always rides on a
    /// later frame, so 0 (which a stream's numbering going backwards would
    /// give) counts as 1.
    pub fn rode(&self, frames_late: u64) {
        let bin = (frames_late.max(1).min(LAG_BINS as u64) - 1) as usize;
        self.result_lag[bin].fetch_add(1, Ordering::Relaxed);
    }
}

/// The lag of bin `k` of [`StageStats::result_lag`] as the summary and
/// the metrics name it: `"3"` (frames) for k = 2, `"8+"` for the last bin.
pub fn lag_label(k: usize) -> String {
    format!("{}{}", k + 1, if k + 1 == LAG_BINS { "+" } else { "" })
}

/// The text summary's account of [`StageSummary::result_lag_frames`]:
/// `", results late by 2 / 3 / 8+ frames: 181 / 52 / 1"` (lags with no
/// result left out); empty when there are none.
fn lag_text(bins: &[u64]) -> String {
    let used = || bins.iter().enumerate().filter(|(_, n)| **n > 0);
    if used().next().is_none() {
        return String::new();
    }
    let lags: Vec<String> = used().map(|(k, _)| lag_label(k)).collect();
    let counts: Vec<String> = used().map(|(_, n)| n.to_string()).collect();
    format!(
        ", results late by {} frames: {}",
        lags.join(" / "),
        counts.join(" / ")
    )
}

/// Counters of one sink.
#[derive(Debug)]
pub struct SinkStats {
    /// The sink name (its kind).
    pub name: String,
    /// Records written.
    pub written: AtomicU64,
    /// Capture to output, per frame.
    pub latency: Latency,
    /// Records with a deadline, and those written after it.
    pub with_deadline: AtomicU64,
    /// Records written after their deadline.
    pub deadline_missed: AtomicU64,
    /// Messages the sink dropped for slow readers, when it counts them.
    pub dropped: Option<Arc<AtomicU64>>,
}

/// Everything the monitor and the summary read while a run goes on.
#[derive(Debug, Default)]
pub struct RunStats {
    /// Resident memory samples.
    pub memory: Memory,
    /// Per source: id and counters; sources added while running join it
    /// ([`RunStats::add_source`]), removed ones stay counted.
    sources: std::sync::RwLock<Vec<(String, Arc<SourceStats>)>>,
    /// Per stereo pair: id and counters.
    pub pairs: Vec<(String, Arc<PairStats>)>,
    /// Per stage.
    pub stages: Vec<Arc<StageStats>>,
    /// Per sink.
    pub sinks: Vec<Arc<SinkStats>>,
    /// Per edge.
    pub edges: Vec<Arc<EdgeStats>>,
}

/// A snapshot of a run, printed and optionally written as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The pipeline's name.
    pub pipeline: String,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Frames the sources delivered.
    pub frames_in: u64,
    /// Records the first sink wrote.
    pub frames_out: u64,
    /// Records per second.
    pub fps: f64,
    /// Stopped by a stop request (Ctrl-C).
    pub stopped: bool,
    /// ONNX Runtime `run` calls and the seconds spent in them (all engines).
    pub inference_runs: u64,
    /// Seconds in ONNX Runtime `run`.
    pub inference_s: f64,
    /// Memory.
    pub memory: MemorySummary,
    /// Per source.
    pub sources: Vec<SourceSummary>,
    /// Per stereo pair.
    pub stereo: Vec<PairSummary>,
    /// Per stage.
    pub stages: Vec<StageSummary>,
    /// Per sink.
    pub sinks: Vec<SinkSummary>,
    /// Frames lost: never reached the output (`latest` delivery inside
    /// GStreamer, full `drop_oldest` queues, unpaired stereo views), as
    /// `(where, reason, count)`.
    pub drops: Vec<DropCount>,
    /// Frames that reached the output without a stage's work on them
    /// (`deadline`, `interval`, `busy`): not lost, counted apart from `drops`.
    pub skips: Vec<DropCount>,
    /// Sources whose file header declares more video frames than were
    /// decoded (see [`SourceSummary::declared_frames`]).
    pub short_sources: u64,
}

#[derive(Debug, Clone, Serialize)]
/// One source in the summary.
pub struct SourceSummary {
    /// Source id.
    pub id: String,
    /// Frames delivered.
    pub frames: u64,
    /// The video frame count the file's header declares, when it is more
    /// than were decoded from a complete file (an AVI `dwLength`); a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_frames: Option<u64>,
    /// Times the source came back after its pipeline was rebuilt.
    pub reconnects: u64,
    /// Pipeline rebuilds tried, successful or not.
    pub reconnect_attempts: u64,
    /// Seconds without frames before each come-back, summed.
    pub gap_s: f64,
}

#[derive(Debug, Clone, Serialize)]
/// One stereo pair in the summary.
pub struct PairSummary {
    /// Pair id.
    pub id: String,
    /// Pairs emitted.
    pub pairs: u64,
    /// Left frames dropped unpaired.
    pub unpaired_left: u64,
    /// Right frames dropped unpaired.
    pub unpaired_right: u64,
    /// |right − left| time of the emitted pairs.
    pub skew: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
/// One stage in the summary.
pub struct StageSummary {
    /// Stage id.
    pub id: String,
    /// Frames worked on.
    pub processed: u64,
    /// Frames failed.
    pub failed: u64,
    /// Frames skipped for their deadline.
    pub skipped_deadline: u64,
    /// Frames skipped for the interval.
    pub skipped_interval: u64,
    /// Frames skipped while busy (asynchronous).
    pub skipped_busy: u64,
    /// Asynchronous: frames that waited, within their deadline, for a result
    /// due soon (before the next frame, or with `wait_for_result =
    /// "deadline"` by their deadline), and carried it (a frame sooner).
    pub waited_for_result: u64,
    /// Asynchronous: how late its results reached the stream, in frames of
    /// their stream: [`LAG_BINS`] elements, element k counting the results
    /// that rode on the frame k + 1 frames after the one they were computed
    /// on (element 7, the last: 8 or more). Empty for a stage none of whose
    /// results rode late (in line, or no result yet).
    pub result_lag_frames: Vec<u64>,
    /// Share of the frames it saw that it worked on.
    pub run_rate: f64,
    /// Batched runs (`batch`; 0 for a stage that works frame by frame).
    pub batches: u64,
    /// Mean frames per batched run (0 without batches).
    pub mean_batch: f64,
    /// Its input edge's capacity.
    pub queue_capacity: usize,
    /// Deepest its input queue got.
    pub max_queue_depth: usize,
    /// Time per frame worked on.
    pub latency: LatencySummary,
    /// Time per frame worked on since the previous line of a
    /// `--metrics-out` file (absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_latency: Option<LatencySummary>,
}

#[derive(Debug, Clone, Serialize)]
/// One sink in the summary.
pub struct SinkSummary {
    /// Sink name (its kind).
    pub name: String,
    /// Records written.
    pub written: u64,
    /// Share of records with a deadline written after it.
    pub deadline_miss_rate: f64,
    /// Capture to output.
    pub latency: LatencySummary,
    /// Capture to output since the previous line of a `--metrics-out` file
    /// (absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_latency: Option<LatencySummary>,
    /// Messages dropped for slow readers (the live view's clients); absent
    /// for sinks that never drop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_messages: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
/// Frames dropped, or frames a stage skipped, somewhere, for one reason.
pub struct DropCount {
    #[serde(rename = "where")]
    /// Where (`stage detect`, `edge into track`).
    pub at: String,
    /// Why (`deadline`, `queue_full`, …).
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}

/// A meter's quantiles since the start, and with `interval` since the last
/// interval too (both read at one instant).
fn latencies(l: &Latency, interval: bool) -> (LatencySummary, Option<LatencySummary>) {
    if interval {
        let (all, recent) = l.take_interval();
        (all, Some(recent))
    } else {
        (l.summary(), None)
    }
}

impl RunStats {
    /// Counts a source from now on (at the start or added while running).
    pub fn add_source(&self, id: &str, stats: Arc<SourceStats>) {
        // A poisoned lock means a reader panicked; the list itself is intact.
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        sources.push((id.to_string(), stats));
    }

    /// The sources' ids and counters (a copy of the list: the lock is held
    /// only while copying, never while a frame is worked on).
    pub fn sources(&self) -> Vec<(String, Arc<SourceStats>)> {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A snapshot of the run so far.
    pub fn summary(&self, pipeline: &str, elapsed: Duration, stopped: bool) -> Summary {
        self.snapshot(pipeline, elapsed, stopped, false)
    }

    /// [`RunStats::summary`] with each stage's and sink's latency since the
    /// previous interval (`interval_latency`), for `--metrics-out`; a new
    /// interval begins.
    pub fn interval(&self, pipeline: &str, elapsed: Duration) -> Summary {
        self.snapshot(pipeline, elapsed, false, true)
    }

    fn snapshot(
        &self,
        pipeline: &str,
        elapsed: Duration,
        stopped: bool,
        interval: bool,
    ) -> Summary {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let source_stats = self.sources();
        let sources: Vec<SourceSummary> = source_stats
            .iter()
            .map(|(id, s)| SourceSummary {
                id: id.clone(),
                frames: load(&s.frames),
                declared_frames: Some(load(&s.declared_frames)).filter(|n| *n > 0),
                reconnects: load(&s.reconnects),
                reconnect_attempts: load(&s.reconnect_attempts),
                gap_s: load(&s.gap_ns) as f64 / 1e9,
            })
            .collect();
        let stereo: Vec<PairSummary> = self
            .pairs
            .iter()
            .map(|(id, p)| PairSummary {
                id: id.clone(),
                pairs: load(&p.pairs),
                unpaired_left: load(&p.unpaired_left),
                unpaired_right: load(&p.unpaired_right),
                skew: p.skew.summary(),
            })
            .collect();
        let edge_of = |name: &str| self.edges.iter().find(|e| e.name == name);
        let stages: Vec<StageSummary> = self
            .stages
            .iter()
            .map(|s| {
                let (latency, interval_latency) = latencies(&s.latency, interval);
                let edge = edge_of(&s.id);
                let (processed, deadline, interval, busy) = (
                    load(&s.processed),
                    load(&s.skipped_deadline),
                    load(&s.skipped_interval),
                    load(&s.skipped_busy),
                );
                StageSummary {
                    id: s.id.clone(),
                    processed,
                    failed: load(&s.failed),
                    skipped_deadline: deadline,
                    skipped_interval: interval,
                    skipped_busy: busy,
                    waited_for_result: load(&s.waited),
                    result_lag_frames: {
                        let bins: Vec<u64> = s.result_lag.iter().map(load).collect();
                        if bins.iter().any(|n| *n > 0) {
                            bins
                        } else {
                            Vec::new()
                        }
                    },
                    run_rate: processed as f64
                        / (processed + deadline + interval + busy).max(1) as f64,
                    batches: load(&s.batches),
                    mean_batch: load(&s.batched_frames) as f64 / load(&s.batches).max(1) as f64,
                    queue_capacity: edge.map_or(0, |e| e.plan.capacity),
                    max_queue_depth: edge.map_or(0, |e| e.max_depth.load(Ordering::Relaxed)),
                    latency,
                    interval_latency,
                }
            })
            .collect();
        let sinks: Vec<SinkSummary> = self
            .sinks
            .iter()
            .map(|s| {
                let (latency, interval_latency) = latencies(&s.latency, interval);
                SinkSummary {
                    name: s.name.clone(),
                    written: load(&s.written),
                    deadline_miss_rate: load(&s.deadline_missed) as f64
                        / load(&s.with_deadline).max(1) as f64,
                    latency,
                    interval_latency,
                    dropped_messages: s.dropped.as_ref().map(|d| load(d)),
                }
            })
            .collect();
        let mut drops = Vec::new();
        for (id, s) in &source_stats {
            for (reason, counter) in [("latest", &s.dropped_latest), ("lost", &s.lost)] {
                let n = load(counter);
                if n > 0 {
                    drops.push(DropCount {
                        at: format!("source {id}"),
                        reason,
                        count: n,
                    });
                }
            }
        }
        let mut skips = Vec::new();
        for s in &stages {
            for (reason, n) in [
                ("deadline", s.skipped_deadline),
                ("interval", s.skipped_interval),
                ("busy", s.skipped_busy),
            ] {
                if n > 0 {
                    skips.push(DropCount {
                        at: format!("stage {}", s.id),
                        reason,
                        count: n,
                    });
                }
            }
        }
        for p in &stereo {
            for (side, n) in [("left", p.unpaired_left), ("right", p.unpaired_right)] {
                if n > 0 {
                    drops.push(DropCount {
                        at: format!("stereo {} {side}", p.id),
                        reason: "unpaired",
                        count: n,
                    });
                }
            }
        }
        for e in &self.edges {
            let n = load(&e.dropped_full);
            if n > 0 {
                drops.push(DropCount {
                    at: format!("edge into {}", e.name),
                    reason: "queue_full",
                    count: n,
                });
            }
        }
        let short_sources = sources
            .iter()
            .filter(|s| s.declared_frames.is_some())
            .count() as u64;
        let frames_in = sources.iter().map(|s| s.frames).sum();
        let frames_out = sinks.first().map_or(0, |s| s.written);
        let secs = elapsed.as_secs_f64();
        Summary {
            pipeline: pipeline.to_string(),
            elapsed_s: secs,
            frames_in,
            frames_out,
            fps: if secs > 0.0 {
                frames_out as f64 / secs
            } else {
                0.0
            },
            stopped,
            inference_runs: crate::meter::INFERENCE.totals().0,
            inference_s: crate::meter::INFERENCE.totals().1 as f64 / 1e9,
            memory: MemorySummary {
                rss_settled_kb: load(&self.memory.settled_kb),
                rss_max_kb: load(&self.memory.max_kb),
                rss_end_kb: Memory::rss_kb(),
            },
            sources,
            stereo,
            stages,
            sinks,
            drops,
            skips,
            short_sources,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dropped: u64 = self.drops.iter().map(|d| d.count).sum();
        let skipped: u64 = self.skips.iter().map(|d| d.count).sum();
        writeln!(
            f,
            "percept: {}{}: {} frames in, {} out, {} dropped{} in {:.2} s ({:.1} fps)",
            self.pipeline,
            if self.stopped { " (stopped)" } else { "" },
            self.frames_in,
            self.frames_out,
            dropped,
            if skipped > 0 {
                format!(", {skipped} stage skips")
            } else {
                String::new()
            },
            self.elapsed_s,
            self.fps
        )?;
        for s in &self.sources {
            let reconnects = if s.reconnect_attempts > 0 {
                format!(
                    ", {} reconnects ({} attempts), gaps {:.2} s",
                    s.reconnects, s.reconnect_attempts, s.gap_s
                )
            } else {
                String::new()
            };
            match s.declared_frames {
                Some(n) => writeln!(
                    f,
                    "  source {:<14} {} frames{reconnects} (warning: its header declares {n})",
                    s.id, s.frames
                )?,
                None => writeln!(f, "  source {:<14} {} frames{reconnects}", s.id, s.frames)?,
            }
        }
        if self.inference_runs > 0 {
            writeln!(
                f,
                "  inference {} runs, {:.2} s in ONNX Runtime ({:.1} % of the wall time)",
                self.inference_runs,
                self.inference_s,
                100.0 * self.inference_s / self.elapsed_s.max(1e-9)
            )?;
        }
        for p in &self.stereo {
            writeln!(
                f,
                "  stereo {:<14} {} pairs, unpaired {} left / {} right, skew p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                p.id,
                p.pairs,
                p.unpaired_left,
                p.unpaired_right,
                p.skew.p50_ms,
                p.skew.p99_ms,
                p.skew.max_ms
            )?;
        }
        for s in &self.stages {
            let skipped = s.skipped_deadline + s.skipped_interval + s.skipped_busy;
            let skips = if skipped > 0 {
                format!(
                    ", skipped {} deadline / {} interval / {} busy (ran on {:.0} %)",
                    s.skipped_deadline,
                    s.skipped_interval,
                    s.skipped_busy,
                    s.run_rate * 100.0
                )
            } else {
                String::new()
            };
            let waited = if s.waited_for_result > 0 {
                format!(", {} waited for its result", s.waited_for_result)
            } else {
                String::new()
            };
            let lag = lag_text(&s.result_lag_frames);
            let batches = if s.batches > 0 {
                format!(", {} batches of {:.2} frames", s.batches, s.mean_batch)
            } else {
                String::new()
            };
            writeln!(
                f,
                "  stage  {:<14} {} frames, {} failed{skips}{waited}{lag}{batches}, queue max {}/{}, {}",
                s.id, s.processed, s.failed, s.max_queue_depth, s.queue_capacity, s.latency
            )?;
        }
        for s in &self.sinks {
            writeln!(
                f,
                "  sink   {:<14} {} records, capture to output {}{}{}",
                s.name,
                s.written,
                s.latency,
                match s.dropped_messages {
                    Some(n) => format!(", {n} messages dropped for slow clients"),
                    None => String::new(),
                },
                if s.deadline_miss_rate > 0.0 {
                    format!(
                        ", {:.1} % past their deadline",
                        s.deadline_miss_rate * 100.0
                    )
                } else {
                    String::new()
                }
            )?;
        }
        let list = |counts: &[DropCount]| -> String {
            let list: Vec<String> = counts
                .iter()
                .map(|d| format!("{} {} at {}", d.count, d.reason, d.at))
                .collect();
            list.join(", ")
        };
        if !self.skips.is_empty() {
            writeln!(f, "  skips: {}", list(&self.skips))?;
        }
        if self.short_sources > 0 {
            writeln!(
                f,
                "  warnings: {} source(s) shorter than their header declares",
                self.short_sources
            )?;
        }
        if self.drops.is_empty() {
            write!(f, "  drops: none")
        } else {
            write!(f, "  drops: {}", list(&self.drops))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lags_are_binned_by_frames_and_told_in_the_summary() {
        let s = StageStats::new("detect");
        for late in [2, 2, 3, 1, 9, 8, 0] {
            s.rode(late);
        }
        let bins: Vec<u64> = s
            .result_lag
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        // 0 counts as 1 (a result rides on a later frame); 8 and 9: 8+.
        assert_eq!(bins, [2, 2, 1, 0, 0, 0, 0, 2]);
        assert_eq!(
            lag_text(&bins),
            ", results late by 1 / 2 / 3 / 8+ frames: 2 / 2 / 1 / 2"
        );
        assert_eq!(lag_text(&[]), "");
    }
}
