//! Frames seen as OpenCV `Mat`s without copying.

use std::ffi::c_void;

use gstreamer_video::VideoFormat;
use gstreamer_video::prelude::*;
use opencv::core::{CV_8UC1, CV_8UC3, CV_8UC4, Mat};

use crate::frame::Frame;

/// Calls `f` with a read-only `Mat` over the frame's pixels (packed formats:
/// RGB, BGR, RGBA, BGRA, GRAY8) and the frame's format.
pub fn with_frame_mat<R>(
    frame: &Frame,
    f: impl FnOnce(&Mat, VideoFormat) -> Result<R, String>,
) -> Result<R, String> {
    let pixels = frame.pixels().map_err(|e| e.to_string())?;
    let stride = pixels.plane_stride()[0] as usize;
    let data = pixels.plane_data(0).map_err(|e| e.to_string())?;
    let format = frame.format();
    let (typ, bpp) = match format {
        VideoFormat::Rgb | VideoFormat::Bgr => (CV_8UC3, 3),
        VideoFormat::Rgba | VideoFormat::Bgra | VideoFormat::Rgbx | VideoFormat::Bgrx => {
            (CV_8UC4, 4)
        }
        VideoFormat::Gray8 => (CV_8UC1, 1),
        other => {
            return Err(format!(
                "needs a packed format (RGB, BGR, RGBA, BGRA, GRAY8), not {}",
                other.to_str()
            ));
        }
    };
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if h == 0 || w == 0 || data.len() < stride * (h - 1) + w * bpp {
        return Err("frame buffer is smaller than its layout".into());
    }
    // SAFETY: `data` outlives `image` (both end with this call), the Mat is
    // only read, and the size check above keeps every row inside `data`.
    let image = unsafe {
        Mat::new_rows_cols_with_data_unsafe(
            h as i32,
            w as i32,
            typ,
            data.as_ptr() as *mut c_void,
            stride,
        )
    }
    .map_err(|e| e.to_string())?;
    f(&image, format)
}

/// OpenCV's colour conversion code from `format` to gray, `None` for gray.
pub fn to_gray_code(format: VideoFormat) -> Option<i32> {
    use opencv::imgproc::*;
    match format {
        VideoFormat::Rgb => Some(COLOR_RGB2GRAY),
        VideoFormat::Bgr => Some(COLOR_BGR2GRAY),
        VideoFormat::Rgba | VideoFormat::Rgbx => Some(COLOR_RGBA2GRAY),
        VideoFormat::Bgra | VideoFormat::Bgrx => Some(COLOR_BGRA2GRAY),
        _ => None,
    }
}
