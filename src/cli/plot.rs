//! `percept plot`: pictures of a run (SVG, with `plotters`).
//!
//! - one `--metrics-out` file (JSON Lines, one run summary per line, every
//!   second; counters are cumulative since the start, `interval_latency`
//!   covers the second before each line): four panels against elapsed
//!   seconds: per-stage latency p50 (solid) and p99 (dashed) in ms over
//!   each interval (since the start for files written before
//!   `interval_latency`; intervals with no frame are left out), drops and skips by place and reason,
//!   the deepest each stage's input queue has been, resident memory (MiB);
//! - several `--summary-json` files: the runs side by side as bars: output
//!   rate (fps), and each stage's p50 and p99 latency.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A `--metrics-out` file (JSON Lines), or several `--summary-json` files to compare.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The SVG to write.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

fn bad(path: &Path, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(percept::Error::Config(percept::config::ConfigError::Plan {
        path: path.to_path_buf(),
        message: message.into(),
    }))
}

/// The JSON objects of a file: one per line (metrics), or one in all (a summary).
fn read(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        out.push(v);
    } else {
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            out.push(
                serde_json::from_str(line)
                    .map_err(|e| bad(path, format!("line {}: not JSON: {e}", i + 1)))?,
            );
        }
    }
    for (i, v) in out.iter().enumerate() {
        if v["elapsed_s"].as_f64().is_none() || !v["stages"].is_array() {
            return Err(bad(
                path,
                format!(
                    "record {}: not a percept run summary (no `elapsed_s`, `stages`): give a --metrics-out or --summary-json file",
                    i + 1
                ),
            ));
        }
    }
    if out.is_empty() {
        return Err(bad(path, "empty: no run summary"));
    }
    Ok(out)
}

pub fn plot(args: PlotArgs) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for p in &args.inputs {
        files.push((p.clone(), read(p)?));
    }
    if args.out.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(bad(&args.out, "--out must end in .svg"));
    }
    let result = if files.len() == 1 && files[0].1.len() > 1 {
        metrics(&files[0].0, &files[0].1, &args.out)
    } else {
        let runs: Vec<(String, &Value)> = files
            .iter()
            .flat_map(|(p, vs)| {
                let name = p
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                vs.last().map(|v| (name, v))
            })
            .collect();
        bars(&runs, &args.out)
    };
    result.with_context(|| format!("cannot draw {}", args.out.display()))?;
    eprintln!("percept: wrote {}", args.out.display());
    Ok(())
}

type Series = Vec<(String, Vec<(f64, f64)>)>;

fn push(series: &mut Series, name: String, point: (f64, f64)) {
    match series.iter_mut().find(|(n, _)| *n == name) {
        Some((_, pts)) => pts.push(point),
        None => series.push((name, vec![point])),
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}

/// One panel: lines against elapsed seconds (`dashed` series drawn dashed).
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    t_max: f64,
    solid: &Series,
    dashed: &Series,
) -> anyhow::Result<()> {
    let y_max = solid
        .iter()
        .chain(dashed)
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max.max(1e-3), 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("elapsed (s)")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let mut any = false;
    for (i, (name, pts)) in solid.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        any = true;
    }
    for (i, (name, pts)) in dashed.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(DashedLineSeries::new(
                pts.iter().copied(),
                6,
                4,
                colour.stroke_width(1),
            ))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1))
            });
        any = true;
    }
    if any {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    } else {
        chart
            .draw_series(std::iter::once(Text::new(
                "none",
                (t_max / 2.0, y_max / 2.0),
                ("sans-serif", 16),
            )))
            .map_err(err)?;
    }
    Ok(())
}

fn metrics(path: &Path, lines: &[Value], out: &Path) -> anyhow::Result<()> {
    let (mut p50, mut p99, mut drops, mut queues, mut rss) = (
        Series::new(),
        Series::new(),
        Series::new(),
        Series::new(),
        Series::new(),
    );
    let mut t_max = 0.0f64;
    let per_interval = lines
        .iter()
        .flat_map(|v| v["stages"].as_array().into_iter().flatten())
        .any(|s| s.get("interval_latency").is_some());
    for v in lines {
        let t = v["elapsed_s"].as_f64().unwrap_or(0.0);
        t_max = t_max.max(t);
        for s in v["stages"].as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap_or("?");
            let lat = if per_interval {
                &s["interval_latency"]
            } else {
                &s["latency"]
            };
            if lat["count"].as_u64().unwrap_or(0) > 0 {
                push(
                    &mut p50,
                    format!("{id} p50"),
                    (t, lat["p50_ms"].as_f64().unwrap_or(0.0)),
                );
                push(
                    &mut p99,
                    format!("{id} p99"),
                    (t, lat["p99_ms"].as_f64().unwrap_or(0.0)),
                );
            }
            push(
                &mut queues,
                format!("into {id} (capacity {})", s["queue_capacity"]),
                (t, s["max_queue_depth"].as_f64().unwrap_or(0.0)),
            );
        }
        for d in v["drops"].as_array().into_iter().flatten() {
            let name = format!(
                "{}: {}",
                d["where"].as_str().unwrap_or("?"),
                d["reason"].as_str().unwrap_or("?")
            );
            push(&mut drops, name, (t, d["count"].as_f64().unwrap_or(0.0)));
        }
        push(
            &mut rss,
            "resident memory".into(),
            (
                t,
                v["memory"]["rss_end_kb"].as_f64().unwrap_or(0.0) / 1024.0,
            ),
        );
    }
    let name = lines
        .last()
        .and_then(|v| v["pipeline"].as_str())
        .unwrap_or("run")
        .to_string();
    let root = SVGBackend::new(out, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!(
                "percept run `{name}` ({}, {} snapshots)",
                path.display(),
                lines.len()
            ),
            ("sans-serif", 22),
        )
        .map_err(err)?;
    let areas = root.split_evenly((2, 2));
    panel(
        &areas[0],
        if per_interval {
            "Stage latency per interval: p50 solid, p99 dashed"
        } else {
            "Stage latency since the start: p50 solid, p99 dashed"
        },
        "latency (ms)",
        t_max,
        &p50,
        &p99,
    )?;
    panel(
        &areas[1],
        "Frames dropped or skipped, by place and reason",
        "frames (cumulative)",
        t_max,
        &drops,
        &Series::new(),
    )?;
    panel(
        &areas[2],
        "Deepest input queue so far, per stage",
        "queued frames",
        t_max,
        &queues,
        &Series::new(),
    )?;
    panel(
        &areas[3],
        "Resident memory",
        "RSS (MiB)",
        t_max,
        &rss,
        &Series::new(),
    )?;
    root.present().map_err(err)?;
    Ok(())
}

fn bars(runs: &[(String, &Value)], out: &Path) -> anyhow::Result<()> {
    // Categories: per stage p50 and p99 latency; one bar per run in each.
    let mut cats: Vec<String> = Vec::new();
    for (_, v) in runs {
        for s in v["stages"].as_array().into_iter().flatten() {
            for q in ["p50", "p99"] {
                let c = format!("{} {q}", s["id"].as_str().unwrap_or("?"));
                if !cats.contains(&c) {
                    cats.push(c);
                }
            }
        }
    }
    let value = |v: &Value, cat: &str| -> f64 {
        let (id, q) = cat.rsplit_once(' ').unwrap_or((cat, "p50"));
        v["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"].as_str() == Some(id))
            .and_then(|s| s["latency"][format!("{q}_ms")].as_f64())
            .unwrap_or(0.0)
    };
    let root = SVGBackend::new(out, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!("percept runs compared ({})", runs.len()),
            ("sans-serif", 22),
        )
        .map_err(err)?;
    let (left, right) = root.split_horizontally(420);
    let n = runs.len().max(1);

    // Output rate per run.
    let fps_max = runs
        .iter()
        .map(|(_, v)| v["fps"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    let mut chart = ChartBuilder::on(&left)
        .caption("Output rate", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..fps_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("run")
        .y_desc("frames per second")
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => runs.get(*i).map_or_else(String::new, |(n, _)| n.clone()),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(runs.iter().enumerate().map(|(i, (_, v))| {
            let fps = v["fps"].as_f64().unwrap_or(0.0);
            Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), fps),
                ],
                Palette99::pick(i).filled(),
            )
        }))
        .map_err(err)?;

    // Latency per stage and percentile, one bar per run.
    let y_max = runs
        .iter()
        .flat_map(|(_, v)| cats.iter().map(|c| value(v, c)))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    let groups = cats.len().max(1);
    let mut chart = ChartBuilder::on(&right)
        .caption(
            "Stage latency (bars: runs, in legend order)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..groups as f64, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 {
                cats.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("stage, percentile")
        .y_desc("latency (ms)")
        .draw()
        .map_err(err)?;
    let width = 0.8 / n as f64;
    for (r, (name, v)) in runs.iter().enumerate() {
        let colour = Palette99::pick(r).to_rgba();
        chart
            .draw_series(cats.iter().enumerate().map(|(g, c)| {
                let x0 = g as f64 + 0.1 + r as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, value(v, c))], colour.filled())
            }))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
