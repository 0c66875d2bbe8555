//! The operations endpoint (`percept run ... --control 127.0.0.1:PORT`): a
//! small HTTP server (`tiny_http`) on a named thread of its own, reading the
//! same counters as the summary. It never touches a frame: a slow client
//! slows only this thread.
//!
//! - `GET /health`: `200 {"status":"ok", ...}` while the run goes on.
//! - `GET /metrics`: the counters and latency histograms in Prometheus text
//!   exposition format 0.0.4 ([`exposition`]).
//! - `GET /streams`: the streams as JSON: id, kind, what they read (URIs
//!   masked), state (`running`, `removing`, `ended`), frames, reconnects,
//!   gap seconds.
//! - `POST /streams`: adds a stream; the body is a `[[source]]` table (TOML,
//!   or JSON with the same fields), checked as in a pipeline file. `201`
//!   with the stream, `400` naming the field, `409` for an id in use.
//! - `DELETE /streams/<id>`: removes a stream; frames it already sent still
//!   reach the sinks. `202`, `404` for an unknown id, `409` when it ended.
//!
//! The exposition text is written here, not with `prometheus-client`: that
//! crate keeps metrics in its own objects and writes OpenMetrics, while
//! percept's counters and HDR histograms already exist; format 0.0.4 is a
//! `# HELP`/`# TYPE` pair and one line per sample.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::io::Read as _;

use super::stats::RunStats;
use super::streams::{StreamState, Streams};
use crate::config::Plan;
use crate::error::Error;

/// How long one wait for a request lasts before the thread checks whether the run ended.
const POLL: Duration = Duration::from_millis(100);

/// A running endpoint; [`Control::finish`] stops it.
pub struct Control {
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Binds the endpoint's address (before the run starts its threads); an
/// address that cannot be bound is bad input ([`Error::Control`]).
pub fn bind(addr: SocketAddr) -> Result<tiny_http::Server, Error> {
    let server = tiny_http::Server::http(addr).map_err(|e| Error::Control {
        addr: addr.to_string(),
        message: e.to_string(),
    })?;
    tracing::info!("operations endpoint on http://{addr} (/health, /metrics, /streams)");
    Ok(server)
}

impl Control {
    /// Serves `server` ([`bind`]) on a thread named `control` until
    /// [`Control::finish`].
    pub fn serve(
        server: tiny_http::Server,
        plan: &Plan,
        stats: Arc<RunStats>,
        streams: Arc<Streams>,
        started: Instant,
    ) -> Result<Control, Error> {
        let name = plan.name.clone();
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut request = match server.recv_timeout(POLL) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!("operations endpoint: {e}");
                            continue;
                        }
                    };
                    let (status, kind, body) =
                        answer(&mut request, &name, &streams, &stats, started.elapsed());
                    let mut response =
                        tiny_http::Response::from_string(body).with_status_code(status);
                    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], kind) {
                        response.add_header(h);
                    }
                    // A client that went away is its own problem.
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| Error::Stage {
                stage: "control".into(),
                action: "spawn its thread",
                message: e.to_string(),
            })?;
        Ok(Control { done, thread })
    }

    /// Stops serving and joins the thread.
    pub fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// The largest request body read (`POST /streams`).
const MAX_BODY: u64 = 64 * 1024;

/// Status, content type and body for one request.
fn answer(
    request: &mut tiny_http::Request,
    pipeline: &str,
    streams: &Arc<Streams>,
    stats: &RunStats,
    elapsed: Duration,
) -> (u16, &'static [u8], String) {
    use tiny_http::Method;
    const JSON: &[u8] = b"application/json";
    const TEXT: &[u8] = b"text/plain; charset=utf-8";
    const PROMETHEUS: &[u8] = b"text/plain; version=0.0.4; charset=utf-8";
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().clone();
    let json = |status: u16, body: serde_json::Result<String>| match body {
        Ok(body) => (status, JSON, body + "\n"),
        Err(e) => (500, TEXT, format!("{e}\n")),
    };
    let error = |status: u16, message: String| {
        let body = serde_json::json!({ "error": message });
        (status, JSON, body.to_string() + "\n")
    };
    match (&method, path.as_str()) {
        (Method::Get, "/health") => {
            let list = streams.list();
            let running = list
                .iter()
                .filter(|s| s.state != StreamState::Ended)
                .count();
            let body = serde_json::json!({
                "status": "ok",
                "pipeline": pipeline,
                "elapsed_s": elapsed.as_secs_f64(),
                "streams": list.len(),
                "streams_running": running,
            });
            (200, JSON, body.to_string() + "\n")
        }
        (Method::Get, "/metrics") => (200, PROMETHEUS, exposition(stats, elapsed)),
        (Method::Get, "/streams") => json(200, serde_json::to_string(&streams.list())),
        (Method::Post, "/streams") => {
            let mut body = String::new();
            let read =
                std::io::Read::take(request.as_reader(), MAX_BODY + 1).read_to_string(&mut body);
            match read {
                Err(e) => error(
                    400,
                    format!("POST /streams: the body is not UTF-8 text: {e}"),
                ),
                Ok(n) if n as u64 > MAX_BODY => error(
                    413,
                    format!("POST /streams: the body is over {MAX_BODY} bytes"),
                ),
                Ok(_) => match streams.add(&body) {
                    Ok(view) => json(201, serde_json::to_string(&view)),
                    Err(e) => error(e.status(), e.to_string()),
                },
            }
        }
        (Method::Delete, p) if p.starts_with("/streams/") => {
            let id = &p["/streams/".len()..];
            match streams.remove(id) {
                Ok(view) => json(202, serde_json::to_string(&view)),
                Err(e) => error(e.status(), e.to_string()),
            }
        }
        (_, "/health" | "/metrics") => (405, TEXT, format!("{path}: only GET is served\n")),
        (_, "/streams") => (405, TEXT, format!("{path}: GET or POST\n")),
        _ => (
            404,
            TEXT,
            format!(
                "{path}: not found (GET /health, /metrics, /streams; POST /streams; DELETE /streams/<id>)\n"
            ),
        ),
    }
}

/// Upper bounds of the latency histograms' buckets, seconds.
const BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A label value as the text format wants it (backslash, quote, newline escaped).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The run's counters and latency histograms in Prometheus text exposition
/// format 0.0.4: one `# HELP` and `# TYPE` per family, counters ending in
/// `_total`, times in seconds, memory in bytes.
pub fn exposition(stats: &RunStats, elapsed: Duration) -> String {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let sources = stats.sources();
    let per_source = |f: &dyn Fn(&crate::meter::SourceStats) -> String| -> Vec<(String, String)> {
        sources
            .iter()
            .map(|(id, s)| (format!("{{source=\"{}\"}}", label(id)), f(s)))
            .collect()
    };
    family(
        "percept_uptime_seconds",
        "gauge",
        "Seconds since the run started.",
        &[(String::new(), format!("{}", elapsed.as_secs_f64()))],
    );
    family(
        "percept_source_frames_total",
        "counter",
        "Frames a source delivered into percept.",
        &per_source(&|s| load(&s.frames).to_string()),
    );
    family(
        "percept_source_dropped_latest_total",
        "counter",
        "Frames dropped inside GStreamer for a newer one (latest delivery).",
        &per_source(&|s| load(&s.dropped_latest).to_string()),
    );
    family(
        "percept_source_reconnects_total",
        "counter",
        "Times a source came back after its pipeline was rebuilt.",
        &per_source(&|s| load(&s.reconnects).to_string()),
    );
    family(
        "percept_source_reconnect_attempts_total",
        "counter",
        "Pipeline rebuilds tried, successful or not.",
        &per_source(&|s| load(&s.reconnect_attempts).to_string()),
    );
    family(
        "percept_source_gap_seconds_total",
        "counter",
        "Seconds without frames before each come-back, summed.",
        &per_source(&|s| format!("{}", load(&s.gap_ns) as f64 / 1e9)),
    );
    let per_stage = |f: &dyn Fn(&super::stats::StageStats) -> String| -> Vec<(String, String)> {
        stats
            .stages
            .iter()
            .map(|s| (format!("{{stage=\"{}\"}}", label(&s.id)), f(s)))
            .collect()
    };
    family(
        "percept_stage_frames_total",
        "counter",
        "Frames a stage worked on.",
        &per_stage(&|s| load(&s.processed).to_string()),
    );
    family(
        "percept_stage_failed_total",
        "counter",
        "Frames a stage failed on.",
        &per_stage(&|s| load(&s.failed).to_string()),
    );
    family(
        "percept_stage_waited_total",
        "counter",
        "Frames an asynchronous stage held, within their deadline, for a result due before the next frame.",
        &per_stage(&|s| load(&s.waited).to_string()),
    );
    // Every bin of every stage, zeros included, as the other per-stage
    // counters: a series exists before its first increment.
    let bins = super::stats::LAG_BINS;
    let lags: Vec<(String, String)> = stats
        .stages
        .iter()
        .flat_map(|s| {
            s.result_lag.iter().enumerate().map(|(k, n)| {
                let late = super::stats::lag_label(k);
                let labels = format!("{{stage=\"{}\",frames_late=\"{late}\"}}", label(&s.id));
                (labels, load(n).to_string())
            })
        })
        .collect();
    family(
        "percept_stage_late_results_total",
        "counter",
        &format!(
            "Results of an asynchronous stage by how many frames after their own frame they reached the stream ({bins}+: {bins} or more)."
        ),
        &lags,
    );
    family(
        "percept_stage_batches_total",
        "counter",
        "Batched runs of a stage (`batch`).",
        &per_stage(&|s| load(&s.batches).to_string()),
    );
    family(
        "percept_stage_batched_frames_total",
        "counter",
        "Frames in a stage's batched runs (mean batch size: this over batches).",
        &per_stage(&|s| load(&s.batched_frames).to_string()),
    );
    let skipped: Vec<(String, String)> = stats
        .stages
        .iter()
        .flat_map(|s| {
            [
                ("deadline", &s.skipped_deadline),
                ("interval", &s.skipped_interval),
                ("busy", &s.skipped_busy),
            ]
            .map(|(reason, n)| {
                (
                    format!("{{stage=\"{}\",reason=\"{reason}\"}}", label(&s.id)),
                    load(n).to_string(),
                )
            })
        })
        .collect();
    family(
        "percept_stage_skipped_total",
        "counter",
        "Frames passed on without a stage's work, by reason.",
        &skipped,
    );
    let bounds_ns: Vec<u64> = BUCKETS_S.iter().map(|b| (b * 1e9) as u64).collect();
    let histogram = |key: &str, value: &str, latency: &crate::meter::Latency| {
        let b = latency.buckets(&bounds_ns);
        let mut samples = Vec::new();
        for ((_, n), bound) in b.le.iter().zip(BUCKETS_S) {
            samples.push((
                format!("_bucket{{{key}=\"{}\",le=\"{bound}\"}}", label(value)),
                n.to_string(),
            ));
        }
        samples.push((
            format!("_bucket{{{key}=\"{}\",le=\"+Inf\"}}", label(value)),
            b.count.to_string(),
        ));
        samples.push((
            format!("_sum{{{key}=\"{}\"}}", label(value)),
            format!("{}", b.sum_ns as f64 / 1e9),
        ));
        samples.push((
            format!("_count{{{key}=\"{}\"}}", label(value)),
            b.count.to_string(),
        ));
        samples
    };
    let stage_latency: Vec<(String, String)> = stats
        .stages
        .iter()
        .flat_map(|s| histogram("stage", &s.id, &s.latency))
        .collect();
    family(
        "percept_stage_latency_seconds",
        "histogram",
        "Time a stage spent per frame it worked on.",
        &stage_latency,
    );
    family(
        "percept_sink_records_total",
        "counter",
        "Records a sink wrote.",
        &stats
            .sinks
            .iter()
            .map(|s| {
                (
                    format!("{{sink=\"{}\"}}", label(&s.name)),
                    load(&s.written).to_string(),
                )
            })
            .collect::<Vec<_>>(),
    );
    family(
        "percept_sink_deadline_missed_total",
        "counter",
        "Records written after their frame's deadline.",
        &stats
            .sinks
            .iter()
            .map(|s| {
                (
                    format!("{{sink=\"{}\"}}", label(&s.name)),
                    load(&s.deadline_missed).to_string(),
                )
            })
            .collect::<Vec<_>>(),
    );
    let sink_latency: Vec<(String, String)> = stats
        .sinks
        .iter()
        .flat_map(|s| histogram("sink", &s.name, &s.latency))
        .collect();
    family(
        "percept_sink_latency_seconds",
        "histogram",
        "Capture to output per record.",
        &sink_latency,
    );
    family(
        "percept_edge_dropped_total",
        "counter",
        "Items dropped because an edge was full (drop_oldest).",
        &stats
            .edges
            .iter()
            .map(|e| {
                (
                    format!("{{edge=\"{}\"}}", label(&e.name)),
                    load(&e.dropped_full).to_string(),
                )
            })
            .collect::<Vec<_>>(),
    );
    family(
        "percept_edge_depth",
        "gauge",
        "Queue depth of an edge at its consumer's last receive.",
        &stats
            .edges
            .iter()
            .map(|e| {
                (
                    format!("{{edge=\"{}\"}}", label(&e.name)),
                    e.depth.load(Ordering::Relaxed).to_string(),
                )
            })
            .collect::<Vec<_>>(),
    );
    let (runs, ns) = crate::meter::INFERENCE.totals();
    family(
        "percept_inference_runs_total",
        "counter",
        "ONNX Runtime run calls, all engines.",
        &[(String::new(), runs.to_string())],
    );
    family(
        "percept_inference_seconds_total",
        "counter",
        "Seconds spent in ONNX Runtime run calls, all engines.",
        &[(String::new(), format!("{}", ns as f64 / 1e9))],
    );
    family(
        "percept_resident_memory_bytes",
        "gauge",
        "Resident set size of the process.",
        &[(
            String::new(),
            (super::stats::Memory::rss_kb() * 1024).to_string(),
        )],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::stats::StageStats;

    #[test]
    fn late_results_are_exposed_per_stage_and_lag() {
        let detect = Arc::new(StageStats::new("detect"));
        for late in [2, 2, 3, 12] {
            detect.rode(late);
        }
        let mut stats = RunStats::default();
        stats.stages = vec![detect, Arc::new(StageStats::new("track"))];
        let text = exposition(&stats, Duration::from_secs(1));
        let family = "percept_stage_late_results_total";
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{stage=\"detect\"")) && !l.ends_with(" 0"))
            .collect();
        assert_eq!(
            samples,
            [
                "percept_stage_late_results_total{stage=\"detect\",frames_late=\"2\"} 2",
                "percept_stage_late_results_total{stage=\"detect\",frames_late=\"3\"} 1",
                "percept_stage_late_results_total{stage=\"detect\",frames_late=\"8+\"} 1",
            ],
            "{text}"
        );
        // Every bin of every stage, zeros included.
        let all = text
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .count();
        assert_eq!(all, 2 * crate::runtime::stats::LAG_BINS, "{text}");
        assert!(text.contains(&format!("{family}{{stage=\"track\",frames_late=\"1\"}} 0")));
        assert!(text.contains(&format!("# TYPE {family} counter")));
    }
}
