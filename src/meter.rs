//! Meters: latency histograms, recent-latency estimators and the counters
//! that sources, pairings and models update while a run goes on.
//!
//! A leaf: it imports nothing of percept, so stages, sources and the runtime
//! all measure themselves with the same types without importing each other.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Lowest latency told apart: 1 µs.
const HIST_LOW_NS: u64 = 1_000;
/// Highest latency recorded: 10 minutes.
const HIST_HIGH_NS: u64 = 600_000_000_000;
/// Significant figures the histogram keeps.
const HIST_SIGFIG: u8 = 3;

/// Latency histograms shared between the thread that records and the
/// monitor: one since the start, one since the monitor last took an
/// interval ([`Latency::take_interval`]). The lock is held only to record
/// one value or to read quantiles.
#[derive(Debug)]
pub struct Latency(Mutex<Option<[Histogram<u64>; 2]>>, AtomicU64);

impl Default for Latency {
    fn default() -> Self {
        // The bounds are constants within hdrhistogram's limits; should that
        // ever fail, the meter stays empty rather than failing the run.
        let h = || Histogram::new_with_bounds(HIST_LOW_NS, HIST_HIGH_NS, HIST_SIGFIG).ok();
        Latency(
            Mutex::new(h().zip(h()).map(|(a, b)| [a, b])),
            AtomicU64::new(0),
        )
    }
}

fn quantiles(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        p50_ms: h.value_at_quantile(0.5) as f64 / 1e6,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1e6,
        max_ms: h.max() as f64 / 1e6,
    }
}

/// A latency histogram as Prometheus reads one: cumulative counts at
/// upper bounds, the count and the sum.
#[derive(Debug, Clone, Default)]
pub struct Buckets {
    /// (upper bound ns, values at or below it).
    pub le: Vec<(u64, u64)>,
    /// Values recorded.
    pub count: u64,
    /// Sum of the values recorded, ns (exact, not from the histogram).
    pub sum_ns: u64,
}

impl Latency {
    /// Records one latency in nanoseconds (clamped to the histogram's range).
    pub fn record_ns(&self, ns: u64) {
        let mut h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = h.as_mut() {
            for h in h {
                h.saturating_record(ns.clamp(HIST_LOW_NS, HIST_HIGH_NS));
            }
            self.1.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// Cumulative counts since the start at each of `bounds_ns`
    /// (ascending), within the histogram's precision (3 significant figures).
    pub fn buckets(&self, bounds_ns: &[u64]) -> Buckets {
        let h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some([h, _]) = h.as_ref() else {
            return Buckets::default();
        };
        Buckets {
            le: bounds_ns
                .iter()
                .map(|&b| (b, h.count_between(0, b)))
                .collect(),
            count: h.len(),
            sum_ns: self.1.load(Ordering::Relaxed),
        }
    }

    /// Count and quantiles since the start.
    pub fn summary(&self) -> LatencySummary {
        let h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        h.as_ref()
            .map_or_else(LatencySummary::default, |h| quantiles(&h[0]))
    }

    /// Count and quantiles since the start, and since the last call (since
    /// the start for the first), read together; a new interval begins.
    /// Resetting keeps the histogram's buckets: no allocation.
    pub fn take_interval(&self) -> (LatencySummary, LatencySummary) {
        let mut h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        h.as_mut().map_or_else(Default::default, |h| {
            let q = (quantiles(&h[0]), quantiles(&h[1]));
            h[1].reset();
            q
        })
    }
}

/// Quantiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

/// Work times recent latency estimates look back on.
pub const LATENCY_WINDOW: usize = 32;

/// A stage's (or a model's) recent work times, for admission control: a
/// fixed window, no allocation.
#[derive(Debug, Clone)]
pub struct RecentLatency {
    ring: [u64; LATENCY_WINDOW],
    len: usize,
    next: usize,
    scratch: [u64; LATENCY_WINDOW],
}

impl RecentLatency {
    /// An empty window.
    pub fn new() -> RecentLatency {
        RecentLatency {
            ring: [0; LATENCY_WINDOW],
            len: 0,
            next: 0,
            scratch: [0; LATENCY_WINDOW],
        }
    }

    /// Adds one work time, replacing the oldest once the window is full.
    pub fn record(&mut self, ns: u64) {
        self.ring[self.next] = ns;
        self.next = (self.next + 1) % LATENCY_WINDOW;
        self.len = (self.len + 1).min(LATENCY_WINDOW);
    }

    /// The smallest value of the window; `None` before any sample.
    pub fn min(&self) -> Option<u64> {
        self.ring[..self.len].iter().copied().min()
    }

    /// The 95th percentile of the window; `None` before any sample.
    pub fn p95(&mut self) -> Option<u64> {
        self.percentile(95)
    }

    /// The median of the window (the lower one of an even count); `None`
    /// before any sample.
    pub fn p50(&mut self) -> Option<u64> {
        self.percentile(50)
    }

    /// The `q`th percentile (nearest rank) of the window.
    fn percentile(&mut self, q: usize) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let s = &mut self.scratch[..self.len];
        s.copy_from_slice(&self.ring[..self.len]);
        let k = (self.len * q).div_ceil(100).saturating_sub(1);
        Some(*s.select_nth_unstable(k).1)
    }
}

impl Default for RecentLatency {
    fn default() -> Self {
        Self::new()
    }
}

/// Time spent inside ONNX Runtime's `run`, over every engine of the process:
/// what the pipeline overhead is measured against.
#[derive(Debug)]
pub struct InferenceClock {
    runs: AtomicU64,
    ns: AtomicU64,
}

/// The process's inference clock.
pub static INFERENCE: InferenceClock = InferenceClock {
    runs: AtomicU64::new(0),
    ns: AtomicU64::new(0),
};

impl InferenceClock {
    /// Counts one run that took `ns`.
    pub fn record(&self, ns: u64) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Runs so far and their total time in ns.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.runs.load(Ordering::Relaxed),
            self.ns.load(Ordering::Relaxed),
        )
    }
}

/// Live counters of one source, read by the monitor and the summary.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Frames delivered into percept.
    pub frames: AtomicU64,
    /// Frames dropped because a newer one arrived (`latest` delivery).
    pub dropped_latest: AtomicU64,
    /// Last PTS delivered, ns.
    pub position_ns: AtomicU64,
    /// Declared duration, ns (0 = unknown).
    pub duration_ns: AtomicU64,
    /// Video frames the file's header declares when that is more than were
    /// decoded from a complete file (AVI `dwLength`); 0 otherwise.
    pub declared_frames: AtomicU64,
    /// Times a reconnecting source came back (a frame after a rebuild).
    pub reconnects: AtomicU64,
    /// Pipeline rebuilds tried (successful or not).
    pub reconnect_attempts: AtomicU64,
    /// Time without frames before each come-back, summed, ns.
    pub gap_ns: AtomicU64,
    /// Frames the sender numbered that never reached the stages (gaps in a
    /// `zenoh` source's sequence numbers: dropped by Zenoh's congestion
    /// control, or by this source's `latest` delivery).
    pub lost: AtomicU64,
}

/// Counters of one stereo pairing.
#[derive(Debug, Default)]
pub struct PairStats {
    /// Pairs emitted.
    pub pairs: AtomicU64,
    /// Left frames dropped without a partner.
    pub unpaired_left: AtomicU64,
    /// Right frames dropped without a partner.
    pub unpaired_right: AtomicU64,
    /// |right time − left time| of emitted pairs.
    pub skew: Latency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_p95_follows_the_window() {
        let mut r = RecentLatency::new();
        assert_eq!(r.p95(), None);
        for ns in 1..=20 {
            r.record(ns);
        }
        assert_eq!(r.p95(), Some(19));
        // A full window of slow times pushes the old fast ones out.
        for _ in 0..LATENCY_WINDOW {
            r.record(1_000);
        }
        assert_eq!(r.p95(), Some(1_000));
    }

    #[test]
    fn latency_summary_reads_milliseconds() {
        let l = Latency::default();
        assert_eq!(l.summary().count, 0);
        l.record_ns(2_000_000);
        let s = l.summary();
        assert_eq!(s.count, 1);
        assert!((s.max_ms - 2.0).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn buckets_are_cumulative_with_an_exact_sum() {
        let l = Latency::default();
        for ms in [1, 2, 2, 8, 30] {
            l.record_ns(ms * 1_000_000);
        }
        let b = l.buckets(&[1_000_000, 5_000_000, 10_000_000, 25_000_000]);
        let counts: Vec<u64> = b.le.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [1, 3, 4, 4]);
        assert_eq!(b.count, 5);
        assert_eq!(b.sum_ns, 43_000_000);
    }
}
