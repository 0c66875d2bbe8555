//! OpenCV FileStorage YAML stereo calibrations (`from_opencv`).
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use percept::calib::import::from_opencv;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("c.yml", data);
    let _ = from_opencv(&[path], Some((640, 480)), 0.001, None);
});
