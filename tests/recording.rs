//! The main job's recording, end to end through the real binary.

use std::process::Command;

use crate::util::*;

/// What `gst-discoverer-1.0` reports for a file: duration (ns), width, height, frame rate.
fn discover(path: &std::path::Path) -> (u64, u64, u64, (u64, u64)) {
    let out = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no `{name}` in discoverer output:\n{text}"))
    };
    // Duration: 0:01:19.500000000
    let d = field("Duration:");
    let parts: Vec<&str> = d.split(':').collect();
    let (h, m, s): (u64, u64, f64) = (
        parts[0].parse().unwrap(),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
    );
    let duration_ns = (h * 3600 + m * 60) * 1_000_000_000 + (s * 1e9).round() as u64;
    let rate = field("Frame rate:");
    let (num, den) = rate.split_once('/').unwrap();
    (
        duration_ns,
        field("Width:").parse().unwrap(),
        field("Height:").parse().unwrap(),
        (num.parse().unwrap(), den.parse().unwrap()),
    )
}

#[test]
fn vtest_gives_one_record_per_frame_matching_discoverer() {
    let vtest = media("vtest.avi");
    let (duration_ns, width, height, (num, den)) = discover(&vtest);
    let expected_frames = duration_ns * num / (den * 1_000_000_000);
    assert_eq!(
        expected_frames, 795,
        "discoverer disagrees with the known sample"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let default = repo().join("pipelines/default.toml");
    let run = run(&[
        "run",
        default.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    run.assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len() as u64, expected_frames);
    assert_contiguous(&records);
    let frame_ns = den * 1_000_000_000 / num;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(u64_field(r, "pts_ns"), i as u64 * frame_ns, "record {i}");
        assert_eq!(u64_field(r, "width"), width);
        assert_eq!(u64_field(r, "height"), height);
        assert_eq!(r["format"], "RGB");
        assert_eq!(r["stream"], "cam0");
        assert_eq!(u64_field(r, "v"), 1);
        assert!(u64_field(r, "latency_ns") > 0);
        assert!(u64_field(r, "capture_wall_ns") <= u64_field(r, "emit_wall_ns"));
        let mean = r["image_stats"]["mean"]
            .as_array()
            .expect("image_stats.mean");
        assert_eq!(mean.len(), 3);
    }
    let last = records.last().unwrap();
    assert_eq!(
        u64_field(last, "pts_ns") + u64_field(last, "duration_ns"),
        duration_ns
    );
    assert!(
        run.stderr.contains("795 frames in, 795 out, 0 dropped"),
        "summary:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("stage  stats"),
        "per-stage latency in summary:\n{}",
        run.stderr
    );
    crate::coco::check_people_on_vtest(&records);
    check_golden_tracks(&out);
}

/// The recorded regression of the main job's tracks: the run is scored with
/// `percept eval` against `tests/golden/vtest_tracks.jsonl` (confirmed tracks
/// of a blessed run) and must agree within tolerances. `PERCEPT_BLESS=1`
/// rewrites the golden file from this run when a change is intended.
fn check_golden_tracks(out: &std::path::Path) {
    let golden = repo().join("tests/golden/vtest_tracks.jsonl");
    let run = percept::eval::read_tracks(out, false, None).unwrap();
    if std::env::var_os("PERCEPT_BLESS").is_some() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PERCEPT_BLESS is refused under CI: bless on a developer machine and commit the file"
        );
        let lines: String = run
            .iter()
            .map(|(seq, objs)| {
                let objects: Vec<serde_json::Value> = objs
                    .iter()
                    .map(|o| serde_json::json!({"id": o.id, "bbox": o.bbox.map(|v| (f64::from(v) * 10.0).round() / 10.0)}))
                    .collect();
                format!("{}\n", serde_json::json!({"seq": seq, "objects": objects}))
            })
            .collect();
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, lines).unwrap();
        eprintln!("blessed {}", golden.display());
        return;
    }
    let expected = percept::eval::read_tracks(&golden, true, None)
        .unwrap_or_else(|e| panic!("{e} (PERCEPT_BLESS=1 writes it)"));
    // The pipeline is deterministic (the same model, threads and decoder give
    // the same boxes), so the blessed run is matched box for box: at IoU 0.9
    // (the file rounds to 0.1 px), no identity change, and at most 0.5 % of
    // boxes off (about 20 of 4095: float differences of another CPU's ONNX
    // Runtime kernels flipping a borderline score).
    let m = percept::eval::evaluate(&expected, &run, 0.9);
    assert!(
        m.idsw == 0 && m.mota >= 0.995 && m.idf1 >= 0.995,
        "tracks drifted from {}: {m:?}",
        golden.display()
    );
    // Track count within 20 % of the blessed run.
    let (want, got) = (m.gt_ids as f64, m.pred_ids as f64);
    assert!(
        (got - want).abs() <= 0.2 * want,
        "{got} tracks, blessed run had {want}"
    );
}

#[test]
fn input_override_runs_the_same_pipeline_on_another_recording() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    record_mkv(&clip, 25, 160, 120, 25);
    let out = dir.path().join("out.jsonl");
    let default = repo().join("pipelines/default.toml");
    run(&[
        "run",
        default.to_str().unwrap(),
        "--input",
        clip.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 25);
    assert_contiguous(&records);
    assert_eq!(u64_field(&records[0], "width"), 160);
    assert_eq!(u64_field(&records[24], "pts_ns"), 24 * 40_000_000);
}

#[test]
fn output_dash_writes_json_lines_to_stdout_and_the_summary_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    record_mkv(&clip, 10, 64, 48, 10);
    let default = repo().join("pipelines/default.toml");
    let run = run(&[
        "run",
        default.to_str().unwrap(),
        "--input",
        clip.to_str().unwrap(),
        "--output",
        "-",
    ]);
    run.assert_code(0);
    let records = parse_records(&run.stdout);
    assert_eq!(records.len(), 10);
    assert_contiguous(&records);
    assert!(
        run.stderr.contains("10 frames in, 10 out"),
        "{}",
        run.stderr
    );
}

#[test]
fn too_many_inputs_for_the_sources_is_a_usage_error() {
    let vtest = media("vtest.avi");
    let default = repo().join("pipelines/default.toml");
    let v = vtest.to_str().unwrap();
    let run = run(&["run", default.to_str().unwrap(), "-i", v, "-i", v]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("2 --input given but the pipeline has 1 source"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_uri_goes_through_uridecodebin() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    record_mkv(&clip, 12, 96, 64, 12);
    let out = dir.path().join("out.jsonl");
    let decode_only = repo().join("pipelines/decode-only.toml");
    let uri = format!("file://{}", clip.display());
    let run = run(&[
        "run",
        decode_only.to_str().unwrap(),
        "-i",
        &uri,
        "-o",
        out.to_str().unwrap(),
    ]);
    run.assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 12);
    assert_contiguous(&records);
    let check = crate::util::run(&["check", decode_only.to_str().unwrap(), "-i", &uri]);
    assert!(check.stdout.contains("uridecodebin"), "{}", check.stdout);
}
