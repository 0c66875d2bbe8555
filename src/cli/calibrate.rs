//! `percept calibrate`: chessboard stereo calibration from image pairs, and
//! `percept import-calibration`: OpenCV FileStorage or ROS `camera_info` files
//! into percept's calibration format.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use percept::calib::board::{Board, CalibrateError, calibrate as run_calibration, pair_files};
use percept::calib::import;
use percept::calib::{Model, StereoCalibration};

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Left images, a glob pattern (quote it): 'DIR/left*.jpg'.
    #[arg(long)]
    left: String,
    /// Right images, a glob pattern; paired with the left ones by the number in the name.
    #[arg(long)]
    right: String,
    /// Inner corners of the chessboard, COLSxROWS (OpenCV's sample board: 9x6).
    #[arg(long, value_parser = parse_size)]
    board: (u32, u32),
    /// Side of one square, millimetres.
    #[arg(long)]
    square_mm: f64,
    /// Write the calibration here (TOML).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// OpenCV FileStorage YAML or XML (one or two files).
    Opencv,
    /// ROS camera_info YAML: the left file, then the right file.
    Ros,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LensModel {
    /// OpenCV's calib3d model: k1, k2, p1, p2[, k3, ...].
    Pinhole,
    /// OpenCV's cv::fisheye (equidistant, Kannala-Brandt): k1, k2, k3, k4.
    Fisheye,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The files' format.
    #[arg(long)]
    from: Format,
    /// The files to read (OpenCV: one or two files; ROS: left then right).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Image size WIDTHxHEIGHT, when the files do not give it (OpenCV).
    #[arg(long, value_parser = parse_size)]
    size: Option<(u32, u32)>,
    /// Length of one unit of the OpenCV file's T, in metres (0.001 for millimetres).
    #[arg(long, default_value_t = 1.0)]
    unit_m: f64,
    /// Lens model of both cameras, for files that do not name one (OpenCV files
    /// from cv::fisheye::stereoCalibrate carry no marker). Needed when the
    /// distortion has 4 coefficients and the files do not say; refused when it
    /// contradicts what the files say.
    #[arg(long)]
    model: Option<LensModel>,
    /// Write the calibration here (TOML).
    #[arg(long)]
    out: PathBuf,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}`: expected COLSxROWS, like 9x6"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{s}`: `{v}` is not a positive whole number"))
    };
    Ok((n(a)?, n(b)?))
}

fn bad_input(path: &Path, message: String) -> anyhow::Error {
    percept::Error::Config(percept::config::ConfigError::Plan {
        path: path.to_path_buf(),
        message,
    })
    .into()
}

fn write(calibration: &StereoCalibration, out: &Path) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, calibration.to_toml()).with_context(|| format!("writing {}", out.display()))
}

pub fn calibrate(args: CalibrateArgs) -> anyhow::Result<()> {
    if !(args.square_mm.is_finite() && args.square_mm > 0.0) {
        return Err(bad_input(
            &args.out,
            format!("--square-mm must be positive, not {}", args.square_mm),
        ));
    }
    let board = Board {
        cols: args.board.0,
        rows: args.board.1,
        square_m: args.square_mm / 1000.0,
    };
    let to_cli = |e: CalibrateError| match e {
        CalibrateError::OpenCv(e) => anyhow::Error::new(e).context("calibration failed"),
        CalibrateError::Image { ref path } | CalibrateError::Size { ref path, .. } => {
            bad_input(&path.clone(), e.to_string())
        }
        other => bad_input(Path::new(&args.left), other.to_string()),
    };
    let (pairs, alone) = pair_files(&args.left, &args.right).map_err(to_cli)?;
    for (p, why) in &alone {
        eprintln!("skipped {}: {why}", p.display());
    }
    let result = run_calibration(&pairs, board).map_err(to_cli)?;
    for (p, why) in &result.rejected {
        eprintln!("rejected {}: {why}", p.display());
    }
    write(&result.calibration, &args.out)?;
    let c = &result.calibration;
    println!(
        "{} of {} pairs used, {}x{} px",
        result.used.len(),
        pairs.len(),
        c.image_size.0,
        c.image_size.1
    );
    println!("RMS reprojection error  {:.3} px", result.rms_px);
    println!(
        "rectified row offset    {:.3} px (mean |y_left - y_right| of the corners)",
        result.epipolar_px
    );
    println!(
        "focal length            {:.1} / {:.1} px (left / right)",
        c.left.matrix[(0, 0)],
        c.right.matrix[(0, 0)]
    );
    println!("baseline                {:.4} m", c.baseline_m());
    println!("wrote {}", args.out.display());
    Ok(())
}

pub fn import_calibration(args: ImportArgs) -> anyhow::Result<()> {
    let model = args.model.map(|m| match m {
        LensModel::Pinhole => Model::Pinhole,
        LensModel::Fisheye => Model::Fisheye,
    });
    let calibration = match args.from {
        Format::Opencv => {
            if args.files.len() > 2 {
                return Err(bad_input(
                    &args.files[2],
                    "OpenCV: give one or two files".into(),
                ));
            }
            import::from_opencv(&args.files, args.size, args.unit_m, model)
        }
        Format::Ros => {
            let [left, right] = args.files.as_slice() else {
                return Err(bad_input(
                    &args.files[0],
                    "ROS: give two camera_info files, left then right".into(),
                ));
            };
            import::from_ros(left, right, model)
        }
    }
    .map_err(|e| {
        // bad_input names the file already.
        let message = if e.field == "-" {
            e.message
        } else {
            format!("`{}`: {}", e.field, e.message)
        };
        bad_input(&e.path, message)
    })?;
    write(&calibration, &args.out)?;
    println!(
        "{}, {}x{} px, baseline {:.4} m: wrote {}",
        calibration.left.model,
        calibration.image_size.0,
        calibration.image_size.1,
        calibration.baseline_m(),
        args.out.display()
    );
    Ok(())
}
