//! Batching across streams (`batch = { max, timeout_ms }` of a `detect`
//! stage) and several detector instances (`instances = N`): per-frame
//! results equal single runs, frames leave in order, the summary counts the
//! batches, and the settings that cannot work are refused with their field.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

/// Frames per source (the debug build's detector takes tens of ms a frame).
const FRAMES: u64 = 8;

/// Four file sources (the squares recording three times, the crossing one
/// once: different contents in one batch), [`FRAMES`] frames each, through
/// one detector.
fn four_streams(dir: &Path, model: &str, stage_extra: &str, name: &str) -> std::path::PathBuf {
    let repo = repo();
    let mut text = String::from("version = 1\n");
    for (i, media) in ["squares", "squares", "crossing", "squares"]
        .iter()
        .enumerate()
    {
        text += &format!(
            "[[source]]\nid = \"cam{i}\"\nkind = \"file\"\nmax_frames = {FRAMES}\nlocation = \"{}\"\n",
            repo.join(format!("tests/media/{media}.mkv")).display()
        );
    }
    text += &format!(
        r#"[[stage]]
id = "detect"
kind = "detect"
layout = "yolov8"
{stage_extra}
[stage.model]
path = "{}"
threads = 1
[[sink]]
kind = "jsonl"
path = "{name}.jsonl"
"#,
        repo.join("tests/models").join(model).display()
    );
    pipeline(dir, &format!("{name}.toml"), &text)
}

/// Runs a pipeline; its records by (stream, seq) and its summary.
fn run_records(dir: &Path, p: &Path, name: &str) -> (HashMap<(String, u64), Value>, Value) {
    let summary = dir.join(format!("{name}.summary.json"));
    run(&[
        "run",
        p.to_str().unwrap(),
        "--no-progress",
        "--summary-json",
        summary.to_str().unwrap(),
    ])
    .assert_code(0);
    let records = read_records(&dir.join(format!("{name}.jsonl")))
        .into_iter()
        .map(|r| {
            (
                (
                    r["stream"].as_str().unwrap().to_string(),
                    u64_field(&r, "seq"),
                ),
                r,
            )
        })
        .collect();
    let summary = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    (records, summary)
}

/// Asserts every record's detections match (boxes to 1e-3 px, scores to
/// 1e-5, same classes, same order); returns how many values were bit-identical
/// and how many were compared.
fn assert_same_detections(
    a: &HashMap<(String, u64), Value>,
    b: &HashMap<(String, u64), Value>,
    what: &str,
) -> (usize, usize) {
    assert_eq!(a.len(), b.len(), "{what}: record counts");
    let (mut identical, mut compared) = (0, 0);
    for (key, ra) in a {
        let rb = b
            .get(key)
            .unwrap_or_else(|| panic!("{what}: {key:?} missing"));
        let (da, db) = (
            ra["detections"].as_array().unwrap(),
            rb["detections"].as_array().unwrap(),
        );
        assert_eq!(da.len(), db.len(), "{what}: {key:?}: {da:?} vs {db:?}");
        for (x, y) in da.iter().zip(db) {
            assert_eq!(x["class"], y["class"], "{what}: {key:?}");
            let pairs = x["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .zip(y["bbox"].as_array().unwrap())
                .map(|(p, q)| (p.as_f64().unwrap(), q.as_f64().unwrap(), 1e-3))
                .chain([(
                    x["score"].as_f64().unwrap(),
                    y["score"].as_f64().unwrap(),
                    1e-5,
                )]);
            for (p, q, tolerance) in pairs {
                assert!(
                    (p - q).abs() <= tolerance,
                    "{what}: {key:?}: {p} vs {q}: {x} vs {y}"
                );
                compared += 1;
                identical += usize::from(p.to_bits() == q.to_bits());
            }
        }
    }
    (identical, compared)
}

fn stage<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

/// The four streams through one detector, one frame at a time, one instance:
/// the reference the batched and multi-instance runs must equal.
fn run_single(dir: &Path) -> (HashMap<(String, u64), Value>, Value) {
    let p = four_streams(dir, "squares_yolov8.onnx", "", "single");
    run_records(dir, &p, "single")
}

#[test]
fn batched_detections_equal_unbatched_for_every_frame_of_four_streams() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (single, s1) = run_single(d);
    let frames = (4 * FRAMES) as usize;
    assert_eq!(single.len(), frames);
    assert_eq!(stage(&s1, "detect")["batches"], 0);
    assert!(
        single
            .values()
            .any(|r| !r["detections"].as_array().unwrap().is_empty()),
        "the comparison needs detections"
    );
    // A dynamic batch axis, and a fixed one of 4 (partial batches padded).
    for model in ["squares_yolov8_batchN.onnx", "squares_yolov8_batch4.onnx"] {
        let p = four_streams(d, model, "batch = { max = 4, timeout_ms = 50 }", "batched");
        let (batched, s4) = run_records(d, &p, "batched");
        let (identical, compared) = assert_same_detections(&single, &batched, model);
        eprintln!("{model}: {identical} of {compared} values bit-identical");
        let detect = stage(&s4, "detect");
        assert_eq!(detect["processed"].as_u64(), Some(frames as u64));
        let (batches, mean) = (
            detect["batches"].as_u64().unwrap(),
            detect["mean_batch"].as_f64().unwrap(),
        );
        assert!(batches > 0 && mean > 1.0, "{model}: {detect}");
        assert!(
            (batches as f64 * mean - frames as f64).abs() < 1e-6,
            "{model}: {detect}"
        );
    }
}

#[test]
fn instances_give_every_frame_its_own_detections_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (single, _) = run_single(d);
    let p = four_streams(d, "squares_yolov8.onnx", "instances = 3", "three");
    let (three, summary) = run_records(d, &p, "three");
    // The same model and threads on each instance: the same numbers, bit for bit.
    let (identical, compared) = assert_same_detections(&single, &three, "instances = 3");
    assert!(compared > 0, "the comparison needs detections");
    assert_eq!(identical, compared);
    assert_eq!(
        stage(&summary, "detect")["processed"].as_u64(),
        Some(4 * FRAMES)
    );
    // Each stream's records in the file in capture order.
    let mut last: HashMap<String, u64> = HashMap::new();
    for r in read_records(&d.join("three.jsonl")) {
        let (stream, seq) = (
            r["stream"].as_str().unwrap().to_string(),
            u64_field(&r, "seq"),
        );
        if let Some(before) = last.insert(stream.clone(), seq) {
            assert!(seq > before, "{stream}: {seq} after {before}");
        }
    }
    assert_eq!(last.len(), 4);
}

#[test]
fn batch_settings_that_cannot_work_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "squares_yolov8_batchN.onnx",
            "batch = { max = 4 }\nschedule = \"async\"",
            "stage[0].schedule",
        ),
        (
            "squares_yolov8_batchN.onnx",
            "batch = { max = 0 }",
            "stage[0].batch.max",
        ),
        (
            "squares_yolov8_batchN.onnx",
            "batch = { max = 4, timeout_ms = -1 }",
            "stage[0].batch.timeout_ms",
        ),
        (
            "squares_yolov8_batchN.onnx",
            "batch = { max = 4, wait_ms = 5 }",
            "wait_ms",
        ),
        (
            "squares_yolov8.onnx",
            "instances = 2\nschedule = \"async\"",
            "stage[0].schedule",
        ),
        ("squares_yolov8.onnx", "instances = 0", "stage[0].instances"),
        (
            "squares_yolov8_batchN.onnx",
            "instances = 2\nbatch = { max = 4 }",
            "stage[0].instances",
        ),
    ];
    for (model, extra, field) in cases {
        let p = four_streams(d, model, extra, "bad");
        let r = run(&["check", p.to_str().unwrap()]);
        r.assert_code(2);
        assert!(r.stderr.contains(field), "{extra}: {}", r.stderr);
        assert!(r.stderr.contains("bad.toml"), "{extra}: {}", r.stderr);
    }
    // A model whose fixed batch dimension is not batch.max: refused at start,
    // naming the stage and the model.
    let p = four_streams(d, "squares_yolov8.onnx", "batch = { max = 4 }", "fixed1");
    let r = run(&["run", p.to_str().unwrap(), "--no-progress"]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("detect")
            && r.stderr.contains("squares_yolov8.onnx")
            && r.stderr.contains("a fixed one of 4"),
        "{}",
        r.stderr
    );
}
