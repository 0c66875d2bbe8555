//! Tensor contracts: what a decoder needs from a model's inputs and outputs,
//! checked once at load so a wrong model fails before any frame, naming the
//! model and the tensor.

use std::fmt;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

/// One dimension of a tensor as declared by a model (`None` = dynamic).
pub type Dims = Vec<Option<u64>>;

/// A tensor as the model declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Element type (`f32`, `u8`, …).
    pub dtype: String,
    /// Dimensions; `None` where dynamic.
    pub dims: Dims,
}

impl TensorInfo {
    /// Whether the elements are 32-bit floats.
    pub fn is_f32(&self) -> bool {
        self.dtype == "f32"
    }
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` {} {}",
            self.name,
            self.dtype,
            dims_text(&self.dims)
        )
    }
}

/// `[1, 3, 640, 640]`, with `?` for dynamic dimensions.
pub fn dims_text(dims: &[Option<u64>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".into(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn dtype_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "f32".into(),
        TensorElementType::Uint8 => "u8".into(),
        TensorElementType::Int8 => "i8".into(),
        TensorElementType::Int32 => "i32".into(),
        TensorElementType::Int64 => "i64".into(),
        TensorElementType::Float16 => "f16".into(),
        TensorElementType::Float64 => "f64".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn info(name: &str, ty: &ValueType) -> TensorInfo {
    match ty {
        ValueType::Tensor { ty, shape, .. } => TensorInfo {
            name: name.to_string(),
            dtype: dtype_name(*ty),
            dims: shape
                .iter()
                .map(|&d| (d >= 0).then_some(d as u64))
                .collect(),
        },
        other => TensorInfo {
            name: name.to_string(),
            dtype: format!("{other:?}").to_lowercase(),
            dims: Vec::new(),
        },
    }
}

/// The inputs and outputs a session declares.
pub fn session_tensors(session: &Session) -> (Vec<TensorInfo>, Vec<TensorInfo>) {
    let inputs = session
        .inputs()
        .iter()
        .map(|o| info(o.name(), o.dtype()))
        .collect();
    let outputs = session
        .outputs()
        .iter()
        .map(|o| info(o.name(), o.dtype()))
        .collect();
    (inputs, outputs)
}
