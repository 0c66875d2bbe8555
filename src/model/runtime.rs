//! Finding and loading ONNX Runtime's shared library, once per process.
//!
//! `ort` is built with `load-dynamic`: the library comes from the
//! `onnxruntime` Python wheel the set-up script installs, never from a
//! download. Looked for, in order: `ORT_DYLIB_PATH`; the set-up script's venv
//! (`$PERCEPT_CACHE/venv`, default `~/.cache/percept/venv`); beside the
//! executable; the system library folders.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::ModelError;

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment, ModelError> {
    ENVIRONMENT
        .get_or_init(|| {
            let candidates = library_candidates();
            let Some(path) = candidates.iter().find(|p| p.is_file()) else {
                return Err(format!(
                    "ONNX Runtime's shared library (libonnxruntime.so) was not found; looked at: {} (set ORT_DYLIB_PATH, or run scripts/setup.sh)",
                    candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ));
            };
            tracing::info!("loading ONNX Runtime from {}", path.display());
            ort::init_from(path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
                .with_name("percept")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
        })
        .as_ref()
        .map_err(|message| ModelError::Runtime(message.clone()))
}

fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    let cache = std::env::var_os("PERCEPT_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/percept")));
    if let Some(cache) = cache {
        out.extend(wheel_libraries(&cache.join("venv/lib")));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.extend(versioned(&dir));
    }
    for dir in [
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ] {
        out.extend(versioned(Path::new(dir)));
    }
    out
}

/// `lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so*` under a venv.
fn wheel_libraries(lib: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib) else {
        return vec![lib.join("python3/site-packages/onnxruntime/capi/libonnxruntime.so")];
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .flat_map(|e| versioned(&e.path().join("site-packages/onnxruntime/capi")))
        .collect();
    out.sort();
    out
}

/// `libonnxruntime.so` and `libonnxruntime.so.X.Y.Z` in a folder (the wheel has only the versioned name).
fn versioned(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.join("libonnxruntime.so")];
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so."))
            })
            .collect();
        found.sort();
        out.extend(found.into_iter().rev());
    }
    out
}
