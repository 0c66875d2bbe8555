//! Ctrl-C mid-run: exit 0, every processed frame written, valid JSON throughout.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn sigint_drains_in_flight_frames_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let p = pipeline(
        dir.path(),
        "slow.toml",
        &format!(
            r#"
version = 1
[[source]]
id = "cam0"
kind = "file"
location = "{}"
[[stage]]
id = "stats"
kind = "image_stats"
[[stage]]
id = "slow"
kind = "delay"
delay_ms = 8.0
[[sink]]
kind = "jsonl"
path = "{}"
"#,
            media("vtest.avi").display(),
            out.display()
        ),
    );
    let child = percept()
        .args(["run", p.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until output is flowing, then interrupt.
    let start = Instant::now();
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 40 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no output after 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = finish(child.wait_with_output().unwrap());
    run.assert_code(0);

    let records = read_records(&out);
    assert!(
        records.len() >= 40 && records.len() < 795,
        "{} records",
        records.len()
    );
    assert_contiguous(&records);
    assert!(records.iter().all(|r| r["image_stats"].is_object()));
    // Every frame that entered percept left it.
    let summary = format!(
        "{} frames in, {} out, 0 dropped",
        records.len(),
        records.len()
    );
    assert!(
        run.stderr.contains("(stopped)") && run.stderr.contains(&summary),
        "{}",
        run.stderr
    );
}
