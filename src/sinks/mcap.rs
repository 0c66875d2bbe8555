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
//! | `/<s>/calibration` | `foxglove.CameraCalibration` (protobuf): the image's camera (the left view of a stereo pair): `K`, `D`, `R1`, `P1` | frames of a stream a `stereo_depth` or `depth` stage calibrates |
//! | `/<s>/depth` | `foxglove.RawImage` (protobuf), `16UC1` millimetres, 0 = invalid | frames with a depth map |
//! | `/<s>/objects` | `foxglove.SceneUpdate` (protobuf): a box per object with a 3D position, as wide and high as its image box at its depth (a 0.5 m cube without the depth map's camera), in `<s>/camera_rect` (stereo's left rectified frame) or `<s>/camera` (`depth_frame = "left"`, mono depth) | frames with positions |
//! | `/<s>/transform` | `foxglove.FrameTransforms` (protobuf): `<s>` (x forward, z up) → `<s>/camera` (optical: x right, y down, z forward), and `<s>/camera` → `<s>/camera_rect` (rotation `R1ᵀ`) when objects are in the rectified frame | with each `/<s>/objects` |
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

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::sync::Arc;

use mcap::records::MessageHeader;
use serde::Deserialize;

use crate::clock;
pub use crate::messages::{RECORD_JSON_SCHEMA, annotations};
use crate::messages::{Messages, Topic};
use crate::record::Work;
use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, typed_options};

/// The `mcap` kind.
pub static KIND: SinkKind = SinkKind {
    name: "mcap",
    path_help: "an MCAP file (e.g. run.mcap)",
    options: &["images", "jpeg_quality"],
    path_options: &[],
    needs_path: true,
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
    /// The JPEG quality to encode with.
    pub fn quality(&self) -> i32 {
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

/// Writes frames and their records to an MCAP file.
pub struct McapSink<W: io::Write + io::Seek> {
    writer: mcap::Writer<W>,
    options: McapOptions,
    channels: HashMap<(Arc<str>, Topic), u16>,
    schemas: HashMap<Topic, u16>,
    sequence: HashMap<u16, u32>,
    /// Output time the open chunk got its first message.
    chunk_opened_ns: Option<u64>,
    messages: Messages,
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
        let messages = Messages::new(options.quality());
        Ok(McapSink {
            writer,
            options,
            channels: HashMap::new(),
            schemas: HashMap::new(),
            sequence: HashMap::new(),
            chunk_opened_ns: None,
            messages,
        })
    }
}

/// The channel of `topic` on `stream`, added (with its schema) on first use.
fn channel<W: io::Write + io::Seek>(
    writer: &mut mcap::Writer<W>,
    schemas: &mut HashMap<Topic, u16>,
    channels: &mut HashMap<(Arc<str>, Topic), u16>,
    stream: &Arc<str>,
    topic: Topic,
) -> io::Result<u16> {
    if let Some(id) = channels.get(&(stream.clone(), topic)) {
        return Ok(*id);
    }
    let schema = match schemas.get(&topic) {
        Some(id) => *id,
        None => {
            let s = topic.schema();
            let id = writer
                .add_schema(&s.name, &s.encoding, &s.data)
                .map_err(mcap_err)?;
            schemas.insert(topic, id);
            id
        }
    };
    let id = writer
        .add_channel(
            schema,
            &topic.of(stream),
            topic.message_encoding(),
            &BTreeMap::new(),
        )
        .map_err(mcap_err)?;
    channels.insert((stream.clone(), topic), id);
    Ok(id)
}

impl<W: io::Write + io::Seek + Send> Sink for McapSink<W> {
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        let meta = &work.frame.meta;
        let log_time = meta.capture_wall_ns;
        let publish_time = clock::wall_ns_of(emit_ns);
        let McapSink {
            writer,
            options,
            channels,
            schemas,
            sequence,
            messages,
            ..
        } = self;
        let image = options.images == Images::Jpeg;
        messages.build(work, emit_ns, image, |topic, bytes| {
            let channel_id = channel(writer, schemas, channels, &meta.stream, topic)?;
            let seq = sequence.entry(channel_id).or_insert(0);
            *seq = seq.wrapping_add(1);
            let header = MessageHeader {
                channel_id,
                sequence: *seq,
                log_time,
                publish_time,
            };
            writer
                .write_to_known_channel(&header, bytes)
                .map_err(mcap_err)
        })?;

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
