//! Detector output decoders: the tensor contract each layout needs, and
//! candidates (threshold, class filter) from its tensors.
//!
//! | layout | tensors | per anchor |
//! | --- | --- | --- |
//! | `yolov5` | `[1, N, 5+C]` | cx, cy, w, h, objectness, C class probabilities (score = obj × prob) |
//! | `yolov8` | `[1, 4+C, N]`, channel-major | cx, cy, w, h, C class scores (YOLOv8 / YOLO11) |
//! | `end2end` | `[1, N, 6]` | x1, y1, x2, y2, score, class (NMS done in the model) |
//! | `boxes_scores` | `boxes [1, N, 4]` + `scores [1, N, C]` | x1, y1, x2, y2; C class scores (SSD / RT-DETR style) |
//!
//! Boxes are in network-input pixels; the stage maps them back through the letterbox.

use std::path::Path;

use super::nms::Candidate;
use crate::model::ModelError;
use crate::model::contract::{TensorInfo, dims_text};

/// A detector output layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// YOLOv5: `[1, N, 5 + C]` with objectness.
    Yolov5,
    /// YOLOv8: `[1, 4 + C, N]`.
    Yolov8,
    /// End-to-end (NMS in the model): `[1, N, 6]`.
    End2end,
    /// Separate boxes `[1, N, 4]` and scores `[1, N, C]`.
    BoxesScores,
}

impl Layout {
    /// The layout's name in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Yolov5 => "yolov5",
            Layout::Yolov8 => "yolov8",
            Layout::End2end => "end2end",
            Layout::BoxesScores => "boxes_scores",
        }
    }

    /// Whether the model already ran NMS.
    pub fn needs_nms(self) -> bool {
        self != Layout::End2end
    }
}

/// What the decoder found in the model's outputs at load.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputContract {
    /// Output tensor names, in the order the layout reads them.
    pub names: Vec<String>,
    /// Number of classes (0 for `end2end`, whose class ids come from the model).
    pub classes: usize,
}

fn fixed(dim: Option<u64>) -> Option<usize> {
    dim.map(|d| d as usize)
}

/// Checks a model's outputs against a layout. `names` picks outputs by name
/// (`boxes_scores` defaults to `boxes`, `scores`); otherwise the first output.
pub fn check_outputs(
    layout: Layout,
    outputs: &[TensorInfo],
    names: Option<&[String]>,
    path: &Path,
) -> Result<OutputContract, ModelError> {
    let find = |name: &str| -> Result<&TensorInfo, ModelError> {
        outputs.iter().find(|t| t.name == name).ok_or_else(|| {
            let have: Vec<&str> = outputs.iter().map(|t| t.name.as_str()).collect();
            ModelError::contract(
                path,
                name,
                format!("no such output (the model has `{}`)", have.join("`, `")),
            )
        })
    };
    let pick = |i: usize, default: &str| -> Result<&TensorInfo, ModelError> {
        match names.and_then(|n| n.get(i)) {
            Some(n) => find(n),
            None if layout == Layout::BoxesScores => find(default),
            None => outputs
                .first()
                .ok_or_else(|| ModelError::contract(path, default, "the model has no outputs")),
        }
    };
    let expect = |t: &TensorInfo, ok: bool, want: &str| -> Result<(), ModelError> {
        if !t.is_f32() {
            return Err(ModelError::contract(
                path,
                &t.name,
                format!("expected f32, found {}", t.dtype),
            ));
        }
        if ok {
            Ok(())
        } else {
            Err(ModelError::contract(
                path,
                &t.name,
                format!(
                    "layout `{}` needs {want}, found {}",
                    layout.as_str(),
                    dims_text(&t.dims)
                ),
            ))
        }
    };
    let d = |t: &TensorInfo, i: usize| t.dims.get(i).copied().flatten().map(|v| v as usize);
    match layout {
        Layout::Yolov8 => {
            let t = pick(0, "output0")?;
            let ok = t.dims.len() == 3 && fixed(t.dims[1]).is_some_and(|c| c >= 5);
            expect(t, ok, "[1, 4+C, N] with C >= 1 fixed")?;
            Ok(OutputContract {
                names: vec![t.name.clone()],
                classes: d(t, 1).unwrap_or(5) - 4,
            })
        }
        Layout::Yolov5 => {
            let t = pick(0, "output0")?;
            let ok = t.dims.len() == 3 && fixed(t.dims[2]).is_some_and(|c| c >= 6);
            expect(t, ok, "[1, N, 5+C] with C >= 1 fixed")?;
            Ok(OutputContract {
                names: vec![t.name.clone()],
                classes: d(t, 2).unwrap_or(6) - 5,
            })
        }
        Layout::End2end => {
            let t = pick(0, "output0")?;
            let ok = t.dims.len() == 3 && fixed(t.dims[2]) == Some(6);
            expect(t, ok, "[1, N, 6] (x1, y1, x2, y2, score, class)")?;
            Ok(OutputContract {
                names: vec![t.name.clone()],
                classes: 0,
            })
        }
        Layout::BoxesScores => {
            let b = pick(0, "boxes")?;
            let s = pick(1, "scores")?;
            expect(
                b,
                b.dims.len() == 3 && fixed(b.dims[2]) == Some(4),
                "boxes [1, N, 4]",
            )?;
            let ok = s.dims.len() == 3 && fixed(s.dims[2]).is_some_and(|c| c >= 1);
            expect(s, ok, "scores [1, N, C] with C fixed")?;
            if let (Some(nb), Some(ns)) = (d(b, 1), d(s, 1))
                && nb != ns
            {
                return Err(ModelError::contract(
                    path,
                    &s.name,
                    format!("{ns} score rows for {nb} boxes"),
                ));
            }
            Ok(OutputContract {
                names: vec![b.name.clone(), s.name.clone()],
                classes: d(s, 2).unwrap_or(1),
            })
        }
    }
}

/// Thresholds applied while decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Minimum score.
    pub confidence: f32,
    /// Keep only these class ids; `None` keeps all.
    pub classes: Option<Vec<u32>>,
}

impl Filter {
    #[inline]
    fn keeps(&self, score: f32, class_id: u32) -> bool {
        score >= self.confidence && self.classes.as_ref().is_none_or(|c| c.contains(&class_id))
    }
}

/// A tensor's data and its actual dimensions.
pub struct View<'a> {
    /// The tensor's dimensions.
    pub dims: &'a [i64],
    /// Its values, row-major.
    pub data: &'a [f32],
}

/// Decodes one layout into `out` (cleared first). `best` is scratch space
/// reused across frames (YOLOv8's per-anchor maximum).
pub fn candidates(
    layout: Layout,
    views: &[View<'_>],
    filter: &Filter,
    best: &mut Vec<(f32, u32)>,
    out: &mut Vec<Candidate>,
) -> Result<(), String> {
    out.clear();
    let dim = |v: &View<'_>, i: usize| v.dims.get(i).map(|&d| d.max(0) as usize).unwrap_or(0);
    let view = |i: usize| views.get(i).ok_or_else(|| format!("missing output {i}"));
    match layout {
        Layout::Yolov8 => {
            let v = view(0)?;
            let (channels, n) = (dim(v, 1), dim(v, 2));
            check_len(v, channels * n)?;
            best.clear();
            best.resize(n, (f32::NEG_INFINITY, 0));
            // Channel-major: walk each class row once, keeping each anchor's best.
            for class in 0..channels.saturating_sub(4) {
                let row = &v.data[(4 + class) * n..(5 + class) * n];
                for (b, &s) in best.iter_mut().zip(row) {
                    if s > b.0 {
                        *b = (s, class as u32);
                    }
                }
            }
            for (i, &(score, class_id)) in best.iter().enumerate() {
                if filter.keeps(score, class_id) {
                    let at = |c: usize| v.data[c * n + i];
                    out.push(Candidate {
                        bbox: xyxy(at(0), at(1), at(2), at(3)),
                        score,
                        class_id,
                    });
                }
            }
        }
        Layout::Yolov5 => {
            let v = view(0)?;
            let (n, width) = (dim(v, 1), dim(v, 2));
            check_len(v, n * width)?;
            for row in v.data.chunks_exact(width) {
                let objectness = row[4];
                if objectness < filter.confidence {
                    continue;
                }
                let (class_id, prob) = argmax(&row[5..]);
                let score = objectness * prob;
                if filter.keeps(score, class_id) {
                    out.push(Candidate {
                        bbox: xyxy(row[0], row[1], row[2], row[3]),
                        score,
                        class_id,
                    });
                }
            }
        }
        Layout::End2end => {
            let v = view(0)?;
            let n = dim(v, 1);
            check_len(v, n * 6)?;
            for row in v.data.chunks_exact(6) {
                let (score, class_id) = (row[4], row[5].max(0.0) as u32);
                if filter.keeps(score, class_id) {
                    out.push(Candidate {
                        bbox: [row[0], row[1], row[2], row[3]],
                        score,
                        class_id,
                    });
                }
            }
        }
        Layout::BoxesScores => {
            let (b, s) = (view(0)?, view(1)?);
            let (n, classes) = (dim(s, 1), dim(s, 2));
            check_len(b, n * 4)?;
            check_len(s, n * classes)?;
            for (bx, sc) in b.data.chunks_exact(4).zip(s.data.chunks_exact(classes)) {
                let (class_id, score) = argmax(sc);
                if filter.keeps(score, class_id) {
                    out.push(Candidate {
                        bbox: [bx[0], bx[1], bx[2], bx[3]],
                        score,
                        class_id,
                    });
                }
            }
        }
    }
    Ok(())
}

fn check_len(v: &View<'_>, need: usize) -> Result<(), String> {
    if v.data.len() == need && need > 0 {
        Ok(())
    } else {
        Err(format!(
            "output of shape {:?} has {} values, expected {need}",
            v.dims,
            v.data.len()
        ))
    }
}

#[inline]
fn xyxy(cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

#[inline]
fn argmax(values: &[f32]) -> (u32, f32) {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i as u32, v) } else { (bi, bv) }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(confidence: f32) -> Filter {
        Filter {
            confidence,
            classes: None,
        }
    }

    fn run(layout: Layout, views: &[View<'_>], filter: &Filter) -> Vec<Candidate> {
        let mut out = Vec::new();
        candidates(layout, views, filter, &mut Vec::new(), &mut out).unwrap();
        out
    }

    #[test]
    fn yolov8_is_channel_major_with_max_class_score() {
        // 3 anchors, 2 classes: rows cx, cy, w, h, s0, s1.
        let data = [
            10.0, 50.0, 90.0, // cx
            10.0, 50.0, 90.0, // cy
            4.0, 8.0, 2.0, // w
            4.0, 8.0, 2.0, // h
            0.9, 0.1, 0.3, // class 0
            0.2, 0.7, 0.1, // class 1
        ];
        let c = run(
            Layout::Yolov8,
            &[View {
                dims: &[1, 6, 3],
                data: &data,
            }],
            &all(0.25),
        );
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0],
            Candidate {
                bbox: [8.0, 8.0, 12.0, 12.0],
                score: 0.9,
                class_id: 0
            }
        );
        assert_eq!(
            c[1],
            Candidate {
                bbox: [46.0, 46.0, 54.0, 54.0],
                score: 0.7,
                class_id: 1
            }
        );
        assert_eq!(c[2].class_id, 0);
        let only1 = Filter {
            confidence: 0.25,
            classes: Some(vec![1]),
        };
        assert_eq!(
            run(
                Layout::Yolov8,
                &[View {
                    dims: &[1, 6, 3],
                    data: &data
                }],
                &only1
            )
            .len(),
            1
        );
    }

    #[test]
    fn yolov5_multiplies_objectness_and_class_probability() {
        let data = [
            20.0, 20.0, 10.0, 10.0, 0.8, 0.1, 0.9, // kept: 0.72, class 1
            20.0, 20.0, 10.0, 10.0, 0.2, 0.9, 0.1, // objectness below threshold
            20.0, 20.0, 10.0, 10.0, 0.5, 0.4, 0.4, // 0.2: below threshold
        ];
        let c = run(
            Layout::Yolov5,
            &[View {
                dims: &[1, 3, 7],
                data: &data,
            }],
            &all(0.25),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class_id, 1);
        assert!((c[0].score - 0.72).abs() < 1e-6);
        assert_eq!(c[0].bbox, [15.0, 15.0, 25.0, 25.0]);
    }

    #[test]
    fn end2end_and_boxes_scores_read_corners() {
        let e2e = [1.0, 2.0, 3.0, 4.0, 0.9, 2.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0];
        let c = run(
            Layout::End2end,
            &[View {
                dims: &[1, 2, 6],
                data: &e2e,
            }],
            &all(0.5),
        );
        assert_eq!(
            c,
            vec![Candidate {
                bbox: [1.0, 2.0, 3.0, 4.0],
                score: 0.9,
                class_id: 2
            }]
        );

        let boxes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let scores = [0.1, 0.6, 0.3, 0.2];
        let c = run(
            Layout::BoxesScores,
            &[
                View {
                    dims: &[1, 2, 4],
                    data: &boxes,
                },
                View {
                    dims: &[1, 2, 2],
                    data: &scores,
                },
            ],
            &all(0.5),
        );
        assert_eq!(
            c,
            vec![Candidate {
                bbox: [1.0, 2.0, 3.0, 4.0],
                score: 0.6,
                class_id: 1
            }]
        );
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let mut out = Vec::new();
        let r = candidates(
            Layout::Yolov8,
            &[View {
                dims: &[1, 6, 4],
                data: &[0.0; 6],
            }],
            &all(0.1),
            &mut Vec::new(),
            &mut out,
        );
        assert!(r.is_err());
    }

    #[test]
    fn contract_names_the_tensor() {
        let t = TensorInfo {
            name: "output0".into(),
            dtype: "f32".into(),
            dims: vec![Some(1), Some(8400), Some(84)],
        };
        let e = check_outputs(
            Layout::End2end,
            std::slice::from_ref(&t),
            None,
            Path::new("m.onnx"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("m.onnx") && e.to_string().contains("`output0`"),
            "{e}"
        );
        let ok = check_outputs(Layout::Yolov5, &[t], None, Path::new("m.onnx")).unwrap();
        assert_eq!(ok.classes, 79);
    }
}
