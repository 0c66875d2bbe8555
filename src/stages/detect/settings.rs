//! The `detect` kind's pipeline-file settings: backend, model, thresholds,
//! labels (`[stage.model]`, `[stage.hog]`).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gstreamer_video as gst_video;
use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use super::decode::Layout;
use super::hog::HogSettings;
use super::{Backend, DetectSettings, DetectStage};
use crate::config::ConfigError;
use crate::config::resolve::{field_names, ModelSpec, Resolver, StageContext, StageKind};
use crate::model::ModelError;
use crate::stage::{BatchPolicy, Built, StageSettings};

/// The `detect` kind.
pub static KIND: StageKind = StageKind {
    name: "detect",
    admission: true,
    asynchronous: true,
    fields: field_names::<DetectSpec>,
    resolve,
};

/// A `detect` stage's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectSpec {
    /// `onnx` (default) or `hog_people`.
    backend: Option<Spanned<DetectBackend>>,
    /// With ONNX: the output layout (default `yolov8`).
    layout: Option<Spanned<Layout>>,
    /// With ONNX: output tensor names the layout reads, in order.
    outputs: Option<Spanned<Vec<String>>>,
    /// Minimum score (default 0.25 for ONNX, 0 for HOG's SVM margin).
    confidence: Option<Spanned<f32>>,
    /// NMS IoU threshold (default 0.45).
    iou: Option<Spanned<f32>>,
    /// At most this many detections per frame (default 100).
    max_detections: Option<Spanned<usize>>,
    /// Keep only these class ids.
    classes: Option<Spanned<Vec<u32>>>,
    /// Class names, one per line (default: the model's metadata, else COCO for 80 classes).
    labels: Option<Spanned<String>>,
    /// With ONNX: the model (`[stage.model]`).
    model: Option<Spanned<ModelSpec>>,
    /// With `hog_people`: search settings (`[stage.hog]`).
    hog: Option<Spanned<HogSpec>>,
    /// With ONNX: frames of several streams per model run (`{ max = N, timeout_ms = T }`).
    batch: Option<Spanned<BatchSpec>>,
    /// Copies of the detector working on frames at the same time, 1 to
    /// [`MAX_INSTANCES`] (default 1).
    instances: Option<Spanned<usize>>,
}

/// `batch = { max = N, timeout_ms = T }`: up to N frames per model run; a
/// batch waits at most T ms for its last frame (default 10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchSpec {
    /// Frames per run, 1 to [`MAX_BATCH`].
    max: Spanned<usize>,
    /// Longest wait after a batch's first frame, ms, 0 to 10000 (default 10).
    timeout_ms: Option<Spanned<f64>>,
}

/// The most frames a `detect` stage batches into one run.
pub const MAX_BATCH: usize = 64;

/// The most copies of a detector (`instances`) a `detect` stage runs.
pub const MAX_INSTANCES: usize = 16;

/// `batch.timeout_ms` when not given.
const DEFAULT_BATCH_TIMEOUT_MS: f64 = 10.0;

/// Which detector a `detect` stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DetectBackend {
    /// An ONNX detector.
    Onnx,
    /// OpenCV's HOG people detector.
    HogPeople,
}

/// `[stage.hog]`: HOG people detector search settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HogSpec {
    /// Pyramid step, > 1 (default 1.05).
    scale: Option<Spanned<f64>>,
    /// Window stride in pixels, a multiple of 8 (default 8).
    win_stride: Option<Spanned<i32>>,
    /// Resize frames by this factor first (default 1).
    upscale: Option<Spanned<f64>>,
    /// Minimum neighbouring hits for a grouped box (default 2).
    group_threshold: Option<Spanned<f64>>,
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let spec: DetectSpec = r.typed(table)?;
    let settings = detect(r, &spec, ctx)?;
    check_stream_formats(r, ctx, &settings)?;
    Ok(Arc::new(settings))
}

/// Resolves backend, model, thresholds, labels.
fn detect(
    r: &Resolver<'_>,
    spec: &DetectSpec,
    ctx: &StageContext<'_>,
) -> Result<DetectSettings, ConfigError> {
    let field = ctx.field;
    let batch = batch(r, spec.batch.as_ref(), field)?;
    let instances = match &spec.instances {
        None => 1,
        Some(n) if !(1..=MAX_INSTANCES).contains(n.get_ref()) => {
            return Err(r.invalid(
                n.span(),
                format!("{field}.instances"),
                format!("must be 1 to {MAX_INSTANCES}"),
            ));
        }
        Some(n) if *n.get_ref() > 1 && batch.is_some() => {
            return Err(r.invalid(
                n.span(),
                format!("{field}.instances"),
                "give `batch` or `instances`, not both: a batched stage runs one model at a time",
            ));
        }
        Some(n) => *n.get_ref(),
    };
    let backend_kind = spec
        .backend
        .as_ref()
        .map_or(DetectBackend::Onnx, |b| *b.get_ref());
    let backend = match backend_kind {
        DetectBackend::Onnx => {
            if let Some(h) = &spec.hog {
                return Err(r.invalid(
                    h.span(),
                    format!("{field}.hog"),
                    "only used by backend = \"hog_people\"",
                ));
            }
            let Some(model) = &spec.model else {
                return Err(r.invalid(
                    ctx.kind_span.clone(),
                    format!("{field}.model"),
                    "an ONNX detector needs `[stage.model]` with `path`",
                ));
            };
            let mut model_settings = r.model(model.get_ref(), &format!("{field}.model"))?;
            if let Some(b) = &batch {
                if let Some(m) = &model.get_ref().max_batch
                    && *m.get_ref() != b.max
                {
                    return Err(r.invalid(
                        m.span(),
                        format!("{field}.model.max_batch"),
                        format!(
                            "contradicts batch.max = {}: a detect stage batches frames by `batch` alone (drop max_batch)",
                            b.max
                        ),
                    ));
                }
                model_settings.max_batch = b.max;
            }
            Backend::Onnx {
                model: model_settings,
                layout: spec
                    .layout
                    .as_ref()
                    .map_or(Layout::Yolov8, |l| *l.get_ref()),
                outputs: spec.outputs.as_ref().map(|o| o.get_ref().clone()),
            }
        }
        DetectBackend::HogPeople => {
            for (name, span) in [
                ("model", spec.model.as_ref().map(Spanned::span)),
                ("layout", spec.layout.as_ref().map(Spanned::span)),
                ("outputs", spec.outputs.as_ref().map(Spanned::span)),
                ("batch", spec.batch.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    return Err(r.invalid(
                        span,
                        format!("{field}.{name}"),
                        "not used by backend = \"hog_people\"",
                    ));
                }
            }
            Backend::HogPeople(hog(r, spec.hog.as_ref(), field)?)
        }
    };
    let confidence = match (&backend, &spec.confidence) {
        // HOG scores are SVM margins, not probabilities.
        (Backend::HogPeople(_), Some(c)) => *c.get_ref(),
        (Backend::HogPeople(_), None) => 0.0,
        (Backend::Onnx { .. }, _) => {
            r.unit(&spec.confidence, format!("{field}.confidence"), 0.25, false)?
        }
    };
    let max_detections = match &spec.max_detections {
        Some(m) if *m.get_ref() == 0 => {
            return Err(r.invalid(
                m.span(),
                format!("{field}.max_detections"),
                "must be at least 1",
            ));
        }
        Some(m) => *m.get_ref(),
        None => 100,
    };
    let labels: Option<PathBuf> = match &spec.labels {
        None => None,
        Some(l) => Some(r.existing_file(l, &format!("{field}.labels"))?),
    };
    Ok(DetectSettings {
        backend,
        confidence,
        iou: r.unit(&spec.iou, format!("{field}.iou"), 0.45, true)?,
        max_detections,
        classes: spec.classes.as_ref().map(|c| c.get_ref().clone()),
        labels,
        batch,
        instances,
    })
}

/// Reads `batch = { max, timeout_ms }`.
fn batch(
    r: &Resolver<'_>,
    spec: Option<&Spanned<BatchSpec>>,
    field: &str,
) -> Result<Option<BatchPolicy>, ConfigError> {
    let Some(b) = spec else {
        return Ok(None);
    };
    let b = b.get_ref();
    let max = *b.max.get_ref();
    if !(1..=MAX_BATCH).contains(&max) {
        return Err(r.invalid(
            b.max.span(),
            format!("{field}.batch.max"),
            format!("must be between 1 and {MAX_BATCH}"),
        ));
    }
    let timeout_ms = match &b.timeout_ms {
        None => DEFAULT_BATCH_TIMEOUT_MS,
        Some(t) if (0.0..=10_000.0).contains(t.get_ref()) => *t.get_ref(),
        Some(t) => {
            return Err(r.invalid(
                t.span(),
                format!("{field}.batch.timeout_ms"),
                "must be between 0 and 10000",
            ));
        }
    };
    Ok(Some(BatchPolicy {
        max,
        timeout: Duration::from_secs_f64(timeout_ms / 1e3),
    }))
}

fn hog(
    r: &Resolver<'_>,
    spec: Option<&Spanned<HogSpec>>,
    field: &str,
) -> Result<HogSettings, ConfigError> {
    let mut hog = HogSettings::default();
    let Some(h) = spec else {
        return Ok(hog);
    };
    let h = h.get_ref();
    let bad = |span: Range<usize>, name: &str, message: &str| {
        Err(r.invalid(span, format!("{field}.hog.{name}"), message))
    };
    if let Some(v) = &h.scale {
        if !(*v.get_ref() > 1.0 && *v.get_ref() <= 2.0) {
            return bad(v.span(), "scale", "must be in (1, 2]");
        }
        hog.scale = *v.get_ref();
    }
    if let Some(v) = &h.win_stride {
        if *v.get_ref() <= 0 || *v.get_ref() % 8 != 0 {
            return bad(v.span(), "win_stride", "must be a positive multiple of 8");
        }
        hog.win_stride = *v.get_ref();
    }
    if let Some(v) = &h.upscale {
        if !(0.25..=4.0).contains(v.get_ref()) {
            return bad(v.span(), "upscale", "must be between 0.25 and 4");
        }
        hog.upscale = *v.get_ref();
    }
    if let Some(v) = &h.group_threshold {
        if *v.get_ref() < 0.0 {
            return bad(v.span(), "group_threshold", "must be at least 0");
        }
        hog.group_threshold = *v.get_ref();
    }
    Ok(hog)
}

/// A detector reads packed RGB-family frames; HOG needs 3 channels.
fn check_stream_formats(
    r: &Resolver<'_>,
    ctx: &StageContext<'_>,
    settings: &DetectSettings,
) -> Result<(), ConfigError> {
    use gst_video::VideoFormat as F;
    let allowed: &[F] = match settings.backend {
        Backend::HogPeople(_) => &[F::Rgb, F::Bgr],
        Backend::Onnx { .. } => &[F::Rgb, F::Bgr, F::Rgba, F::Bgra],
    };
    let applies = |id: &str| ctx.streams.is_none_or(|s| s.iter().any(|x| x == id));
    for s in ctx.sources.iter().filter(|s| applies(&s.id)) {
        if !allowed.contains(&s.format) {
            return Err(r.invalid(
                ctx.kind_span.clone(),
                ctx.field("kind"),
                format!(
                    "this detector cannot read source `{}`'s {} frames: give that source format = \"RGB\"",
                    s.id,
                    s.format.to_str()
                ),
            ));
        }
    }
    Ok(())
}

impl StageSettings for DetectSettings {
    fn build(&self) -> Result<Built, ModelError> {
        let stage = DetectStage::new(self)?;
        let info = stage.info();
        Ok(Built {
            stage: Box::new(stage),
            info: Some(info),
        })
    }

    fn describe(&self) -> String {
        format!(
            "confidence {}, NMS IoU {}, at most {} detections{}{}{}",
            self.confidence,
            self.iou,
            self.max_detections,
            self.classes
                .as_ref()
                .map(|c| format!(", classes {c:?}"))
                .unwrap_or_default(),
            self.batch
                .map(|b| format!(
                    ", batches of up to {} frames (timeout {} ms)",
                    b.max,
                    b.timeout.as_secs_f64() * 1e3
                ))
                .unwrap_or_default(),
            if self.instances > 1 {
                format!(", {} instances", self.instances)
            } else {
                String::new()
            }
        )
    }

    fn batch(&self) -> Option<BatchPolicy> {
        self.batch
    }

    fn instances(&self) -> usize {
        self.instances
    }
}
