//! Class-aware greedy non-maximum suppression.

/// A box before NMS: `[x1, y1, x2, y2]` (network pixels), score, class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Confidence.
    pub score: f32,
    /// Class index.
    pub class_id: u32,
}

pub use crate::geometry::iou;

/// Keeps the best box of each overlapping group of the same class, at most
/// `max` boxes, best first. Sorts `candidates` in place; writes into `kept`
/// (cleared first). Allocates nothing when `kept` has room for `max`.
pub fn nms(
    candidates: &mut [Candidate],
    iou_threshold: f32,
    max: usize,
    kept: &mut Vec<Candidate>,
) {
    kept.clear();
    candidates.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    for c in candidates.iter() {
        if kept.len() >= max {
            break;
        }
        if kept
            .iter()
            .all(|k| k.class_id != c.class_id || iou(&k.bbox, &c.bbox) <= iou_threshold)
        {
            kept.push(*c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f32, score: f32, class_id: u32) -> Candidate {
        Candidate {
            bbox: [x, 0.0, x + 10.0, 10.0],
            score,
            class_id,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[10.0, 0.0, 20.0, 10.0]), 0.0);
        assert!(
            (iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 50.0 / 150.0).abs() < 1e-6
        );
    }

    #[test]
    fn suppresses_overlaps_within_a_class_only() {
        let mut cands = vec![
            c(1.0, 0.6, 0),
            c(0.0, 0.9, 0),
            c(0.5, 0.8, 1),
            c(30.0, 0.7, 0),
        ];
        let mut kept = Vec::new();
        nms(&mut cands, 0.5, 10, &mut kept);
        assert_eq!(kept, vec![c(0.0, 0.9, 0), c(0.5, 0.8, 1), c(30.0, 0.7, 0)]);
        nms(&mut cands, 0.5, 2, &mut kept);
        assert_eq!(kept.len(), 2, "max detections");
    }
}
