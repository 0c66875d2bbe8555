//! The camera a depth map is in (and `depth_frame = "left"`): a rectified pair whose two principal
//! points differ (Middlebury 2014 style, `doffs`). The map is in the left
//! *rectified* view; the record's `depth.camera` and `<stream>_camera.json`
//! beside `--depth-out` files say which (matrix = left 3x3 of OpenCV's
//! `P1`, baseline), and its metric depth equals OpenCV SGBM alone on the pair.

use opencv::calib3d;
use opencv::core::{self, Mat, Rect, Size};
use opencv::imgcodecs;
use opencv::prelude::*;

use crate::util::*;

const W: i32 = 400;
const H: i32 = 300;
const F: f64 = 400.0;
const B: f64 = 0.1;
/// Principal points: the right camera's is 31 px left of the left one's.
const CX_LEFT: f64 = 200.0;
const CX_RIGHT: f64 = 169.0;
const Z: f64 = 2.0;

/// A fronto-parallel textured plane at `Z` seen by both cameras: image
/// disparity x_left − x_right = f·B/Z + (cx_left − cx_right) = 20 + 31 px.
fn pair(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Mat, Mat) {
    let shift = (F * B / Z + CX_LEFT - CX_RIGHT).round() as i32;
    core::set_rng_seed(7).unwrap();
    let mut noise = Mat::new_rows_cols_with_default(H, W + shift, core::CV_8UC1, 0.into()).unwrap();
    core::randu(
        &mut noise,
        &core::Scalar::all(0.0),
        &core::Scalar::all(255.0),
    )
    .unwrap();
    let mut texture = Mat::default();
    opencv::imgproc::gaussian_blur_def(&noise, &mut texture, Size::new(3, 3), 0.8).unwrap();
    let left = Mat::roi(&texture, Rect::new(0, 0, W, H))
        .unwrap()
        .try_clone()
        .unwrap();
    let right = Mat::roi(&texture, Rect::new(shift, 0, W, H))
        .unwrap()
        .try_clone()
        .unwrap();
    let (l, r) = (dir.join("left.png"), dir.join("right.png"));
    imgcodecs::imwrite_def(l.to_str().unwrap(), &left).unwrap();
    imgcodecs::imwrite_def(r.to_str().unwrap(), &right).unwrap();
    (l, r, left, right)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// OpenCV's `stereoRectify` (alpha 0, zero disparity), as percept calls it: P1.
fn opencv_p1() -> Mat {
    let k =
        |cx: f64| Mat::from_slice_2d(&[[F, 0.0, cx], [0.0, F, 150.0], [0.0, 0.0, 1.0]]).unwrap();
    let d = Mat::from_slice(&[0.0f64; 5]).unwrap().try_clone().unwrap();
    let r = Mat::from_slice_2d(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0f64]]).unwrap();
    let t = Mat::from_slice_2d(&[[-B], [0.0], [0.0]]).unwrap();
    let (mut r1, mut r2, mut p1, mut p2, mut q) = (
        Mat::default(),
        Mat::default(),
        Mat::default(),
        Mat::default(),
        Mat::default(),
    );
    let size = Size::new(W, H);
    calib3d::stereo_rectify(
        &k(CX_LEFT),
        &d,
        &k(CX_RIGHT),
        &d,
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
    )
    .unwrap();
    p1
}

#[test]
fn depth_of_a_pair_with_different_principal_points_says_its_camera_and_matches_opencv() {
    let dir = tempfile::tempdir().unwrap();
    let (l, r, left, right) = pair(dir.path());
    let calib = pipeline(
        dir.path(),
        "calib.toml",
        &format!(
            "version = 1\nimage_size = [{W}, {H}]\n[left]\ncamera_matrix = [[{F}, 0.0, {CX_LEFT}], [0.0, {F}, 150.0], [0.0, 0.0, 1.0]]\ndistortion = [0.0, 0.0, 0.0, 0.0, 0.0]\n[right]\ncamera_matrix = [[{F}, 0.0, {CX_RIGHT}], [0.0, {F}, 150.0], [0.0, 0.0, 1.0]]\ndistortion = [0.0, 0.0, 0.0, 0.0, 0.0]\n[right_from_left]\nrotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]\ntranslation_m = [-{B}, 0.0, 0.0]\n"
        ),
    );
    let p = pipeline(
        dir.path(),
        "p.toml",
        &format!(
            "version = 1\n[[source]]\nid = \"left\"\nkind = \"file\"\nlocation = \"{}\"\n[[source]]\nid = \"right\"\nkind = \"file\"\nlocation = \"{}\"\n[[stereo]]\nid = \"pair\"\nleft = \"left\"\nright = \"right\"\n[[stage]]\nid = \"depth\"\nkind = \"stereo_depth\"\ncalibration = \"{}\"\n[stage.sgbm]\nnum_disparities = 64\n[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\n",
            l.display(),
            r.display(),
            calib.display()
        ),
    );
    let depth_dir = dir.path().join("depth");
    run(&[
        "run",
        p.to_str().unwrap(),
        "--depth-out",
        depth_dir.to_str().unwrap(),
    ])
    .assert_code(0);
    let records = read_records(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 1);
    let camera = &records[0]["depth"]["camera"];
    assert_eq!(camera["view"], "rectified_left", "{camera}");
    assert!(
        (camera["baseline_m"].as_f64().unwrap() - B).abs() < 1e-9,
        "{camera}"
    );
    // The matrix is OpenCV's rectified P1, not the calibration's left matrix:
    // the rectified principal point is not the left camera's.
    let p1 = opencv_p1();
    for i in 0..3 {
        for j in 0..3 {
            let got = camera["k"][i][j].as_f64().unwrap();
            let want = *p1.at_2d::<f64>(i as i32, j as i32).unwrap();
            assert!((got - want).abs() < 1e-6, "k[{i}][{j}] {got} vs {want}");
        }
    }
    assert!(
        (camera["k"][0][2].as_f64().unwrap() - CX_LEFT).abs() > 1.0,
        "{camera}"
    );
    // Beside the depth PNGs: the same camera.
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(depth_dir.join("pair_camera.json")).unwrap())
            .unwrap();
    assert_eq!(&side, camera);

    // OpenCV SGBM alone on the unrectified pair: Z = f·B / (d − (cx_l − cx_r)).
    let mut sgbm =
        calib3d::StereoSGBM::create(0, 64, 5, 8 * 25, 32 * 25, 0, 0, 0, 0, 0, 0).unwrap();
    let mut disparity = Mat::default();
    sgbm.compute(&left, &right, &mut disparity).unwrap();
    let mut opencv_z = Vec::new();
    for y in 20..H - 20 {
        for x in 80..W - 20 {
            let d = f64::from(*disparity.at_2d::<i16>(y, x).unwrap()) / 16.0;
            if d > 0.0 {
                opencv_z.push(F * B / (d - (CX_LEFT - CX_RIGHT)));
            }
        }
    }
    let opencv_z = median(opencv_z);
    // percept's map (millimetres) in the rectified view, same inner region.
    let png = depth_dir.join("pair_000000.png");
    let m = imgcodecs::imread(png.to_str().unwrap(), imgcodecs::IMREAD_UNCHANGED).unwrap();
    let mut percept_z = Vec::new();
    for y in 20..H - 20 {
        for x in 80..W - 20 {
            let mm = *m.at_2d::<u16>(y, x).unwrap();
            if mm > 0 {
                percept_z.push(f64::from(mm) / 1000.0);
            }
        }
    }
    let percept_z = median(percept_z);
    // SGBM's own error at ~20-50 px disparity: 1/16 px sub-pixel steps.
    assert!((opencv_z - Z).abs() < 0.02, "OpenCV alone {opencv_z}");
    assert!(
        (percept_z - opencv_z).abs() < 0.02,
        "percept {percept_z} vs OpenCV {opencv_z}"
    );
}

/// The textured plane at `Z` with a nearer square patch at 1 m whose left
/// image covers x 240..300, y 100..200: in the right image the patch moves
/// f·B/1 + 31 px, the plane f·B/Z + 31 px.
fn pair_with_patch(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (l, _, left, right) = pair(dir);
    let shift = (F * B / 1.0 + CX_LEFT - CX_RIGHT).round() as i32;
    core::set_rng_seed(11).unwrap();
    let mut noise = Mat::new_rows_cols_with_default(100, 60, core::CV_8UC1, 0.into()).unwrap();
    core::randu(
        &mut noise,
        &core::Scalar::all(0.0),
        &core::Scalar::all(255.0),
    )
    .unwrap();
    let mut left = left;
    let mut right = right;
    noise
        .copy_to(&mut Mat::roi_mut(&mut left, Rect::new(240, 100, 60, 100)).unwrap())
        .unwrap();
    noise
        .copy_to(&mut Mat::roi_mut(&mut right, Rect::new(240 - shift, 100, 60, 100)).unwrap())
        .unwrap();
    let r = dir.join("right.png");
    imgcodecs::imwrite_def(l.to_str().unwrap(), &left).unwrap();
    imgcodecs::imwrite_def(r.to_str().unwrap(), &right).unwrap();
    (l, r)
}

/// Runs the pair through `stereo_depth` with `extra` stage lines; the map
/// (metres) and the record's `depth.camera`.
fn depth_run(dir: &std::path::Path, extra: &str, name: &str) -> (Mat, serde_json::Value) {
    let (l, r) = (dir.join("left.png"), dir.join("right.png"));
    let calib = pipeline(
        dir,
        "calib.toml",
        &format!(
            "version = 1\nimage_size = [{W}, {H}]\n[left]\ncamera_matrix = [[{F}, 0.0, {CX_LEFT}], [0.0, {F}, 150.0], [0.0, 0.0, 1.0]]\ndistortion = [0.0, 0.0, 0.0, 0.0, 0.0]\n[right]\ncamera_matrix = [[{F}, 0.0, {CX_RIGHT}], [0.0, {F}, 150.0], [0.0, 0.0, 1.0]]\ndistortion = [0.0, 0.0, 0.0, 0.0, 0.0]\n[right_from_left]\nrotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]\ntranslation_m = [-{B}, 0.0, 0.0]\n"
        ),
    );
    let p = pipeline(
        dir,
        &format!("{name}.toml"),
        &format!(
            "version = 1\n[[source]]\nid = \"left\"\nkind = \"file\"\nlocation = \"{}\"\n[[source]]\nid = \"right\"\nkind = \"file\"\nlocation = \"{}\"\n[[stereo]]\nid = \"pair\"\nleft = \"left\"\nright = \"right\"\n[[stage]]\nid = \"depth\"\nkind = \"stereo_depth\"\ncalibration = \"{}\"\n{extra}[stage.sgbm]\nnum_disparities = 80\n[[sink]]\nkind = \"jsonl\"\npath = \"{name}.jsonl\"\n",
            l.display(),
            r.display(),
            calib.display()
        ),
    );
    let depth_dir = dir.join(name);
    run(&[
        "run",
        p.to_str().unwrap(),
        "--depth-out",
        depth_dir.to_str().unwrap(),
    ])
    .assert_code(0);
    let records = read_records(&dir.join(format!("{name}.jsonl")));
    let png = depth_dir.join("pair_000000.png");
    let m = imgcodecs::imread(png.to_str().unwrap(), imgcodecs::IMREAD_UNCHANGED).unwrap();
    (m, records[0]["depth"]["camera"].clone())
}

fn mm(m: &Mat, x: i32, y: i32) -> f64 {
    f64::from(*m.at_2d::<u16>(y, x).unwrap()) / 1000.0
}

/// Median depth (m) of the valid pixels in a rectangle.
fn median_in(m: &Mat, x0: i32, x1: i32, y0: i32, y1: i32) -> f64 {
    let mut v = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            let z = mm(m, x, y);
            if z > 0.0 {
                v.push(z);
            }
        }
    }
    assert!(
        v.len() > 10,
        "too few valid pixels in {x0}..{x1} x {y0}..{y1}"
    );
    median(v)
}

/// The column where the patch (1 m) begins on row `y`: the first x from the
/// left at which depth drops under 1.5 m.
fn patch_edge(m: &Mat, y: i32) -> i32 {
    (100..W).find(|&x| (mm(m, x, y) - 1.0).abs() < 0.1).unwrap()
}

#[test]
fn depth_frame_left_puts_the_map_and_positions_in_the_original_left_view() {
    let dir = tempfile::tempdir().unwrap();
    pair_with_patch(dir.path());
    let (rect, rect_camera) = depth_run(dir.path(), "", "rectified");
    let (left, left_camera) = depth_run(dir.path(), "depth_frame = \"left\"\n", "left");
    // The camera of each map.
    assert_eq!(rect_camera["view"], "rectified_left", "{rect_camera}");
    assert_eq!(left_camera["view"], "left", "{left_camera}");
    let want = [[F, 0.0, CX_LEFT], [0.0, F, 150.0], [0.0, 0.0, 1.0]];
    for i in 0..3 {
        for j in 0..3 {
            let got = left_camera["k"][i][j].as_f64().unwrap();
            assert!((got - want[i][j]).abs() < 1e-9, "k[{i}][{j}] {left_camera}");
        }
    }
    assert!((left_camera["baseline_m"].as_f64().unwrap() - B).abs() < 1e-9);
    assert_eq!(left_camera["width"], W);
    assert_eq!(left_camera["height"], H);
    // Depth at pixels of the original left image: the plane at 2 m and the
    // patch at 1 m, within SGBM's 1/16 px steps.
    let plane = median_in(&left, 120, 200, 40, 260);
    let patch = median_in(&left, 250, 290, 110, 190);
    assert!((plane - Z).abs() < 0.03, "plane {plane}");
    assert!((patch - 1.0).abs() < 0.01, "patch {patch}");
    // Geometry: the patch's left edge is where the left image has it (x 240),
    // in the rectified view it is where P1 moves it.
    let k = |i: usize, j: usize| rect_camera["k"][i][j].as_f64().unwrap();
    let rect_x = (k(0, 0) * (240.0 - CX_LEFT) / F + k(0, 2)).round() as i32;
    assert!(
        (rect_x - 240).abs() > 5,
        "the views should differ: {rect_camera}"
    );
    for y in [120, 150, 180] {
        let e = patch_edge(&left, y);
        assert!(
            (e - 240).abs() <= 2,
            "row {y}: patch edge at x {e} in the left view"
        );
        let e = patch_edge(&rect, y);
        assert!(
            (e - rect_x).abs() <= 2,
            "row {y}: patch edge at x {e} in the rectified view, want {rect_x}"
        );
    }
    // The rectified map is unchanged by the option's existence: a pixel of
    // the left view reads the rectified map at its P1 image.
    let (x, y) = (270, 150);
    let (ru, rv) = (
        (k(0, 0) * (f64::from(x) - CX_LEFT) / F + k(0, 2)).round() as i32,
        (k(1, 1) * (f64::from(y) - 150.0) / F + k(1, 2)).round() as i32,
    );
    assert!((mm(&left, x, y) - mm(&rect, ru, rv)).abs() < 0.002);
}

#[test]
fn a_bad_depth_frame_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    pair(dir.path());
    let calib = pipeline(
        dir.path(),
        "calib.toml",
        &format!(
            "version = 1\nimage_size = [{W}, {H}]\n[left]\ncamera_matrix = [[{F}, 0.0, {CX_LEFT}], [0.0, {F}, 150.0], [0.0, 0.0, 1.0]]\ndistortion = [0.0, 0.0, 0.0, 0.0, 0.0]\n[right]\ncamera_matrix = [[{F}, 0.0, {CX_RIGHT}], [0.0, {F}, 150.0], [0.0, 0.0, 1.0]]\ndistortion = [0.0, 0.0, 0.0, 0.0, 0.0]\n[right_from_left]\nrotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]\ntranslation_m = [-{B}, 0.0, 0.0]\n"
        ),
    );
    let p = pipeline(
        dir.path(),
        "p.toml",
        &format!(
            "version = 1\n[[source]]\nid = \"left\"\nkind = \"file\"\nlocation = \"left.png\"\n[[source]]\nid = \"right\"\nkind = \"file\"\nlocation = \"right.png\"\n[[stereo]]\nid = \"pair\"\nleft = \"left\"\nright = \"right\"\n[[stage]]\nid = \"depth\"\nkind = \"stereo_depth\"\ncalibration = \"{}\"\ndepth_frame = \"right\"\n[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\n",
            calib.display()
        ),
    );
    let out = run(&["check", p.to_str().unwrap()]);
    out.assert_code(2);
    let err = &out.stderr;
    assert!(
        err.contains("depth_frame") && err.contains("p.toml"),
        "{err}"
    );
}
