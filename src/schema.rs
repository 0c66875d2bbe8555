//! The output schema: what one frame's record serialises to. Every sink that
//! writes records (JSON Lines today; MCAP, video overlays, Zenoh later) uses
//! [`RecordLine`], so field names are defined once. Documented in
//! `docs/output.md`; field names are stable: add, never rename.

use serde::Serialize;

use crate::clock;
use crate::frame::{CaptureClock, TimeSource};
use crate::record::{
    Classification, DepthCamera, DepthMap, DepthSource, Detection, Failure, ImageStats, MonoFit,
    PairInfo, Skip, TrackOut, Work,
};

/// Version of the output schema (`v` in every record).
pub const OUTPUT_SCHEMA_VERSION: u32 = 1;

/// Image statistics as written: only the channels the frame has.
#[derive(Debug, Serialize)]
pub struct StatsView<'a> {
    /// Mean per channel.
    pub mean: &'a [f64],
    /// Minimum per channel.
    pub min: &'a [u8],
    /// Maximum per channel.
    pub max: &'a [u8],
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

/// A depth map's summary (the map itself goes to a `depth_png` sink).
#[derive(Debug, Serialize)]
pub struct DepthView {
    /// Stereo or mono.
    pub source: Option<DepthSource>,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Share of pixels with a valid depth.
    pub valid: f32,
    /// The camera the map is in (stereo): view, matrix `k`, `baseline_m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<DepthCamera>,
}

impl From<&DepthMap> for DepthView {
    fn from(d: &DepthMap) -> Self {
        let valid = d.metres.iter().filter(|z| **z > 0.0).count();
        DepthView {
            source: d.source,
            width: d.width,
            height: d.height,
            valid: valid as f32 / d.metres.len().max(1) as f32,
            camera: d.camera.as_deref().cloned(),
        }
    }
}

/// One output record. Borrowed from the [`Work`]: building it copies nothing.
#[derive(Debug, Serialize)]
pub struct RecordLine<'a> {
    /// [`OUTPUT_SCHEMA_VERSION`].
    pub v: u32,
    /// Stream id (source or stereo pair).
    pub stream: &'a str,
    /// Per-stream sequence number.
    pub seq: u64,
    /// Media time, ns.
    pub pts_ns: Option<u64>,
    /// Frame duration, ns.
    pub duration_ns: Option<u64>,
    /// Monotonic capture time, ns.
    pub capture_ns: u64,
    /// The clock of `capture_ns`.
    pub capture_clock: CaptureClock,
    /// Where `pts_ns` came from: `pts` (the stream's), `framerate`
    /// (synthesised from the frame rate) or `arrival` (none: a live source's
    /// capture clock).
    pub time_source: TimeSource,
    /// The orientation tag applied to make the frame upright (`rotate-90`,
    /// `flip-rotate-0`, …); absent when the stream has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<&'static str>,
    /// On the first record after a reconnecting source came back: the time
    /// without frames before it, milliseconds (capture time minus the
    /// previous frame's). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<f64>,
    /// Wall-clock capture time, ns since the Unix epoch.
    pub capture_wall_ns: u64,
    /// When the capture time came from another node (`capture_clock` is
    /// `sender`: a `zenoh` source): wall-clock arrival here, ns since the
    /// Unix epoch. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival_wall_ns: Option<u64>,
    /// Wall-clock output time, ns since the Unix epoch.
    pub emit_wall_ns: u64,
    /// Capture to output, ns.
    pub latency_ns: u64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Pixel format (GStreamer name).
    pub format: &'a str,
    /// Per-channel statistics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_stats: Option<StatsView<'a>>,
    /// Detections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<&'a [Detection]>,
    /// Tracks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracks: Option<&'a [TrackOut]>,
    /// A classifier's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<&'a Classification>,
    /// Stereo pair bookkeeping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stereo: Option<PairInfo>,
    /// Depth map summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<DepthView>,
    /// Monocular depth fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mono_fit: Option<MonoFit>,
    /// Stages that did not work on this frame.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub skipped: &'a [Skip],
    /// Stages that failed on this frame.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub failed: &'a [Failure],
}

impl<'a> RecordLine<'a> {
    /// The record of `work`, output at monotonic time `emit_ns`.
    pub fn new(work: &'a Work, emit_ns: u64) -> RecordLine<'a> {
        let meta = &work.frame.meta;
        let record = &work.record;
        RecordLine {
            v: OUTPUT_SCHEMA_VERSION,
            stream: &meta.stream,
            seq: meta.seq,
            pts_ns: meta.pts_ns,
            duration_ns: meta.duration_ns,
            capture_ns: meta.capture_ns,
            capture_clock: meta.capture_clock,
            time_source: meta.time_source,
            orientation: meta.orientation,
            gap_ms: meta.gap_ns.map(|g| g as f64 / 1e6),
            capture_wall_ns: meta.capture_wall_ns,
            arrival_wall_ns: meta.arrival_ns.map(clock::wall_ns_of),
            emit_wall_ns: clock::wall_ns_of(emit_ns),
            latency_ns: emit_ns.saturating_sub(meta.capture_ns),
            width: work.frame.width(),
            height: work.frame.height(),
            format: work.frame.format().to_str(),
            image_stats: record.image_stats.as_ref().map(StatsView::from),
            detections: record.detections.as_deref(),
            tracks: record.tracks.as_deref(),
            classification: record.classification.as_ref(),
            stereo: record.pair,
            depth: record.depth.as_ref().map(DepthView::from),
            mono_fit: record.mono_fit,
            skipped: &record.skipped,
            failed: &record.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gstreamer_video as gst_video;

    use super::*;
    use crate::pool::VecPool;
    use crate::record::{Record, SkipReason, TrackState};

    /// One record with detections, tracks, a skip and a failure, as JSON:
    /// the field names, their order and their encodings are the schema.
    #[test]
    fn one_record_serialises_to_the_documented_fields() {
        gstreamer::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 4, 2)
            .build()
            .unwrap();
        let mut frame = crate::frame::test_frame(info, vec![0; 32], 3);
        frame.meta.pts_ns = Some(300_000_000);
        frame.meta.duration_ns = Some(100_000_000);
        frame.meta.capture_ns = 1_000;
        let pool = VecPool::new(2, 1);
        let mut detections = pool.take();
        detections.push(Detection {
            bbox: [1.0, 2.0, 3.0, 4.0],
            class_id: 0,
            class: Arc::from("red"),
            score: 0.5,
            position: None,
        });
        let tracks_pool = VecPool::new(2, 1);
        let mut tracks = tracks_pool.take();
        tracks.push(TrackOut {
            id: 1,
            bbox: [1.0, 2.0, 3.0, 4.0],
            class_id: 0,
            class: Arc::from("red"),
            score: 0.5,
            velocity_px_s: [50.0, 0.0],
            age_s: 0.25,
            state: TrackState::Confirmed,
            predicted: false,
            position: None,
            forecast: None,
        });
        let stage: Arc<str> = Arc::from("detect");
        let mut record = Record {
            detections: Some(detections),
            tracks: Some(tracks),
            ..Record::default()
        };
        record.skipped.push(Skip {
            stage: stage.clone(),
            reason: SkipReason::Interval,
        });
        record.failed.push(Failure {
            stage,
            error: "boom".into(),
        });
        let work = Work { frame, record };
        let mut line = serde_json::to_value(RecordLine::new(&work, 1_500)).unwrap();
        // Wall-clock time depends on when the test runs.
        assert!(line["emit_wall_ns"].as_u64().unwrap() > 0);
        line["emit_wall_ns"] = 0.into();
        let expected = serde_json::json!({
            "v": 1, "stream": "t", "seq": 3, "pts_ns": 300_000_000,
            "duration_ns": 100_000_000, "capture_ns": 1_000, "capture_clock": "arrival",
            "time_source": "pts", "capture_wall_ns": 0, "emit_wall_ns": 0, "latency_ns": 500,
            "width": 4, "height": 2, "format": "RGB",
            "detections": [{"bbox": [1.0, 2.0, 3.0, 4.0], "class_id": 0, "class": "red", "score": 0.5}],
            "tracks": [{"id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "class_id": 0, "class": "red",
                "score": 0.5, "velocity_px_s": [50.0, 0.0], "age_s": 0.25,
                "state": "confirmed", "predicted": false}],
            "skipped": [{"stage": "detect", "reason": "interval"}],
            "failed": [{"stage": "detect", "error": "boom"}],
        });
        assert_eq!(line, expected);
        // Field order is part of the schema as people read it.
        let text = serde_json::to_string(&RecordLine::new(&work, 1_500)).unwrap();
        let order: Vec<usize> = [
            "\"v\"",
            "\"stream\"",
            "\"seq\"",
            "\"pts_ns\"",
            "\"latency_ns\"",
            "\"format\"",
            "\"detections\"",
            "\"tracks\"",
            "\"skipped\"",
            "\"failed\"",
        ]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }
}
