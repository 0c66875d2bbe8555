//! Zenoh throughput and latency on loopback, side by side with one process
//! (`benches/bench-zenoh.sh`, or `cargo bench --bench zenoh -- [ROUNDS]`).
//!
//! 1. Records per second through the `zenoh` sink to a subscriber in this
//!    process: a `test` source (320x240, 3000 frames, as fast as it
//!    decodes) with no stage, the `zenoh` sink (`congestion_control =
//!    "block"`) against the same pipeline with the `null` sink.
//! 2. Camera node to inference node, vtest.avi (768x576, 795 frames) as JPEG
//!    (quality 85): read as fast as possible (frames per second at the
//!    inference node) and paced at its 10 fps (capture to arrival, capture
//!    to output), against the same pipeline (`image_stats` → JSON Lines) in
//!    one process.
//!
//! Rounds alternate the set-ups; the table gives medians over rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zenoh::Wait;

fn percept() -> Command {
    Command::new(env!("CARGO_BIN_EXE_percept"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn vtest() -> PathBuf {
    let cache = std::env::var_os("PERCEPT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/percept"));
    let p = cache.join("media/vtest.avi");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    p
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn run(args: &[&str], pipeline: &Path) {
    let out = percept()
        .arg("run")
        .args(args)
        .arg(pipeline)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const FRAMES: u32 = 3000;

/// Records per second: through the zenoh sink to our subscriber, and with the null sink.
fn records_per_s(dir: &Path) -> (f64, f64) {
    let port = free_port();
    let mut config = zenoh::Config::default();
    config
        .insert_json5("listen/endpoints", &format!(r#"["tcp/127.0.0.1:{port}"]"#))
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let session = zenoh::open(config).wait().unwrap();
    let sub = session
        .declare_subscriber("percept/**")
        .with(zenoh::handlers::FifoChannel::new(10_000))
        .wait()
        .unwrap();
    let head = format!(
        "version = 1\n[[source]]\nid = \"cam0\"\nkind = \"test\"\nwidth = 320\nheight = 240\nmax_frames = {FRAMES}\n"
    );
    let z = dir.join("z.toml");
    std::fs::write(
        &z,
        format!(
            "{head}[[sink]]\nkind = \"zenoh\"\nconnect = [\"tcp/127.0.0.1:{port}\"]\nscouting = false\ncongestion_control = \"block\"\nwait_for_subscribers_s = 10\n"
        ),
    )
    .unwrap();
    let n = dir.join("n.toml");
    std::fs::write(
        &n,
        format!("{head}[[sink]]\nkind = \"null\"\npath = \"-\"\n"),
    )
    .unwrap();

    let start = Instant::now();
    run(&[], &n);
    let null_rate = f64::from(FRAMES) / start.elapsed().as_secs_f64();

    let child = percept()
        .arg("run")
        .arg(&z)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = None;
    let mut last = Instant::now();
    let mut got = 0u32;
    while got < FRAMES {
        match sub.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(_)) => {
                last = Instant::now();
                first.get_or_insert(last);
                got += 1;
            }
            _ => break,
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(got, FRAMES, "every record arrives");
    let first = first.unwrap();
    ((got - 1) as f64 / (last - first).as_secs_f64(), null_rate)
}

struct Frames {
    fps: f64,
    arrival_p50_ms: f64,
    arrival_p99_ms: f64,
    output_p50_ms: f64,
    output_p99_ms: f64,
}

/// Frames of vtest.avi a run reads: all of them unpaced, the first 150
/// (15 s) paced.
fn frames(paced: bool) -> usize {
    if paced { PACED_FRAMES } else { 795 }
}

const PACED_FRAMES: usize = 150;

fn camera_to_inference(dir: &Path, paced: bool) -> Frames {
    let port = free_port();
    let out = dir.join("infer.jsonl");
    let _ = std::fs::remove_file(&out);
    let infer = dir.join("infer.toml");
    std::fs::write(
        &infer,
        format!(
            "version = 1\n[[source]]\nid = \"cam0\"\nkind = \"zenoh\"\nlisten = [\"tcp/127.0.0.1:{port}\"]\nscouting = false\ndelivery = \"lossless\"\nformat = \"RGB\"\n[[stage]]\nid = \"stats\"\nkind = \"image_stats\"\n[[sink]]\nkind = \"jsonl\"\npath = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let cam = dir.join("cam.toml");
    std::fs::write(
        &cam,
        format!(
            "version = 1\n[[source]]\nid = \"cam0\"\nkind = \"file\"\nlocation = \"{}\"\nformat = \"RGB\"\nmax_frames = {}\n[[sink]]\nkind = \"zenoh\"\nconnect = [\"tcp/127.0.0.1:{port}\"]\nscouting = false\nrecords = false\nframes = \"jpeg\"\ncongestion_control = \"block\"\nwait_for_subscribers_s = 20\n",
            vtest().display(),
            frames(paced)
        ),
    )
    .unwrap();
    let mut inference = percept()
        .arg("run")
        .arg(&infer)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let args: &[&str] = if paced { &["--realtime"] } else { &[] };
    run(args, &cam);
    let deadline = Instant::now() + Duration::from_secs(60);
    while inference.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "inference node did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    frames_of(&records(&out), true, frames(paced))
}

fn one_process(dir: &Path, paced: bool) -> Frames {
    let out = dir.join("one.jsonl");
    let p = dir.join("one.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\n[[source]]\nid = \"cam0\"\nkind = \"file\"\nlocation = \"{}\"\nformat = \"RGB\"\nmax_frames = {}\n[[stage]]\nid = \"stats\"\nkind = \"image_stats\"\n[[sink]]\nkind = \"jsonl\"\npath = \"{}\"\n",
            vtest().display(),
            frames(paced),
            out.display()
        ),
    )
    .unwrap();
    let args: &[&str] = if paced { &["--realtime"] } else { &[] };
    let start = Instant::now();
    run(args, &p);
    let wall = start.elapsed().as_secs_f64();
    let mut f = frames_of(&records(&out), false, frames(paced));
    f.fps = frames(paced) as f64 / wall;
    f
}

fn frames_of(r: &[Value], zenoh: bool, n: usize) -> Frames {
    assert_eq!(r.len(), n, "every frame read");
    let ns = |v: &Value, k: &str| v[k].as_u64().unwrap() as f64;
    let arrival: Vec<f64> = if zenoh {
        r.iter()
            .map(|v| (ns(v, "arrival_wall_ns") - ns(v, "capture_wall_ns")) / 1e6)
            .collect()
    } else {
        vec![0.0]
    };
    let output: Vec<f64> = r
        .iter()
        .map(|v| (ns(v, "emit_wall_ns") - ns(v, "capture_wall_ns")) / 1e6)
        .collect();
    let (first, last) = (
        ns(&r[0], "emit_wall_ns"),
        ns(&r[r.len() - 1], "emit_wall_ns"),
    );
    Frames {
        fps: (r.len() - 1) as f64 / ((last - first) / 1e9),
        arrival_p50_ms: percentile(arrival.clone(), 0.5),
        arrival_p99_ms: percentile(arrival, 0.99),
        output_p50_ms: percentile(output.clone(), 0.5),
        output_p99_ms: percentile(output, 0.99),
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let (mut z, mut n) = (Vec::new(), Vec::new());
    let mut fast: Vec<(Frames, Frames)> = Vec::new();
    let mut paced: Vec<(Frames, Frames)> = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let (a, b) = records_per_s(dir.path());
        z.push(a);
        n.push(b);
        fast.push((
            camera_to_inference(dir.path(), false),
            one_process(dir.path(), false),
        ));
        paced.push((
            camera_to_inference(dir.path(), true),
            one_process(dir.path(), true),
        ));
    }
    let m = |v: &[(Frames, Frames)], f: &dyn Fn(&(Frames, Frames)) -> f64| {
        median(v.iter().map(f).collect())
    };
    println!("| measure | over Zenoh | one process | ratio |");
    println!("|---|---|---|---|");
    let (zm, nm) = (median(z), median(n));
    println!(
        "| records/s, test source 320x240 (zenoh sink + subscriber vs null sink) | {zm:.0} | {nm:.0} | {:.2} |",
        zm / nm
    );
    let (a, b) = (m(&fast, &|p| p.0.fps), m(&fast, &|p| p.1.fps));
    println!(
        "| vtest 768x576 frames/s, unpaced (JPEG camera node → inference node) | {a:.1} | {b:.1} | {:.2} |",
        a / b
    );
    println!(
        "| paced 10 fps (150 frames): capture → arrival p50 / p99, ms | {:.1} / {:.1} | — | — |",
        m(&paced, &|p| p.0.arrival_p50_ms),
        m(&paced, &|p| p.0.arrival_p99_ms)
    );
    println!(
        "| paced 10 fps (150 frames): capture → output p50 / p99, ms | {:.1} / {:.1} | {:.1} / {:.1} | — |",
        m(&paced, &|p| p.0.output_p50_ms),
        m(&paced, &|p| p.0.output_p99_ms),
        m(&paced, &|p| p.1.output_p50_ms),
        m(&paced, &|p| p.1.output_p99_ms)
    );
    println!("(medians of {rounds} alternating rounds)");
}
