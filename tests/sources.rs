//! Source kinds other than files, and row strides.

use crate::util::*;

#[test]
fn videotestsrc_source_delivers_the_requested_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "t.toml",
        r#"
version = 1
[[source]]
id = "pattern"
kind = "test"
pattern = "smpte"
width = 64
height = 48
framerate = 30
max_frames = 30
[[stage]]
id = "stats"
kind = "image_stats"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
"#,
    );
    run(&["run", p.to_str().unwrap()]).assert_code(0);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 30);
    assert_contiguous(&records);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["stream"], "pattern");
        assert_eq!(u64_field(r, "width"), 64);
        assert_eq!(u64_field(r, "pts_ns"), i as u64 * 1_000_000_000 / 30);
        // SMPTE bars hold both black-ish and full white: a real picture, not zeros.
        assert_eq!(r["image_stats"]["max"][0], 255);
    }
}

/// 33 px of RGB is 99 bytes; GStreamer pads rows to 100. A reader that ignores
/// the stride sees shifted pixels and the padding byte.
#[test]
fn odd_width_33x17_rgb_honours_row_stride() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "t.toml",
        r#"
version = 1
[[source]]
id = "solid"
kind = "gst"
launch = "videotestsrc pattern=solid-color foreground-color=0xff102030 num-buffers=3 ! video/x-raw,width=33,height=17"
[[source]]
id = "red"
kind = "test"
pattern = "red"
width = 33
height = 17
max_frames = 3
[[stage]]
id = "stats"
kind = "image_stats"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
"#,
    );
    run(&["run", p.to_str().unwrap()]).assert_code(0);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 6);
    for r in &records {
        assert_eq!(u64_field(r, "width"), 33);
        assert_eq!(u64_field(r, "height"), 17);
        let expected: [u64; 3] = if r["stream"] == "solid" {
            [0x10, 0x20, 0x30]
        } else {
            [255, 0, 0]
        };
        let stats = &r["image_stats"];
        for c in 0..3 {
            assert_eq!(stats["min"][c].as_u64(), Some(expected[c]), "{r}");
            assert_eq!(stats["max"][c].as_u64(), Some(expected[c]), "{r}");
            assert_eq!(stats["mean"][c].as_f64(), Some(expected[c] as f64), "{r}");
        }
    }
}

#[test]
fn every_example_pipeline_passes_check() {
    let dir = repo().join("pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let run = run(&["check", path.to_str().unwrap()]);
            run.assert_code(0);
            assert!(
                run.stdout.contains(": OK"),
                "{}: {}",
                path.display(),
                run.stdout
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "expected an example per source kind, found {checked}"
    );
}
