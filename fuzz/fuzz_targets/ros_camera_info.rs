//! ROS `camera_info` YAML (`from_ros`), the right camera a valid file.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use percept::calib::import::from_ros;

fuzz_target!(|data: &[u8]| {
    let left = common::scratch("l.yaml", data);
    let right = common::repo().join("tests/media/calib/melodic_fisheye_left.yaml");
    let _ = from_ros(&left, &right, None);
});
