//! The operations endpoint (`--control`): `/health`, `/metrics` (checked
//! by `promtool check metrics`, from Debian's `prometheus` package) and
//! `/streams` while a live pipeline runs; an address in use is bad input.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// One HTTP/1.0 request to 127.0.0.1:`port`: (status, body), or `None`
/// when nothing answers.
fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    http_with(port, method, path, "")
}

/// [`http`] with a request body.
fn http_with(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).ok()?;
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn live_pipeline(dir: &std::path::Path) -> std::path::PathBuf {
    pipeline(
        dir,
        "control.toml",
        "version = 1\n[[source]]\nid = \"cam\"\nkind = \"test\"\nlive = true\nwidth = 64\nheight = 48\nframerate = 30\n[[stage]]\nid = \"stats\"\nkind = \"image_stats\"\n[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\n",
    )
}

/// A sample's value in Prometheus text: the line starting with `series `.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn control_endpoint_serves_health_metrics_and_streams_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let p = live_pipeline(dir.path());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = percept()
        .args(["run", p.to_str().unwrap(), "--control", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Frames flowing, as /streams tells.
    let start = Instant::now();
    let streams: Value = loop {
        if let Some((200, body)) = http(port, "GET", "/streams") {
            let v: Value = serde_json::from_str(&body).unwrap();
            if v[0]["frames"].as_u64().unwrap_or(0) >= 10 {
                break v;
            }
        }
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("no frames on /streams");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(streams.as_array().unwrap().len(), 1);
    assert_eq!(streams[0]["id"], "cam");
    assert_eq!(streams[0]["kind"], "test");
    assert_eq!(streams[0]["live"], true);
    assert_eq!(streams[0]["reconnects"], 0);

    let (status, body) = http(port, "GET", "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["pipeline"], "control");

    let (status, metrics) = http(port, "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(sample(&metrics, "percept_source_frames_total{source=\"cam\"}") >= 10.0);
    // Histogram: cumulative buckets, +Inf equal to the count, a sum in seconds.
    let stage = "percept_stage_latency_seconds";
    let count = sample(&metrics, &format!("{stage}_count{{stage=\"stats\"}}"));
    assert!(count >= 1.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            &format!("{stage}_bucket{{stage=\"stats\",le=\"+Inf\"}}")
        ),
        count
    );
    let buckets: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{stage}_bucket{{stage=\"stats\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(sample(&metrics, &format!("{stage}_sum{{stage=\"stats\"}}")) > 0.0);
    assert!(metrics.contains("percept_sink_latency_seconds_bucket{sink=\"jsonl\",le=\"0.005\"}"));
    assert!(metrics.contains("percept_source_reconnects_total{source=\"cam\"} 0"));

    // promtool (Debian's `prometheus` package, installed by scripts/setup.sh).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`): run scripts/setup.sh");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}\n--- metrics:\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    assert_eq!(http(port, "GET", "/nope").unwrap().0, 404);
    assert_eq!(http(port, "POST", "/health").unwrap().0, 405);

    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let r = finish(child.wait_with_output().unwrap());
    r.assert_code(0);
    // The endpoint ends with the run.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    for rec in read_records(&dir.path().join("out.jsonl")) {
        assert_eq!(rec["stream"], "cam");
    }
}

#[test]
fn control_address_in_use_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = live_pipeline(dir.path());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let r = run(&["run", p.to_str().unwrap(), "--control", &addr]);
    r.assert_code(2);
    assert!(
        r.stderr.contains(&format!("--control {addr}")),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("out.jsonl").exists() || lines_of(&dir.path().join("out.jsonl")) == 0);
}

fn lines_of(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Kills the run when a test fails midway (an orphan would keep the build
/// lock's file descriptor).
/// The stream `id` in `GET /streams`.
fn stream(port: u16, id: &str) -> Option<Value> {
    let (status, body) = http(port, "GET", "/streams")?;
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    list.as_array()?.iter().find(|s| s["id"] == id).cloned()
}

/// Polls `GET /streams` (and `/health`, which must answer every time)
/// until `ready` holds for stream `id`.
fn wait_stream(port: u16, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = http(port, "GET", "/health").expect("/health answers throughout");
        assert_eq!(status, 200, "{body}");
        if let Some(s) = stream(port, id)
            && ready(&s)
        {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stream `{id}`: {what} not seen in 60 s: {:?}",
            stream(port, id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn streams_are_added_and_removed_while_running() {
    let dir = tempfile::tempdir().unwrap();
    // Blocking queues: the added recording's frames are never dropped.
    let p = pipeline(
        dir.path(),
        "dynamic.toml",
        "version = 1\n[[source]]\nid = \"cam\"\nkind = \"test\"\nlive = true\nwidth = 64\nheight = 48\nframerate = 30\n[[stage]]\nid = \"stats\"\nkind = \"image_stats\"\nqueue = { policy = \"block\" }\n[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\nqueue = { policy = \"block\" }\n",
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = percept()
        .args(["run", p.to_str().unwrap(), "--control", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut run = Running(Some(child));
    let start = Instant::now();
    while http(port, "GET", "/health").is_none() {
        let exited = run.0.as_mut().unwrap().try_wait().unwrap();
        assert!(
            exited.is_none() && start.elapsed() < Duration::from_secs(60),
            "no endpoint: {exited:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_stream(port, "cam", "10 frames", |s| {
        s["frames"].as_u64() >= Some(10)
    });

    // A recording added while running (TOML body, path relative to the
    // pipeline's folder): every frame reaches the output, then it ends.
    let squares = repo().join("tests/media/squares.mkv");
    let (status, body) = http_with(
        port,
        "POST",
        "/streams",
        &format!(
            "id = \"rec\"\nkind = \"file\"\nlocation = \"{}\"\n",
            squares.display()
        ),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let added: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(added["id"], "rec");
    assert_eq!(added["kind"], "file");
    assert_eq!(added["added"], true);
    let rec = wait_stream(port, "rec", "its end", |s| s["state"] == "ended");
    assert_eq!(rec["frames"], 40);

    // A second live stream (JSON body), removed while it runs.
    let (status, body) = http_with(
        port,
        "POST",
        "/streams",
        r#"{"id": "cam2", "kind": "test", "live": true, "width": 32, "height": 24, "framerate": 30}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    wait_stream(port, "cam2", "10 frames", |s| {
        s["frames"].as_u64() >= Some(10)
    });
    let (_, metrics) = http(port, "GET", "/metrics").unwrap();
    for id in ["cam", "rec", "cam2"] {
        assert!(
            sample(
                &metrics,
                &format!("percept_source_frames_total{{source=\"{id}\"}}")
            ) >= 10.0,
            "{metrics}"
        );
    }
    let (status, body) = http(port, "DELETE", "/streams/cam2").unwrap();
    assert_eq!(status, 202, "{body}");
    let cam2 = wait_stream(port, "cam2", "its end", |s| s["state"] == "ended");
    let cam2_frames = cam2["frames"].as_u64().unwrap();

    // Refusals: the field is named; ids in use and unknown ids.
    let (status, body) =
        http_with(port, "POST", "/streams", "id = \"x\"\nkind = \"camera\"\n").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("source.kind") && body.contains("unknown source kind"),
        "{body}"
    );
    let (status, body) =
        http_with(port, "POST", "/streams", "id = \"cam\"\nkind = \"test\"\n").unwrap();
    assert_eq!(status, 409, "{body}");
    let (status, body) = http_with(
        port,
        "POST",
        "/streams",
        "id = \"stats\"\nkind = \"test\"\n",
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("source.id"), "{body}");
    assert_eq!(http(port, "DELETE", "/streams/nope").unwrap().0, 404);
    assert_eq!(http(port, "DELETE", "/streams/cam2").unwrap().0, 409);

    // The first stream went on throughout.
    let before = stream(port, "cam").unwrap()["frames"].as_u64().unwrap();
    wait_stream(port, "cam", "more frames", |s| {
        s["frames"].as_u64() > Some(before + 5)
    });

    let mut child = run.0.take().unwrap();
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit 30 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = finish(child.wait_with_output().unwrap());
    r.assert_code(0);

    // Each stream's records are complete and in order.
    let records = read_records(&dir.path().join("out.jsonl"));
    let of = |id: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["stream"] == id)
            .cloned()
            .collect()
    };
    let rec = of("rec");
    assert_eq!(rec.len(), 40);
    assert_contiguous(&rec);
    let cam2 = of("cam2");
    assert_eq!(
        cam2.len() as u64,
        cam2_frames,
        "every frame cam2 sent has a record"
    );
    assert_contiguous(&cam2);
    assert_contiguous(&of("cam"));
    assert!(
        rec.iter()
            .chain(&cam2)
            .all(|r| r["image_stats"].is_object())
    );
    assert!(r.stderr.contains("cam2"), "{}", r.stderr);
}
