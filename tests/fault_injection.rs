//! Media fault injection: small recordings with bytes corrupted at random
//! offsets (fixed seed, a few hundred variants). Every run ends with exit 0
//! (the damage was decodable) or 2 (a clear error), writes valid JSON on
//! every output line, never panics and never hangs (each run is bounded).

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

/// Variants per recording: 300 runs in all.
const VARIANTS: usize = 150;
/// Runs at a time.
const WORKERS: usize = 2;
/// A run longer than this is a hang (the clean files decode in well under a second).
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// xorshift64*: a fixed-seed generator, the same variants on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The outcome of one run: exit code and stdout, or `None` when it hung.
fn run_bounded(file: &Path) -> Option<(i32, String, String)> {
    let decode = repo().join("pipelines/decode-only.toml");
    let mut child = percept()
        .args([
            "run",
            decode.to_str().unwrap(),
            "-i",
            file.to_str().unwrap(),
            "-o",
            "-",
            "--no-progress",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::Builder::new()
        .name("stdout".into())
        .spawn(move || {
            let mut s = String::new();
            stdout.read_to_string(&mut s).map(|_| s)
        })
        .unwrap();
    let err_reader = std::thread::Builder::new()
        .name("stderr".into())
        .spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).map(|_| s)
        })
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap().unwrap_or_default();
    let err = err_reader.join().unwrap().unwrap_or_default();
    status.map(|s| (s.code().unwrap_or(-1), out, err))
}

fn inject(original: &Path, seed: u64, dir: &Path) -> (usize, [usize; 3]) {
    let clean = std::fs::read(original).unwrap();
    let ext = original.extension().unwrap().to_str().unwrap();
    // The variants, made in order from the seed, then run two at a time.
    let mut rng = Rng(seed);
    let variants: Vec<Vec<u8>> = (0..VARIANTS)
        .map(|_| {
            let mut bytes = clean.clone();
            // 1 to 16 bytes, anywhere (headers included).
            for _ in 0..1 + rng.below(16) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            bytes
        })
        .collect();
    let check = |v: usize| -> [usize; 3] {
        let file = dir.join(format!("v{v}.{ext}"));
        std::fs::write(&file, &variants[v]).unwrap();
        let Some((code, out, err)) = run_bounded(&file) else {
            panic!("variant {v} of {} hung (seed {seed})", original.display());
        };
        assert!(
            code == 0 || code == 2,
            "variant {v} of {}: exit {code}\n{err}",
            original.display()
        );
        assert!(!err.contains("panicked"), "variant {v}: panic\n{err}");
        let mut lines = 0;
        for (i, line) in out.lines().enumerate() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok_and(|j| j.is_object()),
                "variant {v} of {}: line {i} is not a JSON object: {line}",
                original.display()
            );
            lines += 1;
        }
        std::fs::remove_file(&file).unwrap();
        [usize::from(code == 0), usize::from(code == 2), lines]
    };
    let counts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let check = &check;
                std::thread::Builder::new()
                    .name(format!("inject:{w}"))
                    .spawn_scoped(scope, move || {
                        (w..VARIANTS).step_by(WORKERS).fold([0; 3], |acc, v| {
                            let c = check(v);
                            [acc[0] + c[0], acc[1] + c[1], acc[2] + c[2]]
                        })
                    })
                    .unwrap()
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold([0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]])
    });
    (VARIANTS, counts)
}

#[test]
fn corrupted_recordings_exit_0_or_2_with_valid_json_and_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    for (file, seed) in [
        ("tests/media/base.mp4", 12),
        ("tests/media/squares.mkv", 34),
    ] {
        let (n, [ok, bad, lines]) = inject(&repo().join(file), seed, dir.path());
        eprintln!("{file}: {n} variants, {ok} exit 0, {bad} exit 2, {lines} records");
        assert_eq!(ok + bad, n);
    }
}
