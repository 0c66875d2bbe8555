//! `uri`: a URI GStreamer opens (`rtsp://`, `http(s)://`, `file://`).
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
    /// Seconds a network source waits for the server before failing
    /// (rtspsrc `tcp-timeout`/`timeout`, souphttpsrc `timeout`); default:
    /// the element's own (RTSP 20 s, HTTP 15 s).
    timeout_s: Option<Spanned<f64>>,
    /// Rebuild the pipeline when the stream fails or stops sending
    /// (`{ after_s, backoff_max_s, attempts }`); network URIs only.
    reconnect: Option<Spanned<ReconnectSpec>>,
}

/// A URI.
#[derive(Debug, Clone, PartialEq)]
pub struct UriInput {
    /// The URI (with credentials, if any: never printed, see [`crate::redact`]).
    pub uri: String,
    /// Network timeout, µs.
    pub timeout_us: Option<u64>,
}

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
    let timeout_us = match &spec.timeout_s {
        Some(t) if !(t.get_ref().is_finite() && *t.get_ref() > 0.0) => {
            return Err(r.invalid(
                t.span(),
                ctx.field("timeout_s"),
                "must be a positive number of seconds",
            ));
        }
        Some(t) => Some((t.get_ref() * 1e6) as u64),
        None => None,
    };
    let input = UriInput { uri, timeout_us };
    let reconnect = r.reconnect(&spec.reconnect, ctx)?;
    if let Some(span) = spec.reconnect.as_ref().map(Spanned::span)
        && !input.reconnects()
    {
        return Err(r.invalid(
            span,
            ctx.field("reconnect"),
            "files never reconnect: `reconnect` is for network streams (rtsp://, http://, ...)",
        ));
    }
    Ok(ResolvedSource {
        input: Arc::new(input),
        live: spec.live.map(Spanned::into_inner),
        realtime: spec.realtime.map(Spanned::into_inner),
        reconnect,
    })
}

/// Sets a network element's timeouts: `tcp-timeout` and a 64-bit `timeout`
/// are in µs (rtspsrc), a 32-bit `timeout` in seconds (souphttpsrc).
fn set_timeout(element: &gstreamer::Element, us: u64) {
    if element.has_property("tcp-timeout") {
        element.set_property("tcp-timeout", us);
    }
    if let Some(p) = element.find_property("timeout") {
        if p.value_type() == u64::static_type() {
            element.set_property("timeout", us);
        } else if p.value_type() == u32::static_type() {
            element.set_property("timeout", u32::try_from(us.div_ceil(1_000_000)).unwrap_or(u32::MAX));
        }
    }
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
        src.set_property("uri", self.uri.as_str());
        let timeout_us = self.timeout_us;
        // RTSP: ask rtspsrc for the sender's NTP time of each frame (RTCP
        // sender reports), used to pair streams from different hosts.
        src.connect("source-setup", false, move |args| {
            if let Some(Ok(element)) = args.get(1).map(|v| v.get::<gstreamer::Element>()) {
                if element.has_property("add-reference-timestamp-meta") {
                    element.set_property("add-reference-timestamp-meta", true);
                }
                if let Some(us) = timeout_us {
                    set_timeout(&element, us);
                }
            }
            None
        });
    }

    fn live(&self, explicit: Option<bool>) -> bool {
        explicit.unwrap_or_else(|| is_live_scheme(&self.uri))
    }

    fn can_pace(&self) -> bool {
        true
    }

    fn is_network(&self) -> bool {
        !self.uri.to_ascii_lowercase().starts_with("file:")
    }

    fn reconnects(&self) -> bool {
        self.is_network()
    }

    fn describe(&self) -> String {
        format!("uri {}", crate::redact::redact(&self.uri))
    }
}
