//! `mcap`: one MCAP file (<https://mcap.dev/spec>) with Foxglove's
//! well-known schemas (<https://docs.foxglove.dev/docs/visualization/message-schemas>),
//! for Foxglove, Lichtblick and robotics tools.
//!
//! ```toml
//! [[sink]]
//! kind = "mcap"
//! path = "run.mcap"
//! images = "jpeg"      # or "none"; default "jpeg"
//! jpeg_quality = 85    # 1..=100
//! ```
//!
//! Channels, per stream `<s>` (created when the stream's first frame
//! arrives; depth and objects when they first appear):
//!
//! | topic | schema (encoding) | per frame |
//! |---|---|---|
//! | `/<s>/image` | `foxglove.CompressedImage` (protobuf), JPEG | every frame, `images = "jpeg"` |
//! | `/<s>/annotations` | `foxglove.ImageAnnotations` (protobuf) | every frame |
//! | `/<s>/record` | `percept.Record` (JSON Schema, `json`): the JSON Lines record | every frame |
//! | `/<s>/depth` | `foxglove.RawImage` (protobuf), `16UC1` millimetres, 0 = invalid | frames with a depth map |
//! | `/<s>/objects` | `foxglove.SceneUpdate` (protobuf): a cube per object with a 3D position | frames with positions |
//! | `/<s>/transform` | `foxglove.FrameTransform` (protobuf): `<s>` (x forward, z up) → `<s>/camera` (optical: x right, y down, z forward) | with each `/<s>/objects` |
//!
//! Annotations: one `LINE_LOOP` box per track (or per detection when no
//! tracker ran), corners in source pixels, outlined in a colour per track
//! id (per class for detections), 3 px for measured boxes and 1 px,
//! half-transparent, for boxes the tracker predicted; a label `#id class
//! score` above each box; each box's metadata has `track_id`, `class`,
//! `score`, `predicted`.
//!
//! Message log time and every header timestamp are the frame's wall-clock
//! capture time (`capture_wall_ns` of the record, ns since the Unix epoch);
//! publish time is the output time (`emit_wall_ns`).
//!
//! The file is chunked, zstd-compressed, with message indexes, chunk
//! indexes, statistics and a summary section written at the end (Ctrl-C
//! and errors elsewhere still end the file properly). A chunk is closed at
//! 1 MiB or after one second of output, whichever comes first, so a killed
//! run (SIGKILL) leaves a file whose complete chunks a recovering reader
//! (`mcap recover`, or reading without the end magic) still reads.

use std::collections::HashMap;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::sync::Arc;

use foxglove::Encode;
use foxglove::bytes::Bytes;
use foxglove::schemas::{
    Color, CompressedImage, CubePrimitive, FrameTransform, ImageAnnotations, KeyValuePair,
    Point2, PointsAnnotation, Pose, Quaternion, RawImage, SceneEntity, SceneEntityDeletion,
    SceneUpdate, TextAnnotation, Timestamp, Vector3, points_annotation, scene_entity_deletion,
};
use gstreamer_video::VideoFormat;
use mcap::records::MessageHeader;
use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::imgproc;
use serde::Deserialize;

use crate::clock;
use crate::cvmat::with_frame_mat;
use crate::overlay::boxes;
use crate::record::Work;
use crate::schema::RecordLine;
use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, typed_options};

/// The `mcap` kind.
pub static KIND: SinkKind = SinkKind {
    name: "mcap",
    path_help: "an MCAP file (e.g. run.mcap)",
    options: &["images", "jpeg_quality"],
    check,
    open,
};

/// Largest uncompressed chunk, bytes.
pub const CHUNK_BYTES: u64 = 1 << 20;
/// Longest time a chunk stays open, ns of output time: what a SIGKILL can lose at most.
pub const CHUNK_NS: u64 = 1_000_000_000;

/// What goes on `/<stream>/image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Images {
    /// Each frame as JPEG (`foxglove.CompressedImage`, format `jpeg`).
    #[default]
    Jpeg,
    /// No image channel.
    None,
}

/// The `mcap` kind's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McapOptions {
    /// `jpeg` (default) or `none`.
    #[serde(default)]
    pub images: Images,
    /// JPEG quality, 1..=100 (default 85).
    pub jpeg_quality: Option<i64>,
}

impl McapOptions {
    fn quality(&self) -> i32 {
        self.jpeg_quality.unwrap_or(85) as i32
    }
}

fn options(options: &SinkOptions) -> Result<McapOptions, SinkCheckError> {
    let o: McapOptions = typed_options(options)?;
    if let Some(q) = o.jpeg_quality
        && !(1..=100).contains(&q)
    {
        return Err(SinkCheckError::option(
            "jpeg_quality",
            format!("{q} is out of range: 1 to 100"),
        ));
    }
    Ok(o)
}

fn check(output: &OutputPath, opts: &SinkOptions) -> Result<(), SinkCheckError> {
    options(opts)?;
    match output {
        OutputPath::File(p) if p.is_dir() => Err(SinkCheckError::path(format!(
            "{} is a folder: give a file (e.g. run.mcap)",
            p.display()
        ))),
        OutputPath::File(_) => Ok(()),
        OutputPath::Stdout => Err(SinkCheckError::path(
            "an MCAP file is written with a summary at its end and needs a file, not `-`",
        )),
    }
}

fn open(output: &OutputPath, opts: &SinkOptions) -> io::Result<Box<dyn Sink>> {
    check(output, opts).map_err(|e| io::Error::other(e.to_string()))?;
    let options = options(opts).map_err(|e| io::Error::other(e.to_string()))?;
    match output {
        OutputPath::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = File::create(path)?;
            Ok(Box::new(McapSink::new(BufWriter::with_capacity(1 << 16, file), options)?))
        }
        OutputPath::Stdout => Err(io::Error::other("an MCAP sink needs a file")),
    }
}

fn mcap_err(e: mcap::McapError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The JSON Schema of `/<stream>/record` messages: the record of
/// [`crate::schema::RecordLine`] (`docs/output.md` has every field).
pub const RECORD_JSON_SCHEMA: &str = r#"{"title":"percept.Record","description":"One frame's record, as the jsonl sink writes it (docs/output.md)","type":"object","properties":{"v":{"type":"integer"},"stream":{"type":"string"},"seq":{"type":"integer"},"pts_ns":{"type":["integer","null"]},"duration_ns":{"type":["integer","null"]},"capture_ns":{"type":"integer"},"capture_clock":{"type":"string"},"capture_wall_ns":{"type":"integer"},"emit_wall_ns":{"type":"integer"},"latency_ns":{"type":"integer"},"width":{"type":"integer"},"height":{"type":"integer"},"format":{"type":"string"},"image_stats":{"type":"object"},"detections":{"type":"array","items":{"type":"object"}},"tracks":{"type":"array","items":{"type":"object"}},"classification":{"type":"object"},"stereo":{"type":"object"},"depth":{"type":"object"},"mono_fit":{"type":"object"},"skipped":{"type":"array","items":{"type":"object"}},"failed":{"type":"array","items":{"type":"object"}}},"required":["v","stream","seq","capture_ns","capture_wall_ns"]}"#;

/// Channel ids of one stream.
#[derive(Default)]
struct Channels {
    image: Option<u16>,
    annotations: u16,
    record: u16,
    depth: Option<u16>,
    objects: Option<(u16, u16)>,
}

fn timestamp(wall_ns: u64) -> Timestamp {
    let sec = (wall_ns / 1_000_000_000).min(u64::from(u32::MAX)) as u32;
    Timestamp::new(sec, (wall_ns % 1_000_000_000) as u32)
}

fn colour(rgb: [u8; 3], a: f64) -> Color {
    Color {
        r: f64::from(rgb[0]) / 255.0,
        g: f64::from(rgb[1]) / 255.0,
        b: f64::from(rgb[2]) / 255.0,
        a,
    }
}

fn kv(key: &str, value: String) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value,
    }
}

/// The `ImageAnnotations` of a frame (see the module docs).
pub fn annotations(work: &Work, out: &mut ImageAnnotations) {
    let ts = timestamp(work.frame.meta.capture_wall_ns);
    out.timestamp = Some(ts);
    out.points.clear();
    out.texts.clear();
    out.circles.clear();
    for b in boxes(work) {
        let [x1, y1, x2, y2] = b.bbox.map(f64::from);
        let rgb = b.colour();
        let (thickness, alpha) = if b.predicted { (1.0, 0.5) } else { (3.0, 1.0) };
        out.points.push(PointsAnnotation {
            timestamp: Some(ts),
            r#type: points_annotation::Type::LineLoop as i32,
            points: vec![
                Point2 { x: x1, y: y1 },
                Point2 { x: x2, y: y1 },
                Point2 { x: x2, y: y2 },
                Point2 { x: x1, y: y2 },
            ],
            outline_color: Some(colour(rgb, alpha)),
            outline_colors: Vec::new(),
            fill_color: None,
            thickness,
            metadata: vec![
                kv(
                    "track_id",
                    b.track_id.map_or_else(String::new, |i| i.to_string()),
                ),
                kv("class", b.class.to_string()),
                kv("score", b.score.to_string()),
                kv("predicted", b.predicted.to_string()),
            ],
        });
        out.texts.push(TextAnnotation {
            timestamp: Some(ts),
            position: Some(Point2 {
                x: x1,
                y: (y1 - 4.0).max(12.0),
            }),
            text: b.label(),
            font_size: 14.0,
            text_color: Some(colour([255, 255, 255], 1.0)),
            background_color: Some(colour(rgb, 0.7 * alpha)),
            metadata: Vec::new(),
        });
    }
}

/// Writes frames and their records to an MCAP file.
pub struct McapSink<W: io::Write + io::Seek> {
    writer: mcap::Writer<W>,
    options: McapOptions,
    streams: HashMap<Arc<str>, Channels>,
    schemas: HashMap<&'static str, u16>,
    sequence: HashMap<u16, u32>,
    /// Output time the open chunk got its first message.
    chunk_opened_ns: Option<u64>,
    buf: Vec<u8>,
    jpeg: Vector<u8>,
    jpeg_params: Vector<i32>,
    bgr: Mat,
    annotations: ImageAnnotations,
    depth_bytes: Vec<u8>,
}

impl<W: io::Write + io::Seek> McapSink<W> {
    /// Starts an MCAP file on `out` (profile empty, library `percept`).
    pub fn new(out: W, options: McapOptions) -> io::Result<McapSink<W>> {
        let writer = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .compression_level(1)
            // The sink has its own thread; no zstd worker threads.
            .compression_threads(0)
            .chunk_size(Some(CHUNK_BYTES))
            .library(format!("percept {}", env!("CARGO_PKG_VERSION")))
            .create(out)
            .map_err(mcap_err)?;
        let quality = options.quality();
        Ok(McapSink {
            writer,
            options,
            streams: HashMap::new(),
            schemas: HashMap::new(),
            sequence: HashMap::new(),
            chunk_opened_ns: None,
            buf: Vec::with_capacity(1 << 16),
            jpeg: Vector::new(),
            jpeg_params: Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]),
            bgr: Mat::default(),
            annotations: ImageAnnotations::default(),
            depth_bytes: Vec::new(),
        })
    }

    fn schema<T: Encode>(&mut self, key: &'static str) -> io::Result<u16> {
        if let Some(id) = self.schemas.get(key) {
            return Ok(*id);
        }
        let id = match T::get_schema() {
            Some(s) => self
                .writer
                .add_schema(&s.name, &s.encoding, &s.data)
                .map_err(mcap_err)?,
            None => 0,
        };
        self.schemas.insert(key, id);
        Ok(id)
    }

    fn record_schema(&mut self) -> io::Result<u16> {
        if let Some(id) = self.schemas.get("percept.Record") {
            return Ok(*id);
        }
        let id = self
            .writer
            .add_schema("percept.Record", "jsonschema", RECORD_JSON_SCHEMA.as_bytes())
            .map_err(mcap_err)?;
        self.schemas.insert("percept.Record", id);
        Ok(id)
    }

    fn channel(&mut self, schema: u16, topic: &str, encoding: &str) -> io::Result<u16> {
        self.writer
            .add_channel(schema, topic, encoding, &BTreeMap::new())
            .map_err(mcap_err)
    }

    fn channels(&mut self, work: &Work) -> io::Result<()> {
        let stream = &work.frame.meta.stream;
        if !self.streams.contains_key(stream) {
            let image = match self.options.images {
                Images::Jpeg => {
                    let s = self.schema::<CompressedImage>("foxglove.CompressedImage")?;
                    Some(self.channel(s, &format!("/{stream}/image"), "protobuf")?)
                }
                Images::None => None,
            };
            let s = self.schema::<ImageAnnotations>("foxglove.ImageAnnotations")?;
            let annotations = self.channel(s, &format!("/{stream}/annotations"), "protobuf")?;
            let s = self.record_schema()?;
            let record = self.channel(s, &format!("/{stream}/record"), "json")?;
            self.streams.insert(
                stream.clone(),
                Channels {
                    image,
                    annotations,
                    record,
                    depth: None,
                    objects: None,
                },
            );
        }
        let needs_depth = work.record.depth.is_some()
            && self.streams.get(stream).is_some_and(|c| c.depth.is_none());
        if needs_depth {
            let s = self.schema::<RawImage>("foxglove.RawImage")?;
            let id = self.channel(s, &format!("/{stream}/depth"), "protobuf")?;
            if let Some(c) = self.streams.get_mut(stream) {
                c.depth = Some(id);
            }
        }
        let needs_objects = boxes(work).any(|b| b.position.is_some())
            && self.streams.get(stream).is_some_and(|c| c.objects.is_none());
        if needs_objects {
            let s = self.schema::<SceneUpdate>("foxglove.SceneUpdate")?;
            let objects = self.channel(s, &format!("/{stream}/objects"), "protobuf")?;
            let s = self.schema::<FrameTransform>("foxglove.FrameTransform")?;
            let transform = self.channel(s, &format!("/{stream}/transform"), "protobuf")?;
            if let Some(c) = self.streams.get_mut(stream) {
                c.objects = Some((objects, transform));
            }
        }
        Ok(())
    }

    /// Writes `self.buf` as one message on `channel`.
    fn put(&mut self, channel: u16, log_time: u64, publish_time: u64) -> io::Result<()> {
        let seq = self.sequence.entry(channel).or_insert(0);
        *seq = seq.wrapping_add(1);
        let header = MessageHeader {
            channel_id: channel,
            sequence: *seq,
            log_time,
            publish_time,
        };
        self.writer
            .write_to_known_channel(&header, &self.buf)
            .map_err(mcap_err)
    }

    fn encode<T: Encode>(&mut self, msg: &T) -> io::Result<()> {
        self.buf.clear();
        msg.encode(&mut self.buf)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn jpeg(&mut self, work: &Work) -> io::Result<()> {
        let (bgr, jpeg, params) = (&mut self.bgr, &mut self.jpeg, &self.jpeg_params);
        with_frame_mat(&work.frame, |image, format| {
            let code = match format {
                VideoFormat::Rgb => Some(imgproc::COLOR_RGB2BGR),
                VideoFormat::Rgba | VideoFormat::Rgbx => Some(imgproc::COLOR_RGBA2BGR),
                VideoFormat::Bgra | VideoFormat::Bgrx => Some(imgproc::COLOR_BGRA2BGR),
                _ => None,
            };
            let ok = match code {
                Some(code) => {
                    imgproc::cvt_color_def(image, bgr, code).map_err(|e| e.to_string())?;
                    imgcodecs::imencode(".jpg", bgr, jpeg, params)
                }
                None => imgcodecs::imencode(".jpg", image, jpeg, params),
            }
            .map_err(|e| e.to_string())?;
            if ok {
                Ok(())
            } else {
                Err("JPEG encoding failed".into())
            }
        })
        .map_err(|e| {
            io::Error::other(format!(
                "images = \"jpeg\": {e} (set the source's format = \"RGB\", or images = \"none\")"
            ))
        })
    }
}

impl<W: io::Write + io::Seek + Send> Sink for McapSink<W> {
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        self.channels(work)?;
        let Some(ch) = self.streams.get(&work.frame.meta.stream) else {
            return Err(io::Error::other("stream without channels"));
        };
        let (image_ch, annotations_ch, record_ch, depth_ch, objects_ch) =
            (ch.image, ch.annotations, ch.record, ch.depth, ch.objects);
        let meta = &work.frame.meta;
        let log_time = meta.capture_wall_ns;
        let publish = clock::wall_ns_of(emit_ns);
        let ts = timestamp(log_time);
        let frame_id = format!("{}/camera", meta.stream);

        if let Some(channel) = image_ch {
            self.jpeg(work)?;
            let msg = CompressedImage {
                timestamp: Some(ts),
                frame_id: frame_id.clone(),
                data: Bytes::copy_from_slice(self.jpeg.as_slice()),
                format: "jpeg".into(),
            };
            self.encode(&msg)?;
            self.put(channel, log_time, publish)?;
        }

        let mut ann = std::mem::take(&mut self.annotations);
        annotations(work, &mut ann);
        let encoded = self.encode(&ann);
        self.annotations = ann;
        encoded?;
        self.put(annotations_ch, log_time, publish)?;

        if let (Some(channel), Some(depth)) = (depth_ch, &work.record.depth) {
            self.depth_bytes.clear();
            self.depth_bytes.extend(depth.metres.iter().flat_map(|z| {
                ((z * 1000.0).round().clamp(0.0, 65535.0) as u16).to_le_bytes()
            }));
            let msg = RawImage {
                timestamp: Some(ts),
                frame_id: frame_id.clone(),
                width: depth.width,
                height: depth.height,
                encoding: "16UC1".into(),
                step: depth.width * 2,
                data: Bytes::copy_from_slice(&self.depth_bytes),
            };
            self.encode(&msg)?;
            self.put(channel, log_time, publish)?;
        }

        if let Some((objects, transform)) = objects_ch {
            let entities = boxes(work)
                .filter_map(|b| b.position.map(|p| (b, p)))
                .enumerate()
                .map(|(i, (b, p))| {
                    let [x, y, z] = p.position_m.map(f64::from);
                    // Box size from its pixel size at its depth: the
                    // focal length is not known here, so a fixed 0.5 m cube.
                    SceneEntity {
                        timestamp: Some(ts),
                        frame_id: frame_id.clone(),
                        id: b.track_id.map_or_else(|| format!("d{i}"), |t| t.to_string()),
                        metadata: vec![
                            kv("class", b.class.to_string()),
                            kv("score", b.score.to_string()),
                        ],
                        cubes: vec![CubePrimitive {
                            pose: Some(Pose {
                                position: Some(Vector3 { x, y, z }),
                                orientation: Some(Quaternion {
                                    x: 0.0,
                                    y: 0.0,
                                    z: 0.0,
                                    w: 1.0,
                                }),
                            }),
                            size: Some(Vector3 {
                                x: 0.5,
                                y: 0.5,
                                z: 0.5,
                            }),
                            color: Some(colour(b.colour(), 0.6)),
                        }],
                        ..SceneEntity::default()
                    }
                })
                .collect();
            let msg = SceneUpdate {
                deletions: vec![SceneEntityDeletion {
                    timestamp: Some(ts),
                    r#type: scene_entity_deletion::Type::All as i32,
                    id: String::new(),
                }],
                entities,
            };
            self.encode(&msg)?;
            self.put(objects, log_time, publish)?;
            // Body frame (x forward, y left, z up) to the optical frame (x
            // right, y down, z forward): roll -90°, yaw -90°.
            let msg = FrameTransform {
                timestamp: Some(ts),
                parent_frame_id: meta.stream.to_string(),
                child_frame_id: frame_id,
                translation: Some(Vector3 {
                    x: 0.0,
                    y: 0.0,
                    z: 0.0,
                }),
                rotation: Some(Quaternion {
                    x: -0.5,
                    y: 0.5,
                    z: -0.5,
                    w: 0.5,
                }),
            };
            self.encode(&msg)?;
            self.put(transform, log_time, publish)?;
        }

        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &RecordLine::new(work, emit_ns))?;
        self.put(record_ch, log_time, publish)?;

        // Bound what a killed run can lose: close the chunk after CHUNK_NS.
        let opened = *self.chunk_opened_ns.get_or_insert(emit_ns);
        if emit_ns.saturating_sub(opened) >= CHUNK_NS {
            self.writer.flush().map_err(mcap_err)?;
            self.chunk_opened_ns = None;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Closing a chunk whenever the queue runs empty would make one chunk
        // per frame; chunks close by size and age (CHUNK_BYTES, CHUNK_NS).
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.writer.finish().map_err(mcap_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(text: &str) -> SinkOptions {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn options_are_checked_with_their_field() {
        let file = OutputPath::File("x.mcap".into());
        assert!(check(&file, &opts("")).is_ok());
        assert!(check(&file, &opts("images = \"none\"")).is_ok());
        let e = check(&file, &opts("images = \"png\"")).unwrap_err();
        assert_eq!(e.field, "images", "{e}");
        assert!(e.message.contains("jpeg"), "{e}");
        let e = check(&file, &opts("jpeg_quality = 0")).unwrap_err();
        assert_eq!(e.field, "jpeg_quality");
        let e = check(&OutputPath::Stdout, &opts("")).unwrap_err();
        assert_eq!(e.field, "path");
    }

}
