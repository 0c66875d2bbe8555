//! Appearance (re-ID) stage throughput in crops per second (criterion), side by
//! side in one run, all on one intra-op thread:
//! - `stage`: percept's `reid` stage on a 1280x720 frame with N detections:
//!   every crop resized into the preallocated batch tensor, one batched run,
//!   L2 normalisation;
//! - `one run per crop`: the same stage with `max_batch = 1`;
//! - `model only`: the batched session run alone on an already filled tensor,
//!   so `stage / model only` is the cost of cropping and resizing.
//!
//! Models: the test colour-histogram model (tiny: measures percept's own
//! work) and, when `PERCEPT_REID_MODEL` names one, a real-cost network
//! (`benches/bench-reid.sh` writes a random-weight one of about 0.6 GFLOPs).
//!
//! Run: `benches/bench-reid.sh`, or `cargo bench --bench reid` for the tiny model.
// A benchmark fails loudly on bad set-up: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gstreamer as gst;
use gstreamer_video as gst_video;
use percept::frame::Frame;
use percept::model::preprocess::Resize;
use percept::model::{Engine, ModelSettings};
use percept::record::{Detection, Detections, Record};
use percept::stage::Stage;
use percept::stages::reid::{ReidStage, ReuseSettings};

const W: u32 = 1280;
const H: u32 = 720;

fn frame() -> Frame {
    gst::init().expect("GStreamer");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, W, H)
        .build()
        .expect("video info");
    let bytes: Vec<u8> = (0..info.size())
        .map(|i| ((i * 2_654_435_761) >> 20) as u8)
        .collect();
    Frame::from_bytes(info, bytes, "bench", 0)
}

/// `n` person-shaped boxes (60x150 px) spread over the frame.
fn detections(n: usize) -> Detections {
    let mut d = Detections::default();
    for i in 0..n {
        let (x, y) = ((i % 16) as f32 * 75.0, (i / 16) as f32 * 140.0);
        d.push(Detection {
            bbox: [x + 5.0, y + 5.0, x + 65.0, (y + 155.0).min(H as f32)],
            class_id: 0,
            class: Arc::from("person"),
            score: 0.9,
            position: None,
        });
    }
    d
}

fn settings(path: &Path, max_batch: usize) -> ModelSettings {
    let mut s = ModelSettings {
        threads: 1,
        max_batch,
        ..ModelSettings::new(path)
    };
    s.preprocess.resize = Resize::Stretch;
    s
}

fn reid(c: &mut Criterion) {
    let mut models = vec![(
        "colour_embed",
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models/colour_embed.onnx"),
    )];
    if let Some(p) = std::env::var_os("PERCEPT_REID_MODEL") {
        models.push(("reid_cnn", PathBuf::from(p)));
    }
    let f = frame();
    for (name, path) in models {
        let mut group = c.benchmark_group(format!("reid {name}"));
        let sizes: &[usize] = if name == "colour_embed" {
            &[1, 8, 32]
        } else {
            &[1, 8]
        };
        for &n in sizes {
            group.throughput(Throughput::Elements(n as u64));
            let dets = detections(n);
            for (label, batch) in [("stage", 32usize), ("one run per crop", 1)] {
                // Every crop through the model each time: no reuse across iterations.
                let never = ReuseSettings {
                    iou: 2.0,
                    ..ReuseSettings::default()
                };
                let mut stage =
                    ReidStage::with_reuse(&settings(&path, batch), never).expect("re-ID model");
                group.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                    b.iter(|| {
                        let mut record = Record {
                            detections: Some(dets.clone()),
                            ..Record::default()
                        };
                        stage.process(black_box(&f), &mut record).expect("reid");
                        black_box(record.embeddings.map(|e| e.values.len()))
                    })
                });
            }
            let mut engine = Engine::load(&settings(&path, 32)).expect("re-ID model");
            let regions: Vec<[f32; 4]> = dets.iter().map(|d| d.bbox).collect();
            engine.preprocess_regions(&f, &regions).expect("crops");
            group.bench_with_input(BenchmarkId::new("model only", n), &n, |b, &n| {
                b.iter(|| black_box(engine.run_batch(n).expect("run").len()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, reid);
criterion_main!(benches);
