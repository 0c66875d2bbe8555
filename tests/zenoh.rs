//! The `zenoh` sink and source on 127.0.0.1 (scouting off, explicit
//! endpoints): records equal to the JSON Lines output, and camera nodes
//! feeding an inference node, one of them killed and restarted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zenoh::Wait;

use crate::util::{
    Running, assert_contiguous, finish, free_port, percept, pipeline, read_records, record_mkv,
    repo, u64_field,
};

/// A Zenoh peer for the test: listens on `port`, scouting off.
fn test_session(port: u16) -> zenoh::Session {
    let mut config = zenoh::Config::default();
    config.insert_json5("mode", r#""peer""#).unwrap();
    config
        .insert_json5("listen/endpoints", &format!(r#"["tcp/127.0.0.1:{port}"]"#))
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    zenoh::open(config).wait().unwrap()
}

/// Runs the squares YOLOv8 test model and ByteTrack on squares.mkv (40
/// frames) into JSON Lines and a `zenoh` sink connecting to `port` with
/// `zenoh_options` added; returns the JSON Lines records.
fn run_tracking_with_zenoh(dir: &Path, port: u16, zenoh_options: &str) -> Vec<Value> {
    let out = dir.join("out.jsonl");
    let p = pipeline(
        dir,
        "zenoh.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{}"
format = "RGB"
[[stage]]
id = "detect"
kind = "detect"
layout = "yolov8"
confidence = 0.25
[stage.model]
path = "{}"
threads = 1
[[stage]]
id = "tracks"
kind = "track"
[[sink]]
kind = "jsonl"
path = "{}"
[[sink]]
kind = "zenoh"
connect = ["tcp/127.0.0.1:{port}"]
scouting = false
congestion_control = "block"
wait_for_subscribers_s = 10
{zenoh_options}
"#,
            repo().join("tests/media/squares.mkv").display(),
            repo().join("tests/models/squares_yolov8.onnx").display(),
            out.display()
        ),
    );
    let run = finish(percept().args(["run"]).arg(&p).output().unwrap());
    run.assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 40);
    records
}

/// Receives up to `n` samples, waiting at most 10 s in all.
fn receive(
    subscriber: &zenoh::pubsub::Subscriber<
        zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>,
    >,
    n: usize,
) -> Vec<zenoh::sample::Sample> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < deadline {
        if let Ok(Some(sample)) = subscriber.recv_timeout(Duration::from_millis(100)) {
            got.push(sample);
        }
    }
    got
}

/// A record without the fields each sink stamps at its own output time.
fn without_emit(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("emit_wall_ns");
    o.remove("latency_ns");
    v
}

/// A detector and tracker on squares.mkv (40 frames), written as JSON Lines
/// and published on Zenoh: every record arrives, in order, equal to the
/// file's, with the header's sequence number and capture time.
#[test]
fn records_on_zenoh_equal_the_json_lines_output() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let session = test_session(port);
    let subscriber = session
        .declare_subscriber("percept/**")
        .with(zenoh::handlers::FifoChannel::new(1000))
        .wait()
        .unwrap();
    let records = run_tracking_with_zenoh(dir.path(), port, "");
    assert!(
        records
            .iter()
            .any(|r| r["tracks"].as_array().is_some_and(|t| !t.is_empty())),
        "the pipeline tracks something"
    );
    let got = receive(&subscriber, records.len());
    assert_eq!(got.len(), records.len(), "every record arrives");
    for (i, (sample, record)) in got.iter().zip(&records).enumerate() {
        assert_eq!(sample.key_expr().as_str(), "percept/cam0/record");
        assert_eq!(
            sample.encoding().to_string(),
            "application/json",
            "record {i}"
        );
        let payload: Value = serde_json::from_slice(&sample.payload().to_bytes()).unwrap();
        assert_eq!(
            without_emit(payload),
            without_emit(record.clone()),
            "record {i} differs from the JSON Lines line"
        );
        let header =
            percept::pubsub::SampleHeader::read(&sample.attachment().unwrap().to_bytes()).unwrap();
        assert_eq!(header.seq, i as u64);
        assert_eq!(header.capture_wall_ns, u64_field(record, "capture_wall_ns"));
        assert_eq!(header.payload, percept::pubsub::Payload::Record);
    }
}

/// A camera node: reads `recording` (paced when `realtime`), publishes its
/// frames as JPEG to the inference node on `port` and writes its own records.
fn camera_node(dir: &Path, id: &str, recording: &Path, port: u16, out: &Path) -> Command {
    let p = pipeline(
        dir,
        &format!("{id}.toml"),
        &format!(
            r#"
version = 1
[[source]]
id = "{id}"
kind = "file"
location = "{}"
format = "RGB"
[[sink]]
kind = "zenoh"
connect = ["tcp/127.0.0.1:{port}"]
scouting = false
records = false
frames = "jpeg"
jpeg_quality = 90
congestion_control = "block"
wait_for_subscribers_s = 20
[[sink]]
kind = "jsonl"
path = "{}"
"#,
            recording.display(),
            out.display()
        ),
    );
    let mut c = percept();
    c.args(["run", "--realtime"]).arg(p);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn records_of(path: &Path, stream: &str) -> Vec<Value> {
    if !path.is_file() {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    // The last line may still be being written.
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["stream"] == stream)
        .collect()
}

/// Three processes on loopback: two camera nodes reading recordings, one
/// inference node subscribed to both (lossless: `delivery = "lossless"`
/// and blocking queues, since live pipelines drop the oldest frame by default). Camera 1 is killed midway and started
/// again: the inference node keeps running, counts the gap and resumes;
/// every frame of camera 0 and of camera 1's second run has a record, in
/// order, with the camera's capture time.
#[test]
fn camera_nodes_feed_an_inference_node_and_one_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let long = dir.path().join("long.mkv");
    record_mkv(&long, 60, 320, 240, 20);
    let infer_out = dir.path().join("infer.jsonl");
    let summary = dir.path().join("summary.json");
    let infer = pipeline(
        dir.path(),
        "infer.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "zenoh"
listen = ["tcp/127.0.0.1:{port}"]
scouting = false
delivery = "lossless"
[[source]]
id = "cam1"
kind = "zenoh"
listen = ["tcp/127.0.0.1:{port}"]
scouting = false
delivery = "lossless"
[[stage]]
id = "stats"
kind = "image_stats"
queue = {{ capacity = 4, policy = "block" }}
[[sink]]
kind = "jsonl"
path = "{}"
queue = {{ capacity = 4, policy = "block" }}
"#,
            infer_out.display()
        ),
    );
    let mut inference = Running(Some(
        percept()
            .args(["run", "--summary-json"])
            .arg(&summary)
            .arg(&infer)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let cam0_out = dir.path().join("cam0.jsonl");
    let cam1_first = dir.path().join("cam1_first.jsonl");
    let cam1_second = dir.path().join("cam1_second.jsonl");
    let squares = repo().join("tests/media/squares.mkv");
    let mut cam0 = Running(Some(
        camera_node(dir.path(), "cam0", &squares, port, &cam0_out)
            .spawn()
            .unwrap(),
    ));
    let mut cam1 = Running(Some(
        camera_node(dir.path(), "cam1", &long, port, &cam1_first)
            .spawn()
            .unwrap(),
    ));

    // Kill camera 1 once the inference node has 15 of its frames.
    let start = Instant::now();
    while records_of(&infer_out, "cam1").len() < 15 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the inference node got {} frames of cam1",
            records_of(&infer_out, "cam1").len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = cam1.0.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    let before = records_of(&infer_out, "cam1").len();
    assert!(
        before < 60,
        "camera 1 was killed midway ({before} frames in)"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut cam1 = Running(Some(
        camera_node(dir.path(), "cam1", &long, port, &cam1_second)
            .spawn()
            .unwrap(),
    ));

    for (name, node) in [("cam0", &mut cam0), ("cam1", &mut cam1)] {
        let out = node.0.take().unwrap().wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Both cameras sent their end of stream: the inference node ends.
    let out = inference.0.take().unwrap().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inference node: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let cam0_sent = read_records(&cam0_out);
    let cam0_got = records_of(&infer_out, "cam0");
    assert_eq!(cam0_sent.len(), 40);
    let missing: Vec<&Value> = cam0_sent
        .iter()
        .filter(|s| {
            !cam0_got
                .iter()
                .any(|g| g["capture_wall_ns"] == s["capture_wall_ns"])
        })
        .map(|s| &s["seq"])
        .collect();
    assert!(
        missing.is_empty(),
        "cam0 frames missing: {missing:?}\n{stderr}"
    );
    assert_eq!(cam0_got.len(), cam0_sent.len(), "every frame of cam0");
    assert_contiguous(&cam0_got);
    for (sent, got) in cam0_sent.iter().zip(&cam0_got) {
        assert_eq!(got["capture_clock"], "sender");
        assert_eq!(got["capture_wall_ns"], sent["capture_wall_ns"]);
        assert_eq!(got["pts_ns"], sent["pts_ns"]);
        assert!(u64_field(got, "arrival_wall_ns") >= u64_field(sent, "capture_wall_ns"));
        assert_eq!(got["width"], sent["width"]);
        assert_eq!(got["height"], sent["height"]);
    }

    let cam1_got = records_of(&infer_out, "cam1");
    assert_contiguous(&cam1_got);
    let gaps: Vec<usize> = cam1_got
        .iter()
        .enumerate()
        .filter(|(_, r)| r.get("gap_ms").is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(gaps.len(), 1, "one gap in cam1: {gaps:?}");
    let second_sent = read_records(&cam1_second);
    assert_eq!(second_sent.len(), 60);
    let resumed = &cam1_got[gaps[0]..];
    assert_eq!(resumed.len(), 60, "every frame of cam1's second run");
    for (sent, got) in second_sent.iter().zip(resumed) {
        assert_eq!(got["capture_wall_ns"], sent["capture_wall_ns"]);
    }
    assert!(resumed[0]["gap_ms"].as_f64().unwrap() >= 1000.0);

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let sources = summary["sources"].as_array().unwrap();
    let cam1_stats = sources.iter().find(|s| s["id"] == "cam1").unwrap();
    assert_eq!(cam1_stats["reconnects"], 1, "{cam1_stats}");
    assert!(cam1_stats["gap_s"].as_f64().unwrap() >= 1.0, "{cam1_stats}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `ros2 = true`: detections reach Zenoh exactly as rmw_zenoh publishes
/// them. Key expressions and liveliness tokens as rmw_zenoh names them,
/// the attachment (sequence number from 1, the frame's capture time, a
/// 16-byte GID), and the CDR bytes of a frame with tracks decoded by an
/// independent implementation (rosbags, `tests/ros2_check.py`) into the
/// JSON Lines record's tracks.
#[test]
fn ros2_mode_publishes_detections_as_rmw_zenoh_does() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let session = test_session(port);
    let data = session
        .declare_subscriber("0/**")
        .with(zenoh::handlers::FifoChannel::new(1000))
        .wait()
        .unwrap();
    let tokens = session
        .liveliness()
        .declare_subscriber("@ros2_lv/**")
        .history(true)
        .with(zenoh::handlers::FifoChannel::new(100))
        .wait()
        .unwrap();
    let records = run_tracking_with_zenoh(
        dir.path(),
        port,
        "records = false\nros2 = true\nframe_id = \"{stream}_optical\"",
    );

    let hash = percept::ros2::type_hash("vision_msgs/msg/Detection2DArray").unwrap();
    let dds = "vision_msgs::msg::dds_::Detection2DArray_";
    let mut token_keys = Vec::new();
    while let Ok(Some(t)) = tokens.try_recv() {
        token_keys.push(t.key_expr().as_str().to_string());
    }
    assert!(
        token_keys
            .iter()
            .any(|k| k.starts_with("@ros2_lv/0/") && k.ends_with("/0/0/NN/%/%/percept")),
        "node token: {token_keys:?}"
    );
    let publisher_token =
        format!("/MP/%/%/percept/%percept%cam0%detections/{dds}/{hash}/::,10:,:,:,,");
    assert!(
        token_keys.iter().any(|k| k.ends_with(&publisher_token)),
        "publisher token ending {publisher_token}: {token_keys:?}"
    );

    let got = receive(&data, records.len());
    assert_eq!(got.len(), records.len(), "one Detection2DArray per frame");
    let key = format!("0/percept/cam0/detections/{dds}/{hash}");
    let mut checked_one = false;
    for (i, (sample, record)) in got.iter().zip(&records).enumerate() {
        assert_eq!(sample.key_expr().as_str(), key);
        let a = sample.attachment().unwrap().to_bytes();
        assert_eq!(a.len(), 33, "attachment of sample {i}");
        assert_eq!(i64::from_le_bytes(a[..8].try_into().unwrap()), i as i64 + 1);
        assert_eq!(
            i64::from_le_bytes(a[8..16].try_into().unwrap()) as u64,
            u64_field(record, "capture_wall_ns")
        );
        assert_eq!(a[16], 16, "GID length");
        let tracks = record["tracks"].as_array().unwrap();
        if checked_one || tracks.is_empty() {
            continue;
        }
        // The first frame with tracks, through rosbags.
        checked_one = true;
        let claims = serde_json::json!({"vision_msgs/msg/Detection2DArray": {
            "cdr": hex(&sample.payload().to_bytes()), "hash": hash, "key": key}});
        let input = dir.path().join("claims.json");
        std::fs::write(&input, serde_json::to_vec(&claims).unwrap()).unwrap();
        let check = Command::new(crate::util::python())
            .arg(repo().join("tests/ros2_check.py"))
            .arg(&input)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let c: Value = serde_json::from_slice(&check.stdout).unwrap();
        let c = &c["vision_msgs/msg/Detection2DArray"];
        assert_eq!(c["hash"], hash.as_str(), "rosbags' type hash");
        assert_eq!(c["reserialized_equal"], true);
        let m = &c["decoded"];
        let wall = u64_field(record, "capture_wall_ns");
        assert_eq!(m["header"]["stamp"]["sec"], wall / 1_000_000_000);
        assert_eq!(m["header"]["stamp"]["nanosec"], wall % 1_000_000_000);
        assert_eq!(m["header"]["frame_id"], "cam0_optical");
        let dets = m["detections"].as_array().unwrap();
        assert_eq!(dets.len(), tracks.len());
        for (d, t) in dets.iter().zip(tracks) {
            let b: Vec<f64> = t["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(d["id"], t["id"].as_u64().unwrap().to_string());
            let close = |x: &Value, y: f64| (x.as_f64().unwrap() - y).abs() < 1e-3;
            assert!(
                close(&d["bbox"]["center"]["position"]["x"], (b[0] + b[2]) / 2.0),
                "{d} {t}"
            );
            assert!(
                close(&d["bbox"]["center"]["position"]["y"], (b[1] + b[3]) / 2.0),
                "{d} {t}"
            );
            assert!(close(&d["bbox"]["size_x"], b[2] - b[0]), "{d} {t}");
            assert!(close(&d["bbox"]["size_y"], b[3] - b[1]), "{d} {t}");
            assert!(close(
                &d["results"][0]["hypothesis"]["score"],
                t["score"].as_f64().unwrap()
            ));
            assert_eq!(d["results"][0]["hypothesis"]["class_id"], t["class"]);
        }
    }
    assert!(checked_one, "a frame with tracks");
}

/// Two camera nodes with live test sources (10 fps, clocks not in step)
/// and one inference node pairing them as a stereo pair: pairs are made by
/// the cameras' capture times (`clock = "ntp"`): each pair's left frame
/// and its left time plus skew are capture times the two camera nodes
/// recorded.
#[test]
fn two_camera_nodes_pair_as_stereo_by_capture_time() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("pairs.jsonl");
    let infer = pipeline(
        dir.path(),
        "stereo.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "left"
kind = "zenoh"
listen = ["tcp/127.0.0.1:{port}"]
scouting = false
delivery = "lossless"
[[source]]
id = "right"
kind = "zenoh"
listen = ["tcp/127.0.0.1:{port}"]
scouting = false
delivery = "lossless"
[[stereo]]
id = "pair"
left = "left"
right = "right"
max_skew_ms = 60.0
[[sink]]
kind = "jsonl"
path = "{}"
queue = {{ capacity = 4, policy = "block" }}
"#,
            out.display()
        ),
    );
    let mut inference = Running(Some(
        percept()
            .arg("run")
            .arg(&infer)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let camera = |id: &str| {
        let p = pipeline(
            dir.path(),
            &format!("{id}.toml"),
            &format!(
                r#"
version = 1
[[source]]
id = "{id}"
kind = "test"
pattern = "ball"
width = 160
height = 120
framerate = 10
live = true
max_frames = 30
[[sink]]
kind = "zenoh"
connect = ["tcp/127.0.0.1:{port}"]
scouting = false
records = false
frames = "raw"
congestion_control = "block"
wait_for_subscribers_s = 20
[[sink]]
kind = "jsonl"
path = "{}"
"#,
                dir.path().join(format!("{id}.jsonl")).display()
            ),
        );
        Running(Some(
            percept()
                .arg("run")
                .arg(p)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ))
    };
    let mut nodes = [camera("left"), camera("right")];
    for node in &mut nodes {
        let out = node.0.take().unwrap().wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let done = inference.0.take().unwrap().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");

    let left = read_records(&dir.path().join("left.jsonl"));
    let right = read_records(&dir.path().join("right.jsonl"));
    let pairs = read_records(&out);
    assert!(
        pairs.len() >= 20,
        "{} pairs of 30 frames\n{stderr}",
        pairs.len()
    );
    for p in &pairs {
        assert_eq!(p["stream"], "pair");
        let s = &p["stereo"];
        assert_eq!(s["clock"], "ntp", "{p}");
        // The pair's left frame is a frame the left camera node recorded,
        // and left time + skew is a frame the right one recorded (to 5 µs:
        // runs were up to 1.2 µs off, cause not found; a wrong frame would
        // be 100 ms off).
        let l_wall = u64_field(p, "capture_wall_ns") as i64;
        assert!(
            left.iter()
                .any(|l| u64_field(l, "capture_wall_ns") as i64 == l_wall),
            "{p}"
        );
        let skew = s["skew_ns"].as_i64().unwrap();
        assert!(skew.abs() <= 60_000_000, "{p}");
        assert!(
            right
                .iter()
                .any(|r| (u64_field(r, "capture_wall_ns") as i64 - (l_wall + skew)).abs() < 5_000),
            "{p}"
        );
    }
}
