//! Golden records: a detection + tracking run on a recording gives the same
//! records, timing fields aside, as the committed golden file. The golden
//! files were written by the code before the plug-in refactor (issue 10) and
//! re-blessed when the tracker changed on purpose (issue 17: states kept at
//! the last measurement, velocity after two differences); `PERCEPT_BLESS=1`
//! rewrites them when a change of records is intended (refused under CI).

use serde_json::Value;

use crate::util::*;

/// Fields that depend on when the run happened, not on what it computed.
const TIMING_FIELDS: [&str; 4] = [
    "capture_ns",
    "capture_wall_ns",
    "emit_wall_ns",
    "latency_ns",
];

/// Relative tolerance for numbers (the same build gives identical numbers;
/// this only absorbs float formatting).
const REL_TOL: f64 = 1e-6;

fn strip_timing(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in TIMING_FIELDS {
            o.remove(k);
        }
    }
    v
}

/// Equal JSON, numbers within [`REL_TOL`]; `Err` names the first difference.
fn same(a: &Value, b: &Value, at: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() <= REL_TOL * x.abs().max(y.abs()).max(1e-9) {
                Ok(())
            } else {
                Err(format!("{at}: {x} != {y}"))
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{at}: {} items != {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .try_for_each(|(i, (x, y))| same(x, y, &format!("{at}[{i}]")))
        }
        (Value::Object(x), Value::Object(y)) => {
            let (kx, ky): (Vec<_>, Vec<_>) = (x.keys().collect(), y.keys().collect());
            if kx != ky {
                return Err(format!("{at}: keys {kx:?} != {ky:?}"));
            }
            x.iter()
                .try_for_each(|(k, v)| same(v, &y[k], &format!("{at}.{k}")))
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{at}: {a} != {b}")),
    }
}

fn check_golden(pipeline: &str, golden: &str, frames: usize) {
    let p = repo().join("tests/pipelines").join(pipeline);
    let r = run(&["run", p.to_str().unwrap()]);
    r.assert_code(0);
    let got: Vec<Value> = parse_records(&r.stdout)
        .into_iter()
        .map(strip_timing)
        .collect();
    assert_eq!(got.len(), frames, "records of {pipeline}");
    let path = repo().join("tests/golden").join(golden);
    if std::env::var_os("PERCEPT_BLESS").is_some() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PERCEPT_BLESS is refused under CI: bless on a developer machine and commit the file"
        );
        let text: String = got.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(&path, text).unwrap();
        eprintln!("blessed {}", path.display());
        return;
    }
    let want = read_records(&path);
    assert_eq!(got.len(), want.len(), "record count against {golden}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if let Err(e) = same(g, w, "record") {
            panic!("{golden} line {}: {e}\n got: {g}\nwant: {w}", i + 1);
        }
    }
}

#[test]
fn detect_track_records_match_the_golden_file() {
    check_golden("golden_squares.toml", "squares_track.jsonl", 40);
}

#[test]
fn detect_reid_track_records_match_the_golden_file() {
    check_golden("golden_crossing.toml", "crossing_reid_track.jsonl", 45);
}
