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
//! ros2 = false                         # true: also ROS 2 messages, as rmw_zenoh publishes them
//! domain_id = 0                        # ROS 2 mode: ROS_DOMAIN_ID
//! node_name = "percept"                # the node `ros2 node list` shows
//! namespace = "/"
//! frame_id = "{stream}"                # header.frame_id
//! detections_topic = "/percept/{stream}/detections"    # vision_msgs/msg/Detection2DArray
//! camera_info_topic = "/percept/{stream}/camera_info"  # sensor_msgs/msg/CameraInfo (calibrated streams)
//! ```
//!
//! **ROS 2** (`ros2 = true`): a node on `rmw_zenoh` (ROS 2 Jazzy and later)
//! receives the messages with no bridge. Each frame's tracks (else its
//! detections) become one `Detection2DArray` (track id in `id`, class and
//! score in `results`, box centre and size in pixels), and a calibrated
//! stream's calibration one `CameraInfo` per frame; header stamps are the
//! frame's capture wall time. They are published as rmw_zenoh does
//! ([`crate::ros2`]): key expression `<domain>/<topic>/<DDS type>/<RIHS01
//! hash>`, CDR little-endian payload, attachment with the sequence number,
//! source time and GID, and liveliness tokens for the node and each
//! publisher so `ros2 topic list` shows them. Stream ids become ROS names
//! with characters other than letters, digits and `_` replaced by `_`.
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
use crate::ros2::rmw_zenoh::{GID_LEN, NodeInfo, Qos, RosType, attachment, topic_key_expr};
use crate::ros2::{CameraInfo, Detection2DArray, Ros2Messages};
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
        "ros2",
        "domain_id",
        "node_name",
        "namespace",
        "frame_id",
        "detections_topic",
        "camera_info_topic",
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
    /// Also publish detections and calibration as ROS 2 messages, exactly
    /// as `rmw_zenoh` does (default false).
    pub ros2: Option<bool>,
    /// ROS domain id (default 0).
    pub domain_id: Option<u32>,
    /// The ROS 2 node the publishers belong to (default `percept`).
    pub node_name: Option<String>,
    /// Its namespace (default `/`).
    pub namespace: Option<String>,
    /// `header.frame_id` of the messages (default `{stream}`).
    pub frame_id: Option<String>,
    /// Topic of `vision_msgs/msg/Detection2DArray` (default `/percept/{stream}/detections`).
    pub detections_topic: Option<String>,
    /// Topic of `sensor_msgs/msg/CameraInfo` (default `/percept/{stream}/camera_info`).
    pub camera_info_topic: Option<String>,
}

/// Default topic of the detections (ROS 2 mode).
pub const DEFAULT_DETECTIONS_TOPIC: &str = "/percept/{stream}/detections";
/// Default topic of the calibration (ROS 2 mode).
pub const DEFAULT_CAMERA_INFO_TOPIC: &str = "/percept/{stream}/camera_info";

/// A stream id as a ROS 2 name component: characters other than letters,
/// digits and `_` become `_` (ROS names allow no `-`).
fn ros_name(stream: &str) -> String {
    stream
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect()
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
    if o.ros2 == Some(true) {
        let node = NodeInfo {
            domain_id: o.domain_id.unwrap_or(0),
            zid: "0123456789abcdef",
            node_id: 0,
            namespace: o.namespace.as_deref().unwrap_or("/"),
            name: o.node_name.as_deref().unwrap_or("percept"),
        };
        node.liveliness_key().map_err(|e| {
            let field = if e.to_string().contains("namespace") { "namespace" } else { "node_name" };
            SinkCheckError::option(field, e.to_string())
        })?;
        for (field, topic, ty) in [
            ("detections_topic", &o.detections_topic, DEFAULT_DETECTIONS_TOPIC),
            ("camera_info_topic", &o.camera_info_topic, DEFAULT_CAMERA_INFO_TOPIC),
        ] {
            let topic = stream_key(topic.as_deref().unwrap_or(ty), "s");
            let ros_type = RosType::of::<Detection2DArray>()
                .map_err(|e| SinkCheckError::option(field, e.to_string()))?;
            topic_key_expr(node.domain_id, &topic, &ros_type)
                .map_err(|e| SinkCheckError::option(field, e.to_string()))?;
        }
    } else if let Some(field) = [
        ("domain_id", o.domain_id.is_some()),
        ("node_name", o.node_name.is_some()),
        ("namespace", o.namespace.is_some()),
        ("frame_id", o.frame_id.is_some()),
        ("detections_topic", o.detections_topic.is_some()),
        ("camera_info_topic", o.camera_info_topic.is_some()),
    ]
    .iter()
    .find(|(_, set)| *set)
    .map(|(f, _)| *f)
    {
        return Err(SinkCheckError::option(
            field,
            "a ROS 2 setting without `ros2 = true`",
        ));
    }
    if o.records == Some(false) && o.frames == Frames::None && o.ros2 != Some(true) {
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
    /// ROS 2 mode: `Detection2DArray` and `CameraInfo` publishers.
    detections: Option<RosPublisher>,
    camera_info: Option<RosPublisher>,
    /// ROS 2 mode: this stream's `header.frame_id`.
    frame_id: String,
}

/// A ROS 2 publisher as rmw_zenoh declares one: the Zenoh publisher on the
/// topic's key expression, its liveliness token, its GID and the sequence
/// number of its next sample (from 1).
struct RosPublisher {
    publisher: Publisher<'static>,
    _token: LivelinessToken,
    gid: [u8; GID_LEN],
    seq: i64,
}

impl RosPublisher {
    fn put(&mut self, payload: &[u8], capture_wall_ns: u64) -> io::Result<()> {
        let stamp = i64::try_from(capture_wall_ns).unwrap_or(i64::MAX);
        let attachment = attachment(self.seq, stamp, &self.gid);
        self.seq += 1;
        put(&self.publisher, payload, &attachment)
    }
}

/// ROS 2 mode's settings and state.
struct Ros2 {
    domain_id: u32,
    node_name: String,
    namespace: String,
    frame_id: String,
    detections_topic: String,
    camera_info_topic: String,
    /// The next publisher's entity id (the node is entity 0).
    next_entity: u64,
    /// The node's liveliness token (`ros2 node list` shows it).
    _node: LivelinessToken,
    messages: Ros2Messages,
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
    ros2: Option<Ros2>,
}

impl ZenohSink {
    fn open(o: ZenohOptions) -> io::Result<ZenohSink> {
        let session = crate::pubsub::session(&o.session()).map_err(io::Error::other)?;
        let ros2 = match o.ros2 {
            Some(true) => {
                let domain_id = o.domain_id.unwrap_or(0);
                let node_name = o.node_name.clone().unwrap_or_else(|| "percept".into());
                let namespace = o.namespace.clone().unwrap_or_else(|| "/".into());
                let zid = session.zid().to_string();
                let key = NodeInfo {
                    domain_id,
                    zid: &zid,
                    node_id: 0,
                    namespace: &namespace,
                    name: &node_name,
                }
                .liveliness_key()
                .map_err(|e| io::Error::other(format!("ros2: {e}")))?;
                let node = session
                    .liveliness()
                    .declare_token(key)
                    .wait()
                    .map_err(|e| io::Error::other(format!("zenoh: liveliness token: {e}")))?;
                Some(Ros2 {
                    domain_id,
                    node_name,
                    namespace,
                    frame_id: o.frame_id.clone().unwrap_or_else(|| "{stream}".into()),
                    detections_topic: o
                        .detections_topic
                        .clone()
                        .unwrap_or_else(|| DEFAULT_DETECTIONS_TOPIC.into()),
                    camera_info_topic: o
                        .camera_info_topic
                        .clone()
                        .unwrap_or_else(|| DEFAULT_CAMERA_INFO_TOPIC.into()),
                    next_entity: 1,
                    _node: node,
                    messages: Ros2Messages::new(),
                })
            }
            _ => None,
        };
        Ok(ZenohSink {
            ros2,
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

    /// Declares a ROS 2 publisher of `T` on `topic` as rmw_zenoh does: the
    /// topic key expression, the publisher's liveliness token (`ros2 topic
    /// list` shows it), a GID from a hash of that token's key.
    fn ros_publisher<T: crate::ros2::RosMessage>(&mut self, topic: &str) -> io::Result<RosPublisher> {
        use sha2::Digest;
        let fail = |e: String| io::Error::other(format!("ros2: topic `{topic}`: {e}"));
        let zid = self.session.zid().to_string();
        let Some(ros2) = self.ros2.as_mut() else {
            return Err(fail("ROS 2 mode is off".into()));
        };
        let ty = RosType::of::<T>().map_err(|e| fail(e.to_string()))?;
        let key = topic_key_expr(ros2.domain_id, topic, &ty).map_err(|e| fail(e.to_string()))?;
        let entity = ros2.next_entity;
        ros2.next_entity += 1;
        let token_key = NodeInfo {
            domain_id: ros2.domain_id,
            zid: &zid,
            node_id: 0,
            namespace: &ros2.namespace,
            name: &ros2.node_name,
        }
        .publisher_liveliness_key(entity, topic, &ty, &Qos::default())
        .map_err(|e| fail(e.to_string()))?;
        let mut gid = [0u8; GID_LEN];
        gid.copy_from_slice(&sha2::Sha256::digest(token_key.as_bytes())[..GID_LEN]);
        let token = self
            .session
            .liveliness()
            .declare_token(token_key)
            .wait()
            .map_err(|e| fail(e.to_string()))?;
        Ok(RosPublisher {
            publisher: self.publisher(key, Encoding::default())?,
            _token: token,
            gid,
            seq: 1,
        })
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
        let (detections, camera_info, frame_id) = match &self.ros2 {
            Some(r) => {
                let name = ros_name(stream);
                let (d, c) = (
                    stream_key(&r.detections_topic, &name),
                    stream_key(&r.camera_info_topic, &name),
                );
                let frame_id = stream_key(&r.frame_id, stream);
                (
                    Some(self.ros_publisher::<Detection2DArray>(&d)?),
                    Some(self.ros_publisher::<CameraInfo>(&c)?),
                    frame_id,
                )
            }
            None => (None, None, String::new()),
        };
        let until = Instant::now() + self.wait;
        for p in record
            .iter()
            .chain(frame.iter())
            .chain(detections.iter().map(|r| &r.publisher))
        {
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
                detections,
                camera_info,
                frame_id,
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

    fn header(&mut self, work: &Work, payload: Payload, format: &'static str) {
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
            format: format.into(),
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
                self.header(work, Payload::Raw, work.frame.format().to_str().as_str());
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
        if let (Some(ros2), Some(s)) = (self.ros2.as_mut(), self.streams.get_mut(stream)) {
            let wall = work.frame.meta.capture_wall_ns;
            let fail = |e: crate::ros2::Ros2Error| io::Error::other(format!("ros2: {e}"));
            if let Some(p) = s.detections.as_mut() {
                let bytes = ros2
                    .messages
                    .detections(&work.record, wall, &s.frame_id)
                    .map_err(fail)?;
                p.put(bytes, wall)?;
            }
            if let (Some(p), Some(camera)) = (s.camera_info.as_mut(), work.record.camera.as_deref()) {
                let bytes = ros2
                    .messages
                    .camera_info(camera, wall, &s.frame_id)
                    .map_err(fail)?;
                p.put(bytes, wall)?;
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
                    format: "".into(),
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
