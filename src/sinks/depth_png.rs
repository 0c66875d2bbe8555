//! Depth maps as 16-bit PNG files in millimetres (0 = invalid), one per
//! frame with a depth map, named `<stream>_<seq>.png` (`--depth-out DIR` or
//! `[[sink]] kind = "depth_png"`). For people to look at and for checks.
//! Beside them, once per stream, `<stream>_camera.json`: the camera the maps
//! are in ([`crate::record::DepthCamera`]: view, matrix `k`, `baseline_m`).

use std::io;
use std::path::PathBuf;

use image::ExtendedColorType;
use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};

use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, no_options};

/// The `depth_png` kind.
pub static KIND: SinkKind = SinkKind {
    name: "depth_png",
    path_help: "a folder",
    options: &[],
    path_options: &[],
    needs_path: true,
    check,
    open,
};

fn check(output: &OutputPath, options: &SinkOptions) -> Result<(), SinkCheckError> {
    no_options(options)?;
    match output {
        OutputPath::File(_) => Ok(()),
        OutputPath::Stdout => Err(SinkCheckError::path(
            "depth_png writes one file per frame: give a folder, not `-`",
        )),
    }
}

fn open(output: &OutputPath, options: &SinkOptions) -> io::Result<Box<dyn Sink>> {
    check(output, options).map_err(|e| io::Error::other(e.message))?;
    match output {
        OutputPath::File(dir) => Ok(Box::new(DepthPngSink::create(dir.clone())?)),
        OutputPath::Stdout => Err(io::Error::other("no folder")),
    }
}
use crate::record::Work;

/// Writes each depth map as a 16-bit PNG in millimetres.
pub struct DepthPngSink {
    dir: PathBuf,
    /// Streams whose `<stream>_camera.json` is written.
    cameras_written: std::collections::HashSet<String>,
    /// Millimetres, native-endian `u16` bytes, row by row (reused).
    image: Vec<u8>,
    /// The encoded file (reused).
    png: Vec<u8>,
}

impl DepthPngSink {
    /// Creates the folder (and its parents).
    pub fn create(dir: PathBuf) -> io::Result<DepthPngSink> {
        std::fs::create_dir_all(&dir)?;
        Ok(DepthPngSink {
            dir,
            cameras_written: Default::default(),
            image: Vec::new(),
            png: Vec::new(),
        })
    }
}

impl Sink for DepthPngSink {
    fn write(&mut self, work: &Work, _emit_ns: u64) -> io::Result<()> {
        let Some(depth) = &work.record.depth else {
            return Ok(());
        };
        let (w, h) = (depth.width, depth.height);
        if depth.metres.len() != w as usize * h as usize {
            return Err(io::Error::other(format!(
                "a {w}x{h} depth map with {} values",
                depth.metres.len()
            )));
        }
        self.image.clear();
        self.image.extend(
            depth
                .metres
                .iter()
                .flat_map(|z| ((z * 1000.0).round().clamp(0.0, 65535.0) as u16).to_ne_bytes()),
        );
        let meta = &work.frame.meta;
        if let Some(camera) = &depth.camera
            && !self.cameras_written.contains(&*meta.stream)
        {
            // Beside the maps: the camera they are in (the left rectified
            // view's matrix and the baseline), once per stream.
            let path = self.dir.join(format!("{}_camera.json", meta.stream));
            let json = serde_json::to_string_pretty(&**camera).map_err(io::Error::other)?;
            std::fs::write(&path, json + "\n")?;
            self.cameras_written.insert(meta.stream.to_string());
        }
        let path = self
            .dir
            .join(format!("{}_{:06}.png", meta.stream, meta.seq));
        // Fast compression: these are written every frame. The encoder
        // writes PNG's big-endian samples from native-endian input.
        self.png.clear();
        PngEncoder::new_with_quality(&mut self.png, CompressionType::Fast, FilterType::Sub)
            .write_image(&self.image, w, h, ExtendedColorType::L16)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        std::fs::write(&path, &self.png)
            .map_err(|e| io::Error::other(format!("cannot write {}: {e}", path.display())))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
