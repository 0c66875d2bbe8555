//! Fused preprocessing: one pass from a frame's pixels (any row stride) into
//! a preallocated NCHW tensor: letterbox or stretch resize (bilinear, with
//! OpenCV's `INTER_LINEAR` sampling of float images), colour order,
//! normalisation `(v / 255 - mean) / std`, f32 or u8.
//!
//! Sampling tables are built once per source size and reused; the pass
//! allocates nothing. [`Letterbox`] maps network coordinates back to source
//! pixels.

use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use crate::frame::Frame;

/// How a frame is fitted into the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Keep the aspect ratio, centre, pad the rest with `pad_value`.
    Letterbox,
    /// Scale each axis to fit exactly.
    Stretch,
}

/// Channel order the network expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
}

/// Memory layout of the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorLayout {
    /// `[N, 3, H, W]`: one plane per channel (most ONNX exports).
    Nchw,
    /// `[N, H, W, 3]`: interleaved channels (TensorFlow-style exports).
    Nhwc,
}

/// Plain preprocessing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessSettings {
    /// Model input width, px.
    pub width: u32,
    /// Model input height, px.
    pub height: u32,
    /// Letterbox or stretch.
    pub resize: Resize,
    /// Letterbox padding value, 0..255.
    pub pad_value: u8,
    /// Subtracted after scaling to 0..1, per network channel.
    pub mean: [f32; 3],
    /// Divides after the mean, per network channel.
    pub std: [f32; 3],
    /// Channel order the model expects.
    pub color: ColorOrder,
    /// NCHW or NHWC.
    pub layout: TensorLayout,
}

impl PreprocessSettings {
    /// YOLO-style defaults: letterbox, gray 114 padding, RGB, values in 0..1.
    pub fn yolo(width: u32, height: u32) -> PreprocessSettings {
        PreprocessSettings {
            width,
            height,
            resize: Resize::Letterbox,
            pad_value: 114,
            mean: [0.0; 3],
            std: [1.0; 3],
            color: ColorOrder::Rgb,
            layout: TensorLayout::Nchw,
        }
    }
}

/// Where the source image lies inside the network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Source pixels per network pixel, horizontally.
    pub scale_x: f64,
    /// Source pixels per network pixel, vertically.
    pub scale_y: f64,
    /// Offset of the image in the network input, network pixels.
    pub left: u32,
    /// Padding above the image, px.
    pub top: u32,
    /// Size of the resized image inside the network input.
    pub width: u32,
    /// Height of the image inside the input, px.
    pub height: u32,
    /// Source size, for clipping.
    pub src_width: u32,
    /// Source frame height, px.
    pub src_height: u32,
}

impl Letterbox {
    /// Computes the placement of a `src` image in a `dst` input.
    pub fn new(src: (u32, u32), dst: (u32, u32), resize: Resize) -> Letterbox {
        let (sw, sh) = src;
        let (dw, dh) = dst;
        let (width, height) = match resize {
            Resize::Stretch => (dw, dh),
            Resize::Letterbox => {
                let r = (f64::from(dw) / f64::from(sw)).min(f64::from(dh) / f64::from(sh));
                (
                    ((f64::from(sw) * r).round() as u32).clamp(1, dw),
                    ((f64::from(sh) * r).round() as u32).clamp(1, dh),
                )
            }
        };
        Letterbox {
            scale_x: f64::from(sw) / f64::from(width),
            scale_y: f64::from(sh) / f64::from(height),
            left: (dw - width) / 2,
            top: (dh - height) / 2,
            width,
            height,
            src_width: sw,
            src_height: sh,
        }
    }

    /// A box `[x1, y1, x2, y2]` in network pixels to source pixels, clipped to the frame.
    pub fn to_source(&self, b: [f32; 4]) -> [f32; 4] {
        let x = |v: f32| {
            ((f64::from(v) - f64::from(self.left)) * self.scale_x)
                .clamp(0.0, f64::from(self.src_width)) as f32
        };
        let y = |v: f32| {
            ((f64::from(v) - f64::from(self.top)) * self.scale_y)
                .clamp(0.0, f64::from(self.src_height)) as f32
        };
        [x(b[0]), y(b[1]), x(b[2]), y(b[3])]
    }
}

/// A frame the preprocessor cannot read.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("pixel format {0} is not supported (RGB, BGR, RGBA or BGRA)")]
    /// A pixel format it cannot read.
    Format(String),
    #[error("cannot map the frame: {0}")]
    /// The frame cannot be mapped.
    Map(String),
    #[error("output buffer has {got} values, the input tensor needs {need}")]
    /// The output buffer does not fit the input tensor.
    Size {
        /// Values in the buffer.
        got: usize,
        /// Values the tensor needs.
        need: usize,
    },
}

/// One bilinear tap pair along an axis: two source indices and their weights.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

/// OpenCV's `INTER_LINEAR` sampling along one axis (`resize.cpp`, non-area mode).
/// Fills `out` (reusing its capacity) with the taps of `dst` samples over `src`.
fn taps(src: u32, dst: u32, out: &mut Vec<Tap>) {
    let scale = 1.0 / (f64::from(dst) / f64::from(src));
    out.clear();
    out.extend((0..dst).map(|d| {
        let mut f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
        let mut s = f.floor() as i64;
        f -= s as f32;
        if s < 0 {
            f = 0.0;
            s = 0;
        }
        if s >= i64::from(src) - 1 {
            f = 0.0;
            s = i64::from(src) - 1;
        }
        let i0 = s as usize;
        let i1 = (i0 + 1).min(src as usize - 1);
        Tap {
            i0,
            i1,
            w0: 1.0 - f,
            w1: f,
        }
    }));
}

/// Tables for one source geometry.
struct Geometry {
    src: (u32, u32, gst_video::VideoFormat),
    letterbox: Letterbox,
    x: Vec<Tap>,
    y: Vec<Tap>,
    /// Bytes per source pixel.
    bpp: usize,
    /// Source byte offset within a pixel of each network channel.
    channel: [usize; 3],
}

/// Where the resized values go.
pub enum Target<'a> {
    /// A float tensor.
    F32(&'a mut [f32]),
    /// An 8-bit tensor.
    U8(&'a mut [u8]),
}

/// Writes resampled values (0..255 scale) into the tensor, converting each
/// with `conv(channel, value)`: three planes (NCHW) or interleaved (NHWC).
struct Writer<'a, T, F: Fn(usize, f32) -> T> {
    t: &'a mut [T],
    plane: usize,
    interleaved: bool,
    conv: F,
}

impl<T: Copy, F: Fn(usize, f32) -> T> Writer<'_, T, F> {
    /// `vals` holds interleaved network channels of consecutive pixels from pixel index `start`.
    fn put_row(&mut self, start: usize, vals: &[f32]) {
        let n = vals.len() / 3;
        let conv = &self.conv;
        if self.interleaved {
            for (px, v) in self.t[start * 3..(start + n) * 3]
                .chunks_exact_mut(3)
                .zip(vals.chunks_exact(3))
            {
                px[0] = conv(0, v[0]);
                px[1] = conv(1, v[1]);
                px[2] = conv(2, v[2]);
            }
            return;
        }
        let (p0, rest) = self.t.split_at_mut(self.plane);
        let (p1, p2) = rest.split_at_mut(self.plane);
        let rows = p0[start..start + n]
            .iter_mut()
            .zip(&mut p1[start..start + n])
            .zip(&mut p2[start..start + n]);
        for (((x, y), z), v) in rows.zip(vals.chunks_exact(3)) {
            *x = conv(0, v[0]);
            *y = conv(1, v[1]);
            *z = conv(2, v[2]);
        }
    }

    /// `count` pixels of padding from pixel index `start`.
    fn put_pad(&mut self, start: usize, count: usize, v: f32) {
        let values = [(self.conv)(0, v), (self.conv)(1, v), (self.conv)(2, v)];
        if self.interleaved {
            for px in self.t[start * 3..(start + count) * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&values);
            }
        } else {
            for (c, value) in values.into_iter().enumerate() {
                let p = c * self.plane + start;
                self.t[p..p + count].fill(value);
            }
        }
    }
}

/// The fused preprocessing pass, built once per stage.
pub struct Preprocessor {
    settings: PreprocessSettings,
    geometry: Option<Geometry>,
    /// Two horizontally resampled source rows (interleaved channels) and their vertical mix.
    rows: [Vec<f32>; 3],
    row_of: [usize; 2],
}

impl Preprocessor {
    /// A preprocessor for `settings`.
    pub fn new(settings: PreprocessSettings) -> Preprocessor {
        Preprocessor {
            settings,
            geometry: None,
            rows: [Vec::new(), Vec::new(), Vec::new()],
            row_of: [usize::MAX; 2],
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &PreprocessSettings {
        &self.settings
    }

    /// Number of values in the input tensor (3 × height × width).
    pub fn tensor_len(&self) -> usize {
        3 * self.settings.width as usize * self.settings.height as usize
    }

    fn geometry(
        &mut self,
        width: u32,
        height: u32,
        format: gst_video::VideoFormat,
    ) -> Result<&Geometry, PreprocessError> {
        let stale = self
            .geometry
            .as_ref()
            .is_none_or(|g| g.src != (width, height, format));
        if stale {
            let (bpp, rgb) = match format {
                gst_video::VideoFormat::Rgb => (3, [0, 1, 2]),
                gst_video::VideoFormat::Bgr => (3, [2, 1, 0]),
                gst_video::VideoFormat::Rgba | gst_video::VideoFormat::Rgbx => (4, [0, 1, 2]),
                gst_video::VideoFormat::Bgra | gst_video::VideoFormat::Bgrx => (4, [2, 1, 0]),
                other => return Err(PreprocessError::Format(other.to_str().to_string())),
            };
            let channel = match self.settings.color {
                ColorOrder::Rgb => rgb,
                ColorOrder::Bgr => [rgb[2], rgb[1], rgb[0]],
            };
            let s = &self.settings;
            let letterbox = Letterbox::new((width, height), (s.width, s.height), s.resize);
            // Reuse the old tables' memory: crops change size every time.
            let (mut x, mut y) = self
                .geometry
                .take()
                .map_or_else(Default::default, |g| (g.x, g.y));
            taps(width, letterbox.width, &mut x);
            taps(height, letterbox.height, &mut y);
            for row in &mut self.rows {
                row.clear();
                row.resize(letterbox.width as usize * 3, 0.0);
            }
            self.row_of = [usize::MAX; 2];
            self.geometry = Some(Geometry {
                src: (width, height, format),
                letterbox,
                x,
                y,
                bpp,
                channel,
            });
        }
        self.geometry
            .as_ref()
            .ok_or_else(|| PreprocessError::Format("none".into()))
    }

    /// Preprocesses a frame into `target` (length [`Self::tensor_len`]).
    pub fn run(&mut self, frame: &Frame, target: Target<'_>) -> Result<Letterbox, PreprocessError> {
        let pixels = frame
            .pixels()
            .map_err(|e| PreprocessError::Map(e.to_string()))?;
        let stride = pixels.plane_stride()[0] as usize;
        let data = pixels
            .plane_data(0)
            .map_err(|e| PreprocessError::Map(e.to_string()))?;
        self.run_raw(
            data,
            stride,
            frame.width(),
            frame.height(),
            frame.format(),
            target,
        )
    }

    /// Preprocesses packed pixels with the given row stride (bytes).
    pub fn run_raw(
        &mut self,
        data: &[u8],
        stride: usize,
        width: u32,
        height: u32,
        format: gst_video::VideoFormat,
        target: Target<'_>,
    ) -> Result<Letterbox, PreprocessError> {
        let need = self.tensor_len();
        let got = match &target {
            Target::F32(t) => t.len(),
            Target::U8(t) => t.len(),
        };
        if got != need {
            return Err(PreprocessError::Size { got, need });
        }
        self.geometry(width, height, format)?;
        let plane = self.settings.width as usize * self.settings.height as usize;
        let interleaved = self.settings.layout == TensorLayout::Nhwc;
        match target {
            Target::F32(t) => {
                let s = &self.settings;
                let mut gain = [0.0f32; 3];
                let mut bias = [0.0f32; 3];
                for c in 0..3 {
                    gain[c] = 1.0 / (255.0 * s.std[c]);
                    bias[c] = -s.mean[c] / s.std[c];
                }
                let conv = move |c: usize, v: f32| v * gain[c] + bias[c];
                self.fill(
                    data,
                    stride,
                    width,
                    &mut Writer {
                        t,
                        plane,
                        interleaved,
                        conv,
                    },
                )
            }
            Target::U8(t) => {
                let conv = |_: usize, v: f32| v.round().clamp(0.0, 255.0) as u8;
                self.fill(
                    data,
                    stride,
                    width,
                    &mut Writer {
                        t,
                        plane,
                        interleaved,
                        conv,
                    },
                )
            }
        }
    }

    fn fill<T: Copy, F: Fn(usize, f32) -> T>(
        &mut self,
        data: &[u8],
        stride: usize,
        width: u32,
        out: &mut Writer<'_, T, F>,
    ) -> Result<Letterbox, PreprocessError> {
        let Preprocessor {
            settings,
            geometry,
            rows,
            row_of,
        } = self;
        let Some(g) = geometry.as_ref() else {
            return Err(PreprocessError::Format("unknown".into()));
        };
        let nw = settings.width as usize;
        let nh = settings.height as usize;
        let lb = g.letterbox;
        let (left, top, rw, rh) = (
            lb.left as usize,
            lb.top as usize,
            lb.width as usize,
            lb.height as usize,
        );

        // Padding (none when stretching): whole rows above and below, then the sides.
        let pad = f32::from(settings.pad_value);
        out.put_pad(0, top * nw, pad);
        out.put_pad((top + rh) * nw, (nh - top - rh) * nw, pad);
        for y in top..top + rh {
            out.put_pad(y * nw, left, pad);
            out.put_pad(y * nw + left + rw, nw - left - rw, pad);
        }

        let [c0, c1, c2] = g.channel;
        let bpp = g.bpp;
        for (dy, ty) in g.y.iter().enumerate() {
            for (slot, src_row) in [(0usize, ty.i0), (1, ty.i1)] {
                if row_of[slot] == src_row {
                    continue;
                }
                // Moving down, the lower row of the last pair is often the upper row of this one.
                if slot == 0 && row_of[1] == src_row {
                    rows.swap(0, 1);
                    row_of.swap(0, 1);
                    continue;
                }
                let line = &data[src_row * stride..src_row * stride + width as usize * bpp];
                for (o, tx) in rows[slot].chunks_exact_mut(3).zip(&g.x) {
                    let p0 = &line[tx.i0 * bpp..tx.i0 * bpp + bpp];
                    let p1 = &line[tx.i1 * bpp..tx.i1 * bpp + bpp];
                    o[0] = f32::from(p0[c0]) * tx.w0 + f32::from(p1[c0]) * tx.w1;
                    o[1] = f32::from(p0[c1]) * tx.w0 + f32::from(p1[c1]) * tx.w1;
                    o[2] = f32::from(p0[c2]) * tx.w0 + f32::from(p1[c2]) * tx.w1;
                }
                row_of[slot] = src_row;
            }
            let [r0, r1, mixed] = rows;
            for ((m, a), b) in mixed.iter_mut().zip(r0.iter()).zip(r1.iter()) {
                *m = a * ty.w0 + b * ty.w1;
            }
            out.put_row((top + dy) * nw + left, mixed);
        }
        Ok(lb)
    }
}

#[cfg(test)]
mod tests {
    use opencv::core::{self, Mat, Scalar, Size};
    use opencv::prelude::*;

    use super::*;

    /// A deterministic RGB image with a textured pattern, rows padded to `stride`.
    fn image(width: usize, height: usize, stride: usize) -> Vec<u8> {
        let mut data = vec![0xEE; stride * height];
        for y in 0..height {
            for x in 0..width {
                for c in 0..3 {
                    data[y * stride + x * 3 + c] =
                        ((x * 7 + y * 13 + c * 61 + (x * y) % 17) % 256) as u8;
                }
            }
        }
        data
    }

    /// The same image as an OpenCV float Mat (what blobFromImage resamples in float).
    fn float_mat(data: &[u8], width: usize, height: usize, stride: usize) -> Mat {
        let packed: Vec<u8> = (0..height)
            .flat_map(|y| data[y * stride..y * stride + width * 3].iter().copied())
            .collect();
        let m = Mat::new_rows_cols_with_data(height as i32, (width * 3) as i32, &packed).unwrap();
        let m = m.reshape(3, height as i32).unwrap();
        let mut f = Mat::default();
        m.convert_to(&mut f, core::CV_32FC3, 1.0, 0.0).unwrap();
        f
    }

    /// OpenCV's blob of a float image: resized to `size` (bilinear) when it differs.
    fn blob(src: &Mat, size: (u32, u32), swap_rb: bool) -> Vec<f32> {
        let size = Size::new(size.0 as i32, size.1 as i32);
        let blob = opencv::dnn::blob_from_image(
            src,
            1.0 / 255.0,
            size,
            cv_mean(),
            swap_rb,
            false,
            core::CV_32F,
        )
        .unwrap();
        blob.data_typed::<f32>().unwrap().to_vec()
    }

    fn ours(
        settings: &PreprocessSettings,
        data: &[u8],
        width: u32,
        height: u32,
        stride: usize,
    ) -> (Vec<f32>, Letterbox) {
        let mut pre = Preprocessor::new(settings.clone());
        let mut out = vec![0.0; pre.tensor_len()];
        let lb = pre
            .run_raw(
                data,
                stride,
                width,
                height,
                gst_video::VideoFormat::Rgb,
                Target::F32(&mut out),
            )
            .unwrap();
        (out, lb)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    const MEAN: [f32; 3] = [0.1, 0.2, 0.3];

    /// blobFromImage's mean is in output (network) channel order, after `swapRB`.
    fn cv_mean() -> Scalar {
        let m = MEAN.map(|v| f64::from(v) * 255.0);
        Scalar::new(m[0], m[1], m[2], 0.0)
    }

    #[test]
    fn stretch_matches_opencv_blob_from_image() {
        // Odd width, padded rows; down- and up-scaling.
        for (w, h, stride, nw, nh) in [(333, 217, 1004, 160, 128), (33, 17, 100, 64, 48)] {
            let data = image(w, h, stride);
            for color in [ColorOrder::Rgb, ColorOrder::Bgr] {
                let settings = PreprocessSettings {
                    resize: Resize::Stretch,
                    mean: MEAN,
                    color,
                    ..PreprocessSettings::yolo(nw, nh)
                };
                let (mine, _) = ours(&settings, &data, w as u32, h as u32, stride);
                let src = float_mat(&data, w, h, stride);
                let swap = color == ColorOrder::Bgr;
                let d = max_abs_diff(&mine, &blob(&src, (nw, nh), swap));
                assert!(d < 1e-5, "{w}x{h} -> {nw}x{nh} {color:?}: max abs diff {d}");
            }
        }
    }

    #[test]
    fn letterbox_matches_opencv_resize_border_and_blob() {
        for (w, h, stride, n) in [(333, 217, 1004, 256), (217, 333, 652, 160)] {
            let data = image(w, h, stride);
            let settings = PreprocessSettings {
                mean: MEAN,
                ..PreprocessSettings::yolo(n, n)
            };
            let (mine, lb) = ours(&settings, &data, w as u32, h as u32, stride);
            let src = float_mat(&data, w, h, stride);
            let mut resized = Mat::default();
            opencv::imgproc::resize(
                &src,
                &mut resized,
                Size::new(lb.width as i32, lb.height as i32),
                0.0,
                0.0,
                opencv::imgproc::INTER_LINEAR,
            )
            .unwrap();
            let mut padded = Mat::default();
            let (right, bottom) = (n - lb.width - lb.left, n - lb.height - lb.top);
            core::copy_make_border(
                &resized,
                &mut padded,
                lb.top as i32,
                bottom as i32,
                lb.left as i32,
                right as i32,
                core::BORDER_CONSTANT,
                Scalar::all(114.0),
            )
            .unwrap();
            let d = max_abs_diff(&mine, &blob(&padded, (n, n), false));
            assert!(d < 1e-5, "{w}x{h} letterboxed into {n}: max abs diff {d}");
        }
    }

    #[test]
    fn nhwc_holds_the_same_values_interleaved() {
        let (w, h, stride) = (45, 31, 136);
        let data = image(w, h, stride);
        let nchw = PreprocessSettings {
            mean: MEAN,
            ..PreprocessSettings::yolo(40, 24)
        };
        let nhwc = PreprocessSettings {
            layout: TensorLayout::Nhwc,
            ..nchw.clone()
        };
        let (planar, _) = ours(&nchw, &data, w as u32, h as u32, stride);
        let (packed, _) = ours(&nhwc, &data, w as u32, h as u32, stride);
        let plane = 40 * 24;
        for i in 0..plane {
            for c in 0..3 {
                assert_eq!(
                    packed[i * 3 + c],
                    planar[c * plane + i],
                    "pixel {i} channel {c}"
                );
            }
        }
    }

    #[test]
    fn letterbox_geometry_and_inverse() {
        let lb = Letterbox::new((768, 576), (640, 640), Resize::Letterbox);
        assert_eq!((lb.width, lb.height, lb.left, lb.top), (640, 480, 0, 80));
        let b = lb.to_source([64.0, 80.0 + 48.0, 128.0, 80.0 + 96.0]);
        for (got, want) in b.iter().zip([76.8, 57.6, 153.6, 115.2]) {
            assert!((got - want).abs() < 1e-3, "{b:?}");
        }
        // Clipped to the frame.
        assert_eq!(
            lb.to_source([-10.0, 0.0, 700.0, 700.0]),
            [0.0, 0.0, 768.0, 576.0]
        );
    }

    #[test]
    fn u8_target_rounds_the_same_samples() {
        let (w, h, stride) = (41, 23, 124);
        let data = image(w, h, stride);
        let settings = PreprocessSettings::yolo(32, 32);
        let (f, _) = ours(&settings, &data, w as u32, h as u32, stride);
        let mut pre = Preprocessor::new(settings);
        let mut bytes = vec![0u8; pre.tensor_len()];
        pre.run_raw(
            &data,
            stride,
            w as u32,
            h as u32,
            gst_video::VideoFormat::Rgb,
            Target::U8(&mut bytes),
        )
        .unwrap();
        for (b, v) in bytes.iter().zip(&f) {
            assert!(
                (f32::from(*b) - v * 255.0).abs() <= 0.5 + 1e-3,
                "{b} vs {}",
                v * 255.0
            );
        }
    }
}
