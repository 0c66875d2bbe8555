//! The Foxglove messages of a frame (<https://docs.foxglove.dev/docs/visualization/message-schemas>),
//! built once for every sink that speaks Foxglove: the `mcap` file and the
//! `foxglove` live view publish the same topics, schemas and bytes.
//!
//! [`Messages::build`] hands each message of a frame to its caller as a
//! [`Topic`] and encoded bytes; the caller names the channel
//! `/<stream>/<topic>` and takes its schema from [`Topic::schema`]. The
//! `mcap` sink's module docs describe each topic.

use std::io;

use foxglove::Encode;
use foxglove::bytes::Bytes;
use foxglove::schemas::{
    CameraCalibration, Color, CompressedImage, CubePrimitive, FrameTransform, FrameTransforms,
    ImageAnnotations, KeyValuePair, Point2, PointsAnnotation, Pose, Quaternion, RawImage,
    SceneEntity, SceneEntityDeletion, SceneUpdate, TextAnnotation, Timestamp, Vector3,
    points_annotation, scene_entity_deletion,
};
use gstreamer_video::VideoFormat;
use gstreamer_video::prelude::*;
use jpeg_encoder::{ColorType, Encoder};

use crate::frame::Frame;
use crate::overlay::boxes;
use crate::record::Work;
use crate::schema::RecordLine;

/// A channel of each stream: `/<stream>/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `foxglove.CompressedImage`, JPEG.
    Image,
    /// `foxglove.ImageAnnotations`: boxes and labels.
    Annotations,
    /// `foxglove.CameraCalibration`: the image's camera (its left view).
    Calibration,
    /// `foxglove.RawImage`, `16UC1` millimetres.
    Depth,
    /// `foxglove.SceneUpdate`: a cube per object with a 3D position.
    Objects,
    /// `foxglove.FrameTransforms`: the stream's body frame to its camera
    /// frame, and that to the rectified camera frame when objects are in it.
    Transform,
    /// `percept.Record` (JSON): the JSON Lines record.
    Record,
}

/// A channel's schema: name, schema encoding and schema data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSchema {
    /// `foxglove.ImageAnnotations`, `percept.Record`, …
    pub name: String,
    /// `protobuf` (data: a binary `FileDescriptorSet`) or `jsonschema`.
    pub encoding: String,
    /// The schema itself.
    pub data: Vec<u8>,
}

fn schema_of<T: Encode>() -> ChannelSchema {
    match T::get_schema() {
        Some(s) => ChannelSchema {
            name: s.name,
            encoding: s.encoding,
            data: s.data.into_owned(),
        },
        None => ChannelSchema {
            name: String::new(),
            encoding: String::new(),
            data: Vec::new(),
        },
    }
}

impl Topic {
    /// The last part of the topic name.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Image => "image",
            Topic::Annotations => "annotations",
            Topic::Calibration => "calibration",
            Topic::Depth => "depth",
            Topic::Objects => "objects",
            Topic::Transform => "transform",
            Topic::Record => "record",
        }
    }

    /// The full topic of `stream`: `/<stream>/<name>`.
    pub fn of(self, stream: &str) -> String {
        format!("/{stream}/{}", self.name())
    }

    /// The message encoding: `protobuf`, or `json` for [`Topic::Record`].
    pub fn message_encoding(self) -> &'static str {
        match self {
            Topic::Record => "json",
            _ => "protobuf",
        }
    }

    /// The channel's schema.
    pub fn schema(self) -> ChannelSchema {
        match self {
            Topic::Image => schema_of::<CompressedImage>(),
            Topic::Annotations => schema_of::<ImageAnnotations>(),
            Topic::Calibration => schema_of::<CameraCalibration>(),
            Topic::Depth => schema_of::<RawImage>(),
            Topic::Objects => schema_of::<SceneUpdate>(),
            Topic::Transform => schema_of::<FrameTransforms>(),
            Topic::Record => ChannelSchema {
                name: "percept.Record".into(),
                encoding: "jsonschema".into(),
                data: RECORD_JSON_SCHEMA.as_bytes().to_vec(),
            },
        }
    }
}

/// The JSON Schema of `/<stream>/record` messages: the record of
/// [`crate::schema::RecordLine`] (`docs/output.md` has every field).
pub const RECORD_JSON_SCHEMA: &str = r#"{"title":"percept.Record","description":"One frame's record, as the jsonl sink writes it (docs/output.md)","type":"object","properties":{"v":{"type":"integer"},"stream":{"type":"string"},"seq":{"type":"integer"},"pts_ns":{"type":["integer","null"]},"duration_ns":{"type":["integer","null"]},"capture_ns":{"type":"integer"},"capture_clock":{"type":"string"},"capture_wall_ns":{"type":"integer"},"emit_wall_ns":{"type":"integer"},"latency_ns":{"type":"integer"},"width":{"type":"integer"},"height":{"type":"integer"},"format":{"type":"string"},"image_stats":{"type":"object"},"detections":{"type":"array","items":{"type":"object"}},"tracks":{"type":"array","items":{"type":"object"}},"classification":{"type":"object"},"stereo":{"type":"object"},"depth":{"type":"object"},"mono_fit":{"type":"object"},"skipped":{"type":"array","items":{"type":"object"}},"failed":{"type":"array","items":{"type":"object"}}},"required":["v","stream","seq","capture_ns","capture_wall_ns"]}"#;

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
    for b in boxes(&work.record) {
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

/// A JPEG encoder with reused buffers (`jpeg-encoder`, with its AVX2 path
/// where the CPU has it): after the first frame of a size, encoding
/// allocates nothing.
pub struct Jpeg {
    quality: u8,
    packed: Vec<u8>,
    out: Vec<u8>,
}

impl Jpeg {
    /// An encoder at `quality` (clamped to 1..=100).
    pub fn new(quality: i32) -> Jpeg {
        Jpeg {
            quality: quality.clamp(1, 100) as u8,
            packed: Vec::new(),
            out: Vec::with_capacity(1 << 16),
        }
    }

    /// Encodes a frame of a packed format (RGB, BGR, RGBA/RGBx, BGRA/BGRx,
    /// GRAY8), packing its rows into a reused buffer first when they are
    /// padded. Errors name the format or size that cannot be encoded.
    pub fn encode(&mut self, frame: &Frame) -> io::Result<&[u8]> {
        let fail = |e: String| {
            io::Error::other(format!(
                "images = \"jpeg\": {e} (set the source's format = \"RGB\", or images = \"none\")"
            ))
        };
        let pixels = frame.pixels().map_err(|e| fail(e.to_string()))?;
        let stride = pixels.plane_stride()[0] as usize;
        let data = pixels.plane_data(0).map_err(|e| fail(e.to_string()))?;
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let (bpp, colour) = match frame.format() {
            VideoFormat::Rgb => (3, ColorType::Rgb),
            VideoFormat::Bgr => (3, ColorType::Bgr),
            VideoFormat::Rgba | VideoFormat::Rgbx => (4, ColorType::Rgba),
            VideoFormat::Bgra | VideoFormat::Bgrx => (4, ColorType::Bgra),
            VideoFormat::Gray8 => (1, ColorType::Luma),
            other => {
                return Err(fail(format!(
                    "needs a packed format (RGB, BGR, RGBA, BGRA, GRAY8), not {}",
                    other.to_str()
                )));
            }
        };
        let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
            return Err(fail(format!("{w}x{h} is larger than JPEG's 65535 px")));
        };
        if w == 0 || h == 0 || data.len() < stride * (h - 1) + w * bpp {
            return Err(fail("frame buffer is smaller than its layout".into()));
        }
        let rows = if stride == w * bpp {
            &data[..w * bpp * h]
        } else {
            self.packed.clear();
            for row in data.chunks(stride).take(h) {
                self.packed.extend_from_slice(&row[..w * bpp]);
            }
            &self.packed[..]
        };
        self.out.clear();
        Encoder::new(&mut self.out, self.quality)
            .encode(rows, w16, h16, colour)
            .map_err(|e| fail(e.to_string()))?;
        Ok(&self.out)
    }
}

/// Builds a frame's messages into buffers it reuses.
pub struct Messages {
    buf: Vec<u8>,
    jpeg: Jpeg,
    annotations: ImageAnnotations,
    calibration: CameraCalibration,
    depth_bytes: Vec<u8>,
}

impl Messages {
    /// A builder encoding images at JPEG `quality` (1..=100).
    pub fn new(quality: i32) -> Messages {
        Messages {
            buf: Vec::with_capacity(1 << 16),
            jpeg: Jpeg::new(quality),
            annotations: ImageAnnotations::default(),
            calibration: CameraCalibration::default(),
            depth_bytes: Vec::new(),
        }
    }

    fn encode<T: Encode>(&mut self, msg: &T) -> io::Result<()> {
        self.buf.clear();
        msg.encode(&mut self.buf)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Builds the messages of one frame and hands each to `out` as its
    /// topic and encoded bytes, in the order image (when `image`),
    /// calibration (frames with [`crate::record::Record::camera`]),
    /// annotations, depth (frames with a depth map), objects and transform
    /// (frames with 3D positions), record. Message times are the frame's
    /// `capture_wall_ns`; `emit_ns` is the output time of the record.
    pub fn build(
        &mut self,
        work: &Work,
        emit_ns: u64,
        image: bool,
        mut out: impl FnMut(Topic, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let meta = &work.frame.meta;
        let ts = timestamp(meta.capture_wall_ns);
        let frame_id = format!("{}/camera", meta.stream);

        if image {
            let jpeg = self.jpeg.encode(&work.frame)?;
            let msg = CompressedImage {
                timestamp: Some(ts),
                frame_id: frame_id.clone(),
                data: Bytes::copy_from_slice(jpeg),
                format: "jpeg".into(),
            };
            self.encode(&msg)?;
            out(Topic::Image, &self.buf)?;
        }

        if let Some(camera) = &work.record.camera {
            // Refilled in place: after the first frame, no allocation.
            let c = &mut self.calibration;
            c.timestamp = Some(ts);
            c.frame_id.clear();
            c.frame_id.push_str(&frame_id);
            c.width = camera.width;
            c.height = camera.height;
            c.distortion_model.clear();
            c.distortion_model.push_str(camera.distortion_model);
            for (v, src) in [
                (&mut c.d, &camera.d[..]),
                (&mut c.k, &camera.k[..]),
                (&mut c.r, &camera.r[..]),
                (&mut c.p, &camera.p[..]),
            ] {
                v.clear();
                v.extend_from_slice(src);
            }
            let c = std::mem::take(&mut self.calibration);
            let encoded = self.encode(&c);
            self.calibration = c;
            encoded?;
            out(Topic::Calibration, &self.buf)?;
        }

        let mut ann = std::mem::take(&mut self.annotations);
        annotations(work, &mut ann);
        let encoded = self.encode(&ann);
        self.annotations = ann;
        encoded?;
        out(Topic::Annotations, &self.buf)?;

        if let Some(depth) = &work.record.depth {
            self.depth_bytes.clear();
            self.depth_bytes.extend(
                depth
                    .metres
                    .iter()
                    .flat_map(|z| ((z * 1000.0).round().clamp(0.0, 65535.0) as u16).to_le_bytes()),
            );
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
            out(Topic::Depth, &self.buf)?;
        }

        if boxes(&work.record).any(|b| b.position.is_some()) {
            // Stereo positions are in the left rectified camera frame unless
            // the stage was told `depth_frame = "left"`.
            let depth_camera = work.record.depth.as_ref().and_then(|d| d.camera.as_deref());
            let rectified = depth_camera.is_some_and(|c| c.view == "rectified_left");
            let objects_frame = if rectified {
                format!("{frame_id}_rect")
            } else {
                frame_id.clone()
            };
            let focal_px = depth_camera.map(|c| (c.k[0][0], c.k[1][1]));
            let entities = boxes(&work.record)
                .filter_map(|b| b.position.map(|p| (b, p)))
                .enumerate()
                .map(|(i, (b, p))| {
                    let [x, y, z] = p.position_m.map(f64::from);
                    // The box's pixel size at its depth (pinhole: size =
                    // pixels · z / f), as deep as it is wide; without the
                    // depth map's camera, a 0.5 m cube.
                    let [x1, y1, x2, y2] = b.bbox.map(f64::from);
                    let (sx, sy) = focal_px.map_or((0.5, 0.5), |(fx, fy)| {
                        ((x2 - x1) * z / fx, (y2 - y1) * z / fy)
                    });
                    SceneEntity {
                        timestamp: Some(ts),
                        frame_id: objects_frame.clone(),
                        id: b
                            .track_id
                            .map_or_else(|| format!("d{i}"), |t| t.to_string()),
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
                                x: sx,
                                y: sy,
                                z: sx,
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
            out(Topic::Objects, &self.buf)?;
            // Body frame (x forward, y left, z up) to the optical frame (x
            // right, y down, z forward): roll -90°, yaw -90°.
            let zero = || {
                Some(Vector3 {
                    x: 0.0,
                    y: 0.0,
                    z: 0.0,
                })
            };
            let mut transforms = vec![FrameTransform {
                timestamp: Some(ts),
                parent_frame_id: meta.stream.to_string(),
                child_frame_id: frame_id.clone(),
                translation: zero(),
                rotation: Some(Quaternion {
                    x: -0.5,
                    y: 0.5,
                    z: -0.5,
                    w: 0.5,
                }),
            }];
            if rectified {
                // A point's rectified coordinates are R1 times its camera
                // coordinates, so the rectified frame's pose in the camera
                // frame is the rotation R1ᵀ.
                let q = work.record.camera.as_ref().map_or_else(
                    nalgebra::UnitQuaternion::identity,
                    |c| {
                        let r1 = nalgebra::Matrix3::from_row_slice(&c.r);
                        nalgebra::UnitQuaternion::from_matrix(&r1.transpose())
                    },
                );
                transforms.push(FrameTransform {
                    timestamp: Some(ts),
                    parent_frame_id: frame_id,
                    child_frame_id: objects_frame,
                    translation: zero(),
                    rotation: Some(Quaternion {
                        x: q.i,
                        y: q.j,
                        z: q.k,
                        w: q.w,
                    }),
                });
            }
            self.encode(&FrameTransforms { transforms })?;
            out(Topic::Transform, &self.buf)?;
        }

        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &RecordLine::new(work, emit_ns))?;
        out(Topic::Record, &self.buf)
    }
}
