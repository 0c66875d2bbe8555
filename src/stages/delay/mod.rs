//! `delay`: spends a fixed time on each frame, standing in for a slow model
//! (tests of back-pressure, drops and Ctrl-C).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{field_names, Resolver, StageContext, StageKind};
use crate::frame::Frame;
use crate::model::ModelError;
use crate::record::Record;
use crate::stage::{Built, Stage, StageError, StageSettings};

/// The `delay` kind.
pub static KIND: StageKind = StageKind {
    name: "delay",
    admission: true,
    asynchronous: false,
    fields: field_names::<DelaySpec>,
    resolve,
};

/// A `delay` stage's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DelaySpec {
    /// Milliseconds the stage spends on each frame.
    delay_ms: Option<Spanned<f64>>,
}

/// A `delay` stage's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelaySettings {
    /// Time spent on each frame.
    pub delay: Duration,
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let spec: DelaySpec = r.typed(table)?;
    let Some(d) = &spec.delay_ms else {
        return Err(r.invalid(
            ctx.kind_span.clone(),
            ctx.field("delay_ms"),
            "kind = \"delay\" needs `delay_ms`",
        ));
    };
    let ms = *d.get_ref();
    if !(0.0..=60_000.0).contains(&ms) {
        return Err(r.invalid(
            d.span(),
            ctx.field("delay_ms"),
            "must be between 0 and 60000",
        ));
    }
    Ok(Arc::new(DelaySettings {
        delay: Duration::from_secs_f64(ms / 1e3),
    }))
}

impl StageSettings for DelaySettings {
    fn build(&self) -> Result<Built, ModelError> {
        Ok(Built {
            stage: Box::new(Delay::new(self.delay)),
            info: None,
        })
    }

    fn describe(&self) -> String {
        format!("{:.1} ms per frame", self.delay.as_secs_f64() * 1e3)
    }
}

/// The `delay` stage.
pub struct Delay {
    delay: Duration,
}

impl Delay {
    /// A stage that sleeps `delay` per frame.
    pub fn new(delay: Duration) -> Delay {
        Delay { delay }
    }
}

impl Stage for Delay {
    fn process(&mut self, _frame: &Frame, _record: &mut Record) -> Result<(), StageError> {
        std::thread::sleep(self.delay);
        Ok(())
    }
}
