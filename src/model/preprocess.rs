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
    Rgb,
    Bgr,
}

/// Plain preprocessing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessSettings {
    pub width: u32,
    pub height: u32,
    pub resize: Resize,
    pub pad_value: u8,
    /// Subtracted after scaling to 0..1, per network channel.
    pub mean: [f32; 3],
    /// Divides after the mean, per network channel.
    pub std: [f32; 3],
    pub color: ColorOrder,
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
        }
    }
}

/// Where the source image lies inside the network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Source pixels per network pixel, per axis.
    pub scale_x: f64,
    pub scale_y: f64,
    /// Offset of the image in the network input, network pixels.
    pub left: u32,
    pub top: u32,
    /// Size of the resized image inside the network input.
    pub width: u32,
    pub height: u32,
    /// Source size, for clipping.
    pub src_width: u32,
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
    Format(String),
    #[error("cannot map the frame: {0}")]
    Map(String),
    #[error("output buffer has {got} values, the input tensor needs {need}")]
    Size { got: usize, need: usize },
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
fn taps(src: u32, dst: u32) -> Vec<Tap> {
    let scale = 1.0 / (f64::from(dst) / f64::from(src));
    (0..dst)
        .map(|d| {
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
        })
        .collect()
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
    F32(&'a mut [f32]),
    U8(&'a mut [u8]),
}

/// Writes one value (0..255 scale) of network channel `c` at plane index `i`.
trait Put {
    fn put(&mut self, c: usize, i: usize, v: f32);
}

struct PutF32<'a> {
    t: &'a mut [f32],
    plane: usize,
    gain: [f32; 3],
    bias: [f32; 3],
}

impl Put for PutF32<'_> {
    #[inline(always)]
    fn put(&mut self, c: usize, i: usize, v: f32) {
        self.t[c * self.plane + i] = v * self.gain[c] + self.bias[c];
    }
}

struct PutU8<'a> {
    t: &'a mut [u8],
    plane: usize,
}

impl Put for PutU8<'_> {
    #[inline(always)]
    fn put(&mut self, c: usize, i: usize, v: f32) {
        self.t[c * self.plane + i] = v.round().clamp(0.0, 255.0) as u8;
    }
}

/// The fused preprocessing pass, built once per stage.
pub struct Preprocessor {
    settings: PreprocessSettings,
    geometry: Option<Geometry>,
    /// Two horizontally resampled source rows (interleaved channels), and which rows they hold.
    rows: [Vec<f32>; 2],
    row_of: [usize; 2],
}

impl Preprocessor {
    pub fn new(settings: PreprocessSettings) -> Preprocessor {
        Preprocessor {
            settings,
            geometry: None,
            rows: [Vec::new(), Vec::new()],
            row_of: [usize::MAX; 2],
        }
    }

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
            let x = taps(width, letterbox.width);
            let y = taps(height, letterbox.height);
            self.rows = [
                vec![0.0; letterbox.width as usize * 3],
                vec![0.0; letterbox.width as usize * 3],
            ];
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
        match target {
            Target::F32(t) => {
                let s = &self.settings;
                let mut gain = [0.0f32; 3];
                let mut bias = [0.0f32; 3];
                for c in 0..3 {
                    gain[c] = 1.0 / (255.0 * s.std[c]);
                    bias[c] = -s.mean[c] / s.std[c];
                }
                self.fill(
                    data,
                    stride,
                    width,
                    &mut PutF32 {
                        t,
                        plane,
                        gain,
                        bias,
                    },
                )
            }
            Target::U8(t) => self.fill(data, stride, width, &mut PutU8 { t, plane }),
        }
    }

    fn fill<P: Put>(
        &mut self,
        data: &[u8],
        stride: usize,
        width: u32,
        out: &mut P,
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

        // Padding (none when stretching).
        let pad = f32::from(settings.pad_value);
        for y in 0..nh {
            let band = y < top || y >= top + rh;
            for x in (0..nw).filter(|&x| band || x < left || x >= left + rw) {
                for c in 0..3 {
                    out.put(c, y * nw + x, pad);
                }
            }
        }

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
                let line = &data[src_row * stride..src_row * stride + width as usize * g.bpp];
                let row = &mut rows[slot];
                for (dx, tx) in g.x.iter().enumerate() {
                    let p0 = &line[tx.i0 * g.bpp..tx.i0 * g.bpp + g.bpp];
                    let p1 = &line[tx.i1 * g.bpp..tx.i1 * g.bpp + g.bpp];
                    for c in 0..3 {
                        let ch = g.channel[c];
                        row[dx * 3 + c] = f32::from(p0[ch]) * tx.w0 + f32::from(p1[ch]) * tx.w1;
                    }
                }
                row_of[slot] = src_row;
            }
            let (r0, r1) = (&rows[0], &rows[1]);
            let base = (top + dy) * nw + left;
            for dx in 0..rw {
                for c in 0..3 {
                    out.put(
                        c,
                        base + dx,
                        r0[dx * 3 + c] * ty.w0 + r1[dx * 3 + c] * ty.w1,
                    );
                }
            }
        }
        Ok(lb)
    }
}
