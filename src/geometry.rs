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
