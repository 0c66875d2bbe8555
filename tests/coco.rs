//! The trained COCO detectors (`models/README.md`) on the sample recording:
//! NanoDet-m through percept's `nanodet` (GFL) decoder, CenterNet through
//! `end2end`. Real weights, real video; the regions below were checked by eye.

use serde_json::Value;

use crate::util::*;

/// People in vtest.avi's frame 0 (768x576), `[x1, y1, x2, y2]` in pixels, read
/// off the decoded frame by eye (cropped and enlarged). The first four are
/// solid people; the two marked `ghost` are the recording's semi-transparent
/// figures, which a detector may or may not see.
const FRAME0_PEOPLE: [([f32; 4], &str); 6] = [
    ([254.0, 220.0, 284.0, 308.0], "man in a dark coat, left"),
    ([496.0, 157.0, 529.0, 234.0], "man with a camera, top"),
    ([650.0, 241.0, 685.0, 320.0], "woman walking, right"),
    (
        [589.0, 240.0, 630.0, 324.0],
        "woman walking a step ahead of her",
    ),
    ([287.0, 215.0, 326.0, 299.0], "ghost beside the man, left"),
    ([485.0, 162.0, 510.0, 240.0], "ghost behind the man, top"),
];
/// The solid people of `FRAME0_PEOPLE`.
const FRAME0_SOLID: usize = 4;
/// How many of them a detector must find at score >= 0.5. Both trained
/// detectors see the two women walking side by side in dark coats as one
/// person (the right one) on frame 0 and on most frames after; at these model
/// sizes (NanoDet-m 416: 20.6 COCO mAP) that is a real miss, not a decoding error:
/// the TF.js originals give the same three boxes (`models/README.md`).
const FRAME0_FOUND: usize = 3;

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

fn bbox(d: &Value) -> [f32; 4] {
    let b = d["bbox"].as_array().expect("bbox");
    std::array::from_fn(|i| b[i].as_f64().expect("bbox value") as f32)
}

/// A record's detections of `class` at or above `score`.
fn boxes(record: &Value, class: &str, score: f64) -> Vec<[f32; 4]> {
    record["detections"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter(|d| d["class"] == class && d["score"].as_f64().unwrap() >= score)
                .map(bbox)
                .collect()
        })
        .unwrap_or_default()
}

/// What the issue asks of a trained detector on all of vtest.avi: people on at
/// least 95 % of frames, 3 to 8 a frame on average at score >= 0.5, every box
/// inside the frame, every score a probability. Called on the main job's run.
pub fn check_people_on_vtest(records: &[Value]) {
    assert_eq!(records.len(), 795);
    let (mut with_people, mut people) = (0usize, 0usize);
    for r in records {
        let (w, h) = (u64_field(r, "width") as f32, u64_field(r, "height") as f32);
        let ds = r["detections"]
            .as_array()
            .expect("detections on every frame");
        for d in ds {
            let b = bbox(d);
            assert!(
                b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= w && b[3] <= h && b[0] < b[2] && b[1] < b[3],
                "box outside the {w}x{h} frame: {d} (seq {})",
                r["seq"]
            );
            let s = d["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&s), "score {s} is not a probability");
        }
        let n = boxes(r, "person", 0.5).len();
        with_people += usize::from(n > 0);
        people += n;
    }
    let share = with_people as f64 / records.len() as f64;
    let mean = people as f64 / records.len() as f64;
    assert!(share >= 0.95, "people on {:.1} % of frames", share * 100.0);
    assert!(
        (3.0..=8.0).contains(&mean),
        "{mean:.2} people a frame at score >= 0.5"
    );
}

/// A pipeline of one detector on the first `frames` frames of vtest.avi.
fn detector_pipeline(dir: &std::path::Path, name: &str, frames: u32) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(repo().join(format!("pipelines/{name}.toml"))).unwrap();
    // The shipped pipeline, its relative paths made absolute, cut to `frames` frames.
    let text = shipped
        .replace("\"../", &format!("\"{}/", repo().display()))
        .replace(
            "kind = \"file\"\n",
            &format!("kind = \"file\"\nmax_frames = {frames}\n"),
        );
    pipeline(dir, &format!("{name}.toml"), &text)
}

fn run_detector(name: &str, frames: u32) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let p = detector_pipeline(dir.path(), name, frames);
    let out = dir.path().join("out.jsonl");
    run(&["run", p.to_str().unwrap(), "-o", out.to_str().unwrap()]).assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), frames as usize);
    records
}

/// Each found person covers a region seen by eye, and each solid person is found.
fn check_frame0(detector: &str, found: &[[f32; 4]]) {
    for b in found {
        let best = FRAME0_PEOPLE
            .iter()
            .map(|(r, what)| (iou(b, r), *what))
            .fold((0.0, ""), |a, x| if x.0 > a.0 { x } else { a });
        assert!(
            best.0 >= 0.4,
            "{detector}: person box {b:?} covers no person seen in frame 0 (best: {best:?})"
        );
    }
    let seen: Vec<&str> = FRAME0_PEOPLE[..FRAME0_SOLID]
        .iter()
        .filter(|(region, _)| found.iter().any(|b| iou(b, region) >= 0.4))
        .map(|(_, what)| *what)
        .collect();
    assert!(
        seen.len() >= FRAME0_FOUND,
        "{detector}: found only {seen:?} of the solid people in frame 0; boxes {found:?}"
    );
}

#[test]
fn trained_detectors_find_the_people_seen_in_frame_0_and_agree() {
    let nanodet = run_detector("default", 8);
    let centernet = run_detector("centernet", 8);
    let n0 = boxes(&nanodet[0], "person", 0.5);
    let c0 = boxes(&centernet[0], "person", 0.5);
    assert!(
        (FRAME0_FOUND..=FRAME0_PEOPLE.len()).contains(&n0.len()),
        "NanoDet: {} people in frame 0: {n0:?}",
        n0.len()
    );
    check_frame0("NanoDet", &n0);
    check_frame0("CenterNet", &c0);
    // CenterNet also sees the parked vehicles (the white van at the top right).
    let van = [650.0, 42.0, 725.0, 100.0];
    assert!(
        boxes(&centernet[0], "car", 0.3)
            .iter()
            .chain(&boxes(&centernet[0], "truck", 0.3))
            .any(|b| iou(b, &van) >= 0.4),
        "CenterNet: no vehicle on the van: {}",
        centernet[0]["detections"]
    );
    // Frame by frame, most NanoDet people have a CenterNet person at IoU >= 0.5.
    let (mut matched, mut total) = (0, 0);
    for (n, c) in nanodet.iter().zip(&centernet) {
        let cn = boxes(c, "person", 0.3);
        assert!(
            !cn.is_empty(),
            "CenterNet found nobody in frame {}",
            c["seq"]
        );
        for b in boxes(n, "person", 0.5) {
            total += 1;
            matched += usize::from(cn.iter().any(|c| iou(&b, c) >= 0.5));
        }
    }
    assert!(
        matched * 4 >= total * 3,
        "only {matched} of {total} NanoDet people agree with CenterNet"
    );
}
