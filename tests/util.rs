//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn percept() -> Command {
    Command::new(env!("CARGO_BIN_EXE_percept"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file from the set-up script's media cache.
pub fn media(name: &str) -> PathBuf {
    let dir = std::env::var_os("PERCEPT_MEDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/percept/media")
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// The set-up script's venv python (`PERCEPT_PYTHON`, else
/// `$PERCEPT_CACHE/venv/bin/python`, default `~/.cache/percept/venv`).
pub fn python() -> PathBuf {
    let path = std::env::var_os("PERCEPT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("PERCEPT_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/percept")
                })
                .join("venv/bin/python")
        });
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\n--- stderr:\n{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "panic:\n{}", self.stderr);
        self
    }
}

pub fn run(args: &[&str]) -> Run {
    let out = percept().args(args).output().expect("spawn percept");
    finish(out)
}

pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses JSON Lines; every line must be a JSON object.
pub fn parse_records(text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1));
            assert!(v.is_object(), "line {} is not an object", i + 1);
            v
        })
        .collect()
}

pub fn read_records(path: &Path) -> Vec<Value> {
    parse_records(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
}

pub fn u64_field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` missing or not a number in {v}"))
}

/// The text of `pipelines/NAME` with its relative paths (`../`) made
/// absolute, to write elsewhere with [`pipeline`] after editing.
pub fn example_pipeline(name: &str) -> String {
    std::fs::read_to_string(repo().join("pipelines").join(name))
        .unwrap_or_else(|e| panic!("pipelines/{name}: {e}"))
        .replace("../", &format!("{}/", repo().display()))
}

/// Runs pipeline `p` (must exit 0), its records into `out.jsonl` and its
/// summary into `summary.json` in `dir`. Returns the path of the records,
/// the records, and the summary.
pub fn run_summarised(p: &Path, dir: &Path) -> (PathBuf, Vec<Value>, Value) {
    let out = dir.join("out.jsonl");
    let summary = dir.join("summary.json");
    run(&[
        "run",
        p.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ])
    .assert_code(0);
    let s = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    (out.clone(), read_records(&out), s)
}

/// Writes a pipeline file into `dir`.
pub fn pipeline(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Records an H.264 Matroska file of `frames` frames with GStreamer.
pub fn record_mkv(path: &Path, frames: u32, width: u32, height: u32, fps: u32) {
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            &format!("num-buffers={frames}"),
            "pattern=ball",
            "!",
            &format!("video/x-raw,width={width},height={height},framerate={fps}/1"),
            "!",
            "videoconvert",
            "!",
            "video/x-raw,format=I420",
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "key-int-max=10",
            "!",
            "matroskamux",
            "!",
            "filesink",
            &format!("location={}", path.display()),
        ])
        .status()
        .expect("gst-launch-1.0");
    assert!(
        status.success(),
        "gst-launch-1.0 could not record {}",
        path.display()
    );
}

/// Asserts `seq` runs 0..n without gaps and PTS strictly increases.
pub fn assert_contiguous(records: &[Value]) {
    let mut last_pts = None;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(u64_field(r, "seq"), i as u64, "seq gap at record {i}");
        let pts = u64_field(r, "pts_ns");
        if let Some(prev) = last_pts {
            assert!(
                pts > prev,
                "PTS not increasing at record {i}: {prev} then {pts}"
            );
        }
        last_pts = Some(pts);
    }
}

/// `percept eval --json` of `pred` against `gt` (plus `extra` flags); must exit 0.
pub fn eval_json(gt: &Path, pred: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "eval",
        "--gt",
        gt.to_str().unwrap(),
        "--pred",
        pred.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let r = run(&args);
    r.assert_code(0);
    serde_json::from_str(r.stdout.trim()).unwrap()
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when the test ends, passed or failed.
pub struct Running(pub Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
