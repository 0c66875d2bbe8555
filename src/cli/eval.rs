//! `percept eval --gt GT --pred PRED`: MOTA, IDF1, ID switches, fragmentations,
//! precision and recall of tracks against ground truth.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use percept::eval::{evaluate, read_tracks};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Ground truth: MOTChallenge text or JSON Lines (`seq`, `objects: [{id, bbox}]`).
    #[arg(long)]
    gt: PathBuf,
    /// Predictions: percept's JSON Lines output (confirmed tracks) or MOTChallenge text.
    #[arg(long)]
    pred: PathBuf,
    /// Minimum IoU for a match.
    #[arg(long, default_value_t = 0.5)]
    iou: f32,
    /// Only this stream of a multi-stream output.
    #[arg(long)]
    stream: Option<String>,
    /// Print one JSON object (fractions, not percentages) instead of a table.
    #[arg(long)]
    json: bool,
    /// Streaming evaluation: each ground-truth frame is scored against the
    /// newest output written by its capture instant (needs percept's JSON
    /// Lines), taking tracks where their records forecast them when they do.
    #[arg(long)]
    streaming: bool,
    /// With --streaming: move each box by its track's `velocity_px_s` from
    /// its record's capture instant to the scored frame's, as a consumer of
    /// timestamped tracks forecasts the newest one it holds.
    #[arg(long, requires = "streaming")]
    extrapolate: bool,
    /// With --streaming: score the tracks' boxes at their frames' capture,
    /// not their `forecast` boxes (written with the tracker's `forecast_s`).
    #[arg(long, requires = "streaming")]
    no_forecast: bool,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    if !(args.iou > 0.0 && args.iou <= 1.0) {
        anyhow::bail!(percept::Error::Config(percept::config::ConfigError::Plan {
            path: args.pred.clone(),
            message: format!("--iou must be in (0, 1], not {}", args.iou),
        }));
    }
    // A file that is not tracks is bad input (exit 2); the error names its line.
    let load = |path: &PathBuf, gt: bool| {
        read_tracks(path, gt, args.stream.as_deref())
            .map_err(|e| {
                percept::Error::Config(percept::config::ConfigError::Plan {
                    path: path.clone(),
                    message: format!("line {}: {}", e.line, e.message),
                })
            })
            .with_context(|| format!("cannot score {}", args.pred.display()))
    };
    let gt = load(&args.gt, true)?;
    // MOTA and recall divide by the ground-truth boxes: with none they are
    // undefined, and reporting 0 (or 100 %) would be a wrong number.
    if gt.values().all(Vec::is_empty) {
        anyhow::bail!(percept::Error::Config(percept::config::ConfigError::Plan {
            path: args.gt.clone(),
            message: format!(
                "no ground-truth boxes{}: MOTA, IDF1 and recall are undefined",
                args.stream
                    .as_deref()
                    .map(|s| format!(" for stream `{s}`"))
                    .unwrap_or_default()
            ),
        }));
    }
    let pred = if args.streaming {
        percept::eval::streaming_predictions(
            &args.pred,
            args.stream.as_deref(),
            &gt,
            percept::eval::StreamingOptions {
                extrapolate: args.extrapolate,
                forecasts: !args.no_forecast,
            },
        )
        .map_err(|e| {
            percept::Error::Config(percept::config::ConfigError::Plan {
                path: args.pred.clone(),
                message: format!("line {}: {}", e.line, e.message),
            })
        })
        .with_context(|| format!("cannot score {}", args.pred.display()))?
    } else {
        load(&args.pred, false)?
    };
    let m = evaluate(&gt, &pred, args.iou);
    if args.json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        println!(
            "ground truth {} ({} objects in {} boxes), predictions {} ({} tracks)",
            args.gt.display(),
            m.gt_ids,
            m.gt,
            args.pred.display(),
            m.pred_ids
        );
        println!("  MOTA       {:>7.1} %", m.mota * 100.0);
        println!("  IDF1       {:>7.1} %", m.idf1 * 100.0);
        println!("  precision  {:>7.1} %", m.precision * 100.0);
        println!("  recall     {:>7.1} %", m.recall * 100.0);
        println!("  ID switches   {:>5}", m.idsw);
        println!("  fragmentations{:>5}", m.frag);
        println!("  false pos.    {:>5}", m.fp);
        println!("  misses        {:>5}", m.fn_);
    }
    Ok(())
}
