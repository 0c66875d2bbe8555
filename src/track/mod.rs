//! Multi-object tracking: ByteTrack association (high-score detections first,
//! then low-score ones) with a constant-velocity Kalman filter per track,
//! optimal assignment, and optional appearance (re-ID embeddings) fused into
//! the cost, BoT-SORT style.
//!
//! Time comes from each frame's PTS (capture time when there is none), so
//! `max_lost_s` and `confirm_s` mean the same at any frame rate and when
//! frames are skipped. On a frame whose detection did not run, every track is
//! predicted to the frame's time and written with `predicted: true`. Track ids
//! count up from 1 per run and are never reused.

pub mod assign;
pub mod kalman;

use std::sync::Arc;

use serde::Serialize;

use crate::detect::nms::iou;
use crate::frame::{Detection, Frame, Record};
use crate::stage::{Stage, StageError};
use kalman::Kalman;

/// Tracker parameters (times in seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSettings {
    /// Detections at or above this score take part in the first association.
    pub high_score: f32,
    /// Detections between this and `high_score` can only continue confirmed tracks.
    pub low_score: f32,
    /// An unmatched detection at or above this score starts a track.
    pub new_track_score: f32,
    /// Minimum IoU of a track's prediction with a high-score detection.
    pub match_iou: f32,
    /// Minimum IoU with a low-score detection.
    pub low_match_iou: f32,
    /// A track unmatched this long is removed.
    pub max_lost_s: f32,
    /// A new track is confirmed once it has been matched for this long (and twice).
    pub confirm_s: f32,
    /// Weight of appearance (cosine distance) against motion (1 - IoU), 0..1, when embeddings exist.
    pub appearance_weight: f32,
    /// Largest cosine distance at which appearance still allows a match.
    pub appearance_gate: f32,
    /// Exponential moving average factor of a track's embedding.
    pub embedding_ema: f32,
}

impl Default for TrackSettings {
    fn default() -> Self {
        TrackSettings {
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            max_lost_s: 1.0,
            confirm_s: 0.0,
            appearance_weight: 0.5,
            appearance_gate: 0.5,
            embedding_ema: 0.9,
        }
    }
}

/// A track's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackState {
    Tentative,
    Confirmed,
    Lost,
}

/// A track as written with a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackOut {
    pub id: u64,
    pub bbox: [f32; 4],
    pub class_id: u32,
    pub class: Arc<str>,
    pub score: f32,
    pub velocity_px_s: [f32; 2],
    pub age_s: f32,
    pub state: TrackState,
    /// The box is the filter's prediction: no detection matched it on this frame.
    pub predicted: bool,
}

struct Track {
    id: u64,
    kf: Kalman,
    class_id: u32,
    class: Arc<str>,
    score: f32,
    state: TrackState,
    first_s: f64,
    last_update_s: f64,
    hits: u32,
    /// L2-normalised moving average of matched embeddings (empty without re-ID).
    embedding: Vec<f32>,
    matched: bool,
}

/// The tracker of one stream.
pub struct Tracker {
    settings: TrackSettings,
    tracks: Vec<Track>,
    last_s: Option<f64>,
    next_id: u64,
    // Scratch space reused every frame.
    cost: Vec<f32>,
    matches: Vec<(usize, usize)>,
    pool: Vec<usize>,
    dets: Vec<usize>,
    used: Vec<bool>,
}

/// Cosine distance of two L2-normalised vectors.
fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl Tracker {
    pub fn new(settings: TrackSettings) -> Tracker {
        Tracker {
            settings,
            tracks: Vec::new(),
            last_s: None,
            next_id: 1,
            cost: Vec::new(),
            matches: Vec::new(),
            pool: Vec::new(),
            dets: Vec::new(),
            used: Vec::new(),
        }
    }

    /// Advances to time `t_s` and folds in this frame's detections (`None`
    /// when detection did not run), with their embeddings (`dim` values each)
    /// when re-ID ran. Writes the tracks to report into `out`.
    pub fn update(
        &mut self,
        t_s: f64,
        detections: Option<&[Detection]>,
        embeddings: Option<(&[f32], usize)>,
        out: &mut Vec<TrackOut>,
    ) {
        let first_frame = self.last_s.is_none();
        let dt = self.last_s.map_or(0.0, |l| (t_s - l).max(0.0)) as f32;
        self.last_s = Some(t_s);
        for t in &mut self.tracks {
            t.kf.predict(dt);
            t.matched = false;
        }
        if let Some(dets) = detections {
            self.associate(t_s, dets, embeddings, first_frame);
        }
        out.clear();
        for t in &self.tracks {
            out.push(TrackOut {
                id: t.id,
                bbox: t.kf.bbox(),
                class_id: t.class_id,
                class: t.class.clone(),
                score: t.score,
                velocity_px_s: t.kf.velocity(),
                age_s: (t_s - t.first_s) as f32,
                state: t.state,
                predicted: !t.matched,
            });
        }
    }

    /// One round of matching `self.pool` (tracks) against `self.dets` (detections).
    fn round(
        &mut self,
        dets: &[Detection],
        embeddings: Option<(&[f32], usize)>,
        min_iou: f32,
        use_appearance: bool,
    ) {
        let (rows, cols) = (self.pool.len(), self.dets.len());
        self.cost.clear();
        let s = &self.settings;
        for &ti in &self.pool {
            let t = &self.tracks[ti];
            let pred = t.kf.bbox();
            for &di in &self.dets {
                let d = &dets[di];
                let overlap = iou(&pred, &d.bbox);
                let mut c = if d.class_id != t.class_id || overlap < min_iou {
                    f32::INFINITY
                } else {
                    1.0 - overlap
                };
                if use_appearance
                    && c.is_finite()
                    && let Some((emb, dim)) = embeddings
                    && !t.embedding.is_empty()
                {
                    let a = cosine_distance(&t.embedding, &emb[di * dim..(di + 1) * dim]);
                    c = if a > s.appearance_gate {
                        f32::INFINITY
                    } else {
                        (1.0 - s.appearance_weight) * c + s.appearance_weight * a
                    };
                }
                self.cost.push(c);
            }
        }
        assign::assign(&self.cost, rows, cols, 1.0, &mut self.matches);
    }

    fn associate(
        &mut self,
        t_s: f64,
        dets: &[Detection],
        embeddings: Option<(&[f32], usize)>,
        first_frame: bool,
    ) {
        let s = self.settings.clone();
        self.used.clear();
        self.used.resize(dets.len(), false);

        // 1. Confirmed and lost tracks against high-score detections (motion + appearance).
        self.pool.clear();
        self.pool.extend(
            (0..self.tracks.len()).filter(|&i| self.tracks[i].state != TrackState::Tentative),
        );
        self.dets.clear();
        self.dets
            .extend((0..dets.len()).filter(|&i| dets[i].score >= s.high_score));
        self.round(dets, embeddings, s.match_iou, true);
        self.apply(t_s, dets, embeddings);

        // 2. Still-unmatched confirmed tracks against low-score detections (motion only).
        self.pool
            .retain(|&i| !self.tracks[i].matched && self.tracks[i].state == TrackState::Confirmed);
        self.dets.clear();
        self.dets.extend((0..dets.len()).filter(|&i| {
            !self.used[i] && dets[i].score >= s.low_score && dets[i].score < s.high_score
        }));
        self.round(dets, embeddings, s.low_match_iou, false);
        self.apply(t_s, dets, embeddings);

        // 3. Tentative tracks against the remaining high-score detections.
        self.pool.clear();
        self.pool.extend(
            (0..self.tracks.len()).filter(|&i| self.tracks[i].state == TrackState::Tentative),
        );
        self.dets.clear();
        self.dets
            .extend((0..dets.len()).filter(|&i| !self.used[i] && dets[i].score >= s.high_score));
        self.round(dets, embeddings, s.match_iou, true);
        self.apply(t_s, dets, embeddings);

        // Unmatched: tentative tracks end, confirmed ones are lost, long-lost ones end.
        self.tracks.retain_mut(|t| {
            if t.matched {
                return true;
            }
            match t.state {
                TrackState::Tentative => false,
                _ => {
                    t.state = TrackState::Lost;
                    (t_s - t.last_update_s) as f32 <= s.max_lost_s
                }
            }
        });

        // New tracks from unmatched confident detections (confirmed at once on the first frame).
        for (i, d) in dets.iter().enumerate() {
            if self.used[i] || d.score < s.new_track_score {
                continue;
            }
            let mut embedding = Vec::new();
            if let Some((emb, dim)) = embeddings {
                embedding.extend_from_slice(&emb[i * dim..(i + 1) * dim]);
            }
            self.tracks.push(Track {
                id: self.next_id,
                kf: Kalman::new(&d.bbox),
                class_id: d.class_id,
                class: d.class.clone(),
                score: d.score,
                state: if first_frame {
                    TrackState::Confirmed
                } else {
                    TrackState::Tentative
                },
                first_s: t_s,
                last_update_s: t_s,
                hits: 1,
                embedding,
                matched: true,
            });
            self.next_id += 1;
        }
    }

    /// Applies `self.matches` of the last round.
    fn apply(&mut self, t_s: f64, dets: &[Detection], embeddings: Option<(&[f32], usize)>) {
        let s = &self.settings;
        for &(r, c) in &self.matches {
            let (ti, di) = (self.pool[r], self.dets[c]);
            let d = &dets[di];
            let t = &mut self.tracks[ti];
            t.kf.update(&d.bbox);
            t.score = d.score;
            t.hits += 1;
            t.last_update_s = t_s;
            t.matched = true;
            self.used[di] = true;
            if let Some((emb, dim)) = embeddings {
                let e = &emb[di * dim..(di + 1) * dim];
                if t.embedding.len() == dim {
                    for (a, b) in t.embedding.iter_mut().zip(e) {
                        *a = s.embedding_ema * *a + (1.0 - s.embedding_ema) * b;
                    }
                    normalise(&mut t.embedding);
                } else {
                    t.embedding.clear();
                    t.embedding.extend_from_slice(e);
                }
            }
            t.state = match t.state {
                TrackState::Tentative if t.hits >= 2 && (t_s - t.first_s) as f32 >= s.confirm_s => {
                    TrackState::Confirmed
                }
                TrackState::Tentative => TrackState::Tentative,
                _ => TrackState::Confirmed,
            };
        }
    }
}

/// The `track` stage: one tracker per stream.
pub struct TrackStage {
    settings: TrackSettings,
    trackers: Vec<(Arc<str>, Tracker)>,
    pool: (
        crossbeam_channel::Sender<Vec<TrackOut>>,
        crossbeam_channel::Receiver<Vec<TrackOut>>,
    ),
}

impl TrackStage {
    pub fn new(settings: TrackSettings) -> TrackStage {
        TrackStage {
            settings,
            trackers: Vec::new(),
            pool: crossbeam_channel::bounded(64),
        }
    }
}

impl Stage for TrackStage {
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        let meta = &frame.meta;
        let t_s = meta.pts_ns.unwrap_or(meta.capture_ns) as f64 / 1e9;
        let index = match self.trackers.iter().position(|(s, _)| *s == meta.stream) {
            Some(i) => i,
            None => {
                self.trackers
                    .push((meta.stream.clone(), Tracker::new(self.settings.clone())));
                self.trackers.len() - 1
            }
        };
        let mut tracks = crate::frame::Tracks::new(
            self.pool.1.try_recv().unwrap_or_default(),
            self.pool.0.clone(),
        );
        let embeddings = record.embeddings.as_ref().map(|e| (&*e.values, e.dim));
        self.trackers[index].1.update(
            t_s,
            record.detections.as_deref(),
            embeddings,
            tracks.as_mut_vec(),
        );
        record.tracks = Some(tracks);
        Ok(())
    }
}
