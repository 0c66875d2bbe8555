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
pub mod flow;
pub mod kalman;
#[cfg(test)]
mod noisy;
mod settings;

pub use settings::KIND;

use std::sync::Arc;


use crate::clock;
use crate::geometry::{clip_to_image, iou, moved, moved_for};
use crate::frame::{Frame, FrameMeta};
use crate::pool::VecPool;
pub use crate::record::{Forecast, TrackOut, TrackState};
use crate::record::{Detection, Record};
use crate::stage::{Stage, StageError};
use kalman::Kalman;

/// A track's velocity is used (for reported boxes and `velocity_px_s`) once
/// it has been measured this many times: two frame differences, not one.
/// `benches/track_replay.rs` on vtest: costs 0.003 to 0.03 of MOTA on
/// walking people, and keeps single-difference jitter out of slow objects.
pub const VELOCITY_MIN_HITS: u32 = 3;

/// A track is written only while at least this share of its box is inside
/// the image. On vtest re-timed to 21 ms with asynchronous detection, boxes
/// moved past the edge after their people had left were a third of the
/// false positives away from any reference box; clipping and this rule
/// scored MOTA 0.834 against 0.828 unclipped (0.829 at 0.25, 0.834 at 0.75).
pub const MIN_INSIDE: f32 = 0.5;

/// A confirmed track becomes lost after this many detection rounds in a row
/// without a match (ByteTrack: one). Two (DeepSORT reports tracks up to one
/// missed update) was measured and not kept: on vtest re-timed to 55 ms with
/// optical flow, in line every 3rd frame scored MOTA 0.874 with two against
/// 0.901 with one, and asynchronous detection 0.84-0.85 against 0.84-0.87.
pub const LOST_AFTER_MISSES: u32 = 1;

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
    /// How boxes move between detections.
    pub motion: Motion,
    /// Whether and how far ahead each track's box is forecast
    /// ([`TrackOut::forecast`]).
    pub forecast: Horizon,
}

/// How far past its frame's capture instant a track's box is forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Horizon {
    /// No forecast (the default).
    Off,
    /// This many seconds.
    Fixed(f64),
    /// The first capture instant at which a consumer can hold the record:
    /// the frame period (the frame's duration, else the time since the
    /// stream's previous frame) times the periods the record has already
    /// taken to reach this stage, rounded up, at least one. A record that
    /// leaves within a period is read until the next frame is captured.
    Auto,
}

/// How a track's box moves between its detections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    /// Constant-velocity prediction of the Kalman filter.
    Velocity,
    /// Pixel motion: sparse optical flow inside each box, frame to frame
    /// ([`flow`]), the velocity where flow has nothing. Costs a gray
    /// conversion and two Lucas-Kanade passes per frame.
    Flow,
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
            motion: Motion::Velocity,
            forecast: Horizon::Off,
        }
    }
}

struct Track {
    id: u64,
    /// The filter as it was right after the last measurement, at `last_update_s`:
    /// predictions to any later time start from it, so a late measurement is
    /// applied at its own time against the track as it was then.
    kf: Kalman,
    class_id: u32,
    class: Arc<str>,
    score: f32,
    state: TrackState,
    first_s: f64,
    /// Detection rounds in a row that did not match it.
    misses: u32,
    /// Time of the last measurement folded in (its frame's time, not its arrival).
    last_update_s: f64,
    hits: u32,
    /// The last detection box matched to this track.
    last_box: [f32; 4],
    /// L2-normalised moving average of matched embeddings (empty without re-ID).
    embedding: Vec<f32>,
    matched: bool,
    /// With pixel motion: the box's total shift since the track started, px
    /// (measured by optical flow, or by the velocity where flow had nothing).
    flow_cum: [f32; 2],
    /// `flow_cum` at `last_update_s`.
    anchor_cum: [f32; 2],
    /// The time `flow_cum` was last advanced to.
    flow_s: f64,
    /// `flow_cum` at recent frame times, to meet a late detection.
    history: FlowHistory,
    /// The box reported on the last frame.
    reported: [f32; 4],
    /// Measured (or started) by a late detection on this update: its pixel
    /// motion from the detection's frame up to now is still to be followed
    /// from the measured box ([`Tracker::late_measured`]).
    follow_late: bool,
}

impl Track {
    /// With pixel motion: the box at its last measurement moved by the
    /// pixels' shift since.
    fn flow_box(&self) -> [f32; 4] {
        moved(
            self.kf.bbox(),
            [
                self.flow_cum[0] - self.anchor_cum[0],
                self.flow_cum[1] - self.anchor_cum[1],
            ],
        )
    }

    /// With pixel motion: the box's recent velocity, px/s: its shift over the
    /// last [`FLOW_VELOCITY_FRAMES`] frames divided by their time. `None`
    /// until that many frames have been followed.
    fn flow_velocity(&self) -> Option<[f32; 2]> {
        let ((t0, c0), (t1, c1)) = self.history.span(FLOW_VELOCITY_FRAMES)?;
        let dt = (t1 - t0) as f32;
        Some([(c1[0] - c0[0]) / dt, (c1[1] - c0[1]) / dt])
    }
}

/// Frames over which a track moved by the pixels has its `velocity_px_s`
/// measured (the shift the flow followed, not the filter's velocity, which
/// a late detection corrects only now and then). Three: on vtest re-timed
/// to 21 ms, asynchronous detection, the filter's velocity extrapolated over
/// the streaming evaluation's lag scored MOTA 0.74, the reported boxes'
/// motion over 1 / 2 / 3 records 0.75 / 0.77 / 0.77.
pub const FLOW_VELOCITY_FRAMES: usize = 3;

/// Frames of `flow_cum` kept per track: 1.28 s at 50 fps, more than any
/// detection lag an asynchronous stage produces at that rate.
const HISTORY: usize = 64;

/// A ring of (frame time, cumulative shift).
#[derive(Clone)]
struct FlowHistory {
    entries: [(f64, [f32; 2]); HISTORY],
    len: usize,
    next: usize,
}

impl FlowHistory {
    fn new() -> FlowHistory {
        FlowHistory {
            entries: [(f64::NEG_INFINITY, [0.0; 2]); HISTORY],
            len: 0,
            next: 0,
        }
    }

    fn push(&mut self, t_s: f64, cum: [f32; 2]) {
        self.entries[self.next] = (t_s, cum);
        self.next = (self.next + 1) % HISTORY;
        self.len = (self.len + 1).min(HISTORY);
    }

    /// Replaces the entry at `t_s` (to a microsecond), or adds one.
    fn set(&mut self, t_s: f64, cum: [f32; 2]) {
        match self.entries[..self.len]
            .iter_mut()
            .find(|(t, _)| (*t - t_s).abs() < 1e-6)
        {
            Some(e) => e.1 = cum,
            None => self.push(t_s, cum),
        }
    }

    /// The entry `back` entries before the newest, and the newest, when
    /// that many are kept and they are in time order.
    #[allow(clippy::type_complexity)]
    fn span(&self, back: usize) -> Option<((f64, [f32; 2]), (f64, [f32; 2]))> {
        if back == 0 || self.len <= back {
            return None;
        }
        let newest = self.entries[(self.next + HISTORY - 1) % HISTORY];
        let older = self.entries[(self.next + HISTORY - 1 - back) % HISTORY];
        (newest.0 > older.0 + 1e-6).then_some((older, newest))
    }

    /// The shift at time `t_s`: the latest entry at or before it (to a
    /// microsecond); `None` when `t_s` is older than every entry kept.
    fn at(&self, t_s: f64) -> Option<[f32; 2]> {
        self.entries[..self.len]
            .iter()
            .filter(|(t, _)| *t <= t_s + 1e-6)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| *c)
    }
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
    /// Each track's filter predicted to the detections' time (index = track).
    predicted: Vec<Kalman>,
    /// The track was measured after the detections' time: it can claim a late
    /// detection (which then starts no track) but is not corrected by it.
    newer: Vec<bool>,
    /// Each track's `flow_cum` at the detections' time (pixel motion only).
    cum_at: Vec<Option<[f32; 2]>>,
    /// [`Tracker::advance_flow`] has been called: boxes move by pixel motion.
    uses_flow: bool,
    /// The detections being folded in are late (made before the frame
    /// reported) and boxes move by pixel motion.
    late: bool,
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
        Tracker::starting_at(settings, 1)
    }

    /// A tracker whose first track id is `first_id` (a stream added again
    /// goes on from the ids its earlier tracker gave).
    pub fn starting_at(settings: TrackSettings, first_id: u64) -> Tracker {
        Tracker {
            settings,
            tracks: Vec::new(),
            last_s: None,
            next_id: first_id,
            cost: Vec::new(),
            matches: Vec::new(),
            pool: Vec::new(),
            dets: Vec::new(),
            used: Vec::new(),
            predicted: Vec::new(),
            newer: Vec::new(),
            cum_at: Vec::new(),
            uses_flow: false,
            late: false,
        }
    }

    /// The boxes reported on the last frame, in track order (what
    /// [`flow::BoxFlow::step`] measures the motion of).
    pub fn reported_boxes(&self, out: &mut Vec<[f32; 4]>) {
        out.clear();
        out.extend(self.tracks.iter().map(|t| t.reported));
    }

    /// Tracks measured or started on the last update by a late detection:
    /// (track index, the detection's time, the box as measured then). With
    /// pixel motion, follow each through the frames since
    /// ([`flow::BoxFlow::follow`]) and hand the path to
    /// [`Tracker::caught_up`]: the shift recorded since was measured on the
    /// box where the track was then believed to be, which a late detection
    /// has just corrected.
    pub fn late_measured(&self) -> impl Iterator<Item = (usize, f64, [f32; 4])> + '_ {
        self.tracks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.follow_late)
            .map(|(i, t)| (i, t.last_update_s, t.kf.bbox()))
    }

    /// Moves track `index` (from [`Tracker::late_measured`]) along `path`
    /// ((frame time, total shift since its detection), in time order),
    /// replacing the shifts recorded since, and rewrites its entry in `out`,
    /// the tracks just reported. `measured`: the pixels measured the shift
    /// on every frame of a non-empty `path`.
    ///
    /// A track born from that late detection is then confirmed: ByteTrack
    /// confirms a track on its second observation in a row, and here the
    /// object was observed again on each frame since, by its pixels
    /// (Lucas-Kanade points that pass the forward-backward check, Kalal et
    /// al., ICPR 2010), where waiting for the next detection would keep it
    /// out of the output for another detection's cost and lag.
    pub fn caught_up(
        &mut self,
        index: usize,
        path: &[(f64, [f32; 2])],
        measured: bool,
        out: &mut [TrackOut],
    ) {
        let Some(t) = self.tracks.get_mut(index) else {
            return;
        };
        t.follow_late = false;
        if measured && !path.is_empty() && t.hits == 1 && t.state == TrackState::Tentative {
            t.state = TrackState::Confirmed;
        }
        let base = t.anchor_cum;
        for &(time, cum) in path {
            let c = [base[0] + cum[0], base[1] + cum[1]];
            t.history.set(time, c);
            t.flow_cum = c;
            t.flow_s = time;
        }
        t.reported = t.flow_box();
        if let Some(o) = out.iter_mut().find(|o| o.id == t.id) {
            o.bbox = t.reported;
            o.state = t.state;
            if let Some(v) = t.flow_velocity() {
                o.velocity_px_s = v;
            }
        }
    }

    /// Moves every track by its measured pixel motion from the last frame to
    /// the frame at `t_s` (`shifts` in [`Tracker::reported_boxes`] order,
    /// px; `None`: by the velocity instead). Call before [`Tracker::update`]
    /// on every frame; from then on reported boxes follow the pixels between
    /// detections, and a late detection meets each track where the pixels
    /// say it was at the detection's time.
    pub fn advance_flow(&mut self, t_s: f64, shifts: &[Option<[f32; 2]>]) {
        self.uses_flow = true;
        for (i, t) in self.tracks.iter_mut().enumerate() {
            let dt = (t_s - t.flow_s).max(0.0) as f32;
            let shift = shifts.get(i).copied().flatten().unwrap_or_else(|| {
                if t.hits >= VELOCITY_MIN_HITS {
                    let v = t.kf.velocity();
                    [v[0] * dt, v[1] * dt]
                } else {
                    [0.0; 2]
                }
            });
            t.flow_cum = [t.flow_cum[0] + shift[0], t.flow_cum[1] + shift[1]];
            t.flow_s = t_s;
            t.history.push(t_s, t.flow_cum);
        }
    }

    /// Like [`Tracker::update`] with detections made on an earlier frame, at
    /// `detected_s` (a measurement that arrives late, out of sequence).
    ///
    /// Re-filtering from stored states (Bar-Shalom, "Update with
    /// out-of-sequence measurements in tracking: exact solution", IEEE TAES
    /// 2002, solves the general case; with one detector its results arrive in
    /// capture order, so each track's state at its last measurement is enough):
    /// every track's filter, kept as it was at its last measurement, is
    /// predicted to `detected_s`; the detections are associated and folded in
    /// there, and the tracks are reported predicted forward to `t_s`. A track
    /// measured after `detected_s` can still claim a detection, so a late
    /// detection of a known object never starts a new track; it does not
    /// correct that track. New tracks start at `detected_s`.
    pub fn update_late(
        &mut self,
        t_s: f64,
        detected_s: f64,
        detections: &[Detection],
        out: &mut Vec<TrackOut>,
    ) {
        self.step(t_s, detected_s.min(t_s), Some(detections), None, out);
    }

    /// Advances to time `t_s` (seconds) and folds in this frame's detections
    /// (`None` when detection did not run), with their embeddings (`dim`
    /// values each) when re-ID ran. Writes the tracks to report into `out`:
    /// each at `t_s`, predicted from its last measurement.
    pub fn update(
        &mut self,
        t_s: f64,
        detections: Option<&[Detection]>,
        embeddings: Option<(&[f32], usize)>,
        out: &mut Vec<TrackOut>,
    ) {
        self.step(t_s, t_s, detections, embeddings, out);
    }

    /// Folds in detections made at `at_s` and reports the tracks at `t_s`.
    fn step(
        &mut self,
        t_s: f64,
        at_s: f64,
        detections: Option<&[Detection]>,
        embeddings: Option<(&[f32], usize)>,
        out: &mut Vec<TrackOut>,
    ) {
        let first_frame = self.last_s.is_none();
        self.last_s = Some(self.last_s.map_or(t_s, |l| l.max(t_s)));
        for t in &mut self.tracks {
            t.matched = false;
        }
        self.late = self.uses_flow && at_s < t_s - 1e-6;
        if let Some(dets) = detections {
            self.predicted.clear();
            self.newer.clear();
            self.cum_at.clear();
            for t in &self.tracks {
                let mut kf = t.kf.clone();
                let dt = (at_s - t.last_update_s) as f32;
                if dt >= 0.0 {
                    kf.predict(dt);
                } else {
                    kf.shift(dt);
                }
                let cum = if self.uses_flow {
                    t.history.at(at_s)
                } else {
                    None
                };
                if let Some(c) = cum {
                    // Where the pixels moved the box since its last measurement,
                    // and the velocity that motion implies.
                    let d = [c[0] - t.anchor_cum[0], c[1] - t.anchor_cum[1]];
                    kf.x[0] = t.kf.x[0] + d[0];
                    kf.x[1] = t.kf.x[1] + d[1];
                    if dt > 1e-3 {
                        kf.x[4] = d[0] / dt;
                        kf.x[5] = d[1] / dt;
                    }
                }
                self.predicted.push(kf);
                // Measured after the detections, or (with pixel motion) no
                // record of where it was then: claims, does not correct.
                self.newer.push(dt < 0.0 || (self.uses_flow && cum.is_none()));
                self.cum_at.push(cum);
            }
            self.associate(t_s, at_s, dets, embeddings, first_frame);
        }
        out.clear();
        let uses_flow = self.uses_flow;
        for t in &mut self.tracks {
            let dt = (t_s - t.last_update_s).max(0.0) as f32;
            // No velocity from a single frame difference: until a track has
            // been measured VELOCITY_MIN_HITS times, its last box is held.
            let dt = if t.hits < VELOCITY_MIN_HITS { 0.0 } else { dt };
            let velocity_px_s = match (uses_flow, t.hits < VELOCITY_MIN_HITS) {
                (true, few) => t
                    .flow_velocity()
                    .unwrap_or(if few { [0.0; 2] } else { t.kf.velocity() }),
                (false, true) => [0.0; 2],
                (false, false) => t.kf.velocity(),
            };
            let bbox = if uses_flow {
                t.flow_box()
            } else {
                t.kf.predicted_bbox(dt)
            };
            t.reported = bbox;
            out.push(TrackOut {
                id: t.id,
                bbox,
                class_id: t.class_id,
                class: t.class.clone(),
                score: t.score,
                velocity_px_s,
                age_s: (t_s - t.first_s) as f32,
                state: t.state,
                predicted: !t.matched,
                position: None,
                forecast: None,
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
            // Detections meet the track where it was when they were made.
            let kf = &self.predicted[ti];
            let pred = kf.bbox();
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
                        && kf.mahalanobis_sq(&d.bbox) <= CHI2_4DOF_95);
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
        at_s: f64,
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
        self.apply(at_s, dets, embeddings);

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
                let ti = self.pool[r];
                self.predicted[ti] = Kalman::new(&dets[self.dets[c]].bbox);
                self.newer[ti] = false;
            }
            self.apply(at_s, dets, embeddings);
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
        self.apply(at_s, dets, embeddings);

        // 3. Tentative tracks against the remaining high-score detections.
        self.pool.clear();
        self.pool.extend(
            (0..self.tracks.len()).filter(|&i| self.tracks[i].state == TrackState::Tentative),
        );
        self.dets.clear();
        self.dets
            .extend((0..dets.len()).filter(|&i| !self.used[i] && dets[i].score >= s.high_score));
        self.round(dets, embeddings, s.match_iou, true);
        self.apply(at_s, dets, embeddings);

        // Unmatched: tentative tracks end; confirmed ones are lost after
        // LOST_AFTER_MISSES detection rounds in a row; long-lost ones end.
        self.tracks.retain_mut(|t| {
            if t.matched {
                t.misses = 0;
                return true;
            }
            t.misses += 1;
            match t.state {
                TrackState::Tentative => false,
                _ => {
                    if t.misses >= LOST_AFTER_MISSES {
                        t.state = TrackState::Lost;
                    }
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
                first_s: at_s,
                last_update_s: at_s,
                hits: 1,
                misses: 0,
                last_box: d.bbox,
                embedding,
                matched: true,
                flow_cum: [0.0; 2],
                anchor_cum: [0.0; 2],
                flow_s: at_s,
                history: {
                    let mut h = FlowHistory::new();
                    h.push(at_s, [0.0; 2]);
                    h
                },
                reported: d.bbox,
                follow_late: self.uses_flow && at_s < t_s - 1e-6,
            });
            self.next_id += 1;
        }
    }

    /// Applies `self.matches` of the last round: detections made at `at_s`.
    fn apply(&mut self, at_s: f64, dets: &[Detection], embeddings: Option<(&[f32], usize)>) {
        let s = &self.settings;
        for &(r, c) in &self.matches {
            let (ti, di) = (self.pool[r], self.dets[c]);
            let d = &dets[di];
            let t = &mut self.tracks[ti];
            t.matched = true;
            self.used[di] = true;
            if self.newer[ti] {
                // Already measured after this detection was made: claimed, not applied.
                continue;
            }
            let mut kf = self.predicted[ti].clone();
            kf.update(&d.bbox);
            t.kf = kf;
            // Unknown only for a track re-identified by appearance: then the
            // detection is taken as where it is now.
            t.anchor_cum = self.cum_at[ti].unwrap_or(t.flow_cum);
            // Late, with a record of where the pixels had it then: its shift
            // since is measured again from the corrected box.
            t.follow_late = self.late && self.cum_at[ti].is_some();
            t.score = d.score;
            t.hits += 1;
            t.last_box = d.bbox;
            t.last_update_s = at_s;
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
                TrackState::Tentative
                    if t.hits >= 2 && (at_s - t.first_s) as f32 >= s.confirm_s =>
                {
                    TrackState::Confirmed
                }
                TrackState::Tentative => TrackState::Tentative,
                _ => TrackState::Confirmed,
            };
        }
    }
}

/// The forecast horizon in seconds for `horizon` on the frame `meta`
/// (`previous_s`: the stream's previous frame time, s); `None` when there is
/// no forecast, or for `Auto` while the frame period is not known.
fn horizon_s(horizon: Horizon, meta: &FrameMeta, previous_s: Option<f64>) -> Option<f64> {
    match horizon {
        Horizon::Off => None,
        Horizon::Fixed(s) => Some(s),
        Horizon::Auto => {
            let period_s = meta
                .duration_ns
                .map(|d| d as f64 * 1e-9)
                .or(previous_s.map(|p| meta.time_s() - p))
                .filter(|p| *p > 0.0)?;
            let delay_s = clock::monotonic_ns().saturating_sub(meta.capture_ns) as f64 * 1e-9;
            Some(period_s * (delay_s / period_s).ceil().max(1.0))
        }
    }
}

/// The `track` stage: one tracker per stream.
pub struct TrackStage {
    settings: TrackSettings,
    trackers: Vec<(Arc<str>, Tracker, Option<flow::BoxFlow>)>,
    results: VecPool<TrackOut>,
    boxes: Vec<[f32; 4]>,
    shifts: Vec<Option<[f32; 2]>>,
    births: Vec<(usize, f64, [f32; 4])>,
    path: Vec<(f64, [f32; 2])>,
    /// Streams that ended: the next track id each would have given, so a
    /// stream added again never reuses an id.
    retired: Vec<(Arc<str>, u64)>,
}

impl TrackStage {
    /// A stage with one tracker per stream.
    pub fn new(settings: TrackSettings) -> TrackStage {
        TrackStage {
            settings,
            trackers: Vec::new(),
            results: VecPool::default(),
            boxes: Vec::new(),
            shifts: Vec::new(),
            births: Vec::new(),
            path: Vec::new(),
            retired: Vec::new(),
        }
    }
}

impl Stage for TrackStage {
    fn end_stream(&mut self, stream: &str) {
        let Some(i) = self.trackers.iter().position(|(s, _, _)| &**s == stream) else {
            return;
        };
        let (stream, tracker, _) = self.trackers.swap_remove(i);
        match self.retired.iter_mut().find(|(s, _)| *s == stream) {
            Some(r) => r.1 = tracker.next_id,
            None => self.retired.push((stream, tracker.next_id)),
        }
    }

    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        let meta = &frame.meta;
        let t_s = meta.time_s();
        let index = match self.trackers.iter().position(|(s, _, _)| *s == meta.stream) {
            Some(i) => i,
            None => {
                let flow = (self.settings.motion == Motion::Flow).then(flow::BoxFlow::new);
                let first_id = self
                    .retired
                    .iter()
                    .find(|(s, _)| *s == meta.stream)
                    .map_or(1, |r| r.1);
                self.trackers.push((
                    meta.stream.clone(),
                    Tracker::starting_at(self.settings, first_id),
                    flow,
                ));
                self.trackers.len() - 1
            }
        };
        let mut tracks = self.results.take();
        let embeddings = record.embeddings.as_ref().map(|e| (&*e.values, e.dim));
        let (_, tracker, flow) = &mut self.trackers[index];
        let previous_s = tracker.last_s;
        if let Some(flow) = flow {
            tracker.reported_boxes(&mut self.boxes);
            flow.step(frame, t_s, &self.boxes, &mut self.shifts)
                .map_err(|e| StageError::msg(format!("optical flow: {e}")))?;
            tracker.advance_flow(t_s, &self.shifts);
        }
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
        if let Some(flow) = flow {
            // Tracks measured or started by a late detection: follow the
            // pixels from the detection's frame to this one.
            self.births.clear();
            self.births.extend(tracker.late_measured());
            for &(index, from_s, bbox) in &self.births {
                let measured = flow
                    .follow(from_s, bbox, &mut self.path)
                    .map_err(|e| StageError::msg(format!("optical flow: {e}")))?;
                let all = !self.path.is_empty() && measured == self.path.len();
                tracker.caught_up(index, &self.path, all, tracks.as_mut_vec());
            }
        }
        // Boxes are where the object is seen in the image: one moved past an
        // edge (by its velocity or the pixels) is clipped there, as the
        // detector's boxes are, and a track less than half inside is not
        // written (its object has left the view; the track lives on, unseen,
        // until it is matched again or `max_lost_s` ends it).
        let (w, h) = (frame.width() as f32, frame.height() as f32);
        tracks
            .as_mut_vec()
            .retain_mut(|t| clip_to_image(&mut t.bbox, w, h, MIN_INSIDE));
        if let Some(after_s) = horizon_s(self.settings.forecast, meta, previous_s) {
            let after_ns = (after_s * 1e9).round() as u64;
            for t in tracks.as_mut_vec() {
                let mut bbox = moved_for(t.bbox, t.velocity_px_s, after_s as f32);
                let inside = clip_to_image(&mut bbox, w, h, MIN_INSIDE);
                t.forecast = Some(Forecast {
                    after_ns,
                    bbox: inside.then_some(bbox),
                });
            }
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

    /// Frames 0..n of `stream` at 10 Hz with two still objects; the ids of
    /// the tracks the stage reports.
    fn run_stream(stage: &mut TrackStage, stream: &str, n: u64) -> Vec<u64> {
        use gstreamer_video as gst_video;
        gstreamer::init().unwrap();
        // An image the boxes lie in (reported boxes are clipped to it).
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 240, 100)
            .build()
            .unwrap();
        let pool = crate::pool::VecPool::<Detection>::default();
        let mut ids = Vec::new();
        for seq in 0..n {
            let mut frame = crate::frame::test_frame(info.clone(), vec![0; 240 * 100], seq);
            frame.meta.stream = Arc::from(stream);
            frame.meta.pts_ns = Some(seq * 100_000_000);
            let mut record = Record::default();
            let mut dets = pool.take();
            dets.push(det(10.0, 0.9));
            dets.push(det(200.0, 0.9));
            record.detections = Some(dets);
            stage.process(&frame, &mut record).unwrap();
            ids.extend(record.tracks.iter().flat_map(|t| t.iter().map(|t| t.id)));
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    #[test]
    fn tracks_are_forecast_by_their_velocity_and_out_of_view_ones_have_no_box() {
        use gstreamer_video as gst_video;
        gstreamer::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 240, 100)
            .build()
            .unwrap();
        let pool = crate::pool::VecPool::<Detection>::default();
        // One object moving right at 50 px/s at 10 Hz, one still; 0.2 s, the
        // next frame ("auto": the record reached the stage within a period)
        // and 5 s ahead, where the moving one has left the 240 px image.
        let run = |forecast: Horizon| {
            let mut stage = TrackStage::new(TrackSettings {
                forecast,
                ..TrackSettings::default()
            });
            let mut last = Vec::new();
            for seq in 0..10u64 {
                let mut frame = crate::frame::test_frame(info.clone(), vec![0; 240 * 100], seq);
                frame.meta.pts_ns = Some(seq * 100_000_000);
                frame.meta.capture_ns = clock::monotonic_ns();
                let mut record = Record::default();
                let mut dets = pool.take();
                dets.push(det(10.0 + 5.0 * seq as f32, 0.9));
                dets.push(det(200.0, 0.9));
                record.detections = Some(dets);
                stage.process(&frame, &mut record).unwrap();
                last = record.tracks.unwrap().to_vec();
                if seq == 0 && forecast == Horizon::Auto {
                    assert!(
                        last.iter().all(|t| t.forecast.is_none()),
                        "no period known on the first frame"
                    );
                }
            }
            last
        };
        let off = run(Horizon::Off);
        assert!(off.iter().all(|t| t.forecast.is_none()));
        for (horizon, after_ns) in [(Horizon::Fixed(0.2), 200_000_000), (Horizon::Auto, 100_000_000)] {
            let out = run(horizon);
            assert_eq!(out.len(), 2);
            for t in &out {
                let f = t.forecast.expect("forecast");
                assert_eq!(f.after_ns, after_ns, "{horizon:?}");
                let b = f.bbox.expect("inside");
                let dt = after_ns as f32 * 1e-9;
                for i in [0, 2] {
                    assert!((b[i] - (t.bbox[i] + t.velocity_px_s[0] * dt)).abs() < 1e-3, "{t:?}");
                }
                assert_eq!((b[1], b[3]), (t.bbox[1], t.bbox[3]));
            }
            let moving = &out[0];
            assert!((moving.velocity_px_s[0] - 50.0).abs() < 5.0, "{moving:?}");
            assert!(moving.forecast.unwrap().bbox.unwrap()[0] > moving.bbox[0] + 0.4 * dt_px(after_ns));
            assert_eq!(out[1].forecast.unwrap().bbox, Some(out[1].bbox), "still: stays");
        }
        let far = run(Horizon::Fixed(5.0));
        assert_eq!(far[0].forecast.unwrap().bbox, None, "{:?}", far[0]);
        assert!(far[1].forecast.unwrap().bbox.is_some());
    }

    /// Pixels moved at 50 px/s over `ns`.
    fn dt_px(ns: u64) -> f32 {
        50.0 * ns as f32 * 1e-9
    }

    #[test]
    fn an_ended_stream_drops_its_tracker_and_never_reuses_its_ids() {
        let mut stage = TrackStage::new(TrackSettings::default());
        let first = run_stream(&mut stage, "a", 5);
        let other = run_stream(&mut stage, "b", 5);
        assert_eq!(first, vec![1, 2]);
        assert_eq!(other, vec![1, 2], "ids are per stream");
        stage.end_stream("a");
        assert!(stage.trackers.iter().all(|(s, _, _)| &**s != "a"));
        assert_eq!(stage.trackers.len(), 1, "stream b keeps its tracker");
        // The same id added again: a fresh tracker whose ids go on.
        let again = run_stream(&mut stage, "a", 5);
        assert_eq!(again, vec![3, 4]);
        stage.end_stream("a");
        assert_eq!(run_stream(&mut stage, "a", 5), vec![5, 6]);
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

    /// A person-sized box whose left edge is at `x`.
    fn walker(x: f32) -> Detection {
        Detection {
            bbox: [x, 100.0, x + 30.0, 180.0],
            ..det(0.0, 0.9)
        }
    }

    #[test]
    fn a_late_detection_lands_where_an_on_time_one_would_have() {
        // One object walking right at 60 px/s, detected every 0.1 s. Tracker A
        // gets each detection on its own frame; tracker B gets the same
        // detections 0.2 s late (asynchronous detection at 2 frames of lag).
        let x = |t: f64| 100.0 + 60.0 * t as f32;
        let (mut a, mut b) = (
            Tracker::new(TrackSettings::default()),
            Tracker::new(TrackSettings::default()),
        );
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        for i in 0..30 {
            let t = 0.1 * i as f64;
            a.update(t, Some(&[walker(x(t))]), None, &mut out_a);
            let detected = t - 0.2;
            if detected < 0.0 {
                b.update(t, None, None, &mut out_b);
                continue;
            }
            b.update_late(t, detected, &[walker(x(detected))], &mut out_b);
            // Re-filtering from the stored state is exact: B reports at t what
            // A knew at `detected`, predicted 0.2 s ahead (the same filter
            // steps), to float rounding.
            let mut at_detected = Vec::new();
            let mut a2 = Tracker::new(TrackSettings::default());
            for j in 0..=i - 2 {
                let tj = 0.1 * j as f64;
                a2.update(tj, Some(&[walker(x(tj))]), None, &mut at_detected);
            }
            let k = &a2.tracks[0];
            let want = if k.hits >= VELOCITY_MIN_HITS {
                k.kf.predicted_bbox((t - detected) as f32)
            } else {
                k.kf.bbox()
            };
            assert_eq!(out_b.len(), 1, "one track, never a second one: {out_b:?}");
            assert_eq!(out_b[0].id, 1);
            for c in 0..4 {
                assert!((out_b[0].bbox[c] - want[c]).abs() < 1e-3, "{t}: {:?} vs {want:?}", out_b[0].bbox);
            }
        }
        // Once the velocity is learnt, B's late answer is where the object is
        // now: within 1 px of A's on-time answer (noise-free constant velocity;
        // the residual is the filter's velocity lag times 0.2 s).
        for c in 0..4 {
            assert!((out_b[0].bbox[c] - out_a[0].bbox[c]).abs() < 1.0, "{:?} vs {:?}", out_b[0], out_a[0]);
        }
        assert!((out_b[0].velocity_px_s[0] - 60.0).abs() < 2.0, "{:?}", out_b[0]);
    }

    #[test]
    fn a_late_detection_of_a_known_object_starts_no_track() {
        let mut tracker = Tracker::new(TrackSettings::default());
        let mut out = Vec::new();
        for i in 0..5 {
            let t = 0.1 * i as f64;
            tracker.update(t, Some(&[walker(100.0 + 5.0 * i as f32)]), None, &mut out);
        }
        // A detection made at 0.3 s arrives at 0.5 s, after the track was
        // measured at 0.4 s: claimed by the track, not a new one.
        tracker.update_late(0.5, 0.3, &[walker(115.0)], &mut out);
        assert_eq!(out.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1]);
        // An object the tracks never saw does start a track, at its own time.
        tracker.update_late(0.6, 0.5, &[walker(400.0)], &mut out);
        let new = out.iter().find(|t| t.id == 2).unwrap();
        assert!((new.age_s - 0.1).abs() < 1e-6, "{new:?}");
    }

    #[test]
    fn a_late_birth_followed_by_the_pixels_is_confirmed() {
        let run = |measured: bool| {
            let mut tracker = Tracker::new(TrackSettings {
                motion: Motion::Flow,
                ..TrackSettings::default()
            });
            let mut out = Vec::new();
            for i in 0..3 {
                let t = 0.1 * i as f64;
                tracker.advance_flow(t, &[]);
                tracker.update(t, Some(&[walker(100.0)]), None, &mut out);
            }
            // A new object detected at 0.3 s, its result at 0.5 s: born
            // tentative, then followed 10 px a frame over the two frames since.
            tracker.advance_flow(0.4, &[None]);
            tracker.update(0.4, None, None, &mut out);
            tracker.advance_flow(0.5, &[None]);
            tracker.update_late(0.5, 0.3, &[walker(100.0), walker(400.0)], &mut out);
            let births: Vec<_> = tracker.late_measured().collect();
            assert_eq!(births.len(), 2, "both measured late: {births:?}");
            let (index, from_s, bbox) = births[1];
            assert_eq!((from_s, bbox), (0.3, walker(400.0).bbox));
            tracker.caught_up(index, &[(0.4, [10.0, 0.0]), (0.5, [20.0, 0.0])], measured, &mut out);
            let new = out.iter().find(|t| t.id == 2).cloned().unwrap();
            assert!((new.bbox[0] - 420.0).abs() < 1e-3, "{new:?}");
            new.state
        };
        assert_eq!(run(true), TrackState::Confirmed);
        assert_eq!(run(false), TrackState::Tentative);
    }

    #[test]
    fn with_pixel_motion_the_velocity_is_the_pixels_recent_shift() {
        let mut tracker = Tracker::new(TrackSettings {
            motion: Motion::Flow,
            ..TrackSettings::default()
        });
        let mut out = Vec::new();
        tracker.advance_flow(0.0, &[]);
        tracker.update(0.0, Some(&[walker(100.0)]), None, &mut out);
        for i in 1..=5 {
            let t = 0.1 * i as f64;
            // 5 px right and 2 px up a frame for three frames, then 10 px right.
            let shift = if i <= 3 { [5.0, -2.0] } else { [10.0, 0.0] };
            tracker.advance_flow(t, &[Some(shift)]);
            tracker.update(t, None, None, &mut out);
            let v = out[0].velocity_px_s;
            match i {
                // Fewer than three frames followed, one detection: no velocity.
                1 | 2 => assert_eq!(v, [0.0, 0.0], "frame {i}"),
                3 => assert!((v[0] - 50.0).abs() < 1e-3 && (v[1] + 20.0).abs() < 1e-3, "{v:?}"),
                // (5 + 10 + 10) px right and 2 px up over the last three frames.
                _ if i == 5 => {
                    assert!((v[0] - 250.0 / 3.0).abs() < 1e-2 && (v[1] + 20.0 / 3.0).abs() < 1e-3, "{v:?}")
                }
                _ => {}
            }
        }
        assert!((out[0].bbox[0] - (100.0 + 15.0 + 20.0)).abs() < 1e-3, "{:?}", out[0]);
    }

    #[test]
    fn no_velocity_from_a_single_frame_difference() {
        let mut tracker = Tracker::new(TrackSettings::default());
        let mut out = Vec::new();
        // A 6 px jump between two detections (detector jitter, or motion).
        tracker.update(0.0, Some(&[walker(100.0)]), None, &mut out);
        tracker.update(0.1, Some(&[walker(106.0)]), None, &mut out);
        tracker.update(0.6, None, None, &mut out);
        assert_eq!(out[0].velocity_px_s, [0.0, 0.0]);
        let held = out[0].bbox;
        // The box is held where the filter last placed it, not extrapolated.
        tracker.update(1.0, None, None, &mut out);
        assert_eq!(out[0].bbox, held);
        assert!(held[0] > 100.0 && held[0] < 106.0, "{held:?}");
    }
}
