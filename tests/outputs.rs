//! Issue 13: outputs beside JSON Lines. Each run writes JSON Lines too, and
//! the other output is read back with a real reader and compared with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foxglove::Decode;
use foxglove::schemas::{
    CameraCalibration, CompressedImage, FrameTransforms, ImageAnnotations, RawImage, SceneUpdate,
};
use serde_json::Value;

use crate::util::*;

/// The main job (NanoDet-m + ByteTrack on vtest.avi), `frames` frames, with
/// a JSON Lines sink and `extra` sink tables.
fn main_job(dir: &Path, frames: u32, extra: &str) -> (PathBuf, PathBuf) {
    let jsonl = dir.join("out.jsonl");
    let p = pipeline(
        dir,
        "job.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{video}"
format = "RGB"
max_frames = {frames}
[[stage]]
id = "detect"
kind = "detect"
layout = "nanodet"
confidence = 0.1
classes = [0, 1, 2, 3, 5, 7]
[stage.model]
path = "{model}"
threads = 2
[[stage]]
id = "tracks"
kind = "track"
[[sink]]
kind = "jsonl"
path = "{jsonl}"
{extra}
"#,
            video = media("vtest.avi").display(),
            model = repo().join("models/nanodet-m-416.onnx").display(),
            jsonl = jsonl.display(),
        ),
    );
    (p, jsonl)
}

struct Msg {
    topic: String,
    schema: String,
    encoding: String,
    log_time: u64,
    data: Vec<u8>,
}

/// Every message of an MCAP file; with `recover`, the messages before the
/// first damaged record of a file without its end (a killed writer).
fn read_mcap(path: &Path, recover: bool) -> Vec<Msg> {
    let bytes = std::fs::read(path).unwrap();
    let stream = if recover {
        mcap::MessageStream::new_with_options(&bytes, mcap::read::Options::IgnoreEndMagic.into())
    } else {
        mcap::MessageStream::new(&bytes)
    }
    .unwrap();
    let mut out = Vec::new();
    for m in stream {
        let m = match m {
            Ok(m) => m,
            Err(e) if recover => {
                eprintln!("stopped at: {e}");
                break;
            }
            Err(e) => panic!("{}: {e}", path.display()),
        };
        out.push(Msg {
            topic: m.channel.topic.clone(),
            schema: m
                .channel
                .schema
                .as_ref()
                .map_or(String::new(), |s| s.name.clone()),
            encoding: m.channel.message_encoding.clone(),
            log_time: m.log_time,
            data: m.data.into_owned(),
        });
    }
    out
}

/// The boxes of a record as the sinks draw them: tracks, `[x1, y1, x2, y2]` as f32.
fn record_boxes(record: &Value) -> Vec<(Vec<f32>, u64, bool)> {
    record["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["bbox"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect(),
                t["id"].as_u64().unwrap(),
                t["predicted"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn mcap_holds_foxglove_channels_equal_to_the_jsonl_records() {
    let dir = tempfile::tempdir().unwrap();
    let mcap_path = dir.path().join("run.mcap");
    let (p, jsonl) = main_job(
        dir.path(),
        30,
        &format!(
            "[[sink]]\nkind = \"mcap\"\npath = \"{}\"\n",
            mcap_path.display()
        ),
    );
    run(&["run", p.to_str().unwrap()]).assert_code(0);
    let records = read_records(&jsonl);
    assert_eq!(records.len(), 30);
    assert!(
        records.iter().any(|r| !record_boxes(r).is_empty()),
        "the tracker found nothing: the comparison would be empty"
    );

    let bytes = std::fs::read(&mcap_path).unwrap();
    // Indexed: a summary with chunk indexes (zstd) and per-channel counts.
    let summary = mcap::Summary::read(&bytes)
        .unwrap()
        .expect("a summary section");
    assert!(!summary.chunk_indexes.is_empty());
    assert!(
        summary
            .chunk_indexes
            .iter()
            .all(|c| c.compression == "zstd")
    );
    // Message indexes, for seeking: every chunk indexes the channels it holds
    // (a chunk closed by size mid-frame may hold only some of the three), and
    // together they index all three.
    assert!(
        summary
            .chunk_indexes
            .iter()
            .all(|c| (1..=3).contains(&c.message_index_offsets.len()))
    );
    let indexed: std::collections::BTreeSet<u16> = summary
        .chunk_indexes
        .iter()
        .flat_map(|c| c.message_index_offsets.keys().copied())
        .collect();
    assert_eq!(indexed.len(), 3, "{indexed:?}");
    let stats = summary.stats.expect("statistics");
    assert_eq!(stats.message_count, 3 * 30);
    assert_eq!(stats.channel_count, 3);

    let messages = read_mcap(&mcap_path, false);
    let mut topics: BTreeMap<&str, (&str, &str, Vec<&Msg>)> = BTreeMap::new();
    for m in &messages {
        topics
            .entry(&m.topic)
            .or_insert((&m.schema, &m.encoding, Vec::new()))
            .2
            .push(m);
    }
    let names: Vec<(&str, &str, &str)> = topics.iter().map(|(t, (s, e, _))| (*t, *s, *e)).collect();
    assert_eq!(
        names,
        [
            ("/cam0/annotations", "foxglove.ImageAnnotations", "protobuf"),
            ("/cam0/image", "foxglove.CompressedImage", "protobuf"),
            ("/cam0/record", "percept.Record", "json"),
        ]
    );
    for (topic, (_, _, msgs)) in &topics {
        assert_eq!(msgs.len(), records.len(), "{topic}: one message per frame");
        // Log time = the frame's wall-clock capture time, as in the record.
        for (m, r) in msgs.iter().zip(&records) {
            assert_eq!(m.log_time, u64_field(r, "capture_wall_ns"), "{topic}");
        }
    }

    let (_, _, record_msgs) = &topics["/cam0/record"];
    for (m, r) in record_msgs.iter().zip(&records) {
        let v: Value = serde_json::from_slice(&m.data).unwrap();
        // The same record, but for the output time of each sink.
        for key in ["seq", "capture_ns", "detections", "tracks", "pts_ns"] {
            assert_eq!(v[key], r[key], "{key}");
        }
    }

    let (_, _, ann_msgs) = &topics["/cam0/annotations"];
    for (m, r) in ann_msgs.iter().zip(&records) {
        let ann = ImageAnnotations::decode(m.data.as_slice()).unwrap();
        assert_eq!(ann.points.len(), ann.texts.len());
        let got: Vec<(Vec<f32>, u64, bool)> = ann
            .points
            .iter()
            .map(|p| {
                assert_eq!(p.points.len(), 4);
                let meta = |k: &str| {
                    p.metadata
                        .iter()
                        .find(|kv| kv.key == k)
                        .map(|kv| kv.value.clone())
                        .unwrap()
                };
                let predicted: bool = meta("predicted").parse().unwrap();
                // Predicted boxes are drawn apart: thinner.
                assert_eq!(p.thickness, if predicted { 1.0 } else { 3.0 });
                (
                    vec![
                        p.points[0].x as f32,
                        p.points[0].y as f32,
                        p.points[2].x as f32,
                        p.points[2].y as f32,
                    ],
                    meta("track_id").parse().unwrap(),
                    predicted,
                )
            })
            .collect();
        assert_eq!(got, record_boxes(r), "seq {}", r["seq"]);
    }

    let (_, _, image_msgs) = &topics["/cam0/image"];
    for m in image_msgs.iter().step_by(10) {
        let image = CompressedImage::decode(m.data.as_slice()).unwrap();
        assert_eq!(image.format, "jpeg");
        let buf = opencv::core::Vector::<u8>::from_slice(&image.data);
        let decoded = opencv::imgcodecs::imdecode(&buf, opencv::imgcodecs::IMREAD_COLOR).unwrap();
        use opencv::prelude::*;
        assert_eq!((decoded.cols(), decoded.rows()), (768, 576));
    }
}

/// Messages of one topic, grouped.
fn by_topic(messages: &[Msg]) -> BTreeMap<&str, Vec<&Msg>> {
    let mut topics: BTreeMap<&str, Vec<&Msg>> = BTreeMap::new();
    for m in messages {
        topics.entry(&m.topic).or_default().push(m);
    }
    topics
}

#[test]
fn mcap_of_a_stereo_run_has_its_calibration_objects_and_depth() {
    // The synthetic pair: two squares at known depths, detected, tracked and
    // placed by stereo_depth.
    let dir = tempfile::tempdir().unwrap();
    let text = example_pipeline("stereo-objects.toml");
    let mcap_path = dir.path().join("so.mcap");
    let jsonl = dir.path().join("so.jsonl");
    let p = pipeline(
        dir.path(),
        "so.toml",
        &format!(
            "{text}\n[[sink]]\nkind = \"mcap\"\npath = \"{}\"\n",
            mcap_path.display()
        ),
    );
    run(&["run", p.to_str().unwrap(), "-o", jsonl.to_str().unwrap()]).assert_code(0);
    let records = read_records(&jsonl);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    let messages = read_mcap(&mcap_path, false);
    let topics = by_topic(&messages);
    let names: Vec<(&str, &str)> = topics
        .iter()
        .map(|(t, m)| (*t, m[0].schema.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("/pair/annotations", "foxglove.ImageAnnotations"),
            ("/pair/calibration", "foxglove.CameraCalibration"),
            ("/pair/depth", "foxglove.RawImage"),
            ("/pair/image", "foxglove.CompressedImage"),
            ("/pair/objects", "foxglove.SceneUpdate"),
            ("/pair/record", "percept.Record"),
            ("/pair/transform", "foxglove.FrameTransforms"),
        ]
    );
    for (topic, msgs) in &topics {
        assert_eq!(msgs.len(), 1, "{topic}");
        assert_eq!(msgs[0].log_time, u64_field(record, "capture_wall_ns"));
    }

    // The calibration file's left camera; this pair is already rectified.
    let cal: toml::Table =
        std::fs::read_to_string(repo().join("calibration/synthetic_400x300.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let k_file: Vec<f64> = cal["left"]["camera_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_float().unwrap())
        })
        .collect();
    let c = CameraCalibration::decode(topics["/pair/calibration"][0].data.as_slice()).unwrap();
    assert_eq!((c.width, c.height), (400, 300));
    assert_eq!(c.frame_id, "pair/camera");
    assert_eq!(c.k, k_file);
    assert_eq!(c.distortion_model, "plumb_bob");
    assert_eq!(c.d, [0.0; 5]);

    // One box per track with a position, where the record puts it, as wide
    // as its image box at its depth (fx from the depth map's camera).
    let scene = SceneUpdate::decode(topics["/pair/objects"][0].data.as_slice()).unwrap();
    let tracks = record["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{record}");
    assert_eq!(scene.entities.len(), tracks.len());
    let fx = record["depth"]["camera"]["k"][0][0].as_f64().unwrap();
    for (e, t) in scene.entities.iter().zip(tracks) {
        assert_eq!(e.id, t["id"].to_string());
        assert_eq!(e.frame_id, "pair/camera_rect");
        let cube = &e.cubes[0];
        let pos = cube.pose.as_ref().unwrap().position.as_ref().unwrap();
        let want: Vec<f64> = t["position_m"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (got, want) in [pos.x, pos.y, pos.z].iter().zip(&want) {
            assert!((got - want).abs() < 1e-5, "{pos:?} vs {want:?}");
        }
        let b: Vec<f64> = t["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let width_m = (b[2] - b[0]) * want[2] / fx;
        assert!(
            (cube.size.as_ref().unwrap().x - width_m).abs() < 1e-4,
            "{:?} vs {width_m}",
            cube.size
        );
    }
    let tf = FrameTransforms::decode(topics["/pair/transform"][0].data.as_slice()).unwrap();
    let frames: Vec<(&str, &str)> = tf
        .transforms
        .iter()
        .map(|t| (t.parent_frame_id.as_str(), t.child_frame_id.as_str()))
        .collect();
    assert_eq!(
        frames,
        [("pair", "pair/camera"), ("pair/camera", "pair/camera_rect")]
    );

    // Depth in millimetres where the record places the first track.
    let depth = RawImage::decode(topics["/pair/depth"][0].data.as_slice()).unwrap();
    assert_eq!(
        (
            depth.width,
            depth.height,
            depth.encoding.as_str(),
            depth.step
        ),
        (400, 300, "16UC1", 800)
    );
    let t = &tracks[0];
    let (u, v) = (
        ((t["bbox"][0].as_f64().unwrap() + t["bbox"][2].as_f64().unwrap()) / 2.0) as usize,
        ((t["bbox"][1].as_f64().unwrap() + t["bbox"][3].as_f64().unwrap()) / 2.0) as usize,
    );
    let i = (v * 400 + u) * 2;
    let mm = f64::from(u16::from_le_bytes([depth.data[i], depth.data[i + 1]]));
    let z_m = t["position_m"][2].as_f64().unwrap();
    assert!((mm / 1000.0 - z_m).abs() < 0.05 * z_m, "{mm} mm vs {z_m} m");
}

#[test]
fn mcap_calibration_of_a_distorted_pair_is_opencvs_rectification() {
    // OpenCV's sample chessboard pair and its calibration (distortion, a
    // small rotation between the cameras): `R` and `P` must be what
    // OpenCV's stereoRectify gives (alpha 0, zero disparity), computed here.
    let dir = tempfile::tempdir().unwrap();
    let cal_path = repo().join("calibration/opencv_sample_stereo.toml");
    let mcap_path = dir.path().join("cal.mcap");
    let p = pipeline(
        dir.path(),
        "cal.toml",
        &format!(
            r#"version = 1
[[source]]
id = "l"
kind = "file"
location = "{l}"
[[source]]
id = "r"
kind = "file"
location = "{r}"
[[stereo]]
id = "pair"
left = "l"
right = "r"
[[stage]]
id = "depth"
kind = "stereo_depth"
calibration = "{cal}"
[[sink]]
kind = "mcap"
path = "{mcap}"
images = "none"
"#,
            l = media("left01.jpg").display(),
            r = media("right01.jpg").display(),
            cal = cal_path.display(),
            mcap = mcap_path.display(),
        ),
    );
    run(&["run", p.to_str().unwrap(), "-o", "-"]).assert_code(0);
    let messages = read_mcap(&mcap_path, false);
    let topics = by_topic(&messages);
    let c = CameraCalibration::decode(topics["/pair/calibration"][0].data.as_slice()).unwrap();

    use opencv::core::{Mat, Size};
    use opencv::prelude::*;
    let cal: toml::Table = std::fs::read_to_string(&cal_path).unwrap().parse().unwrap();
    fn floats(v: &toml::Value) -> Vec<f64> {
        match v {
            toml::Value::Array(a) => a.iter().flat_map(floats).collect(),
            other => vec![other.as_float().unwrap()],
        }
    }
    let mat = |v: Vec<f64>, rows: i32| -> Mat {
        Mat::new_rows_cols_with_data(rows, v.len() as i32 / rows, &v)
            .unwrap()
            .try_clone()
            .unwrap()
    };
    let k1 = floats(&cal["left"]["camera_matrix"]);
    let d1 = floats(&cal["left"]["distortion"]);
    let (mut r1, mut r2, mut p1, mut p2, mut q) = (
        Mat::default(),
        Mat::default(),
        Mat::default(),
        Mat::default(),
        Mat::default(),
    );
    opencv::calib3d::stereo_rectify(
        &mat(k1.clone(), 3),
        &mat(d1.clone(), 1),
        &mat(floats(&cal["right"]["camera_matrix"]), 3),
        &mat(floats(&cal["right"]["distortion"]), 1),
        Size::new(640, 480),
        &mat(floats(&cal["right_from_left"]["rotation"]), 3),
        &mat(floats(&cal["right_from_left"]["translation_m"]), 3),
        &mut r1,
        &mut r2,
        &mut p1,
        &mut p2,
        &mut q,
        opencv::calib3d::CALIB_ZERO_DISPARITY,
        0.0,
        Size::new(640, 480),
        None,
        None,
    )
    .unwrap();
    let flat = |m: &Mat| -> Vec<f64> { m.data_typed::<f64>().unwrap().to_vec() };
    assert_eq!((c.width, c.height), (640, 480));
    assert_eq!(c.distortion_model, "plumb_bob");
    assert_eq!(c.d, d1);
    assert_eq!(c.k, k1);
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() < 1e-9 * (1.0 + y.abs()))
    };
    assert!(close(&c.r, &flat(&r1)), "{:?} vs {:?}", c.r, flat(&r1));
    assert!(close(&c.p, &flat(&p1)), "{:?} vs {:?}", c.p, flat(&p1));
    // Not the identity: the test would not catch R and P left out.
    assert!((c.r[1]).abs() > 1e-4, "{:?}", c.r);
}

/// Runs vtest.avi through a 10 ms delay into one sink (`kind`, writing
/// `out`), and SIGKILLs percept once `out` holds `bytes` bytes.
fn kill_midway(dir: &Path, kind: &str, out: &Path, bytes: u64) {
    let p = pipeline(
        dir,
        "slow.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{}"
format = "RGB"
[[stage]]
id = "slow"
kind = "delay"
delay_ms = 10.0
[[sink]]
kind = "{kind}"
path = "{}"
"#,
            media("vtest.avi").display(),
            out.display()
        ),
    );
    let mut child = percept()
        .args(["run", p.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::metadata(out).map_or(0, |m| m.len()) < bytes {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{kind}: no output"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "{kind}: ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

#[test]
fn mcap_of_a_killed_run_still_yields_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mcap_path = dir.path().join("killed.mcap");
    // Some chunks on disk (1 MiB of JPEGs each), then SIGKILL.
    kill_midway(dir.path(), "mcap", &mcap_path, 3 << 20);

    let bytes = std::fs::read(&mcap_path).unwrap();
    assert!(
        mcap::MessageStream::new(&bytes)
            .unwrap()
            .any(|m| m.is_err()),
        "a killed file has no end: a strict reader must fail"
    );
    let messages = read_mcap(&mcap_path, true);
    let seqs: Vec<u64> = messages
        .iter()
        .filter(|m| m.topic == "/cam0/record")
        .map(|m| {
            serde_json::from_slice::<Value>(&m.data).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(seqs.len() >= 10, "{} records recovered", seqs.len());
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    let images = messages.iter().filter(|m| m.topic == "/cam0/image").count();
    assert!(images.abs_diff(seqs.len()) <= 1);
}

#[test]
fn video_of_a_killed_run_still_plays() {
    // Fragmented MP4 and Matroska are written as they go: SIGKILL midway
    // leaves a file GStreamer still decodes, up to its last fragment.
    for ext in ["mp4", "mkv"] {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join(format!("killed.{ext}"));
        kill_midway(dir.path(), "video", &video, 1 << 20);
        let decoded = decode_bgr(&video, usize::MAX);
        assert!(
            decoded.frames.len() >= 10,
            "{ext}: {} frames decode after the kill",
            decoded.frames.len()
        );
        assert_eq!((decoded.width, decoded.height), (768, 576), "{ext}");
    }
}

/// A video decoded by GStreamer to BGR: (width, height, frame rate, frames).
struct Decoded {
    width: usize,
    height: usize,
    rate: (i32, i32),
    frames: Vec<Vec<u8>>,
}

fn decode_bgr(path: &Path, max_frames: usize) -> Decoded {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use gstreamer_app as gst_app;
    use gstreamer_video as gst_video;
    use gstreamer_video::prelude::*;
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=BGR ! appsink name=s sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("s")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Decoded {
        width: 0,
        height: 0,
        rate: (0, 0),
        frames: Vec::new(),
    };
    while out.frames.len() < max_frames {
        let Ok(sample) = sink.pull_sample() else {
            break;
        };
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        (out.width, out.height) = (info.width() as usize, info.height() as usize);
        out.rate = (info.fps().numer(), info.fps().denom());
        let buffer = sample.buffer().unwrap();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).unwrap();
        let row = out.width * 3;
        let mut packed = Vec::with_capacity(row * out.height);
        for y in 0..out.height {
            packed.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        out.frames.push(packed);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Same palette as the sinks (src/overlay.rs), by track id, as BGR.
fn id_bgr(id: u64) -> [u8; 3] {
    let [r, g, b] = percept::overlay::id_colour(id);
    [b, g, r]
}

#[test]
fn video_frames_match_the_records_and_the_source() {
    for (file, extra) in [("run.mp4", ""), ("run.mkv", "encoder = \"openh264\"\n")] {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join(file);
        let frames = 30;
        let (p, jsonl) = main_job(
            dir.path(),
            frames,
            &format!(
                "[[sink]]\nkind = \"video\"\npath = \"{}\"\n{extra}",
                video.display()
            ),
        );
        run(&["run", p.to_str().unwrap()]).assert_code(0);
        let records = read_records(&jsonl);
        let out = decode_bgr(&video, 1000);
        let source = decode_bgr(&media("vtest.avi"), frames as usize);
        // One video frame per record, at the source's size and rate.
        assert_eq!(out.frames.len(), records.len(), "{file}");
        assert_eq!(
            (out.width, out.height),
            (source.width, source.height),
            "{file}"
        );
        assert_eq!((out.width, out.height), (768, 576));
        assert_eq!(out.rate, source.rate, "{file}");

        let (w, h) = (out.width, out.height);
        let px = |f: &[u8], x: usize, y: usize| -> [u8; 3] {
            let i = (y * w + x) * 3;
            [f[i], f[i + 1], f[i + 2]]
        };
        let dist = |a: [u8; 3], b: [u8; 3]| (0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap();
        let mut edges_checked = 0;
        let mut far_blocks = 0;
        for (i, r) in records.iter().enumerate() {
            let (o, s) = (&out.frames[i], &source.frames[i]);
            // On the left edge of each measured box, away from its label and
            // other boxes: the track's colour.
            let boxes = record_boxes(r);
            for (b, id, predicted) in &boxes {
                let (x1, y1, y2) = (b[0].round() as usize, b[1], b[3]);
                let ym = ((y1 + y2) / 2.0).round() as usize;
                let clear = boxes.iter().filter(|(o, _, _)| {
                    (o[0] - 6.0..o[2] + 6.0).contains(&(x1 as f32))
                        && (o[1] - 6.0..o[3] + 6.0).contains(&(ym as f32))
                });
                if *predicted || clear.count() != 1 || x1 < 2 || x1 + 2 >= w || ym >= h {
                    continue;
                }
                let best = (x1 - 1..=x1 + 1)
                    .map(|x| dist(px(o, x, ym), id_bgr(*id)))
                    .min()
                    .unwrap();
                assert!(
                    best <= 60,
                    "{file} frame {i} track {id}: edge {:?} vs colour {:?} (source {:?})",
                    px(o, x1, ym),
                    id_bgr(*id),
                    px(s, x1, ym)
                );
                edges_checked += 1;
            }
            // 32x32 blocks 40 px from every box of the last 20 frames (trails,
            // labels) and below the overlay: the source within codec tolerance.
            let recent: Vec<Vec<f32>> = records[i.saturating_sub(20)..=i]
                .iter()
                .flat_map(record_boxes)
                .map(|(b, _, _)| b)
                .collect();
            for by in (64..h - 32).step_by(32) {
                for bx in (0..w - 32).step_by(32) {
                    // A label reaches up to 140 px right of x1, 24 px above y1.
                    let near = recent.iter().any(|b| {
                        (bx as f32) < b[2].max(b[0] + 140.0) + 40.0
                            && (bx as f32 + 32.0) > b[0] - 40.0
                            && (by as f32) < b[3] + 40.0
                            && (by as f32 + 32.0) > b[1] - 64.0
                    });
                    if near {
                        continue;
                    }
                    let mut sum = 0u64;
                    for y in by..by + 32 {
                        for x in bx..bx + 32 {
                            let (a, b) = (px(o, x, y), px(s, x, y));
                            sum += (0..3).map(|c| u64::from(a[c].abs_diff(b[c]))).sum::<u64>();
                        }
                    }
                    let mean = sum as f64 / (32.0 * 32.0 * 3.0);
                    assert!(
                        mean < 8.0,
                        "{file} frame {i} block ({bx}, {by}): mean difference {mean:.1}"
                    );
                    far_blocks += 1;
                }
            }
        }
        assert!(
            edges_checked >= 20,
            "{file}: {edges_checked} box edges checked"
        );
        assert!(far_blocks >= 100, "{file}: {far_blocks} far blocks");
    }
}

#[test]
fn plot_draws_a_metrics_file_and_compares_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "slow.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{}"
max_frames = 300
[[stage]]
id = "stats"
kind = "image_stats"
[[stage]]
id = "slow"
kind = "delay"
delay_ms = 10.0
[[sink]]
kind = "null"
path = "-"
"#,
            media("vtest.avi").display()
        ),
    );
    let metrics = dir.path().join("metrics.jsonl");
    let summary = dir.path().join("slow.json");
    run(&[
        "run",
        p.to_str().unwrap(),
        "--no-progress",
        "--metrics-out",
        metrics.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ])
    .assert_code(0);
    let lines = read_records(&metrics);
    assert!(lines.len() >= 2, "{} metrics lines", lines.len());
    // Each line's interval holds exactly the frames since the line before.
    let slow = |v: &Value| v["stages"][1].clone();
    let mut before = 0;
    for v in &lines {
        let s = slow(v);
        assert_eq!(s["id"], "slow");
        let total = s["latency"]["count"].as_u64().unwrap();
        assert_eq!(
            s["interval_latency"]["count"].as_u64().unwrap(),
            total - before,
            "{s}"
        );
        if total > before {
            // 10 ms of delay per frame, whatever else the machine does.
            assert!(
                s["interval_latency"]["p50_ms"].as_f64().unwrap() >= 10.0,
                "{s}"
            );
        }
        before = total;
    }

    let svg = dir.path().join("run.svg");
    run(&[
        "plot",
        metrics.to_str().unwrap(),
        "--out",
        svg.to_str().unwrap(),
    ])
    .assert_code(0);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..100.min(text.len())]);
    // Panels with their axis units, and a legend entry per stage and percentile.
    for phrase in [
        "latency (ms)",
        "elapsed (s)",
        "RSS (MiB)",
        "queued frames",
        "stats p50",
        "slow p99",
        "into slow (capacity 4)",
    ] {
        assert!(text.contains(phrase), "no `{phrase}` in the SVG");
    }
    // A polyline per series: p50 and p99 of two stages, two queues, memory.
    let series = 2 * 2 + 2 + 1;
    assert!(text.matches("<polyline").count() >= series);

    let bars = dir.path().join("bars.svg");
    run(&[
        "plot",
        summary.to_str().unwrap(),
        lines_to(&dir, &lines),
        "--out",
        bars.to_str().unwrap(),
    ])
    .assert_code(0);
    let text = std::fs::read_to_string(&bars).unwrap();
    for phrase in ["frames per second", "slow p99", "stats p50", "slow", "last"] {
        assert!(text.contains(phrase), "no `{phrase}` in the bars");
    }

    // Not a run summary: exit 2, naming the file.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"x\": 1}\n").unwrap();
    let r = run(&[
        "plot",
        bad.to_str().unwrap(),
        "--out",
        svg.to_str().unwrap(),
    ]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("bad.jsonl") && r.stderr.contains("not a percept run summary"),
        "{}",
        r.stderr
    );
}

/// The last metrics snapshot written as a summary file named `last.json`.
fn lines_to(dir: &tempfile::TempDir, lines: &[Value]) -> &'static str {
    let path = dir.path().join("last.json");
    std::fs::write(&path, lines.last().unwrap().to_string()).unwrap();
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Connects to a live view as Foxglove does, retrying while percept starts.
fn connect_live(port: u16, child: &mut std::process::Child) -> Ws {
    use tungstenite::client::IntoClientRequest;
    for _ in 0..2400 {
        assert!(child.try_wait().unwrap().is_none(), "percept ended first");
        let mut req = format!("ws://127.0.0.1:{port}")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "foxglove.websocket.v1".parse().unwrap(),
        );
        if let Ok((ws, resp)) = tungstenite::connect(req) {
            assert_eq!(
                resp.headers()["Sec-WebSocket-Protocol"],
                "foxglove.websocket.v1"
            );
            return ws;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no live view on port {port}");
}

/// Reads JSON operations until `op` arrives.
fn read_op(ws: &mut Ws, op: &str) -> Value {
    loop {
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["op"] == op {
                return v;
            }
        }
    }
}

/// Reads the advertisements until every topic of `wait` is among them;
/// subscribes to `topics` (subscription ids 0, 1, …). Returns every channel
/// advertised so far.
fn subscribe(ws: &mut Ws, wait: &[&str], topics: &[&str]) -> Vec<Value> {
    let mut channels: Vec<Value> = Vec::new();
    while !wait
        .iter()
        .all(|t| channels.iter().any(|c| c["topic"] == *t))
    {
        let ad = read_op(ws, "advertise");
        channels.extend(ad["channels"].as_array().unwrap().iter().cloned());
    }
    let subscriptions: Vec<Value> = topics
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let c = channels.iter().find(|c| c["topic"] == *t).unwrap();
            serde_json::json!({ "id": i, "channelId": c["id"] })
        })
        .collect();
    ws.send(tungstenite::Message::text(
        serde_json::json!({ "op": "subscribe", "subscriptions": subscriptions }).to_string(),
    ))
    .unwrap();
    channels
}

#[test]
fn foxglove_live_view_sends_the_annotations_of_the_jsonl_records() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("out.jsonl");
    let port = free_port();
    // Paced at the recording's 10 fps, so the client is there for most frames.
    let p = pipeline(
        dir.path(),
        "live.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{video}"
format = "RGB"
realtime = true
max_frames = 40
[[stage]]
id = "detect"
kind = "detect"
layout = "nanodet"
confidence = 0.1
classes = [0, 1, 2, 3, 5, 7]
[stage.model]
path = "{model}"
threads = 2
[[stage]]
id = "tracks"
kind = "track"
[[sink]]
kind = "jsonl"
path = "{jsonl}"
[[sink]]
kind = "foxglove"
port = {port}
"#,
            video = media("vtest.avi").display(),
            model = repo().join("models/nanodet-m-416.onnx").display(),
            jsonl = jsonl.display(),
        ),
    );
    let summary = dir.path().join("summary.json");
    let mut child = percept()
        .args(["run", p.to_str().unwrap(), "--summary-json"])
        .arg(&summary)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ws = connect_live(port, &mut child);
    let info = read_op(&mut ws, "serverInfo");
    assert!(info["name"].as_str().unwrap().starts_with("percept"));
    let channels = subscribe(
        &mut ws,
        &["/cam0/image", "/cam0/annotations", "/cam0/record"],
        &["/cam0/annotations"],
    );
    let ann = channels
        .iter()
        .find(|c| c["topic"] == "/cam0/annotations")
        .unwrap();
    assert_eq!(ann["schemaName"], "foxglove.ImageAnnotations");
    assert_eq!(ann["encoding"], "protobuf");
    assert_eq!(ann["schemaEncoding"], "protobuf");
    for (topic, schema) in [
        ("/cam0/image", "foxglove.CompressedImage"),
        ("/cam0/record", "percept.Record"),
    ] {
        let c = channels.iter().find(|c| c["topic"] == topic).unwrap();
        assert_eq!(c["schemaName"], schema);
    }

    // Message data frames until the run ends and closes the connection.
    let mut got: BTreeMap<u64, ImageAnnotations> = BTreeMap::new();
    while let Ok(m) = ws.read() {
        if let tungstenite::Message::Binary(b) = m {
            assert_eq!(b[0], 1, "opcode: message data");
            assert_eq!(u32::from_le_bytes(b[1..5].try_into().unwrap()), 0);
            let ts = u64::from_le_bytes(b[5..13].try_into().unwrap());
            got.insert(ts, ImageAnnotations::decode(&b[13..]).unwrap());
        }
    }
    assert!(child.wait().unwrap().success());
    let records = read_records(&jsonl);
    assert_eq!(records.len(), 40);
    assert!(got.len() >= 10, "only {} messages", got.len());
    let mut with_boxes = 0;
    for (ts, ann) in &got {
        let r = records
            .iter()
            .find(|r| u64_field(r, "capture_wall_ns") == *ts)
            .unwrap_or_else(|| panic!("no record captured at {ts}"));
        let boxes: Vec<(Vec<f32>, u64, bool)> = ann
            .points
            .iter()
            .map(|p| {
                let meta = |k: &str| {
                    p.metadata
                        .iter()
                        .find(|kv| kv.key == k)
                        .map(|kv| kv.value.clone())
                        .unwrap()
                };
                (
                    vec![
                        p.points[0].x as f32,
                        p.points[0].y as f32,
                        p.points[2].x as f32,
                        p.points[2].y as f32,
                    ],
                    meta("track_id").parse().unwrap(),
                    meta("predicted").parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(boxes, record_boxes(r), "seq {}", r["seq"]);
        with_boxes += usize::from(!boxes.is_empty());
    }
    assert!(with_boxes > 0, "no boxes among the messages received");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let live = s["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "foxglove")
        .unwrap();
    assert_eq!(live["written"], 40);
    assert!(live["dropped_messages"].is_u64());
}

#[test]
fn foxglove_client_that_never_reads_does_not_stall_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("out.jsonl");
    let port = free_port();
    // Every frame of vtest.avi (795), unpaced, as large JPEGs: far more than
    // the sockets' buffers hold.
    let p = pipeline(
        dir.path(),
        "stuck.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{video}"
format = "RGB"
[[sink]]
kind = "jsonl"
path = "{jsonl}"
[[sink]]
kind = "foxglove"
port = {port}
jpeg_quality = 100
backlog = 4
"#,
            video = media("vtest.avi").display(),
            jsonl = jsonl.display(),
        ),
    );
    let summary = dir.path().join("summary.json");
    let mut child = percept()
        .args(["run", p.to_str().unwrap(), "--summary-json"])
        .arg(&summary)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ws = connect_live(port, &mut child);
    read_op(&mut ws, "serverInfo");
    let all = ["/cam0/image", "/cam0/annotations", "/cam0/record"];
    subscribe(&mut ws, &all, &all);
    // Never read again; the run still ends with every record.
    assert!(child.wait().unwrap().success());
    drop(ws);
    let records = read_records(&jsonl);
    assert_eq!(records.len(), 795);
    assert_contiguous(&records);
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let live = s["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "foxglove")
        .unwrap();
    assert_eq!(live["written"], 795);
    assert!(
        live["dropped_messages"].as_u64().unwrap() > 0,
        "{live}: a client that never reads must lose messages"
    );
}

#[test]
fn foxglove_port_in_use_is_bad_input_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let p = pipeline(
        dir.path(),
        "busy.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{video}"
max_frames = 2
[[sink]]
kind = "jsonl"
path = "-"
[[sink]]
kind = "foxglove"
port = {port}
"#,
            video = media("vtest.avi").display(),
        ),
    );
    let r = run(&["run", p.to_str().unwrap()]);
    r.assert_code(2);
    assert!(r.stderr.contains("busy.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("sink[1].port"), "{}", r.stderr);
    assert!(r.stderr.contains(&port.to_string()), "{}", r.stderr);
}
