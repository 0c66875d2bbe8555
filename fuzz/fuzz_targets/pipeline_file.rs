//! Pipeline files (`Plan::from_str`): a value or an error, never a panic.
#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;
use percept::config::{Overrides, Plan};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = common::repo().join("pipelines/fuzz.toml");
        let _ = Plan::from_str(text, &path, &Overrides::default());
    }
});
