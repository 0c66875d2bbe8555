//! Tracking end to end (detect + track through the real binary) and `percept eval`.

use serde_json::Value;

use crate::util::*;

/// The track of `class` in a record (the squares have one each).
fn track_of_class<'a>(record: &'a Value, class: &str) -> &'a Value {
    record["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["class"] == class))
        .unwrap_or_else(|| panic!("no {class} track in {record}"))
}

#[test]
fn squares_keep_one_stable_id_each_and_eval_scores_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tracks.jsonl");
    let p = repo().join("pipelines/tracking.toml");
    run(&["run", p.to_str().unwrap(), "-o", out.to_str().unwrap()]).assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 40);
    // Same class, same square, same id on every frame; ids 1..3, never reused.
    let mut by_class: std::collections::HashMap<String, u64> = Default::default();
    for r in &records {
        let tracks = r["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), 3, "{r}");
        for t in tracks {
            assert_eq!(t["state"], "confirmed");
            assert_eq!(t["predicted"], false);
            let id = t["id"].as_u64().unwrap();
            let class = t["class"].as_str().unwrap().to_string();
            assert_eq!(*by_class.entry(class).or_insert(id), id, "{t}");
        }
    }
    let mut ids: Vec<u64> = by_class.values().copied().collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3]);
    // The red square moves 5 px per frame at 10 fps: 50 px/s.
    let red = track_of_class(&records[20], "red");
    assert!(
        (red["velocity_px_s"][0].as_f64().unwrap() - 50.0).abs() < 3.0,
        "{red}"
    );
    assert!((red["age_s"].as_f64().unwrap() - 2.0).abs() < 1e-6);

    let m = eval_json(&repo().join("tests/media/squares.gt.jsonl"), &out, &[]);
    for key in [
        "mota",
        "idf1",
        "idsw",
        "frag",
        "fp",
        "fn",
        "precision",
        "recall",
    ] {
        assert!(m.get(key).is_some(), "--json lacks `{key}`: {m}");
    }
    assert_eq!(
        (m["mota"].as_f64(), m["idf1"].as_f64(), m["idsw"].as_u64()),
        (Some(1.0), Some(1.0), Some(0)),
        "{m}"
    );
}

#[test]
fn eval_reads_motchallenge_text_and_json_lines_alike() {
    // The crossing ground truth in both formats scores perfectly against itself.
    let media = repo().join("tests/media");
    let txt = media.join("crossing.gt.txt");
    let jsonl = media.join("crossing.gt.jsonl");
    let eval = |gt: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--gt",
            gt.to_str().unwrap(),
            "--pred",
            jsonl.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = eval(&txt, &[]);
    r.assert_code(0);
    assert!(
        r.stdout.contains("MOTA         100.0 %") && r.stdout.contains("IDF1         100.0 %"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("2 objects in 90 boxes"), "{}", r.stdout);
    // A broken file is bad input, named with its line.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "1,1,0,0,10,10\nnot,a,row\n").unwrap();
    let r = eval(&bad, &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("bad.txt") && r.stderr.contains("line 2"),
        "{}",
        r.stderr
    );
    // Empty ground truth: the metrics are undefined, not 0.
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let r = eval(&empty, &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("empty.txt") && r.stderr.contains("MOTA, IDF1 and recall are undefined"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // Extrapolating to a scored instant needs streaming evaluation.
    let r = eval(&txt, &["--extrapolate"]);
    r.assert_code(2);
    assert!(r.stderr.contains("--streaming"), "{}", r.stderr);
}

#[test]
fn tracks_carry_forecasts_that_streaming_eval_reads_and_a_bad_horizon_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tracks.jsonl");
    let text = std::fs::read_to_string(repo().join("pipelines/tracking.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{}/", repo().display()));
    let with = |line: &str| text.replace("confirm_s = 0.0", &format!("confirm_s = 0.0\n{line}"));
    let p = pipeline(dir.path(), "forecast.toml", &with("forecast_s = 0.2"));
    run(&["run", p.to_str().unwrap(), "-o", out.to_str().unwrap()]).assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 40);
    // The red square moves 50 px/s: its forecast is 10 px on, 0.2 s ahead.
    let red = track_of_class(&records[20], "red");
    assert_eq!(red["forecast"]["after_ns"], 200_000_000, "{red}");
    let (x, ahead) = (
        red["bbox"][0].as_f64().unwrap(),
        red["forecast"]["bbox"][0].as_f64().unwrap(),
    );
    assert!((ahead - x - 10.0).abs() < 1.0, "{red}");
    // Scored per frame, the boxes at capture are what count.
    let gt = repo().join("tests/media/squares.gt.jsonl");
    assert_eq!(eval_json(&gt, &out, &[])["mota"], 1.0);
    // Paced like a camera, forecast to the next frame ("auto"): each frame
    // is scored against the previous frame's record, whose forecast boxes
    // are where the squares are by then (5 px a frame on 24 to 36 px boxes:
    // a frame's lag alone is below IoU 0.85).
    let paced =
        with("forecast_s = \"auto\"").replace("location = ", "realtime = true\nlocation = ");
    let p = pipeline(dir.path(), "paced.toml", &paced);
    run(&["run", p.to_str().unwrap(), "-o", out.to_str().unwrap()]).assert_code(0);
    let records = read_records(&out);
    let after_ns = records[20]["tracks"][0]["forecast"]["after_ns"]
        .as_u64()
        .unwrap();
    assert!(
        after_ns >= 100_000_000 && after_ns.is_multiple_of(100_000_000),
        "{after_ns}"
    );
    let tp = |extra: &[&str]| {
        let mut args = vec!["--streaming", "--iou", "0.85"];
        args.extend_from_slice(extra);
        eval_json(&gt, &out, &args)["tp"].as_u64().unwrap()
    };
    let (forecast, boxes) = (tp(&[]), tp(&["--no-forecast"]));
    assert!(forecast > boxes + 60, "{forecast} against {boxes} of 120");
    // A horizon that is not seconds or "auto" names the file and field.
    let bad = pipeline(dir.path(), "bad.toml", &with("forecast_s = \"soon\""));
    let r = run(&["run", bad.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("tracker.forecast_s"),
        "{}",
        r.stderr
    );
}

/// Runs `pipeline` (on `input` when given) and scores it against the crossing ground truth.
fn crossing_scores(pipeline: &str, input: Option<&str>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tracks.jsonl");
    let p = repo().join(pipeline);
    let mut args = vec!["run", p.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let media = input.map(|i| repo().join(i));
    if let Some(m) = &media {
        args.extend(["--input", m.to_str().unwrap()]);
    }
    run(&args).assert_code(0);
    assert_eq!(read_records(&out).len(), 45);
    eval_json(&repo().join("tests/media/crossing.gt.txt"), &out, &[])
}

#[test]
fn appearance_keeps_identities_where_motion_alone_swaps_them() {
    // Two squares of one class (deep red, orange) meet; the red one waits hidden
    // behind the orange one, then both turn back. Motion predicts them through
    // each other; the colour embedding knows better.
    let motion = crossing_scores("pipelines/tracking.toml", Some("tests/media/crossing.mkv"));
    let reid = crossing_scores("pipelines/tracking-reid.toml", None);
    assert!(
        motion["idsw"].as_u64().unwrap() >= 1,
        "motion only: {motion}"
    );
    assert_eq!(reid["idsw"], 0, "with re-ID: {reid}");
    assert!(reid["idf1"].as_f64().unwrap() >= 0.95, "with re-ID: {reid}");
    assert!(reid["mota"].as_f64().unwrap() >= 0.9, "with re-ID: {reid}");
    assert!(
        reid["idf1"].as_f64().unwrap() > motion["idf1"].as_f64().unwrap() + 0.2,
        "re-ID {reid} against motion only {motion}"
    );
}
