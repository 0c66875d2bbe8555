//! The baseline for `benches/bench-detect.sh`: a bare loop that only calls
//! `session.run` on one preprocessed tensor, with the same session options
//! and threads as a percept detect stage. Prints frames per second.
//!
//! Usage: cargo run --release --example bare_session_loop -- MODEL FRAMES THREADS [spin]
// A benchmark fails loudly on bad set-up: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use percept::model::{Engine, ModelSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (model, frames, threads) = match args.as_slice() {
        [_, m, f, t] | [_, m, f, t, _] => (m, f, t),
        _ => return Err("usage: bare_session_loop MODEL FRAMES THREADS [spin]".into()),
    };
    let frames: usize = frames.parse()?;
    let mut settings = ModelSettings::new(model);
    settings.threads = threads.parse()?;
    settings.spin = args.get(4).is_some_and(|a| a == "spin");
    let mut engine = Engine::load(&settings)?;
    engine.warm_up()?;
    let started = Instant::now();
    for _ in 0..frames {
        let outputs = engine.run()?;
        std::hint::black_box(outputs.len());
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{:.3}", frames as f64 / secs);
    Ok(())
}
