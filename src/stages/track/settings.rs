//! The `track` kind's pipeline-file settings (`[stage.tracker]`).

use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use super::{Horizon, Motion, TrackSettings, TrackStage};
use crate::config::ConfigError;
use crate::config::resolve::{field_names, Resolver, StageContext, StageKind};
use crate::model::ModelError;
use crate::stage::{Built, StageSettings};

/// The `track` kind.
pub static KIND: StageKind = StageKind {
    name: "track",
    admission: false,
    asynchronous: false,
    fields: field_names::<TrackSpec>,
    resolve,
};

/// A `track` stage's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackSpec {
    /// Tracker parameters (`[stage.tracker]`).
    tracker: Option<Spanned<TrackerSpec>>,
}

/// `[stage.tracker]`: ByteTrack parameters; times in seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackerSpec {
    high_score: Option<Spanned<f32>>,
    low_score: Option<Spanned<f32>>,
    new_track_score: Option<Spanned<f32>>,
    match_iou: Option<Spanned<f32>>,
    low_match_iou: Option<Spanned<f32>>,
    max_lost_s: Option<Spanned<f32>>,
    confirm_s: Option<Spanned<f32>>,
    appearance_weight: Option<Spanned<f32>>,
    appearance_gate: Option<Spanned<f32>>,
    embedding_ema: Option<Spanned<f32>>,
    reacquire_sizes: Option<Spanned<f32>>,
    /// `"velocity"` (default) or `"flow"`: how boxes move between detections.
    motion: Option<Spanned<String>>,
    /// Seconds past each frame's capture at which its tracks are forecast,
    /// or `"auto"`. Default: no forecast.
    forecast_s: Option<Spanned<HorizonSpec>>,
}

/// `forecast_s`: seconds or `"auto"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HorizonSpec {
    Seconds(f64),
    Named(String),
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let spec: TrackSpec = r.typed(table)?;
    Ok(Arc::new(tracker(r, spec.tracker.as_ref(), ctx.field)?))
}

fn tracker(
    r: &Resolver<'_>,
    spec: Option<&Spanned<TrackerSpec>>,
    field: &str,
) -> Result<TrackSettings, ConfigError> {
    let mut t = TrackSettings::default();
    let Some(spec) = spec else {
        return Ok(t);
    };
    let spec = spec.get_ref();
    let f = |name: &str| format!("{field}.tracker.{name}");
    let unit =
        |v: &Option<Spanned<f32>>, name: &str, default: f32| r.unit(v, f(name), default, false);
    t.high_score = unit(&spec.high_score, "high_score", t.high_score)?;
    t.low_score = unit(&spec.low_score, "low_score", t.low_score)?;
    t.new_track_score = unit(&spec.new_track_score, "new_track_score", t.new_track_score)?;
    t.match_iou = unit(&spec.match_iou, "match_iou", t.match_iou)?;
    t.low_match_iou = unit(&spec.low_match_iou, "low_match_iou", t.low_match_iou)?;
    t.appearance_weight = unit(
        &spec.appearance_weight,
        "appearance_weight",
        t.appearance_weight,
    )?;
    t.embedding_ema = unit(&spec.embedding_ema, "embedding_ema", t.embedding_ema)?;
    if let Some(g) = &spec.appearance_gate {
        if !(0.0..=2.0).contains(g.get_ref()) {
            return Err(r.invalid(
                g.span(),
                f("appearance_gate"),
                "a cosine distance, between 0 and 2",
            ));
        }
        t.appearance_gate = *g.get_ref();
    }
    for (v, name, slot) in [
        (&spec.max_lost_s, "max_lost_s", &mut t.max_lost_s),
        (&spec.confirm_s, "confirm_s", &mut t.confirm_s),
        (
            &spec.reacquire_sizes,
            "reacquire_sizes",
            &mut t.reacquire_sizes,
        ),
    ] {
        if let Some(v) = v {
            if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) {
                let unit = if name == "reacquire_sizes" {
                    "box sizes, at least 0"
                } else {
                    "seconds, at least 0"
                };
                return Err(r.invalid(v.span(), f(name), unit));
            }
            *slot = *v.get_ref();
        }
    }
    if let Some(m) = &spec.motion {
        t.motion = match m.get_ref().as_str() {
            "velocity" => Motion::Velocity,
            "flow" => Motion::Flow,
            _ => {
                return Err(r.invalid(
                    m.span(),
                    f("motion"),
                    "\"velocity\" (constant-velocity prediction) or \"flow\" (optical flow inside each box)",
                ));
            }
        };
    }
    if let Some(h) = &spec.forecast_s {
        t.forecast = match h.get_ref() {
            HorizonSpec::Seconds(s) if s.is_finite() && *s >= 0.0 => Horizon::Fixed(*s),
            HorizonSpec::Named(n) if n == "auto" => Horizon::Auto,
            _ => {
                return Err(r.invalid(
                    h.span(),
                    f("forecast_s"),
                    "seconds past the frame's capture (at least 0), or \"auto\" (the next frame a consumer can read the record at)",
                ));
            }
        };
    }
    if let Some(l) = &spec.low_score
        && t.low_score > t.high_score
    {
        return Err(r.invalid(l.span(), f("low_score"), "must not exceed high_score"));
    }
    Ok(t)
}

impl StageSettings for TrackSettings {
    fn build(&self) -> Result<Built, ModelError> {
        Ok(Built {
            stage: Box::new(TrackStage::new(*self)),
            info: None,
        })
    }

    fn describe(&self) -> String {
        format!(
            "high score {}, new track score {}, match IoU {}, max lost {} s, motion {}{}{}",
            self.high_score,
            self.new_track_score,
            self.match_iou,
            self.max_lost_s,
            match self.motion {
                Motion::Velocity => "velocity",
                Motion::Flow => "optical flow",
            },
            if self.appearance_weight > 0.0 {
                format!(", appearance weight {} (with re-ID)", self.appearance_weight)
            } else {
                String::new()
            },
            match self.forecast {
                Horizon::Off => String::new(),
                Horizon::Fixed(s) => format!(", forecast {s} s ahead"),
                Horizon::Auto => ", forecast to the next readable frame".to_string(),
            }
        )
    }
}
