//! Live sources that survive (`reconnect`): a real RTSP server
//! (gst-rtsp-server, in this test process on 127.0.0.1) stopped for a few
//! seconds and started again on the same port; servers that never answer or
//! refuse the credentials; the `reconnect` table's checks.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gstreamer_rtsp_server as rtsp;
use rtsp::prelude::*;
use rtsp::{gio, glib};

use crate::network::{Answer, PASSWORD, serve};
use crate::util::*;

/// What the server sends: a live test pattern, H.264 in RTP.
const LAUNCH: &str = "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=25/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 config-interval=1 )";

/// A gst-rtsp-server on 127.0.0.1:`port` at `/test`, with its own GLib
/// main loop on a named thread; [`RtspServer::stop`] closes its clients
/// and its listening socket.
struct RtspServer {
    server: rtsp::RTSPServer,
    source: glib::Source,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl RtspServer {
    fn start(port: u16) -> RtspServer {
        gstreamer::init().unwrap();
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(LAUNCH);
        factory.set_shared(true);
        server.mount_points().unwrap().add_factory("/test", factory);
        let context = glib::MainContext::new();
        let source = server
            .create_source(None::<&gio::Cancellable>)
            .expect("RTSP server socket (port in use?)");
        source.attach(Some(&context));
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let run = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rtsp:{port}"))
            .spawn(move || run.run())
            .unwrap();
        RtspServer {
            server,
            source,
            main_loop,
            thread: Some(thread),
            port,
        }
    }

    /// Stops accepting, drops every client (their sessions end), ends the
    /// main loop and waits until the port refuses connections.
    fn stop(mut self) {
        self.source.destroy();
        self.server
            .client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let port = self.port;
        drop(self);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "port {port} still accepts after the server stopped"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A `uri` source with `reconnect` (and `extra` fields or sources), image
/// statistics, JSON Lines. The edges block, so a loaded machine drops
/// frames inside GStreamer (`latest` delivery, before they get a `seq`),
/// never between percept's threads: every stream's `seq` stays contiguous.
fn reconnect_pipeline(dir: &Path, uri: &str, extra: &str) -> PathBuf {
    pipeline(
        dir,
        "live.toml",
        &format!(
            r#"version = 1
[[source]]
id = "cam"
kind = "uri"
location = "{uri}"
reconnect = {{ after_s = 1.0, backoff_max_s = 2.0, attempts = "forever" }}
{extra}
[[stage]]
id = "stats"
kind = "image_stats"
queue = {{ policy = "block" }}
[[sink]]
kind = "jsonl"
path = "out.jsonl"
queue = {{ policy = "block" }}
"#
        ),
    )
}

/// Starts `percept run` with stderr to a file (read while it runs).
fn spawn_run(p: &Path, dir: &Path, extra: &[&str]) -> (Child, PathBuf) {
    let log = dir.join("stderr.log");
    let child = percept()
        .arg("run")
        .arg(p)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// Waits (up to `limit`) until `ready` holds, checked every 50 ms; a
/// failure shows percept's stderr (`log`).
fn wait_for(
    what: &str,
    limit: Duration,
    child: &mut Child,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "percept exited ({status}) while waiting for {what}:\n{}",
                text(log)
            );
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            panic!("no {what} after {limit:?}:\n{}", text(log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn text(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// SIGINT, then the exit status and stderr.
fn interrupt(mut child: Child, log: &Path) -> Run {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: text(log),
    }
}

#[test]
fn rtsp_server_stopped_and_restarted_is_a_gap_not_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = RtspServer::start(port);
    let p = reconnect_pipeline(
        dir.path(),
        &format!("rtsp://127.0.0.1:{port}/test"),
        // A second, local stream that must go on while `cam` is down.
        "width = 160\nheight = 120\n[[source]]\nid = \"other\"\nkind = \"test\"\nlive = true\nwidth = 160\nheight = 120\nframerate = 25",
    );
    let out = dir.path().join("out.jsonl");
    let summary = dir.path().join("summary.json");
    let (mut child, log) = spawn_run(
        &p,
        dir.path(),
        &["--summary-json", summary.to_str().unwrap()],
    );
    let cam_lines = |out: &Path| {
        std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"stream\":\"cam\""))
            .count()
    };
    wait_for(
        "first records",
        Duration::from_secs(60),
        &mut child,
        &log,
        || cam_lines(&out) >= 20,
    );

    let stopped = Instant::now();
    server.stop();
    // percept notices (watchdog, error or end of stream) and retries.
    wait_for(
        "a reconnect attempt",
        Duration::from_secs(30),
        &mut child,
        &log,
        || text(&log).contains("reconnect attempt"),
    );
    // The server stays down for a few seconds (the scenario, not a check).
    std::thread::sleep(Duration::from_secs(3));
    let server = RtspServer::start(port);
    let down_s = stopped.elapsed().as_secs_f64();

    let resumed = |out: &Path| {
        let t = std::fs::read_to_string(out).unwrap_or_default();
        let complete: Vec<&str> = t.lines().collect();
        match complete.iter().position(|l| l.contains("\"gap_ms\"")) {
            Some(i) => complete.len() >= i + 20,
            None => false,
        }
    };
    wait_for(
        "records after the gap",
        Duration::from_secs(60),
        &mut child,
        &log,
        || resumed(&out),
    );
    // Lost again and stopped while lost: that open gap is counted too.
    let attempts = |log: &Path| text(log).matches("reconnect attempt").count();
    let before = attempts(&log);
    let stopped_again = Instant::now();
    server.stop();
    wait_for(
        "a second reconnect attempt",
        Duration::from_secs(30),
        &mut child,
        &log,
        || attempts(&log) > before,
    );
    // Down a while longer (the scenario, not a check), then Ctrl-C.
    std::thread::sleep(Duration::from_millis(1500));
    let r = interrupt(child, &log);
    let open_gap_s = stopped_again.elapsed().as_secs_f64();
    r.assert_code(0);
    assert!(r.stderr.contains("without it coming back"), "{}", r.stderr);

    let all = read_records(&out);
    let of = |stream: &str| -> Vec<serde_json::Value> {
        all.iter()
            .filter(|r| r["stream"] == stream)
            .cloned()
            .collect()
    };
    let (records, other) = (of("cam"), of("other"));
    assert_eq!(records.len() + other.len(), all.len());
    for list in [&records, &other] {
        for (i, rec) in list.iter().enumerate() {
            assert_eq!(u64_field(rec, "seq"), i as u64, "seq continuous at {i}");
            assert!(rec["image_stats"].is_object(), "record {i}: {rec}");
        }
    }
    let gaps: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].get("gap_ms").is_some())
        .collect();
    assert_eq!(gaps.len(), 1, "one gap: {gaps:?}");
    let g = gaps[0];
    assert!(g > 0);
    let gap_ms = records[g]["gap_ms"].as_f64().unwrap();
    // The last frame before was captured before the server stopped, the
    // first after once it ran again: the gap spans at least the downtime.
    assert!(gap_ms >= down_s * 1e3, "gap {gap_ms} ms, down {down_s} s");
    let dcap = u64_field(&records[g], "capture_ns") - u64_field(&records[g - 1], "capture_ns");
    assert!(dcap as f64 >= down_s * 1e9, "capture jump {dcap} ns");
    // PTS keep increasing and show the jump (the tracker's time).
    let mut last = None;
    for (i, rec) in records.iter().enumerate() {
        let pts = u64_field(rec, "pts_ns");
        if let Some(prev) = last {
            assert!(pts > prev, "PTS not increasing at {i}: {prev} then {pts}");
        }
        last = Some(pts);
    }
    let dpts = u64_field(&records[g], "pts_ns") - u64_field(&records[g - 1], "pts_ns");
    assert!(dpts as f64 >= down_s * 1e9, "PTS jump {dpts} ns");
    // The other stream went on while `cam` was down.
    let (from, to) = (
        u64_field(&records[g - 1], "capture_ns"),
        u64_field(&records[g], "capture_ns"),
    );
    let during = other
        .iter()
        .filter(|r| (from..to).contains(&u64_field(r, "capture_ns")))
        .count();
    assert!(during > 0, "no `other` frames during the gap");

    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let src = &s["sources"][0];
    assert_eq!(src["reconnects"], 1, "{src}");
    assert!(src["reconnect_attempts"].as_u64().unwrap() >= 1, "{src}");
    // The open gap is counted from the last frame: at least the time the
    // server was down before Ctrl-C, less the watchdog's notice (2 s at most).
    let gap_s = src["gap_s"].as_f64().unwrap();
    assert!(
        gap_s >= down_s + open_gap_s - 2.5,
        "{src}, open {open_gap_s:.2} s"
    );
    assert!(
        gap_s >= gap_ms / 1e3 + 0.5,
        "{src}: the open gap is not counted"
    );
    assert_eq!(s["frames_out"].as_u64().unwrap(), all.len() as u64);
    assert_eq!(s["sources"][1]["reconnects"], 0);
    assert!(r.stderr.contains("1 reconnects"), "{}", r.stderr);
    eprintln!(
        "down {down_s:.2} s, gap {gap_ms:.1} ms, {} attempts, {} records, {during} of `other` during the gap",
        src["reconnect_attempts"],
        records.len(),
    );
}

/// A server that accepts and never answers, and one that refuses the
/// credentials: with `attempts = "forever"` percept keeps trying, says why
/// on each attempt, and Ctrl-C ends it with exit 0; the password is never shown.
#[test]
fn unanswering_and_refusing_servers_are_retried_forever_until_ctrl_c() {
    for (answer, why) in [
        (Answer::Silent, "no frame for 0.5 s"),
        (Answer::Rtsp401, "refused the credentials"),
    ] {
        let port = serve(answer);
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(
            dir.path(),
            "live.toml",
            &format!(
                "version = 1\n[[source]]\nid = \"cam\"\nkind = \"uri\"\nlocation = \"rtsp://admin:{PASSWORD}@127.0.0.1:{port}/s\"\nreconnect = {{ after_s = 0.5, backoff_max_s = 1.0, attempts = \"forever\" }}\n[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\n"
            ),
        );
        let (mut child, log) = spawn_run(&p, dir.path(), &[]);
        wait_for(
            "three reconnect attempts",
            Duration::from_secs(60),
            &mut child,
            &log,
            || {
                let t = text(&log);
                // One line per attempt, each with its reason.
                t.contains("reconnect attempt 3 (of forever)")
                    && t.lines()
                        .filter(|l| l.contains("reconnect attempt"))
                        .all(|l| l.contains(why) && l.contains("admin:***@"))
            },
        );
        let r = interrupt(child, &log);
        r.assert_code(0);
        assert!(!r.stderr.contains(PASSWORD), "{}", r.stderr);
        assert!(r.stderr.contains("admin:***@"), "{}", r.stderr);
        assert_eq!(lines(&dir.path().join("out.jsonl")), 0);
    }
}

/// A bounded number of attempts ends the run with the network exit code.
#[test]
fn bounded_attempts_end_with_the_network_exit_code() {
    let port = serve(Answer::Silent);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "live.toml",
        &format!(
            "version = 1\n[[source]]\nid = \"cam\"\nkind = \"uri\"\nlocation = \"rtsp://127.0.0.1:{port}/s\"\nreconnect = {{ after_s = 0.3, backoff_max_s = 0.3, attempts = 2 }}\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n"
        ),
    );
    let r = run(&["run", p.to_str().unwrap()]);
    r.assert_code(3);
    assert!(
        r.stderr.contains("reconnect attempt 2 (of 2)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("giving up after 2 reconnect attempts"),
        "{}",
        r.stderr
    );
}

#[test]
fn reconnect_settings_are_checked_and_files_never_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let vtest = media("vtest.avi");
    let cases = [
        (
            format!("kind = \"file\"\nlocation = \"{}\"\nreconnect = {{ after_s = 1.0 }}", vtest.display()),
            "source[0].reconnect",
            "not used by kind = \"file\"",
        ),
        (
            format!("kind = \"uri\"\nlocation = \"file://{}\"\nreconnect = {{ after_s = 1.0 }}", vtest.display()),
            "source[0].reconnect",
            "files never reconnect",
        ),
        (
            "kind = \"uri\"\nlocation = \"rtsp://127.0.0.1:9/s\"\nreconnect = { attempts = \"sometimes\" }".to_string(),
            "source[0].reconnect.attempts",
            "\"forever\"",
        ),
        (
            "kind = \"uri\"\nlocation = \"rtsp://127.0.0.1:9/s\"\nreconnect = { attempts = 0 }".to_string(),
            "source[0].reconnect.attempts",
            "1 or more",
        ),
        (
            "kind = \"v4l2\"\nlocation = \"/dev/video9\"\nreconnect = { after_s = -1.0 }".to_string(),
            "source[0].reconnect.after_s",
            "positive",
        ),
        (
            "kind = \"uri\"\nlocation = \"rtsp://127.0.0.1:9/s\"\nreconnect = { after_s = 5.0, backoff_max_s = 1.0 }".to_string(),
            "source[0].reconnect.backoff_max_s",
            "at least `after_s`",
        ),
        (
            "kind = \"uri\"\nlocation = \"rtsp://127.0.0.1:9/s\"\nreconnect = { after = 5.0 }".to_string(),
            "reconnect",
            "unknown field `after`",
        ),
    ];
    for (source, field, message) in cases {
        let p = pipeline(
            dir.path(),
            "bad.toml",
            &format!(
                "version = 1\n[[source]]\nid = \"cam\"\n{source}\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n"
            ),
        );
        for cmd in ["check", "run"] {
            let r = run(&[cmd, p.to_str().unwrap()]);
            r.assert_code(2);
            assert!(r.stderr.contains("bad.toml"), "{cmd} {field}: {}", r.stderr);
            assert!(r.stderr.contains(field), "{cmd} {field}: {}", r.stderr);
            assert!(r.stderr.contains(message), "{cmd} {field}: {}", r.stderr);
        }
    }
    // A valid table shows in `percept check`.
    let p = pipeline(
        dir.path(),
        "ok.toml",
        "version = 1\n[[source]]\nid = \"cam\"\nkind = \"uri\"\nlocation = \"rtsp://127.0.0.1:9/s\"\nreconnect = { after_s = 2.0, backoff_max_s = 30.0, attempts = \"forever\" }\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n",
    );
    let r = run(&["check", p.to_str().unwrap()]);
    r.assert_code(0);
    assert!(
        r.stdout
            .contains("reconnect after 2 s without frames, backoff up to 30 s, forever"),
        "{}",
        r.stdout
    );
}

/// A V4L2 device that is not there (unplugged) is retried like a network
/// stream; with a bounded number of attempts the source then fails.
#[test]
fn missing_v4l2_device_is_retried_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "cam.toml",
        "version = 1\n[[source]]\nid = \"usb\"\nkind = \"v4l2\"\nlocation = \"/dev/video-percept-missing\"\nreconnect = { after_s = 0.2, backoff_max_s = 0.4, attempts = 2 }\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n",
    );
    let r = run(&["run", p.to_str().unwrap()]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for n in 1..=2 {
        assert!(
            r.stderr.contains(&format!("reconnect attempt {n} (of 2)")),
            "{}",
            r.stderr
        );
    }
    assert!(
        r.stderr.contains("v4l2 /dev/video-percept-missing"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("giving up after 2 reconnect attempts"),
        "{}",
        r.stderr
    );
}
