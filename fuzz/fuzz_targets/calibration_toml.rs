//! percept's calibration TOML (`StereoCalibration::parse`).
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use percept::calib::StereoCalibration;

fuzz_target!(|data: &[u8]| {
    let _ = common::repo();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = StereoCalibration::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
