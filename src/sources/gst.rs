//! `gst`: a `gst-launch-1.0` fragment that ends in raw video.
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{
    ResolvedSource, Resolver, SourceContext, SourceKind, field_names,
};
use crate::source::SourceInput;

/// The `gst` kind.
pub static KIND: SourceKind = SourceKind {
    name: "gst",
    fields: field_names::<GstSpec>,
    resolve,
};

/// A `gst` source's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GstSpec {
    /// The fragment.
    launch: Option<Spanned<String>>,
    /// The fragment delivers in real time.
    live: Option<Spanned<bool>>,
    /// Frames per second of frames without a PTS when the caps carry no rate
    /// (image sequences): a number (`25`) or a fraction (`"30000/1001"`).
    framerate: Option<Spanned<FramerateSpec>>,
}

/// A declared frame rate as written: `25` or `"30000/1001"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FramerateSpec {
    /// Whole frames per second.
    Whole(u32),
    /// `"numerator/denominator"` or a whole number as text.
    Text(String),
}

impl FramerateSpec {
    /// (numerator, denominator), both at least 1; `Err` says why not.
    pub fn fraction(&self) -> Result<(u32, u32), String> {
        let bad = || "expected frames per second: a whole number (25) or a fraction (\"30000/1001\")".to_string();
        let (n, d) = match self {
            FramerateSpec::Whole(n) => (*n, 1),
            FramerateSpec::Text(t) => match t.split_once('/') {
                Some((n, d)) => (
                    n.trim().parse().map_err(|_| bad())?,
                    d.trim().parse().map_err(|_| bad())?,
                ),
                None => (t.trim().parse().map_err(|_| bad())?, 1),
            },
        };
        if n == 0 || d == 0 {
            return Err("the frame rate must be positive".into());
        }
        Ok((n, d))
    }
}

/// A launch fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct GstInput {
    /// The fragment, ending in raw video.
    pub launch: String,
    /// The declared frame rate (numerator, denominator) in frames per second.
    pub framerate: Option<(u32, u32)>,
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &SourceContext<'_>,
) -> Result<ResolvedSource, ConfigError> {
    let spec: GstSpec = r.typed(table)?;
    let (launch, span) = ctx.required(r, &spec.launch, "launch", KIND.name)?;
    if launch.trim().is_empty() {
        return Err(r.invalid(span, ctx.field("launch"), "empty launch fragment"));
    }
    let framerate = match &spec.framerate {
        Some(f) => Some(
            f.get_ref()
                .fraction()
                .map_err(|m| r.invalid(f.span(), ctx.field("framerate"), m))?,
        ),
        None => None,
    };
    Ok(ResolvedSource {
        input: Arc::new(GstInput { launch, framerate }),
        live: spec.live.map(Spanned::into_inner),
        realtime: None,
        reconnect: None,
    })
}

impl SourceInput for GstInput {
    fn launch_head(&self, _src_name: &str, _live: bool) -> String {
        self.launch.clone()
    }

    fn declared_framerate(&self) -> Option<(u32, u32)> {
        self.framerate
    }

    fn describe(&self) -> String {
        match self.framerate {
            Some((n, d)) => format!("gst `{}` (declared {n}/{d} fps)", self.launch),
            None => format!("gst `{}`", self.launch),
        }
    }
}
