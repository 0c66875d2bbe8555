//! Property tests (proptest): the pipeline-file, calibration (percept TOML,
//! OpenCV FileStorage YAML/XML, ROS `camera_info` YAML) and MOTChallenge
//! parsers give a value or an error for any input, never a panic. Inputs
//! are arbitrary text and valid files with random byte edits (which reach
//! deeper than random text). `cargo fuzz` targets for the same parsers are
//! in `fuzz/`.

use std::path::Path;

use percept::calib::StereoCalibration;
use percept::calib::import::{from_opencv, from_ros};
use percept::config::{Overrides, Plan};
use proptest::prelude::*;

use crate::util::*;

/// An edit of a text: (position fraction, byte, kind: 0 replace, 1 insert, 2 delete).
type Edit = (f64, u8, u8);

fn edited(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(at, byte, kind) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let i = ((bytes.len() - 1) as f64 * at) as usize;
        match kind {
            0 => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            _ => {
                bytes.remove(i);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((0.0..1.0f64, any::<u8>(), 0..3u8), 1..12)
}

/// Bytes near the structure of the formats (digits, separators, brackets).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,200}", "[\\[\\]{}=,.:\"'#\\n 0-9a-z_-]{0,300}",]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A ROS `camera_info` file (the fisheye case's left camera).
fn ros_sample() -> String {
    std::fs::read_to_string(repo().join("tests/media/calib/melodic_fisheye_left.yaml")).unwrap()
}

/// An OpenCV FileStorage YAML stereo calibration, as `stereo_calib` writes it.
const OPENCV_YAML: &str = "%YAML:1.0\n---\nM1: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n   data: [ 500., 0., 320., 0., 500., 240., 0., 0., 1. ]\nD1: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n   data: [ 0.1, -0.2, 0., 0., 0. ]\nM2: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n   data: [ 500., 0., 320., 0., 500., 240., 0., 0., 1. ]\nD2: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n   data: [ 0.1, -0.2, 0., 0., 0. ]\nR: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n   data: [ 1., 0., 0., 0., 1., 0., 0., 0., 1. ]\nT: !!opencv-matrix\n   rows: 3\n   cols: 1\n   dt: d\n   data: [ -100., 0., 0. ]\nimage_width: 640\nimage_height: 480\n";

/// The same as XML.
const OPENCV_XML: &str = "<?xml version=\"1.0\"?>\n<opencv_storage>\n<M1 type_id=\"opencv-matrix\"><rows>3</rows><cols>3</cols><dt>d</dt><data>500. 0. 320. 0. 500. 240. 0. 0. 1.</data></M1>\n<D1 type_id=\"opencv-matrix\"><rows>1</rows><cols>5</cols><dt>d</dt><data>0. 0. 0. 0. 0.</data></D1>\n<M2 type_id=\"opencv-matrix\"><rows>3</rows><cols>3</cols><dt>d</dt><data>500. 0. 320. 0. 500. 240. 0. 0. 1.</data></M2>\n<D2 type_id=\"opencv-matrix\"><rows>1</rows><cols>5</cols><dt>d</dt><data>0. 0. 0. 0. 0.</data></D2>\n<R type_id=\"opencv-matrix\"><rows>3</rows><cols>3</cols><dt>d</dt><data>1. 0. 0. 0. 1. 0. 0. 0. 1.</data></R>\n<T type_id=\"opencv-matrix\"><rows>3</rows><cols>1</cols><dt>d</dt><data>-100. 0. 0.</data></T>\n</opencv_storage>\n";

const MOT: &str =
    "1,1,20,100,40,40,1,1,1.0\n2,1,28,100,40,40,1,1,1.0\n2,2,50.5,60,10,12,0.9,-1,-1,-1\n";
const JSONL: &str =
    "{\"stream\":\"cam\",\"seq\":0,\"tracks\":[{\"id\":1,\"bbox\":[1.0,2.0,3.0,4.0]}]}\n";

fn plan(text: &str) {
    // Relative paths resolve against the repository's pipelines folder.
    let path = repo().join("pipelines/fuzz.toml");
    let _ = Plan::from_str(text, &path, &Overrides::default());
}

fn calibration(text: &str) {
    let _ = StereoCalibration::parse(text, Path::new("fuzz.toml"));
}

fn opencv(dir: &Path, text: &str, ext: &str) {
    let path = dir.join(format!("c.{ext}"));
    std::fs::write(&path, text).unwrap();
    let _ = from_opencv(&[path], Some((640, 480)), 0.001, None);
}

fn ros(dir: &Path, text: &str) {
    let (l, r) = (dir.join("l.yaml"), dir.join("r.yaml"));
    std::fs::write(&l, text).unwrap();
    std::fs::write(&r, ros_sample()).unwrap();
    let _ = from_ros(&l, &r, None);
}

fn mot(dir: &Path, text: &str) {
    let path = dir.join("t.txt");
    std::fs::write(&path, text).unwrap();
    let _ = percept::eval::read_tracks(&path, true, None);
    let _ = percept::eval::read_tracks(&path, false, Some("cam"));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pipeline_files(t in text(), e in edits(), which in 0..4usize) {
        plan(&t);
        let sample = ["tracking.toml", "stereo-objects.toml", "realtime.toml", "gst-fragment.toml"][which];
        let valid = std::fs::read_to_string(repo().join("pipelines").join(sample)).unwrap();
        plan(&edited(&valid, &e));
    }

    #[test]
    fn calibration_toml(t in text(), e in edits()) {
        calibration(&t);
        let valid = std::fs::read_to_string(repo().join("calibration/synthetic_400x300.toml")).unwrap();
        calibration(&edited(&valid, &e));
    }

    #[test]
    fn opencv_filestorage(t in text(), e in edits()) {
        let dir = tempfile::tempdir().unwrap();
        opencv(dir.path(), &t, "yml");
        opencv(dir.path(), &edited(OPENCV_YAML, &e), "yml");
        opencv(dir.path(), &edited(OPENCV_XML, &e), "xml");
    }

    #[test]
    fn ros_camera_info(t in text(), e in edits()) {
        let dir = tempfile::tempdir().unwrap();
        ros(dir.path(), &t);
        ros(dir.path(), &edited(&ros_sample(), &e));
    }

    #[test]
    fn motchallenge_and_json_lines(t in text(), e in edits()) {
        let dir = tempfile::tempdir().unwrap();
        mot(dir.path(), &t);
        mot(dir.path(), &edited(MOT, &e));
        mot(dir.path(), &edited(JSONL, &e));
    }
}

/// The valid samples above parse (so the edits start from real files).
#[test]
fn the_samples_parse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (text, ext) in [(OPENCV_YAML, "yml"), (OPENCV_XML, "xml")] {
        let path = d.join(format!("ok.{ext}"));
        std::fs::write(&path, text).unwrap();
        from_opencv(&[path], Some((640, 480)), 0.001, None).unwrap();
    }
    let path = d.join("ok.txt");
    std::fs::write(&path, MOT).unwrap();
    percept::eval::read_tracks(&path, true, None).unwrap();
}
