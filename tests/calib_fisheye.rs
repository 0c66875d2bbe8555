//! Fisheye (equidistant, Kannala-Brandt) calibrations: ROS Melodic's fisheye
//! calibrator output (`camera_model: fisheye`, 4 coefficients, no
//! `distortion_model`) imports as fisheye, projects and undistorts as OpenCV's
//! `cv::fisheye` does with the YAML's numbers, unknown models are refused,
//! and a fisheye pair rectifies onto common rows.

use std::path::{Path, PathBuf};

use nalgebra::{Matrix3, Vector3};
use opencv::calib3d;
use opencv::core::{CV_32FC1, Mat, Point2d, Point2f, Point3d, TermCriteria, Vector};
use opencv::prelude::*;
use percept::calib::rectify::Rectification;
use percept::calib::{Model, StereoCalibration};
use percept::stages::stereo_depth::{SgbmSettings, StereoMatcher};

use crate::util::*;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/media/calib").join(name)
}

/// `camera_matrix` and `distortion_coefficients` straight from a camera_info YAML.
fn yaml_numbers(path: &Path) -> (Vec<f64>, Vec<f64>) {
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let data = |key: &str| -> Vec<f64> {
        v[key]["data"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    (data("camera_matrix"), data("distortion_coefficients"))
}

fn k_mat(k: &[f64]) -> Mat {
    Mat::from_slice_2d(&[&k[0..3], &k[3..6], &k[6..9]]).unwrap()
}

fn import_ros(dir: &Path, left: &Path, right: &Path, extra: &[&str]) -> (Run, PathBuf) {
    let out = dir.join("rig.toml");
    let mut args = vec![
        "import-calibration",
        "--from",
        "ros",
        left.to_str().unwrap(),
        right.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (run(&args), out)
}

fn melodic_pair(dir: &Path) -> StereoCalibration {
    let (r, out) = import_ros(
        dir,
        &fixture("melodic_fisheye_left.yaml"),
        &fixture("melodic_fisheye_right.yaml"),
        &[],
    );
    r.assert_code(0);
    assert!(r.stdout.contains("fisheye"), "{}", r.stdout);
    StereoCalibration::load(&out).unwrap()
}

#[test]
fn the_melodic_fisheye_pair_imports_as_fisheye_with_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cal = melodic_pair(dir.path());
    let text = std::fs::read_to_string(dir.path().join("rig.toml")).unwrap();
    assert_eq!(text.matches("model = \"fisheye\"").count(), 2, "{text}");
    assert_eq!(cal.image_size, (1280, 800));
    for (cam, file) in [
        (&cal.left, "melodic_fisheye_left.yaml"),
        (&cal.right, "melodic_fisheye_right.yaml"),
    ] {
        let (k, d) = yaml_numbers(&fixture(file));
        assert_eq!(cam.model, Model::Fisheye);
        assert_eq!(cam.matrix, Matrix3::from_row_slice(&k), "{file}");
        assert_eq!(cam.distortion, d, "{file}");
    }
    assert_eq!(
        cal.left.distortion,
        [0.175653, -0.031772, 0.000362, -0.000719]
    );
    assert_eq!(cal.right.matrix[(0, 0)], 802.0);
    // P2[0, 3] = -f' · B: 57.6434839 / 768.494402 m, along -x of the right camera.
    let b = 57.6434839 / 768.494402;
    assert!((cal.baseline_m() - b).abs() < 1e-9, "{}", cal.baseline_m());
    assert!(cal.translation_m.x < 0.0, "{}", cal.translation_m);
}

#[test]
fn the_stored_fisheye_model_projects_and_undistorts_like_opencv_fisheye() {
    let dir = tempfile::tempdir().unwrap();
    let cal = melodic_pair(dir.path());
    let (k, d) = yaml_numbers(&fixture("melodic_fisheye_left.yaml"));
    let (km, dm) = (k_mat(&k), Mat::from_slice(&d).unwrap());

    // Projection: percept's stored model against cv::fisheye::projectPoints.
    let mut points = Vec::new();
    for i in -6..=6 {
        for j in -4..=4 {
            points.push(Vector3::new(f64::from(i) * 0.25, f64::from(j) * 0.2, 1.0) * 3.0);
        }
    }
    let object: Vector<Point3d> = points.iter().map(|p| Point3d::new(p.x, p.y, p.z)).collect();
    let zero = Mat::from_slice(&[0.0f64; 3]).unwrap();
    let mut cv = Vector::<Point2d>::new();
    calib3d::fisheye_project_points_vec_def(&object, &mut cv, &zero, &zero, &km, &dm).unwrap();
    let mut worst = 0.0f64;
    for (p, c) in points.iter().zip(cv.iter()) {
        let (u, v) = cal.left.project(p).unwrap();
        worst = worst.max((u - c.x).hypot(v - c.y));
    }
    assert!(worst < 1e-6, "projection differs by {worst} px");

    // Undistortion of the image corners into the same K, ideal pinhole.
    let corners: Vector<Point2f> = [(0.0, 0.0), (1279.0, 0.0), (0.0, 799.0), (1279.0, 799.0)]
        .into_iter()
        .map(|(x, y)| Point2f::new(x, y))
        .collect();
    let none = Mat::default();
    let mut ours = Vector::<Point2f>::new();
    cal.left
        .undistort_points(&corners, &mut ours, &none, &km)
        .unwrap();
    let mut theirs = Vector::<Point2f>::new();
    calib3d::fisheye_undistort_points(
        &corners,
        &mut theirs,
        &km,
        &dm,
        &none,
        &km,
        TermCriteria::new(3, 10, 1e-8).unwrap(),
    )
    .unwrap();
    // The old bug: the 4 coefficients read as pinhole k1, k2, p1, p2.
    let mut misread = Vector::<Point2f>::new();
    calib3d::undistort_points(&corners, &mut misread, &km, &dm, &none, &km).unwrap();
    for ((o, t), m) in ours.iter().zip(theirs.iter()).zip(misread.iter()) {
        let ours_err = f64::from((o.x - t.x).hypot(o.y - t.y));
        let misread_err = f64::from((m.x - t.x).hypot(m.y - t.y));
        eprintln!(
            "corner undistorted: fisheye {t:?}, percept {o:?} ({ours_err:.4} px off), \
             pinhole misreading {m:?} ({misread_err:.1} px off)"
        );
        assert!(ours_err < 0.5, "{ours_err}");
        assert!(misread_err > 50.0, "{misread_err}");
    }

    // Forward: where the misreading would image the ray the fisheye images at a corner.
    let mut rays = Vector::<Point2f>::new();
    cal.left
        .undistort_points(&corners, &mut rays, &none, &none)
        .unwrap();
    let mut pinhole = cal.left.clone();
    pinhole.model = Model::Pinhole;
    for (c, r) in corners.iter().zip(rays.iter()) {
        let ray = Vector3::new(f64::from(r.x), f64::from(r.y), 1.0);
        let (u, v) = cal.left.project(&ray).unwrap();
        let back = (u - f64::from(c.x)).hypot(v - f64::from(c.y));
        assert!(back < 0.01, "round trip {back} px");
        let (pu, pv) = pinhole.project(&ray).unwrap();
        let off = (pu - f64::from(c.x)).hypot(pv - f64::from(c.y));
        eprintln!("corner {c:?}: the pinhole misreading images its ray {off:.1} px away");
        assert!(off > 50.0, "{off}");
    }
}

#[test]
fn unknown_or_ambiguous_lens_models_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let left_text = std::fs::read_to_string(fixture("melodic_fisheye_left.yaml")).unwrap();
    let right = fixture("melodic_fisheye_right.yaml");
    let left = d.join("left.yaml");
    let with = |text: String| {
        std::fs::write(&left, text).unwrap();
    };

    with(left_text.replace("camera_model: fisheye", "distortion_model: foo"));
    let (r, _) = import_ros(d, &left, &right, &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("left.yaml")
            && r.stderr.contains("`distortion_model`")
            && r.stderr.contains("`foo`"),
        "{}",
        r.stderr
    );

    with(left_text.replace("camera_model: fisheye", "camera_model: omni"));
    let (r, _) = import_ros(d, &left, &right, &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("`camera_model`") && r.stderr.contains("`omni`"),
        "{}",
        r.stderr
    );

    // camera_model says fisheye, distortion_model says pinhole: refused.
    with(left_text.replace(
        "camera_model: fisheye",
        "camera_model: fisheye\ndistortion_model: plumb_bob",
    ));
    let (r, _) = import_ros(d, &left, &right, &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("`camera_model`"), "{}", r.stderr);

    // Noetic names it `distortion_model: equidistant`.
    with(left_text.replace("camera_model: fisheye", "distortion_model: equidistant"));
    let (r, out) = import_ros(d, &left, &right, &[]);
    r.assert_code(0);
    assert_eq!(
        StereoCalibration::load(&out).unwrap().left.model,
        Model::Fisheye
    );

    // No model at all and 4 coefficients: ambiguous, unless declared.
    with(left_text.replace("camera_model: fisheye\n", ""));
    let (r, _) = import_ros(d, &left, &right, &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("`distortion_model`") && r.stderr.contains("--model"),
        "{}",
        r.stderr
    );
    let (r, out) = import_ros(d, &left, &right, &["--model", "fisheye"]);
    r.assert_code(0);
    assert_eq!(
        StereoCalibration::load(&out).unwrap().left.model,
        Model::Fisheye
    );

    // A declared model that contradicts the file is refused.
    let (r, _) = import_ros(
        d,
        &fixture("melodic_fisheye_left.yaml"),
        &right,
        &["--model", "pinhole"],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("`camera_model`") && r.stderr.contains("--model pinhole"),
        "{}",
        r.stderr
    );
}

#[test]
fn opencv_files_from_fisheye_stereo_calibrate_need_a_marker_or_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cal = melodic_pair(d);
    // As code after cv::fisheye::stereoCalibrate writes it: K1 D1 K2 D2 R T, no marker.
    let write = |name: &str, marker: bool| -> PathBuf {
        let path = d.join(name);
        let mut fs = opencv::core::FileStorage::new(
            path.to_str().unwrap(),
            opencv::core::FileStorage_Mode::WRITE as i32,
            "",
        )
        .unwrap();
        let m = |k: &Matrix3<f64>| k_mat(k.transpose().as_slice());
        fs.write_i32("image_width", 1280).unwrap();
        fs.write_i32("image_height", 800).unwrap();
        if marker {
            fs.write_i32("fisheye_model", 1).unwrap();
        }
        fs.write_mat("K1", &m(&cal.left.matrix)).unwrap();
        fs.write_mat("D1", &Mat::from_slice(&cal.left.distortion).unwrap())
            .unwrap();
        fs.write_mat("K2", &m(&cal.right.matrix)).unwrap();
        fs.write_mat("D2", &Mat::from_slice(&cal.right.distortion).unwrap())
            .unwrap();
        fs.write_mat("R", &m(&cal.rotation)).unwrap();
        fs.write_mat("T", &Mat::from_slice(cal.translation_m.as_slice()).unwrap())
            .unwrap();
        fs.release().unwrap();
        path
    };
    let bare = write("fisheye_stereo.yml", false);
    let marked = write("fisheye_marked.yml", true);
    let out = d.join("from_opencv.toml");
    let import = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "import-calibration",
            "--from",
            "opencv",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = import(&bare, &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("`D1`") && r.stderr.contains("--model fisheye"),
        "{}",
        r.stderr
    );
    for (file, extra) in [(&bare, &["--model", "fisheye"][..]), (&marked, &[][..])] {
        import(file, extra).assert_code(0);
        let back = StereoCalibration::load(&out).unwrap();
        assert_eq!(back.left.model, Model::Fisheye);
        assert_eq!(back.left.distortion, cal.left.distortion);
        assert_eq!(back.right.matrix, cal.right.matrix);
        assert!((back.rotation - cal.rotation).abs().max() < 1e-12);
    }
    let r = import(&marked, &["--model", "pinhole"]);
    r.assert_code(2);
    assert!(r.stderr.contains("`fisheye_model`"), "{}", r.stderr);
}

/// Bilinear sample of a CV_32FC1 map at (x, y).
fn sample(map: &Mat, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor() as i32, y.floor() as i32);
    let (fx, fy) = (x - f64::from(x0), y - f64::from(y0));
    let at = |c: i32, r: i32| f64::from(*map.at_2d::<f32>(r, c).unwrap());
    (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
        + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1))
}

#[test]
fn a_fisheye_pair_rectifies_both_views_of_a_point_onto_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let cal = melodic_pair(dir.path());
    let rect = Rectification::new(&cal).unwrap();
    assert!(!rect.identity);
    assert!(
        (rect.baseline_m - cal.baseline_m()).abs() < 1e-6,
        "{} vs {}",
        rect.baseline_m,
        cal.baseline_m()
    );
    let (w, h) = (f64::from(cal.image_size.0), f64::from(cal.image_size.1));
    let inside = |(u, v): (f64, f64)| u >= 0.0 && v >= 0.0 && u < w - 1.0 && v < h - 1.0;
    let (mut left, mut right, mut truth) = (Vector::new(), Vector::new(), Vec::new());
    for z in [1.0, 2.5, 6.0] {
        for i in -8..=8 {
            for j in -5..=5 {
                let x = Vector3::new(f64::from(i) * 0.12 * z, f64::from(j) * 0.12 * z, z);
                let xr = cal.rotation * x + cal.translation_m;
                let (Some(l), Some(r)) = (cal.left.project(&x), cal.right.project(&xr)) else {
                    continue;
                };
                if inside(l) && inside(r) {
                    left.push(Point2f::new(l.0 as f32, l.1 as f32));
                    right.push(Point2f::new(r.0 as f32, r.1 as f32));
                    truth.push(x);
                }
            }
        }
    }
    assert!(truth.len() > 300, "{}", truth.len());
    let (mut lr, mut rr) = (Vector::<Point2f>::new(), Vector::<Point2f>::new());
    rect.undistort_left(&left, &mut lr).unwrap();
    rect.undistort_right(&right, &mut rr).unwrap();
    let r1 = {
        let mut m = Matrix3::zeros();
        for r in 0..3 {
            for c in 0..3 {
                m[(r, c)] = *rect.r1.at_2d::<f64>(r as i32, c as i32).unwrap();
            }
        }
        m
    };
    // Float maps, to look the rectified pixels up in.
    let float = |(a, b): &(Mat, Mat)| {
        let (mut x, mut y) = (Mat::default(), Mat::default());
        opencv::imgproc::convert_maps(a, b, &mut x, &mut y, CV_32FC1, false).unwrap();
        (x, y)
    };
    let (lx, ly) = float(&rect.left_map);
    let (mut rows, mut depth, mut map_err, mut checked) = (0.0f64, 0.0f64, 0.0f64, 0);
    for (((a, b), x), src) in lr.iter().zip(rr.iter()).zip(&truth).zip(left.iter()) {
        rows = rows.max(f64::from((a.y - b.y).abs()));
        let z_rect = (r1 * x).z;
        let disparity = f64::from(a.x - b.x);
        let z = rect.focal_px * rect.baseline_m / disparity;
        depth = depth.max((z - z_rect).abs() / z_rect);
        let (u, v) = (f64::from(a.x), f64::from(a.y));
        if u >= 0.0 && v >= 0.0 && u < w - 1.0 && v < h - 1.0 {
            let e =
                (sample(&lx, u, v) - f64::from(src.x)).hypot(sample(&ly, u, v) - f64::from(src.y));
            map_err = map_err.max(e);
            checked += 1;
        }
    }
    eprintln!(
        "{} points: rows differ by up to {rows:.2e} px, depth by {:.2e}, \
         left map off by up to {map_err:.3} px over {checked} points",
        truth.len(),
        depth
    );
    assert!(rows < 0.5, "{rows}");
    assert!(depth < 0.01, "{depth}");
    assert!(checked > 100, "{checked}");
    assert!(map_err < 0.5, "{map_err}");

    // The stereo_depth stage's matcher builds on it.
    let matcher = StereoMatcher::new(&cal, &SgbmSettings::default()).unwrap();
    assert!((matcher.rect.focal_px - rect.focal_px).abs() < 1e-9);
}
