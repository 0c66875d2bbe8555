//! Imports calibrations written by other tools (`percept import-calibration`):
//! - OpenCV FileStorage YAML or XML, as OpenCV's `stereo_calib` sample writes it
//!   (`M1 D1 M2 D2` and `R T`, in one file or two) or with the long names
//!   (`cameraMatrix1`, `distCoeffs1`, …); the image size from `image_width` and
//!   `image_height` or `imageSize`, else given on the command line;
//! - ROS `camera_info` YAML, one file per camera: the right camera's
//!   projection matrix carries the baseline (`P[0,3] = -fx · B`), and the
//!   rectification matrices give the rotation between the cameras.
//!
//! The lens model of both cameras ([`Model`]) comes from the files where they
//! say it, else from the caller (`--model`):
//! - ROS: `distortion_model` `plumb_bob` or `rational_polynomial` is pinhole,
//!   `equidistant` is fisheye; without `distortion_model`, `camera_model`
//!   (ROS Melodic's fisheye calibrator) `pinhole` or `fisheye`. Any other value
//!   is refused, naming the key and the value.
//! - OpenCV: `fisheye_model` (0 or 1, as OpenCV's `camera_calibration`
//!   tutorial writes it), or `distortion_model` / `camera_model` with the ROS
//!   names. Files written after `cv::fisheye::stereoCalibrate` usually carry
//!   no marker at all.
//! - With no marker and no declared model, 4 coefficients are refused: they
//!   read as pinhole `k1, k2, p1, p2` or as fisheye `k1..k4`, and taking the
//!   wrong one is off by over 200 px at the corners of a fisheye image.
//!   Other counts are pinhole (fisheye always has 4).

use std::path::{Path, PathBuf};

use nalgebra::{Matrix3, Vector3};
use serde::Deserialize;

use super::filestorage::{self, Node};
use super::{Camera, Model, StereoCalibration};

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

/// The model named by `value` of the key `field` (`distortion_model` or
/// `camera_model`), in ROS's words.
fn named_model(path: &Path, field: &str, value: &str) -> Result<Model, ImportError> {
    match (field, value) {
        ("distortion_model", "plumb_bob" | "rational_polynomial") => Ok(Model::Pinhole),
        ("distortion_model", "equidistant") => Ok(Model::Fisheye),
        ("camera_model", "pinhole") => Ok(Model::Pinhole),
        ("camera_model", "fisheye") => Ok(Model::Fisheye),
        ("distortion_model", _) => Err(err(
            path,
            field,
            format!(
                "`{value}` is not a model percept reads: plumb_bob or rational_polynomial \
                 (pinhole), equidistant (fisheye)"
            ),
        )),
        _ => Err(err(
            path,
            field,
            format!("`{value}` is not a model percept reads: pinhole or fisheye"),
        )),
    }
}

/// The model from a file's `distortion_model` and `camera_model` keys, if
/// either is there; `distortion_model` decides when both are (Kalibr-style
/// `camera_model: pinhole` with `distortion_model: equidistant` is fisheye),
/// but `camera_model: fisheye` with a pinhole distortion model is refused.
fn marked_model(
    path: &Path,
    distortion_model: Option<&str>,
    camera_model: Option<&str>,
) -> Result<Option<(Model, &'static str)>, ImportError> {
    let by_camera = camera_model
        .map(|v| named_model(path, "camera_model", v))
        .transpose()?;
    match distortion_model {
        Some(v) => {
            let m = named_model(path, "distortion_model", v)?;
            if by_camera == Some(Model::Fisheye) && m != Model::Fisheye {
                return Err(err(
                    path,
                    "camera_model",
                    format!("`fisheye`, but `distortion_model` is `{v}`, a pinhole model"),
                ));
            }
            Ok(Some((m, "distortion_model")))
        }
        None => Ok(by_camera.map(|m| (m, "camera_model"))),
    }
}

/// The model of a camera: what its file says (`marked`: the model and the key
/// that said it), which must agree with `declared` (`--model`); else
/// `declared`; else pinhole, unless `coefficients` is 4 (ambiguous).
fn settle_model(
    path: &Path,
    marked: Option<(Model, &str)>,
    declared: Option<Model>,
    coefficients: (&str, usize),
) -> Result<Model, ImportError> {
    match (marked, declared) {
        (Some((m, key)), Some(d)) if m != d => Err(err(
            path,
            key,
            format!("the file says {m}, but --model {d} was given"),
        )),
        (Some((m, _)), _) => Ok(m),
        (None, Some(d)) => Ok(d),
        (None, None) if coefficients.1 == 4 => Err(err(
            path,
            coefficients.0,
            "4 distortion coefficients and no model named: they are pinhole k1, k2, p1, p2 or \
             fisheye k1..k4 (cv::fisheye, ROS equidistant); pass --model pinhole or --model fisheye",
        )),
        (None, None) => Ok(Model::Pinhole),
    }
}

/// Reads OpenCV FileStorage files (YAML or XML); the keys may be spread over
/// several files. `image_size` is used when the files do not say;
/// `metres_per_unit` scales `T` (OpenCV's T is in the board's units).
/// `model` declares the lens model when the files do not say it (see the
/// module docs).
pub fn from_opencv(
    paths: &[PathBuf],
    image_size: Option<(u32, u32)>,
    metres_per_unit: f64,
    model: Option<Model>,
) -> Result<StereoCalibration, ImportError> {
    let mut stores = Vec::new();
    for p in paths {
        let map = filestorage::read(p).map_err(|e| {
            err(
                p,
                "-",
                format!("not an OpenCV FileStorage file (YAML or XML): {e}"),
            )
        })?;
        stores.push((p.clone(), map));
    }
    let first = paths.first().cloned().unwrap_or_default();
    let find = |names: &[&str]| -> Option<(PathBuf, &Node)> {
        for (p, map) in &stores {
            for n in names {
                if let Some((_, node)) = map.iter().find(|(k, _)| k == n) {
                    return Some((p.clone(), node));
                }
            }
        }
        None
    };
    let mat = |names: &[&str]| -> Result<(PathBuf, usize, usize, Vec<f64>), ImportError> {
        let (p, node) = find(names).ok_or_else(|| {
            err(
                &first,
                names[0],
                format!("missing (looked for {})", names.join(", ")),
            )
        })?;
        match node {
            Node::Matrix { rows, cols, data } => Ok((p, *rows, *cols, data.clone())),
            _ => Err(err(&p, names[0], "not a matrix (`!!opencv-matrix`)")),
        }
    };
    let mat3 = |names: &[&str]| -> Result<Matrix3<f64>, ImportError> {
        let (p, rows, cols, data) = mat(names)?;
        if rows != 3 || cols != 3 {
            return Err(err(&p, names[0], format!("{rows}x{cols}, expected 3x3")));
        }
        Ok(Matrix3::from_row_slice(&data))
    };
    let vector = |names: &[&str]| -> Result<Vec<f64>, ImportError> {
        mat(names).map(|(_, _, _, data)| data)
    };
    let number = |node: Option<(PathBuf, &Node)>| node.and_then(|(_, n)| n.number());
    let size = match (
        number(find(&["image_width", "imageWidth", "width"])),
        number(find(&["image_height", "imageHeight", "height"])),
    ) {
        (Some(w), Some(h)) => Some((w as u32, h as u32)),
        _ => find(&["imageSize", "image_size"]).and_then(|(_, n)| {
            let w = n.at(0)?.number()?;
            let h = n.at(1)?.number()?;
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
    let text = |name: &str| -> Result<Option<(PathBuf, String)>, ImportError> {
        match find(&[name]) {
            None => Ok(None),
            Some((p, Node::Text(v))) => Ok(Some((p, v.clone()))),
            Some((p, _)) => Err(err(&p, name, "not a string")),
        }
    };
    let marked = match find(&["fisheye_model"]) {
        Some((p, n)) => {
            let v = n
                .number()
                .ok_or_else(|| err(&p, "fisheye_model", "not a number"))?;
            let m = if v != 0.0 {
                Model::Fisheye
            } else {
                Model::Pinhole
            };
            Some((p, (m, "fisheye_model")))
        }
        None => {
            let dm = text("distortion_model")?;
            let cm = text("camera_model")?;
            let p = dm
                .as_ref()
                .or(cm.as_ref())
                .map(|(p, _)| p.clone())
                .unwrap_or_else(|| first.clone());
            marked_model(
                &p,
                dm.as_ref().map(|(_, v)| v.as_str()),
                cm.as_ref().map(|(_, v)| v.as_str()),
            )?
            .map(|m| (p, m))
        }
    };
    let d1 = vector(&["D1", "distCoeffs1", "dist_coeffs_left"])?;
    let d2 = vector(&["D2", "distCoeffs2", "dist_coeffs_right"])?;
    let n = if d1.len() == 4 { d1.len() } else { d2.len() };
    let field = if d1.len() == 4 { "D1" } else { "D2" };
    let at = marked
        .as_ref()
        .map_or(first.as_path(), |(p, _)| p.as_path());
    let model = settle_model(at, marked.as_ref().map(|(_, m)| *m), model, (field, n))?;
    let calibration = StereoCalibration {
        image_size: size,
        left: Camera {
            model,
            matrix: mat3(&["M1", "K1", "cameraMatrix1", "camera_matrix_left"])?,
            distortion: d1,
        },
        right: Camera {
            model,
            matrix: mat3(&["M2", "K2", "cameraMatrix2", "camera_matrix_right"])?,
            distortion: d2,
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
    /// ROS Melodic's fisheye calibrator writes this instead of `distortion_model`.
    #[serde(default)]
    camera_model: Option<String>,
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
    Ok(info)
}

/// The lens model of one `camera_info` file (see the module docs).
fn ros_model(
    path: &Path,
    info: &RosCameraInfo,
    declared: Option<Model>,
) -> Result<Model, ImportError> {
    let marked = marked_model(
        path,
        info.distortion_model.as_deref(),
        info.camera_model.as_deref(),
    )?;
    settle_model(
        path,
        marked,
        declared,
        ("distortion_model", info.distortion_coefficients.data.len()),
    )
}

/// Reads a stereo pair from two ROS `camera_info` YAML files. `model`
/// declares the lens model when the files do not say it (see the module
/// docs).
pub fn from_ros(
    left: &Path,
    right: &Path,
    model: Option<Model>,
) -> Result<StereoCalibration, ImportError> {
    let (l, r) = (ros_file(left)?, ros_file(right)?);
    let (lm, rm) = (ros_model(left, &l, model)?, ros_model(right, &r, model)?);
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
            model: lm,
            matrix: m3(&l.camera_matrix),
            distortion: l.distortion_coefficients.data.clone(),
        },
        right: Camera {
            model: rm,
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
    calibration.validate().map_err(|p| {
        let path = if p.field.starts_with("left.") {
            left
        } else {
            right
        };
        err(path, &p.field, p.message)
    })?;
    Ok(calibration)
}
