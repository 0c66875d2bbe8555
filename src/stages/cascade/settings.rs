//! The `cascade` kind's pipeline-file settings (`[stage.model]`, `[[stage.exit]]`).

use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{field_names, ModelSpec, Resolver, StageContext, StageKind};
use crate::model::ModelError;
use crate::stage::{Built, StageSettings};
use crate::model::ModelSettings;

use super::{CascadeSettings, CascadeStage, ExitSettings};

/// The `cascade` kind.
pub static KIND: StageKind = StageKind {
    name: "cascade",
    admission: true,
    asynchronous: false,
    fields: field_names::<CascadeSpec>,
    resolve,
};

/// A `cascade` stage's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CascadeSpec {
    /// The first exit (`[stage.model]`).
    model: Option<Spanned<ModelSpec>>,
    /// The first exit's confidence threshold.
    threshold: Option<Spanned<f32>>,
    /// The later exits, in order (`[[stage.exit]]`).
    exit: Option<Spanned<Vec<ExitSpec>>>,
}

/// One `[[stage.exit]]` of a `cascade` stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExitSpec {
    path: Spanned<String>,
    /// Stop here when the best score reaches this (default 0: the last exit always answers).
    threshold: Option<Spanned<f32>>,
    threads: Option<Spanned<usize>>,
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let spec: CascadeSpec = r.typed(table)?;
    let field = ctx.field;
    let Some(model) = &spec.model else {
        return Err(r.invalid(
            ctx.kind_span.clone(),
            format!("{field}.model"),
            "a cascade stage needs `[stage.model]`: its first exit",
        ));
    };
    let threshold = |v: &Option<Spanned<f32>>, name: String, default: f32| match v {
        None => Ok(default),
        Some(t) if (0.0..=1.0).contains(t.get_ref()) => Ok(*t.get_ref()),
        Some(t) => Err(r.invalid(t.span(), name, "a score, 0 to 1")),
    };
    let first = ExitSettings {
        model: r.model(model.get_ref(), &format!("{field}.model"))?,
        threshold: threshold(&spec.threshold, format!("{field}.threshold"), 0.9)?,
    };
    let mut rest = Vec::new();
    for (i, e) in spec
        .exit
        .iter()
        .flat_map(|e| e.get_ref().iter())
        .enumerate()
    {
        let f = format!("{field}.exit[{i}]");
        let mut m = ModelSettings::new(r.existing_file(&e.path, &format!("{f}.path"))?);
        m.threads = e.threads.as_ref().map_or(1, |t| *t.get_ref());
        rest.push(ExitSettings {
            model: m,
            threshold: threshold(&e.threshold, format!("{f}.threshold"), 0.0)?,
        });
    }
    Ok(Arc::new(CascadeSettings { first, rest }))
}

impl StageSettings for CascadeSettings {
    fn build(&self) -> Result<Built, ModelError> {
        Ok(Built {
            stage: Box::new(CascadeStage::new(self)?),
            info: None,
        })
    }

    fn describe(&self) -> String {
        format!("{} exits", 1 + self.rest.len())
    }
}
