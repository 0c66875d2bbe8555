//! The source kinds, one file each, named like their `kind` string, and
//! the GStreamer engine they all run on ([`appsink`]). The `kinds!` line is
//! their registry: adding a source kind is a file plus its name there.

use std::path::PathBuf;
use std::sync::Arc;

use crate::source::SourceInput;

pub mod appsink;
kinds!(crate::config::resolve::SourceKind: file, uri, v4l2, test, gst, #[cfg(feature = "zenoh")] zenoh);

/// `--input`: a URI, a V4L2 device or a file path (relative to the working
/// directory, `${VAR}` and `~` expanded); `Err` says why not.
pub fn input_from_cli(raw: &str) -> Result<Arc<dyn SourceInput>, String> {
    if raw.contains("://") {
        return Ok(Arc::new(uri::UriInput {
            uri: raw.to_string(),
            timeout_us: None,
        }));
    }
    let expanded = crate::config::resolve::expand(raw)?;
    if expanded.starts_with("/dev/video") {
        return Ok(Arc::new(v4l2::V4l2Input(PathBuf::from(expanded))));
    }
    let path = std::path::absolute(&expanded).map_err(|e| format!("{expanded}: {e}"))?;
    if !path.is_file() {
        return Err(format!("file not found: {}", path.display()));
    }
    Ok(Arc::new(file::FileInput(path)))
}
