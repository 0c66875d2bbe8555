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

    /// The channel itself, to wait on several edges at once.
    pub fn receiver(&self) -> &Receiver<Work> {
        &self.rx
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

#[cfg(test)]
mod tests {

    use gstreamer as gst;
    use gstreamer_video as gst_video;

    use super::*;
    use crate::frame::Record;

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
        let (tx, rx) = edge(
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
        let (tx, rx) = edge(
            "consumer",
            EdgePlan {
                capacity: 1,
                policy: EdgePolicy::Block,
            },
        );
        let producer = std::thread::spawn(move || {
            (0..10)
                .map(|s| tx.send(work(s)))
                .filter(Result::is_ok)
                .count()
        });
        let got: Vec<u64> = std::iter::from_fn(|| rx.recv())
            .map(|w| w.frame.meta.seq)
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(producer.join().unwrap(), 10);
        assert_eq!(rx.stats().dropped_full.load(Ordering::Relaxed), 0);

        let (tx, rx) = edge(
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
        let (a_tx, a_rx) = edge("a", plan);
        let (b_tx, b_rx) = edge("b", plan);
        let out = Outputs::new(vec![a_tx, b_tx]);
        out.send(work(7)).unwrap();
        assert_eq!(a_rx.recv().map(|w| w.frame.meta.seq), Some(7));
        assert_eq!(b_rx.recv().map(|w| w.frame.meta.seq), Some(7));
        drop(a_rx);
        out.send(work(8)).unwrap();
        drop(b_rx);
        assert!(out.send(work(9)).is_err());
    }
}
