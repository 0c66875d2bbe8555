//! Stereo depth per pair (criterion), side by side in one run, OpenCV on one
//! thread:
//! - `opencv sgbm`: OpenCV's `StereoSGBM::compute` alone on the gray pair,
//!   same parameters;
//! - `percept`: the whole `stereo_depth` stage on RGB frames: gray
//!   conversion, rectification (remap with maps computed once), the same
//!   SGBM, metric depth, with `full_width = false` (what SGBM alone computes);
//! - `percept full_width`: the default, which pads the views so the left
//!   strip gets disparities too (SGBM works on a wider image).
//!
//! Before criterion's runs, the first two alternate run by run and their
//! medians' ratio is printed (the overhead figure).
//!
//! Pairs: OpenCV's sample chessboard pair (640x480, 128 disparities) and the
//! Middlebury Aloe pair (1282x1110, 192 disparities from 32).
//!
//! Run: `cargo bench --bench stereo` (set up first: scripts/setup.sh).
// A benchmark fails loudly on bad set-up: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use gstreamer as gst;
use gstreamer_video as gst_video;
use opencv::calib3d::StereoSGBM;
use opencv::core::{self, Mat};
use opencv::imgcodecs;
use opencv::prelude::*;
use percept::calib::StereoCalibration;
use percept::frame::Frame;
use percept::record::Record;
use percept::stage::Stage;
use percept::stages::stereo_depth::{
    DepthFrame, SgbmSettings, StereoDepthSettings, StereoDepthStage,
};

/// Alternating runs of each side for the side-by-side ratio.
const ALTERNATIONS: usize = 21;

fn media(name: &str) -> PathBuf {
    let dir = std::env::var_os("PERCEPT_MEDIA").map_or_else(
        || PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/percept/media"),
        PathBuf::from,
    );
    dir.join(name)
}

/// An RGB frame of an image file (the pixels percept's stage reads).
fn frame(path: &Path) -> Frame {
    let bgr =
        imgcodecs::imread(path.to_str().expect("path"), imgcodecs::IMREAD_COLOR).expect("image");
    let mut rgb = Mat::default();
    opencv::imgproc::cvt_color(&bgr, &mut rgb, opencv::imgproc::COLOR_BGR2RGB, 0).expect("rgb");
    let (w, h) = (rgb.cols() as u32, rgb.rows() as u32);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
        .build()
        .expect("info");
    let stride = info.stride()[0] as usize;
    let mut bytes = vec![0u8; info.size()];
    let data = rgb.data_bytes().expect("continuous image");
    let row = w as usize * 3;
    for y in 0..h as usize {
        bytes[y * stride..y * stride + row].copy_from_slice(&data[y * row..(y + 1) * row]);
    }
    Frame::from_bytes(info, bytes, "pair", 0)
}

fn stereo(c: &mut Criterion) {
    gst::init().expect("GStreamer");
    core::set_num_threads(1).expect("opencv threads");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (
            "640x480",
            "left01.jpg",
            "right01.jpg",
            "calibration/opencv_sample_stereo.toml",
            SgbmSettings::default(),
        ),
        (
            "aloe 1282x1110",
            "aloeL.jpg",
            "aloeR.jpg",
            "calibration/middlebury_aloe.toml",
            SgbmSettings {
                min_disparity: 32,
                num_disparities: 192,
                ..SgbmSettings::default()
            },
        ),
    ];
    for (name, l, r, cal, sgbm) in cases {
        let mut group = c.benchmark_group(format!("stereo {name}"));
        group.sample_size(10);
        let calibration_path = repo.join(cal);
        let calibration = StereoCalibration::load(&calibration_path).expect("calibration");
        let mut pair = frame(&media(l));
        pair.right = Some(Arc::new(frame(&media(r))));

        let gray = |p: &str| {
            imgcodecs::imread(
                media(p).to_str().expect("path"),
                imgcodecs::IMREAD_GRAYSCALE,
            )
            .expect("image")
        };
        let (gl, gr) = (gray(l), gray(r));
        let bs2 = sgbm.block_size * sgbm.block_size;
        let mut opencv_sgbm = StereoSGBM::create(
            sgbm.min_disparity,
            sgbm.num_disparities,
            sgbm.block_size,
            8 * bs2,
            32 * bs2,
            sgbm.disp12_max_diff,
            sgbm.pre_filter_cap,
            sgbm.uniqueness_ratio,
            sgbm.speckle_window_size,
            sgbm.speckle_range,
            opencv::calib3d::StereoSGBM_MODE_SGBM,
        )
        .expect("sgbm");
        let mut disparity = Mat::default();
        // Side by side first: the two alternate, so the machine's drift hits
        // both alike; the medians' ratio is the overhead.
        {
            let mut stage = StereoDepthStage::new(&StereoDepthSettings {
                calibration_path: calibration_path.clone(),
                calibration: calibration.clone(),
                sgbm: SgbmSettings {
                    full_width: false,
                    ..sgbm
                },
                max_depth_m: 0.0,
                box_shrink: 0.25,
                depth_frame: DepthFrame::Rectified,
            })
            .expect("stage");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..ALTERNATIONS {
                let t = std::time::Instant::now();
                opencv_sgbm
                    .compute(&gl, &gr, &mut disparity)
                    .expect("compute");
                a.push(t.elapsed().as_secs_f64());
                let t = std::time::Instant::now();
                let mut record = Record::default();
                stage.process(&pair, &mut record).expect("depth");
                b.push(t.elapsed().as_secs_f64());
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (ma, mb) = (median(&mut a), median(&mut b));
            println!(
                "stereo {name}: alternating x{ALTERNATIONS}: opencv sgbm {:.2} ms, percept {:.2} ms ({:.1} pairs/s), ratio {:.3}",
                ma * 1e3,
                mb * 1e3,
                1.0 / mb,
                mb / ma
            );
        }
        group.bench_function("opencv sgbm", |b| {
            b.iter(|| {
                opencv_sgbm
                    .compute(&gl, &gr, &mut disparity)
                    .expect("compute");
                black_box(disparity.rows())
            })
        });
        for (label, full_width) in [("percept", false), ("percept full_width", true)] {
            let mut stage = StereoDepthStage::new(&StereoDepthSettings {
                calibration_path: calibration_path.clone(),
                calibration: calibration.clone(),
                sgbm: SgbmSettings { full_width, ..sgbm },
                max_depth_m: 0.0,
                box_shrink: 0.25,
                depth_frame: DepthFrame::Rectified,
            })
            .expect("stage");
            group.bench_function(label, |b| {
                b.iter(|| {
                    let mut record = Record::default();
                    stage.process(black_box(&pair), &mut record).expect("depth");
                    black_box(record.depth.map(|d| d.width))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, stereo);
criterion_main!(benches);
