//! `image_stats`: per-channel mean, min and max of a frame's pixels.
//!
//! Works on packed 8-bit formats (RGB, BGR, RGBA, BGRA, GRAY8) and on the
//! luma plane of planar YUV (I420, NV12). Rows are walked by their stride,
//! so the padding GStreamer adds at the end of each row is never counted.

use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use std::sync::Arc;

use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{field_names, NoSettings, Resolver, StageContext, StageKind};
use crate::frame::Frame;
use crate::model::ModelError;
use crate::record::{ImageStats, Record};
use crate::stage::{Built, Stage, StageError, StageSettings};

/// The `image_stats` kind: no settings of its own.
pub static KIND: StageKind = StageKind {
    name: "image_stats",
    admission: false,
    asynchronous: false,
    fields: field_names::<NoSettings>,
    resolve,
};

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    _: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let NoSettings {} = r.typed(table)?;
    Ok(Arc::new(ImageStatsSettings))
}

/// `image_stats` has no settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageStatsSettings;

impl StageSettings for ImageStatsSettings {
    fn build(&self) -> Result<Built, ModelError> {
        Ok(Built {
            stage: Box::new(ImageStatsStage),
            info: None,
        })
    }
}

/// The `image_stats` stage.
pub struct ImageStatsStage;

impl Stage for ImageStatsStage {
    fn process(&mut self, frame: &Frame, record: &mut Record) -> Result<(), StageError> {
        record.image_stats = Some(image_stats_from_frame(frame)?);
        Ok(())
    }
}

/// Computes [`ImageStats`] of a frame, honouring row strides.
pub fn image_stats_from_frame(frame: &Frame) -> Result<ImageStats, StageError> {
    let pixels = frame
        .pixels()
        .map_err(|e| StageError::msg(format!("cannot map frame {}: {e}", frame.meta.seq)))?;
    let channels: usize = match frame.format() {
        gst_video::VideoFormat::Rgb | gst_video::VideoFormat::Bgr => 3,
        gst_video::VideoFormat::Rgba | gst_video::VideoFormat::Bgra => 4,
        // GRAY8, and plane 0 (luma) of I420 / NV12.
        _ => 1,
    };
    let stride = pixels.plane_stride()[0] as usize;
    let data = pixels.plane_data(0).map_err(|e| {
        StageError::msg(format!(
            "cannot read plane 0 of frame {}: {e}",
            frame.meta.seq
        ))
    })?;
    let width = frame.width() as usize;
    let height = frame.height() as usize;
    let row_len = width * channels;

    let mut sum = [0u64; 4];
    let mut min = [u8::MAX; 4];
    let mut max = [0u8; 4];
    for y in 0..height {
        let row = &data[y * stride..y * stride + row_len];
        for px in row.chunks_exact(channels) {
            for (c, &v) in px.iter().enumerate() {
                sum[c] += u64::from(v);
                min[c] = min[c].min(v);
                max[c] = max[c].max(v);
            }
        }
    }
    let n = (width * height).max(1) as f64;
    let mut mean = [0.0; 4];
    for c in 0..channels {
        mean[c] = sum[c] as f64 / n;
    }
    min[channels..].fill(0);
    Ok(ImageStats {
        channels: channels as u8,
        mean,
        min,
        max,
    })
}

#[cfg(test)]
mod tests {

    use gstreamer as gst;

    use super::*;

    /// A frame whose padding bytes hold a value no pixel has.
    fn padded_frame(
        format: gst_video::VideoFormat,
        width: u32,
        height: u32,
        pixel: u8,
        padding: u8,
    ) -> Frame {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(format, width, height)
            .build()
            .unwrap();
        let stride = info.stride()[0] as usize;
        let row = width as usize * info.format_info().pixel_stride()[0] as usize;
        assert!(
            stride > row,
            "test needs a padded layout: stride {stride}, row {row}"
        );
        let mut bytes = vec![padding; info.size()];
        for y in 0..height as usize {
            bytes[y * stride..y * stride + row].fill(pixel);
        }
        crate::frame::test_frame(info, bytes, 0)
    }

    #[test]
    fn padding_bytes_are_never_counted() {
        for (format, channels) in [
            (gst_video::VideoFormat::Rgb, 3),
            (gst_video::VideoFormat::Gray8, 1),
        ] {
            let stats = image_stats_from_frame(&padded_frame(format, 33, 17, 7, 250)).unwrap();
            assert_eq!(usize::from(stats.channels), channels);
            for c in 0..channels {
                assert_eq!(
                    (stats.min[c], stats.max[c], stats.mean[c]),
                    (7, 7, 7.0),
                    "{format:?} channel {c}"
                );
            }
        }
    }
}
