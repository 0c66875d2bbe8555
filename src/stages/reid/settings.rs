//! The `reid` kind's pipeline-file settings (`[stage.model]`, `[stage.reuse]`).

use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{field_names, ModelSpec, Resolver, StageContext, StageKind};
use crate::model::ModelError;
use crate::stage::{Built, StageSettings};
use crate::model::ModelSettings;
use crate::model::preprocess::Resize;

use super::{ReidStage, ReuseSettings};

/// The `reid` kind.
pub static KIND: StageKind = StageKind {
    name: "reid",
    admission: true,
    asynchronous: false,
    fields: field_names::<ReidSpec>,
    resolve,
};

/// A `reid` stage's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReidSpec {
    /// The embedding model (`[stage.model]`).
    model: Option<Spanned<ModelSpec>>,
    /// When a detection reuses its object's last embedding (`[stage.reuse]`).
    reuse: Option<Spanned<ReuseSpec>>,
}

/// `[stage.reuse]` of a `reid` stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReuseSpec {
    iou: Option<Spanned<f32>>,
    grow: Option<Spanned<f32>>,
    refresh_s: Option<Spanned<f32>>,
}


/// A `reid` stage's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReidSettings {
    /// The embedding model.
    pub model: ModelSettings,
    /// Embedding reuse for objects seen on the last frame.
    pub reuse: ReuseSettings,
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let spec: ReidSpec = r.typed(table)?;
    let field = ctx.field;
    let Some(model) = &spec.model else {
        return Err(r.invalid(
            ctx.kind_span.clone(),
            format!("{field}.model"),
            "a reid stage needs `[stage.model]` with `path`",
        ));
    };
    let mut settings = r.model(model.get_ref(), &format!("{field}.model"))?;
    if model.get_ref().max_batch.is_none() {
        settings.max_batch = 32;
    }
    if model.get_ref().resize.is_none() {
        settings.preprocess.resize = Resize::Stretch;
    }
    Ok(Arc::new(ReidSettings {
        model: settings,
        reuse: reuse(r, spec.reuse.as_ref(), field)?,
    }))
}

fn reuse(
    r: &Resolver<'_>,
    spec: Option<&Spanned<ReuseSpec>>,
    field: &str,
) -> Result<ReuseSettings, ConfigError> {
    let mut reuse = ReuseSettings::default();
    let Some(spec) = spec else {
        return Ok(reuse);
    };
    let spec = spec.get_ref();
    let check = |v: &Option<Spanned<f32>>,
                 name: &str,
                 slot: &mut f32,
                 ok: fn(f32) -> bool,
                 rule: &str| {
        if let Some(v) = v {
            if !ok(*v.get_ref()) {
                return Err(r.invalid(
                    v.span(),
                    format!("{field}.reuse.{name}"),
                    rule.to_string(),
                ));
            }
            *slot = *v.get_ref();
        }
        Ok(())
    };
    check(
        &spec.iou,
        "iou",
        &mut reuse.iou,
        |x| (0.0..=1.01).contains(&x),
        "an IoU, 0 to 1 (above 1: never reuse)",
    )?;
    check(
        &spec.grow,
        "grow",
        &mut reuse.grow,
        |x| x.is_finite() && x >= 1.0,
        "an area ratio, at least 1",
    )?;
    check(
        &spec.refresh_s,
        "refresh_s",
        &mut reuse.refresh_s,
        |x| x.is_finite() && x >= 0.0,
        "seconds, at least 0",
    )?;
    Ok(reuse)
}

impl StageSettings for ReidSettings {
    fn build(&self) -> Result<Built, ModelError> {
        Ok(Built {
            stage: Box::new(ReidStage::with_reuse(&self.model, self.reuse)?),
            info: None,
        })
    }

    fn describe(&self) -> String {
        format!(
            "onnx {}, up to {} crops per run",
            self.model.path.display(),
            self.model.max_batch
        )
    }
}
