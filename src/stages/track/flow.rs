//! Pixel motion of each track's box from one frame to the next: sparse
//! pyramidal Lucas-Kanade optical flow (Bouguet, "Pyramidal implementation of
//! the Lucas Kanade feature tracker", 2000; OpenCV's `calcOpticalFlowPyrLK`)
//! on a grid of points inside the box. A point counts when it is tracked
//! forward and back to within [`MAX_FB_ERROR_PX`] of where it started (the
//! forward-backward check of Kalal et al., "Forward-Backward Error: Automatic
//! Detection of Tracking Failures", ICPR 2010); the box's shift is the median
//! of the counted points' motion, and a box with fewer than
//! [`MIN_POINTS`] counted points has no shift (the tracker then moves it by
//! its velocity).
//!
//! Between two detections this measures where each object went from the
//! pixels, where a constant-velocity prediction can only extrapolate: it is
//! what keeps boxes on people when detection runs on one frame in three, or
//! its results arrive three frames late.

use opencv::core::{
    BORDER_CONSTANT, BORDER_REFLECT_101, Mat, Point2f, Size, TermCriteria, TermCriteria_Type,
    Vector,
};
use opencv::prelude::*;

use crate::cvmat;
use crate::frame::Frame;

/// Points per box side (a 5 x 5 grid).
pub const GRID: usize = 5;
/// Forward-backward error above which a point is not counted, px of the
/// half-size image (2 px of the frame). A walker's points deform from frame
/// to frame (limbs, clothing) and come back less exactly than the static
/// background's, so a tight check leaves mostly background in the median and
/// under-moves the box: on vtest's replay (`benches/track_replay.rs`, lags 2
/// to 5) 1 px scored higher per-frame MOTA than 0.5 px under every schedule
/// (`docs/realtime.md`).
pub const MAX_FB_ERROR_PX: f32 = 1.0;
/// Counted points a box needs for a shift.
pub const MIN_POINTS: usize = 6;
/// Lucas-Kanade window side, px of the half-size image.
const WINDOW_PX: i32 = 11;
/// Pyramid levels above the half-size image.
const LEVELS: i32 = 2;
/// Flow runs on the frame at half size (a quarter of the pixels); shifts are
/// scaled back. Half-pixel precision is plenty against detector jitter.
const SCALE: f32 = 0.5;

/// Frames kept in gray, to bring a track born from a late detection from
/// its detection's frame up to now (16 frames: a third of a second at 50 fps).
pub const FRAMES_KEPT: usize = 16;

/// The point buffers of one Lucas-Kanade pass, reused.
struct Points {
    from: Vector<Point2f>,
    to: Vector<Point2f>,
    back: Vector<Point2f>,
    status: Vector<u8>,
    status_back: Vector<u8>,
    err: Vector<f32>,
    /// Which box each point belongs to.
    owner: Vec<usize>,
    dx: Vec<f32>,
    dy: Vec<f32>,
}

/// The recent frames (gray, half size, as Lucas-Kanade image pyramids with
/// derivatives, built once per frame) and the buffers of one stream's flow,
/// reused from frame to frame (no allocation once the sizes settle).
pub struct BoxFlow {
    gray: Mat,
    /// A ring of half-size gray frames; `head` is the newest. The pyramids
    /// below reuse them as their first level.
    small: Vec<Mat>,
    pyramids: Vec<Vector<Mat>>,
    times_s: [f64; FRAMES_KEPT],
    head: usize,
    count: usize,
    points: Points,
    one: [[f32; 4]; 1],
    one_shift: Vec<Option<[f32; 2]>>,
    scaled: Vec<[f32; 4]>,
}

impl Default for BoxFlow {
    fn default() -> Self {
        BoxFlow::new()
    }
}

impl BoxFlow {
    /// No frame yet.
    pub fn new() -> BoxFlow {
        BoxFlow {
            gray: Mat::default(),
            small: (0..FRAMES_KEPT).map(|_| Mat::default()).collect(),
            pyramids: (0..FRAMES_KEPT).map(|_| Vector::new()).collect(),
            times_s: [f64::NEG_INFINITY; FRAMES_KEPT],
            head: 0,
            count: 0,
            points: Points {
                from: Vector::new(),
                to: Vector::new(),
                back: Vector::new(),
                status: Vector::new(),
                status_back: Vector::new(),
                err: Vector::new(),
                owner: Vec::new(),
                dx: Vec::new(),
                dy: Vec::new(),
            },
            one: [[0.0; 4]],
            one_shift: Vec::new(),
            scaled: Vec::new(),
        }
    }

    /// Takes the next frame, at `t_s`: writes into `shifts` each box's shift
    /// `[dx, dy]` (px, from the previous frame to this one), `None` where the
    /// pixels do not say (no previous frame, a box off the image or too
    /// small, too few counted points). `boxes` are `[x1, y1, x2, y2]` in this
    /// stream's pixels, where the objects were on the previous frame.
    ///
    /// # Errors
    /// A frame format OpenCV cannot turn into gray, or an OpenCV failure.
    pub fn step(
        &mut self,
        frame: &Frame,
        t_s: f64,
        boxes: &[[f32; 4]],
        shifts: &mut Vec<Option<[f32; 2]>>,
    ) -> Result<(), String> {
        let mut gray = std::mem::take(&mut self.gray);
        let converted = cvmat::with_frame_mat(frame, |image, format| {
            match cvmat::to_gray_code(format) {
                Some(code) => opencv::imgproc::cvt_color(image, &mut gray, code, 0),
                None => image.copy_to(&mut gray),
            }
            .map_err(|e| e.to_string())
        });
        let result = converted.and_then(|()| self.step_gray(&gray, t_s, boxes, shifts));
        self.gray = gray;
        result
    }

    /// [`BoxFlow::step`] with the frame already in gray (8-bit, one
    /// channel, full size): what `benches/track_replay.rs` feeds it from a
    /// raw gray recording.
    ///
    /// # Errors
    /// An OpenCV failure.
    pub fn step_gray(
        &mut self,
        gray: &Mat,
        t_s: f64,
        boxes: &[[f32; 4]],
        shifts: &mut Vec<Option<[f32; 2]>>,
    ) -> Result<(), String> {
        let prev = self.head;
        self.head = (self.head + 1) % FRAMES_KEPT;
        let cv = |e: opencv::Error| e.to_string();
        let small = &mut self.small[self.head];
        opencv::imgproc::resize(
            gray,
            small,
            Size::default(),
            f64::from(SCALE),
            f64::from(SCALE),
            opencv::imgproc::INTER_AREA,
        )
        .map_err(cv)?;
        opencv::video::build_optical_flow_pyramid(
            &self.small[self.head],
            &mut self.pyramids[self.head],
            Size::new(WINDOW_PX, WINDOW_PX),
            LEVELS,
            true,
            BORDER_REFLECT_101,
            BORDER_CONSTANT,
            true,
        )
        .map_err(cv)?;
        self.times_s[self.head] = t_s;
        let same_size = self.count > 0
            && self.small[prev].size().ok() == self.small[self.head].size().ok();
        self.count = if same_size {
            (self.count + 1).min(FRAMES_KEPT)
        } else {
            1
        };
        shifts.clear();
        shifts.resize(boxes.len(), None);
        if self.count < 2 {
            return Ok(());
        }
        self.scaled.clear();
        self.scaled
            .extend(boxes.iter().map(|b| b.map(|v| v * SCALE)));
        let size = (self.small[self.head].cols(), self.small[self.head].rows());
        lk_shifts(
            &self.pyramids[prev],
            &self.pyramids[self.head],
            size,
            &self.scaled,
            &mut self.points,
            shifts,
        )?;
        for s in shifts.iter_mut().flatten() {
            *s = s.map(|v| v / SCALE);
        }
        Ok(())
    }

    /// Follows `bbox` through the kept frames from the one at `from_s` (a
    /// late detection's frame) to the newest: writes (frame time, total
    /// shift since `from_s`) for each later frame into `path`, which stays
    /// empty when that frame is no longer kept. Where the pixels lose the
    /// box, its last shift is carried on. Returns on how many of those
    /// frames the pixels measured the shift.
    ///
    /// # Errors
    /// An OpenCV failure.
    pub fn follow(
        &mut self,
        from_s: f64,
        bbox: [f32; 4],
        path: &mut Vec<(f64, [f32; 2])>,
    ) -> Result<usize, String> {
        path.clear();
        let Some(back) = (0..self.count).find(|&k| {
            let i = (self.head + FRAMES_KEPT - k) % FRAMES_KEPT;
            (self.times_s[i] - from_s).abs() < 1e-6
        }) else {
            return Ok(0);
        };
        let mut measured = 0;
        let mut cum = [0.0f32; 2];
        let mut step = [0.0f32; 2];
        for k in (0..back).rev() {
            let (i0, i1) = (
                (self.head + FRAMES_KEPT - k - 1) % FRAMES_KEPT,
                (self.head + FRAMES_KEPT - k) % FRAMES_KEPT,
            );
            self.one[0] = [
                bbox[0] + cum[0],
                bbox[1] + cum[1],
                bbox[2] + cum[0],
                bbox[3] + cum[1],
            ]
            .map(|v| v * SCALE);
            let size = (self.small[i1].cols(), self.small[i1].rows());
            lk_shifts(
                &self.pyramids[i0],
                &self.pyramids[i1],
                size,
                &self.one,
                &mut self.points,
                &mut self.one_shift,
            )?;
            if let Some(Some(s)) = self.one_shift.first() {
                step = s.map(|v| v / SCALE);
                measured += 1;
            }
            cum = [cum[0] + step[0], cum[1] + step[1]];
            path.push((self.times_s[i1], cum));
        }
        Ok(measured)
    }
}

/// Each box's median shift from `prev` to `cur` (pyramids of one size,
/// `(width, height)` px at their first level; boxes and shifts in those
/// pixels; see the module docs).
fn lk_shifts(
    prev: &Vector<Mat>,
    cur: &Vector<Mat>,
    (width, height): (i32, i32),
    boxes: &[[f32; 4]],
    p: &mut Points,
    shifts: &mut Vec<Option<[f32; 2]>>,
) -> Result<(), String> {
    shifts.clear();
    shifts.resize(boxes.len(), None);
    let (w, h) = (width as f32, height as f32);
    p.from.clear();
    p.owner.clear();
    for (i, b) in boxes.iter().enumerate() {
        let (x1, y1) = (b[0].max(0.0), b[1].max(0.0));
        let (x2, y2) = (b[2].min(w - 1.0), b[3].min(h - 1.0));
        if x2 - x1 < 4.0 || y2 - y1 < 4.0 {
            continue;
        }
        // The grid covers the box's middle 80 %, away from its edges
        // (where the background shows).
        for gy in 0..GRID {
            for gx in 0..GRID {
                let fx = 0.1 + 0.8 * (gx as f32 + 0.5) / GRID as f32;
                let fy = 0.1 + 0.8 * (gy as f32 + 0.5) / GRID as f32;
                p.from
                    .push(Point2f::new(x1 + fx * (x2 - x1), y1 + fy * (y2 - y1)));
                p.owner.push(i);
            }
        }
    }
    if p.from.is_empty() {
        return Ok(());
    }
    let criteria = TermCriteria::new(
        TermCriteria_Type::COUNT as i32 + TermCriteria_Type::EPS as i32,
        20,
        0.03,
    )
    .map_err(|e| e.to_string())?;
    let window = Size::new(WINDOW_PX, WINDOW_PX);
    opencv::video::calc_optical_flow_pyr_lk(
        prev, cur, &p.from, &mut p.to, &mut p.status, &mut p.err, window, LEVELS, criteria, 0,
        1e-4,
    )
    .map_err(|e| e.to_string())?;
    opencv::video::calc_optical_flow_pyr_lk(
        cur,
        prev,
        &p.to,
        &mut p.back,
        &mut p.status_back,
        &mut p.err,
        window,
        LEVELS,
        criteria,
        0,
        1e-4,
    )
    .map_err(|e| e.to_string())?;
    let mut start = 0;
    while start < p.owner.len() {
        let i = p.owner[start];
        let end = start + p.owner[start..].iter().take_while(|&&o| o == i).count();
        p.dx.clear();
        p.dy.clear();
        for k in start..end {
            let ok = p.status.get(k).unwrap_or(0) != 0 && p.status_back.get(k).unwrap_or(0) != 0;
            let (Ok(p0), Ok(p1), Ok(pb)) = (p.from.get(k), p.to.get(k), p.back.get(k)) else {
                continue;
            };
            let fb = ((pb.x - p0.x).powi(2) + (pb.y - p0.y).powi(2)).sqrt();
            if ok && fb <= MAX_FB_ERROR_PX {
                p.dx.push(p1.x - p0.x);
                p.dy.push(p1.y - p0.y);
            }
        }
        if p.dx.len() >= MIN_POINTS {
            shifts[i] = Some([median(&mut p.dx), median(&mut p.dy)]);
        }
        start = end;
    }
    Ok(())
}

/// The median of `v` (reordered in place); `v` is not empty.
fn median(v: &mut [f32]) -> f32 {
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    use gstreamer_video as gst_video;

    use super::*;

    const W: usize = 320;
    const H: usize = 240;

    /// A flat gray image with a 64x64 textured square whose top-left corner
    /// is at (`x`, `y`) px (fractional: the texture is a smooth function of
    /// the position inside the square).
    fn frame(x: f32, y: f32, seq: u64) -> Frame {
        let mut px = vec![90u8; W * H];
        for r in 0..H {
            for c in 0..W {
                let (u, v) = (c as f32 - x, r as f32 - y);
                if (0.0..64.0).contains(&u) && (0.0..64.0).contains(&v) {
                    let t = 128.0
                        + 45.0 * (0.35 * u).sin()
                        + 45.0 * (0.3 * v).cos()
                        + 30.0 * (0.2 * (u + v)).sin();
                    px[r * W + c] = t.clamp(0.0, 255.0) as u8;
                }
            }
        }
        gstreamer::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, W as u32, H as u32)
            .build()
            .unwrap();
        crate::frame::test_frame(info, px, seq)
    }

    #[test]
    fn a_textured_box_shift_is_measured_and_a_blank_one_is_not() {
        let mut flow = BoxFlow::new();
        let mut shifts = Vec::new();
        let square = [100.0, 80.0, 164.0, 144.0];
        let blank = [10.0, 10.0, 60.0, 60.0];
        flow.step(&frame(100.0, 80.0, 0), 0.0, &[square, blank], &mut shifts)
            .unwrap();
        assert_eq!(shifts, vec![None, None], "no previous frame");
        flow.step(&frame(104.0, 77.0, 1), 0.1, &[square, blank], &mut shifts)
            .unwrap();
        let s = shifts[0].expect("the square's shift");
        assert!((s[0] - 4.0).abs() < 0.5 && (s[1] + 3.0).abs() < 0.5, "{s:?}");
        assert_eq!(shifts[1], None, "a flat region has no flow");
    }

    #[test]
    fn follow_brings_a_box_from_an_earlier_frame_to_now() {
        // The square moves 3 px right and 1 px down a frame; a detection made
        // on frame 2 is followed through frames 3..6.
        let mut flow = BoxFlow::new();
        let mut shifts = Vec::new();
        for k in 0..7 {
            let f = frame(60.0 + 3.0 * k as f32, 50.0 + k as f32, k);
            flow.step(&f, 0.1 * k as f64, &[], &mut shifts).unwrap();
        }
        let mut path = Vec::new();
        let at2 = [66.0, 52.0, 130.0, 116.0];
        assert_eq!(flow.follow(0.2, at2, &mut path).unwrap(), 4, "measured on every frame");
        assert_eq!(path.len(), 4, "{path:?}");
        let (t, cum) = path[3];
        assert!((t - 0.6).abs() < 1e-9);
        assert!((cum[0] - 12.0).abs() < 1.0 && (cum[1] - 4.0).abs() < 1.0, "{path:?}");
        // A frame no longer kept: no path.
        assert_eq!(flow.follow(-5.0, at2, &mut path).unwrap(), 0);
        assert!(path.is_empty());
    }
}
