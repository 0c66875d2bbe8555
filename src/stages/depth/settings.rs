//! The `depth` kind's pipeline-file settings (`[stage.model]`,
//! `calibration`, the map to metric depth).

use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{field_names, Resolver, StageContext, StageKind};
use crate::model::ModelError;
use crate::stage::{Built, StageSettings};
use crate::config::resolve::ModelSpec;
use crate::model::preprocess::Resize;
use crate::stages::stereo_depth::depth_limits;

use super::{MonoDepthSettings, MonoDepthStage};

/// The `depth` kind.
pub static KIND: StageKind = StageKind {
    name: "depth",
    admission: true,
    asynchronous: false,
    fields: field_names::<DepthSpec>,
    resolve,
};

/// A `depth` stage's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepthSpec {
    /// The depth model (`[stage.model]`).
    model: Option<Spanned<ModelSpec>>,
    /// The calibration file: its left camera gives the intrinsics.
    calibration: Option<Spanned<String>>,
    /// The model outputs relative inverse depth (default true).
    inverse: Option<Spanned<bool>>,
    /// Fixed map to metric depth, `scale · r + shift` (inverted for inverse models).
    scale: Option<Spanned<f32>>,
    /// See `scale`.
    shift: Option<Spanned<f32>>,
    /// Depths beyond this are invalid (metres; default: no limit).
    max_depth_m: Option<Spanned<f32>>,
    /// Each side of a box shrinks by this fraction before its median depth (default 0.25).
    box_shrink: Option<Spanned<f32>>,
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let spec: DepthSpec = r.typed(table)?;
    let field = ctx.field;
    let Some(model) = &spec.model else {
        return Err(r.invalid(
            ctx.kind_span.clone(),
            format!("{field}.model"),
            "a depth stage needs `[stage.model]` with `path`",
        ));
    };
    let Some(cal) = &spec.calibration else {
        return Err(r.invalid(
            ctx.kind_span.clone(),
            format!("{field}.calibration"),
            "a depth stage needs `calibration` (its left camera gives the intrinsics)",
        ));
    };
    let mut settings = r.model(model.get_ref(), &format!("{field}.model"))?;
    if model.get_ref().resize.is_none() {
        settings.preprocess.resize = Resize::Stretch;
    }
    let calibration_path = r.existing_file(cal, &format!("{field}.calibration"))?;
    let calibration = crate::calib::StereoCalibration::load(&calibration_path)?;
    let fixed = match (&spec.scale, &spec.shift) {
        (Some(s), shift) => {
            if !s.get_ref().is_finite() || *s.get_ref() == 0.0 {
                return Err(r.invalid(
                    s.span(),
                    format!("{field}.scale"),
                    "a finite, non-zero number",
                ));
            }
            Some((*s.get_ref(), shift.as_ref().map_or(0.0, |t| *t.get_ref())))
        }
        (None, Some(t)) => {
            return Err(r.invalid(
                t.span(),
                format!("{field}.shift"),
                "only used with `scale`",
            ));
        }
        (None, None) => None,
    };
    let (max_depth_m, box_shrink) =
        depth_limits(r, &spec.max_depth_m, &spec.box_shrink, field)?;
    if fixed.is_none() && !ctx.earlier.contains(&crate::stages::stereo_depth::KIND.name) {
        return Err(r.invalid(
            ctx.kind_span.clone(),
            format!("{field}.scale"),
            "a depth stage needs a stereo_depth stage before it to fit against, or a fixed `scale` (and `shift`)",
        ));
    }
    Ok(Arc::new(MonoDepthSettings {
        model: settings,
        calibration_path,
        calibration,
        inverse: spec.inverse.as_ref().is_none_or(|v| *v.get_ref()),
        fixed,
        max_depth_m,
        box_shrink,
    }))
}

impl StageSettings for MonoDepthSettings {
    fn build(&self) -> Result<Built, ModelError> {
        Ok(Built {
            stage: Box::new(MonoDepthStage::new(self)?),
            info: None,
        })
    }

    fn describe(&self) -> String {
        match self.fixed {
            Some((scale, shift)) => format!(
                "onnx {}, fixed scale {scale} shift {shift}",
                self.model.path.display()
            ),
            None => format!("onnx {}, fitted to stereo", self.model.path.display()),
        }
    }
}
