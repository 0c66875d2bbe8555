//! Detector output decoders: the tensor contract each layout needs, and
//! candidates (threshold, class filter) from its tensors.
//!
//! | layout | tensors | per anchor |
//! | --- | --- | --- |
//! | `yolov5` | `[1, N, 5+C]` | cx, cy, w, h, objectness, C class probabilities (score = obj × prob) |
//! | `yolov8` | `[1, 4+C, N]`, channel-major | cx, cy, w, h, C class scores (YOLOv8 / YOLO11) |
//! | `end2end` | `[1, N, 6]` | x1, y1, x2, y2, score, class (NMS done in the model) |
//! | `boxes_scores` | `boxes [1, N, 4]` + `scores [1, N, C]` | x1, y1, x2, y2; C class scores (SSD / RT-DETR style) |
//! | `nanodet` | per stride `cls [1, n, C]` + `reg [1, n, 4·B]`, or one `[1, N, C + 4·B]` | C class scores; 4 sides × B bins of a GFL distance distribution |
//!
//! Boxes are in network-input pixels; the stage maps them back through the letterbox.
//!
//! `nanodet` is the Generalized Focal Loss head of NanoDet / NanoDet-Plus
//! (Li et al., "Generalized Focal Loss", NeurIPS 2020; RangiLyu/nanodet): a
//! grid of cells per stride (8, 16, 32 and for Plus 64), `ceil(W/s) × ceil(H/s)`
//! cells each, row-major. A cell's distance to each side (left, top, right,
//! bottom) is the expectation of the softmax over its B bins, times the
//! stride; the box is `centre ± distance`. Separate heads (NanoDet-m and its
//! TF.js conversion) put cell centres at `(col + 0.5)·s`; one concatenated
//! output (NanoDet-Plus's ONNX export) at `col·s`, as its `center_priors` do.

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
    /// NanoDet's GFL head: per-stride class scores and distance distributions.
    Nanodet,
}

impl Layout {
    /// The layout's name in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Yolov5 => "yolov5",
            Layout::Yolov8 => "yolov8",
            Layout::End2end => "end2end",
            Layout::BoxesScores => "boxes_scores",
            Layout::Nanodet => "nanodet",
        }
    }

    /// Whether the model already ran NMS.
    pub fn needs_nms(self) -> bool {
        self != Layout::End2end
    }
}

/// The most outputs a layout reads (`nanodet`: class and box heads of four strides).
pub const MAX_OUTPUTS: usize = 8;

/// What the decoder found in the model's outputs at load.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputContract {
    /// The layout these outputs are read as.
    pub layout: Layout,
    /// Output tensor names, in the order the layout reads them.
    pub names: Vec<String>,
    /// Number of classes (0 for `end2end`, whose class ids come from the model).
    pub classes: usize,
    /// The grid of a `nanodet` head; `None` for the other layouts.
    pub gfl: Option<Gfl>,
    /// `yolov8` only: the output is `[1, N, 4+C]` (one row per anchor), not `[1, 4+C, N]`.
    pub transposed: bool,
    /// Why the outputs were read this way, for `percept check`.
    pub reason: String,
}

impl OutputContract {
    /// A contract for a layout that needs no grid (tests, benchmarks).
    pub fn plain(layout: Layout, names: Vec<String>, classes: usize) -> OutputContract {
        OutputContract {
            layout,
            names,
            classes,
            gfl: None,
            transposed: false,
            reason: String::new(),
        }
    }
}

/// What the caller knows about the model beyond its outputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints {
    /// Network input (width, height) in pixels.
    pub input: (u32, u32),
    /// Class count from the model's `names` metadata or a labels file.
    pub classes: Option<usize>,
}

/// One stride of a GFL (NanoDet) head.
#[derive(Debug, Clone, PartialEq)]
pub struct GflLevel {
    /// Stride in network-input pixels.
    pub stride: u32,
    /// Grid columns: `ceil(width / stride)`.
    pub cols: usize,
    /// Grid rows: `ceil(height / stride)`.
    pub rows: usize,
    /// Index (into the contract's outputs) of the class-score tensor.
    pub cls: usize,
    /// Index (into the contract's outputs) of the distance tensor.
    pub reg: usize,
    /// First row of this level within those tensors (non-zero for a concatenated output).
    pub first: usize,
}

/// A GFL head: its levels and the width of a row in its tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Gfl {
    /// Its strides, finest first.
    pub levels: Vec<GflLevel>,
    /// Bins per side (NanoDet-m 8, i.e. `reg_max` 7; the TF.js conversion 11).
    pub bins: usize,
    /// Cell centre offset in cells: 0.5 for separate heads, 0 for one concatenated output.
    pub offset: f32,
    /// Values per row of the class tensor.
    pub cls_width: usize,
    /// Values per row of the distance tensor.
    pub reg_width: usize,
    /// Column where the 4·B distance values start in a distance-tensor row.
    pub reg_at: usize,
}

/// Strides a GFL head may have, finest first.
const GFL_STRIDES: [u32; 4] = [8, 16, 32, 64];

fn gfl_cells(input: (u32, u32), stride: u32) -> (usize, usize) {
    (
        input.0.div_ceil(stride) as usize,
        input.1.div_ceil(stride) as usize,
    )
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
    hints: Hints,
) -> Result<OutputContract, ModelError> {
    if layout == Layout::Nanodet {
        return check_gfl(outputs, names, path, hints);
    }
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
            expect(
                t,
                t.dims.len() == 3,
                "[1, 4+C, N] (or [1, N, 4+C]) with C >= 1",
            )?;
            // Channels are the short axis: 4+C is far below the anchor count
            // (84 against 8400), so a `[1, N, 4+C]` export (TensorRT-oriented
            // repositories transpose it) is recognised rather than read as N-4 classes.
            let (a, b) = (d(t, 1), d(t, 2));
            let (channels, transposed) = match (a, b) {
                (Some(a), Some(b)) if a > b => (b, true),
                (Some(a), _) => (a, false),
                (None, Some(b)) => (b, true),
                (None, None) => (0, false),
            };
            let classes = class_count(layout, t, channels, 4, hints.classes, path)?;
            let mut c = OutputContract::plain(layout, vec![t.name.clone()], classes);
            c.transposed = transposed;
            c.reason = format!(
                "{} {}: {classes} classes{}{}",
                if transposed {
                    "one row per anchor (transposed)"
                } else {
                    "channel-major"
                },
                dims_text(&t.dims),
                if hints.classes.is_some() {
                    " (the model's names)"
                } else {
                    " (channels - 4)"
                },
                extra_text(channels - 4 - classes)
            );
            Ok(c)
        }
        Layout::Yolov5 => {
            let t = pick(0, "output0")?;
            expect(t, t.dims.len() == 3, "[1, N, 5+C] with C >= 1 fixed")?;
            let width = d(t, 2).unwrap_or(0);
            let classes = class_count(layout, t, width, 5, hints.classes, path)?;
            let mut c = OutputContract::plain(layout, vec![t.name.clone()], classes);
            c.reason = format!(
                "rows of 5+C {}: {classes} classes{}",
                dims_text(&t.dims),
                extra_text(width - 5 - classes)
            );
            Ok(c)
        }
        Layout::End2end => {
            let t = pick(0, "output0")?;
            let ok = t.dims.len() == 3 && fixed(t.dims[2]) == Some(6);
            expect(t, ok, "[1, N, 6] (x1, y1, x2, y2, score, class)")?;
            let mut c = OutputContract::plain(layout, vec![t.name.clone()], 0);
            c.reason = format!(
                "rows of x1, y1, x2, y2, score, class {}",
                dims_text(&t.dims)
            );
            Ok(c)
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
            let mut c = OutputContract::plain(
                layout,
                vec![b.name.clone(), s.name.clone()],
                d(s, 2).unwrap_or(1),
            );
            c.reason = format!(
                "corner boxes {} and class scores {}",
                dims_text(&b.dims),
                dims_text(&s.dims)
            );
            Ok(c)
        }
        Layout::Nanodet => check_gfl(outputs, names, path, hints),
    }
}

/// The class count of a row of `width` values holding `lead` box (and
/// objectness) values first: the model's `names` count when it declares one
/// (extra values after the classes, such as segmentation mask coefficients or
/// pose keypoints, are left unread), else all the rest. Refused, naming the
/// tensor, when the row is too short for `names` or for one class.
fn class_count(
    layout: Layout,
    t: &TensorInfo,
    width: usize,
    lead: usize,
    named: Option<usize>,
    path: &Path,
) -> Result<usize, ModelError> {
    let needs = lead + named.unwrap_or(1);
    if width < needs {
        let why = match named {
            Some(c) => format!("{lead}+{c} values for the {c} classes of the model's names"),
            None => format!("{lead}+C values with C >= 1"),
        };
        return Err(ModelError::contract(
            path,
            &t.name,
            format!(
                "layout `{}` needs rows of {why}, found {} (rows of {width})",
                layout.as_str(),
                dims_text(&t.dims)
            ),
        ));
    }
    Ok(named.unwrap_or(width - lead))
}

fn extra_text(extra: usize) -> String {
    if extra == 0 {
        String::new()
    } else {
        format!(", {extra} values after the classes left unread (mask coefficients or keypoints)")
    }
}

/// The `nanodet` contract: one `[1, N, C + 4·B]` output covering every stride,
/// or a class tensor `[1, n, C]` and a distance tensor `[1, n, 4·B]` per
/// stride. `names` gives them as `[cls, reg]` pairs; otherwise tensors are
/// paired by cell count and told apart by the class count of the model's
/// `names` metadata, else by their names (`cls`/`score` against
/// `reg`/`dis`/`box`).
fn check_gfl(
    outputs: &[TensorInfo],
    names: Option<&[String]>,
    path: &Path,
    hints: Hints,
) -> Result<OutputContract, ModelError> {
    let refuse = |tensor: &str, message: String| ModelError::contract(path, tensor, message);
    let chosen: Vec<&TensorInfo> = match names {
        Some(names) => names
            .iter()
            .map(|n| {
                outputs
                    .iter()
                    .find(|t| &t.name == n)
                    .ok_or_else(|| refuse(n, "no such output".into()))
            })
            .collect::<Result<_, _>>()?,
        None => outputs.iter().collect(),
    };
    // Every tensor: f32 [1, n, width] with n and width fixed.
    let mut shaped = Vec::with_capacity(chosen.len());
    for t in &chosen {
        let (n, w) = match t.dims.as_slice() {
            [b, Some(n), Some(w)] if b.is_none_or(|b| b == 1) && t.is_f32() => {
                (*n as usize, *w as usize)
            }
            _ => {
                return Err(refuse(
                    &t.name,
                    format!(
                        "layout `nanodet` needs f32 [1, cells, values] with both fixed, found {} {}",
                        t.dtype,
                        dims_text(&t.dims)
                    ),
                ));
            }
        };
        shaped.push((*t, n, w));
    }
    let (iw, ih) = hints.input;
    let level_of = |t: &TensorInfo, n: usize| -> Result<u32, ModelError> {
        GFL_STRIDES
            .into_iter()
            .find(|&s| {
                let (c, r) = gfl_cells(hints.input, s);
                c * r == n
            })
            .ok_or_else(|| {
                refuse(
                    &t.name,
                    format!("{n} cells match no stride (8, 16, 32, 64) of the {iw}x{ih} input"),
                )
            })
    };
    match shaped.as_slice() {
        [] => Err(refuse("", "the model has no outputs".into())),
        [(t, n, width)] => {
            // One concatenated output (NanoDet-Plus export): strides 8..32 or 8..64.
            let mut first = 0;
            let mut levels = Vec::new();
            for s in GFL_STRIDES {
                if first == *n {
                    break;
                }
                let (cols, rows) = gfl_cells(hints.input, s);
                levels.push(GflLevel {
                    stride: s,
                    cols,
                    rows,
                    cls: 0,
                    reg: 0,
                    first,
                });
                first += cols * rows;
            }
            if first != *n || levels.len() < 3 {
                return Err(refuse(
                    &t.name,
                    format!(
                        "{n} rows are not the cells of strides 8, 16, 32 (and 64) of the {iw}x{ih} input"
                    ),
                ));
            }
            // NanoDet-Plus's default reg_max is 7: 8 bins a side.
            let classes = hints.classes.unwrap_or(width.saturating_sub(32));
            let reg = width
                .checked_sub(classes)
                .filter(|r| *r >= 8 && r.is_multiple_of(4));
            let Some(reg) = reg.filter(|_| classes > 0) else {
                return Err(refuse(
                    &t.name,
                    format!(
                        "{width} values a row do not split into {classes} classes and 4 sides of bins"
                    ),
                ));
            };
            Ok(OutputContract {
                layout: Layout::Nanodet,
                names: vec![t.name.clone()],
                classes,
                transposed: false,
                reason: format!(
                    "one concatenated output, {} strides (NanoDet-Plus), {classes} classes",
                    levels.len()
                ),
                gfl: Some(Gfl {
                    levels,
                    bins: reg / 4,
                    offset: 0.0,
                    cls_width: *width,
                    reg_width: *width,
                    reg_at: classes,
                }),
            })
        }
        _ => {
            // Separate heads: (cls, reg) pairs, by the given order or by cell count.
            let pairs: Vec<[(&TensorInfo, usize, usize); 2]> = if names.is_some() {
                if !shaped.len().is_multiple_of(2) {
                    return Err(refuse(
                        &chosen[shaped.len() - 1].name,
                        "`outputs` must list [cls, reg] pairs, one per stride".into(),
                    ));
                }
                shaped.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
            } else {
                let mut counts: Vec<usize> = shaped.iter().map(|s| s.1).collect();
                counts.sort_unstable();
                counts.dedup();
                let mut pairs = Vec::new();
                for n in counts {
                    let same: Vec<_> = shaped.iter().filter(|s| s.1 == n).copied().collect();
                    let [a, b] = same.as_slice() else {
                        return Err(refuse(
                            &same[0].0.name,
                            format!(
                                "{} outputs have {n} cells; a head has one class and one distance tensor per stride (set `outputs`)",
                                same.len()
                            ),
                        ));
                    };
                    let is_cls = |x: &(&TensorInfo, usize, usize)| match hints.classes {
                        Some(c) => x.2 == c,
                        None => {
                            let l = x.0.name.to_ascii_lowercase();
                            l.contains("cls") || l.contains("score")
                        }
                    };
                    match (is_cls(a), is_cls(b)) {
                        (true, false) => pairs.push([*a, *b]),
                        (false, true) => pairs.push([*b, *a]),
                        _ => {
                            return Err(refuse(
                                &a.0.name,
                                format!(
                                    "cannot tell the class tensor from the distance tensor among `{}` {} and `{}` {} (set `outputs = [cls, reg, ...]` or give the model `names` metadata)",
                                    a.0.name,
                                    dims_text(&a.0.dims),
                                    b.0.name,
                                    dims_text(&b.0.dims)
                                ),
                            ));
                        }
                    }
                }
                pairs
            };
            let classes = pairs[0][0].2;
            let reg = pairs[0][1].2;
            let mut levels = Vec::with_capacity(pairs.len());
            let mut ordered = Vec::with_capacity(pairs.len() * 2);
            for [(ct, cn, cw), (rt, rn, rw)] in &pairs {
                if cn != rn {
                    return Err(refuse(
                        &rt.name,
                        format!("{rn} cells for the {cn} of `{}`", ct.name),
                    ));
                }
                if *cw != classes || *rw != reg || !reg.is_multiple_of(4) || reg < 8 {
                    return Err(refuse(
                        &rt.name,
                        format!(
                            "every stride needs [1, n, {classes}] class scores and [1, n, 4·bins] distances, found {} and {}",
                            dims_text(&ct.dims),
                            dims_text(&rt.dims)
                        ),
                    ));
                }
                let stride = level_of(ct, *cn)?;
                let (cols, rows) = gfl_cells(hints.input, stride);
                levels.push((stride, cols, rows, ct.name.clone(), rt.name.clone()));
            }
            levels.sort_by_key(|l| l.0);
            if levels.windows(2).any(|w| w[0].0 == w[1].0) || levels.len() > GFL_STRIDES.len() {
                return Err(refuse(
                    &pairs[0][0].0.name,
                    "two heads have the same stride".into(),
                ));
            }
            if let Some(c) = hints.classes.filter(|c| *c != classes) {
                return Err(refuse(
                    &pairs[0][0].0.name,
                    format!("{classes} class scores but the model's names list {c} classes"),
                ));
            }
            let levels: Vec<GflLevel> = levels
                .into_iter()
                .enumerate()
                .map(|(i, (stride, cols, rows, c, r))| {
                    ordered.push(c);
                    ordered.push(r);
                    GflLevel {
                        stride,
                        cols,
                        rows,
                        cls: 2 * i,
                        reg: 2 * i + 1,
                        first: 0,
                    }
                })
                .collect();
            Ok(OutputContract {
                layout: Layout::Nanodet,
                reason: format!(
                    "separate class/distance heads for {} strides, {classes} classes, {} bins a side",
                    levels.len(),
                    reg / 4
                ),
                transposed: false,
                names: ordered,
                classes,
                gfl: Some(Gfl {
                    levels,
                    bins: reg / 4,
                    offset: 0.5,
                    cls_width: classes,
                    reg_width: reg,
                    reg_at: 0,
                }),
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
/// reused across frames (YOLOv8's per-anchor best score).
pub fn candidates(
    contract: &OutputContract,
    views: &[View<'_>],
    filter: &Filter,
    best: &mut Vec<f32>,
    out: &mut Vec<Candidate>,
) -> Result<(), String> {
    out.clear();
    let dim = |v: &View<'_>, i: usize| v.dims.get(i).map(|&d| d.max(0) as usize).unwrap_or(0);
    let view = |i: usize| views.get(i).ok_or_else(|| format!("missing output {i}"));
    match contract.layout {
        Layout::Yolov8 if contract.transposed => {
            let v = view(0)?;
            let (n, width) = (dim(v, 1), dim(v, 2));
            check_len(v, n * width)?;
            let classes = class_limit(contract, width, 4);
            for row in v.data.chunks_exact(width) {
                let Some((class_id, score)) = best_class(&row[4..4 + classes], filter.confidence)
                else {
                    continue;
                };
                if filter.keeps(score, class_id) {
                    out.push(Candidate {
                        bbox: xyxy(row[0], row[1], row[2], row[3]),
                        score,
                        class_id,
                    });
                }
            }
        }
        Layout::Yolov8 => {
            let v = view(0)?;
            let (channels, n) = (dim(v, 1), dim(v, 2));
            check_len(v, channels * n)?;
            best.clear();
            best.resize(n, f32::NEG_INFINITY);
            let classes = class_limit(contract, channels, 4);
            // Channel-major: walk each class row once, keeping each anchor's
            // best score (a branch-free max the compiler vectorises); the
            // class is looked up only for the few anchors that pass.
            for class in 0..classes {
                let row = &v.data[(4 + class) * n..(5 + class) * n];
                for (b, &s) in best.iter_mut().zip(row) {
                    *b = b.max(s);
                }
            }
            for (i, &score) in best.iter().enumerate() {
                if score < filter.confidence {
                    continue;
                }
                let at = |c: usize| v.data[c * n + i];
                // The first class with the best score, as a strict `>` scan finds it.
                let class_id = (0..classes).position(|c| at(4 + c) == score).unwrap_or(0) as u32;
                if filter.keeps(score, class_id) {
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
                let (class_id, prob) = argmax(&row[5..5 + class_limit(contract, width, 5)]);
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
                let Some((class_id, score)) = best_class(sc, filter.confidence) else {
                    continue;
                };
                if filter.keeps(score, class_id) {
                    out.push(Candidate {
                        bbox: [bx[0], bx[1], bx[2], bx[3]],
                        score,
                        class_id,
                    });
                }
            }
        }
        Layout::Nanodet => {
            let gfl = contract
                .gfl
                .as_ref()
                .ok_or("layout `nanodet` without its grid")?;
            gfl_candidates(gfl, contract.classes, views, filter, out)?;
        }
    }
    Ok(())
}

/// GFL decoding (see the module docs): only cells whose best class passes
/// the filter get their distances integrated.
fn gfl_candidates(
    gfl: &Gfl,
    classes: usize,
    views: &[View<'_>],
    filter: &Filter,
    out: &mut Vec<Candidate>,
) -> Result<(), String> {
    let bins = gfl.bins;
    for level in &gfl.levels {
        let (cls, reg) = match (views.get(level.cls), views.get(level.reg)) {
            (Some(c), Some(r)) => (c, r),
            _ => return Err(format!("missing output for stride {}", level.stride)),
        };
        let cells = level.cols * level.rows;
        let end = level.first + cells;
        if cls.data.len() < end * gfl.cls_width || reg.data.len() < end * gfl.reg_width {
            return Err(format!(
                "outputs of shapes {:?} and {:?} are too small for {cells} cells at stride {}",
                cls.dims, reg.dims, level.stride
            ));
        }
        let stride = level.stride as f32;
        for cell in 0..cells {
            let row = level.first + cell;
            let scores = &cls.data[row * gfl.cls_width..][..classes.min(gfl.cls_width)];
            let Some((class_id, score)) = best_class(scores, filter.confidence) else {
                continue;
            };
            if !filter.keeps(score, class_id) {
                continue;
            }
            let at = row * gfl.reg_width + gfl.reg_at;
            let sides = &reg.data[at..at + 4 * bins];
            let d = |k: usize| integral(&sides[k * bins..(k + 1) * bins]) * stride;
            let cx = ((cell % level.cols) as f32 + gfl.offset) * stride;
            let cy = ((cell / level.cols) as f32 + gfl.offset) * stride;
            out.push(Candidate {
                bbox: [cx - d(0), cy - d(1), cx + d(2), cy + d(3)],
                score,
                class_id,
            });
        }
    }
    Ok(())
}

/// The expectation of a softmax over bins 0..B (GFL's `Integral`), in bins.
#[inline]
fn integral(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, &x) in logits.iter().enumerate() {
        let e = (x - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    if sum > 0.0 { weighted / sum } else { 0.0 }
}

/// Classes to read from rows of `width` values after `lead` others: the
/// contract's count (extra values are not classes), or all of the rest.
fn class_limit(contract: &OutputContract, width: usize, lead: usize) -> usize {
    let rest = width.saturating_sub(lead);
    if contract.classes > 0 {
        contract.classes.min(rest)
    } else {
        rest
    }
}

/// Checks decoded candidates are probabilities with finite boxes: a score
/// outside [0, 1] means the outputs are not in the layout they are read as.
pub fn check_probabilities(contract: &OutputContract, found: &[Candidate]) -> Result<(), String> {
    let bad = found.iter().find(|c| {
        !(c.score >= 0.0 && c.score <= 1.0 + 1e-3) || c.bbox.iter().any(|v| !v.is_finite())
    });
    match bad {
        None => Ok(()),
        Some(c) => Err(format!(
            "decoded score {} (box {:?}) is not a probability in [0, 1]: output `{}` does not hold the `{}` layout ({})",
            c.score,
            c.bbox,
            contract.names.join("`, `"),
            contract.layout.as_str(),
            contract.reason
        )),
    }
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

/// The first best class of one row of class scores and its score, `None`
/// when even the best is below `confidence`. Most rows are: a vectorised max
/// ([`max_score`]) rules them out before the serial argmax runs.
#[inline]
fn best_class(scores: &[f32], confidence: f32) -> Option<(u32, f32)> {
    (max_score(scores) >= confidence).then(|| argmax(scores))
}

/// The largest of `values` (`-inf` when empty; NaN is skipped, as
/// [`argmax`] skips it), in eight independent lanes so the compiler
/// vectorises it.
#[inline]
fn max_score(values: &[f32]) -> f32 {
    let (chunks, rest) = values.as_chunks::<8>();
    let mut lanes = [f32::NEG_INFINITY; 8];
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    lanes
        .into_iter()
        .chain(rest.iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
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
mod tests;
