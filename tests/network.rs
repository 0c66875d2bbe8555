//! Network sources: credentials in URIs never appear in anything percept
//! prints or writes, and each kind of network failure has one exit code
//! whatever the protocol (3 unreachable or not answering, 4 credentials
//! refused). Servers are local stand-ins on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use crate::util::*;

pub const PASSWORD: &str = "S3cretPw0rd";

/// How a stand-in server answers.
#[derive(Clone, Copy)]
pub enum Answer {
    /// Accepts and never answers.
    Silent,
    /// RTSP 401 to every request.
    Rtsp401,
    /// HTTP 401 to every request.
    Http401,
}

/// Starts a server on 127.0.0.1 (a named thread; it lives until the test
/// process ends) and returns its port.
pub fn serve(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::Builder::new()
        .name(format!("server:{port}"))
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .name(format!("conn:{port}"))
                    .spawn(move || handle(conn, answer));
            }
        })
        .unwrap();
    port
}

fn handle(mut conn: TcpStream, answer: Answer) {
    let mut held = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        held.extend_from_slice(&buf[..n]);
        while let Some(end) = held.windows(4).position(|w| w == b"\r\n\r\n") {
            let request = String::from_utf8_lossy(&held[..end]).to_string();
            held.drain(..end + 4);
            let cseq = request
                .lines()
                .find_map(|l| l.strip_prefix("CSeq:").or_else(|| l.strip_prefix("CSEQ:")))
                .unwrap_or("1")
                .trim()
                .to_string();
            let reply = match answer {
                Answer::Silent => continue,
                Answer::Rtsp401 => format!(
                    "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n"
                ),
                Answer::Http401 => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 0\r\n\r\n".to_string(),
            };
            if conn.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// A port nothing listens on (bound, then closed): connections are refused.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn uri_pipeline(dir: &Path, uri: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        "net.toml",
        &format!(
            "version = 1\n[[source]]\nid = \"cam\"\nkind = \"uri\"\nlocation = \"{uri}\"\ntimeout_s = 1\n[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\n"
        ),
    )
}

/// Every file under `dir` and both streams of `r` are free of the password.
fn assert_no_password(dir: &Path, r: &Run, what: &str) {
    assert!(!r.stdout.contains(PASSWORD), "{what}: stdout\n{}", r.stdout);
    assert!(!r.stderr.contains(PASSWORD), "{what}: stderr\n{}", r.stderr);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            continue; // the user's own pipeline file
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PASSWORD), "{what}: {}", path.display());
    }
}

#[test]
fn each_network_failure_kind_has_one_exit_code_and_no_output_shows_the_password() {
    let cases = [
        ("rtsp", "refused", closed_port(), 3),
        ("rtsp", "timeout", serve(Answer::Silent), 3),
        ("rtsp", "401", serve(Answer::Rtsp401), 4),
        ("http", "refused", closed_port(), 3),
        ("http", "timeout", serve(Answer::Silent), 3),
        ("http", "401", serve(Answer::Http401), 4),
    ];
    for (scheme, kind, port, code) in cases {
        let what = format!("{scheme} {kind}");
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("{scheme}://admin:{PASSWORD}@127.0.0.1:{port}/stream");
        let p = uri_pipeline(dir.path(), &uri);
        let summary = dir.path().join("summary.json");
        let metrics = dir.path().join("metrics.jsonl");
        let r = finish(
            percept()
                .args([
                    "run",
                    p.to_str().unwrap(),
                    "-vvv",
                    "--summary-json",
                    summary.to_str().unwrap(),
                    "--metrics-out",
                    metrics.to_str().unwrap(),
                ])
                .env("GST_DEBUG", "rtsp*:6,soup*:6,uridecodebin:6")
                .output()
                .unwrap(),
        );
        r.assert_code(code);
        assert!(r.stderr.contains("network source"), "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("admin:***@127.0.0.1:{port}")),
            "{what}: the URI is shown, masked: {}",
            r.stderr
        );
        assert_no_password(dir.path(), &r, &what);

        let c = run(&["check", p.to_str().unwrap()]);
        c.assert_code(0);
        assert!(c.stdout.contains("admin:***@"), "{what}: {}", c.stdout);
        assert_no_password(dir.path(), &c, &format!("check {what}"));
    }
}

/// A pipeline-file error on the line holding the URI: no password in it.
#[test]
fn config_errors_quoting_the_uri_line_mask_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "bad.toml",
        &format!(
            "version = 1\n[[source]]\nid = \"cam\"\nkind = \"uri\"\nlocation = \"rtsp://admin:{PASSWORD}@cam.local/s\" oops\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n"
        ),
    );
    for args in [vec!["check"], vec!["run"]] {
        let mut a = args.clone();
        a.push(p.to_str().unwrap());
        let r = run(&a);
        r.assert_code(2);
        assert!(r.stderr.contains("bad.toml:5"), "{}", r.stderr);
        assert_no_password(dir.path(), &r, "config error");
    }
}
