//! Multi-object tracking: ByteTrack association (high-score detections first,
//! then low-score ones) with a constant-velocity Kalman filter per track,
//! optimal assignment, and optional appearance (re-ID embeddings) fused into
//! the cost, BoT-SORT style. With embeddings, a track that motion cannot
//! place (an object that stopped or turned while hidden) is re-identified by
//! appearance alone near where it was last seen (`reacquire_sizes`).
//!
//! Time comes from each frame's PTS (capture time when there is none), so
//! `max_lost_s` and `confirm_s` mean the same at any frame rate and when
//! frames are skipped. On a frame whose detection did not run, every track is
//! predicted to the frame's time and written with `predicted: true`. Track ids
//! count up from 1 per run and are never reused.

pub mod assign;
pub mod kalman;
mod settings;

pub use settings::KIND;

use std::sync::Arc;


use crate::geometry::iou;
use crate::frame::Frame;
use crate::pool::VecPool;
pub use crate::record::{TrackOut, TrackState};
use crate::record::{Detection, Record};
use crate::stage::{Stage, StageError};
use kalman::Kalman;

/// 95% quantile of the chi-square distribution with 4 degrees of freedom.
const CHI2_4DOF_95: f32 = 9.4877;

/// Tracker parameters (times in seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// With re-ID, a track that motion could not match is re-identified by appearance alone (within
    /// `appearance_gate`) by a detection whose centre lies within this many box
    /// sizes of the track's last measured box; 0 turns this off.
    pub reacquire_sizes: f32,
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
            appearance_gate: 0.25,
            embedding_ema: 0.9,
            reacquire_sizes: 3.0,
        }
    }
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
    /// The last detection box matched to this track.
    last_box: [f32; 4],
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
    /// How old the detections being folded in are, seconds (0: this frame's).
    lag_s: f32,
}

/// `bbox` moved by `velocity` (px/s) for `dt` seconds.
fn shifted(bbox: [f32; 4], velocity: [f32; 2], dt: f32) -> [f32; 4] {
    let (dx, dy) = (velocity[0] * dt, velocity[1] * dt);
    [bbox[0] + dx, bbox[1] + dy, bbox[2] + dx, bbox[3] + dy]
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
    /// A tracker with no tracks yet.
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
            lag_s: 0.0,
        }
    }

    /// Like [`Tracker::update`] with detections made on an earlier frame, at
    /// `detected_s`: tracks are associated through their boxes moved back to
    /// that time and corrected with the detections moved forward to `t_s`
    /// along each track's velocity (a measurement that arrives late).
    pub fn update_late(
        &mut self,
        t_s: f64,
        detected_s: f64,
        detections: &[Detection],
        out: &mut Vec<TrackOut>,
    ) {
        self.lag_s = (t_s - detected_s).max(0.0) as f32;
        self.update(t_s, Some(detections), None, out);
        self.lag_s = 0.0;
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
                position: None,
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
            // Late detections meet the track where it was when they were made.
            let pred = shifted(t.kf.bbox(), t.kf.velocity(), -self.lag_s);
            for &di in &self.dets {
                let d = &dets[di];
                let overlap = iou(&pred, &d.bbox);
                let appearance = match embeddings {
                    Some((emb, dim)) if use_appearance && !t.embedding.is_empty() => Some(
                        cosine_distance(&t.embedding, &emb[di * dim..(di + 1) * dim]),
                    ),
                    _ => None,
                };
                // Motion gate: enough overlap, or (with appearance) a lost track whose
                // grown uncertainty still covers the box (DeepSORT's Mahalanobis gate).
                let gated_in = overlap >= min_iou
                    || (appearance.is_some()
                        && t.state == TrackState::Lost
                        && t.kf.mahalanobis_sq(&d.bbox) <= CHI2_4DOF_95);
                let c = match appearance {
                    _ if d.class_id != t.class_id || !gated_in => f32::INFINITY,
                    Some(a) if a > s.appearance_gate => f32::INFINITY,
                    Some(a) => {
                        (1.0 - s.appearance_weight) * (1.0 - overlap) + s.appearance_weight * a
                    }
                    None => 1.0 - overlap,
                };
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
        let s = self.settings;
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

        // 1b. With re-ID: tracks that motion could not place, against the
        // remaining high-score detections near where they were last seen, by
        // appearance alone (an object that stopped or turned while hidden).
        if let Some((emb, dim)) = embeddings
            && s.reacquire_sizes > 0.0
        {
            self.pool
                .retain(|&i| !self.tracks[i].matched && !self.tracks[i].embedding.is_empty());
            self.dets.retain(|&i| !self.used[i]);
            self.cost.clear();
            for &ti in &self.pool {
                let t = &self.tracks[ti];
                let [x1, y1, x2, y2] = t.last_box;
                let radius = s.reacquire_sizes * (x2 - x1).max(y2 - y1);
                for &di in &self.dets {
                    let d = &dets[di];
                    let [a1, b1, a2, b2] = d.bbox;
                    let (dx, dy) = ((a1 + a2 - x1 - x2) / 2.0, (b1 + b2 - y1 - y2) / 2.0);
                    let a = cosine_distance(&t.embedding, &emb[di * dim..(di + 1) * dim]);
                    let near = dx * dx + dy * dy <= radius * radius;
                    self.cost.push(if d.class_id == t.class_id && near {
                        a
                    } else {
                        f32::INFINITY
                    });
                }
            }
            assign::assign(
                &self.cost,
                self.pool.len(),
                self.dets.len(),
                s.appearance_gate,
                &mut self.matches,
            );
            // The filter's motion no longer describes the object: start it afresh.
            for &(r, c) in &self.matches {
                self.tracks[self.pool[r]].kf = Kalman::new(&dets[self.dets[c]].bbox);
            }
            self.apply(t_s, dets, embeddings);
        }

        // 2. Still-unmatched confirmed tracks against low-score detections (motion only).
        self.pool.clear();
        self.pool.extend(
            (0..self.tracks.len()).filter(|&i| {
                !self.tracks[i].matched && self.tracks[i].state == TrackState::Confirmed
            }),
        );
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
                last_box: d.bbox,
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
            t.kf.update(&shifted(d.bbox, t.kf.velocity(), self.lag_s));
            t.score = d.score;
            t.hits += 1;
            t.last_box = d.bbox;
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
    results: VecPool<TrackOut>,
}

impl TrackStage {
    /// A stage with one tracker per stream.
    pub fn new(settings: TrackSettings) -> TrackStage {
        TrackStage {
            settings,
            trackers: Vec::new(),
            results: VecPool::default(),
        }
    }
}

impl Stage for TrackStage {
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        let meta = &frame.meta;
        let t_s = meta.time_s();
        let index = match self.trackers.iter().position(|(s, _)| *s == meta.stream) {
            Some(i) => i,
            None => {
                self.trackers
                    .push((meta.stream.clone(), Tracker::new(self.settings)));
                self.trackers.len() - 1
            }
        };
        let mut tracks = self.results.take();
        let embeddings = record.embeddings.as_ref().map(|e| (&*e.values, e.dim));
        let tracker = &mut self.trackers[index].1;
        match (&record.detections, &record.late) {
            (None, Some(late)) => {
                tracker.update_late(t_s, late.t_s, &late.detections, tracks.as_mut_vec())
            }
            _ => tracker.update(
                t_s,
                record.detections.as_deref(),
                embeddings,
                tracks.as_mut_vec(),
            ),
        }
        record.tracks = Some(tracks);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        Detection {
            bbox: [x, 50.0, x + 20.0, 90.0],
            class_id: 0,
            class: Arc::from("person"),
            score,
            position: None,
        }
    }

    fn confirmed(out: &[TrackOut]) -> Vec<u64> {
        out.iter()
            .filter(|t| t.state == TrackState::Confirmed)
            .map(|t| t.id)
            .collect()
    }

    #[test]
    fn ids_stay_with_their_objects_and_skipped_frames_are_predicted() {
        let mut tracker = Tracker::new(TrackSettings::default());
        let mut out = Vec::new();
        // Two objects at 10 Hz: one moving right at 50 px/s, one still.
        for i in 0..10 {
            let t = i as f64 * 0.1;
            let dets = [det(10.0 + 5.0 * i as f32, 0.9), det(200.0, 0.8)];
            tracker.update(t, Some(&dets), None, &mut out);
            assert_eq!(confirmed(&out), vec![1, 2], "frame {i}");
            assert!(out.iter().all(|t| !t.predicted));
        }
        let moving_vx = out[0].velocity_px_s[0];
        assert!((moving_vx - 50.0).abs() < 5.0, "{moving_vx}");
        // Detection skipped for 0.3 s: tracks go on, predicted to the frame's time.
        tracker.update(1.2, None, None, &mut out);
        assert!(
            out.iter()
                .all(|t| t.predicted && t.state == TrackState::Confirmed)
        );
        let x1 = out[0].bbox[0];
        assert!((x1 - (10.0 + 5.0 * 12.0)).abs() < 3.0, "predicted x1 {x1}");
        // Low-score detections continue confirmed tracks (ByteTrack's second round).
        tracker.update(
            1.3,
            Some(&[det(75.0, 0.3), det(200.0, 0.3)]),
            None,
            &mut out,
        );
        assert_eq!(confirmed(&out), vec![1, 2]);
        assert!(out.iter().all(|t| !t.predicted));
    }

    #[test]
    fn lost_tracks_expire_by_time_and_ids_are_never_reused() {
        let settings = TrackSettings {
            max_lost_s: 0.5,
            ..TrackSettings::default()
        };
        let mut tracker = Tracker::new(settings);
        let mut out = Vec::new();
        tracker.update(0.0, Some(&[det(10.0, 0.9)]), None, &mut out);
        assert_eq!(out[0].id, 1);
        tracker.update(0.3, Some(&[]), None, &mut out);
        assert_eq!((out[0].state, out[0].predicted), (TrackState::Lost, true));
        tracker.update(0.9, Some(&[]), None, &mut out);
        assert!(out.is_empty(), "lost for 0.9 s > 0.5 s");
        // A new object: a new id, and tentative until matched again.
        tracker.update(1.0, Some(&[det(10.0, 0.9)]), None, &mut out);
        assert_eq!((out[0].id, out[0].state), (2, TrackState::Tentative));
        tracker.update(1.1, Some(&[det(11.0, 0.9)]), None, &mut out);
        assert_eq!((out[0].id, out[0].state), (2, TrackState::Confirmed));
    }

    #[test]
    fn appearance_keeps_identities_when_motion_is_ambiguous() {
        // Two objects at the same place on the last frame: only their
        // embeddings tell them apart.
        let e = |a: f32| {
            let mut v = vec![a, 1.0 - a];
            normalise(&mut v);
            v
        };
        let run = |with_appearance: bool| {
            let mut tracker = Tracker::new(TrackSettings {
                appearance_weight: 0.9,
                ..TrackSettings::default()
            });
            let mut out = Vec::new();
            let emb: Vec<f32> = [e(1.0), e(0.0)].concat();
            let emb = with_appearance.then_some((emb.as_slice(), 2));
            tracker.update(0.0, Some(&[det(0.0, 0.9), det(16.0, 0.9)]), emb, &mut out);
            // Both move to x ~ 8. Motion favours detection 0 for track 1 (nearer
            // its last box) but detection 1 has track 1's look; scores tell them apart.
            let swapped: Vec<f32> = [e(0.0), e(1.0)].concat();
            let emb2 = with_appearance.then_some((swapped.as_slice(), 2));
            tracker.update(0.1, Some(&[det(8.0, 0.8), det(8.5, 0.95)]), emb2, &mut out);
            out.iter().find(|t| t.id == 1).map(|t| t.score)
        };
        assert_eq!(run(false), Some(0.8), "motion alone takes the nearer box");
        assert_eq!(
            run(true),
            Some(0.95),
            "with appearance, track 1 follows its own look"
        );
    }

    #[test]
    fn hidden_tracks_are_reidentified_by_appearance_near_where_they_were_lost() {
        // Track 1 moves right, vanishes for 0.4 s (its prediction runs on), then
        // reappears behind where it was lost, moving back. Only appearance finds it.
        let look = [1.0f32, 0.0];
        let other = [0.0f32, 1.0];
        let run = |reacquire_sizes: f32, emb_now: [f32; 2]| {
            let mut tracker = Tracker::new(TrackSettings {
                reacquire_sizes,
                ..TrackSettings::default()
            });
            let mut out = Vec::new();
            for i in 0..5 {
                let x = 100.0 + 10.0 * i as f32;
                tracker.update(
                    0.1 * i as f64,
                    Some(&[det(x, 0.9)]),
                    Some((&look, 2)),
                    &mut out,
                );
            }
            for i in 5..9 {
                tracker.update(0.1 * i as f64, Some(&[]), Some((&[], 2)), &mut out);
            }
            assert_eq!(out[0].state, TrackState::Lost);
            assert!(
                out[0].bbox[0] > 170.0,
                "the prediction ran on: {:?}",
                out[0]
            );
            tracker.update(0.9, Some(&[det(130.0, 0.9)]), Some((&emb_now, 2)), &mut out);
            out.iter()
                .find(|t| !t.predicted)
                .map(|t| (t.id, t.state, t.velocity_px_s[0]))
        };
        let (id, state, vx) = run(3.0, look).unwrap();
        assert_eq!((id, state), (1, TrackState::Confirmed));
        assert!(vx.abs() < 1e-3, "motion starts afresh, not {vx} px/s");
        // Another look, or re-identification turned off: a new track.
        assert_eq!(run(3.0, other).unwrap().0, 2);
        assert_eq!(run(0.0, look).unwrap().0, 2);
        // Too far from the last box (0.2 box sizes = 8 px; it is 10 px away).
        assert_eq!(run(0.2, look).unwrap().0, 2);
    }
}
