//! Tracker update time per frame with 10, 100 and 500 objects (criterion),
//! on one thread: every object moves at its own constant velocity and is
//! detected on every frame, so each update predicts, associates (three
//! ByteTrack rounds with optimal assignment) and corrects every track.
//!
//! Run: `cargo bench --bench track`.
// A benchmark fails loudly on bad set-up: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use percept::record::Detection;
use percept::stages::track::{TrackSettings, Tracker};

/// Objects on a grid, 40 px apart, each 20x40 px, drifting 1-3 px per frame.
fn detections(n: usize, frame: usize) -> Vec<Detection> {
    let class: Arc<str> = Arc::from("person");
    (0..n)
        .map(|i| {
            let (gx, gy) = ((i % 25) as f32 * 60.0, (i / 25) as f32 * 60.0);
            let v = 1.0 + (i % 3) as f32;
            let x = gx + v * frame as f32;
            Detection {
                bbox: [x, gy, x + 20.0, gy + 40.0],
                class_id: 0,
                class: class.clone(),
                score: 0.9,
                position: None,
            }
        })
        .collect()
}

fn tracker_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker update");
    for n in [10usize, 100, 500] {
        let frames: Vec<Vec<Detection>> = (0..200).map(|f| detections(n, f)).collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            let mut tracker = Tracker::new(TrackSettings::default());
            let mut out = Vec::new();
            // Tracks confirmed before timing.
            for (f, dets) in frames.iter().take(3).enumerate() {
                tracker.update(f as f64 * 0.1, Some(dets), None, &mut out);
            }
            let mut f = 3usize;
            b.iter(|| {
                let dets = &frames[f % frames.len()];
                tracker.update(f as f64 * 0.1, Some(black_box(dets)), None, &mut out);
                f += 1;
                if f.is_multiple_of(frames.len()) {
                    // Start the scene over on a fresh tracker (the objects jump back).
                    tracker = Tracker::new(TrackSettings::default());
                }
                black_box(out.len());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tracker_update);
criterion_main!(benches);
