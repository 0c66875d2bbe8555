//! Tracking evaluation with the CLEAR-MOT and identity metrics, following the
//! definitions of py-motmetrics: per frame, ground truth and hypotheses match
//! at IoU >= 0.5 (last frame's correspondences kept first, the rest by optimal
//! assignment); an ID switch is a ground-truth object matched to another
//! hypothesis than the one it was last matched to; a fragmentation is a
//! tracked-to-missed transition between an object's first and last match;
//! IDF1 matches whole trajectories one to one to maximise identity true positives.
//!
//! Inputs ([`read_tracks`]): MOTChallenge text (`frame,id,x,y,w,h,conf,...`,
//! frames from 1; ground-truth rows whose 7th column is 0 are ignored) or JSON
//! Lines: percept's output (`seq` and `tracks`, confirmed tracks only) or
//! ground truth (`seq` and `objects: [{id, bbox}]`). Frames are aligned as
//! `seq` = MOT frame − 1.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::Serialize;

use crate::geometry::{iou, moved_for};
use crate::stages::track::assign::assign;

/// One box of one identity in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Object {
    /// Object or track id.
    pub id: u64,
    /// `[x1, y1, x2, y2]`, px.
    pub bbox: [f32; 4],
}

/// Objects per frame index.
pub type Sequence = BTreeMap<u64, Vec<Object>>;

/// The metrics, as fractions (not percentages) and counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Multi-object tracking accuracy, 1 − (FN + FP + IDSW) / GT.
    pub mota: f64,
    /// Identity F1 score.
    pub idf1: f64,
    /// Identity switches.
    pub idsw: u64,
    /// Fragmentations.
    pub frag: u64,
    /// False positives.
    pub fp: u64,
    #[serde(rename = "fn")]
    /// False negatives.
    pub fn_: u64,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / GT.
    pub recall: f64,
    /// Ground-truth boxes.
    pub gt: u64,
    /// Matched boxes.
    pub tp: u64,
    /// Boxes matched with the globally best identity.
    pub idtp: u64,
    /// Ground-truth identities.
    pub gt_ids: u64,
    /// Predicted identities.
    pub pred_ids: u64,
}

/// A file that cannot be read as tracks.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct EvalError {
    /// The file.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads MOTChallenge text or JSON Lines (by the first non-empty character).
pub fn read_tracks(
    path: &Path,
    ground_truth: bool,
    stream: Option<&str>,
) -> Result<Sequence, EvalError> {
    let err = |line: usize, message: String| EvalError {
        path: path.display().to_string(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(0, e.to_string()))?;
    let mut seq = Sequence::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let n = i + 1;
        if line.trim_start().starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| err(n, e.to_string()))?;
            if let Some(want) = stream
                && v["stream"].as_str().is_some_and(|s| s != want)
            {
                continue;
            }
            let frame = v["seq"].as_u64().ok_or_else(|| err(n, "no `seq`".into()))?;
            let entry = seq.entry(frame).or_default();
            let (list, confirmed_only) = match (v.get("tracks"), v.get("objects")) {
                (Some(t), _) => (t, true),
                (None, Some(o)) => (o, false),
                (None, None) => continue,
            };
            if !list.is_array() {
                return Err(err(n, "`tracks`/`objects` is not an array".into()));
            }
            entry.extend(objects_of(list, confirmed_only).map_err(|m| err(n, m.into()))?);
        } else {
            let cols: Vec<f64> = line
                .split(',')
                .map(|c| c.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|e| err(n, format!("not a MOTChallenge row ({e})")))?;
            if cols.len() < 6 {
                return Err(err(
                    n,
                    format!(
                        "a MOTChallenge row needs at least 6 columns, found {}",
                        cols.len()
                    ),
                ));
            }
            if cols[0] < 1.0 {
                return Err(err(n, "MOTChallenge frames count from 1".into()));
            }
            if ground_truth && cols.len() >= 7 && cols[6] == 0.0 {
                continue;
            }
            let (x, y, w, h) = (
                cols[2] as f32,
                cols[3] as f32,
                cols[4] as f32,
                cols[5] as f32,
            );
            seq.entry(cols[0] as u64 - 1).or_default().push(Object {
                id: cols[1] as u64,
                bbox: [x, y, x + w, y + h],
            });
        }
    }
    Ok(seq)
}

/// One output record's timing and confirmed tracks, for streaming evaluation.
struct Emitted {
    seq: u64,
    pts_ns: Option<u64>,
    capture_wall_ns: u64,
    emit_wall_ns: u64,
    objects: Vec<Object>,
    /// Each object's motion, in `objects` order.
    motion: Vec<TrackMotion>,
}

/// What a record says about where a track goes next.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct TrackMotion {
    /// `velocity_px_s` (zero when absent).
    velocity_px_s: [f32; 2],
    /// `forecast`: `after_ns` and its box (`None`: forecast out of view).
    forecast: Option<(u64, Option<[f32; 4]>)>,
}

/// How [`streaming_predictions`] reads the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamingOptions {
    /// Move each box by its track's `velocity_px_s` to the scored instant.
    pub extrapolate: bool,
    /// Use the tracks' `forecast` boxes where the records carry them.
    pub forecasts: bool,
}

/// Streaming evaluation (Li et al., "Towards Streaming Perception"): for
/// each ground-truth frame, the prediction is the newest output record that
/// had been written (`emit_wall_ns`) by the frame's capture instant, whatever
/// frame that record was about. A frame's capture instant is its record's
/// `capture_wall_ns`; for frames without a record (dropped), it follows from
/// their media time (`pts_ns`, or the frame index at the recording's rate).
/// Needs percept's JSON Lines output.
///
/// With `options.forecasts`, a track that carries a `forecast` (the tracker's
/// `forecast_s`) is taken where it was forecast, `after_ns` past its record's
/// capture instant; a forecast with no box (out of view) leaves the track out.
/// With `options.extrapolate`, each box is moved by its track's
/// `velocity_px_s` over the time from the instant it describes (its record's
/// capture, or its forecast's) to the frame's: what a consumer of
/// timestamped tracks does with the newest one it holds (constant-velocity
/// forecasting to the query time, as the Kalman-filter forecasting of Li et
/// al. does).
pub fn streaming_predictions(
    path: &Path,
    stream: Option<&str>,
    gt: &Sequence,
    options: StreamingOptions,
) -> Result<Sequence, EvalError> {
    let err = |line: usize, message: String| EvalError {
        path: path.display().to_string(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(0, e.to_string()))?;
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let n = i + 1;
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            err(
                n,
                format!("streaming evaluation needs percept's JSON Lines: {e}"),
            )
        })?;
        if let Some(want) = stream
            && v["stream"].as_str().is_some_and(|s| s != want)
        {
            continue;
        }
        let num = |k: &str| {
            v[k].as_u64()
                .ok_or_else(|| err(n, format!("no `{k}`: not percept's output")))
        };
        let objects = objects_of(&v["tracks"], true).map_err(|m| err(n, m.into()))?;
        let motion = motion_of(&v["tracks"]).map_err(|m| err(n, m.into()))?;
        records.push(Emitted {
            seq: num("seq")?,
            pts_ns: v["pts_ns"].as_u64(),
            capture_wall_ns: num("capture_wall_ns")?,
            emit_wall_ns: num("emit_wall_ns")?,
            objects,
            motion,
        });
    }
    let Some(first) = records.iter().min_by_key(|r| r.seq) else {
        return Err(err(0, "no records".into()));
    };
    // Media time of a frame index, for frames without a record.
    let mut steps: Vec<u64> = records
        .windows(2)
        .filter_map(|w| match (w[0].pts_ns, w[1].pts_ns) {
            (Some(a), Some(b)) if w[1].seq > w[0].seq && b > a => {
                Some((b - a) / (w[1].seq - w[0].seq))
            }
            _ => None,
        })
        .collect();
    steps.sort_unstable();
    let period = steps.get(steps.len() / 2).copied().unwrap_or(33_333_333);
    let (seq0, wall0) = (first.seq, first.capture_wall_ns);
    let by_seq: HashMap<u64, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.seq, i))
        .collect();
    let mut emitted: Vec<usize> = (0..records.len()).collect();
    emitted.sort_by_key(|&i| records[i].emit_wall_ns);
    let mut out = Sequence::new();
    let frames: std::collections::BTreeSet<u64> =
        gt.keys().copied().chain(by_seq.keys().copied()).collect();
    for f in frames {
        let at = match by_seq.get(&f) {
            Some(&i) => records[i].capture_wall_ns,
            None => (wall0 as i128 + (f as i128 - seq0 as i128) * period as i128).max(0) as u64,
        };
        // The newest record written by then.
        let k = emitted.partition_point(|&i| records[i].emit_wall_ns <= at);
        let mut objects = Vec::new();
        if k > 0 {
            let r = &records[emitted[k - 1]];
            for (o, m) in r.objects.iter().zip(&r.motion) {
                let (bbox, from_ns) = match m.forecast {
                    Some((after_ns, bbox)) if options.forecasts => match bbox {
                        Some(b) => (b, r.capture_wall_ns.saturating_add(after_ns)),
                        None => continue,
                    },
                    _ => (o.bbox, r.capture_wall_ns),
                };
                let bbox = if options.extrapolate {
                    let dt_s = (at as i128 - from_ns as i128) as f32 * 1e-9;
                    moved_for(bbox, m.velocity_px_s, dt_s)
                } else {
                    bbox
                };
                objects.push(Object { id: o.id, bbox });
            }
        }
        out.insert(f, objects);
    }
    Ok(out)
}

/// The objects of a `tracks` or `objects` array (absent: none); with
/// `confirmed_only`, tracks in another state are left out.
fn objects_of(list: &serde_json::Value, confirmed_only: bool) -> Result<Vec<Object>, &'static str> {
    let Some(list) = list.as_array() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(list.len());
    for o in list {
        if confirmed_only && o["state"].as_str().is_some_and(|s| s != "confirmed") {
            continue;
        }
        let id = o["id"].as_u64().ok_or("an object has no integer `id`")?;
        let bbox = numbers::<4>(&o["bbox"]).ok_or("`bbox` is not four numbers [x1, y1, x2, y2]")?;
        out.push(Object { id, bbox });
    }
    Ok(out)
}

/// The values of a JSON array of exactly `N` finite numbers.
fn numbers<const N: usize>(v: &serde_json::Value) -> Option<[f32; N]> {
    let list = v.as_array().filter(|l| l.len() == N)?;
    let mut out = [0f32; N];
    for (slot, x) in out.iter_mut().zip(list) {
        *slot = x.as_f64().filter(|x| x.is_finite())? as f32;
    }
    Some(out)
}

/// The `velocity_px_s` and `forecast` of the confirmed tracks of a `tracks`
/// array, in [`objects_of`] order.
fn motion_of(list: &serde_json::Value) -> Result<Vec<TrackMotion>, &'static str> {
    let Some(list) = list.as_array() else {
        return Ok(Vec::new());
    };
    let confirmed = list
        .iter()
        .filter(|o| o["state"].as_str().is_none_or(|s| s == "confirmed"));
    confirmed
        .map(|o| {
            let velocity_px_s = match o.get("velocity_px_s") {
                None => [0.0; 2],
                Some(v) => {
                    numbers::<2>(v).ok_or("`velocity_px_s` is not two finite numbers [vx, vy]")?
                }
            };
            let forecast = match o.get("forecast") {
                None | Some(serde_json::Value::Null) => None,
                Some(f) => {
                    let after_ns = f["after_ns"]
                        .as_u64()
                        .ok_or("`forecast.after_ns` is not a whole number of ns")?;
                    let bbox = match &f["bbox"] {
                        serde_json::Value::Null => None,
                        b => Some(numbers::<4>(b).ok_or(
                            "`forecast.bbox` is not four numbers [x1, y1, x2, y2] or null",
                        )?),
                    };
                    Some((after_ns, bbox))
                }
            };
            Ok(TrackMotion {
                velocity_px_s,
                forecast,
            })
        })
        .collect()
}

/// Scores `pred` against `gt` with a minimum IoU for a match (0.5 in MOTChallenge).
pub fn evaluate(gt: &Sequence, pred: &Sequence, min_iou: f32) -> Metrics {
    let max_cost = 1.0 - min_iou;
    let empty = Vec::new();
    let frames: std::collections::BTreeSet<u64> = gt.keys().chain(pred.keys()).copied().collect();
    let (mut tp, mut fp, mut fn_, mut idsw, mut n_gt) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last: HashMap<u64, u64> = HashMap::new();
    // Per ground-truth id: matched or missed, frame by frame.
    let mut history: HashMap<u64, Vec<bool>> = HashMap::new();
    // Identity overlaps: (gt id, pred id) -> frames matched at min_iou.
    let mut overlap: HashMap<(u64, u64), u64> = HashMap::new();
    let (mut total_gt, mut total_pred) = (0u64, 0u64);
    let mut cost = Vec::new();
    let mut pairs = Vec::new();
    for f in frames {
        let g = gt.get(&f).unwrap_or(&empty);
        let h = pred.get(&f).unwrap_or(&empty);
        total_gt += g.len() as u64;
        total_pred += h.len() as u64;
        n_gt += g.len() as u64;
        for a in g {
            for b in h {
                if iou(&a.bbox, &b.bbox) >= min_iou {
                    *overlap.entry((a.id, b.id)).or_default() += 1;
                }
            }
        }
        let mut g_used = vec![false; g.len()];
        let mut h_used = vec![false; h.len()];
        // Keep last correspondences that still hold.
        for (gi, a) in g.iter().enumerate() {
            if let Some(&hid) = last.get(&a.id)
                && let Some(hi) = h.iter().position(|b| b.id == hid)
                && !h_used[hi]
                && 1.0 - iou(&a.bbox, &h[hi].bbox) <= max_cost
            {
                g_used[gi] = true;
                h_used[hi] = true;
                tp += 1;
            }
        }
        // Optimal assignment of the rest.
        let gs: Vec<usize> = (0..g.len()).filter(|&i| !g_used[i]).collect();
        let hs: Vec<usize> = (0..h.len()).filter(|&i| !h_used[i]).collect();
        cost.clear();
        for &gi in &gs {
            for &hi in &hs {
                cost.push(1.0 - iou(&g[gi].bbox, &h[hi].bbox));
            }
        }
        assign(&cost, gs.len(), hs.len(), max_cost, &mut pairs);
        for &(r, c) in &pairs {
            let (gi, hi) = (gs[r], hs[c]);
            g_used[gi] = true;
            h_used[hi] = true;
            tp += 1;
            if last
                .insert(g[gi].id, h[hi].id)
                .is_some_and(|prev| prev != h[hi].id)
            {
                idsw += 1;
            }
        }
        fp += h_used.iter().filter(|u| !**u).count() as u64;
        fn_ += g_used.iter().filter(|u| !**u).count() as u64;
        for (gi, a) in g.iter().enumerate() {
            history.entry(a.id).or_default().push(g_used[gi]);
        }
    }
    let frag = history
        .values()
        .map(|h| {
            let (Some(first), Some(last)) = (h.iter().position(|m| *m), h.iter().rposition(|m| *m))
            else {
                return 0;
            };
            h[first..=last].windows(2).filter(|w| w[0] && !w[1]).count() as u64
        })
        .sum();
    let idtp = identity_true_positives(&overlap);
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let gt_ids = gt
        .values()
        .flatten()
        .map(|o| o.id)
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    let pred_ids = pred
        .values()
        .flatten()
        .map(|o| o.id)
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    Metrics {
        mota: if n_gt > 0 {
            1.0 - (fn_ + fp + idsw) as f64 / n_gt as f64
        } else {
            0.0
        },
        idf1: ratio(2 * idtp, total_gt + total_pred),
        idsw,
        frag,
        fp,
        fn_,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        gt: n_gt,
        tp,
        idtp,
        gt_ids,
        pred_ids,
    }
}

/// The one-to-one trajectory matching that maximises matched frames.
fn identity_true_positives(overlap: &HashMap<(u64, u64), u64>) -> u64 {
    let mut gts: Vec<u64> = overlap.keys().map(|k| k.0).collect();
    let mut preds: Vec<u64> = overlap.keys().map(|k| k.1).collect();
    gts.sort_unstable();
    gts.dedup();
    preds.sort_unstable();
    preds.dedup();
    if gts.is_empty() {
        return 0;
    }
    let transpose = gts.len() > preds.len();
    let (rows, cols) = if transpose {
        (&preds, &gts)
    } else {
        (&gts, &preds)
    };
    let weights = Matrix::from_fn(rows.len(), cols.len(), |(i, j)| {
        let key = if transpose {
            (cols[j], rows[i])
        } else {
            (rows[i], cols[j])
        };
        overlap.get(&key).copied().unwrap_or(0) as i64
    });
    kuhn_munkres(&weights).0.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [f32; 4] = [0.0, 0.0, 10.0, 10.0];
    const B: [f32; 4] = [100.0, 0.0, 110.0, 10.0];
    const FAR: [f32; 4] = [300.0, 300.0, 310.0, 310.0];
    const PLAIN: StreamingOptions = StreamingOptions {
        extrapolate: false,
        forecasts: true,
    };
    const EXTRAPOLATE: StreamingOptions = StreamingOptions {
        extrapolate: true,
        forecasts: true,
    };

    fn seq(frames: &[&[(u64, [f32; 4])]]) -> Sequence {
        frames
            .iter()
            .enumerate()
            .map(|(f, objs)| {
                (
                    f as u64,
                    objs.iter().map(|&(id, bbox)| Object { id, bbox }).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn perfect_tracking_scores_one() {
        let gt = seq(&[&[(1, A), (2, B)], &[(1, A), (2, B)]]);
        let m = evaluate(&gt, &gt, 0.5);
        assert_eq!(
            (m.mota, m.idf1, m.idsw, m.fp, m.fn_, m.frag),
            (1.0, 1.0, 0, 0, 0, 0)
        );
    }

    /// Writes five records of one track moving 10 px a frame (100 px/s, 10 px
    /// boxes) at 100 ms a frame, each written 150 ms after its capture;
    /// `extra(k, x1)` adds fields to frame k's track.
    fn late_records(path: &Path, extra: impl Fn(u64, f64) -> String) {
        let mut text = String::new();
        for k in 0..5u64 {
            let x = 10.0 * k as f64;
            text += &format!(
                "{{\"seq\":{k},\"pts_ns\":{},\"capture_wall_ns\":{},\"emit_wall_ns\":{},\"tracks\":[{{\"id\":1,\"bbox\":[{x},0,{},10],\"velocity_px_s\":[100,0],\"state\":\"confirmed\"{}}}]}}\n",
                k * 100_000_000,
                1_000_000_000 + k * 100_000_000,
                1_150_000_000 + k * 100_000_000,
                x + 10.0,
                extra(k, x)
            );
        }
        std::fs::write(path, text).unwrap();
    }

    /// Ground truth of [`late_records`]' object on frames `0..frames`.
    fn walking(frames: u64) -> Sequence {
        (0..frames)
            .map(|k| {
                let x = 10.0 * k as f32;
                let bbox = [x, 0.0, x + 10.0, 10.0];
                (k, vec![Object { id: 1, bbox }])
            })
            .collect()
    }

    #[test]
    fn streaming_scores_each_frame_against_the_newest_output_written_by_then() {
        // Frames every 100 ms; each record is written 150 ms after its capture,
        // so at frame k's capture the newest written record is frame k - 2's.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        late_records(&path, |_, _| String::new());
        let gt = walking(5);
        let pred = streaming_predictions(&path, None, &gt, PLAIN).unwrap();
        assert!(pred[&0].is_empty() && pred[&1].is_empty());
        assert_eq!(pred[&2][0].bbox[0], 0.0, "frame 2 sees frame 0's output");
        assert_eq!(pred[&4][0].bbox[0], 20.0);
        // Stale by two frames (20 px on 10 px boxes): nothing matches.
        let m = evaluate(&gt, &pred, 0.5);
        assert_eq!((m.tp, m.fn_, m.fp), (0, 5, 3));
        // Offline, every frame matches.
        let offline = read_tracks(&path, false, None).unwrap();
        assert_eq!(evaluate(&gt, &offline, 0.5).tp, 5);
        // Extrapolated by 100 px/s over the 200 ms since frame 0's capture,
        // frame 0's box lands where the object is at frame 2.
        let forecast = streaming_predictions(&path, None, &gt, EXTRAPOLATE).unwrap();
        assert!(
            (forecast[&2][0].bbox[0] - 20.0).abs() < 1e-3,
            "{:?}",
            forecast[&2]
        );
        assert!(
            (forecast[&4][0].bbox[2] - 50.0).abs() < 1e-3,
            "{:?}",
            forecast[&4]
        );
        let m = evaluate(&gt, &forecast, 0.5);
        assert_eq!((m.tp, m.fn_, m.fp), (3, 2, 0));
        // A velocity that is not two numbers is refused, naming the line.
        std::fs::write(
            &path,
            "{\"seq\":0,\"capture_wall_ns\":1,\"emit_wall_ns\":2,\"tracks\":[{\"id\":1,\"bbox\":[0,0,1,1],\"velocity_px_s\":[1]}]}\n",
        )
        .unwrap();
        let e = streaming_predictions(&path, None, &gt, EXTRAPOLATE).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("velocity_px_s"), "{e}");
    }

    #[test]
    fn streaming_takes_each_track_where_its_record_forecast_it() {
        // As above (frames every 100 ms, written 150 ms late), but each record
        // forecasts its track 200 ms ahead: 20 px on, where the object is when
        // the record is first read. Frame 4's record forecasts its track out
        // of view.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        late_records(&path, |k, x| {
            let ahead = if k == 4 {
                "null".to_string()
            } else {
                format!("[{},0,{},10]", x + 20.0, x + 30.0)
            };
            format!(",\"forecast\":{{\"after_ns\":200000000,\"bbox\":{ahead}}}")
        });
        let gt = walking(7);
        let pred = streaming_predictions(&path, None, &gt, PLAIN).unwrap();
        assert_eq!(pred[&2][0].bbox[0], 20.0, "frame 0's forecast for frame 2");
        assert_eq!(pred[&4][0].bbox[0], 40.0);
        assert!(
            pred[&6].is_empty(),
            "frame 4's track is forecast out of view"
        );
        let m = evaluate(&gt, &pred, 0.5);
        assert_eq!((m.tp, m.fn_, m.fp), (4, 3, 0));
        // Without forecasts, the boxes as they were at capture.
        let boxes = StreamingOptions {
            extrapolate: false,
            forecasts: false,
        };
        let pred = streaming_predictions(&path, None, &gt, boxes).unwrap();
        assert_eq!(pred[&2][0].bbox[0], 0.0);
        assert_eq!(pred[&6][0].bbox[0], 40.0);
        // Extrapolated from the forecast's instant: frame 2 is captured at the
        // instant frame 0's forecast describes, so nothing moves.
        let pred = streaming_predictions(&path, None, &gt, EXTRAPOLATE).unwrap();
        assert!((pred[&2][0].bbox[0] - 20.0).abs() < 1e-3, "{:?}", pred[&2]);
        // A forecast without a whole `after_ns` is refused, naming the line.
        std::fs::write(
            &path,
            "{\"seq\":0,\"capture_wall_ns\":1,\"emit_wall_ns\":2,\"tracks\":[{\"id\":1,\"bbox\":[0,0,1,1],\"forecast\":{\"after_ns\":-1,\"bbox\":null}}]}\n",
        )
        .unwrap();
        let e = streaming_predictions(&path, None, &gt, PLAIN).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("after_ns"), "{e}");
    }

    /// Hand-worked: two objects, the tracker swaps their ids at frame 2.
    /// TP 8, IDSW 2 (each object switches once): MOTA = 1 - 2/8 = 0.75.
    /// Identity matching a-1, b-2 covers frames 0-1 only: IDTP 4, IDF1 = 8/16 = 0.5.
    #[test]
    fn swapped_ids_count_two_switches() {
        let both: &[(u64, [f32; 4])] = &[(1, A), (2, B)];
        let gt = seq(&[both; 4]);
        let pred = seq(&[
            &[(1, A), (2, B)],
            &[(1, A), (2, B)],
            &[(2, A), (1, B)],
            &[(2, A), (1, B)],
        ]);
        let m = evaluate(&gt, &pred, 0.5);
        assert_eq!(
            (m.tp, m.idsw, m.fp, m.fn_, m.frag, m.idtp),
            (8, 2, 0, 0, 0, 4)
        );
        assert!((m.mota - 0.75).abs() < 1e-12);
        assert!((m.idf1 - 0.5).abs() < 1e-12);
    }

    /// Hand-worked: one object over 5 frames, missed at frame 2 where a false
    /// positive appears far away. TP 4, FN 1, FP 1, frag 1: MOTA = 1 - 2/5 = 0.6;
    /// IDTP 4 of 5 + 5 boxes: IDF1 = 0.8; precision = recall = 0.8.
    #[test]
    fn a_miss_and_a_false_positive() {
        let one: &[(u64, [f32; 4])] = &[(1, A)];
        let gt = seq(&[one; 5]);
        let pred = seq(&[&[(7, A)], &[(7, A)], &[(9, FAR)], &[(7, A)], &[(7, A)]]);
        let m = evaluate(&gt, &pred, 0.5);
        assert_eq!((m.tp, m.fn_, m.fp, m.idsw, m.frag), (4, 1, 1, 0, 1));
        assert!((m.mota - 0.6).abs() < 1e-12 && (m.idf1 - 0.8).abs() < 1e-12);
        assert!((m.precision - 0.8).abs() < 1e-12 && (m.recall - 0.8).abs() < 1e-12);
    }

    /// Below IoU 0.5 nothing matches: a box shifted by 60% of its width.
    #[test]
    fn matches_need_iou_of_one_half() {
        let gt = seq(&[&[(1, A)]]);
        let shifted = seq(&[&[(1, [6.0, 0.0, 16.0, 10.0])]]);
        let m = evaluate(&gt, &shifted, 0.5);
        assert_eq!((m.tp, m.fp, m.fn_), (0, 1, 1));
        assert!((m.mota - -1.0).abs() < 1e-12);
    }

    #[test]
    fn reads_motchallenge_and_json_lines_alike() {
        let dir = std::env::temp_dir().join(format!("percept-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mot = dir.join("gt.txt");
        std::fs::write(
            &mot,
            "1,1,0,0,10,10,1,1,1\n2,1,0,0,10,10,1,1,1\n2,5,50,50,10,10,0,1,1\n",
        )
        .unwrap();
        let jsonl = dir.join("pred.jsonl");
        std::fs::write(
            &jsonl,
            "{\"seq\":0,\"tracks\":[{\"id\":3,\"bbox\":[0,0,10,10],\"state\":\"confirmed\"},{\"id\":4,\"bbox\":[0,0,1,1],\"state\":\"tentative\"}]}\n{\"seq\":1,\"tracks\":[{\"id\":3,\"bbox\":[0,0,10,10],\"state\":\"confirmed\"}]}\n",
        )
        .unwrap();
        let gt = read_tracks(&mot, true, None).unwrap();
        let pred = read_tracks(&jsonl, false, None).unwrap();
        assert_eq!(gt[&1].len(), 1, "the row with 0 in column 7 is ignored");
        assert_eq!(pred[&0].len(), 1, "tentative tracks are not scored");
        assert_eq!(evaluate(&gt, &pred, 0.5).idf1, 1.0);
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "1,2,3\n").unwrap();
        let e = read_tracks(&bad, true, None).unwrap_err();
        assert!(e.to_string().contains("bad.txt:1:"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
