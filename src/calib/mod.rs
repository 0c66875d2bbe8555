//! Stereo camera calibration: percept's TOML format (`calibration/*.toml`),
//! its validation, writing, and conversions to and from OpenCV matrices.
//!
//! Conventions (OpenCV's): a camera frame has x right, y down, z forward, in
//! metres. `right_from_left` maps a point from the left camera's frame into the
//! right camera's: `X_r = R · X_l + t`. Intrinsics are `[[fx, 0, cx], [0, fy,
//! cy], [0, 0, 1]]` in pixels of an `image_size` image. Each camera names its
//! lens [`Model`]: `pinhole` (OpenCV's `calib3d` model, distortion
//! `(k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, τx, τy]]]])`) or `fisheye`
//! (OpenCV's `cv::fisheye`, the equidistant Kannala-Brandt model, distortion
//! `(k1, k2, k3, k4)`). The format is documented in `calibration/README.md`.
//!
//! [`board`] calibrates a pair from chessboard images; [`import`] reads
//! OpenCV FileStorage (YAML/XML) and ROS `camera_info` YAML.

pub mod board;
pub mod filestorage;
pub mod import;
pub mod rectify;

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use nalgebra::{Matrix3, Vector3};
use opencv::calib3d;
use opencv::core::{
    CV_64F, Mat, Scalar, TermCriteria, TermCriteria_Type, ToInputArray, ToOutputArray,
};
use opencv::prelude::*;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{ConfigError, line_col};
use crate::record::CameraInfo;

/// The only calibration-file version this build reads.
pub const CALIBRATION_VERSION: u32 = 1;

/// A camera's lens model: how its `distortion` coefficients are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// OpenCV's `calib3d` model (Brown-Conrady radial and tangential, rational,
    /// thin prism, tilt): `(k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, τx,
    /// τy]]]])`, 0, 4, 5, 8, 12 or 14 values. See OpenCV's "Camera Calibration
    /// and 3D Reconstruction" documentation.
    #[default]
    Pinhole,
    /// OpenCV's `cv::fisheye` model, the equidistant form of Kannala and
    /// Brandt ("A generic camera model and calibration method for
    /// conventional, wide-angle, and fish-eye lenses", PAMI 2006):
    /// `θ_d = θ (1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸)`, θ in radians, exactly 4
    /// values `(k1, k2, k3, k4)`. ROS calls it `equidistant`.
    Fisheye,
}

impl Model {
    /// The name used in calibration files (`pinhole`, `fisheye`).
    pub fn name(self) -> &'static str {
        match self {
            Model::Pinhole => "pinhole",
            Model::Fisheye => "fisheye",
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One camera's intrinsics.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    /// How `distortion` is read.
    pub model: Model,
    /// `[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`, pixels.
    pub matrix: Matrix3<f64>,
    /// Pinhole: OpenCV order, 0, 4, 5, 8, 12 or 14 values. Fisheye: `k1..k4`.
    pub distortion: Vec<f64>,
}

impl Camera {
    /// The pixel `(u, v)` at which a point `p` of the camera's frame (metres,
    /// x right, y down, z forward) is imaged, or `None` behind the camera
    /// (`z <= 0`).
    ///
    /// Pinhole, as OpenCV's `projectPoints` ("Camera Calibration and 3D
    /// Reconstruction"): `x' = x/z`, `y' = y/z`, `r² = x'² + y'²`,
    /// `x'' = x' (1 + k1 r² + k2 r⁴ + k3 r⁶) / (1 + k4 r² + k5 r⁴ + k6 r⁶) +
    /// 2 p1 x'y' + p2 (r² + 2x'²) + s1 r² + s2 r⁴` (y'' alike), then the tilt
    /// by `τx, τy` (radians) gives `(x_t, y_t)` and `u = fx x_t + cx`,
    /// `v = fy y_t + cy` (OpenCV ignores the skew here too).
    ///
    /// Fisheye, as OpenCV's `cv::fisheye::projectPoints` (Kannala-Brandt
    /// 2006, equidistant): `a = x/z`, `b = y/z`, `r = √(a² + b²)`,
    /// `θ = atan r`, `θ_d = θ (1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸)`,
    /// `u = fx (θ_d / r) a + cx`, `v = fy (θ_d / r) b + cy`.
    pub fn project(&self, p: &Vector3<f64>) -> Option<(f64, f64)> {
        if p.z.is_nan() || p.z <= 0.0 {
            return None;
        }
        let (a, b) = (p.x / p.z, p.y / p.z);
        let k = &self.matrix;
        let d = |i: usize| self.distortion.get(i).copied().unwrap_or(0.0);
        let (x, y) = match self.model {
            Model::Fisheye => {
                let r = (a * a + b * b).sqrt();
                let theta = r.atan();
                let t2 = theta * theta;
                let theta_d = theta * (1.0 + t2 * (d(0) + t2 * (d(1) + t2 * (d(2) + t2 * d(3)))));
                let scale = if r > 1e-12 { theta_d / r } else { 1.0 };
                (a * scale, b * scale)
            }
            Model::Pinhole => {
                let r2 = a * a + b * b;
                let radial = (1.0 + r2 * (d(0) + r2 * (d(1) + r2 * d(4))))
                    / (1.0 + r2 * (d(5) + r2 * (d(6) + r2 * d(7))));
                let x = a * radial
                    + 2.0 * d(2) * a * b
                    + d(3) * (r2 + 2.0 * a * a)
                    + r2 * (d(8) + r2 * d(9));
                let y = b * radial
                    + d(2) * (r2 + 2.0 * b * b)
                    + 2.0 * d(3) * a * b
                    + r2 * (d(10) + r2 * d(11));
                let t = tilt(d(12), d(13)) * Vector3::new(x, y, 1.0);
                (t.x / t.z, t.y / t.z)
            }
        };
        Some((k[(0, 0)] * x + k[(0, 2)], k[(1, 1)] * y + k[(1, 2)]))
    }

    /// Undistorts pixels of this camera (OpenCV `undistortPoints` or
    /// `cv::fisheye::undistortPoints`, by the model): `r` (3x3, may be empty)
    /// turns the normalised rays, `p` (3x3 or 3x4, may be empty) projects them
    /// back to pixels; with both empty the result is normalised coordinates.
    pub fn undistort_points(
        &self,
        src: &impl ToInputArray,
        dst: &mut impl ToOutputArray,
        r: &impl ToInputArray,
        p: &impl ToInputArray,
    ) -> opencv::Result<()> {
        undistort(
            self.model,
            &mat3(&self.matrix)?,
            &column(&self.distortion)?,
            src,
            dst,
            r,
            p,
        )
    }
}

impl Camera {
    /// This camera's calibration as ROS `CameraInfo` / `foxglove.CameraCalibration`
    /// describe it, for a `width` x `height` image, with rectifying rotation
    /// `r` and rectified projection `p` (row-major; a single camera has `r`
    /// identity and `p = [K | 0]`, see [`Camera::info_mono`]).
    ///
    /// Distortion: pinhole coefficients become `plumb_bob` (up to 5, padded
    /// with zeros) or `rational_polynomial` (8); OpenCV's thin-prism and
    /// tilt terms (values 9 to 14) have no ROS name, so a calibration that
    /// uses them is an error (trailing zeros are dropped). Fisheye
    /// coefficients become `kannala_brandt` (OpenCV's fisheye model).
    pub fn info(
        &self,
        width: u32,
        height: u32,
        r: [f64; 9],
        p: [f64; 12],
    ) -> Result<CameraInfo, String> {
        let mut d = self.distortion.clone();
        let (distortion_model, len) = match self.model {
            Model::Fisheye => ("kannala_brandt", 4),
            Model::Pinhole => {
                while d.len() > 8 && d.last() == Some(&0.0) {
                    d.pop();
                }
                match d.len() {
                    0..=5 => ("plumb_bob", 5),
                    6..=8 => ("rational_polynomial", 8),
                    n => {
                        return Err(format!(
                            "distortion has {n} non-zero-padded values: thin-prism and tilt \
                             terms have no ROS / Foxglove distortion model"
                        ));
                    }
                }
            }
        };
        d.resize(len, 0.0);
        let mut k = [0.0; 9];
        for (i, v) in k.iter_mut().enumerate() {
            *v = self.matrix[(i / 3, i % 3)];
        }
        Ok(CameraInfo {
            width,
            height,
            distortion_model,
            d,
            k,
            r,
            p,
        })
    }

    /// [`Camera::info`] of a single camera: `r` identity, `p = [K | 0]`.
    pub fn info_mono(&self, width: u32, height: u32) -> Result<CameraInfo, String> {
        let m = &self.matrix;
        let p = [
            m[(0, 0)],
            m[(0, 1)],
            m[(0, 2)],
            0.0,
            m[(1, 0)],
            m[(1, 1)],
            m[(1, 2)],
            0.0,
            m[(2, 0)],
            m[(2, 1)],
            m[(2, 2)],
            0.0,
        ];
        let r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        self.info(width, height, r, p)
    }
}

/// OpenCV's tilt of the image plane (`computeTiltProjectionMatrix`), for the
/// pinhole model's `τx, τy` (radians).
fn tilt(tau_x: f64, tau_y: f64) -> Matrix3<f64> {
    if tau_x == 0.0 && tau_y == 0.0 {
        return Matrix3::identity();
    }
    let (sx, cx) = tau_x.sin_cos();
    let (sy, cy) = tau_y.sin_cos();
    let rot_x = Matrix3::new(1.0, 0.0, 0.0, 0.0, cx, sx, 0.0, -sx, cx);
    let rot_y = Matrix3::new(cy, 0.0, -sy, 0.0, 1.0, 0.0, sy, 0.0, cy);
    let rot_xy = rot_y * rot_x;
    let proj_z = Matrix3::new(
        rot_xy[(2, 2)],
        0.0,
        -rot_xy[(0, 2)],
        0.0,
        rot_xy[(2, 2)],
        -rot_xy[(1, 2)],
        0.0,
        0.0,
        1.0,
    );
    proj_z * rot_xy
}

/// Undistorts `src` pixels by `model` with OpenCV (`undistortPoints`, or
/// `cv::fisheye::undistortPoints` iterating up to 20 times or to a change
/// under 1e-10 in normalised units).
pub(crate) fn undistort(
    model: Model,
    k: &Mat,
    d: &Mat,
    src: &impl ToInputArray,
    dst: &mut impl ToOutputArray,
    r: &impl ToInputArray,
    p: &impl ToInputArray,
) -> opencv::Result<()> {
    match model {
        Model::Pinhole => calib3d::undistort_points(src, dst, k, d, r, p),
        Model::Fisheye => calib3d::fisheye_undistort_points(
            src,
            dst,
            k,
            d,
            r,
            p,
            TermCriteria::new(
                TermCriteria_Type::COUNT as i32 + TermCriteria_Type::EPS as i32,
                20,
                1e-10,
            )?,
        ),
    }
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
    model: Option<Spanned<Model>>,
    camera_matrix: Spanned<[[f64; 3]; 3]>,
    distortion: Spanned<Vec<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtrinsicsSpec {
    rotation: Spanned<[[f64; 3]; 3]>,
    translation_m: Spanned<[f64; 3]>,
}

fn model_of(c: &CameraSpec) -> Model {
    c.model.as_ref().map(|m| *m.get_ref()).unwrap_or_default()
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
                model: model_of(&file.left),
                matrix: matrix(file.left.camera_matrix.get_ref()),
                distortion: file.left.distortion.get_ref().clone(),
            },
            right: Camera {
                model: model_of(&file.right),
                matrix: matrix(file.right.camera_matrix.get_ref()),
                distortion: file.right.distortion.get_ref().clone(),
            },
            rotation: matrix(file.right_from_left.rotation.get_ref()),
            translation_m: Vector3::from(*file.right_from_left.translation_m.get_ref()),
            rms_px: file.rms_px,
            description: file.description,
        };
        calibration.validate().map_err(|p| {
            let model_span = |c: &CameraSpec| match &c.model {
                Some(m) => m.span(),
                None => c.camera_matrix.span(),
            };
            let span = match p.field.as_str() {
                "image_size" => file.image_size.span(),
                "left.model" => model_span(&file.left),
                "right.model" => model_span(&file.right),
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
            let n = cam.distortion.len();
            let finite = cam.distortion.iter().all(|v| v.is_finite());
            match cam.model {
                Model::Pinhole if !finite || ![0, 4, 5, 8, 12, 14].contains(&n) => {
                    return Err(problem(
                        format!("{name}.distortion"),
                        format!(
                            "pinhole (OpenCV's k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, τx, τy]]]]): \
                             0, 4, 5, 8, 12 or 14 finite values, found {n}"
                        ),
                    ));
                }
                Model::Fisheye if !finite || n != 4 => {
                    return Err(problem(
                        format!("{name}.distortion"),
                        format!("fisheye (k1, k2, k3, k4): exactly 4 finite values, found {n}"),
                    ));
                }
                Model::Fisheye if k[(0, 1)] != 0.0 => {
                    return Err(problem(
                        format!("{name}.camera_matrix"),
                        "fisheye: the skew (row 1, column 2) must be 0: OpenCV's fisheye \
                         functions ignore it",
                    ));
                }
                _ => {}
            }
        }
        if self.left.model != self.right.model {
            return Err(problem(
                "right.model",
                format!(
                    "`{}`, but the left camera is `{}`: both cameras of a pair must use the same model",
                    self.right.model, self.left.model
                ),
            ));
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
            let _ = writeln!(s, "model = \"{}\"", cam.model);
            let _ = writeln!(s, "camera_matrix = {}", rows(&cam.matrix));
            let names = match (cam.model, cam.distortion.len()) {
                (Model::Fisheye, _) => "k1, k2, k3, k4 (equidistant, θ in radians)",
                (Model::Pinhole, 0) => "none",
                (Model::Pinhole, 4) => "k1, k2, p1, p2",
                (Model::Pinhole, 5) => "k1, k2, p1, p2, k3",
                (Model::Pinhole, 8) => "k1, k2, p1, p2, k3, k4, k5, k6",
                (Model::Pinhole, 12) => "k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4",
                (Model::Pinhole, _) => "k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4, τx, τy",
            };
            let _ = writeln!(s, "distortion = {}   # {names}", list(&cam.distortion));
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
                model: Model::Pinhole,
                matrix: Matrix3::new(500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0),
                distortion: vec![0.1, -0.2, 0.001, 0.0, 0.05],
            },
            right: Camera {
                model: Model::Pinhole,
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
    fn camera_info_names_the_ros_distortion_model_or_refuses() {
        let mut cam = sample().left;
        let info = |c: &Camera| c.info_mono(640, 480);
        let i = info(&cam).unwrap();
        assert_eq!((i.distortion_model, i.d.len()), ("plumb_bob", 5));
        assert_eq!(i.k, [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]);
        assert_eq!(i.p[..4], [500.0, 0.0, 320.0, 0.0]);
        assert_eq!(i.r, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        cam.distortion = vec![0.1, -0.2];
        assert_eq!(info(&cam).unwrap().d, [0.1, -0.2, 0.0, 0.0, 0.0]);
        cam.distortion = vec![0.1, -0.2, 0.0, 0.0, 0.01, 0.3, 0.0, 0.0];
        let i = info(&cam).unwrap();
        assert_eq!((i.distortion_model, i.d.len()), ("rational_polynomial", 8));
        // Thin-prism terms that are all zero are dropped; others refused.
        cam.distortion.extend([0.0; 4]);
        assert_eq!(info(&cam).unwrap().distortion_model, "rational_polynomial");
        cam.distortion[9] = 0.001;
        assert!(info(&cam).unwrap_err().contains("thin-prism"));
        cam.model = Model::Fisheye;
        cam.distortion = vec![0.01, -0.02, 0.003, -0.001];
        let i = info(&cam).unwrap();
        assert_eq!((i.distortion_model, i.d.len()), ("kannala_brandt", 4));
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

    fn fisheye() -> StereoCalibration {
        let mut c = sample();
        for cam in [&mut c.left, &mut c.right] {
            cam.model = Model::Fisheye;
            cam.distortion = vec![0.17, -0.03, 0.0004, -0.0007];
        }
        c
    }

    #[test]
    fn the_model_is_written_read_back_and_pinhole_by_default() {
        let c = fisheye();
        let text = c.to_toml();
        assert_eq!(text.matches("model = \"fisheye\"").count(), 2, "{text}");
        let back = StereoCalibration::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(back, c, "{text}");
        // Files from before the field: pinhole.
        let old = sample().to_toml().replace("model = \"pinhole\"\n", "");
        assert!(!old.contains("model ="), "{old}");
        let back = StereoCalibration::parse(&old, Path::new("x.toml")).unwrap();
        assert_eq!(back.left.model, Model::Pinhole);
        assert_eq!(back, sample());
    }

    #[test]
    fn refuses_unknown_models_wrong_fisheye_coefficients_and_mixed_pairs() {
        let text = fisheye().to_toml();
        let err = |t: String| {
            StereoCalibration::parse(&t, Path::new("cal.toml"))
                .unwrap_err()
                .to_string()
        };
        let line_of = |t: &str, what: &str| t.lines().position(|l| l.contains(what)).unwrap() + 1;
        let t = text.replacen("model = \"fisheye\"", "model = \"omni\"", 1);
        let e = err(t.clone());
        assert!(
            e.starts_with(&format!("cal.toml:{}:", line_of(&t, "omni")))
                && e.contains("`left.model`")
                && e.contains("omni"),
            "{e}"
        );
        let t = text.replacen(
            "[0.17, -0.03, 0.0004, -0.0007]",
            "[0.17, -0.03, 0.0004, -0.0007, 0.0]",
            1,
        );
        let e = err(t.clone());
        assert!(
            e.starts_with(&format!("cal.toml:{}:", line_of(&t, "-0.0007, 0.0]")))
                && e.contains("`left.distortion`")
                && e.contains("exactly 4")
                && e.contains("found 5"),
            "{e}"
        );
        let t = text.replacen("model = \"fisheye\"", "model = \"pinhole\"", 1);
        let e = err(t.clone());
        let right_model = t.rfind("model = \"fisheye\"").unwrap();
        let line = t[..right_model].lines().count() + 1;
        assert!(
            e.starts_with(&format!("cal.toml:{line}:")) && e.contains("`right.model`"),
            "{e}"
        );
        let e = err(text.replacen("[[500.0, 0.0,", "[[500.0, 0.5,", 1));
        assert!(
            e.contains("`left.camera_matrix`") && e.contains("skew"),
            "{e}"
        );
    }

    fn opencv_points(points: &[Vector3<f64>]) -> opencv::core::Vector<opencv::core::Point3d> {
        points
            .iter()
            .map(|p| opencv::core::Point3d::new(p.x, p.y, p.z))
            .collect()
    }

    fn directions() -> Vec<Vector3<f64>> {
        let mut out = Vec::new();
        for i in -4..=4 {
            for j in -3..=3 {
                out.push(Vector3::new(f64::from(i) * 0.3, f64::from(j) * 0.25, 1.0) * 2.0);
            }
        }
        out
    }

    #[test]
    fn projection_matches_opencv_for_both_models() {
        let zero = Mat::from_slice(&[0.0f64, 0.0, 0.0]).unwrap();
        let pts = directions();
        let fish = fisheye().left;
        let mut cv = opencv::core::Vector::<opencv::core::Point2d>::new();
        calib3d::fisheye_project_points_vec_def(
            &opencv_points(&pts),
            &mut cv,
            &zero,
            &zero,
            &mat3(&fish.matrix).unwrap(),
            &column(&fish.distortion).unwrap(),
        )
        .unwrap();
        for (p, c) in pts.iter().zip(cv.iter()) {
            let (u, v) = fish.project(p).unwrap();
            assert!(
                (u - c.x).abs() < 1e-6 && (v - c.y).abs() < 1e-6,
                "{p} {u} {v} {c:?}"
            );
        }
        let mut pin = sample().left;
        pin.distortion = vec![
            0.1, -0.2, 0.001, -0.002, 0.05, 0.01, -0.02, 0.003, 0.001, -0.001, 0.002, 0.0005, 0.01,
            -0.02,
        ];
        pin.matrix[(0, 1)] = 0.0;
        calib3d::project_points_def(
            &opencv_points(&pts),
            &zero,
            &zero,
            &mat3(&pin.matrix).unwrap(),
            &column(&pin.distortion).unwrap(),
            &mut cv,
        )
        .unwrap();
        for (p, c) in pts.iter().zip(cv.iter()) {
            let (u, v) = pin.project(p).unwrap();
            assert!(
                (u - c.x).abs() < 1e-6 && (v - c.y).abs() < 1e-6,
                "{p} {u} {v} {c:?}"
            );
        }
        assert_eq!(fish.project(&Vector3::new(0.0, 0.0, -1.0)), None);
    }

    #[test]
    fn fisheye_undistortion_inverts_the_projection() {
        let fish = fisheye().left;
        let pts = directions();
        let pixels: opencv::core::Vector<opencv::core::Point2f> = pts
            .iter()
            .map(|p| {
                let (u, v) = fish.project(p).unwrap();
                opencv::core::Point2f::new(u as f32, v as f32)
            })
            .collect();
        let mut rays = opencv::core::Vector::<opencv::core::Point2f>::new();
        fish.undistort_points(&pixels, &mut rays, &Mat::default(), &Mat::default())
            .unwrap();
        for (p, r) in pts.iter().zip(rays.iter()) {
            // f32 pixels: 1e-4 px is about 1e-7 in normalised units.
            assert!(
                (f64::from(r.x) - p.x / p.z).abs() < 1e-5
                    && (f64::from(r.y) - p.y / p.z).abs() < 1e-5,
                "{p} {r:?}"
            );
        }
    }
}
