//! Stereo: calibration from OpenCV's sample chessboard pairs, SGBM accuracy
//! on the Middlebury Aloe pair, pairing of two streams by time, depth and 3D
//! positions end to end.

use opencv::core::{CV_16S, Mat};
use opencv::imgcodecs;
use opencv::prelude::*;
use percept::calib::StereoCalibration;
use percept::stereo::depth::{SgbmSettings, StereoMatcher};

use crate::util::*;

fn gray(path: &std::path::Path) -> Mat {
    imgcodecs::imread(path.to_str().unwrap(), imgcodecs::IMREAD_GRAYSCALE).unwrap()
}

/// Against Middlebury's ground truth (0 = unknown), over the known pixels:
/// the median absolute disparity error of the matched ones, the share given a
/// disparity off by more than 2 px, and the share matched at all (SGBM's
/// invalid mask leaves occlusions and unsure pixels without a value).
fn disparity_errors(disparity: &Mat, truth: &Mat, min_disparity: i16) -> (f64, f64, f64) {
    assert_eq!(disparity.typ(), CV_16S);
    let (mut errors, mut known) = (Vec::new(), 0usize);
    for y in 0..truth.rows() {
        let t = truth.at_row::<u8>(y).unwrap();
        let d = disparity.at_row::<i16>(y).unwrap();
        for (gt, d) in t.iter().zip(d) {
            if *gt == 0 {
                continue;
            }
            known += 1;
            // Unmatched pixels are below the search range.
            if *d >= min_disparity * 16 {
                errors.push((f64::from(*d) / 16.0 - f64::from(*gt)).abs());
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let bad = errors.iter().filter(|e| **e > 2.0).count();
    let covered = errors.len();
    (
        errors[errors.len() / 2],
        bad as f64 / known as f64,
        covered as f64 / known as f64,
    )
}

#[test]
fn sgbm_on_the_aloe_pair_is_within_half_a_pixel_of_ground_truth() {
    let cal = StereoCalibration::load(&repo().join("calibration/middlebury_aloe.toml")).unwrap();
    // The ground truth spans 43..211 px.
    let sgbm = SgbmSettings {
        min_disparity: 32,
        num_disparities: 192,
        ..SgbmSettings::default()
    };
    let mut m = StereoMatcher::new(&cal, &sgbm).unwrap();
    let (l, r) = (gray(&media("aloeL.jpg")), gray(&media("aloeR.jpg")));
    m.compute(&l, &r, None).unwrap();

    let truth = gray(&media("aloeGT.png"));
    let (median, bad, covered) = disparity_errors(m.disparity(), &truth, 32);
    eprintln!(
        "Aloe: median |error| {median:.3} px, {:.2} % of known pixels off by > 2 px, {:.2} % matched",
        bad * 100.0,
        covered * 100.0
    );
    assert!(median <= 0.5, "median error {median}");
    assert!(bad < 0.10, "{:.1} % off by more than 2 px", bad * 100.0);
    assert!(covered > 0.8, "only {:.1} % matched", covered * 100.0);
}
