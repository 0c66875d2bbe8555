//! Stereo camera calibration: percept's TOML format (`calibration/*.toml`),
//! its validation, writing, and conversions to and from OpenCV matrices.
//!
//! Conventions (OpenCV's): a camera frame has x right, y down, z forward, in
//! metres. `right_from_left` maps a point from the left camera's frame into the
//! right camera's: `X_r = R · X_l + t`. Intrinsics are `[[fx, 0, cx], [0, fy,
//! cy], [0, 0, 1]]` in pixels of an `image_size` image; distortion is OpenCV's
//! `(k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, τx, τy]]]])`. The format is
//! documented in `calibration/README.md`.
//!
//! [`board`] calibrates a pair from chessboard images; [`import`] reads
//! OpenCV FileStorage (YAML/XML) and ROS `camera_info` YAML.

pub mod board;
pub mod import;
pub mod rectify;

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use nalgebra::{Matrix3, Vector3};
use opencv::core::{CV_64F, Mat, Scalar};
use opencv::prelude::*;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{ConfigError, line_col};

/// The only calibration-file version this build reads.
pub const CALIBRATION_VERSION: u32 = 1;

/// One camera's intrinsics.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    /// The 3×3 intrinsic matrix `K` (pixels).
    pub matrix: Matrix3<f64>,
    /// OpenCV order; 0, 4, 5, 8, 12 or 14 values.
    pub distortion: Vec<f64>,
}

/// A calibrated stereo pair.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoCalibration {
    /// Width and height the intrinsics are for.
    pub image_size: (u32, u32),
    /// The left camera.
    pub left: Camera,
    /// The right camera.
    pub right: Camera,
    /// `X_r = rotation · X_l + translation_m`.
    pub rotation: Matrix3<f64>,
    /// `t` in `X_right = R·X_left + t`, metres.
    pub translation_m: Vector3<f64>,
    /// RMS reprojection error of the calibration, when known.
    pub rms_px: Option<f64>,
    /// Where it came from (written as a comment).
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationFile {
    version: Spanned<u32>,
    description: Option<String>,
    image_size: Spanned<[u32; 2]>,
    rms_px: Option<f64>,
    left: CameraSpec,
    right: CameraSpec,
    right_from_left: ExtrinsicsSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraSpec {
    camera_matrix: Spanned<[[f64; 3]; 3]>,
    distortion: Spanned<Vec<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtrinsicsSpec {
    rotation: Spanned<[[f64; 3]; 3]>,
    translation_m: Spanned<[f64; 3]>,
}

fn matrix(rows: &[[f64; 3]; 3]) -> Matrix3<f64> {
    Matrix3::from_fn(|r, c| rows[r][c])
}

/// Why a calibration cannot be used, and which field says so.
pub(crate) struct Problem {
    pub field: String,
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

impl StereoCalibration {
    /// Reads and validates a calibration file (TOML). Errors name the file,
    /// the line and the field.
    pub fn load(path: &Path) -> Result<StereoCalibration, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates calibration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<StereoCalibration, ConfigError> {
        let file: CalibrationFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                field: crate::config::key_at(text, span.start),
                message: e.message().to_string(),
            }
        })?;
        let at = |span: Range<usize>, p: Problem| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_col(text, span.start).0,
            field: p.field,
            message: p.message,
        };
        if *file.version.get_ref() != CALIBRATION_VERSION {
            return Err(at(
                file.version.span(),
                problem(
                    "version",
                    format!("this build reads version {CALIBRATION_VERSION}"),
                ),
            ));
        }
        let [w, h] = *file.image_size.get_ref();
        let calibration = StereoCalibration {
            image_size: (w, h),
            left: Camera {
                matrix: matrix(file.left.camera_matrix.get_ref()),
                distortion: file.left.distortion.get_ref().clone(),
            },
            right: Camera {
                matrix: matrix(file.right.camera_matrix.get_ref()),
                distortion: file.right.distortion.get_ref().clone(),
            },
            rotation: matrix(file.right_from_left.rotation.get_ref()),
            translation_m: Vector3::from(*file.right_from_left.translation_m.get_ref()),
            rms_px: file.rms_px,
            description: file.description,
        };
        calibration.validate().map_err(|p| {
            let span = match p.field.as_str() {
                "image_size" => file.image_size.span(),
                "left.camera_matrix" => file.left.camera_matrix.span(),
                "left.distortion" => file.left.distortion.span(),
                "right.camera_matrix" => file.right.camera_matrix.span(),
                "right.distortion" => file.right.distortion.span(),
                "right_from_left.rotation" => file.right_from_left.rotation.span(),
                _ => file.right_from_left.translation_m.span(),
            };
            at(span, p)
        })?;
        Ok(calibration)
    }

    /// Checks that the numbers describe a usable stereo pair.
    pub(crate) fn validate(&self) -> Result<(), Problem> {
        let (w, h) = self.image_size;
        if w == 0 || h == 0 {
            return Err(problem("image_size", "width and height must be positive"));
        }
        for (name, cam) in [("left", &self.left), ("right", &self.right)] {
            let k = &cam.matrix;
            let ok = k.iter().all(|v| v.is_finite())
                && k[(0, 0)] > 0.0
                && k[(1, 1)] > 0.0
                && k[(1, 0)] == 0.0
                && k[(2, 0)] == 0.0
                && k[(2, 1)] == 0.0
                && k[(2, 2)] == 1.0;
            if !ok {
                return Err(problem(
                    format!("{name}.camera_matrix"),
                    "must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0",
                ));
            }
            if ![0, 4, 5, 8, 12, 14].contains(&cam.distortion.len())
                || cam.distortion.iter().any(|v| !v.is_finite())
            {
                return Err(problem(
                    format!("{name}.distortion"),
                    format!(
                        "OpenCV's coefficients: 0, 4, 5, 8, 12 or 14 finite values, found {}",
                        cam.distortion.len()
                    ),
                ));
            }
        }
        let r = &self.rotation;
        let det = r.determinant();
        let orthogonality = (r.transpose() * r - Matrix3::identity()).abs().max();
        if !det.is_finite() || (det - 1.0).abs() > 1e-3 || orthogonality > 1e-3 {
            return Err(problem(
                "right_from_left.rotation",
                format!(
                    "not a rotation matrix (determinant {det:.4}, |RᵀR − I| up to {orthogonality:.2e})"
                ),
            ));
        }
        let baseline = self.translation_m.norm();
        if !baseline.is_finite() || baseline < 1e-6 {
            return Err(problem(
                "right_from_left.translation_m",
                format!("the baseline is {baseline} m: the cameras must be apart"),
            ));
        }
        Ok(())
    }

    /// Distance between the two camera centres, metres.
    pub fn baseline_m(&self) -> f64 {
        self.translation_m.norm()
    }

    /// The calibration as percept's TOML, with comments.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# percept stereo calibration (format: calibration/README.md)"
        );
        let _ = writeln!(s, "version = {CALIBRATION_VERSION}");
        if let Some(d) = &self.description {
            let _ = writeln!(s, "description = {}", toml_string(d));
        }
        let _ = writeln!(
            s,
            "image_size = [{}, {}]   # width, height (px)",
            self.image_size.0, self.image_size.1
        );
        if let Some(rms) = self.rms_px {
            let _ = writeln!(s, "rms_px = {rms:.4}   # RMS reprojection error");
        }
        for (name, cam) in [("left", &self.left), ("right", &self.right)] {
            let _ = writeln!(s, "\n[{name}]");
            let _ = writeln!(s, "camera_matrix = {}", rows(&cam.matrix));
            let _ = writeln!(
                s,
                "distortion = {}   # k1, k2, p1, p2, k3",
                list(&cam.distortion)
            );
        }
        let _ = writeln!(
            s,
            "\n[right_from_left]   # X_right = rotation · X_left + translation_m"
        );
        let _ = writeln!(s, "rotation = {}", rows(&self.rotation));
        let _ = writeln!(
            s,
            "translation_m = {}   # baseline {:.4} m",
            list(self.translation_m.as_slice()),
            self.baseline_m()
        );
        s
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn num(v: f64) -> String {
    // Shortest text that reads back to the same f64, always with a decimal point.
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E', 'n', 'i']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn list(v: &[f64]) -> String {
    format!(
        "[{}]",
        v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(", ")
    )
}

fn rows(m: &Matrix3<f64>) -> String {
    let r: Vec<String> = (0..3)
        .map(|i| list(&[m[(i, 0)], m[(i, 1)], m[(i, 2)]]))
        .collect();
    format!("[{}]", r.join(", "))
}

/// A 3x3 nalgebra matrix as an OpenCV `CV_64F` Mat.
pub(crate) fn mat3(m: &Matrix3<f64>) -> opencv::Result<Mat> {
    let mut out = Mat::new_rows_cols_with_default(3, 3, CV_64F, Scalar::all(0.0))?;
    for r in 0..3 {
        for c in 0..3 {
            *out.at_2d_mut::<f64>(r, c)? = m[(r as usize, c as usize)];
        }
    }
    Ok(out)
}

/// A vector as an OpenCV `CV_64F` column Mat.
pub(crate) fn column(v: &[f64]) -> opencv::Result<Mat> {
    let mut out = Mat::new_rows_cols_with_default(v.len() as i32, 1, CV_64F, Scalar::all(0.0))?;
    for (i, x) in v.iter().enumerate() {
        *out.at_2d_mut::<f64>(i as i32, 0)? = *x;
    }
    Ok(out)
}

/// An OpenCV `CV_64F` Mat of 3x3 as nalgebra.
pub(crate) fn from_mat3(m: &Mat) -> opencv::Result<Matrix3<f64>> {
    let mut out = Matrix3::zeros();
    for r in 0..3 {
        for c in 0..3 {
            out[(r, c)] = *m.at_2d::<f64>(r as i32, c as i32)?;
        }
    }
    Ok(out)
}

/// All values of a continuous `CV_64F` Mat, row by row.
pub(crate) fn values(m: &Mat) -> opencv::Result<Vec<f64>> {
    let mut m64 = Mat::default();
    m.convert_to(&mut m64, CV_64F, 1.0, 0.0)?;
    let m64 = if m64.is_continuous() {
        m64
    } else {
        m64.try_clone()?
    };
    Ok(m64.data_typed::<f64>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> StereoCalibration {
        StereoCalibration {
            image_size: (640, 480),
            left: Camera {
                matrix: Matrix3::new(500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0),
                distortion: vec![0.1, -0.2, 0.001, 0.0, 0.05],
            },
            right: Camera {
                matrix: Matrix3::new(510.0, 0.0, 318.5, 0.0, 505.0, 241.0, 0.0, 0.0, 1.0),
                distortion: vec![0.0; 5],
            },
            rotation: Matrix3::identity(),
            translation_m: Vector3::new(-0.12, 0.0, 0.001),
            rms_px: Some(0.25),
            description: Some("unit test \"pair\"".into()),
        }
    }

    #[test]
    fn writes_and_reads_back_the_same_numbers() {
        let c = sample();
        let text = c.to_toml();
        let back = StereoCalibration::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(back, c, "{text}");
    }

    fn error_for(edit: impl Fn(String) -> String) -> String {
        let text = edit(sample().to_toml());
        StereoCalibration::parse(&text, Path::new("cal.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn refuses_singular_rotations_zero_baselines_and_bad_intrinsics() {
        let e = error_for(|t| {
            t.replace(
                "rotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]",
                "rotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]",
            )
        });
        assert!(
            e.starts_with("cal.toml:") && e.contains("`right_from_left.rotation`"),
            "{e}"
        );
        assert!(e.contains("determinant 0.0000"), "{e}");
        let e = error_for(|t| t.replace("[-0.12, 0.0, 0.001]", "[0.0, 0.0, 0.0]"));
        assert!(
            e.contains("`right_from_left.translation_m`") && e.contains("baseline"),
            "{e}"
        );
        let e = error_for(|t| t.replacen("[[500.0", "[[-500.0", 1));
        assert!(e.contains("`left.camera_matrix`"), "{e}");
        let e = error_for(|t| t.replacen("[0.1, -0.2, 0.001, 0.0, 0.05]", "[0.1, 0.2]", 1));
        assert!(
            e.contains("`left.distortion`") && e.contains("found 2"),
            "{e}"
        );
        let e = error_for(|t| t.replace("image_size = [640, 480]", "image_size = [640]"));
        assert!(e.contains("`image_size`"), "{e}");
        let e = error_for(|t| t.replace("rms_px", "rms"));
        assert!(e.contains("unknown field `rms`"), "{e}");
    }
}
