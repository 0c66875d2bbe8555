//! `uri`: a URI GStreamer opens (`rtsp://`, `http(s)://`, `file://`).
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{
    ResolvedSource, Resolver, SourceContext, SourceKind, expand, field_names,
};
use crate::source::SourceInput;

use gstreamer::prelude::*;

/// The `uri` kind.
pub static KIND: SourceKind = SourceKind {
    name: "uri",
    fields: field_names::<UriSpec>,
    resolve,
};

/// A `uri` source's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UriSpec {
    /// The URI. `${VAR}` expands.
    location: Option<Spanned<String>>,
    /// Live (default: by scheme, `rtsp`, `udp`, … are live).
    live: Option<Spanned<bool>>,
    /// Pace a recording at its native frame rate, like a camera.
    realtime: Option<Spanned<bool>>,
}

/// A URI.
#[derive(Debug, Clone, PartialEq)]
pub struct UriInput(pub String);

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &SourceContext<'_>,
) -> Result<ResolvedSource, ConfigError> {
    let spec: UriSpec = r.typed(table)?;
    let (raw, span) = ctx.required(r, &spec.location, "location", KIND.name)?;
    let uri = expand(&raw).map_err(|m| r.invalid(span.clone(), ctx.field("location"), m))?;
    if !uri.contains("://") {
        return Err(r.invalid(
            span,
            ctx.field("location"),
            format!("`{uri}` is not a URI (scheme://...)"),
        ));
    }
    Ok(ResolvedSource {
        input: Arc::new(UriInput(uri)),
        live: spec.live.map(Spanned::into_inner),
        realtime: spec.realtime.map(Spanned::into_inner),
    })
}

/// Schemes that deliver in real time.
fn is_live_scheme(uri: &str) -> bool {
    let scheme = uri.split("://").next().unwrap_or("").to_ascii_lowercase();
    matches!(
        scheme.as_str(),
        "rtsp" | "rtsps" | "rtspt" | "rtmp" | "udp" | "rtp" | "srt"
    )
}

impl SourceInput for UriInput {
    fn launch_head(&self, src_name: &str, _live: bool) -> String {
        format!("uridecodebin name={src_name}")
    }

    fn configure(&self, src: &gstreamer::Element) {
        src.set_property("uri", self.0.as_str());
        // RTSP: ask rtspsrc for the sender's NTP time of each frame (RTCP
        // sender reports), used to pair streams from different hosts.
        src.connect("source-setup", false, |args| {
            if let Some(Ok(element)) = args.get(1).map(|v| v.get::<gstreamer::Element>())
                && element.has_property("add-reference-timestamp-meta")
            {
                element.set_property("add-reference-timestamp-meta", true);
            }
            None
        });
    }

    fn live(&self, explicit: Option<bool>) -> bool {
        explicit.unwrap_or_else(|| is_live_scheme(&self.0))
    }

    fn can_pace(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("uri {}", self.0)
    }
}
