//! Bounded edges between threads, each with a declared capacity and policy.
//!
//! `block` waits for room (back-pressure). `drop_oldest` makes room by
//! discarding the oldest queued item and counts it (`queue_full`). Nothing
//! here can grow without bound. End of stream is the channel closing: when
//! every sender is gone, the receiver drains what is queued and stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use crate::config::{EdgePlan, EdgePolicy};
use crate::frame::Work;

/// Counters of one edge.
#[derive(Debug)]
pub struct EdgeStats {
    /// The consumer's name (stage id or sink).
    pub name: String,
    pub plan: EdgePlan,
    /// Items dropped because the edge was full (`drop_oldest`).
    pub dropped_full: AtomicU64,
    /// Queue depth seen by the consumer at its last receive.
    pub depth: AtomicUsize,
    /// Highest depth seen.
    pub max_depth: AtomicUsize,
}

/// The sending end of an edge.
pub struct EdgeTx {
    tx: Sender<Work>,
    /// A handle on the queue to discard from, for `drop_oldest`.
    oldest: Option<Receiver<Work>>,
    stats: Arc<EdgeStats>,
}

impl Clone for EdgeTx {
    fn clone(&self) -> Self {
        EdgeTx {
            tx: self.tx.clone(),
            oldest: self.oldest.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The receiving end of an edge.
pub struct EdgeRx {
    rx: Receiver<Work>,
    stats: Arc<EdgeStats>,
}

/// The consumer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Creates an edge into the consumer called `name`.
pub fn edge(name: &str, plan: EdgePlan) -> (EdgeTx, EdgeRx) {
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

impl EdgeTx {
    /// Sends by the edge's policy.
    pub fn send(&self, work: Work) -> Result<(), Closed> {
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

    pub fn stats(&self) -> &Arc<EdgeStats> {
        &self.stats
    }
}

impl EdgeRx {
    /// Blocks for the next item; `None` once every sender is gone and the queue is empty.
    pub fn recv(&self) -> Option<Work> {
        let work = self.rx.recv().ok();
        self.note_depth();
        work
    }

    /// The next item if one is queued; `Err(true)` when the edge is closed and empty.
    pub fn try_recv(&self) -> Result<Work, bool> {
        match self.rx.try_recv() {
            Ok(w) => {
                self.note_depth();
                Ok(w)
            }
            Err(TryRecvError::Empty) => Err(false),
            Err(TryRecvError::Disconnected) => Err(true),
        }
    }

    fn note_depth(&self) {
        let depth = self.rx.len();
        self.stats.depth.store(depth, Ordering::Relaxed);
        self.stats.max_depth.fetch_max(depth, Ordering::Relaxed);
    }

    pub fn stats(&self) -> &Arc<EdgeStats> {
        &self.stats
    }
}

/// Where a producer sends: one edge, or several (fan-out to sinks; all but the last get a clone).
pub struct Outputs(Vec<EdgeTx>);

impl Outputs {
    pub fn new(edges: Vec<EdgeTx>) -> Outputs {
        Outputs(edges)
    }

    /// Sends to every edge; fails only when every consumer is gone.
    pub fn send(&self, work: Work) -> Result<(), Closed> {
        let Some((last, rest)) = self.0.split_last() else {
            return Err(Closed);
        };
        let mut delivered = false;
        for tx in rest {
            let copy = Work {
                frame: work.frame.clone(),
                record: work.record.clone(),
            };
            delivered |= tx.send(copy).is_ok();
        }
        delivered |= last.send(work).is_ok();
        if delivered { Ok(()) } else { Err(Closed) }
    }
}

impl Clone for Outputs {
    fn clone(&self) -> Self {
        Outputs(self.0.clone())
    }
}
