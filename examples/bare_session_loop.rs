//! The baseline for `benches/bench-detect.sh` and `benches/bench-cost.sh`: a
//! bare loop that only calls `session.run` on one preprocessed tensor, with
//! the same session options and threads as a percept detect stage. Prints
//! frames per second. With `instances=N`, N such loops run at once on their
//! own threads, each with its own session (what a detect stage's
//! `instances = N` does), and the figure is all of their frames over the
//! time the slowest took.
//!
//! Usage: cargo run --release --example bare_session_loop -- MODEL FRAMES THREADS [spin] [instances=N]
// A benchmark fails loudly on bad set-up: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};
use std::time::Instant;

use percept::model::{Engine, ModelSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_session_loop MODEL FRAMES THREADS [spin] [instances=N]";
    let [_, model, frames, threads, options @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let frames: usize = frames.parse()?;
    let mut settings = ModelSettings::new(model);
    settings.threads = threads.parse()?;
    let mut instances = 1;
    for option in options {
        match option.split_once('=') {
            None if option == "spin" => settings.spin = true,
            Some(("instances", n)) => instances = n.parse()?,
            _ => return Err(usage.into()),
        }
    }
    // Every loop starts once every session is loaded and warm.
    let start = Arc::new(Barrier::new(instances));
    let loops: Vec<_> = (0..instances)
        .map(|k| {
            let (settings, start) = (settings.clone(), start.clone());
            std::thread::Builder::new()
                .name(format!("bare:{k}"))
                .spawn(move || {
                    let mut engine = Engine::load(&settings).unwrap();
                    engine.warm_up().unwrap();
                    start.wait();
                    let started = Instant::now();
                    for _ in 0..frames {
                        let outputs = engine.run().unwrap();
                        std::hint::black_box(outputs.len());
                    }
                    started.elapsed().as_secs_f64()
                })
        })
        .collect::<Result<_, _>>()?;
    let mut slowest = 0.0_f64;
    for l in loops {
        slowest = slowest.max(l.join().expect("a loop panicked"));
    }
    println!("{:.3}", (instances * frames) as f64 / slowest);
    Ok(())
}
