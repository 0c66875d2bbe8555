//! `v4l2`: a V4L2 camera device (always live).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{
    ReconnectSpec, ResolvedSource, Resolver, SourceContext, SourceKind, expand, field_names,
};
use crate::source::SourceInput;

use gstreamer::prelude::*;

/// The `v4l2` kind.
pub static KIND: SourceKind = SourceKind {
    name: "v4l2",
    fields: field_names::<V4l2Spec>,
    resolve,
};

/// A `v4l2` source's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct V4l2Spec {
    /// The device, `/dev/videoN`.
    location: Option<Spanned<String>>,
    /// Rebuild the pipeline when the device fails, disappears or stops
    /// sending (`{ after_s, backoff_max_s, attempts }`).
    reconnect: Option<Spanned<ReconnectSpec>>,
}

/// A camera device.
#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Input(pub PathBuf);

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &SourceContext<'_>,
) -> Result<ResolvedSource, ConfigError> {
    let spec: V4l2Spec = r.typed(table)?;
    let (raw, span) = ctx.required(r, &spec.location, "location", KIND.name)?;
    let dev = expand(&raw).map_err(|m| r.invalid(span, ctx.field("location"), m))?;
    Ok(ResolvedSource {
        input: Arc::new(V4l2Input(PathBuf::from(dev))),
        live: None,
        realtime: None,
        reconnect: r.reconnect(&spec.reconnect, ctx)?,
    })
}

impl SourceInput for V4l2Input {
    fn launch_head(&self, src_name: &str, _live: bool) -> String {
        format!("v4l2src name={src_name}")
    }

    fn configure(&self, src: &gstreamer::Element) {
        src.set_property("device", self.0.to_string_lossy().as_ref());
    }

    fn live(&self, _explicit: Option<bool>) -> bool {
        true
    }

    fn reconnects(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("v4l2 {}", self.0.display())
    }
}
