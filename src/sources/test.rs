//! `test`: GStreamer's `videotestsrc` (a pattern at a size and frame rate).
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{
    ResolvedSource, Resolver, SourceContext, SourceKind, field_names,
};
use crate::source::SourceInput;

/// The `test` kind.
pub static KIND: SourceKind = SourceKind {
    name: "test",
    fields: field_names::<TestSpec>,
    resolve,
};

/// Size of a `test` source without `width` and `height`.
const DEFAULT_SIZE: (u32, u32) = (320, 240);
/// Frame rate of a `test` source without `framerate`.
const DEFAULT_FRAMERATE: u32 = 30;

/// A `test` source's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSpec {
    /// `videotestsrc` pattern name (default `smpte`).
    pattern: Option<Spanned<String>>,
    /// Frames per second (default 30).
    framerate: Option<Spanned<u32>>,
    /// Behave like a live camera.
    live: Option<Spanned<bool>>,
}

/// A test pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct TestInput {
    /// `videotestsrc` pattern name.
    pub pattern: String,
    /// Frames per second.
    pub framerate: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &SourceContext<'_>,
) -> Result<ResolvedSource, ConfigError> {
    let spec: TestSpec = r.typed(table)?;
    let pattern = spec
        .pattern
        .as_ref()
        .map_or_else(|| "smpte".to_string(), |p| p.get_ref().clone());
    if !pattern
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        let span = spec
            .pattern
            .as_ref()
            .map_or(ctx.kind_span.clone(), Spanned::span);
        return Err(r.invalid(
            span,
            ctx.field("pattern"),
            format!("`{pattern}` is not a videotestsrc pattern name"),
        ));
    }
    let framerate = match &spec.framerate {
        Some(f) if *f.get_ref() == 0 => {
            return Err(r.invalid(f.span(), ctx.field("framerate"), "must be at least 1"));
        }
        Some(f) => *f.get_ref(),
        None => DEFAULT_FRAMERATE,
    };
    let (width, height) = ctx.size.unwrap_or(DEFAULT_SIZE);
    Ok(ResolvedSource {
        input: Arc::new(TestInput {
            pattern,
            framerate,
            width,
            height,
        }),
        live: spec.live.map(Spanned::into_inner),
        realtime: None,
        reconnect: None,
    })
}

impl SourceInput for TestInput {
    fn launch_head(&self, src_name: &str, live: bool) -> String {
        format!(
            "videotestsrc name={src_name} pattern={} is-live={live} ! video/x-raw,width={},height={},framerate={}/1",
            self.pattern, self.width, self.height, self.framerate
        )
    }

    fn sizes_itself(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "test pattern {} {}x{} @ {} fps",
            self.pattern, self.width, self.height, self.framerate
        )
    }
}
