//! Issue 13: outputs beside JSON Lines. Each run writes JSON Lines too, and
//! the other output is read back with a real reader and compared with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foxglove::Decode;
use foxglove::schemas::{CompressedImage, ImageAnnotations};
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
    // Message indexes, for seeking: every chunk indexes its three channels.
    assert!(
        summary
            .chunk_indexes
            .iter()
            .all(|c| c.message_index_offsets.len() == 3)
    );
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

#[test]
fn mcap_of_a_killed_run_still_yields_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mcap_path = dir.path().join("killed.mcap");
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
format = "RGB"
[[stage]]
id = "slow"
kind = "delay"
delay_ms = 10.0
[[sink]]
kind = "mcap"
path = "{}"
"#,
            media("vtest.avi").display(),
            mcap_path.display()
        ),
    );
    let mut child = percept()
        .args(["run", p.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some chunks are on disk (1 MiB of JPEGs each), then SIGKILL.
    let start = Instant::now();
    while std::fs::metadata(&mcap_path).map_or(0, |m| m.len()) < 3 << 20 {
        assert!(start.elapsed() < Duration::from_secs(120), "no output");
        assert!(child.try_wait().unwrap().is_none(), "ended before the kill");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();

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
