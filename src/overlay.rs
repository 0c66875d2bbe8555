//! What the image sinks draw (`mcap` annotations, `video` overlays): the
//! boxes of a frame, one view whatever stage made them, and a colour per
//! track id, so every output draws an id in the same colour.

use crate::record::{Position, Record};

/// A colour per track id (or class), from a fixed palette, as RGB 0..=255.
pub fn id_colour(id: u64) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 12] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [170, 110, 40],
    ];
    PALETTE[(id % PALETTE.len() as u64) as usize]
}

/// One box to draw, whatever it came from.
#[derive(Debug, Clone, Copy)]
pub struct BoxView<'a> {
    /// `[x1, y1, x2, y2]`, source pixels.
    pub bbox: [f32; 4],
    /// Track id, when a tracker ran.
    pub track_id: Option<u64>,
    /// Class index.
    pub class_id: u32,
    /// Class name.
    pub class: &'a str,
    /// Score.
    pub score: f32,
    /// The tracker predicted the box (no detection matched it this frame).
    pub predicted: bool,
    /// 3D position, when a depth stage ran.
    pub position: Option<Position>,
}

impl BoxView<'_> {
    /// Its colour: by track id, else by class.
    pub fn colour(&self) -> [u8; 3] {
        id_colour(self.track_id.unwrap_or(u64::from(self.class_id) + 7))
    }

    /// `#id class 0.87` (no `#id` without a tracker).
    pub fn label(&self) -> String {
        match self.track_id {
            Some(id) => format!("#{id} {} {:.2}", self.class, self.score),
            None => format!("{} {:.2}", self.class, self.score),
        }
    }
}

/// The boxes of a frame's record: its tracks when a tracker ran, else its
/// detections (image sinks, Foxglove annotations, ROS 2 messages).
pub fn boxes(record: &Record) -> impl Iterator<Item = BoxView<'_>> {
    let tracks = record
        .tracks
        .as_deref()
        .into_iter()
        .flatten()
        .map(|t| BoxView {
            bbox: t.bbox,
            track_id: Some(t.id),
            class_id: t.class_id,
            class: &t.class,
            score: t.score,
            predicted: t.predicted,
            position: t.position,
        });
    let detections = record
        .detections
        .as_deref()
        .filter(|_| record.tracks.is_none())
        .into_iter()
        .flatten()
        .map(|d| BoxView {
            bbox: d.bbox,
            track_id: None,
            class_id: d.class_id,
            class: &d.class,
            score: d.score,
            predicted: false,
            position: d.position,
        });
    tracks.chain(detections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_differ_between_neighbouring_ids() {
        assert_ne!(id_colour(1), id_colour(2));
        assert_eq!(id_colour(1), id_colour(13));
    }
}
