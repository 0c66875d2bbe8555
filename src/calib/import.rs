//! Imports calibrations written by other tools (`percept import-calibration`):
//! - OpenCV FileStorage YAML or XML, as OpenCV's `stereo_calib` sample writes it
//!   (`M1 D1 M2 D2` and `R T`, in one file or two) or with the long names
//!   (`cameraMatrix1`, `distCoeffs1`, …); the image size from `image_width` and
//!   `image_height` or `imageSize`, else given on the command line;
//! - ROS `camera_info` YAML, one file per camera: the right camera's
//!   projection matrix carries the baseline (`P[0,3] = -fx · B`), and the
//!   rectification matrices give the rotation between the cameras.

use std::path::{Path, PathBuf};

use nalgebra::{Matrix3, Vector3};
use opencv::core::{FileNode, FileStorage, FileStorage_Mode, Mat};
use opencv::prelude::*;
use serde::Deserialize;

use super::{Camera, StereoCalibration, from_mat3, values};

/// A file that cannot be imported, and the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{path}: `{field}`: {message}")]
pub struct ImportError {
    /// The file.
    pub path: PathBuf,
    /// The key that is missing or wrong.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(path: &Path, field: &str, message: impl Into<String>) -> ImportError {
    ImportError {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

/// Reads OpenCV FileStorage files (YAML or XML); the keys may be spread over
/// several files. `image_size` is used when the files do not say;
/// `metres_per_unit` scales `T` (OpenCV's T is in the board's units).
pub fn from_opencv(
    paths: &[PathBuf],
    image_size: Option<(u32, u32)>,
    metres_per_unit: f64,
) -> Result<StereoCalibration, ImportError> {
    let mut stores = Vec::new();
    for p in paths {
        let fs = FileStorage::new(p, FileStorage_Mode::READ as i32, "")
            .ok()
            .filter(|fs| fs.is_opened().unwrap_or(false))
            .ok_or_else(|| err(p, "-", "not an OpenCV FileStorage file (YAML or XML)"))?;
        stores.push((p.clone(), fs));
    }
    let first = paths.first().cloned().unwrap_or_default();
    let find = |names: &[&str]| -> Option<(PathBuf, FileNode)> {
        for (p, fs) in &stores {
            for n in names {
                if let Ok(node) = fs.get(n)
                    && !node.is_none().unwrap_or(true)
                {
                    return Some((p.clone(), node));
                }
            }
        }
        None
    };
    let mat = |names: &[&str]| -> Result<(PathBuf, Mat), ImportError> {
        let (p, node) = find(names).ok_or_else(|| {
            err(
                &first,
                names[0],
                format!("missing (looked for {})", names.join(", ")),
            )
        })?;
        let m = node
            .mat()
            .map_err(|e| err(&p, names[0], format!("not a matrix: {e}")))?;
        Ok((p, m))
    };
    let mat3 = |names: &[&str]| -> Result<Matrix3<f64>, ImportError> {
        let (p, m) = mat(names)?;
        if m.rows() != 3 || m.cols() != 3 {
            return Err(err(
                &p,
                names[0],
                format!("{}x{}, expected 3x3", m.rows(), m.cols()),
            ));
        }
        let mut m64 = Mat::default();
        m.convert_to(&mut m64, opencv::core::CV_64F, 1.0, 0.0)
            .and_then(|_| from_mat3(&m64))
            .map_err(|e| err(&p, names[0], e.to_string()))
    };
    let vector = |names: &[&str]| -> Result<Vec<f64>, ImportError> {
        let (p, m) = mat(names)?;
        values(&m).map_err(|e| err(&p, names[0], e.to_string()))
    };
    let number = |node: Option<(PathBuf, FileNode)>| node.and_then(|(_, n)| n.real().ok());
    let size = match (
        number(find(&["image_width", "imageWidth", "width"])),
        number(find(&["image_height", "imageHeight", "height"])),
    ) {
        (Some(w), Some(h)) => Some((w as u32, h as u32)),
        _ => find(&["imageSize", "image_size"]).and_then(|(_, n)| {
            let w = n.at(0).ok()?.real().ok()?;
            let h = n.at(1).ok()?.real().ok()?;
            Some((w as u32, h as u32))
        }),
    }
    .or(image_size)
    .ok_or_else(|| {
        err(
            &first,
            "image_width",
            "the files do not give the image size: pass --size WIDTHxHEIGHT",
        )
    })?;
    let t = vector(&["T", "translation"])?;
    if t.len() != 3 {
        return Err(err(&first, "T", format!("{} values, expected 3", t.len())));
    }
    let calibration = StereoCalibration {
        image_size: size,
        left: Camera {
            matrix: mat3(&["M1", "K1", "cameraMatrix1", "camera_matrix_left"])?,
            distortion: vector(&["D1", "distCoeffs1", "dist_coeffs_left"])?,
        },
        right: Camera {
            matrix: mat3(&["M2", "K2", "cameraMatrix2", "camera_matrix_right"])?,
            distortion: vector(&["D2", "distCoeffs2", "dist_coeffs_right"])?,
        },
        rotation: mat3(&["R", "rotation"])?,
        translation_m: Vector3::new(t[0], t[1], t[2]) * metres_per_unit,
        rms_px: None,
        description: Some(format!(
            "imported from OpenCV FileStorage {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    calibration
        .validate()
        .map_err(|p| err(&first, &p.field, p.message))?;
    Ok(calibration)
}

#[derive(Deserialize)]
struct RosMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

#[derive(Deserialize)]
struct RosCameraInfo {
    image_width: u32,
    image_height: u32,
    camera_matrix: RosMatrix,
    #[serde(default)]
    distortion_model: Option<String>,
    distortion_coefficients: RosMatrix,
    rectification_matrix: RosMatrix,
    projection_matrix: RosMatrix,
}

fn ros_file(path: &Path) -> Result<RosCameraInfo, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, "-", e.to_string()))?;
    let info: RosCameraInfo = serde_yaml_ng::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (line {})", l.line()))
            .unwrap_or_default();
        err(path, "-", format!("not a ROS camera_info file{at}: {e}"))
    })?;
    for (name, m, rows, cols) in [
        ("camera_matrix", &info.camera_matrix, 3, 3),
        ("rectification_matrix", &info.rectification_matrix, 3, 3),
        ("projection_matrix", &info.projection_matrix, 3, 4),
    ] {
        if (m.rows, m.cols) != (rows, cols) || m.data.len() != rows * cols {
            return Err(err(
                path,
                name,
                format!(
                    "expected {rows}x{cols} with {} values, found {}x{} with {}",
                    rows * cols,
                    m.rows,
                    m.cols,
                    m.data.len()
                ),
            ));
        }
    }
    if let Some(model) = &info.distortion_model
        && !matches!(model.as_str(), "plumb_bob" | "rational_polynomial")
    {
        return Err(err(
            path,
            "distortion_model",
            format!("`{model}`: only plumb_bob and rational_polynomial are OpenCV's model"),
        ));
    }
    Ok(info)
}

/// Reads a stereo pair from two ROS `camera_info` YAML files.
pub fn from_ros(left: &Path, right: &Path) -> Result<StereoCalibration, ImportError> {
    let (l, r) = (ros_file(left)?, ros_file(right)?);
    if (l.image_width, l.image_height) != (r.image_width, r.image_height) {
        return Err(err(
            right,
            "image_width",
            format!(
                "{}x{}, but the left camera is {}x{}",
                r.image_width, r.image_height, l.image_width, l.image_height
            ),
        ));
    }
    let m3 = |m: &RosMatrix| Matrix3::from_row_slice(&m.data);
    let (r1, r2) = (m3(&l.rectification_matrix), m3(&r.rectification_matrix));
    let p2 = &r.projection_matrix.data;
    if p2[0] == 0.0 {
        return Err(err(right, "projection_matrix", "fx' is 0"));
    }
    // In the rectified frames: X_r' = X_l' + (Tx, Ty, 0) with Tx = P2[0,3] / fx'.
    let t_rect = Vector3::new(p2[3] / p2[0], p2[7] / p2[5].max(f64::MIN_POSITIVE), 0.0);
    let calibration = StereoCalibration {
        image_size: (l.image_width, l.image_height),
        left: Camera {
            matrix: m3(&l.camera_matrix),
            distortion: l.distortion_coefficients.data.clone(),
        },
        right: Camera {
            matrix: m3(&r.camera_matrix),
            distortion: r.distortion_coefficients.data.clone(),
        },
        rotation: r2.transpose() * r1,
        translation_m: r2.transpose() * t_rect,
        rms_px: None,
        description: Some(format!(
            "imported from ROS camera_info {} and {}",
            left.display(),
            right.display()
        )),
    };
    calibration
        .validate()
        .map_err(|p| err(right, &p.field, p.message))?;
    Ok(calibration)
}
