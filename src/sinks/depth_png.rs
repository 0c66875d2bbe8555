//! Depth maps as 16-bit PNG files in millimetres (0 = invalid), one per
//! frame with a depth map, named `<stream>_<seq>.png` (`--depth-out DIR` or
//! `[[sink]] kind = "depth_png"`). For people to look at and for checks.
//! Beside them, once per stream, `<stream>_camera.json`: the camera the maps
//! are in ([`crate::record::DepthCamera`]: view, matrix `k`, `baseline_m`).

use std::io;
use std::path::PathBuf;

use opencv::core::{CV_16UC1, Mat, Scalar, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;

use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, no_options};

/// The `depth_png` kind.
pub static KIND: SinkKind = SinkKind {
    name: "depth_png",
    path_help: "a folder",
    options: &[],
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
    image: Mat,
    params: Vector<i32>,
}

impl DepthPngSink {
    /// Creates the folder (and its parents).
    pub fn create(dir: PathBuf) -> io::Result<DepthPngSink> {
        std::fs::create_dir_all(&dir)?;
        Ok(DepthPngSink {
            dir,
            cameras_written: Default::default(),
            image: Mat::default(),
            // Fast compression: these are written every frame.
            params: Vector::from_slice(&[imgcodecs::IMWRITE_PNG_COMPRESSION, 1]),
        })
    }
}

fn cv(e: opencv::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl Sink for DepthPngSink {
    fn write(&mut self, work: &Work, _emit_ns: u64) -> io::Result<()> {
        let Some(depth) = &work.record.depth else {
            return Ok(());
        };
        let (w, h) = (depth.width as i32, depth.height as i32);
        if self.image.rows() != h || self.image.cols() != w {
            self.image =
                Mat::new_rows_cols_with_default(h, w, CV_16UC1, Scalar::all(0.0)).map_err(cv)?;
        }
        for (y, row) in depth.metres.chunks_exact(w.max(1) as usize).enumerate() {
            let out = self.image.at_row_mut::<u16>(y as i32).map_err(cv)?;
            for (o, z) in out.iter_mut().zip(row) {
                *o = (z * 1000.0).round().clamp(0.0, 65535.0) as u16;
            }
        }
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
        let ok = imgcodecs::imwrite(&path, &self.image, &self.params).map_err(cv)?;
        if !ok {
            return Err(io::Error::other(format!("cannot write {}", path.display())));
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
