//! MOTChallenge text and JSON Lines tracks (`eval::read_tracks`), as ground
//! truth and as percept output.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("t.txt", data);
    let _ = percept::eval::read_tracks(&path, true, None);
    let _ = percept::eval::read_tracks(&path, false, Some("cam"));
});
