//! Class names: a labels file (one name per line), the model's own `names`
//! metadata (Ultralytics writes a Python dict, percept's test models a JSON
//! list), COCO's 80 classes for an 80-class model, or the class number.

use std::path::Path;
use std::sync::Arc;

/// COCO's 80 detection classes, in the order YOLO models use.
pub const COCO: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Class names by id.
#[derive(Debug, Clone)]
pub struct Labels(Vec<Arc<str>>);

impl Labels {
    /// Reads a labels file: one name per line, blank lines ignored.
    pub fn from_file(path: &Path) -> std::io::Result<Labels> {
        let text = std::fs::read_to_string(path)?;
        Ok(Labels(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Arc::from)
                .collect(),
        ))
    }

    /// Parses a model's `names` metadata: a JSON list, or a Python dict `{0: 'person', ...}`.
    pub fn from_metadata(names: &str) -> Option<Labels> {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(names) {
            return Some(Labels(list.into_iter().map(Arc::from).collect()));
        }
        let body = names.trim().strip_prefix('{')?.strip_suffix('}')?;
        let mut pairs: Vec<(usize, Arc<str>)> = Vec::new();
        for item in body.split(", ") {
            let (k, v) = item.split_once(':')?;
            let name = v.trim().trim_matches(|c| c == '\'' || c == '"');
            pairs.push((k.trim().parse().ok()?, Arc::from(name)));
        }
        pairs.sort_by_key(|(k, _)| *k);
        pairs
            .iter()
            .enumerate()
            .all(|(i, (k, _))| i == *k)
            .then(|| Labels(pairs.into_iter().map(|(_, v)| v).collect()))
    }

    /// The 80 COCO class names.
    pub fn coco() -> Labels {
        Labels(COCO.iter().map(|s| Arc::from(*s)).collect())
    }

    /// Numbers as names, for a model with no names.
    pub fn numbered(count: usize) -> Labels {
        Labels(
            (0..count)
                .map(|i| Arc::from(i.to_string().as_str()))
                .collect(),
        )
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name of a class id (its number when out of range).
    pub fn name(&self, id: u32) -> Arc<str> {
        self.0
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(id.to_string().as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_in_both_forms() {
        let l = Labels::from_metadata("{0: 'person', 1: 'bicycle', 2: 'car'}").unwrap();
        assert_eq!((l.len(), &*l.name(2)), (3, "car"));
        let l = Labels::from_metadata(r#"["red", "green"]"#).unwrap();
        assert_eq!(&*l.name(1), "green");
        assert_eq!(&*l.name(9), "9");
        assert!(
            Labels::from_metadata("{1: 'x'}").is_none(),
            "ids must start at 0 without gaps"
        );
    }
}
