//! Constant-velocity Kalman filter on a box's centre, aspect ratio and height
//! (ByteTrack / DeepSORT state), with time in seconds so skipped frames and
//! other frame rates keep the same meaning.
//!
//! State `x = [cx, cy, a, h, vcx, vcy, va, vh]` (pixels, pixels/s; `a = w / h`).
//! Noise scales with the box height, as in DeepSORT, and accrues with time in
//! seconds, not frames (variance linear in the prediction time, referred to
//! 0.1 s): position std `h / 20` and velocity std `3 h / 16` px/s per 0.1 s
//! of prediction. The velocity noise is three times ByteTrack's 1/160 per
//! 10 Hz frame: `benches/track_replay.rs` on vtest (10 and 30 fps) scores
//! sparse and late detection best between 3x and 10x, and 3x holds at both
//! rates (async every 3rd frame, per-frame MOTA: 0.28 → 0.41 at 30 fps, 0.50
//! → 0.54 at 10 fps).

use nalgebra::{SMatrix, SVector};

type Vec8 = SVector<f32, 8>;
type Mat8 = SMatrix<f32, 8, 8>;
type Vec4 = SVector<f32, 4>;
type Mat4 = SMatrix<f32, 4, 4>;
type Mat48 = SMatrix<f32, 4, 8>;

const STD_POSITION: f32 = 1.0 / 20.0;
/// Velocity process noise, px/s relative to height per 0.1 s (three times
/// ByteTrack's 1/160 per frame at 10 Hz).
const STD_VELOCITY: f32 = 30.0 / 160.0;
/// A new track's velocity std, px/s relative to height: a prior for walking
/// speed, so one frame difference moves the estimate only part way.
const STD_VELOCITY_BIRTH: f32 = 100.0 / 160.0;
/// Prediction noise accrues in units of this many seconds (one frame at 10 Hz).
const REFERENCE_S: f32 = 0.1;

/// The filter of one track.
#[derive(Debug, Clone)]
pub struct Kalman {
    /// State: box centre, aspect, height and their velocities.
    pub x: Vec8,
    /// State covariance.
    pub p: Mat8,
}

/// `[x1, y1, x2, y2]` to `[cx, cy, a, h]`.
pub fn measurement(b: &[f32; 4]) -> Vec4 {
    let w = (b[2] - b[0]).max(1e-3);
    let h = (b[3] - b[1]).max(1e-3);
    Vec4::new(b[0] + w / 2.0, b[1] + h / 2.0, w / h, h)
}

impl Kalman {
    /// Starts a filter at a measured box, velocity unknown.
    pub fn new(bbox: &[f32; 4]) -> Kalman {
        let z = measurement(bbox);
        let h = z[3];
        let mut x = Vec8::zeros();
        x.fixed_rows_mut::<4>(0).copy_from(&z);
        let sp = 2.0 * STD_POSITION * h;
        let sv = STD_VELOCITY_BIRTH * h;
        let std = [sp, sp, 1e-2, sp, sv, sv, 1e-5 / REFERENCE_S, sv];
        let p = Mat8::from_diagonal(&Vec8::from_iterator(std.iter().map(|s| s * s)));
        Kalman { x, p }
    }

    /// Predicts `dt_s` seconds ahead.
    pub fn predict(&mut self, dt_s: f32) {
        if dt_s <= 0.0 {
            return;
        }
        let mut f = Mat8::identity();
        for i in 0..4 {
            f[(i, i + 4)] = dt_s;
        }
        let h = self.x[3].max(1.0);
        let (sp, sv) = (STD_POSITION * h, STD_VELOCITY * h);
        let std = [sp, sp, 1e-2, sp, sv, sv, 1e-5 / REFERENCE_S, sv];
        let scale = dt_s / REFERENCE_S;
        let q = Mat8::from_diagonal(&Vec8::from_iterator(std.iter().map(|s| s * s * scale)));
        self.x = f * self.x;
        self.p = f * self.p * f.transpose() + q;
    }

    /// Moves the mean `dt_s` seconds along the velocity, covariance unchanged
    /// (for a look back in time, where adding process noise would be wrong).
    pub fn shift(&mut self, dt_s: f32) {
        for i in 0..4 {
            self.x[i] += self.x[i + 4] * dt_s;
        }
    }

    /// The box `[x1, y1, x2, y2]` predicted `dt_s` seconds ahead (the mean
    /// only; the filter is unchanged).
    pub fn predicted_bbox(&self, dt_s: f32) -> [f32; 4] {
        let mut k = Kalman {
            x: self.x,
            p: Mat8::zeros(),
        };
        k.shift(dt_s);
        k.bbox()
    }

    fn projection() -> Mat48 {
        Mat48::from_fn(|r, c| if r == c { 1.0 } else { 0.0 })
    }

    fn innovation_cov(&self) -> Mat4 {
        let h = self.x[3].max(1.0);
        let sp = STD_POSITION * h;
        let r = Mat4::from_diagonal(&Vec4::new(sp * sp, sp * sp, 1e-2, sp * sp));
        let hm = Self::projection();
        hm * self.p * hm.transpose() + r
    }

    /// Corrects with a measured box.
    pub fn update(&mut self, bbox: &[f32; 4]) {
        let z = measurement(bbox);
        let hm = Self::projection();
        let s = self.innovation_cov();
        let Some(s_inv) = s.try_inverse() else {
            return;
        };
        let k = self.p * hm.transpose() * s_inv;
        let y = z - hm * self.x;
        self.x += k * y;
        self.p = (Mat8::identity() - k * hm) * self.p;
    }

    /// Squared Mahalanobis distance of a measured box from the prediction.
    pub fn mahalanobis_sq(&self, bbox: &[f32; 4]) -> f32 {
        let y = measurement(bbox) - Self::projection() * self.x;
        self.innovation_cov()
            .try_inverse()
            .map_or(f32::INFINITY, |s| (y.transpose() * s * y)[0])
    }

    /// The current box `[x1, y1, x2, y2]`.
    pub fn bbox(&self) -> [f32; 4] {
        let (cx, cy, a, h) = (self.x[0], self.x[1], self.x[2], self.x[3].max(0.0));
        let w = (a * h).max(0.0);
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    }

    /// Centre velocity, pixels per second.
    pub fn velocity(&self) -> [f32; 2] {
        [self.x[4], self.x[5]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_constant_velocity_in_pixels_per_second() {
        // 30 px/s to the right, observed at 10 Hz.
        let at = |t: f32| [100.0 + 30.0 * t, 50.0, 120.0 + 30.0 * t, 90.0];
        let mut k = Kalman::new(&at(0.0));
        for i in 1..=20 {
            k.predict(0.1);
            k.update(&at(i as f32 * 0.1));
        }
        assert!((k.velocity()[0] - 30.0).abs() < 1.0, "{:?}", k.velocity());
        assert!(k.velocity()[1].abs() < 1.0);
        // Skipping detection for half a second: the prediction follows the motion.
        k.predict(0.5);
        let b = k.bbox();
        let want = at(2.5);
        for i in 0..4 {
            assert!((b[i] - want[i]).abs() < 1.5, "{b:?} vs {want:?}");
        }
    }

    #[test]
    fn same_motion_same_result_at_any_frame_rate() {
        let at = |t: f32| [10.0 + 40.0 * t, 10.0, 30.0 + 40.0 * t, 50.0];
        let run = |hz: f32| {
            let mut k = Kalman::new(&at(0.0));
            let n = (2.0 * hz) as usize;
            for i in 1..=n {
                k.predict(1.0 / hz);
                k.update(&at(i as f32 / hz));
            }
            k.velocity()[0]
        };
        assert!((run(10.0) - 40.0).abs() < 1.5 && (run(30.0) - 40.0).abs() < 1.5);
    }

    #[test]
    fn mahalanobis_grows_with_distance() {
        let k = Kalman::new(&[0.0, 0.0, 20.0, 40.0]);
        assert!(k.mahalanobis_sq(&[0.0, 0.0, 20.0, 40.0]) < 1e-3);
        assert!(
            k.mahalanobis_sq(&[30.0, 0.0, 50.0, 40.0]) > k.mahalanobis_sq(&[5.0, 0.0, 25.0, 40.0])
        );
    }
}
