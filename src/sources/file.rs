//! `file`: a recording on disk, any container and codec GStreamer decodes.

use std::path::{Path, PathBuf};
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

/// The `file` kind.
pub static KIND: SourceKind = SourceKind {
    name: "file",
    fields: field_names::<FileSpec>,
    resolve,
};

/// A `file` source's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    /// The file path. `${VAR}` and `~` expand; relative to the pipeline file.
    location: Option<Spanned<String>>,
    /// Pace the recording at its native frame rate, like a camera.
    realtime: Option<Spanned<bool>>,
}

/// A recording on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInput(pub PathBuf);

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &SourceContext<'_>,
) -> Result<ResolvedSource, ConfigError> {
    let spec: FileSpec = r.typed(table)?;
    let (raw, span) = ctx.required(r, &spec.location, "location", KIND.name)?;
    let field = ctx.field("location");
    let expanded = expand(&raw).map_err(|m| r.invalid(span.clone(), &field, m))?;
    let path = r.base.join(expanded);
    if !path.is_file() {
        return Err(r.invalid(
            span,
            field,
            format!("file not found: {}", path.display()),
        ));
    }
    Ok(ResolvedSource {
        input: Arc::new(FileInput(path)),
        live: None,
        realtime: spec.realtime.map(Spanned::into_inner),
        reconnect: None,
    })
}

impl SourceInput for FileInput {
    fn launch_head(&self, src_name: &str, _live: bool) -> String {
        format!("filesrc name={src_name} ! decodebin")
    }

    fn configure(&self, src: &gstreamer::Element) {
        src.set_property("location", self.0.to_string_lossy().as_ref());
    }

    fn live(&self, _explicit: Option<bool>) -> bool {
        false
    }

    fn can_pace(&self) -> bool {
        true
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.0)
    }

    fn describe(&self) -> String {
        format!("file {}", self.0.display())
    }
}
