//! Command-line interface: one file per subcommand. `main` parses, runs and
//! maps errors to exit codes (2 bad input/configuration, 1 run-time failure).

mod calibrate;
mod check;
mod eval;
mod model_info;
mod plot;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use percept::config::{Overrides, Plan};
use percept::error::{EXIT_BAD_INPUT, EXIT_RUNTIME};

/// Streaming video perception pipeline.
#[derive(Debug, Parser)]
#[command(name = "percept", version, about)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline until end of stream or Ctrl-C.
    Run(run::RunArgs),
    /// Validate a pipeline (parse, wiring, files, GStreamer elements, model contracts) without running it.
    Check(check::CheckArgs),
    /// Print an ONNX model's inputs, outputs and metadata.
    ModelInfo(model_info::ModelInfoArgs),
    /// Score tracks against ground truth: MOTA, IDF1, ID switches, fragmentations, precision, recall.
    Eval(eval::EvalArgs),
    /// Calibrate a stereo pair from chessboard image pairs (OpenCV) into a calibration file.
    Calibrate(calibrate::CalibrateArgs),
    /// Convert an OpenCV FileStorage or ROS camera_info calibration into percept's format.
    ImportCalibration(calibrate::ImportArgs),
    /// Draw a run as SVG: a --metrics-out file over time, or --summary-json files side by side.
    Plot(plot::PlotArgs),
}

/// Pipeline file and the command-line replacements shared by `run` and `check`.
#[derive(Debug, Args)]
struct PipelineArgs {
    /// Pipeline file (TOML).
    pipeline: PathBuf,
    /// Replace the sources' locations, one per source in order: a file path, a URI or /dev/videoN.
    #[arg(short, long = "input", value_name = "PATH_OR_URI")]
    inputs: Vec<String>,
    /// Write JSON Lines here instead (`-` for standard output).
    #[arg(short, long, value_name = "PATH")]
    output: Option<String>,
    /// Also write each frame's depth map as a 16-bit PNG (millimetres, 0 = invalid) into this folder.
    #[arg(long, value_name = "DIR")]
    depth_out: Option<String>,
    /// Pace recordings at their native frame rate, like cameras: frames get
    /// deadlines and busy stages skip instead of falling behind.
    #[arg(long)]
    realtime: bool,
}

impl PipelineArgs {
    fn load(&self) -> Result<Plan, percept::Error> {
        let overrides = Overrides {
            inputs: self.inputs.clone(),
            output: self.output.clone(),
            depth_out: self.depth_out.clone(),
            realtime: self.realtime,
        };
        Ok(Plan::load(&self.pipeline, &overrides)?)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::ModelInfo(args) => model_info::model_info(args),
        Command::Eval(args) => eval::eval(args),
        Command::Calibrate(args) => calibrate::calibrate(args),
        Command::ImportCalibration(args) => calibrate::import_calibration(args),
        Command::Plot(args) => plot::plot(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", percept::redact::redact(&format!("{err:#}")));
            ExitCode::from(exit_code(&err) as u8)
        }
    }
}

/// The exit code of an error chain: the library error's own, else run-time failure.
fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| {
            e.downcast_ref::<percept::Error>()
                .map(percept::Error::exit_code)
        })
        .or_else(|| {
            err.chain().find_map(|e| {
                e.downcast_ref::<percept::config::ConfigError>()
                    .map(|_| EXIT_BAD_INPUT)
            })
        })
        .unwrap_or(EXIT_RUNTIME)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| percept::redact::RedactingStderr)
        .with_thread_names(true)
        .init();
}
