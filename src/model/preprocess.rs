//! Fused preprocessing: from a frame's pixels (any row stride) into a
//! preallocated NCHW or NHWC tensor: letterbox or stretch resize, colour order,
//! normalisation `(v / 255 - mean) / std`, f32 or u8.
//!
//! The resize is bilinear without antialiasing, as OpenCV's `cv2.resize(...,
//! INTER_LINEAR)` samples an 8-bit image (what a Python loop feeds the same
//! model), run by `fast_image_resize` (SIMD: SSE4.1, AVX2) into an 8-bit
//! buffer; one more pass scatters it into the tensor through a per-channel
//! table of the normalised values. A frame already at the network size is
//! not resized. Buffers are kept and reused across frames; the resize
//! library builds its coefficient tables on each call (a few small
//! allocations per frame, nothing else). [`Letterbox`] maps network
//! coordinates back to source pixels.

use std::marker::PhantomData;

use fast_image_resize as fir;
use fast_image_resize::pixels::{InnerPixel, U8x3, U8x4};
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

/// A frame's pixel rows, `stride` bytes apart, as `fast_image_resize` reads an image.
struct Strided<'a, P> {
    data: &'a [u8],
    stride: usize,
    width: u32,
    height: u32,
    pixel: PhantomData<P>,
}

impl<P: InnerPixel + bytemuck::Pod> Strided<'_, P> {
    /// Row `y`: exactly `width` pixels.
    fn row(&self, y: u32) -> &[P] {
        let bytes = self.width as usize * size_of::<P>();
        bytemuck::cast_slice(&self.data[y as usize * self.stride..][..bytes])
    }
}

// SAFETY: `ImageView` requires every row it yields to hold at least `width`
// pixels; `row` yields exactly `width` (a checked slice of `data`, which
// `Preprocessor::run_raw` has checked holds `height` rows of `stride` bytes).
unsafe impl<P: InnerPixel + bytemuck::Pod> fir::ImageView for Strided<'_, P> {
    type Pixel = P;

    fn width(&self) -> u32 {
        self.width
    }

    fn height(&self) -> u32 {
        self.height
    }

    fn iter_rows(&self, start_row: u32) -> impl Iterator<Item = &[P]> {
        (start_row.min(self.height)..self.height).map(|y| self.row(y))
    }
}

/// Resizes `data` (`src`: width, height, row stride in bytes) of `P` pixels
/// into `resized` (`dst`: width, height; packed rows).
fn resize_pixels<P: fir::PixelTrait + InnerPixel + bytemuck::Pod>(
    resizer: &mut fir::Resizer,
    options: &fir::ResizeOptions,
    data: &[u8],
    (width, height, stride): (u32, u32, usize),
    (dst_width, dst_height): (u32, u32),
    resized: &mut [u8],
) -> Result<(), PreprocessError> {
    let src = Strided::<P> {
        data,
        stride,
        width,
        height,
        pixel: PhantomData,
    };
    let mut dst = fir::images::TypedImage::<P>::from_pixels_slice(
        dst_width,
        dst_height,
        bytemuck::cast_slice_mut(resized),
    )
    .map_err(|e| PreprocessError::Map(e.to_string()))?;
    resizer
        .resize_typed(&src, &mut dst, options)
        .map_err(|e| PreprocessError::Map(format!("resize: {e}")))
}

/// Tables for one source geometry.
struct Geometry {
    src: (u32, u32, gst_video::VideoFormat),
    letterbox: Letterbox,
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

/// Writes 8-bit pixels into the tensor through `lut[channel][value]`: three
/// planes (NCHW) or interleaved (NHWC).
struct Writer<'a, T> {
    t: &'a mut [T],
    plane: usize,
    interleaved: bool,
    lut: &'a [[T; 256]; 3],
}

impl<T: Copy> Writer<'_, T> {
    /// One row of source pixels (`bpp` bytes each, network channel `c` at
    /// byte `channel[c]`) from pixel index `start`.
    fn put_row(&mut self, start: usize, row: &[u8], bpp: usize, channel: [usize; 3]) {
        if bpp == 3 {
            self.put_pixels(start, row.as_chunks::<3>().0, channel);
        } else {
            self.put_pixels(start, row.as_chunks::<4>().0, channel);
        }
    }

    /// [`Self::put_row`] for `BPP`-byte pixels (a fixed size, so the loop has
    /// no bounds checks).
    fn put_pixels<const BPP: usize>(
        &mut self,
        start: usize,
        row: &[[u8; BPP]],
        channel: [usize; 3],
    ) {
        let n = row.len();
        let [l0, l1, l2] = self.lut;
        // Already below BPP; saying so lets the compiler drop the checks.
        let [c0, c1, c2] = channel.map(|c| c.min(BPP - 1));
        if self.interleaved {
            let (out, _) = self.t[start * 3..(start + n) * 3].as_chunks_mut::<3>();
            for (px, p) in out.iter_mut().zip(row) {
                *px = [
                    l0[usize::from(p[c0])],
                    l1[usize::from(p[c1])],
                    l2[usize::from(p[c2])],
                ];
            }
            return;
        }
        let (p0, rest) = self.t.split_at_mut(self.plane);
        let (p1, p2) = rest.split_at_mut(self.plane);
        let planes = p0[start..start + n]
            .iter_mut()
            .zip(&mut p1[start..start + n])
            .zip(&mut p2[start..start + n]);
        for (((x, y), z), p) in planes.zip(row) {
            *x = l0[usize::from(p[c0])];
            *y = l1[usize::from(p[c1])];
            *z = l2[usize::from(p[c2])];
        }
    }

    /// `count` pixels of padding value `v` (0..255) from pixel index `start`.
    fn put_pad(&mut self, start: usize, count: usize, v: u8) {
        let values = [
            self.lut[0][usize::from(v)],
            self.lut[1][usize::from(v)],
            self.lut[2][usize::from(v)],
        ];
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
    resizer: fir::Resizer,
    /// The resized image, 8-bit, source pixel format, `letterbox.width` pixels a row.
    resized: Vec<u8>,
    /// Normalised value of each 8-bit value, per network channel.
    lut_f32: [[f32; 256]; 3],
    /// 8-bit targets take the values as they are.
    lut_u8: [[u8; 256]; 3],
}

impl Preprocessor {
    /// A preprocessor for `settings`.
    pub fn new(settings: PreprocessSettings) -> Preprocessor {
        let mut lut_f32 = [[0.0f32; 256]; 3];
        for (c, table) in lut_f32.iter_mut().enumerate() {
            let gain = 1.0 / (255.0 * settings.std[c]);
            let bias = -settings.mean[c] / settings.std[c];
            for (v, out) in table.iter_mut().enumerate() {
                *out = v as f32 * gain + bias;
            }
        }
        let identity: [u8; 256] = std::array::from_fn(|v| v as u8);
        Preprocessor {
            settings,
            geometry: None,
            resizer: fir::Resizer::new(),
            resized: Vec::new(),
            lut_f32,
            lut_u8: [identity; 3],
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
            // Keeps its capacity: crops change size every time.
            self.resized.clear();
            self.resized.resize(
                letterbox.width as usize * letterbox.height as usize * bpp,
                0,
            );
            self.geometry = Some(Geometry {
                src: (width, height, format),
                letterbox,
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
        let bpp = self.geometry(width, height, format)?.bpp;
        let row_bytes = width as usize * bpp;
        let fits = height > 0
            && stride >= row_bytes
            && data.len() >= (height as usize - 1) * stride + row_bytes;
        if width == 0 || !fits {
            return Err(PreprocessError::Map(format!(
                "{} bytes with a stride of {stride} do not hold {width}x{height} pixels of {bpp} bytes",
                data.len()
            )));
        }
        self.resize(data, stride, width, height)?;
        let plane = self.settings.width as usize * self.settings.height as usize;
        let interleaved = self.settings.layout == TensorLayout::Nhwc;
        match target {
            Target::F32(t) => self.fill(
                data,
                stride,
                &mut Writer {
                    t,
                    plane,
                    interleaved,
                    lut: &self.lut_f32,
                },
            ),
            Target::U8(t) => self.fill(
                data,
                stride,
                &mut Writer {
                    t,
                    plane,
                    interleaved,
                    lut: &self.lut_u8,
                },
            ),
        }
    }

    /// Resizes the frame into `self.resized`, unless it is already the letterbox's size.
    fn resize(
        &mut self,
        data: &[u8],
        stride: usize,
        width: u32,
        height: u32,
    ) -> Result<(), PreprocessError> {
        let Some(g) = self.geometry.as_ref() else {
            return Err(PreprocessError::Format("unknown".into()));
        };
        let lb = g.letterbox;
        if (lb.width, lb.height) == (width, height) {
            return Ok(());
        }
        let options = fir::ResizeOptions::new()
            .resize_alg(fir::ResizeAlg::Interpolation(fir::FilterType::Bilinear))
            .use_alpha(false);
        let (src, dst) = ((width, height, stride), (lb.width, lb.height));
        if g.bpp == 3 {
            resize_pixels::<U8x3>(
                &mut self.resizer,
                &options,
                data,
                src,
                dst,
                &mut self.resized,
            )
        } else {
            resize_pixels::<U8x4>(
                &mut self.resizer,
                &options,
                data,
                src,
                dst,
                &mut self.resized,
            )
        }
    }

    /// Pads and writes the resized image (or the frame itself when it needs
    /// no resize) into the tensor.
    fn fill<T: Copy>(
        &self,
        data: &[u8],
        stride: usize,
        out: &mut Writer<'_, T>,
    ) -> Result<Letterbox, PreprocessError> {
        let Some(g) = self.geometry.as_ref() else {
            return Err(PreprocessError::Format("unknown".into()));
        };
        let nw = self.settings.width as usize;
        let nh = self.settings.height as usize;
        let lb = g.letterbox;
        let (left, top, rw, rh) = (
            lb.left as usize,
            lb.top as usize,
            lb.width as usize,
            lb.height as usize,
        );

        // Padding (none when stretching): whole rows above and below, then the sides.
        let pad = self.settings.pad_value;
        out.put_pad(0, top * nw, pad);
        out.put_pad((top + rh) * nw, (nh - top - rh) * nw, pad);
        for y in top..top + rh {
            out.put_pad(y * nw, left, pad);
            out.put_pad(y * nw + left + rw, nw - left - rw, pad);
        }

        let row_bytes = rw * g.bpp;
        let resized = (lb.width, lb.height) != (g.src.0, g.src.1);
        for dy in 0..rh {
            let row = if resized {
                &self.resized[dy * row_bytes..(dy + 1) * row_bytes]
            } else {
                &data[dy * stride..dy * stride + row_bytes]
            };
            out.put_row((top + dy) * nw + left, row, g.bpp, g.channel);
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

    /// The same image as an 8-bit OpenCV Mat (what `cv2.imread` gives a Python loop).
    fn u8_mat(data: &[u8], width: usize, height: usize, stride: usize) -> Mat {
        let packed: Vec<u8> = (0..height)
            .flat_map(|y| data[y * stride..y * stride + width * 3].iter().copied())
            .collect();
        let m = Mat::new_rows_cols_with_data(height as i32, (width * 3) as i32, &packed).unwrap();
        m.reshape(3, height as i32).unwrap().try_clone().unwrap()
    }

    /// One 8-bit step after scaling to 0..1: OpenCV's and fast_image_resize's
    /// fixed-point bilinear sums may round a sample to neighbouring values.
    const ONE_STEP: f32 = 1.0 / 255.0 + 1e-5;

    /// OpenCV's blob of an 8-bit image: resized to `size` (bilinear, 8-bit) when it differs.
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
    fn stretch_matches_opencv_8bit_resize_and_blob() {
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
                let src = u8_mat(&data, w, h, stride);
                let swap = color == ColorOrder::Bgr;
                let d = max_abs_diff(&mine, &blob(&src, (nw, nh), swap));
                assert!(
                    d <= ONE_STEP,
                    "{w}x{h} -> {nw}x{nh} {color:?}: max abs diff {d}"
                );
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
            let src = u8_mat(&data, w, h, stride);
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
            assert!(
                d <= ONE_STEP,
                "{w}x{h} letterboxed into {n}: max abs diff {d}"
            );
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
    fn a_frame_at_the_network_size_is_copied_exactly_from_any_format() {
        let (w, h) = (24usize, 16usize);
        let rgb = image(w, h, w * 3 + 5);
        // The same pixels as BGRx, rows padded.
        let stride4 = w * 4 + 12;
        let mut bgrx = vec![0u8; stride4 * h];
        for y in 0..h {
            for x in 0..w {
                let p = &rgb[y * (w * 3 + 5) + x * 3..][..3];
                bgrx[y * stride4 + x * 4..][..4].copy_from_slice(&[p[2], p[1], p[0], 0]);
            }
        }
        let settings = PreprocessSettings {
            resize: Resize::Stretch,
            ..PreprocessSettings::yolo(w as u32, h as u32)
        };
        let mut pre = Preprocessor::new(settings);
        let (mut a, mut b) = (vec![0.0; pre.tensor_len()], vec![0.0; pre.tensor_len()]);
        let fmt = gst_video::VideoFormat::Rgb;
        pre.run_raw(
            &rgb,
            w * 3 + 5,
            w as u32,
            h as u32,
            fmt,
            Target::F32(&mut a),
        )
        .unwrap();
        let fmt = gst_video::VideoFormat::Bgrx;
        pre.run_raw(&bgrx, stride4, w as u32, h as u32, fmt, Target::F32(&mut b))
            .unwrap();
        assert_eq!(a, b);
        let plane = w * h;
        for (i, v) in a.iter().enumerate() {
            let (c, px) = (i / plane, i % plane);
            let want = f32::from(rgb[(px / w) * (w * 3 + 5) + (px % w) * 3 + c]) / 255.0;
            assert!((v - want).abs() < 1e-6, "value {i}: {v} vs {want}");
        }
        // Downscaled from RGBx it equals downscaled from RGB.
        let settings = PreprocessSettings::yolo(16, 16);
        let mut rgb_pre = Preprocessor::new(settings.clone());
        let mut bgrx_pre = Preprocessor::new(settings);
        let (mut a, mut b) = (vec![0.0; 768], vec![0.0; 768]);
        rgb_pre
            .run_raw(
                &rgb,
                w * 3 + 5,
                w as u32,
                h as u32,
                gst_video::VideoFormat::Rgb,
                Target::F32(&mut a),
            )
            .unwrap();
        bgrx_pre
            .run_raw(
                &bgrx,
                stride4,
                w as u32,
                h as u32,
                gst_video::VideoFormat::Bgrx,
                Target::F32(&mut b),
            )
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn short_pixel_data_is_an_error_not_a_panic() {
        let mut pre = Preprocessor::new(PreprocessSettings::yolo(32, 32));
        let mut out = vec![0.0; pre.tensor_len()];
        let data = vec![0u8; 100 * 3 * 10];
        let mut refusal = |stride: usize, height: u32| {
            let rgb = gst_video::VideoFormat::Rgb;
            pre.run_raw(&data, stride, 100, height, rgb, Target::F32(&mut out))
                .unwrap_err()
                .to_string()
        };
        // Too few rows for the height, then a stride shorter than a row.
        let err = refusal(300, 20);
        assert!(err.contains("do not hold 100x20"), "{err}");
        let err = refusal(200, 10);
        assert!(err.contains("stride of 200"), "{err}");
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
