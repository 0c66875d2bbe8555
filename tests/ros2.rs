//! percept's ROS 2 wire format (`src/ros2`) checked by an independent
//! implementation: `tests/ros2_check.py` decodes our CDR bytes with
//! `rosbags` (pinned by `scripts/setup.sh`), writes the decoded message back
//! and computes the RIHS01 type hashes; every field must be the hand-worked
//! value, the bytes must survive rosbags' re-encoding unchanged, and the
//! hashes and key expressions must be rosbags'.

use std::process::Command;
use std::sync::Arc;

use percept::pool::Pooled;
use percept::record::{self, Record, TrackOut, TrackState};
use percept::ros2::{self, Ros2Messages, RosType, rmw_zenoh};
use serde_json::{Value, json};

use crate::util::*;

/// 2025-11-30 16:26:40.123456789 UTC.
const WALL_NS: u64 = 1_764_520_000_123_456_789;
const FRAME: &str = "front/camera_optical";

fn track(id: u64, bbox: [f32; 4], class_id: u32, class: &str, score: f32) -> TrackOut {
    TrackOut {
        id,
        bbox,
        class_id,
        class: Arc::from(class),
        score,
        velocity_px_s: [1.0, 2.0],
        age_s: 0.5,
        state: TrackState::Confirmed,
        predicted: false,
        position: None,
        forecast: None,
    }
}

/// Two tracks: a labelled person, and a class with no name (index 3).
fn record_with_tracks() -> Record {
    let mut tracks = Pooled::default();
    tracks.push(track(7, [10.5, 20.25, 50.5, 100.25], 0, "person", 0.875));
    tracks.push(track(1234, [0.0, 0.0, 16.0, 8.0], 3, "", 0.5));
    Record {
        tracks: Some(tracks),
        ..Record::default()
    }
}

fn calibration() -> record::CameraInfo {
    record::CameraInfo {
        width: 1280,
        height: 720,
        distortion_model: "plumb_bob",
        d: vec![-0.25, 0.125, 0.001, -0.002, 0.0],
        k: [900.0, 0.0, 640.5, 0.0, 901.0, 360.25, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [
            900.0, 0.0, 640.5, 0.0, 0.0, 901.0, 360.25, 0.0, 0.0, 0.0, 1.0, 0.0,
        ],
    }
}

fn header() -> Value {
    json!({"stamp": {"sec": 1_764_520_000, "nanosec": 123_456_789}, "frame_id": FRAME})
}

fn detection(cx: f64, cy: f64, w: f64, h: f64, class_id: &str, score: f64, id: &str) -> Value {
    let covariance = vec![0.0; 36];
    json!({
        "header": header(),
        "results": [{
            "hypothesis": {"class_id": class_id, "score": score},
            "pose": {
                "pose": {
                    "position": {"x": 0.0, "y": 0.0, "z": 0.0},
                    "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0},
                },
                "covariance": covariance,
            },
        }],
        "bbox": {
            "center": {"position": {"x": cx, "y": cy}, "theta": 0.0},
            "size_x": w,
            "size_y": h,
        },
        "id": id,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rosbags_reads_our_bytes_and_agrees_on_hashes() {
    let mut m = Ros2Messages::new();
    let detections = m
        .detections(&record_with_tracks(), WALL_NS, FRAME)
        .unwrap()
        .to_vec();
    let camera = m
        .camera_info(&calibration(), WALL_NS, FRAME)
        .unwrap()
        .to_vec();

    let mut claims = serde_json::Map::new();
    let mut keys = Vec::new();
    for (name, bytes) in [
        ("vision_msgs/msg/Detection2DArray", &detections),
        ("sensor_msgs/msg/CameraInfo", &camera),
    ] {
        let ty = RosType::named(name).unwrap();
        let key = rmw_zenoh::topic_key_expr(0, "/front/ros", &ty).unwrap();
        claims.insert(
            name.into(),
            json!({"cdr": hex(bytes), "hash": ty.hash, "key": key}),
        );
        keys.push((name, ty, key));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("claims.json");
    std::fs::write(&input, serde_json::to_vec(&claims).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(repo().join("tests/ros2_check.py"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ros2_check.py failed (is rosbags installed? run scripts/setup.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Hand-worked: centre = (x1 + x2) / 2, size = x2 - x1; the unnamed
    // class is its index; the track id is the detection id.
    let expected_detections = json!({
        "header": header(),
        "detections": [
            detection(30.5, 60.25, 40.0, 80.0, "person", 0.875, "7"),
            detection(8.0, 4.0, 16.0, 8.0, "3", 0.5, "1234"),
        ],
    });
    let expected_camera = json!({
        "header": header(),
        "height": 720,
        "width": 1280,
        "distortion_model": "plumb_bob",
        "d": [-0.25, 0.125, 0.001, -0.002, 0.0],
        "k": [900.0, 0.0, 640.5, 0.0, 901.0, 360.25, 0.0, 0.0, 1.0],
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [900.0, 0.0, 640.5, 0.0, 0.0, 901.0, 360.25, 0.0, 0.0, 0.0, 1.0, 0.0],
        "binning_x": 0,
        "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": false},
    });
    for (name, expected) in [
        ("vision_msgs/msg/Detection2DArray", expected_detections),
        ("sensor_msgs/msg/CameraInfo", expected_camera),
    ] {
        let c = &checked[name];
        assert_eq!(
            c["decoded"], expected,
            "{name}: fields as rosbags decodes them"
        );
        assert_eq!(
            c["reserialized_equal"], true,
            "{name}: rosbags re-encodes other bytes"
        );
    }
    for (name, ty, key) in keys {
        let c = &checked[name];
        assert_eq!(c["hash"], ty.hash.as_str(), "{name}: RIHS01 hash");
        let suffix = c["key_suffix"].as_str().unwrap();
        assert_eq!(
            key,
            format!("0/front/ros/{suffix}"),
            "{name}: key expression"
        );
    }
    // The published Jazzy hash of sensor_msgs/msg/CameraInfo.
    assert_eq!(
        ros2::type_hash("sensor_msgs/msg/CameraInfo").unwrap(),
        "RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275"
    );
}
