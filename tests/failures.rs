//! Broken inputs: a clear error, a non-zero exit, no panic, earlier records kept.

use std::path::Path;

use crate::util::*;

/// The decode-only pipeline keeps these tests about sources, not detectors.
fn run_default(input: &Path, out: &Path) -> Run {
    let default = repo().join("pipelines/decode-only.toml");
    run(&[
        "run",
        default.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
}

fn truncated_copy(src: &Path, dst: &Path, keep: f64) {
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(dst, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
}

#[test]
fn truncated_avi_fails_after_keeping_the_frames_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.avi");
    truncated_copy(&media("vtest.avi"), &cut, 0.4);
    let out = dir.path().join("out.jsonl");
    let run = run_default(&cut, &out);
    run.assert_code(2);
    assert!(
        run.stderr.contains("truncated or damaged"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cut.avi"),
        "names the file: {}",
        run.stderr
    );
    let records = read_records(&out);
    assert!(
        records.len() > 100 && records.len() < 795,
        "{} records",
        records.len()
    );
    assert_contiguous(&records);
}

#[test]
fn truncated_matroska_fails_after_keeping_the_frames_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.mkv");
    record_mkv(&full, 100, 160, 120, 25);
    let cut = dir.path().join("cut.mkv");
    truncated_copy(&full, &cut, 0.5);
    let out = dir.path().join("out.jsonl");
    let run = run_default(&cut, &out);
    run.assert_code(2);
    assert!(run.stderr.contains("stream ended at"), "{}", run.stderr);
    let records = read_records(&out);
    assert!(
        records.len() > 10 && records.len() < 100,
        "{} records",
        records.len()
    );
    assert_contiguous(&records);
}

#[test]
fn garbage_and_empty_files_name_the_failing_element() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.avi");
    // Deterministic noise that no type finder recognises.
    let noise: Vec<u8> = (0u32..200_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, noise).unwrap();
    let empty = dir.path().join("empty.avi");
    std::fs::write(&empty, b"").unwrap();
    for file in [&garbage, &empty] {
        let out = dir.path().join("out.jsonl");
        let run = run_default(file, &out);
        run.assert_code(2);
        assert!(
            run.stderr.contains("GStreamer element /GstPipeline"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("typefind"), "{}", run.stderr);
        assert_eq!(read_records(&out).len(), 0);
    }
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the output's folder should be.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let out = blocker.join("out.jsonl");
    let run = run_default(&media("vtest.avi"), &out);
    run.assert_code(1);
    assert!(run.stderr.contains("could not write"), "{}", run.stderr);
    assert!(run.stderr.contains("blocker"), "{}", run.stderr);
}
