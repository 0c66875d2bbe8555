//! Chessboard stereo calibration with OpenCV (`percept calibrate`): find the
//! inner corners in both images of each pair, refine them to sub-pixel,
//! calibrate each camera, then the pair jointly, and check the result by
//! rectifying the corners (rows must line up).

use std::path::{Path, PathBuf};

use nalgebra::Vector3;
use opencv::calib3d;
use opencv::core::{Mat, Point2f, Point3f, Size, TermCriteria, TermCriteria_Type, Vector};
use opencv::prelude::*;

use super::{Camera, Model, StereoCalibration, from_mat3, values};

/// The board: inner corners per row and per column, and the square size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Board {
    /// Inner corners per row.
    pub cols: u32,
    /// Inner corners per column.
    pub rows: u32,
    /// Square size, metres.
    pub square_m: f64,
}

/// A calibration and how it was reached.
#[derive(Debug, Clone)]
pub struct BoardCalibration {
    /// The fitted calibration.
    pub calibration: StereoCalibration,
    /// Pairs whose board was found in both images.
    pub used: Vec<(PathBuf, PathBuf)>,
    /// Pairs left out, and why.
    pub rejected: Vec<(PathBuf, String)>,
    /// RMS reprojection error of the joint (stereo) calibration.
    pub rms_px: f64,
    /// Mean |y_left − y_right| of the corners after rectification.
    pub epipolar_px: f64,
}

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("pattern `{0}`: {1}")]
    /// A file pattern that matches nothing usable: the pattern and why.
    Pattern(String, String),
    #[error("{path}: cannot read the image")]
    /// An image that cannot be read.
    Image {
        /// The file it concerns.
        path: PathBuf,
    },
    #[error("{path}: {width}x{height}, but the first image is {w0}x{h0}")]
    /// An image whose size differs from the first one.
    Size {
        /// The file it concerns.
        path: PathBuf,
        /// The image width, px.
        width: i32,
        /// The image height, px.
        height: i32,
        /// The first image's width, px.
        w0: i32,
        /// The first image's height, px.
        h0: i32,
    },
    #[error("the board was found in both images of only {0} pair(s); at least 3 are needed{1}")]
    /// Too few pairs with the board found: the count and a hint.
    TooFew(usize, String),
    #[error("OpenCV: {0}")]
    /// OpenCV failed.
    OpenCv(#[from] opencv::Error),
}

/// Files matching `pattern`, keyed by the last run of digits in the file name.
fn numbered(pattern: &str) -> Result<Vec<(String, PathBuf)>, CalibrateError> {
    let paths =
        glob::glob(pattern).map_err(|e| CalibrateError::Pattern(pattern.into(), e.to_string()))?;
    let mut out = Vec::new();
    for p in paths {
        let p = p.map_err(|e| CalibrateError::Pattern(pattern.into(), e.to_string()))?;
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let digits: String = stem
            .chars()
            .rev()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        out.push((if digits.is_empty() { stem } else { digits }, p));
    }
    if out.is_empty() {
        return Err(CalibrateError::Pattern(
            pattern.into(),
            "matches no file".into(),
        ));
    }
    out.sort();
    Ok(out)
}

/// Image pairs, and files left out with the reason.
pub type Pairing = (Vec<(PathBuf, PathBuf)>, Vec<(PathBuf, String)>);

/// Pairs the files of two patterns by the number in their names
/// (`left07.jpg` with `right07.jpg`); files without a partner are reported.
pub fn pair_files(left: &str, right: &str) -> Result<Pairing, CalibrateError> {
    let (l, r) = (numbered(left)?, numbered(right)?);
    let mut pairs = Vec::new();
    let mut alone = Vec::new();
    for (key, path) in &l {
        match r.iter().find(|(k, _)| k == key) {
            Some((_, rp)) => pairs.push((path.clone(), rp.clone())),
            None => alone.push((path.clone(), "no right image with its number".to_string())),
        }
    }
    for (key, path) in &r {
        if !l.iter().any(|(k, _)| k == key) {
            alone.push((path.clone(), "no left image with its number".to_string()));
        }
    }
    Ok((pairs, alone))
}

/// A board image as 8-bit gray (the `image` crate decodes it: JPEG, PNG).
fn read_gray(path: &Path) -> Result<Mat, CalibrateError> {
    let bad = || CalibrateError::Image { path: path.into() };
    let gray = image::open(path).map_err(|_| bad())?.into_luma8();
    let (w, h) = gray.dimensions();
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Mat::new_rows_cols_with_data(h as i32, w as i32, gray.as_raw())
        .and_then(|m| m.try_clone())
        .map_err(|_| bad())
}

fn corners(image: &Mat, board: Board) -> Result<Option<Vector<Point2f>>, CalibrateError> {
    let size = Size::new(board.cols as i32, board.rows as i32);
    let mut found = Vector::<Point2f>::new();
    let ok = calib3d::find_chessboard_corners(
        image,
        size,
        &mut found,
        calib3d::CALIB_CB_ADAPTIVE_THRESH | calib3d::CALIB_CB_NORMALIZE_IMAGE,
    )?;
    if !ok {
        return Ok(None);
    }
    let criteria = TermCriteria::new(
        TermCriteria_Type::COUNT as i32 + TermCriteria_Type::EPS as i32,
        30,
        0.01,
    )?;
    opencv::imgproc::corner_sub_pix(
        image,
        &mut found,
        Size::new(11, 11),
        Size::new(-1, -1),
        criteria,
    )?;
    Ok(Some(found))
}

/// Calibrates a stereo pair from chessboard image pairs.
pub fn calibrate(
    pairs: &[(PathBuf, PathBuf)],
    board: Board,
) -> Result<BoardCalibration, CalibrateError> {
    let mut object = Vector::<Vector<Point3f>>::new();
    let mut left_pts = Vector::<Vector<Point2f>>::new();
    let mut right_pts = Vector::<Vector<Point2f>>::new();
    let mut used = Vec::new();
    let mut rejected = Vec::new();
    let mut size0: Option<Size> = None;
    let grid: Vector<Point3f> = (0..board.rows)
        .flat_map(|r| {
            (0..board.cols).map(move |c| {
                Point3f::new(
                    (c as f64 * board.square_m) as f32,
                    (r as f64 * board.square_m) as f32,
                    0.0,
                )
            })
        })
        .collect();
    for (lp, rp) in pairs {
        let (l, r) = (read_gray(lp)?, read_gray(rp)?);
        for (path, m) in [(lp, &l), (rp, &r)] {
            let s = m.size()?;
            let s0 = *size0.get_or_insert(s);
            if s != s0 {
                return Err(CalibrateError::Size {
                    path: path.clone(),
                    width: s.width,
                    height: s.height,
                    w0: s0.width,
                    h0: s0.height,
                });
            }
        }
        match (corners(&l, board)?, corners(&r, board)?) {
            (Some(a), Some(b)) => {
                object.push(grid.clone());
                left_pts.push(a);
                right_pts.push(b);
                used.push((lp.clone(), rp.clone()));
            }
            (a, _) => {
                let side = if a.is_none() { lp } else { rp };
                rejected.push((
                    lp.clone(),
                    format!(
                        "{}x{} board not found in {}",
                        board.cols,
                        board.rows,
                        side.display()
                    ),
                ));
            }
        }
    }
    if used.len() < 3 {
        let why: Vec<String> = rejected
            .iter()
            .map(|(p, w)| format!("\n  {}: {w}", p.display()))
            .collect();
        return Err(CalibrateError::TooFew(used.len(), why.concat()));
    }
    let size = size0.unwrap_or_default();
    let criteria = TermCriteria::new(
        TermCriteria_Type::COUNT as i32 + TermCriteria_Type::EPS as i32,
        100,
        1e-6,
    )?;
    let mut k = [Mat::default(), Mat::default()];
    let mut d = [Mat::default(), Mat::default()];
    for (i, pts) in [&left_pts, &right_pts].into_iter().enumerate() {
        let (mut rv, mut tv) = (Vector::<Mat>::new(), Vector::<Mat>::new());
        calib3d::calibrate_camera(
            &object, pts, size, &mut k[i], &mut d[i], &mut rv, &mut tv, 0, criteria,
        )?;
    }
    let [mut k1, mut k2] = k;
    let [mut d1, mut d2] = d;
    let (mut r, mut t, mut e, mut f) = (
        Mat::default(),
        Mat::default(),
        Mat::default(),
        Mat::default(),
    );
    let rms = calib3d::stereo_calibrate(
        &object,
        &left_pts,
        &right_pts,
        &mut k1,
        &mut d1,
        &mut k2,
        &mut d2,
        size,
        &mut r,
        &mut t,
        &mut e,
        &mut f,
        calib3d::CALIB_USE_INTRINSIC_GUESS,
        criteria,
    )?;
    let t = values(&t)?;
    let calibration = StereoCalibration {
        image_size: (size.width as u32, size.height as u32),
        left: Camera {
            model: Model::Pinhole,
            matrix: from_mat3(&k1)?,
            distortion: values(&d1)?,
        },
        right: Camera {
            model: Model::Pinhole,
            matrix: from_mat3(&k2)?,
            distortion: values(&d2)?,
        },
        rotation: from_mat3(&r)?,
        translation_m: Vector3::new(t[0], t[1], t[2]),
        rms_px: Some(rms),
        description: Some(format!(
            "percept calibrate: {} pairs, {}x{} board, {} m squares",
            used.len(),
            board.cols,
            board.rows,
            board.square_m
        )),
    };
    let epipolar_px = epipolar_error(&calibration, &left_pts, &right_pts)?;
    Ok(BoardCalibration {
        calibration,
        used,
        rejected,
        rms_px: rms,
        epipolar_px,
    })
}

/// Mean vertical offset of corresponding corners once both views are rectified.
fn epipolar_error(
    c: &StereoCalibration,
    left: &Vector<Vector<Point2f>>,
    right: &Vector<Vector<Point2f>>,
) -> Result<f64, CalibrateError> {
    let rect = super::rectify::Rectification::new(c)?;
    let (mut sum, mut n) = (0.0, 0usize);
    for (l, r) in left.iter().zip(right.iter()) {
        let (mut lu, mut ru) = (Vector::<Point2f>::new(), Vector::<Point2f>::new());
        rect.undistort_left(&l, &mut lu)?;
        rect.undistort_right(&r, &mut ru)?;
        for (a, b) in lu.iter().zip(ru.iter()) {
            sum += (a.y - b.y).abs() as f64;
            n += 1;
        }
    }
    Ok(sum / n.max(1) as f64)
}
