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
}

/// A launch fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct GstInput(pub String);

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
    Ok(ResolvedSource {
        input: Arc::new(GstInput(launch)),
        live: spec.live.map(Spanned::into_inner),
        realtime: None,
    })
}

impl SourceInput for GstInput {
    fn launch_head(&self, _src_name: &str, _live: bool) -> String {
        self.0.clone()
    }

    fn describe(&self) -> String {
        format!("gst `{}`", self.0)
    }
}
