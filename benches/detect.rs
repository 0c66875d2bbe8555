//! Detection hot-path benchmarks (criterion), side by side in one run:
//! - preprocessing a 768x576 RGB frame into a 640x640 f32 NCHW tensor:
//!   percept's fused pass (letterbox and stretch) against OpenCV's
//!   `dnn::blobFromImage` (stretch; 4.6 has no letterbox) on the same pixels,
//!   both on one thread;
//! - decoding a YOLOv8 `[1, 84, 8400]` output plus NMS.
//!
//! Run: `cargo bench --bench detect` (set up first: scripts/setup.sh).
// A benchmark fails loudly on bad set-up: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gstreamer_video::VideoFormat;
use opencv::core::{self, Mat, Scalar, Size};
use opencv::prelude::*;
use percept::model::preprocess::{PreprocessSettings, Preprocessor, Resize, Target};
use percept::stages::detect::decode::{self, Filter, Layout, View};
use percept::stages::detect::nms::{self, Candidate};

const W: usize = 768;
const H: usize = 576;

fn frame() -> Vec<u8> {
    (0..W * H * 3)
        .map(|i| ((i * 2_654_435_761) >> 20) as u8)
        .collect()
}

fn preprocess(c: &mut Criterion) {
    core::set_num_threads(1).expect("opencv threads");
    let data = frame();
    let mut group = c.benchmark_group("preprocess 768x576 -> 640x640 f32");
    for (name, resize) in [
        ("percept letterbox", Resize::Letterbox),
        ("percept stretch", Resize::Stretch),
    ] {
        let mut pre = Preprocessor::new(PreprocessSettings {
            resize,
            ..PreprocessSettings::yolo(640, 640)
        });
        let mut out = vec![0.0f32; pre.tensor_len()];
        group.bench_function(name, |b| {
            b.iter(|| {
                pre.run_raw(
                    black_box(&data),
                    W * 3,
                    W as u32,
                    H as u32,
                    VideoFormat::Rgb,
                    Target::F32(&mut out),
                )
                .expect("preprocess");
            })
        });
    }
    let mat = Mat::new_rows_cols_with_data(H as i32, (W * 3) as i32, &data).expect("mat");
    let mat = mat.reshape(3, H as i32).expect("reshape");
    group.bench_function("opencv blobFromImage stretch", |b| {
        b.iter(|| {
            let blob = opencv::dnn::blob_from_image(
                black_box(&mat),
                1.0 / 255.0,
                Size::new(640, 640),
                Scalar::all(0.0),
                false,
                false,
                core::CV_32F,
            )
            .expect("blob");
            black_box(blob);
        })
    });
    group.finish();
}

/// A YOLOv8 output with 30 objects, each seen by ~8 neighbouring anchors, over faint noise.
fn yolov8_output() -> Vec<f32> {
    let (channels, n) = (84, 8400);
    let mut t = vec![0.0f32; channels * n];
    for i in 0..n {
        let (cx, cy) = ((i % 80) as f32 * 8.0, (i / 80 % 80) as f32 * 8.0);
        t[i] = cx;
        t[n + i] = cy;
        t[2 * n + i] = 40.0;
        t[3 * n + i] = 80.0;
        for c in 0..80 {
            t[(4 + c) * n + i] = (((i * 31 + c * 17) % 1000) as f32) * 1e-4;
        }
    }
    for obj in 0..30 {
        let base = obj * 200 + 81;
        for k in [0, 1, 2, 80, 81, 82, 160, 161] {
            t[(4 + obj % 80) * n + base + k] = 0.5 + (k as f32) * 1e-3;
        }
    }
    t
}

fn decode_nms(c: &mut Criterion) {
    let data = yolov8_output();
    let filter = Filter {
        confidence: 0.25,
        classes: None,
    };
    let mut best = Vec::new();
    let mut cands: Vec<Candidate> = Vec::new();
    let mut kept = Vec::with_capacity(100);
    let contract = decode::OutputContract::plain(Layout::Yolov8, vec!["output0".into()], 80);
    c.bench_function("yolov8 decode [1,84,8400] + NMS", |b| {
        b.iter(|| {
            let views = [View {
                dims: &[1, 84, 8400],
                data: black_box(&data),
            }];
            decode::candidates(&contract, &views, &filter, &mut best, &mut cands).expect("decode");
            nms::nms(&mut cands, 0.45, 100, &mut kept);
            black_box(kept.len());
        })
    });
}

criterion_group!(benches, preprocess, decode_nms);
criterion_main!(benches);
