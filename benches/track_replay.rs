//! Replays a recorded run's detections through the tracker under the
//! schedules a real-time pipeline uses, without a detector and without a
//! clock: every figure is deterministic for a given input file.
//!
//! Input: a percept JSON Lines output made offline with detection on every
//! frame (`detections` and `tracks` on each record; `benches/streaming.sh`
//! keeps its `reference.jsonl` with `KEEP=1`). The record's confirmed tracks
//! are the reference. Schedules, all at the same detection rate 1/N:
//! - `interval N`: detection on every Nth frame, in line (the record of a
//!   detected frame carries that frame's own detections);
//! - `async N`: detection on every Nth frame, its result arriving N frames
//!   later (`Record::late`), as asynchronous detection does when the detector
//!   costs N frame periods: the frame that carries a result is the next one
//!   the helper takes.
//!
//! Scores: per frame (each record against the reference of its own frame) and
//! one frame late (each record against the next frame's reference: what
//! `percept eval --streaming` measures when output latency is under a period).
//!
//! Usage: `cargo bench --bench track_replay -- REFERENCE.jsonl [N...]`
//! (default N: 2 3 4).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use percept::eval::{self, Metrics, Object, Sequence};
use percept::record::{Detection, TrackState};
use percept::stages::track::{TrackOut, TrackSettings, Tracker};

struct Frame {
    seq: u64,
    t_s: f64,
    detections: Vec<Detection>,
}

fn read(path: &PathBuf) -> Result<Vec<Frame>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut frames = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        let seq = v["seq"].as_u64().ok_or("no seq")?;
        let t_s = v["pts_ns"]
            .as_u64()
            .or(v["capture_ns"].as_u64())
            .ok_or("no time")? as f64
            / 1e9;
        let detections = v["detections"]
            .as_array()
            .ok_or_else(|| format!("{}:{}: no detections", path.display(), i + 1))?
            .iter()
            .map(|d| Detection {
                bbox: std::array::from_fn(|k| d["bbox"][k].as_f64().unwrap_or(0.0) as f32),
                class_id: d["class_id"].as_u64().unwrap_or(0) as u32,
                class: Arc::from(d["class"].as_str().unwrap_or("")),
                score: d["score"].as_f64().unwrap_or(0.0) as f32,
                position: None,
            })
            .collect();
        frames.push(Frame {
            seq,
            t_s,
            detections,
        });
    }
    Ok(frames)
}

fn settings() -> TrackSettings {
    // pipelines/default.toml's tracker.
    TrackSettings {
        high_score: 0.5,
        low_score: 0.1,
        new_track_score: 0.6,
        max_lost_s: 1.0,
        ..TrackSettings::default()
    }
}

/// Runs one schedule; returns the confirmed tracks per frame.
fn replay(frames: &[Frame], n: usize, asynchronous: bool) -> Sequence {
    replay_lag(frames, n, if asynchronous { n } else { 0 })
}

/// Detection on every `n`th frame, its result `lag` frames later.
fn replay_lag(frames: &[Frame], n: usize, lag: usize) -> Sequence {
    let mut tracker = Tracker::new(settings());
    let mut out: Vec<TrackOut> = Vec::new();
    let mut seq = Sequence::new();
    for (k, f) in frames.iter().enumerate() {
        if lag == 0 {
            let dets = k.is_multiple_of(n).then_some(f.detections.as_slice());
            tracker.update(f.t_s, dets, None, &mut out);
        } else if k >= lag && (k - lag).is_multiple_of(n) {
            let from = &frames[k - lag];
            tracker.update_late(f.t_s, from.t_s, &from.detections, &mut out);
        } else {
            tracker.update(f.t_s, None, None, &mut out);
        }
        seq.insert(
            f.seq,
            out.iter()
                .filter(|t| t.state == TrackState::Confirmed)
                .map(|t| Object {
                    id: t.id,
                    bbox: t.bbox,
                })
                .collect(),
        );
    }
    seq
}

fn ids(seq: &Sequence) -> usize {
    let mut all: Vec<u64> = seq.values().flatten().map(|o| o.id).collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

fn row(name: &str, gt: &Sequence, pred: &Sequence) {
    let m: Metrics = eval::evaluate(gt, pred, 0.5);
    // One frame late: the record of frame k scored against frame k + 1.
    let shifted: Sequence = pred.iter().map(|(k, v)| (k + 1, v.clone())).collect();
    let gt_after: Sequence = gt
        .iter()
        .filter(|(k, _)| **k > 0)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let late = eval::evaluate(&gt_after, &shifted, 0.5);
    println!(
        "| {name} | {:.3} / {:.3} | {} / {} / {} | {} | {:.3} / {:.3} |",
        m.mota,
        m.idf1,
        m.fp,
        m.fn_,
        m.idsw,
        ids(pred),
        late.mota,
        late.idf1
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(path) = args.first().map(PathBuf::from) else {
        eprintln!("usage: cargo bench --bench track_replay -- REFERENCE.jsonl [N...]");
        std::process::exit(2);
    };
    let frames = match read(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // The reference: the same tracker with detection on every frame, as the
    // offline run of the same pipeline.
    let gt = replay(&frames, 1, false);
    let ns: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![2, 3, 4]
    };
    let reference_ids: BTreeMap<u64, ()> = gt.values().flatten().map(|o| (o.id, ())).collect();
    println!(
        "{}: {} frames, {} reference identities",
        path.display(),
        frames.len(),
        reference_ids.len()
    );
    println!(
        "| schedule | per-frame MOTA / IDF1 | FP / FN / ID switches | track ids | one frame late MOTA / IDF1 |"
    );
    println!("| --- | --- | --- | --- | --- |");
    row("every frame", &gt, &gt);
    for &n in &ns {
        row(&format!("interval {n}"), &gt, &replay(&frames, n, false));
        row(&format!("async {n}"), &gt, &replay(&frames, n, true));
        row(
            &format!("every frame, {n} frames late"),
            &gt,
            &replay_lag(&frames, 1, n),
        );
    }
}
