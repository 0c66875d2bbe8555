//! `percept model-info MODEL.onnx`: a model's inputs, outputs and metadata.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use percept::model::{ModelSettings, contract, open_session};

#[derive(Debug, Args)]
pub struct ModelInfoArgs {
    /// The ONNX model file.
    model: PathBuf,
}

pub fn model_info(args: ModelInfoArgs) -> anyhow::Result<()> {
    let settings = ModelSettings::new(&args.model);
    let session = open_session(&settings)
        .map_err(|source| percept::Error::Model {
            stage: "model-info".into(),
            source,
        })
        .with_context(|| format!("cannot inspect {}", args.model.display()))?;
    let (inputs, outputs) = contract::session_tensors(&session);
    let mut out = format!("model {}\n", args.model.display());
    out += "  inputs:\n";
    for t in &inputs {
        out += &format!("    {t}\n");
    }
    out += "  outputs:\n";
    for t in &outputs {
        out += &format!("    {t}\n");
    }
    if let Ok(meta) = session.metadata() {
        out += "  metadata:\n";
        for (key, value) in [
            ("producer", meta.producer()),
            ("name", meta.name()),
            ("description", meta.description()),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out += &format!("    {key}: {v}\n");
            }
        }
        for key in meta.custom_keys().unwrap_or_default() {
            let value = meta.custom(&key).unwrap_or_default();
            let short: String = value.chars().take(200).collect();
            out += &format!(
                "    {key}: {short}{}\n",
                if value.chars().count() > 200 {
                    "..."
                } else {
                    ""
                }
            );
        }
    }
    print!("{out}");
    Ok(())
}
