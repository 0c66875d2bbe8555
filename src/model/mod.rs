//! Model engine: an ONNX Runtime session, its checked tensor contract and its
//! preallocated input, shared by every model stage (detection now; depth and
//! re-ID later).
//!
//! Load order: find the runtime library ([`runtime`]), build the session with
//! the configured execution provider (a missing GPU provider is an error, never
//! a silent CPU fallback), check the input contract (rank 4 NCHW, 3 channels,
//! f32 or u8), size the input buffer, warm up once. Per frame: preprocess into
//! the buffer ([`preprocess`]), run, and let a decoder read named outputs.

pub mod contract;
pub mod preprocess;
pub mod runtime;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use gstreamer_video::prelude::*;

use crate::frame::Frame;
use contract::{TensorInfo, dims_text, session_tensors};
use preprocess::{Letterbox, PreprocessSettings, Preprocessor, Target, TensorLayout};

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The CPU.
    Cpu,
    /// NVIDIA CUDA (feature `cuda`).
    Cuda,
    /// NVIDIA TensorRT (feature `tensorrt`).
    Tensorrt,
}

/// ONNX Runtime graph optimisation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimization {
    /// No graph optimisation.
    Disable,
    /// Basic optimisations.
    Basic,
    /// Extended optimisations.
    Extended,
    /// All optimisations (default).
    All,
}

/// Plain model settings, from the pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// The `.onnx` file.
    pub path: PathBuf,
    /// Where inference runs.
    pub provider: Provider,
    /// Intra-op threads; 0 = ONNX Runtime's default.
    pub threads: usize,
    /// Let idle intra-op threads spin. Off by default: spinning threads take
    /// the cores that decoding and the other stages need.
    pub spin: bool,
    /// Graph optimisation level.
    pub optimization: Optimization,
    /// Network input size; required when the model's is dynamic.
    pub input_size: Option<(u32, u32)>,
    /// Images per run (crops for re-ID, frames for a batching `detect`); more
    /// than 1 needs a dynamic batch dimension or a fixed one equal to it.
    pub max_batch: usize,
    /// Preprocessing; its width/height are replaced by the model's input size.
    pub preprocess: PreprocessSettings,
}

impl ModelSettings {
    /// Defaults for a model file: CPU, all optimisations, YOLO preprocessing.
    pub fn new(path: impl Into<PathBuf>) -> ModelSettings {
        ModelSettings {
            path: path.into(),
            provider: Provider::Cpu,
            threads: 0,
            spin: false,
            optimization: Optimization::All,
            input_size: None,
            max_batch: 1,
            preprocess: PreprocessSettings::yolo(0, 0),
        }
    }
}

/// A model that cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    /// ONNX Runtime itself cannot be found or loaded.
    Runtime(String),
    #[error("model {path}: file not found")]
    /// The model file does not exist.
    Missing {
        /// The model file.
        path: PathBuf,
    },
    #[error("model {path}: cannot load: {message}")]
    /// ONNX Runtime cannot load the model.
    Load {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's reason.
        message: String,
    },
    #[error("model {path}: tensor `{tensor}`: {message}")]
    /// A tensor does not match what its decoder or preprocessing needs.
    Contract {
        /// The model file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What does not match.
        message: String,
    },
    #[error("model {path}: execution provider `{provider}` is not available: {message}")]
    /// The execution provider asked for is not available.
    Provider {
        /// The model file.
        path: PathBuf,
        /// The provider asked for.
        provider: &'static str,
        /// ONNX Runtime's reason.
        message: String,
    },
    #[error("model {path}: {message}")]
    /// A run failed.
    Run {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl ModelError {
    /// A contract error for `tensor` of the model at `path`.
    pub fn contract(path: &Path, tensor: &str, message: impl Into<String>) -> ModelError {
        ModelError::Contract {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputType {
    F32,
    U8,
}

/// A loaded model with its input buffer.
pub struct Engine {
    path: PathBuf,
    session: Session,
    /// Its inputs as the model declares them.
    pub inputs: Vec<TensorInfo>,
    /// Its outputs as the model declares them.
    pub outputs: Vec<TensorInfo>,
    input_type: InputType,
    /// `[1, 3, height, width]` (NCHW) or `[1, height, width, 3]` (NHWC).
    input_shape: [usize; 4],
    /// Batch slots in the input buffer (`ModelSettings::max_batch`, at least 1).
    max_batch: usize,
    /// The model's batch dimension when it is fixed (then every run has that
    /// many images; slots past those asked for hold stale or padding pixels).
    fixed_batch: Option<usize>,
    f32_input: Vec<f32>,
    u8_input: Vec<u8>,
    preprocessor: Preprocessor,
    /// Session creation time, ms.
    pub load_ms: f64,
    /// First run time, ms.
    pub warmup_ms: f64,
}

/// Opens a session on a model file with the given settings.
pub fn open_session(settings: &ModelSettings) -> Result<Session, ModelError> {
    let path = &settings.path;
    if !path.is_file() {
        return Err(ModelError::Missing { path: path.clone() });
    }
    let env = runtime::environment()?;
    let load = |message: String| ModelError::Load {
        path: path.clone(),
        message,
    };
    let level = match settings.optimization {
        Optimization::Disable => GraphOptimizationLevel::Disable,
        Optimization::Basic => GraphOptimizationLevel::Level1,
        Optimization::Extended => GraphOptimizationLevel::Level2,
        Optimization::All => GraphOptimizationLevel::All,
    };
    let mut builder = Session::builder(env)
        .map_err(|e| load(e.to_string()))?
        .with_optimization_level(level)
        .map_err(|e| load(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| load(e.to_string()))?
        .with_intra_op_spinning(settings.spin)
        .map_err(|e| load(e.to_string()))?;
    if settings.threads > 0 {
        builder = builder
            .with_intra_threads(settings.threads)
            .map_err(|e| load(e.to_string()))?;
    }
    builder = with_provider(builder, settings)?;
    builder
        .commit_from_file(path)
        .map_err(|e| load(e.to_string()))
}

fn with_provider(
    builder: ort::session::builder::SessionBuilder,
    settings: &ModelSettings,
) -> Result<ort::session::builder::SessionBuilder, ModelError> {
    let unavailable = |provider: &'static str, message: String| ModelError::Provider {
        path: settings.path.clone(),
        provider,
        message,
    };
    match settings.provider {
        Provider::Cpu => Ok(builder),
        #[cfg(feature = "cuda")]
        Provider::Cuda => builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| unavailable("cuda", e.to_string())),
        #[cfg(not(feature = "cuda"))]
        Provider::Cuda => Err(unavailable(
            "cuda",
            "percept was built without the `cuda` feature".into(),
        )),
        #[cfg(feature = "tensorrt")]
        Provider::Tensorrt => builder
            .with_execution_providers([ort::ep::TensorRT::default().build().error_on_failure()])
            .map_err(|e| unavailable("tensorrt", e.to_string())),
        #[cfg(not(feature = "tensorrt"))]
        Provider::Tensorrt => Err(unavailable(
            "tensorrt",
            "percept was built without the `tensorrt` feature".into(),
        )),
    }
}

impl Engine {
    /// Loads a model and checks its input contract (NCHW, 3 channels, f32 or u8).
    pub fn load(settings: &ModelSettings) -> Result<Engine, ModelError> {
        let started = Instant::now();
        let session = open_session(settings)?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        let (inputs, outputs) = session_tensors(&session);
        let path = &settings.path;
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
            return Err(ModelError::contract(
                path,
                &names.join("`, `"),
                format!("expected exactly one image input, found {}", inputs.len()),
            ));
        };
        let input_type = match input.dtype.as_str() {
            "f32" => InputType::F32,
            "u8" => InputType::U8,
            other => {
                return Err(ModelError::contract(
                    path,
                    &input.name,
                    format!("expected dtype f32 or u8, found {other}"),
                ));
            }
        };
        let dims = &input.dims;
        let nhwc = settings.preprocess.layout == TensorLayout::Nhwc;
        let expected = if nhwc {
            "[1, height, width, 3] (NHWC)"
        } else {
            "[1, 3, height, width] (NCHW)"
        };
        if dims.len() != 4 {
            return Err(ModelError::contract(
                path,
                &input.name,
                format!(
                    "expected rank 4 {expected}, found rank {} {}",
                    dims.len(),
                    dims_text(dims)
                ),
            ));
        }
        // Channels, height, width positions for the layout.
        let (c_at, h_at, w_at) = if nhwc { (3, 1, 2) } else { (1, 2, 3) };
        let max_batch = settings.max_batch.max(1);
        if max_batch > 1 && dims[0].is_some_and(|b| b != max_batch as u64) {
            return Err(ModelError::contract(
                path,
                &input.name,
                format!(
                    "batches of up to {max_batch} need a dynamic batch dimension or a fixed one of {max_batch}, found {}",
                    dims_text(dims)
                ),
            ));
        }
        if (max_batch == 1 && dims[0].is_some_and(|b| b != 1)) || dims[c_at].is_some_and(|c| c != 3)
        {
            return Err(ModelError::contract(
                path,
                &input.name,
                format!(
                    "expected {expected} with batch 1 and 3 channels, found {}",
                    dims_text(dims)
                ),
            ));
        }
        let (height, width) = match (dims[h_at], dims[w_at], settings.input_size) {
            (Some(h), Some(w), Some((cw, ch))) if (u64::from(cw), u64::from(ch)) != (w, h) => {
                return Err(ModelError::contract(
                    path,
                    &input.name,
                    format!(
                        "the model's input is {w}x{h} but the pipeline asks for input_size {cw}x{ch}"
                    ),
                ));
            }
            (Some(h), Some(w), _) => (h as u32, w as u32),
            (_, _, Some((w, h))) => (h, w),
            _ => {
                return Err(ModelError::contract(
                    path,
                    &input.name,
                    format!(
                        "dynamic size {}: set `input_size = [width, height]`",
                        dims_text(dims)
                    ),
                ));
            }
        };
        let mut pre = settings.preprocess.clone();
        pre.width = width;
        pre.height = height;
        let preprocessor = Preprocessor::new(pre);
        let len = preprocessor.tensor_len() * max_batch;
        Ok(Engine {
            path: path.clone(),
            session,
            inputs: inputs.clone(),
            outputs,
            input_type,
            input_shape: if nhwc {
                [1, height as usize, width as usize, 3]
            } else {
                [1, 3, height as usize, width as usize]
            },
            max_batch,
            fixed_batch: dims[0].map(|b| b as usize),
            f32_input: if input_type == InputType::F32 {
                vec![0.0; len]
            } else {
                Vec::new()
            },
            u8_input: if input_type == InputType::U8 {
                vec![0; len]
            } else {
                Vec::new()
            },
            preprocessor,
            load_ms,
            warmup_ms: 0.0,
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Network input size (width, height).
    pub fn input_size(&self) -> (u32, u32) {
        (
            self.preprocessor.settings().width,
            self.preprocessor.settings().height,
        )
    }

    /// A custom metadata value of the model (e.g. `names`).
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.session.metadata().ok()?.custom(key)
    }

    /// Runs once on the padding-filled input so the first frame is not slow.
    pub fn warm_up(&mut self) -> Result<(), ModelError> {
        let started = Instant::now();
        self.run()?;
        self.warmup_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(())
    }

    /// Batch slots in the input buffer: the most images one run takes.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Images a run of `n` actually computes: `n`, or the model's fixed batch size.
    pub fn run_size(&self, n: usize) -> usize {
        self.fixed_batch.unwrap_or(n)
    }

    /// Preprocesses a frame into the input buffer (batch slot 0).
    pub fn preprocess(&mut self, frame: &Frame) -> Result<Letterbox, ModelError> {
        self.preprocess_slot(frame, 0)
    }

    /// Preprocesses a frame into batch slot `slot` (0 ≤ slot < [`Engine::max_batch`];
    /// a slot past it is a [`ModelError::Run`]). Returns the letterbox that maps
    /// the network's pixels back to this frame's.
    pub fn preprocess_slot(&mut self, frame: &Frame, slot: usize) -> Result<Letterbox, ModelError> {
        let per = self.preprocessor.tensor_len();
        if slot >= self.max_batch {
            return Err(ModelError::Run {
                path: self.path.clone(),
                message: format!("batch slot {slot} past the {} allocated", self.max_batch),
            });
        }
        let at = slot * per..(slot + 1) * per;
        let target = match self.input_type {
            InputType::F32 => Target::F32(&mut self.f32_input[at]),
            InputType::U8 => Target::U8(&mut self.u8_input[at]),
        };
        self.preprocessor
            .run(frame, target)
            .map_err(|e| ModelError::Run {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// Preprocesses regions `[x1, y1, x2, y2]` (source pixels) of a frame into
    /// batch slots 0.., as many as fit; returns how many were written.
    pub fn preprocess_regions(
        &mut self,
        frame: &Frame,
        regions: &[[f32; 4]],
    ) -> Result<usize, ModelError> {
        let fail = |message: String| ModelError::Run {
            path: self.path.clone(),
            message,
        };
        let pixels = frame.pixels().map_err(|e| fail(e.to_string()))?;
        let stride = pixels.plane_stride()[0] as usize;
        let data = pixels.plane_data(0).map_err(|e| fail(e.to_string()))?;
        let bpp = pixels.format_info().pixel_stride()[0] as usize;
        let (fw, fh) = (frame.width(), frame.height());
        let per = self.preprocessor.tensor_len();
        let n = regions
            .len()
            .min(self.f32_input.len().max(self.u8_input.len()) / per.max(1));
        for (i, r) in regions.iter().take(n).enumerate() {
            let x0 = (r[0].floor().max(0.0) as u32).min(fw - 1);
            let y0 = (r[1].floor().max(0.0) as u32).min(fh - 1);
            let x1 = (r[2].ceil() as u32).clamp(x0 + 1, fw);
            let y1 = (r[3].ceil() as u32).clamp(y0 + 1, fh);
            let start = y0 as usize * stride + x0 as usize * bpp;
            let target = match self.input_type {
                InputType::F32 => Target::F32(&mut self.f32_input[i * per..(i + 1) * per]),
                InputType::U8 => Target::U8(&mut self.u8_input[i * per..(i + 1) * per]),
            };
            self.preprocessor
                .run_raw(
                    &data[start..],
                    stride,
                    x1 - x0,
                    y1 - y0,
                    frame.format(),
                    target,
                )
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(n)
    }

    /// Runs the session on the current input buffer.
    pub fn run(&mut self) -> Result<SessionOutputs<'_>, ModelError> {
        self.run_batch(1)
    }

    /// Runs the session on the first `n` images of the input buffer
    /// (`n` ≤ [`Engine::max_batch`]). A model with a fixed batch dimension
    /// runs on all its slots ([`Engine::run_size`]); outputs past `n` are to
    /// be ignored. Every output's first dimension is the batch.
    pub fn run_batch(&mut self, n: usize) -> Result<SessionOutputs<'_>, ModelError> {
        let fail = |e: ort::Error| e.to_string();
        let per = self.preprocessor.tensor_len();
        if n == 0 || n > self.max_batch {
            return Err(ModelError::Run {
                path: self.path.clone(),
                message: format!("a run of {n} images, with {} batch slots", self.max_batch),
            });
        }
        let n = self.fixed_batch.unwrap_or(n);
        let shape = [
            n,
            self.input_shape[1],
            self.input_shape[2],
            self.input_shape[3],
        ];
        let t0 = crate::clock::monotonic_ns();
        let result = match self.input_type {
            InputType::F32 => TensorRef::from_array_view((shape, &self.f32_input[..n * per]))
                .map_err(fail)
                .and_then(|t| self.session.run(ort::inputs![t]).map_err(fail)),
            InputType::U8 => TensorRef::from_array_view((shape, &self.u8_input[..n * per]))
                .map_err(fail)
                .and_then(|t| self.session.run(ort::inputs![t]).map_err(fail)),
        };
        crate::meter::INFERENCE.record(crate::clock::monotonic_ns() - t0);
        result.map_err(|message| ModelError::Run {
            path: self.path.clone(),
            message: format!("inference failed: {message}"),
        })
    }
}
