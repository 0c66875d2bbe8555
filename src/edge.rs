//! Bounded edges between threads, each with a declared capacity and policy.
//!
//! `block` waits for room (back-pressure). `drop_oldest` makes room by
//! discarding the oldest queued item and counts it (`queue_full`). Nothing
//! here can grow without bound. End of stream is the channel closing: when
//! every sender is gone, the receiver drains what is queued and stops.
//!
//! Edges into stages carry [`Work`] by value; edges into sinks carry
//! [`Shared`] work: one sink gets the record itself, several share one
//! record (`Arc`) instead of copying it. This module owns its plan types
//! ([`EdgePlan`], [`EdgePolicy`]); it imports only the vocabulary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use serde::{Deserialize, Serialize};

use crate::record::Work;

/// Default capacity of an edge.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4;

/// What a full edge does with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgePolicy {
    /// The sender waits (back-pressure). Default for recordings.
    Block,
    /// The oldest queued item is dropped and counted. Default for live sources.
    DropOldest,
}

impl EdgePolicy {
    /// The value's name in a pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgePolicy::Block => "block",
            EdgePolicy::DropOldest => "drop_oldest",
        }
    }
}

impl std::fmt::Display for EdgePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bounded edge's capacity and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgePlan {
    /// Items the queue holds.
    pub capacity: usize,
    /// What a full queue does.
    pub policy: EdgePolicy,
}

impl Default for EdgePlan {
    fn default() -> Self {
        EdgePlan {
            capacity: DEFAULT_QUEUE_CAPACITY,
            policy: EdgePolicy::Block,
        }
    }
}

/// Work on its way to the sinks: owned when one sink reads it, shared when
/// several do. Either way a sink reads it as `&Work`.
// Work moves by value on every edge already; boxing it would allocate per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Shared {
    /// The only sink's copy.
    One(Work),
    /// One record shared by several sinks; dropped after the last one.
    Many(Arc<Work>),
}

impl std::ops::Deref for Shared {
    type Target = Work;
    fn deref(&self) -> &Work {
        match self {
            Shared::One(w) => w,
            Shared::Many(w) => w,
        }
    }
}

/// Counters of one edge.
#[derive(Debug)]
pub struct EdgeStats {
    /// The consumer's name (stage id or sink).
    pub name: String,
    /// Its capacity and policy.
    pub plan: EdgePlan,
    /// Items dropped because the edge was full (`drop_oldest`).
    pub dropped_full: AtomicU64,
    /// Queue depth seen by the consumer at its last receive.
    pub depth: AtomicUsize,
    /// Highest depth seen.
    pub max_depth: AtomicUsize,
}

/// The sending end of an edge.
pub struct EdgeTx<T = Work> {
    tx: Sender<T>,
    /// A handle on the queue to discard from, for `drop_oldest`.
    oldest: Option<Receiver<T>>,
    stats: Arc<EdgeStats>,
}

impl<T> Clone for EdgeTx<T> {
    fn clone(&self) -> Self {
        EdgeTx {
            tx: self.tx.clone(),
            oldest: self.oldest.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The receiving end of an edge.
pub struct EdgeRx<T = Work> {
    rx: Receiver<T>,
    stats: Arc<EdgeStats>,
}

/// The consumer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Creates an edge into the consumer called `name`.
pub fn edge<T>(name: &str, plan: EdgePlan) -> (EdgeTx<T>, EdgeRx<T>) {
    let (tx, rx) = crossbeam_channel::bounded(plan.capacity);
    let stats = Arc::new(EdgeStats {
        name: name.to_string(),
        plan,
        dropped_full: AtomicU64::new(0),
        depth: AtomicUsize::new(0),
        max_depth: AtomicUsize::new(0),
    });
    let oldest = (plan.policy == EdgePolicy::DropOldest).then(|| rx.clone());
    (
        EdgeTx {
            tx,
            oldest,
            stats: stats.clone(),
        },
        EdgeRx { rx, stats },
    )
}

impl<T> EdgeTx<T> {
    /// Sends by the edge's policy.
    pub fn send(&self, work: T) -> Result<(), Closed> {
        let Some(oldest) = &self.oldest else {
            return self.tx.send(work).map_err(|_| Closed);
        };
        let mut item = work;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(Closed),
                Err(TrySendError::Full(back)) => {
                    if oldest.try_recv().is_ok() {
                        self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                    }
                    item = back;
                }
            }
        }
    }

    /// The edge's counters.
    pub fn stats(&self) -> &Arc<EdgeStats> {
        &self.stats
    }
}

impl<T> EdgeRx<T> {
    /// Blocks for the next item; `None` once every sender is gone and the queue is empty.
    pub fn recv(&self) -> Option<T> {
        let work = self.rx.recv().ok();
        self.note_depth();
        work
    }

    /// The next item if one is queued; `Err(true)` when the edge is closed and empty.
    pub fn try_recv(&self) -> Result<T, bool> {
        match self.rx.try_recv() {
            Ok(w) => {
                self.note_depth();
                Ok(w)
            }
            Err(TryRecvError::Empty) => Err(false),
            Err(TryRecvError::Disconnected) => Err(true),
        }
    }

    /// The next item, waiting at most `timeout`; `Err(false)` when none came
    /// in time, `Err(true)` when the edge is closed and empty.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Result<T, bool> {
        match self.rx.recv_timeout(timeout) {
            Ok(w) => {
                self.note_depth();
                Ok(w)
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(false),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(true),
        }
    }

    /// Notes the queue's depth after an item was taken through
    /// [`EdgeRx::receiver`] (the other receive calls note it themselves).
    pub fn note_depth(&self) {
        let depth = self.rx.len();
        self.stats.depth.store(depth, Ordering::Relaxed);
        self.stats.max_depth.fetch_max(depth, Ordering::Relaxed);
    }

    /// The channel itself, to wait on several edges at once.
    pub fn receiver(&self) -> &Receiver<T> {
        &self.rx
    }

    /// The edge's counters.
    pub fn stats(&self) -> &Arc<EdgeStats> {
        &self.stats
    }
}

/// Where a producer sends: the next stage's edge, or the sinks' edges.
#[derive(Clone)]
pub enum Outputs {
    /// Into the next stage.
    Stage(EdgeTx<Work>),
    /// Into every sink: the work itself to one sink, shared by several.
    Sinks(Vec<EdgeTx<Shared>>),
}

impl Outputs {
    /// Sends on; fails only when every consumer is gone.
    pub fn send(&self, work: Work) -> Result<(), Closed> {
        match self {
            Outputs::Stage(tx) => tx.send(work),
            Outputs::Sinks(sinks) => match sinks.as_slice() {
                [] => Err(Closed),
                [one] => one.send(Shared::One(work)),
                many => {
                    let shared = Arc::new(work);
                    let mut delivered = false;
                    for tx in many {
                        delivered |= tx.send(Shared::Many(shared.clone())).is_ok();
                    }
                    if delivered { Ok(()) } else { Err(Closed) }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {

    use gstreamer as gst;
    use gstreamer_video as gst_video;

    use super::*;
    use crate::record::Record;

    fn work(seq: u64) -> Work {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 4, 4)
            .build()
            .unwrap();
        Work {
            frame: crate::frame::test_frame(info.clone(), vec![0; info.size()], seq),
            record: Record::default(),
        }
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
        let (tx, rx) = edge::<Work>(
            "consumer",
            EdgePlan {
                capacity: 2,
                policy: EdgePolicy::DropOldest,
            },
        );
        for seq in 0..5 {
            tx.send(work(seq)).unwrap();
        }
        drop(tx);
        let got: Vec<u64> = std::iter::from_fn(|| rx.recv())
            .map(|w| w.frame.meta.seq)
            .collect();
        assert_eq!(got, vec![3, 4]);
        assert_eq!(rx.stats().dropped_full.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn block_waits_and_closes_when_the_consumer_is_gone() {
        let (tx, rx) = edge::<Work>(
            "consumer",
            EdgePlan {
                capacity: 1,
                policy: EdgePolicy::Block,
            },
        );
        let producer = std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || {
                (0..10)
                    .map(|s| tx.send(work(s)))
                    .filter(Result::is_ok)
                    .count()
            })
            .unwrap();
        let got: Vec<u64> = std::iter::from_fn(|| rx.recv())
            .map(|w| w.frame.meta.seq)
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(producer.join().unwrap(), 10);
        assert_eq!(rx.stats().dropped_full.load(Ordering::Relaxed), 0);

        let (tx, rx) = edge::<Work>(
            "gone",
            EdgePlan {
                capacity: 1,
                policy: EdgePolicy::Block,
            },
        );
        drop(rx);
        assert_eq!(tx.send(work(0)), Err(Closed));
    }

    #[test]
    fn fan_out_reaches_every_consumer() {
        let plan = EdgePlan {
            capacity: 4,
            policy: EdgePolicy::Block,
        };
        let (a_tx, a_rx) = edge::<Shared>("a", plan);
        let (b_tx, b_rx) = edge::<Shared>("b", plan);
        let out = Outputs::Sinks(vec![a_tx, b_tx]);
        out.send(work(7)).unwrap();
        let (a, b) = (a_rx.recv().unwrap(), b_rx.recv().unwrap());
        assert_eq!((a.frame.meta.seq, b.frame.meta.seq), (7, 7));
        // One record, shared: no copy per sink.
        assert!(std::ptr::eq::<Work>(&*a, &*b));
        drop((a, b));
        drop(a_rx);
        out.send(work(8)).unwrap();
        drop(b_rx);
        assert!(out.send(work(9)).is_err());
    }
}
