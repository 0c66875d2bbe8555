//! Real-world inputs (issue 12): rotation metadata, multi-stream files,
//! frames without timestamps. Each case is rebuilt here (GStreamer, the
//! committed `tests/media/img1` sequence) or copied into `tests/`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// The committed image sequence: 20 JPEGs, 320x240, a 40x40 white square at
/// x = 20 + 8 k, y = 100 on frame k (`tests/media/imgseq_gt.txt`).
fn img1() -> String {
    repo()
        .join("tests/media/img1/%06d.jpg")
        .display()
        .to_string()
}

/// The square's box on frame `k` of `img1`, as coded: [x1, y1, x2, y2].
fn square_box(k: usize) -> [f64; 4] {
    let x = 20.0 + 8.0 * k as f64;
    [x, 100.0, x + 40.0, 140.0]
}

fn gst_launch(args: &str) {
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(args.split_whitespace())
        .status()
        .expect("gst-launch-1.0");
    assert!(status.success(), "gst-launch-1.0 {args}");
}

/// A display matrix as MP4 writes it (tkhd, 16.16 and 2.30 fixed point).
fn matrix(a: i32, b: i32, c: i32, d: i32) -> [u32; 9] {
    let f = |v: i32| (v * 0x10000) as u32;
    [f(a), f(b), 0, f(c), f(d), 0, 0, 0, 0x4000_0000]
}

/// Rewrites the display matrix of every track header (`tkhd`) of an MP4 file,
/// as phones do to mark a rotation.
fn set_display_matrix(path: &Path, m: [u32; 9]) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut patched = 0;
    while let Some(i) = bytes[at..].windows(4).position(|w| w == b"tkhd") {
        let start = at + i - 4; // box start (size field)
        let version = bytes[at + i + 4];
        let offset = start + if version == 0 { 48 } else { 60 };
        for (j, v) in m.iter().enumerate() {
            bytes[offset + 4 * j..offset + 4 * j + 4].copy_from_slice(&v.to_be_bytes());
        }
        patched += 1;
        at = at + i + 4;
    }
    assert!(patched > 0, "no tkhd in {}", path.display());
    std::fs::write(path, bytes).unwrap();
}

/// `img1` as an H.264 MP4 at 10 fps with display matrix `m`.
fn squares_mp4(path: &Path, m: [u32; 9]) {
    gst_launch(&format!(
        "multifilesrc location={} start-index=1 stop-index=20 caps=image/jpeg,framerate=10/1 ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast qp-min=0 qp-max=5 ! mp4mux ! filesink location={}",
        img1(),
        path.display()
    ));
    set_display_matrix(path, m);
}

/// The square detector (`tests/models/square_e2e.onnx`, end2end layout,
/// 320x320 input: the box of the bright pixels) on `source` (a TOML
/// `[[source]]` body), + `extra` stages; records to `out.jsonl` in `dir`.
fn detect_pipeline(dir: &Path, source: &str, extra: &str) -> std::path::PathBuf {
    let model = repo().join("tests/models/square_e2e.onnx");
    pipeline(
        dir,
        "p.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam"
{source}
[[stage]]
id = "detect"
kind = "detect"
layout = "end2end"
confidence = 0.25
[stage.model]
path = "{}"
provider = "cpu"
threads = 1
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
{extra}
[[sink]]
kind = "jsonl"
path = "out.jsonl"
"#,
            model.display()
        ),
    )
}

fn only_box(r: &Value) -> [f64; 4] {
    let d = r["detections"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{r}");
    let b = d[0]["bbox"].as_array().unwrap();
    [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap())
}

fn assert_near(got: [f64; 4], want: [f64; 4], what: &str) {
    for i in 0..4 {
        assert!(
            (got[i] - want[i]).abs() <= 2.0,
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

/// Runs the square detector on `source` and checks every frame's box against
/// the coded box moved by `upright` (coded box → box in the upright frame).
fn check_upright(
    source: &str,
    size: (u64, u64),
    orientation: &str,
    upright: impl Fn([f64; 4]) -> [f64; 4],
) {
    let dir = tempfile::tempdir().unwrap();
    let source = source.replace("DIR", &dir.path().display().to_string());
    let p = detect_pipeline(dir.path(), &source, "");
    run(&["run", p.to_str().unwrap()]).assert_code(0);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 20);
    for (k, r) in records.iter().enumerate() {
        assert_eq!((u64_field(r, "width"), u64_field(r, "height")), size, "{r}");
        assert_eq!(r["orientation"], orientation, "{r}");
        assert_near(only_box(r), upright(square_box(k)), &format!("frame {k}"));
    }
}

/// The case's `rot90.mp4`: 640x480 coded, a 90° display matrix (GStreamer:
/// `image-orientation=rotate-90`); delivered 480x640, as a player shows it.
#[test]
fn rot90_phone_video_is_delivered_upright_480x640() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("rot90.mp4");
    gst_launch(&format!(
        "videotestsrc num-buffers=30 pattern=smpte ! video/x-raw,width=640,height=480,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
        mp4.display()
    ));
    set_display_matrix(&mp4, matrix(0, 1, -1, 0));
    let out = dir.path().join("out.jsonl");
    let decode = repo().join("pipelines/decode-only.toml");
    run(&[
        "run",
        decode.to_str().unwrap(),
        "-i",
        mp4.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 30);
    for r in &records {
        assert_eq!(u64_field(r, "width"), 480, "{r}");
        assert_eq!(u64_field(r, "height"), 640, "{r}");
        assert_eq!(r["orientation"], "rotate-90", "{r}");
    }
    // A file without a display matrix has no orientation in its records.
    let plain = repo().join("tests/media/base.mp4");
    run(&[
        "run",
        decode.to_str().unwrap(),
        "-i",
        plain.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .assert_code(0);
    for r in read_records(&out) {
        assert_eq!(
            (u64_field(&r, "width"), u64_field(&r, "height")),
            (640, 480)
        );
        assert!(r.get("orientation").is_none(), "{r}");
    }
}

/// Content, not only size: a square seen by the detector in a rotated file
/// is where it is in the upright picture (clockwise for rotate-90).
#[test]
fn rotated_squares_are_detected_where_the_upright_picture_has_them() {
    for (m, name) in [
        (matrix(0, 1, -1, 0), "rotate-90"),
        (matrix(0, -1, 1, 0), "rotate-270"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mp4 = dir.path().join("squares.mp4");
        squares_mp4(&mp4, m);
        let source = format!("kind = \"file\"\nlocation = \"{}\"", mp4.display());
        // Coded 320x240: (x, y) goes to (239 - y, x) clockwise, (y, 319 - x) counter-clockwise.
        let turn: Box<dyn Fn([f64; 4]) -> [f64; 4]> = if name == "rotate-90" {
            Box::new(|b| [240.0 - b[3], b[0], 240.0 - b[1], b[2]])
        } else {
            Box::new(|b| [b[1], 320.0 - b[2], b[3], 320.0 - b[0]])
        };
        check_upright(&source, (240, 320), name, turn);
    }
}

/// A mirror: the orientation tag `flip-rotate-0` (as EXIF or a tagging
/// element sets it) flips frames horizontally.
#[test]
fn flip_tag_mirrors_frames_and_is_recorded() {
    let source = format!(
        "kind = \"gst\"\nlaunch = \"multifilesrc location={} start-index=1 stop-index=20 caps=image/jpeg,framerate=10/1 ! jpegdec ! taginject tags=image-orientation=flip-rotate-0\"",
        img1()
    );
    check_upright(&source, (320, 240), "flip-rotate-0", |b| {
        [320.0 - b[2], b[1], 320.0 - b[0], b[3]]
    });
}

const TRACK: &str = "[[stage]]\nid = \"track\"\nkind = \"track\"";

/// The case's JPEG folder read as MOTChallenge tools do: `multifilesrc` with
/// no frame rate gives frame 0 a timestamp and no other. Without a declared
/// rate the run stops at the first frame without one, naming what to set;
/// frames before it are kept.
#[test]
fn image_sequence_without_a_frame_rate_is_refused_naming_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "kind = \"gst\"\nlaunch = \"multifilesrc location={} start-index=1 caps=image/jpeg ! jpegdec\"",
        img1()
    );
    let p = detect_pipeline(dir.path(), &source, TRACK);
    let r = run(&["run", p.to_str().unwrap()]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("frame 1 has no timestamp"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("set `framerate = 25`"), "{}", r.stderr);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["time_source"], "pts");
}

/// Detection + tracking of the sequence with the rate declared in the
/// pipeline (`framerate = 10`) or carried by the caps: MOTA 1.0 against the
/// case's ground truth, and each frame says where its time came from.
#[test]
fn image_sequence_with_a_declared_or_caps_frame_rate_tracks_perfectly() {
    let gt = repo().join("tests/media/imgseq_gt.txt");
    for (source, clock) in [
        (
            format!(
                "kind = \"gst\"\nlaunch = \"multifilesrc location={} start-index=1 caps=image/jpeg ! jpegdec\"\nframerate = 10",
                img1()
            ),
            "framerate",
        ),
        (
            format!(
                "kind = \"gst\"\nlaunch = \"multifilesrc location={} start-index=1 caps=image/jpeg,framerate=10/1 ! jpegdec\"",
                img1()
            ),
            "pts",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = detect_pipeline(dir.path(), &source, TRACK);
        run(&["run", p.to_str().unwrap()]).assert_code(0);
        let out = dir.path().join("out.jsonl");
        let records = read_records(&out);
        assert_eq!(records.len(), 20);
        for (k, r) in records.iter().enumerate() {
            assert_eq!(u64_field(r, "pts_ns"), k as u64 * 100_000_000, "{r}");
            let want = if k == 0 { "pts" } else { clock };
            assert_eq!(r["time_source"], want, "{r}");
            assert_near(only_box(r), square_box(k), &format!("frame {k}"));
        }
        // 8 px a frame at 10 fps is 80 px/s (arrival times would give
        // thousands); the Kalman estimate converges towards it.
        let v = records[19]["tracks"][0]["velocity_px_s"][0]
            .as_f64()
            .unwrap();
        assert!((v - 80.0).abs() < 8.0, "velocity {v}");
        let m = eval_json(&gt, &out, &[]);
        assert_eq!(m["mota"].as_f64(), Some(1.0), "{m}");
        assert_eq!(m["idsw"].as_u64(), Some(0), "{m}");
    }
}

/// A second input of the kind, made here: a PNG sequence (no timestamps
/// after frame 0 either) with an NTSC rate declared as a fraction. Times are
/// exact per frame (k * 1001 / 30 ms), not accumulated periods.
#[test]
fn png_sequence_with_a_fractional_declared_rate_gets_exact_times() {
    let dir = tempfile::tempdir().unwrap();
    gst_launch(&format!(
        "multifilesrc location={} start-index=1 stop-index=20 caps=image/jpeg,framerate=10/1 ! jpegdec ! videoconvert ! pngenc ! multifilesink location={}/f%03d.png",
        img1(),
        dir.path().display()
    ));
    let source = format!(
        "kind = \"gst\"\nlaunch = \"multifilesrc location={}/f%03d.png caps=image/png ! pngdec\"\nframerate = \"30000/1001\"",
        dir.path().display()
    );
    let p = detect_pipeline(dir.path(), &source, TRACK);
    run(&["run", p.to_str().unwrap()]).assert_code(0);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 20);
    for (k, r) in records.iter().enumerate() {
        let want = k as u64 * 1_000_000_000 * 1001 / 30_000;
        assert_eq!(u64_field(r, "pts_ns"), want, "{r}");
        assert_near(only_box(r), square_box(k), &format!("frame {k}"));
        assert_eq!(r["tracks"][0]["id"].as_u64(), Some(1), "{r}");
    }
}

#[test]
fn a_bad_declared_frame_rate_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "\"25/0\"", "\"fast\""] {
        let p = pipeline(
            dir.path(),
            "bad.toml",
            &format!(
                "version = 1\n[[source]]\nid = \"s\"\nkind = \"gst\"\nlaunch = \"videotestsrc\"\nframerate = {bad}\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n"
            ),
        );
        let r = run(&["check", p.to_str().unwrap()]);
        r.assert_code(2);
        assert!(r.stderr.contains("framerate"), "{bad}: {}", r.stderr);
    }
}

/// Decodes `file` with the decode-only pipeline, with `--summary-json`.
fn decode(file: &Path) -> (Run, Vec<Value>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let summary = dir.path().join("summary.json");
    let decode = repo().join("pipelines/decode-only.toml");
    let r = run(&[
        "run",
        decode.to_str().unwrap(),
        "-i",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    let records = read_records(&out);
    let s = std::fs::read_to_string(&summary)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (r, records, s)
}

/// The case's `two_video_longer2nd.mkv`, rebuilt: a complete Matroska file
/// whose first video track has 30 frames (1 s) and second 90 (3 s). The
/// first track is read, all of it, and the file is not called truncated
/// because the container's duration is the second track's.
#[test]
fn two_video_tracks_the_first_shorter_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mkv = dir.path().join("two_video_longer2nd.mkv");
    gst_launch(&format!(
        "matroskamux name=m ! filesink location={} \
         videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc speed-preset=ultrafast ! queue ! m. \
         videotestsrc num-buffers=90 pattern=smpte ! video/x-raw,width=160,height=120,framerate=30/1 ! x264enc speed-preset=ultrafast ! queue ! m.",
        mkv.display()
    ));
    let (r, records, _) = decode(&mkv);
    r.assert_code(0);
    assert_eq!(records.len(), 30);
    assert_contiguous(&records);
    for rec in &records {
        assert_eq!(
            (u64_field(rec, "width"), u64_field(rec, "height")),
            (320, 240)
        );
    }
}

/// The same kind, made here: an MP4 whose audio (3 s) outlasts its video
/// (1 s), as screen recordings and trimmed clips have.
#[test]
fn video_shorter_than_its_audio_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("short_video_long_audio.mp4");
    gst_launch(&format!(
        "mp4mux name=m ! filesink location={} \
         videotestsrc num-buffers=30 ! video/x-raw,width=160,height=120,framerate=30/1 ! x264enc speed-preset=ultrafast ! queue ! m. \
         audiotestsrc num-buffers=150 samplesperbuffer=882 ! audio/x-raw,rate=44100 ! audioconvert ! avenc_aac ! queue ! m.",
        mp4.display()
    ));
    let (r, records, _) = decode(&mp4);
    r.assert_code(0);
    assert_eq!(records.len(), 30);
    assert_contiguous(&records);
}

/// Writes `frames` MJPEG frames (plus 2 s of audio when `audio`) to an AVI,
/// then sets its video header's frame counts (`avih.dwTotalFrames` and the
/// video `strh.dwLength`) to `declared`, as in OpenCV's `tree.avi`.
fn avi_declaring(path: &Path, frames: u32, declared: u32, audio: bool) {
    let audio = if audio {
        "audiotestsrc num-buffers=40 samplesperbuffer=1102 ! audio/x-raw,rate=22050,channels=1 ! queue ! m.".to_string()
    } else {
        String::new()
    };
    gst_launch(&format!(
        "avimux name=m ! filesink location={} {audio} videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=160,height=120,framerate=15/1 ! jpegenc ! queue ! m.",
        path.display()
    ));
    let mut b = std::fs::read(path).unwrap();
    let find = |b: &[u8], tag: &[u8], from: usize| {
        b[from..]
            .windows(4)
            .position(|w| w == tag)
            .map(|i| i + from)
    };
    let avih = find(&b, b"avih", 0).unwrap();
    b[avih + 24..avih + 28].copy_from_slice(&declared.to_le_bytes());
    let mut at = 0;
    let mut patched = false;
    while let Some(i) = find(&b, b"strh", at) {
        if &b[i + 8..i + 12] == b"vids" {
            assert_eq!(b[i + 40..i + 44], frames.to_le_bytes(), "dwLength");
            b[i + 40..i + 44].copy_from_slice(&declared.to_le_bytes());
            patched = true;
        }
        at = i + 4;
    }
    assert!(patched);
    std::fs::write(path, b).unwrap();
}

/// OpenCV's `tree.avi` declares 444 frames and decodes 68: a warning with
/// both figures, counted in the summary; every decodable frame, exit 0.
#[test]
fn avi_header_declaring_more_frames_than_decode_is_a_counted_warning() {
    let dir = tempfile::tempdir().unwrap();
    // The case, and one more made here: audio first, so the video's stream
    // header is the second.
    for (frames, declared, audio) in [(68, 444, false), (40, 300, true)] {
        let avi = dir.path().join(format!("declares{declared}.avi"));
        avi_declaring(&avi, frames, declared, audio);
        let (r, records, s) = decode(&avi);
        r.assert_code(0);
        assert_eq!(records.len(), frames as usize);
        assert_contiguous(&records);
        assert!(
            r.stderr.contains(&format!(
                "declares {declared} video frames but {frames} were decoded"
            )),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("warnings: 1 source"), "{}", r.stderr);
        assert_eq!(s["sources"][0]["declared_frames"], declared, "{s}");
        assert_eq!(s["short_sources"], 1, "{s}");
    }
    // A file whose header agrees has no warning.
    let avi = dir.path().join("agrees.avi");
    avi_declaring(&avi, 20, 20, false);
    let (r, _, s) = decode(&avi);
    r.assert_code(0);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert_eq!(s["short_sources"], 0, "{s}");
    assert!(s["sources"][0].get("declared_frames").is_none(), "{s}");
}

/// "250 frames in, 250 out, 10 dropped" with 10 skips was wrong: frames a
/// stage skipped (interval) still reach the output and are counted apart.
#[test]
fn summary_separates_stage_skips_from_dropped_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "p.toml",
        r#"
version = 1
[[source]]
id = "t"
kind = "test"
max_frames = 20
[[stage]]
id = "stats"
kind = "image_stats"
interval = 4
[[sink]]
kind = "jsonl"
path = "out.jsonl"
"#,
    );
    let summary = dir.path().join("s.json");
    let r = run(&[
        "run",
        p.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    r.assert_code(0);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 20);
    let skipped = records
        .iter()
        .filter(|r| r.get("image_stats").is_none())
        .count();
    assert_eq!(skipped, 15, "every 4th frame worked on");
    assert!(
        r.stderr
            .contains("20 frames in, 20 out, 0 dropped, 15 stage skips"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("skips: 15 interval at stage stats"),
        "{}",
        r.stderr
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["drops"], serde_json::json!([]), "{s}");
    assert_eq!(s["skips"][0]["reason"], "interval", "{s}");
    assert_eq!(s["skips"][0]["count"], 15, "{s}");
}
