//! Edges, drop counting and fan-out, through the real binary.

use serde_json::Value;

use crate::util::*;

/// Runs a pipeline (exit 0 expected) and returns its `--summary-json`.
fn run_with_summary(pipeline: &std::path::Path) -> Value {
    let path = pipeline.with_extension("summary.json");
    run(&[
        "run",
        pipeline.to_str().unwrap(),
        "--summary-json",
        path.to_str().unwrap(),
    ])
    .assert_code(0);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn drop_oldest_edge_counts_every_dropped_frame() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    record_mkv(&clip, 120, 160, 120, 30);
    let p = pipeline(
        dir.path(),
        "p.toml",
        r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "clip.mkv"
[[stage]]
id = "slow"
kind = "delay"
delay_ms = 15.0
queue = { capacity = 1, policy = "drop_oldest" }
[[sink]]
kind = "jsonl"
path = "out.jsonl"
"#,
    );
    let s = run_with_summary(&p);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(s["frames_in"], 120);
    let dropped: u64 = s["drops"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|d| {
            assert_eq!(d["reason"], "queue_full");
            assert_eq!(d["where"], "edge into slow");
        })
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert!(
        dropped > 0,
        "a 15 ms stage behind a fast decoder must drop: {s}"
    );
    assert_eq!(
        records.len() as u64 + dropped,
        120,
        "every frame is either out or counted"
    );
    assert_eq!(s["frames_out"].as_u64(), Some(records.len() as u64));
    // Survivors keep their order and their original sequence numbers.
    let seqs: Vec<u64> = records.iter().map(|r| u64_field(r, "seq")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(s["stages"][0]["queue_capacity"], 1);
}

#[test]
fn block_edges_lose_nothing_and_every_sink_gets_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "p.toml",
        r#"
version = 1
[[source]]
id = "a"
kind = "test"
width = 32
height = 24
max_frames = 40
[[source]]
id = "b"
kind = "test"
pattern = "snow"
width = 48
height = 32
max_frames = 25
[[stage]]
id = "stats_a"
kind = "image_stats"
streams = ["a"]
queue = { capacity = 1, policy = "block" }
[[stage]]
id = "slow"
kind = "delay"
delay_ms = 2.0
queue = { capacity = 1, policy = "block" }
[[sink]]
kind = "jsonl"
path = "one.jsonl"
[[sink]]
kind = "jsonl"
path = "two.jsonl"
"#,
    );
    run(&["run", p.to_str().unwrap()]).assert_code(0);
    for name in ["one.jsonl", "two.jsonl"] {
        let records = read_records(&dir.path().join(name));
        assert_eq!(records.len(), 65, "{name}");
        for stream in ["a", "b"] {
            let of: Vec<&Value> = records.iter().filter(|r| r["stream"] == stream).collect();
            let seqs: Vec<u64> = of.iter().map(|r| u64_field(r, "seq")).collect();
            assert_eq!(
                seqs,
                (0..of.len() as u64).collect::<Vec<_>>(),
                "{name} {stream}"
            );
            // The stream filter: only `a` goes through `stats_a`.
            assert!(
                of.iter()
                    .all(|r| r["image_stats"].is_object() == (stream == "a")),
                "{name} {stream}"
            );
        }
    }
}

#[test]
fn live_test_source_with_slow_stage_stays_bounded_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "p.toml",
        r#"
version = 1
[[source]]
id = "cam"
kind = "test"
live = true
framerate = 100
width = 64
height = 48
max_frames = 40
[[stage]]
id = "slow"
kind = "delay"
delay_ms = 30.0
[[sink]]
kind = "jsonl"
path = "out.jsonl"
"#,
    );
    let s = run_with_summary(&p);
    let records = read_records(&dir.path().join("out.jsonl"));
    let count = |key: &str| -> u64 {
        s[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["count"].as_u64().unwrap())
            .sum()
    };
    // Live default: drop_oldest edges, latest-frame delivery, admission
    // control; nothing queues up. Frames are either dropped (lost) or
    // passed on without the slow stage's work (skipped), counted apart.
    assert!(count("drops") + count("skips") > 0, "{s}");
    assert_eq!(
        s["frames_out"].as_u64().unwrap() + count("drops")
            - s["drops"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["reason"] == "latest")
                .map(|d| d["count"].as_u64().unwrap())
                .sum::<u64>(),
        s["frames_in"].as_u64().unwrap(),
        "every frame delivered is written or dropped: {s}"
    );
    assert!(s["stages"][0]["max_queue_depth"].as_u64().unwrap() <= 4);
    assert!(
        records.iter().all(|r| r["capture_clock"] == "pipeline"),
        "live capture time from the pipeline clock"
    );
    // Newest-wins: output PTS keep increasing, skipping what was dropped.
    let pts: Vec<u64> = records.iter().map(|r| u64_field(r, "pts_ns")).collect();
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "{pts:?}");
}
