//! JSON Lines: one object per frame and line. Schema: `docs/output.md`.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::Sink;
use crate::clock;
use crate::config::OutputPath;
use crate::frame::{CaptureClock, Detection, Failure, ImageStats, Skip, Work};

/// Version of the output schema (`v` in every record).
pub const OUTPUT_SCHEMA_VERSION: u32 = 1;

/// Writes records as JSON Lines to a file or standard output.
pub struct JsonlSink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl JsonlSink {
    /// Opens (creating parent folders) or takes standard output.
    pub fn create(output: &OutputPath) -> io::Result<JsonlSink> {
        let out: Box<dyn Write + Send> = match output {
            OutputPath::Stdout => Box::new(io::stdout()),
            OutputPath::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Box::new(File::create(path)?)
            }
        };
        Ok(JsonlSink {
            out: BufWriter::with_capacity(1 << 16, out),
        })
    }
}

#[derive(Serialize)]
struct StatsView<'a> {
    mean: &'a [f64],
    min: &'a [u8],
    max: &'a [u8],
}

impl<'a> From<&'a ImageStats> for StatsView<'a> {
    fn from(s: &'a ImageStats) -> Self {
        let n = usize::from(s.channels);
        StatsView {
            mean: &s.mean[..n],
            min: &s.min[..n],
            max: &s.max[..n],
        }
    }
}

/// A depth map's summary (the map itself goes to `--depth-out`).
#[derive(Serialize)]
struct DepthView {
    source: Option<crate::frame::DepthSource>,
    width: u32,
    height: u32,
    /// Share of pixels with a valid depth.
    valid: f32,
}

impl From<&crate::frame::DepthMap> for DepthView {
    fn from(d: &crate::frame::DepthMap) -> Self {
        let valid = d.metres.iter().filter(|z| **z > 0.0).count();
        DepthView {
            source: d.source,
            width: d.width,
            height: d.height,
            valid: valid as f32 / d.metres.len().max(1) as f32,
        }
    }
}

/// One output line. Field names are the stable schema: add, never rename.
#[derive(Serialize)]
struct Line<'a> {
    v: u32,
    stream: &'a str,
    seq: u64,
    pts_ns: Option<u64>,
    duration_ns: Option<u64>,
    capture_ns: u64,
    capture_clock: CaptureClock,
    capture_wall_ns: u64,
    emit_wall_ns: u64,
    latency_ns: u64,
    width: u32,
    height: u32,
    format: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_stats: Option<StatsView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detections: Option<&'a [Detection]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracks: Option<&'a [crate::track::TrackOut]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'a crate::cascade::Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stereo: Option<crate::frame::PairInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<DepthView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mono_fit: Option<crate::frame::MonoFit>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    skipped: &'a [Skip],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    failed: &'a [Failure],
}

impl Sink for JsonlSink {
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        let meta = &work.frame.meta;
        let line = Line {
            v: OUTPUT_SCHEMA_VERSION,
            stream: &meta.stream,
            seq: meta.seq,
            pts_ns: meta.pts_ns,
            duration_ns: meta.duration_ns,
            capture_ns: meta.capture_ns,
            capture_clock: meta.capture_clock,
            capture_wall_ns: meta.capture_wall_ns,
            emit_wall_ns: clock::wall_ns_of(emit_ns),
            latency_ns: emit_ns.saturating_sub(meta.capture_ns),
            width: work.frame.width(),
            height: work.frame.height(),
            format: work.frame.format().to_str(),
            image_stats: work.record.image_stats.as_ref().map(StatsView::from),
            detections: work.record.detections.as_deref(),
            tracks: work.record.tracks.as_deref(),
            classification: work.record.classification.as_ref(),
            stereo: work.record.pair,
            depth: work.record.depth.as_ref().map(DepthView::from),
            mono_fit: work.record.mono_fit,
            skipped: &work.record.skipped,
            failed: &work.record.failed,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
