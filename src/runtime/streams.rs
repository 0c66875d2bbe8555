//! The streams of a run: each source on a named thread of its own, started
//! at the beginning or added while the run goes on (`POST /streams` on the
//! operations endpoint), and removed while it goes on (`DELETE
//! /streams/<id>`).
//!
//! A removed source stops like a source at Ctrl-C: it sends no more frames,
//! and the frames it already sent drain through the stages to the sinks.
//! When a source's thread ends, every stage worker gets a [`StreamEnd`]; a
//! worker drops its state for that stream (the scheduler's counters, a
//! waiting asynchronous result, and the stage's own state through
//! [`crate::stage::Stage::end_stream`]) once the stream's last frame has
//! passed it.
//!
//! The run ends when no stream is left running: the last clone of the
//! stages' input is dropped here, and the edges close in order as before.
//! A stream cannot be added after that.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use super::stats::RunStats;
use crate::clock;
use crate::config::{ConfigError, Plan, SourcePlan};
use crate::edge::Outputs;
use crate::error::Error;
use crate::meter::SourceStats;
use crate::registry;
use crate::source::Source;

/// How many stream ends wait for one stage worker to read them; a notice
/// that finds the queue full is dropped, and that worker keeps the stream's
/// state (a few kilobytes) until the run ends: memory, never a wrong result.
const END_QUEUE: usize = 64;

/// A stream's source has finished: its last frame is `last_seq` (`None`:
/// it sent none).
#[derive(Debug, Clone)]
pub(crate) struct StreamEnd {
    /// The stream id.
    pub stream: Arc<str>,
    /// Sequence number of its last frame.
    pub last_seq: Option<u64>,
    /// When the source ended, monotonic ns.
    pub at_ns: u64,
}

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Its source delivers frames.
    Running,
    /// `DELETE` asked it to stop; its source is finishing.
    Removing,
    /// Its source has finished (end of file, removed, failed).
    Ended,
}

/// What `GET /streams` (and `POST`'s answer) shows of one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    /// The stream id (the source's `id`).
    pub id: String,
    /// The source kind.
    pub kind: &'static str,
    /// What it reads, with credentials masked.
    pub input: String,
    /// A live source (camera, network stream).
    pub live: bool,
    /// Its reconnect settings, when it has any.
    pub reconnect: Option<String>,
    /// Running, removing or ended.
    pub state: StreamState,
    /// Added while running (`POST /streams`).
    pub added: bool,
    /// Frames delivered (over every time the id was added).
    pub frames: u64,
    /// Times it came back after a rebuild.
    pub reconnects: u64,
    /// Rebuilds tried.
    pub reconnect_attempts: u64,
    /// Seconds without frames between losing and regaining it.
    pub gap_s: f64,
}

/// Why a stream could not be added or removed; `status()` is the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The source spec is not valid (as in a pipeline file).
    #[error("{0}")]
    Invalid(ConfigError),
    /// Its pipeline could not be built.
    #[error("{0}")]
    Build(String),
    /// No stream has this id.
    #[error("no stream `{0}`")]
    NotFound(String),
    /// The stream cannot be removed or added now.
    #[error("{0}")]
    Conflict(String),
}

impl StreamError {
    /// The HTTP status that says it: 400 bad spec, 404 unknown id, 409 conflict.
    pub fn status(&self) -> u16 {
        match self {
            StreamError::Invalid(_) | StreamError::Build(_) => 400,
            StreamError::NotFound(_) => 404,
            StreamError::Conflict(_) => 409,
        }
    }
}

struct Entry {
    id: String,
    kind: &'static str,
    input: String,
    live: bool,
    reconnect: Option<String>,
    state: StreamState,
    added: bool,
    /// Feeds a stereo pair: cannot be removed alone.
    paired: bool,
    stop: Arc<AtomicBool>,
    stats: Arc<SourceStats>,
}

struct Inner {
    /// The stages' input for new sources; `None` once the run is ending.
    downstream: Option<Outputs>,
    entries: Vec<Entry>,
    threads: Vec<(String, JoinHandle<Result<(), Error>>)>,
}

/// The run's streams: starts, adds, removes and lists them, and tells the
/// run when none is left.
pub struct Streams {
    inner: Mutex<Inner>,
    changed: Condvar,
    plan: Plan,
    stats: Arc<RunStats>,
    /// Ctrl-C: stops every source.
    stop: Arc<AtomicBool>,
    /// A failure anywhere: stops every source.
    halt: Arc<AtomicBool>,
    ends: Vec<Sender<StreamEnd>>,
}

/// The receiving end of [`StreamEnd`]s, one per stage worker.
pub(crate) type EndRx = Receiver<StreamEnd>;

/// A bounded channel of stream ends for one stage worker.
pub(crate) fn end_channel() -> (Sender<StreamEnd>, EndRx) {
    crossbeam_channel::bounded(END_QUEUE)
}

impl Streams {
    /// Streams feeding `downstream` (the first stage, or the sinks); each
    /// of `ends` ([`end_channel`]) reaches one stage worker.
    pub(crate) fn new(
        plan: &Plan,
        downstream: Outputs,
        stats: Arc<RunStats>,
        stop: Arc<AtomicBool>,
        halt: Arc<AtomicBool>,
        ends: Vec<Sender<StreamEnd>>,
    ) -> Arc<Streams> {
        Arc::new(Streams {
            inner: Mutex::new(Inner {
                downstream: Some(downstream),
                entries: Vec::new(),
                threads: Vec::new(),
            }),
            changed: Condvar::new(),
            plan: plan.clone(),
            stats,
            stop,
            halt,
            ends,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock: a thread panicked while holding it; the list stays usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `source` on a thread named `src:<id>`, sending into `paired`
    /// (a stereo pair's edge) or the stages' input.
    pub(crate) fn start(
        self: &Arc<Self>,
        source: Box<dyn Source>,
        plan: &SourcePlan,
        paired: Option<Outputs>,
        added: bool,
    ) -> Result<StreamView, StreamError> {
        let mut inner = self.lock();
        let is_paired = paired.is_some();
        let out = match paired {
            Some(out) => out,
            None => inner.downstream.clone().ok_or_else(|| {
                StreamError::Conflict("the run is ending: no stream can be added".into())
            })?,
        };
        if inner
            .entries
            .iter()
            .any(|e| e.id == plan.id && e.state != StreamState::Ended)
        {
            return Err(StreamError::Conflict(format!(
                "stream `{}` is running: remove it first",
                plan.id
            )));
        }
        // An id added again keeps its counters (one series per id).
        let stats = match inner.entries.iter().position(|e| e.id == plan.id) {
            Some(i) => inner.entries.remove(i).stats,
            None => {
                let s = Arc::new(SourceStats::default());
                self.stats.add_source(&plan.id, s.clone());
                s
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let entry = Entry {
            id: plan.id.clone(),
            kind: plan.kind,
            input: crate::redact::redact(&plan.describe()).into_owned(),
            live: plan.live,
            reconnect: plan.reconnect.map(|r| r.describe()),
            state: StreamState::Running,
            added,
            paired: is_paired,
            stop: stop.clone(),
            stats: stats.clone(),
        };
        let view = self.view(&entry);
        let frames_before = stats.frames.load(Ordering::Relaxed);
        let me = self.clone();
        let id = plan.id.clone();
        let handle = super::spawn(format!("src:{id}"), move || {
            // Tells the rest of the run when this thread ends, even by a panic.
            struct Ended<'a>(&'a Streams, &'a str, &'a SourceStats, u64);
            impl Drop for Ended<'_> {
                fn drop(&mut self) {
                    let sent = self.2.frames.load(Ordering::Relaxed) - self.3;
                    self.0.ended(self.1, sent.checked_sub(1));
                }
            }
            let _ended = Ended(&me, &id, &stats, frames_before);
            let should_stop = || {
                stop.load(Ordering::Relaxed)
                    || me.stop.load(Ordering::Relaxed)
                    || me.halt.load(Ordering::Relaxed)
            };
            let result = source.run(&out, &should_stop, &stats).map_err(Error::from);
            if result.is_err() {
                me.halt.store(true, Ordering::Relaxed);
            }
            result
        })
        .map_err(|e| StreamError::Build(e.to_string()))?;
        inner.threads.push(handle);
        inner.entries.push(entry);
        Ok(view)
    }

    /// The source thread of `id` has ended after sending `last_seq`.
    fn ended(&self, id: &str, last_seq: Option<u64>) {
        let mut inner = self.lock();
        if let Some(e) = inner
            .entries
            .iter_mut()
            .find(|e| e.id == id && e.state != StreamState::Ended)
        {
            e.state = StreamState::Ended;
        }
        let end = StreamEnd {
            stream: Arc::from(id),
            last_seq,
            at_ns: clock::monotonic_ns(),
        };
        for tx in &self.ends {
            // A full queue: that worker keeps the state (bounded, never wrong).
            let _ = tx.try_send(end.clone());
        }
        drop(inner);
        self.changed.notify_all();
    }

    /// Adds a stream from a `[[source]]` table's text (TOML, or JSON with
    /// the same fields), checked as in a pipeline file.
    ///
    /// # Errors
    /// [`StreamError::Invalid`] naming the field, [`StreamError::Build`]
    /// when its pipeline cannot be built, [`StreamError::Conflict`] for an
    /// id in use or a run that is ending.
    pub fn add(self: &Arc<Self>, body: &str) -> Result<StreamView, StreamError> {
        let origin = std::path::Path::new("POST /streams");
        let text = match serde_json::from_str::<serde_json::Value>(body) {
            Ok(json @ serde_json::Value::Object(_)) => toml::to_string(&json).map_err(|e| {
                StreamError::Invalid(ConfigError::Plan {
                    path: origin.into(),
                    message: format!("JSON body: {e}"),
                })
            })?,
            _ => body.to_string(),
        };
        // Ids of stages and pairs are taken; a running stream's id is a
        // conflict (409), found when it starts.
        let taken = (self.plan.stages.iter().map(|s| s.id.clone()))
            .chain(self.plan.stereo.iter().map(|s| s.id.clone()));
        let plan = self
            .plan
            .resolve_source(&text, origin, taken)
            .map_err(StreamError::Invalid)?;
        let source =
            registry::build_source(&plan).map_err(|e| StreamError::Build(e.to_string()))?;
        let view = self.start(source, &plan, None, true)?;
        tracing::info!("stream `{}` added: {}", view.id, view.input);
        Ok(view)
    }

    /// Stops stream `id`: its source sends no more frames; those in flight
    /// still reach the sinks.
    ///
    /// # Errors
    /// [`StreamError::NotFound`], or [`StreamError::Conflict`] when it has
    /// ended already or feeds a stereo pair.
    pub fn remove(&self, id: &str) -> Result<StreamView, StreamError> {
        let mut inner = self.lock();
        let Some(e) = inner.entries.iter_mut().find(|e| e.id == id) else {
            return Err(StreamError::NotFound(id.to_string()));
        };
        if e.paired {
            return Err(StreamError::Conflict(format!(
                "stream `{id}` feeds a stereo pair: it ends with the run"
            )));
        }
        match e.state {
            StreamState::Ended => {
                return Err(StreamError::Conflict(format!(
                    "stream `{id}` has ended already"
                )));
            }
            StreamState::Removing => {}
            StreamState::Running => {
                e.state = StreamState::Removing;
                e.stop.store(true, Ordering::Relaxed);
                tracing::info!("stream `{id}` removed: draining");
            }
        }
        Ok(self.view(e))
    }

    fn view(&self, e: &Entry) -> StreamView {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StreamView {
            id: e.id.clone(),
            kind: e.kind,
            input: e.input.clone(),
            live: e.live,
            reconnect: e.reconnect.clone(),
            state: e.state,
            added: e.added,
            frames: load(&e.stats.frames),
            reconnects: load(&e.stats.reconnects),
            reconnect_attempts: load(&e.stats.reconnect_attempts),
            gap_s: load(&e.stats.gap_ns) as f64 / 1e9,
        }
    }

    /// Every stream, in the order they started.
    pub fn list(&self) -> Vec<StreamView> {
        let inner = self.lock();
        inner.entries.iter().map(|e| self.view(e)).collect()
    }

    /// Blocks until no stream is left running, then closes the stages'
    /// input (no stream can be added after) and returns the source threads
    /// to join.
    pub(crate) fn wait(&self) -> Vec<(String, JoinHandle<Result<(), Error>>)> {
        let mut inner = self.lock();
        while inner.entries.iter().any(|e| e.state != StreamState::Ended) {
            inner = self.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        inner.downstream = None;
        std::mem::take(&mut inner.threads)
    }
}
