//! `zenoh`: live results on Zenoh (<https://zenoh.io>): each frame's JSON
//! record, optionally the frame itself (a camera node), and in ROS 2 mode
//! detections and calibration as `rmw_zenoh` publishes them.
//!
//! ```toml
//! [[sink]]
//! kind = "zenoh"
//! mode = "peer"                        # or "client"
//! connect = ["tcp/127.0.0.1:7447"]     # endpoints to connect to
//! listen = []                          # endpoints to listen on
//! scouting = false                     # multicast scouting off
//! # config = "zenoh.json5"             # a full Zenoh configuration instead
//! key = "percept/{stream}/record"      # default; {stream} = the stream id
//! records = true                       # publish the JSON records
//! frames = "none"                      # "jpeg" or "raw": publish frames (a camera node)
//! frame_key = "percept/{stream}/frame" # default
//! jpeg_quality = 85
//! congestion_control = "drop"          # or "block" (lossless, may slow the pipeline)
//! wait_for_subscribers_s = 0.0         # a stream's first sample waits this long for a subscriber
//! ```
//!
//! Every sample carries the header of [`crate::pubsub`] as its attachment:
//! sequence number, capture wall time, media time, size, payload type. A
//! record's payload is exactly the JSON Lines line ([`RecordLine`]) without
//! the newline, `application/json`.
//!
//! **Never blocking** (default `congestion_control = "drop"`): Zenoh drops
//! a sample it cannot send at once rather than wait for a slow or absent
//! subscriber. Zenoh does not tell the publisher which it dropped, so the
//! drops are counted where they show: a subscriber sees gaps in `seq`
//! (the `zenoh` source counts them as dropped frames).
//!
//! **Frames** (`frames = "jpeg" | "raw"`): a camera node publishes each
//! frame with its capture time on `frame_key`, declares a liveliness token
//! on that key while it runs, and at the end of the run publishes an
//! end-of-stream sample per stream, so an inference node's `zenoh` source
//! tells a finished recording from a node that disappeared.
//!
//! Allocation: Zenoh takes each payload by value, so each sample is one
//! copy of the encoded bytes into a new buffer; everything else is reused.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer_video::prelude::*;
use serde::Deserialize;
use zenoh::Wait;
use zenoh::bytes::Encoding;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Publisher;
use zenoh::qos::CongestionControl;

use crate::messages::Jpeg;
use crate::pubsub::{Payload, SampleHeader, SessionOptions, check_key, stream_key};
use crate::record::Work;
use crate::schema::RecordLine;
use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, typed_options};

/// The `zenoh` kind.
pub static KIND: SinkKind = SinkKind {
    name: "zenoh",
    path_help: "none (samples go to Zenoh key expressions: `key`, `frame_key`)",
    options: &[
        "mode",
        "connect",
        "listen",
        "scouting",
        "config",
        "key",
        "records",
        "frames",
        "frame_key",
        "jpeg_quality",
        "congestion_control",
        "wait_for_subscribers_s",
    ],
    path_options: &["config"],
    needs_path: false,
    check,
    open,
};

/// Default key expression of records.
pub const DEFAULT_KEY: &str = "percept/{stream}/record";
/// Default key expression of frames.
pub const DEFAULT_FRAME_KEY: &str = "percept/{stream}/frame";

/// Which frames a camera node publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frames {
    /// None (default).
    #[default]
    None,
    /// JPEG-encoded.
    Jpeg,
    /// Raw pixels, rows packed.
    Raw,
}

/// Zenoh's congestion control for percept's samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Congestion {
    /// Drop samples Zenoh cannot send at once (default: live data).
    #[default]
    Drop,
    /// Wait until they can be sent (lossless; a slow subscriber slows the pipeline).
    Block,
}

/// The `zenoh` kind's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenohOptions {
    /// `peer` or `client`.
    pub mode: Option<String>,
    /// Endpoints to connect to.
    pub connect: Option<Vec<String>>,
    /// Endpoints to listen on.
    pub listen: Option<Vec<String>>,
    /// Multicast scouting.
    pub scouting: Option<bool>,
    /// A Zenoh JSON5 configuration file.
    pub config: Option<std::path::PathBuf>,
    /// Key expression of records (`{stream}` = the stream id).
    pub key: Option<String>,
    /// Publish records (default true).
    pub records: Option<bool>,
    /// Publish frames.
    #[serde(default)]
    pub frames: Frames,
    /// Key expression of frames.
    pub frame_key: Option<String>,
    /// JPEG quality 1..=100 (default 85).
    pub jpeg_quality: Option<i64>,
    /// Congestion control.
    #[serde(default)]
    pub congestion_control: Congestion,
    /// How long a stream's first sample waits for a subscriber, seconds.
    pub wait_for_subscribers_s: Option<f64>,
}

impl ZenohOptions {
    fn session(&self) -> SessionOptions {
        SessionOptions {
            mode: self.mode.clone(),
            connect: self.connect.clone(),
            listen: self.listen.clone(),
            scouting: self.scouting,
            config: self.config.clone(),
        }
    }
}

fn options(options: &SinkOptions) -> Result<ZenohOptions, SinkCheckError> {
    let o: ZenohOptions = typed_options(options)?;
    o.session()
        .check()
        .map_err(|(field, why)| SinkCheckError::option(field, why))?;
    for (field, key) in [("key", &o.key), ("frame_key", &o.frame_key)] {
        if let Some(k) = key {
            check_key(k).map_err(|why| SinkCheckError::option(field, why))?;
        }
    }
    if let Some(q) = o.jpeg_quality
        && !(1..=100).contains(&q)
    {
        return Err(SinkCheckError::option(
            "jpeg_quality",
            format!("{q} is out of range: 1 to 100"),
        ));
    }
    if let Some(w) = o.wait_for_subscribers_s
        && !(w.is_finite() && (0.0..=3600.0).contains(&w))
    {
        return Err(SinkCheckError::option(
            "wait_for_subscribers_s",
            format!("{w} is out of range: 0 to 3600 seconds"),
        ));
    }
    if o.records == Some(false) && o.frames == Frames::None {
        return Err(SinkCheckError::option(
            "records",
            "records = false and no frames: this sink would publish nothing",
        ));
    }
    Ok(o)
}

fn check(_output: &OutputPath, opts: &SinkOptions) -> Result<(), SinkCheckError> {
    options(opts).map(|_| ())
}

fn open(_output: &OutputPath, opts: &SinkOptions) -> io::Result<Box<dyn Sink>> {
    let o = options(opts).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(Box::new(ZenohSink::open(o)?))
}

/// One stream's publishers.
struct StreamOut {
    record: Option<Publisher<'static>>,
    frame: Option<Publisher<'static>>,
    /// Declared while frames are published: a subscriber sees the node go.
    _alive: Option<LivelinessToken>,
    last_seq: u64,
    last_capture_wall_ns: u64,
}

/// Publishes records (and frames) on Zenoh.
pub struct ZenohSink {
    session: Arc<zenoh::Session>,
    key: String,
    frame_key: String,
    records: bool,
    frames: Frames,
    congestion: CongestionControl,
    wait: Duration,
    streams: HashMap<Arc<str>, StreamOut>,
    jpeg: Jpeg,
    json: Vec<u8>,
    raw: Vec<u8>,
    header: Vec<u8>,
}

impl ZenohSink {
    fn open(o: ZenohOptions) -> io::Result<ZenohSink> {
        let session = crate::pubsub::session(&o.session()).map_err(io::Error::other)?;
        Ok(ZenohSink {
            session,
            key: o.key.clone().unwrap_or_else(|| DEFAULT_KEY.to_string()),
            frame_key: o
                .frame_key
                .clone()
                .unwrap_or_else(|| DEFAULT_FRAME_KEY.to_string()),
            records: o.records.unwrap_or(true),
            frames: o.frames,
            congestion: match o.congestion_control {
                Congestion::Drop => CongestionControl::Drop,
                Congestion::Block => CongestionControl::Block,
            },
            wait: Duration::from_secs_f64(o.wait_for_subscribers_s.unwrap_or(0.0)),
            streams: HashMap::new(),
            jpeg: Jpeg::new(o.jpeg_quality.unwrap_or(85) as i32),
            json: Vec::with_capacity(1 << 14),
            raw: Vec::new(),
            header: Vec::with_capacity(64),
        })
    }

    fn publisher(&self, key: String, encoding: Encoding) -> io::Result<Publisher<'static>> {
        self.session
            .declare_publisher(key)
            .congestion_control(self.congestion)
            .encoding(encoding)
            .wait()
            .map_err(|e| io::Error::other(format!("zenoh: cannot declare a publisher: {e}")))
    }

    /// Declares a stream's publishers (its first frame), waiting up to
    /// `wait_for_subscribers_s` for each to match a subscriber.
    fn stream_out(&mut self, stream: &Arc<str>) -> io::Result<()> {
        if self.streams.contains_key(stream) {
            return Ok(());
        }
        let record = self
            .records
            .then(|| self.publisher(stream_key(&self.key, stream), Encoding::APPLICATION_JSON))
            .transpose()?;
        let (frame, alive) = if self.frames == Frames::None {
            (None, None)
        } else {
            let key = stream_key(&self.frame_key, stream);
            let encoding = match self.frames {
                Frames::Jpeg => Encoding::IMAGE_JPEG,
                _ => Encoding::APPLICATION_OCTET_STREAM,
            };
            let token = self
                .session
                .liveliness()
                .declare_token(key.clone())
                .wait()
                .map_err(|e| io::Error::other(format!("zenoh: liveliness token: {e}")))?;
            (Some(self.publisher(key, encoding)?), Some(token))
        };
        let until = Instant::now() + self.wait;
        for p in record.iter().chain(frame.iter()) {
            while Instant::now() < until
                && !p.matching_status().wait().is_ok_and(|m| m.matching())
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.streams.insert(
            stream.clone(),
            StreamOut {
                record,
                frame,
                _alive: alive,
                last_seq: 0,
                last_capture_wall_ns: 0,
            },
        );
        Ok(())
    }

    /// Packs a frame's rows (raw frames): single-plane formats only.
    fn pack_raw(&mut self, work: &Work) -> io::Result<()> {
        let frame = &work.frame;
        let info = &frame.info;
        if info.n_planes() != 1 {
            return Err(io::Error::other(format!(
                "frames = \"raw\": needs a packed format (BGR, RGB, GRAY8, …), not {}",
                info.format().to_str()
            )));
        }
        let row = info.comp_pstride(0).unsigned_abs() as usize * info.width() as usize;
        let row = if row == 0 { info.stride()[0] as usize } else { row };
        let pixels = frame
            .pixels()
            .map_err(|e| io::Error::other(format!("frames = \"raw\": {e}")))?;
        let stride = pixels.plane_stride()[0] as usize;
        let data = pixels
            .plane_data(0)
            .map_err(|e| io::Error::other(format!("frames = \"raw\": {e}")))?;
        self.raw.clear();
        for r in data.chunks(stride).take(info.height() as usize) {
            self.raw.extend_from_slice(&r[..row.min(r.len())]);
        }
        Ok(())
    }

    fn header(&mut self, work: &Work, payload: Payload, format: &str) {
        let meta = &work.frame.meta;
        self.header.clear();
        SampleHeader {
            seq: meta.seq,
            capture_wall_ns: meta.capture_wall_ns,
            pts_ns: meta.pts_ns,
            duration_ns: meta.duration_ns,
            width: if payload == Payload::Record {
                0
            } else {
                work.frame.width()
            },
            height: if payload == Payload::Record {
                0
            } else {
                work.frame.height()
            },
            payload,
            format: format.to_string(),
            run: crate::pubsub::run_id(),
        }
        .write(&mut self.header);
    }
}

fn put(publisher: &Publisher<'static>, payload: &[u8], attachment: &[u8]) -> io::Result<()> {
    publisher
        .put(payload.to_vec())
        .attachment(attachment.to_vec())
        .wait()
        .map_err(|e| io::Error::other(format!("zenoh put on `{}`: {e}", publisher.key_expr())))
}

impl Sink for ZenohSink {
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        let stream = &work.frame.meta.stream;
        self.stream_out(stream)?;
        match self.frames {
            Frames::None => {}
            Frames::Jpeg => {
                self.header(work, Payload::Jpeg, "");
                let jpeg = self.jpeg.encode(&work.frame)?;
                if let Some(p) = self.streams.get(stream).and_then(|s| s.frame.as_ref()) {
                    put(p, jpeg, &self.header)?;
                }
            }
            Frames::Raw => {
                self.pack_raw(work)?;
                self.header(work, Payload::Raw, work.frame.format().to_str());
                if let Some(p) = self.streams.get(stream).and_then(|s| s.frame.as_ref()) {
                    put(p, &self.raw, &self.header)?;
                }
            }
        }
        if self.records {
            self.json.clear();
            serde_json::to_writer(&mut self.json, &RecordLine::new(work, emit_ns))?;
            self.header(work, Payload::Record, "");
            if let Some(p) = self.streams.get(stream).and_then(|s| s.record.as_ref()) {
                put(p, &self.json, &self.header)?;
            }
        }
        if let Some(s) = self.streams.get_mut(stream) {
            s.last_seq = work.frame.meta.seq;
            s.last_capture_wall_ns = work.frame.meta.capture_wall_ns;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Publishes an end-of-stream sample on each stream's frame key (a
    /// camera node's recording is over, not lost), then drops the
    /// publishers and liveliness tokens.
    fn finish(&mut self) -> io::Result<()> {
        for (_, s) in self.streams.drain() {
            if let Some(p) = &s.frame {
                self.header.clear();
                SampleHeader {
                    seq: s.last_seq,
                    capture_wall_ns: s.last_capture_wall_ns,
                    pts_ns: None,
                    duration_ns: None,
                    width: 0,
                    height: 0,
                    payload: Payload::End,
                    format: String::new(),
                    run: crate::pubsub::run_id(),
                }
                .write(&mut self.header);
                // The end notice is sent reliably even under `drop`.
                self.session
                    .put(p.key_expr().clone(), Vec::<u8>::new())
                    .attachment(self.header.clone())
                    .congestion_control(CongestionControl::Block)
                    .wait()
                    .map_err(|e| io::Error::other(format!("zenoh: end of stream: {e}")))?;
            }
        }
        Ok(())
    }
}
