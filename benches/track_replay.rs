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
//! With `--cost=C[,C...]` (the detector's cost in frame periods, e.g.
//! `1.6,2.7`), three more rows per cost model the asynchronous stage's
//! timeline: the helper takes the first frame after it is free, its result
//! rides on the first frame after it is ready (`async C`), or, as the stage
//! worker does for frames with a deadline, on a frame that arrives less than
//! a period before it is ready and waits for it, within a budget of 2
//! periods, the helper then taking that frame or, when its result would
//! ride a frame sooner, the next (`async C, waits`), or, with
//! `wait_for_result = "deadline"`, on the first frame whose deadline (2
//! periods after it) is at or after it is ready, held for it (`async C,
//! held to the deadline`). Their detection rate is in the row's name.
//!
//! `--phase=K` starts every schedule's detection on frame K instead of 0.
//! The recording's motion is uneven from frame to frame (vtest repeats a
//! pattern of short and long steps), so which frames a schedule detects on
//! moves its scores by a few hundredths: compare schedules over all phases.
//!
//! Each schedule also has a drop-to-latest row (`latest N`: no tracker, the
//! newest detection result, N frames old, held until the next, as
//! `benches/baseline.py --latest` does); its ids are per-frame indices, so
//! compare its det-MOTA (1 − (FP + FN) / GT) only.
//!
//! With `--gray=RAW --size=WxH` the tracker moves boxes by optical flow
//! (`motion = "flow"`) on the recording's frames, read from RAW: the frames
//! as 8-bit gray, one after another, W x H each, in the reference's order;
//! e.g. `gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! videoconvert
//! ! video/x-raw,format=GRAY8 ! filesink location=vtest.gray` (768x576).
//! The reference is then the flow tracker on every frame too.
//!
//! `--dump=DIR` writes each schedule's confirmed tracks per frame into DIR
//! as JSON (`{"seq": [[id, x1, y1, x2, y2], ...]}`), the reference's too.
//!
//! Usage: `cargo bench --bench track_replay -- REFERENCE.jsonl [N...]
//! [--gray=RAW --size=WxH] [--cost=C[,C...]] [--phase=K] [--dump=DIR]`
//! (default N: 2 3 4).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use opencv::core::{CV_8UC1, Mat};
use opencv::prelude::*;
use percept::eval::{self, Metrics, Object, Sequence};
use percept::record::{Detection, TrackState};
use percept::stages::track::flow::BoxFlow;
use percept::stages::track::{Motion, TrackOut, TrackSettings, Tracker};

/// The recording's frames in gray, for `motion = "flow"`.
struct Gray {
    path: PathBuf,
    width: i32,
    height: i32,
}

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

fn settings(flow: bool) -> TrackSettings {
    // pipelines/default.toml's tracker.
    TrackSettings {
        high_score: 0.5,
        low_score: 0.1,
        new_track_score: 0.6,
        max_lost_s: 1.0,
        motion: if flow { Motion::Flow } else { Motion::Velocity },
        ..TrackSettings::default()
    }
}

/// Runs one schedule; returns the confirmed tracks per frame.
fn replay(frames: &[Frame], n: usize, asynchronous: bool, gray: Option<&Gray>) -> Sequence {
    replay_lag(frames, n, if asynchronous { n } else { 0 }, gray)
}

/// Detection on every `n`th frame, its result `lag` frames later; with
/// `gray`, boxes move by optical flow between detections (as
/// `TrackStage::process` does).
fn replay_lag(frames: &[Frame], n: usize, lag: usize, gray: Option<&Gray>) -> Sequence {
    // The first detected frame (`--phase`; every frame from the first when n = 1).
    let first = if n > 1 { phase() } else { 0 };
    let detected = |k: usize| k >= first && (k - first).is_multiple_of(n);
    if lag == 0 {
        return replay_with(frames, gray, |k| Ride::Inline(detected(k)));
    }
    let rides: Vec<Option<usize>> = (0..frames.len())
        .map(|k| (k >= lag && detected(k - lag)).then(|| k - lag))
        .collect();
    replay_rides(frames, &rides, gray)
}

/// `--phase=K`: the frame the schedules first detect on (0 unless given).
static PHASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn phase() -> usize {
    PHASE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Frame `k` carries the result of frame `rides[k]` (late), if any.
fn replay_rides(frames: &[Frame], rides: &[Option<usize>], gray: Option<&Gray>) -> Sequence {
    replay_with(frames, gray, |k| match rides[k] {
        Some(from) => Ride::Late(from),
        None => Ride::Inline(false),
    })
}

/// What frame `k` carries.
enum Ride {
    /// Its own detections (`true`) or none.
    Inline(bool),
    /// The detections of an earlier frame.
    Late(usize),
}

fn replay_with(frames: &[Frame], gray: Option<&Gray>, ride: impl Fn(usize) -> Ride) -> Sequence {
    let mut tracker = Tracker::new(settings(gray.is_some()));
    let mut out: Vec<TrackOut> = Vec::new();
    let mut seq = Sequence::new();
    let mut flow = gray.map(|g| {
        let file =
            std::fs::File::open(&g.path).unwrap_or_else(|e| panic!("{}: {e}", g.path.display()));
        let image = Mat::new_rows_cols_with_default(g.height, g.width, CV_8UC1, 0.0.into())
            .unwrap_or_else(|e| panic!("{e}"));
        (std::io::BufReader::new(file), image, BoxFlow::new())
    });
    let (mut boxes, mut shifts, mut births, mut path) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, f) in frames.iter().enumerate() {
        if let Some((file, image, flow)) = &mut flow {
            let bytes = image.data_bytes_mut().unwrap_or_else(|e| panic!("{e}"));
            file.read_exact(bytes)
                .unwrap_or_else(|e| panic!("frame {k} of the gray recording: {e}"));
            tracker.reported_boxes(&mut boxes);
            flow.step_gray(image, f.t_s, &boxes, &mut shifts)
                .unwrap_or_else(|e| panic!("{e}"));
            tracker.advance_flow(f.t_s, &shifts);
        }
        match ride(k) {
            Ride::Inline(detected) => {
                let dets = detected.then_some(f.detections.as_slice());
                tracker.update(f.t_s, dets, None, &mut out);
            }
            Ride::Late(from) => {
                let from = &frames[from];
                tracker.update_late(f.t_s, from.t_s, &from.detections, &mut out);
            }
        }
        if let Some((_, _, flow)) = &mut flow {
            births.clear();
            births.extend(tracker.late_measured());
            for &(index, from_s, bbox) in &births {
                let measured = flow
                    .follow(from_s, bbox, &mut path)
                    .unwrap_or_else(|e| panic!("{e}"));
                let all = !path.is_empty() && measured == path.len();
                tracker.caught_up(index, &path, all, &mut out);
            }
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

/// The asynchronous stage's timeline over `n` frames with a detector that
/// costs `cost` frame periods (frames arrive at 0, 1, 2, ...; the stage's
/// own work is free): per frame, whether the helper takes it and which
/// frame's result rides on it. With `wait`, a frame that arrives less than a
/// period before the result is ready, within its deadline (2 periods after
/// it), waits for it (`Scheduler::wait_for_result`), and the helper takes
/// it, or the next frame when that one's result would ride a frame sooner.
/// With `Wait::Deadline` (`wait_for_result = "deadline"`), a frame whose
/// deadline is at or after the result is ready is held for it, frames
/// behind it queue, and the helper skips a frame when the next one's result
/// would ride fewer frames after it.
fn timeline(n: usize, cost: f64, wait: Wait) -> Vec<(bool, Option<usize>)> {
    const BUDGET: f64 = 2.0;
    if wait == Wait::Deadline {
        return held_timeline(n, cost, BUDGET);
    }
    let wait = wait == Wait::NextFrame;
    let mut helper: Option<(usize, f64)> = None;
    let mut free_at = 0.0f64;
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let arrival = k as f64;
        let mut now = arrival.max(free_at);
        let mut rides = None;
        let mut waited = false;
        if let Some((from, ready)) = helper {
            waited = wait && ready > now && ready < now + 1.0 && ready <= arrival + BUDGET;
            if ready <= now || waited {
                now = now.max(ready);
                free_at = now;
                rides = Some(from);
                helper = None;
            }
        }
        // A frame that waited so long that the next one's result would ride
        // a frame sooner is left for it (`Scheduler::fresher_next`).
        let fresher_next = waited && (now - arrival + cost).floor() > cost.floor();
        let takes = helper.is_none() && !fresher_next && k >= phase();
        if takes {
            helper = Some((k, now + cost));
        }
        out.push((takes, rides));
    }
    out
}

/// How long a frame waits for the helper's result (`wait_for_result`).
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Never.
    No,
    /// Less than a period, before the next frame arrives.
    NextFrame,
    /// Until its deadline.
    Deadline,
}

/// [`timeline`] with frames held until their deadline (`budget` periods
/// after arrival) for a result ready by then; a frame is released when it
/// gets the result (or, not held, when the one before it was).
fn held_timeline(n: usize, cost: f64, budget: f64) -> Vec<(bool, Option<usize>)> {
    // Frames after its own that a result started `age` periods after a
    // frame's arrival rides on (`Scheduler::fresher_next`).
    let lands = |age: f64| ((age + cost - budget - 1e-9).ceil() as i64).max(1);
    let mut out = Vec::with_capacity(n);
    let mut helper: Option<(usize, f64)> = None;
    let mut released = 0.0f64;
    for k in 0..n {
        let arrival = k as f64;
        let mut now = arrival.max(released);
        let mut rides = None;
        if let Some((from, ready)) = helper
            && (ready <= now || ready <= arrival + budget)
        {
            now = now.max(ready);
            rides = Some(from);
            helper = None;
        }
        // Only a frame that waited or queued (`Scheduler::fresher_next`).
        let age = now - arrival;
        let fresher = age > 1e-9 && lands((age - 1.0).max(0.0)) < lands(age);
        let takes = helper.is_none() && !fresher && k >= phase();
        if takes {
            helper = Some((k, now + cost));
        }
        released = now;
        out.push((takes, rides));
    }
    out
}

/// Runs the schedule of [`timeline`]: detections taken by the helper ride on
/// later frames as late measurements. Returns the confirmed tracks per frame
/// and the detection rate.
fn replay_timeline(
    frames: &[Frame],
    cost: f64,
    wait: Wait,
    gray: Option<&Gray>,
) -> (Sequence, f64) {
    let plan = timeline(frames.len(), cost, wait);
    let rate = plan.iter().filter(|(t, _)| *t).count() as f64 / frames.len().max(1) as f64;
    let rides: Vec<Option<usize>> = plan.iter().map(|(_, r)| *r).collect();
    (replay_rides(frames, &rides, gray), rate)
}

/// Drop to latest, no tracker: the high-score boxes of the newest result
/// (detection on every `n`th frame, arriving `lag` frames later) held until
/// the next; ids are per-frame indices.
fn latest(frames: &[Frame], n: usize, lag: usize) -> Sequence {
    let high = settings(false).high_score;
    let mut held: Vec<Object> = Vec::new();
    let mut seq = Sequence::new();
    for (k, f) in frames.iter().enumerate() {
        if k >= lag && (k - lag).is_multiple_of(n) {
            held = frames[k - lag]
                .detections
                .iter()
                .filter(|d| d.score >= high)
                .enumerate()
                .map(|(i, d)| Object {
                    id: i as u64 + 1,
                    bbox: d.bbox,
                })
                .collect();
        }
        seq.insert(f.seq, held.clone());
    }
    seq
}

fn ids(seq: &Sequence) -> usize {
    let mut all: Vec<u64> = seq.values().flatten().map(|o| o.id).collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

/// Writes `seq` as JSON (`{seq: [[id, x1, y1, x2, y2], ...]}`) into `dir`
/// (created when missing).
fn dump(dir: Option<&String>, name: &str, seq: &Sequence) {
    let Some(dir) = dir else { return };
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
    let v: BTreeMap<String, Vec<[f64; 5]>> = seq
        .iter()
        .map(|(k, objs)| {
            let boxes = objs
                .iter()
                .map(|o| {
                    let b = o.bbox.map(f64::from);
                    [o.id as f64, b[0], b[1], b[2], b[3]]
                })
                .collect();
            (k.to_string(), boxes)
        })
        .collect();
    let path = PathBuf::from(dir).join(format!("{}.json", name.replace([' ', ','], "_")));
    let text = serde_json::to_string(&v).unwrap_or_default();
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
    let det = |m: &Metrics| 1.0 - (m.fp + m.fn_) as f64 / m.gt.max(1) as f64;
    println!(
        "| {name} | {:.3} / {:.3} | {:.3} | {} / {} / {} | {} | {:.3} / {:.3} |",
        m.mota,
        m.idf1,
        det(&m),
        m.fp,
        m.fn_,
        m.idsw,
        ids(pred),
        late.mota,
        late.idf1
    );
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        all.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
    };
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let Some(path) = args.first().map(PathBuf::from) else {
        eprintln!(
            "usage: cargo bench --bench track_replay -- REFERENCE.jsonl [N...] [--gray=RAW --size=WxH]"
        );
        std::process::exit(2);
    };
    let frames = match read(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let gray = option("gray").map(|g| {
        let size = option("size").unwrap_or_default();
        let Some((Ok(width), Ok(height))) =
            size.split_once('x').map(|(w, h)| (w.parse(), h.parse()))
        else {
            eprintln!("--gray needs --size=WxH");
            std::process::exit(2);
        };
        Gray {
            path: PathBuf::from(g),
            width,
            height,
        }
    });
    let gray = gray.as_ref();
    if let Some(k) = option("phase").and_then(|k| k.parse().ok()) {
        PHASE.store(k, std::sync::atomic::Ordering::Relaxed);
    }
    // The reference: the same tracker with detection on every frame, as the
    // offline run of the same pipeline.
    let gt = replay(&frames, 1, false, gray);
    let ns: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![2, 3, 4]
    };
    let reference_ids: BTreeMap<u64, ()> = gt.values().flatten().map(|o| (o.id, ())).collect();
    println!(
        "{}: {} frames, {} reference identities, motion {}",
        path.display(),
        frames.len(),
        reference_ids.len(),
        if gray.is_some() { "flow" } else { "velocity" }
    );
    println!(
        "| schedule | per-frame MOTA / IDF1 | det-MOTA | FP / FN / ID switches | track ids | one frame late MOTA / IDF1 |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let dir = option("dump");
    let dir = dir.as_ref();
    dump(dir, "reference", &gt);
    row("every frame", &gt, &gt);
    for &n in &ns {
        let runs = [
            (format!("interval {n}"), replay(&frames, n, false, gray)),
            (format!("async {n}"), replay(&frames, n, true, gray)),
            (
                format!("every frame, {n} frames late"),
                replay_lag(&frames, 1, n, gray),
            ),
            (format!("latest {n} (no tracker)"), latest(&frames, n, n)),
        ];
        for (name, seq) in &runs {
            dump(dir, name, seq);
            row(name, &gt, seq);
        }
    }
    let costs: Vec<f64> = option("cost")
        .map(|c| c.split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    for &cost in &costs {
        for wait in [Wait::No, Wait::NextFrame, Wait::Deadline] {
            let (seq, rate) = replay_timeline(&frames, cost, wait, gray);
            let name = format!(
                "async {cost} periods{} ({:.0} % detected)",
                match wait {
                    Wait::No => "",
                    Wait::NextFrame => ", waits",
                    Wait::Deadline => ", held to the deadline",
                },
                rate * 100.0
            );
            dump(dir, &name, &seq);
            row(&name, &gt, &seq);
        }
    }
}
