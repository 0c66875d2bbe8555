//! Box and camera geometry shared by stages and tools (IoU, a box's 3D
//! position from depth samples). A leaf: it imports nothing of percept.

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// An `[x1, y1, x2, y2]` box moved by `by` = `[dx, dy]` pixels.
pub fn moved(bbox: [f32; 4], by: [f32; 2]) -> [f32; 4] {
    [
        bbox[0] + by[0],
        bbox[1] + by[1],
        bbox[2] + by[0],
        bbox[3] + by[1],
    ]
}

/// An `[x1, y1, x2, y2]` box moved by `velocity_px_s` for `dt_s` seconds
/// (constant velocity; `dt_s` may be negative).
pub fn moved_for(bbox: [f32; 4], velocity_px_s: [f32; 2], dt_s: f32) -> [f32; 4] {
    moved(bbox, [velocity_px_s[0] * dt_s, velocity_px_s[1] * dt_s])
}

/// Clips an `[x1, y1, x2, y2]` box to a `width` x `height` image (px), in
/// place, and says whether at least `min_inside` (0..=1) of its area was
/// inside. A box with nothing inside (none, or no area) never is.
pub fn clip_to_image(bbox: &mut [f32; 4], width: f32, height: f32, min_inside: f32) -> bool {
    let area = (bbox[2] - bbox[0]).max(0.0) * (bbox[3] - bbox[1]).max(0.0);
    *bbox = [
        bbox[0].clamp(0.0, width),
        bbox[1].clamp(0.0, height),
        bbox[2].clamp(0.0, width),
        bbox[3].clamp(0.0, height),
    ];
    let inside = (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]);
    inside > 0.0 && inside >= min_inside * area
}

/// The median of `samples` as depth at pixel `centre` of a pinhole camera
/// `(f, cx, cy)`: `[x, y, z]` metres. `None` when fewer than 5 samples.
pub fn median_position(
    samples: &mut [f32],
    centre: (f32, f32),
    camera: (f32, f32, f32),
) -> Option<[f32; 3]> {
    if samples.len() < 5 {
        return None;
    }
    let mid = samples.len() / 2;
    let (_, z, _) = samples.select_nth_unstable_by(mid, f32::total_cmp);
    let z = *z;
    let (f, cx, cy) = camera;
    Some([(centre.0 - cx) * z / f, (centre.1 - cy) * z / f, z])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_moves_by_its_velocity_for_the_time_given_both_ways() {
        let b = [10.0, 20.0, 50.0, 80.0];
        assert_eq!(moved(b, [3.0, -4.0]), [13.0, 16.0, 53.0, 76.0]);
        // 100 px/s right, 50 px/s down, for 0.2 s: 20 px and 10 px.
        assert_eq!(moved_for(b, [100.0, 50.0], 0.2), [30.0, 30.0, 70.0, 90.0]);
        // Backwards in time moves it back; the size never changes.
        let back = moved_for(b, [100.0, 50.0], -0.1);
        assert_eq!(back, [0.0, 15.0, 40.0, 75.0]);
        assert_eq!(back[2] - back[0], b[2] - b[0]);
    }

    #[test]
    fn boxes_are_clipped_to_the_image_and_kept_while_enough_is_inside() {
        // Inside: unchanged.
        let mut b = [10.0, 20.0, 50.0, 80.0];
        assert!(clip_to_image(&mut b, 100.0, 100.0, 0.5));
        assert_eq!(b, [10.0, 20.0, 50.0, 80.0]);
        // 60 % past the right edge: clipped to 40 % of its area.
        let mut b = [80.0, 0.0, 130.0, 10.0];
        assert!(!clip_to_image(&mut b, 100.0, 100.0, 0.5));
        assert_eq!(b, [80.0, 0.0, 100.0, 10.0]);
        let mut b = [80.0, 0.0, 130.0, 10.0];
        assert!(clip_to_image(&mut b, 100.0, 100.0, 0.35));
        // Above and left of the image, a quarter inside.
        let mut b = [-10.0, -10.0, 10.0, 10.0];
        assert!(!clip_to_image(&mut b, 100.0, 100.0, 0.5));
        assert_eq!(b, [0.0, 0.0, 10.0, 10.0]);
        // Wholly outside, or no area: never inside.
        let mut b = [200.0, 0.0, 230.0, 10.0];
        assert!(!clip_to_image(&mut b, 100.0, 100.0, 0.0));
        let mut b = [5.0, 5.0, 5.0, 9.0];
        assert!(!clip_to_image(&mut b, 100.0, 100.0, 0.0));
    }
}
