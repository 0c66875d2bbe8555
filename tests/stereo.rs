//! Stereo: calibration from OpenCV's sample chessboard pairs, SGBM accuracy
//! on the Middlebury Aloe pair, pairing of two streams by time, depth and 3D
//! positions end to end.

use opencv::core::{CV_16S, Mat};
use opencv::imgcodecs;
use opencv::prelude::*;
use percept::calib::StereoCalibration;
use percept::stages::stereo_depth::{SgbmSettings, StereoMatcher};

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

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn detections_get_3d_positions_and_depth_maps_are_written_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let depth_dir = dir.path().join("depth");
    // Two stills are one stereo frame.
    let r = one_record(
        "pipelines/stereo-objects.toml",
        &["--depth-out", depth_dir.to_str().unwrap()],
    );
    assert_eq!(r["stream"], "pair");
    assert_eq!(r["stereo"]["skew_ns"], 0);
    assert!(f(&r["depth"]["valid"]) > 0.9, "{r}");
    assert_positions(&r["detections"], "stereo", 0.02);
    // The PNG: 16-bit millimetres, named by stream and sequence number.
    let png = depth_dir.join("pair_000000.png");
    let m = imgcodecs::imread(png.to_str().unwrap(), imgcodecs::IMREAD_UNCHANGED).unwrap();
    assert_eq!(
        (m.cols(), m.rows(), m.typ()),
        (400, 300, opencv::core::CV_16UC1)
    );
    // Square centres at 1.25 m and 2 m, the wall at 5 m.
    assert_eq!(*m.at_2d::<u16>(118, 78).unwrap(), 1250);
    assert_eq!(*m.at_2d::<u16>(136, 266).unwrap(), 2000);
    assert_eq!(*m.at_2d::<u16>(250, 200).unwrap(), 5000);
}

#[test]
fn aloe_depth_png_gives_back_the_ground_truth_disparity() {
    // The user's path: two stills as a one-frame stereo recording, depth out
    // as PNG millimetres, turned back into disparity d = f · B / Z.
    let dir = tempfile::tempdir().unwrap();
    let depth_dir = dir.path().join("depth");
    one_record(
        "pipelines/stereo-aloe.toml",
        &["--depth-out", depth_dir.to_str().unwrap()],
    );
    let png = depth_dir.join("aloe_000000.png");
    let mm = imgcodecs::imread(png.to_str().unwrap(), imgcodecs::IMREAD_UNCHANGED).unwrap();
    let truth = gray(&media("aloeGT.png"));
    let mut disparity = Mat::new_rows_cols_with_default(
        mm.rows(),
        mm.cols(),
        CV_16S,
        opencv::core::Scalar::all(0.0),
    )
    .unwrap();
    for y in 0..mm.rows() {
        let src = mm.at_row::<u16>(y).unwrap();
        let dst = disparity.at_row_mut::<i16>(y).unwrap();
        for (d, z) in dst.iter_mut().zip(src) {
            *d = if *z == 0 {
                -16
            } else {
                (3740.0 * 0.16 / (f64::from(*z) / 1000.0) * 16.0).round() as i16
            };
        }
    }
    let (median, bad, covered) = disparity_errors(&disparity, &truth, 32);
    assert!(median <= 0.5, "median error {median}");
    assert!(bad < 0.10, "{:.1} % off by more than 2 px", bad * 100.0);
    assert!(covered > 0.8, "only {:.1} % matched", covered * 100.0);
}

#[test]
fn two_streams_pair_by_time_and_every_unpaired_frame_is_counted() {
    // Left at 30 fps; right at 25 fps, 3 ms late: frames pair only where
    // their times come within 10 ms, the rest are dropped as unpaired.
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "pair.toml",
        r#"
version = 1
[[source]]
id = "l"
kind = "gst"
launch = "videotestsrc num-buffers=30 ! video/x-raw,width=64,height=48,framerate=30/1"
[[source]]
id = "r"
kind = "gst"
launch = "videotestsrc num-buffers=25 timestamp-offset=3000000 ! video/x-raw,width=64,height=48,framerate=25/1"
[[stereo]]
id = "lr"
left = "l"
right = "r"
max_skew_ms = 10
[[stage]]
id = "stats"
kind = "image_stats"
streams = ["lr"]
"#,
    );
    let (_, records, s) = run_summarised(&p, dir.path());
    let pair = &s["stereo"][0];
    let n = pair["pairs"].as_u64().unwrap();
    assert_eq!(n as usize, records.len());
    assert_eq!(n + pair["unpaired_left"].as_u64().unwrap(), 30, "{pair}");
    assert_eq!(n + pair["unpaired_right"].as_u64().unwrap(), 25, "{pair}");
    // Brute force: left frame i (i/30 s) with right frame j (j/25 s + 3 ms) within 10 ms.
    let expected = (0..30)
        .filter(|i| {
            (0..25).any(|j| (f64::from(j) / 25.0 + 0.003 - f64::from(*i) / 30.0).abs() <= 0.010)
        })
        .count();
    assert_eq!(n as usize, expected, "{pair}");
    let mut last = (-1i64, -1i64);
    for (k, r) in records.iter().enumerate() {
        let st = &r["stereo"];
        assert_eq!(r["seq"].as_u64().unwrap(), k as u64);
        assert!(st["skew_ns"].as_i64().unwrap().abs() <= 10_000_000, "{r}");
        assert_eq!(st["clock"], "pts");
        let seqs = (
            st["left_seq"].as_i64().unwrap(),
            st["right_seq"].as_i64().unwrap(),
        );
        assert!(seqs.0 > last.0 && seqs.1 > last.1, "{r}");
        last = seqs;
        assert!(r["image_stats"].is_object());
    }
    assert!(
        s["drops"].to_string().contains("unpaired"),
        "{}",
        s["drops"]
    );
}

#[test]
fn a_calibration_for_another_image_size_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("pipelines/stereo-objects.toml"))
        .unwrap()
        .replace("../tests/", &format!("{}/tests/", repo().display()))
        .replace(
            "../calibration/synthetic_400x300.toml",
            &format!("{}/calibration/middlebury_aloe.toml", repo().display()),
        )
        .replace("../out/", "");
    let p = pipeline(dir.path(), "bad.toml", &text);
    let r = run(&["run", p.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("middlebury_aloe.toml")
            && r.stderr.contains("`image_size`")
            && r.stderr.contains("400x300"),
        "{}",
        r.stderr
    );
}

#[test]
fn calibrate_finds_the_boards_in_opencvs_sample_pairs() {
    let dir = tempfile::tempdir().unwrap();
    // Three sample pairs plus one without a board (the Aloe views).
    for name in [
        "left01", "right01", "left02", "right02", "left03", "right03", "left04", "right04",
    ] {
        std::os::unix::fs::symlink(
            media(&format!("{name}.jpg")),
            dir.path().join(format!("{name}.jpg")),
        )
        .unwrap();
    }
    let aloe = |side: &str| {
        imgcodecs::imread(
            media(&format!("aloe{side}.jpg")).to_str().unwrap(),
            imgcodecs::IMREAD_GRAYSCALE,
        )
        .unwrap()
    };
    let mut small = Mat::default();
    for (side, name) in [("L", "left99.jpg"), ("R", "right99.jpg")] {
        opencv::imgproc::resize(
            &aloe(side),
            &mut small,
            opencv::core::Size::new(640, 480),
            0.0,
            0.0,
            opencv::imgproc::INTER_AREA,
        )
        .unwrap();
        imgcodecs::imwrite(
            dir.path().join(name).to_str().unwrap(),
            &small,
            &opencv::core::Vector::new(),
        )
        .unwrap();
    }
    let out = dir.path().join("cal/stereo.toml");
    let d = dir.path().display();
    let r = run(&[
        "calibrate",
        "--left",
        &format!("{d}/left*.jpg"),
        "--right",
        &format!("{d}/right*.jpg"),
        "--board",
        "9x6",
        "--square-mm",
        "25",
        "--out",
        out.to_str().unwrap(),
    ]);
    r.assert_code(0);
    assert!(r.stdout.contains("4 of 5 pairs used"), "{}", r.stdout);
    assert!(
        r.stderr.contains("left99.jpg") && r.stderr.contains("board not found"),
        "{}",
        r.stderr
    );
    let c = StereoCalibration::load(&out).unwrap();
    let rms = c.rms_px.unwrap();
    // Four pairs only; the full set below must reach under 0.6 px.
    assert!(rms < 1.0, "RMS {rms}");
    assert_eq!(c.image_size, (640, 480));
    // The sample rig: about 8 cm apart, side by side.
    assert!((c.baseline_m() - 0.083).abs() < 0.01, "{}", c.baseline_m());
    assert!(c.translation_m.x < 0.0);

    // All 13 sample pairs (there is no pair 10): the figure in the closing note.
    let all = dir.path().join("all.toml");
    let m = std::env::var("PERCEPT_MEDIA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| media("left01.jpg").parent().unwrap().to_path_buf());
    let r = run(&[
        "calibrate",
        "--left",
        &format!("{}/left*.jpg", m.display()),
        "--right",
        &format!("{}/right*.jpg", m.display()),
        "--board",
        "9x6",
        "--square-mm",
        "25",
        "--out",
        all.to_str().unwrap(),
    ]);
    r.assert_code(0);
    assert!(r.stdout.contains("13 of 13 pairs used"), "{}", r.stdout);
    assert!(StereoCalibration::load(&all).unwrap().rms_px.unwrap() < 0.6);
    // No board anywhere: exit 2, naming why.
    let r = run(&[
        "calibrate",
        "--left",
        &format!("{d}/left99.jpg"),
        "--right",
        &format!("{d}/right99.jpg"),
        "--board",
        "9x6",
        "--square-mm",
        "25",
        "--out",
        out.to_str().unwrap(),
    ]);
    r.assert_code(2);
    assert!(r.stderr.contains("at least 3"), "{}", r.stderr);
}

fn truth() -> Vec<serde_json::Value> {
    let t: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/media/stereo.gt.json")).unwrap(),
    )
    .unwrap();
    t.as_array().unwrap().clone()
}

/// Runs a pipeline (with extra arguments) and returns its one record.
fn one_record(pipeline: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let p = repo().join(pipeline);
    let mut args = vec!["run", p.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args).assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 1);
    records[0].clone()
}

fn assert_positions(objects: &serde_json::Value, source: &str, tolerance: f64) {
    let objects = objects.as_array().unwrap();
    assert_eq!(objects.len(), 2, "{objects:?}");
    for t in truth() {
        let o = objects
            .iter()
            .find(|d| (f(&d["bbox"][0]) - f(&t["bbox"][0])).abs() < 3.0)
            .unwrap_or_else(|| panic!("nothing at {t}"));
        assert_eq!(o["depth_source"], source, "{o}");
        let (got, want) = (&o["position_m"], &t["position_m"]);
        assert!(
            (f(&got[2]) - f(&want[2])).abs() < tolerance * f(&want[2]),
            "{got} vs {want}"
        );
        for i in 0..2 {
            assert!((f(&got[i]) - f(&want[i])).abs() < 0.02, "{got} vs {want}");
        }
    }
}

#[test]
fn tracks_get_positions_too_and_side_by_side_frames_give_the_same_answer() {
    let r = one_record("pipelines/stereo-objects.toml", &[]);
    assert_positions(&r["tracks"], "stereo", 0.02);
    // The same views side by side in one 800x300 image.
    let dir = tempfile::tempdir().unwrap();
    let text = example_pipeline("stereo-objects.toml");
    let (head, rest) = text.split_once("[[source]]").unwrap();
    let (_, after) = rest.split_once("[[stage]]").unwrap();
    let sbs = format!(
        "{head}[[source]]\nid = \"cam\"\nkind = \"file\"\nlocation = \"{}\"\n\n[[stereo]]\nid = \"pair\"\nside_by_side = \"cam\"\n\n[[stage]]{after}",
        repo().join("tests/media/stereo_sbs.png").display()
    );
    let p = pipeline(dir.path(), "sbs.toml", &sbs);
    let out = dir.path().join("sbs.jsonl");
    run(&["run", p.to_str().unwrap(), "-o", out.to_str().unwrap()]).assert_code(0);
    let records = read_records(&out);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0]["width"].as_u64(), records[0]["stream"].as_str()),
        (Some(400), Some("pair"))
    );
    assert_positions(&records[0]["detections"], "stereo", 0.02);
}

#[test]
fn mono_depth_places_objects_with_a_fixed_scale_or_one_fitted_to_stereo() {
    let dir = tempfile::tempdir().unwrap();
    let depth_dir = dir.path().join("d");
    let r = one_record(
        "pipelines/mono-depth.toml",
        &["--depth-out", depth_dir.to_str().unwrap()],
    );
    assert_positions(&r["detections"], "mono", 0.03);
    assert_eq!(r["depth"]["source"], "mono");
    assert_eq!(
        (r["depth"]["width"].as_u64(), r["depth"]["height"].as_u64()),
        (Some(256), Some(192))
    );
    let png = depth_dir.join("cam0_000000.png");
    let m = imgcodecs::imread(png.to_str().unwrap(), imgcodecs::IMREAD_UNCHANGED).unwrap();
    // The wall, far from the squares: 5 m.
    let wall = f64::from(*m.at_2d::<u16>(170, 128).unwrap());
    assert!((wall - 5000.0).abs() < 250.0, "{wall} mm");

    // With stereo on the same frame, the relative output is fitted to it:
    // the scene is painted so that 1 / z = 2 r - 0.2.
    let r = one_record("pipelines/stereo-mono-fit.toml", &[]);
    let fit = &r["mono_fit"];
    assert!((f(&fit["scale"]) - 2.0).abs() < 0.1, "{fit}");
    assert!((f(&fit["shift"]) + 0.2).abs() < 0.02, "{fit}");
    assert!(fit["samples"].as_u64().unwrap() > 1000, "{fit}");
    assert_eq!(
        r["depth"]["source"], "stereo",
        "the stereo map stays the frame's map"
    );
}

#[test]
fn a_mono_depth_stage_without_stereo_or_scale_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = example_pipeline("mono-depth.toml")
        .replace("scale = 2.0", "")
        .replace("shift = -0.2", "");
    let p = pipeline(dir.path(), "mono.toml", &text);
    let r = run(&["check", p.to_str().unwrap()]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("mono.toml:") && r.stderr.contains("`stage[1].scale`"),
        "{}",
        r.stderr
    );
}

#[test]
fn opencv_and_ros_calibrations_import_to_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let original =
        StereoCalibration::load(&repo().join("calibration/opencv_sample_stereo.toml")).unwrap();
    let d = dir.path();
    // OpenCV FileStorage, as OpenCV's stereo_calib sample writes it (T in board units: mm).
    let mut fs = opencv::core::FileStorage::new(
        d.join("intrinsics.yml").to_str().unwrap(),
        opencv::core::FileStorage_Mode::WRITE as i32,
        "",
    )
    .unwrap();
    let m = |k: &nalgebra::Matrix3<f64>| {
        Mat::from_slice_2d(&[
            [k[(0, 0)], k[(0, 1)], k[(0, 2)]],
            [k[(1, 0)], k[(1, 1)], k[(1, 2)]],
            [k[(2, 0)], k[(2, 1)], k[(2, 2)]],
        ])
        .unwrap()
    };
    let v = |x: &[f64]| Mat::from_slice_2d(&[x]).unwrap();
    fs.write_mat("M1", &m(&original.left.matrix)).unwrap();
    fs.write_mat("D1", &v(&original.left.distortion)).unwrap();
    fs.write_mat("M2", &m(&original.right.matrix)).unwrap();
    fs.write_mat("D2", &v(&original.right.distortion)).unwrap();
    fs.write_mat("R", &m(&original.rotation)).unwrap();
    let t_mm: Vec<f64> = original.translation_m.iter().map(|x| x * 1000.0).collect();
    fs.write_mat("T", &v(&t_mm)).unwrap();
    fs.release().unwrap();
    let out = d.join("from_opencv.toml");
    let yml = d.join("intrinsics.yml");
    run(&[
        "import-calibration",
        "--from",
        "opencv",
        yml.to_str().unwrap(),
        "--size",
        "640x480",
        "--unit-m",
        "0.001",
        "--out",
        out.to_str().unwrap(),
    ])
    .assert_code(0);
    let back = StereoCalibration::load(&out).unwrap();
    assert!((back.rotation - original.rotation).abs().max() < 1e-9);
    assert!((back.translation_m - original.translation_m).norm() < 1e-9);
    assert_eq!(back.left.distortion.len(), original.left.distortion.len());
    // Without the size it cannot know the image size: exit 2, naming what to pass.
    let r = run(&[
        "import-calibration",
        "--from",
        "opencv",
        yml.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    r.assert_code(2);
    assert!(r.stderr.contains("--size"), "{}", r.stderr);

    // ROS camera_info, written from the same calibration's rectification.
    let rect = percept::calib::rectify::Rectification::new(&original).unwrap();
    let vals = |m: &Mat| -> Vec<f64> {
        (0..m.rows())
            .flat_map(|r| (0..m.cols()).map(move |c| (r, c)))
            .map(|(r, c)| *m.at_2d::<f64>(r, c).unwrap())
            .collect()
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, cam, r, p) in [
        ("left", &original.left, &rect.r1, &rect.p1),
        ("right", &original.right, &rect.r2, &rect.p2),
    ] {
        let k: Vec<f64> = (0..3)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .map(|(i, j)| cam.matrix[(i, j)])
            .collect();
        let yaml = format!(
            "image_width: 640\nimage_height: 480\ncamera_name: {name}\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [{}]\ndistortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [{}]\nrectification_matrix:\n  rows: 3\n  cols: 3\n  data: [{}]\nprojection_matrix:\n  rows: 3\n  cols: 4\n  data: [{}]\n",
            list(&k),
            list(&cam.distortion),
            list(&vals(r)),
            list(&vals(p))
        );
        std::fs::write(d.join(format!("{name}.yaml")), yaml).unwrap();
    }
    let out = d.join("from_ros.toml");
    let (l, r) = (d.join("left.yaml"), d.join("right.yaml"));
    run(&[
        "import-calibration",
        "--from",
        "ros",
        l.to_str().unwrap(),
        r.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .assert_code(0);
    let back = StereoCalibration::load(&out).unwrap();
    assert!(
        (back.rotation - original.rotation).abs().max() < 1e-6,
        "{}",
        back.rotation
    );
    assert!(
        (back.translation_m - original.translation_m).norm() < 1e-4,
        "{}",
        back.translation_m
    );
    // A broken camera_info names its file and field.
    std::fs::write(
        &r,
        std::fs::read_to_string(&r)
            .unwrap()
            .replace("rows: 3\n  cols: 4", "rows: 3\n  cols: 3"),
    )
    .unwrap();
    let e = run(&[
        "import-calibration",
        "--from",
        "ros",
        l.to_str().unwrap(),
        r.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    e.assert_code(2);
    assert!(
        e.stderr.contains("right.yaml") && e.stderr.contains("`projection_matrix`"),
        "{}",
        e.stderr
    );
}
