//! `video`: the frames with their results drawn on, encoded to H.264 in an
//! MP4 (fragmented, one fragment a second) or Matroska file, so that a
//! killed run still plays up to its last fragment.
//!
//! ```toml
//! [[sink]]
//! kind = "video"
//! path = "run.mp4"        # or run.mkv
//! encoder = "x264"        # or "openh264"; default "x264"
//! trail = 16              # track centres drawn behind each track, 0 = none
//! ```
//!
//! Drawn with OpenCV's imgproc on a BGR canvas reused from frame to frame:
//! each box (tracks when a tracker ran, else detections) in a colour per
//! track id (the same palette as the `mcap` sink's annotations), 2 px, with
//! a `#id class score` label; boxes the tracker predicted (no detection on
//! this frame) dashed, 1 px; each track's recent centres as a trail; a
//! corner overlay with the output rate (fps, over the last 32 frames), the
//! frame's capture-to-output latency and the stages that skipped it.
//!
//! Encoded by GStreamer: `appsrc` (BGR, the source's size and frame rate,
//! buffers from a pool, so steady state allocates no frame) →
//! `videoconvert` → `x264enc tune=zerolatency bframes=0` or `openh264enc`
//! → `h264parse` → `mp4mux fragment-duration=1000` or `matroskamux` →
//! `filesink`. Frame times are the frames' media times (PTS) from the
//! first frame on, else their sequence number times the frame period.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::VideoFormat;
use gstreamer_video::prelude::*;
use opencv::core::{Mat, Point, Rect, Scalar};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Deserialize;

use crate::cvmat::with_frame_mat;
use crate::frame::DEFAULT_PERIOD_NS;
use crate::record::Work;
use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, typed_options};
use crate::overlay::{BoxView, boxes};

/// The `video` kind.
pub static KIND: SinkKind = SinkKind {
    name: "video",
    path_help: "a video file ending in .mp4 or .mkv",
    options: &["encoder", "trail"],
    path_options: &[],
    needs_path: true,
    check,
    open,
};

/// The H.264 encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoder {
    /// `x264enc` (GStreamer ugly plugins), zero latency, no B-frames.
    #[default]
    X264,
    /// `openh264enc` (Cisco's OpenH264; baseline profile, no B-frames).
    Openh264,
}

impl Encoder {
    fn launch(self, key_int: u32) -> String {
        match self {
            Encoder::X264 => format!(
                "x264enc tune=zerolatency bframes=0 speed-preset=superfast key-int-max={key_int}"
            ),
            Encoder::Openh264 => format!("openh264enc bitrate=2048000 gop-size={key_int}"),
        }
    }

    fn element(self) -> &'static str {
        match self {
            Encoder::X264 => "x264enc",
            Encoder::Openh264 => "openh264enc",
        }
    }
}

/// The `video` kind's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoOptions {
    /// `x264` (default) or `openh264`.
    #[serde(default)]
    pub encoder: Encoder,
    /// Centres kept per track for its trail (default 16, at most 256).
    pub trail: Option<i64>,
}

/// The container, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Mp4,
    Mkv,
}

fn container(path: &Path) -> Option<Container> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp4") => Some(Container::Mp4),
        Some("mkv") => Some(Container::Mkv),
        _ => None,
    }
}

fn options(opts: &SinkOptions) -> Result<VideoOptions, SinkCheckError> {
    let o: VideoOptions = typed_options(opts)?;
    if let Some(t) = o.trail
        && !(0..=256).contains(&t)
    {
        return Err(SinkCheckError::option("trail", format!("{t} is out of range: 0 to 256")));
    }
    Ok(o)
}

fn check(output: &OutputPath, opts: &SinkOptions) -> Result<(), SinkCheckError> {
    options(opts)?;
    match output {
        OutputPath::Stdout => Err(SinkCheckError::path(
            "a video sink needs a file ending in .mp4 or .mkv, not `-`",
        )),
        OutputPath::File(p) if container(p).is_none() => Err(SinkCheckError::path(format!(
            "{}: the file name must end in .mp4 or .mkv (the container)",
            p.display()
        ))),
        OutputPath::File(_) => Ok(()),
    }
}

fn open(output: &OutputPath, opts: &SinkOptions) -> io::Result<Box<dyn Sink>> {
    check(output, opts).map_err(|e| io::Error::other(e.to_string()))?;
    let options = options(opts).map_err(|e| io::Error::other(e.to_string()))?;
    let OutputPath::File(path) = output else {
        return Err(io::Error::other("a video sink needs a file"));
    };
    gst::init().map_err(|e| io::Error::other(e.to_string()))?;
    let needed = [
        options.encoder.element(),
        "videoconvert",
        "h264parse",
        match container(path) {
            Some(Container::Mkv) => "matroskamux",
            _ => "mp4mux",
        },
    ];
    if let Some(missing) = needed
        .iter()
        .find(|e| gst::ElementFactory::find(e).is_none())
    {
        return Err(io::Error::other(format!(
            "GStreamer element `{missing}` is missing (scripts/setup.sh installs it)"
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Fails now, not at the first frame, when the file cannot be written.
    File::create(path)?;
    Ok(Box::new(VideoSink::new(path.clone(), options)))
}

fn cv(e: opencv::Error) -> io::Error {
    io::Error::other(e.to_string())
}

fn gst_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The encoding pipeline, built at the first frame (its size and rate).
struct Encoding {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    pool: gst::BufferPool,
    info: gst_video::VideoInfo,
    /// PTS of the first frame, ns.
    first_pts: Option<u64>,
    period_ns: u64,
}

/// A track's recent centres.
struct Trail {
    centres: VecDeque<Point>,
    last_seq: u64,
}

/// Draws each frame and encodes it.
pub struct VideoSink {
    path: PathBuf,
    options: VideoOptions,
    encoding: Option<Encoding>,
    canvas: Mat,
    trails: HashMap<u64, Trail>,
    emits: VecDeque<u64>,
    text: String,
}

impl VideoSink {
    fn new(path: PathBuf, options: VideoOptions) -> VideoSink {
        VideoSink {
            path,
            options,
            encoding: None,
            canvas: Mat::default(),
            trails: HashMap::new(),
            emits: VecDeque::with_capacity(33),
            text: String::with_capacity(256),
        }
    }

    fn trail_len(&self) -> usize {
        self.options.trail.unwrap_or(16) as usize
    }

    fn start(&mut self, work: &Work) -> io::Result<Encoding> {
        let frame = &work.frame;
        let (w, h) = (frame.width(), frame.height());
        let fps = frame.info.fps();
        let (num, den) = if fps.numer() > 0 && fps.denom() > 0 {
            (fps.numer(), fps.denom())
        } else {
            let period = frame.meta.duration_ns.unwrap_or(DEFAULT_PERIOD_NS).max(1);
            ((1_000_000_000 / period).max(1) as i32, 1)
        };
        let period_ns = 1_000_000_000u64 * den as u64 / num as u64;
        let key_int = (num / den).max(1) as u32 * 2;
        let mux = match container(&self.path) {
            Some(Container::Mkv) => "matroskamux".to_string(),
            _ => "mp4mux fragment-duration=1000".to_string(),
        };
        let launch = format!(
            "appsrc name=src format=time is-live=false block=true ! videoconvert ! video/x-raw,format=I420 ! {} ! h264parse ! {mux} ! filesink name=file",
            self.options.encoder.launch(key_int)
        );
        let pipeline = gst::parse::launch(&launch)
            .map_err(gst_err)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| io::Error::other("not a pipeline"))?;
        let info = gst_video::VideoInfo::builder(VideoFormat::Bgr, w, h)
            .fps(gst::Fraction::new(num, den))
            .build()
            .map_err(gst_err)?;
        let caps = info.to_caps().map_err(gst_err)?;
        let appsrc = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| io::Error::other("no appsrc"))?;
        appsrc.set_caps(Some(&caps));
        // At most four frames wait for the encoder; then this thread waits.
        appsrc.set_max_bytes(4 * info.size() as u64);
        if let Some(file) = pipeline.by_name("file") {
            file.set_property("location", self.path.to_string_lossy().as_ref());
        }
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        config.set_params(Some(&caps), info.size() as u32, 2, 0);
        pool.set_config(config).map_err(gst_err)?;
        pool.set_active(true).map_err(gst_err)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| io::Error::other(format!("cannot start the encoder: {e}")))?;
        Ok(Encoding {
            pipeline,
            appsrc,
            pool,
            info,
            first_pts: None,
            period_ns,
        })
    }

    /// The frame's pixels into the canvas, as BGR.
    fn copy_frame(&mut self, work: &Work) -> io::Result<()> {
        let canvas = &mut self.canvas;
        with_frame_mat(&work.frame, |image, format| {
            let code = match format {
                VideoFormat::Rgb => imgproc::COLOR_RGB2BGR,
                VideoFormat::Rgba | VideoFormat::Rgbx => imgproc::COLOR_RGBA2BGR,
                VideoFormat::Bgra | VideoFormat::Bgrx => imgproc::COLOR_BGRA2BGR,
                VideoFormat::Gray8 => imgproc::COLOR_GRAY2BGR,
                _ => return image.copy_to(canvas).map_err(|e| e.to_string()),
            };
            imgproc::cvt_color_def(image, canvas, code).map_err(|e| e.to_string())
        })
        .map_err(|e| io::Error::other(format!("video: {e} (set the source's format = \"RGB\")")))
    }

    fn draw(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        let seq = work.frame.meta.seq;
        let trail_len = self.trail_len();
        for b in boxes(&work.record) {
            let colour = bgr(b.colour());
            draw_box(&mut self.canvas, &b, colour)?;
            if let Some(id) = b.track_id.filter(|_| trail_len > 0) {
                let centre = Point::new(
                    ((b.bbox[0] + b.bbox[2]) / 2.0).round() as i32,
                    ((b.bbox[1] + b.bbox[3]) / 2.0).round() as i32,
                );
                let trail = self.trails.entry(id).or_insert_with(|| Trail {
                    centres: VecDeque::with_capacity(trail_len),
                    last_seq: seq,
                });
                if trail.centres.len() == trail_len {
                    trail.centres.pop_front();
                }
                trail.centres.push_back(centre);
                trail.last_seq = seq;
                for (i, (a, c)) in trail
                    .centres
                    .iter()
                    .zip(trail.centres.iter().skip(1))
                    .enumerate()
                {
                    let thickness = 1 + (2 * i / trail_len.max(1)) as i32;
                    imgproc::line(&mut self.canvas, *a, *c, colour, thickness, imgproc::LINE_AA, 0)
                        .map_err(cv)?;
                }
            }
        }
        // Forget tracks not seen for a while (bounded memory).
        self.trails
            .retain(|_, t| seq.saturating_sub(t.last_seq) < 2 * trail_len as u64 + 1);

        if self.emits.len() == 32 {
            self.emits.pop_front();
        }
        self.emits.push_back(emit_ns);
        let fps = match (self.emits.front(), self.emits.back()) {
            (Some(a), Some(b)) if b > a => (self.emits.len() - 1) as f64 * 1e9 / (b - a) as f64,
            _ => 0.0,
        };
        let latency_ms = emit_ns.saturating_sub(work.frame.meta.capture_ns) as f64 / 1e6;
        self.text.clear();
        let _ = write!(self.text, "{fps:.1} fps  latency {latency_ms:.0} ms");
        overlay_line(&mut self.canvas, &self.text, 0)?;
        if !work.record.skipped.is_empty() {
            self.text.clear();
            self.text.push_str("skipped:");
            for s in &work.record.skipped {
                let _ = write!(self.text, " {} ({})", s.stage, s.reason.as_str());
            }
            overlay_line(&mut self.canvas, &self.text, 1)?;
        }
        Ok(())
    }

    fn push(&mut self, work: &Work) -> io::Result<()> {
        let Some(enc) = &mut self.encoding else {
            return Err(io::Error::other("the encoder did not start"));
        };
        if let Some(msg) = enc
            .pipeline
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            && let gst::MessageView::Error(e) = msg.view()
        {
            return Err(io::Error::other(format!("encoder: {}", e.error())));
        }
        let (w, h) = (enc.info.width() as usize, enc.info.height() as usize);
        if (self.canvas.cols() as usize, self.canvas.rows() as usize) != (w, h) {
            return Err(io::Error::other(format!(
                "frame size changed from {w}x{h} to {}x{}: a video file has one size",
                self.canvas.cols(),
                self.canvas.rows()
            )));
        }
        let mut buffer = enc.pool.acquire_buffer(None).map_err(gst_err)?;
        let meta = &work.frame.meta;
        let pts = match meta.pts_ns {
            Some(p) => p.saturating_sub(*enc.first_pts.get_or_insert(p)),
            None => meta.seq * enc.period_ns,
        };
        {
            let Some(buf) = buffer.get_mut() else {
                return Err(io::Error::other("pool buffer is shared"));
            };
            buf.set_pts(gst::ClockTime::from_nseconds(pts));
            buf.set_duration(gst::ClockTime::from_nseconds(
                meta.duration_ns.unwrap_or(enc.period_ns),
            ));
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &enc.info)
                .map_err(gst_err)?;
            let stride = frame.plane_stride()[0] as usize;
            let dst = frame.plane_data_mut(0).map_err(gst_err)?;
            let src = self.canvas.data_bytes().map_err(cv)?;
            let row = w * 3;
            for (y, s) in src.chunks_exact(row).take(h).enumerate() {
                dst[y * stride..y * stride + row].copy_from_slice(s);
            }
        }
        enc.appsrc
            .push_buffer(buffer)
            .map_err(|e| io::Error::other(format!("encoder: {e:?}")))?;
        Ok(())
    }
}

/// OpenCV's BGR scalar of an RGB colour.
fn bgr(rgb: [u8; 3]) -> Scalar {
    Scalar::new(f64::from(rgb[2]), f64::from(rgb[1]), f64::from(rgb[0]), 0.0)
}

/// One box: solid 2 px when measured, dashed 1 px when predicted, with its label.
fn draw_box(canvas: &mut Mat, b: &BoxView<'_>, colour: Scalar) -> io::Result<()> {
    let [x1, y1, x2, y2] = b.bbox.map(|v| v.round() as i32);
    if b.predicted {
        let corners = [
            Point::new(x1, y1),
            Point::new(x2, y1),
            Point::new(x2, y2),
            Point::new(x1, y2),
        ];
        for i in 0..4 {
            dashed(canvas, corners[i], corners[(i + 1) % 4], colour)?;
        }
    } else {
        imgproc::rectangle(
            canvas,
            Rect::new(x1, y1, (x2 - x1).max(1), (y2 - y1).max(1)),
            colour,
            2,
            imgproc::LINE_8,
            0,
        )
        .map_err(cv)?;
    }
    let label = b.label();
    let mut baseline = 0;
    let size = imgproc::get_text_size(&label, imgproc::FONT_HERSHEY_SIMPLEX, 0.45, 1, &mut baseline)
        .map_err(cv)?;
    let top = (y1 - size.height - 6).max(0);
    imgproc::rectangle(
        canvas,
        Rect::new(x1, top, size.width + 4, size.height + 6),
        colour,
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )
    .map_err(cv)?;
    imgproc::put_text(
        canvas,
        &label,
        Point::new(x1 + 2, top + size.height + 2),
        imgproc::FONT_HERSHEY_SIMPLEX,
        0.45,
        Scalar::all(0.0),
        1,
        imgproc::LINE_AA,
        false,
    )
    .map_err(cv)
}

/// A dashed line: 6 px on, 4 px off.
fn dashed(canvas: &mut Mat, a: Point, b: Point, colour: Scalar) -> io::Result<()> {
    let (dx, dy) = (f64::from(b.x - a.x), f64::from(b.y - a.y));
    let len = dx.hypot(dy);
    let mut t = 0.0;
    while t < len {
        let e = (t + 6.0).min(len);
        let p = |s: f64| {
            Point::new(
                a.x + (dx * s / len.max(1.0)).round() as i32,
                a.y + (dy * s / len.max(1.0)).round() as i32,
            )
        };
        imgproc::line(canvas, p(t), p(e), colour, 1, imgproc::LINE_8, 0).map_err(cv)?;
        t += 10.0;
    }
    Ok(())
}

/// A line of white text on a dark band, in the top-left corner.
fn overlay_line(canvas: &mut Mat, text: &str, line: i32) -> io::Result<()> {
    let mut baseline = 0;
    let size = imgproc::get_text_size(text, imgproc::FONT_HERSHEY_SIMPLEX, 0.5, 1, &mut baseline)
        .map_err(cv)?;
    let top = 4 + line * (size.height + 10);
    imgproc::rectangle(
        canvas,
        Rect::new(4, top, size.width + 8, size.height + 8),
        Scalar::all(0.0),
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )
    .map_err(cv)?;
    imgproc::put_text(
        canvas,
        text,
        Point::new(8, top + size.height + 3),
        imgproc::FONT_HERSHEY_SIMPLEX,
        0.5,
        Scalar::all(255.0),
        1,
        imgproc::LINE_AA,
        false,
    )
    .map_err(cv)
}

impl Sink for VideoSink {
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        if self.encoding.is_none() {
            self.encoding = Some(self.start(work)?);
        }
        self.copy_frame(work)?;
        self.draw(work, emit_ns)?;
        self.push(work)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(enc) = self.encoding.take() else {
            return Ok(());
        };
        let _ = enc.appsrc.end_of_stream();
        let result = match enc.pipeline.bus() {
            Some(bus) => match bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(60),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) {
                Some(msg) => match msg.view() {
                    gst::MessageView::Error(e) => {
                        Err(io::Error::other(format!("encoder: {}", e.error())))
                    }
                    _ => Ok(()),
                },
                None => Err(io::Error::other("encoder did not finish within 60 s")),
            },
            None => Ok(()),
        };
        let _ = enc.pipeline.set_state(gst::State::Null);
        let _ = enc.pool.set_active(false);
        result
    }
}

impl Drop for VideoSink {
    fn drop(&mut self) {
        if let Some(enc) = self.encoding.take() {
            let _ = enc.pipeline.set_state(gst::State::Null);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_comes_from_the_extension() {
        let none = SinkOptions::new();
        assert!(check(&OutputPath::File("a/run.mp4".into()), &none).is_ok());
        assert!(check(&OutputPath::File("run.MKV".into()), &none).is_ok());
        let e = check(&OutputPath::File("run.avi".into()), &none).unwrap_err();
        assert_eq!(e.field, "path");
        let bad: SinkOptions = toml::from_str("encoder = \"vp9\"").unwrap();
        assert_eq!(check(&OutputPath::File("x.mp4".into()), &bad).unwrap_err().field, "encoder");
    }
}
