//! Rectification of a calibrated pair, computed once; per frame only `remap`
//! runs, into buffers the caller keeps. Pinhole pairs use OpenCV's
//! `stereoRectify` and `initUndistortRectifyMap`; fisheye pairs OpenCV's
//! `cv::fisheye::stereoRectify` and `cv::fisheye::initUndistortRectifyMap`
//! (balance 0: the rectified views keep only valid pixels, as alpha 0 does for
//! pinhole pairs). Either way the rectified views are ideal pinhole cameras.

use opencv::calib3d;
use opencv::core::{CV_16SC2, Mat, Point2f, Size, Vector};
use opencv::prelude::*;

use super::{Model, StereoCalibration, column, mat3, undistort};
use crate::record::CameraInfo;

/// Rectifying rotations, projections and pixel maps of a stereo pair.
///
/// `r1`, `r2` (3x3) turn each camera's frame into its rectified frame;
/// `p1`, `p2` (3x4, pixels) project the rectified frames, with
/// `p2[0, 3] = -f · B` (OpenCV's `stereoRectify` convention, also that of
/// `cv::fisheye::stereoRectify`).
pub struct Rectification {
    /// Rectifying rotation of the left camera.
    pub r1: Mat,
    /// Rectifying rotation of the right camera.
    pub r2: Mat,
    /// Projection of the left rectified camera.
    pub p1: Mat,
    /// Projection of the right rectified camera.
    pub p2: Mat,
    /// Rectified focal length (px) and principal point of the left view.
    pub focal_px: f64,
    /// Principal point x of the rectified views, px.
    pub cx: f64,
    /// Principal point y of the rectified views, px.
    pub cy: f64,
    /// Baseline (m) of the rectified pair.
    pub baseline_m: f64,
    /// Size of the rectified views.
    pub size: Size,
    /// Left remap tables (x, y).
    pub left_map: (Mat, Mat),
    /// Right remap tables (x, y).
    pub right_map: (Mat, Mat),
    /// The views are already rectified (no distortion, no rotation, same
    /// intrinsics): remapping would copy them unchanged, so it is skipped.
    pub identity: bool,
    model: Model,
    k1: Mat,
    d1: Mat,
    k2: Mat,
    d2: Mat,
}

impl Rectification {
    /// The left camera's calibration as ROS `CameraInfo` describes it: its
    /// matrix and distortion, `R1` and `P1` (see [`super::Camera::info`]).
    pub fn left_info(&self, c: &StereoCalibration) -> Result<CameraInfo, String> {
        let get = |m: &Mat, i: usize, cols: usize| {
            m.at_2d::<f64>((i / cols) as i32, (i % cols) as i32)
                .copied()
                .map_err(|e| e.to_string())
        };
        let mut r = [0.0; 9];
        for (i, v) in r.iter_mut().enumerate() {
            *v = get(&self.r1, i, 3)?;
        }
        let mut p = [0.0; 12];
        for (i, v) in p.iter_mut().enumerate() {
            *v = get(&self.p1, i, 4)?;
        }
        c.left.info(c.image_size.0, c.image_size.1, r, p)
    }

    /// Rectifies the pair by its cameras' model (see the module docs).
    pub fn new(c: &StereoCalibration) -> opencv::Result<Rectification> {
        let size = Size::new(c.image_size.0 as i32, c.image_size.1 as i32);
        let (k1, d1) = (mat3(&c.left.matrix)?, column(&c.left.distortion)?);
        let (k2, d2) = (mat3(&c.right.matrix)?, column(&c.right.distortion)?);
        let r = mat3(&c.rotation)?;
        let t = column(c.translation_m.as_slice())?;
        let (mut r1, mut r2, mut p1, mut p2, mut q) = (
            Mat::default(),
            Mat::default(),
            Mat::default(),
            Mat::default(),
            Mat::default(),
        );
        let model = c.left.model;
        match model {
            Model::Pinhole => calib3d::stereo_rectify(
                &k1,
                &d1,
                &k2,
                &d2,
                size,
                &r,
                &t,
                &mut r1,
                &mut r2,
                &mut p1,
                &mut p2,
                &mut q,
                calib3d::CALIB_ZERO_DISPARITY,
                0.0,
                size,
                None,
                None,
            )?,
            Model::Fisheye => calib3d::fisheye_stereo_rectify(
                &k1,
                &d1,
                &k2,
                &d2,
                size,
                &r,
                &t,
                &mut r1,
                &mut r2,
                &mut p1,
                &mut p2,
                &mut q,
                calib3d::CALIB_ZERO_DISPARITY,
                size,
                0.0,
                1.0,
            )?,
        }
        let map = |k: &Mat, d: &Mat, r: &Mat, p: &Mat| -> opencv::Result<(Mat, Mat)> {
            let (mut a, mut b) = (Mat::default(), Mat::default());
            match model {
                Model::Pinhole => {
                    calib3d::init_undistort_rectify_map(k, d, r, p, size, CV_16SC2, &mut a, &mut b)?
                }
                Model::Fisheye => calib3d::fisheye_init_undistort_rectify_map(
                    k, d, r, p, size, CV_16SC2, &mut a, &mut b,
                )?,
            }
            Ok((a, b))
        };
        let left_map = map(&k1, &d1, &r1, &p1)?;
        let right_map = map(&k2, &d2, &r2, &p2)?;
        let focal_px = *p1.at_2d::<f64>(0, 0)?;
        let same = |a: &Mat, b: &nalgebra::Matrix3<f64>| -> opencv::Result<bool> {
            for r in 0..3 {
                for col in 0..3 {
                    if (*a.at_2d::<f64>(r, col)? - b[(r as usize, col as usize)]).abs() > 1e-9 {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
        let eye = nalgebra::Matrix3::identity();
        // A fisheye lens without distortion is still equidistant, not pinhole.
        let identity = model == Model::Pinhole
            && c.left
                .distortion
                .iter()
                .chain(&c.right.distortion)
                .all(|d| *d == 0.0)
            && same(&r1, &eye)?
            && same(&r2, &eye)?
            && same(&p1, &c.left.matrix)?
            && same(&p2, &c.right.matrix)?;
        // P2[0, 3] = -f · B for a horizontal pair (Tx of the right view).
        let baseline_m = (*p2.at_2d::<f64>(0, 3)? / *p2.at_2d::<f64>(0, 0)?).abs();
        Ok(Rectification {
            cx: *p1.at_2d::<f64>(0, 2)?,
            cy: *p1.at_2d::<f64>(1, 2)?,
            r1,
            r2,
            p1,
            p2,
            focal_px,
            baseline_m,
            size,
            left_map,
            right_map,
            identity,
            model,
            k1,
            d1,
            k2,
            d2,
        })
    }

    /// Source pixels of the left view into the left rectified view (pixels),
    /// by the cameras' model (OpenCV `undistortPoints` or
    /// `cv::fisheye::undistortPoints` with `r1`, `p1`).
    pub fn undistort_left(
        &self,
        src: &Vector<Point2f>,
        dst: &mut Vector<Point2f>,
    ) -> opencv::Result<()> {
        undistort(self.model, &self.k1, &self.d1, src, dst, &self.r1, &self.p1)
    }

    /// Source pixels of the right view into the right rectified view
    /// (pixels), with `r2`, `p2`.
    pub fn undistort_right(
        &self,
        src: &Vector<Point2f>,
        dst: &mut Vector<Point2f>,
    ) -> opencv::Result<()> {
        undistort(self.model, &self.k2, &self.d2, src, dst, &self.r2, &self.p2)
    }
}

/// [`Rectification::left_info`], shared, for [`crate::stage::Stage::camera`];
/// `None` with a warning naming the file when the calibration has no ROS
/// form (the stage still works, only the calibration is not published).
pub fn published_camera(
    rect: &Rectification,
    c: &StereoCalibration,
    path: &std::path::Path,
) -> Option<std::sync::Arc<CameraInfo>> {
    match rect.left_info(c) {
        Ok(info) => Some(std::sync::Arc::new(info)),
        Err(e) => {
            tracing::warn!(
                "{}: `left.distortion`: {e}; the calibration is not published with the frames",
                path.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn load(name: &str) -> StereoCalibration {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("calibration")
            .join(name);
        StereoCalibration::load(&path).unwrap()
    }

    #[test]
    fn an_already_rectified_pair_skips_remapping_and_a_real_rig_does_not() {
        let aloe = Rectification::new(&load("middlebury_aloe.toml")).unwrap();
        assert!(aloe.identity);
        assert!((aloe.focal_px - 3740.0).abs() < 1e-9 && (aloe.baseline_m - 0.16).abs() < 1e-12);
        let rig = Rectification::new(&load("opencv_sample_stereo.toml")).unwrap();
        assert!(!rig.identity);
        assert!(
            (rig.baseline_m - 0.0835).abs() < 0.001,
            "{}",
            rig.baseline_m
        );
    }
}
