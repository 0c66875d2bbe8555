//! The resolve step's shared pieces: the [`Resolver`] (the pipeline text,
//! its folder, errors with file, line and field), the typed tables kinds
//! read their settings from, the `[stage.model]` table several kinds share,
//! and [`StageKind`], what the registry knows of a stage kind.
//!
//! Kinds (under `stages/`) import this; it imports no kind.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::DeTable;

use super::types::SourcePlan;
use super::{ConfigError, key_at, line_col};
use crate::model::preprocess::PreprocessSettings;
use crate::model::{ModelSettings, Optimization, Provider};
use crate::sink::OutputPath;
use crate::source::{ReconnectPolicy, SourceInput};
use crate::stage::StageSettings;

/// Turns one pipeline file's parts into plan parts; every error names the
/// file, the line and the field.
pub struct Resolver<'a> {
    /// The pipeline text (for line numbers).
    pub text: &'a str,
    /// The pipeline file (named in errors).
    pub path: &'a Path,
    /// Its folder: relative paths inside the file start here.
    pub base: &'a Path,
    /// `--realtime`: pace recordings.
    pub realtime: bool,
    /// The pipeline's per-frame budget.
    pub budget: Option<Duration>,
}

impl Resolver<'_> {
    /// An error at `span` of the text, naming `field`.
    pub fn invalid(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: line_col(self.text, span.start).0,
            field: field.into(),
            message: message.into(),
        }
    }

    /// An error about the pipeline as a whole.
    pub fn plan_error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Plan {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    /// A value in [0, 1] (or (0, 1] when `low_open`), with a default.
    pub fn unit(
        &self,
        v: &Option<Spanned<f32>>,
        field: String,
        default: f32,
        low_open: bool,
    ) -> Result<f32, ConfigError> {
        let Some(x) = v else {
            return Ok(default);
        };
        let val = *x.get_ref();
        let ok = if low_open {
            val > 0.0 && val <= 1.0
        } else {
            (0.0..=1.0).contains(&val)
        };
        if ok {
            Ok(val)
        } else {
            Err(self.invalid(
                x.span(),
                field,
                format!("{val} is outside {}0, 1]", if low_open { "(" } else { "[" }),
            ))
        }
    }

    /// A path field that must name an existing file (relative to the pipeline file).
    pub fn existing_file(
        &self,
        raw: &Spanned<String>,
        field: &str,
    ) -> Result<PathBuf, ConfigError> {
        let expanded = expand(raw.get_ref()).map_err(|m| self.invalid(raw.span(), field, m))?;
        let path = self.base.join(expanded);
        if path.is_file() {
            Ok(path)
        } else {
            Err(self.invalid(
                raw.span(),
                field,
                format!("file not found: {}", path.display()),
            ))
        }
    }

    /// Resolves a `[stage.model]` table: the file, provider, threads, preprocessing.
    pub fn model(&self, m: &ModelSpec, field: &str) -> Result<ModelSettings, ConfigError> {
        let path = self.existing_file(&m.path, &format!("{field}.path"))?;
        let mut pre = PreprocessSettings::yolo(0, 0);
        if let Some(r) = &m.resize {
            pre.resize = *r.get_ref();
        }
        if let Some(p) = &m.pad_value {
            pre.pad_value = *p.get_ref();
        }
        if let Some(v) = &m.mean {
            pre.mean = *v.get_ref();
        }
        if let Some(v) = &m.std {
            if v.get_ref().iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(self.invalid(
                    v.span(),
                    format!("{field}.std"),
                    "every value must be positive",
                ));
            }
            pre.std = *v.get_ref();
        }
        if let Some(c) = &m.color {
            pre.color = *c.get_ref();
        }
        if let Some(l) = &m.input_layout {
            pre.layout = *l.get_ref();
        }
        let max_batch = match &m.max_batch {
            Some(b) if !(1..=1024).contains(b.get_ref()) => {
                return Err(self.invalid(
                    b.span(),
                    format!("{field}.max_batch"),
                    "must be between 1 and 1024",
                ));
            }
            Some(b) => *b.get_ref(),
            None => 1,
        };
        let input_size = match &m.input_size {
            Some(s) if s.get_ref().contains(&0) => {
                return Err(self.invalid(
                    s.span(),
                    format!("{field}.input_size"),
                    "width and height must be at least 1",
                ));
            }
            Some(s) => Some((s.get_ref()[0], s.get_ref()[1])),
            None => None,
        };
        Ok(ModelSettings {
            path,
            provider: m.provider.as_ref().map_or(Provider::Cpu, |p| *p.get_ref()),
            threads: m.threads.as_ref().map_or(0, |t| *t.get_ref()),
            spin: m.spin_wait.as_ref().is_some_and(|t| *t.get_ref()),
            optimization: m
                .optimization
                .as_ref()
                .map_or(Optimization::All, |o| *o.get_ref()),
            input_size,
            max_batch,
            preprocess: pre,
        })
    }

    /// A parse error at `offset`, with its line, column and dotted key.
    pub fn parse_error(&self, offset: usize, message: &str) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError::Parse {
            path: self.path.to_path_buf(),
            line,
            column,
            field: key_at(self.text, offset),
            message: message.trim_end().to_string(),
        }
    }

    /// Reads a kind's typed settings (unknown fields rejected, spans kept)
    /// from its part of a table.
    pub fn typed<T: DeserializeOwned>(
        &self,
        table: Spanned<DeTable<'_>>,
    ) -> Result<T, ConfigError> {
        let start = table.span().start;
        T::deserialize(toml::de::Deserializer::from(table)).map_err(|e| {
            let offset = e.span().map_or(start, |s| s.start);
            self.parse_error(offset, e.message())
        })
    }
}

/// Where `raw` (`-` = standard output) points, relative to `base`.
pub fn output_path(raw: &str, base: &Path) -> OutputPath {
    if raw == "-" {
        OutputPath::Stdout
    } else {
        OutputPath::File(base.join(raw))
    }
}

/// The media cache the set-up script fills (`$PERCEPT_CACHE/media`, default `~/.cache/percept/media`).
pub fn default_media_dir() -> Option<PathBuf> {
    if let Ok(cache) = std::env::var("PERCEPT_CACHE") {
        return Some(PathBuf::from(cache).join("media"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/percept/media"))
}

/// Expands `${VAR}`, `$VAR` and a leading `~`.
pub fn expand(raw: &str) -> Result<String, String> {
    let lookup = |var: &str| -> Result<Option<String>, String> {
        match std::env::var(var) {
            Ok(v) => Ok(Some(v)),
            Err(_) if var == "PERCEPT_MEDIA" => {
                Ok(default_media_dir().map(|p| p.to_string_lossy().into_owned()))
            }
            Err(_) => Err(format!("environment variable `{var}` is not set")),
        }
    };
    shellexpand::full_with_context(raw, || std::env::var("HOME").ok(), lookup)
        .map(|s| s.into_owned())
        .map_err(|e| e.cause)
}

/// `[stage.model]`: an ONNX model and how frames are fed to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The `.onnx` file.
    pub path: Spanned<String>,
    /// `cpu` (default), `cuda`, `tensorrt` (need the cargo features of the same names).
    pub provider: Option<Spanned<crate::model::Provider>>,
    /// Intra-op threads (default: ONNX Runtime's choice).
    pub threads: Option<Spanned<usize>>,
    /// Let idle inference threads spin-wait (default false: they would take the other stages' cores).
    pub spin_wait: Option<Spanned<bool>>,
    /// `disable`, `basic`, `extended`, `all` (default).
    pub optimization: Option<Spanned<crate::model::Optimization>>,
    /// `[width, height]`; needed when the model's input size is dynamic.
    pub input_size: Option<Spanned<[u32; 2]>>,
    /// Images per run (`reid`: crops; default 32 for `reid`, 1 otherwise).
    pub max_batch: Option<Spanned<usize>>,
    /// `letterbox` (default) or `stretch`.
    pub resize: Option<Spanned<crate::model::preprocess::Resize>>,
    /// Letterbox padding value, 0..255 (default 114).
    pub pad_value: Option<Spanned<u8>>,
    /// Per channel, after scaling to 0..1 (default [0, 0, 0]).
    pub mean: Option<Spanned<[f32; 3]>>,
    /// Per channel, after the mean (default [1, 1, 1]).
    pub std: Option<Spanned<[f32; 3]>>,
    /// `rgb` (default) or `bgr`.
    pub color: Option<Spanned<crate::model::preprocess::ColorOrder>>,
    /// `nchw` (default) or `nhwc`.
    pub input_layout: Option<Spanned<crate::model::preprocess::TensorLayout>>,
}

/// What a stage kind's resolve step sees besides its own table.
pub struct StageContext<'a> {
    /// The stage's place in the file, `stage[i]`, for error fields.
    pub field: &'a str,
    /// The span of its `kind` value: errors about missing fields point here.
    pub kind_span: Range<usize>,
    /// The resolved sources.
    pub sources: &'a [SourcePlan],
    /// The source ids the stage works on (`streams`); `None` = all.
    pub streams: Option<&'a [String]>,
    /// The kinds of the stages before it, in order.
    pub earlier: &'a [&'static str],
}

impl StageContext<'_> {
    /// `stage[i].name`.
    pub fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.field)
    }
}

/// Resolves a stage kind's own table (its fields besides the common ones).
pub type ResolveStage = fn(
    &Resolver<'_>,
    Spanned<DeTable<'_>>,
    &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError>;

/// A stage kind as the registry lists it. Each kind's folder under
/// `stages/` defines one.
pub struct StageKind {
    /// The `kind` string.
    pub name: &'static str,
    /// The default of `admission` (model stages: true).
    pub admission: bool,
    /// Whether `async = true` is allowed.
    pub asynchronous: bool,
    /// The fields of its own table (`field_names::<ItsSpec>`).
    pub fields: fn() -> &'static [&'static str],
    /// Its resolve step.
    pub resolve: ResolveStage,
}

/// The field names a `#[derive(Deserialize)]` struct accepts (asked of the
/// struct itself, so no list is written twice).
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::value::Error;
    use serde::de::{Error as _, Visitor};

    struct Probe<'a>(&'a std::cell::Cell<&'static [&'static str]>);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            self.0.set(fields);
            Err(Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let fields = std::cell::Cell::new(&[][..]);
    // The probe always fails; it only records the names.
    let _ = T::deserialize(Probe(&fields));
    fields.get()
}

/// Turns "unknown field" in a kind's table into "not used by kind = …
/// (only by …)" when other kinds use that field: the hint the flat file
/// schema gave, now derived from each kind's own settings type.
pub fn other_kinds_field(
    r: &Resolver<'_>,
    err: ConfigError,
    section: &str,
    kind: &str,
    others: &[(&str, &[&str])],
) -> ConfigError {
    let ConfigError::Parse {
        ref message, line, ..
    } = err
    else {
        return err;
    };
    let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
    else {
        return err;
    };
    let users: Vec<String> = others
        .iter()
        .filter(|(k, fields)| *k != kind && fields.contains(&name))
        .map(|(k, _)| format!("\"{k}\""))
        .collect();
    if users.is_empty() {
        return err;
    }
    ConfigError::Invalid {
        path: r.path.to_path_buf(),
        line,
        field: format!("{section}.{name}"),
        message: format!(
            "not used by kind = \"{kind}\" (only by {})",
            users.join(", ")
        ),
    }
}

/// Lists every field a table accepts (its common ones and its kind's) in an
/// "unknown field" error: serde only knows the kind's part of the table.
pub fn all_fields_in_unknown(err: ConfigError, common: &[&str], own: &[&str]) -> ConfigError {
    let ConfigError::Parse {
        path,
        line,
        column,
        field,
        message,
    } = err
    else {
        return err;
    };
    let name = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
        .map(str::to_string);
    let message = match name {
        Some(name) => format!(
            "unknown field `{name}`, expected one of {}",
            common
                .iter()
                .chain(own)
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => message,
    };
    ConfigError::Parse {
        path,
        line,
        column,
        field,
        message,
    }
}

/// A kind without settings of its own: rejects any field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// What a source kind's resolve step sees besides its own table.
pub struct SourceContext<'a> {
    /// The source's `id`.
    pub id: &'a str,
    /// The source's place in the file, `source[i]`, for error fields.
    pub field: &'a str,
    /// The span of its `kind` value: errors about missing fields point here.
    pub kind_span: Range<usize>,
    /// `width` and `height`, when set.
    pub size: Option<(u32, u32)>,
}

impl SourceContext<'_> {
    /// `source[i].name`.
    pub fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.field)
    }

    /// A field the kind needs: its value and span, or an error at `kind`.
    pub fn required(
        &self,
        r: &Resolver<'_>,
        value: &Option<Spanned<String>>,
        name: &str,
        kind: &str,
    ) -> Result<(String, Range<usize>), ConfigError> {
        match value {
            Some(s) => Ok((s.get_ref().clone(), s.span())),
            None => Err(r.invalid(
                self.kind_span.clone(),
                self.field(name),
                format!("kind = \"{kind}\" needs `{name}`"),
            )),
        }
    }
}

/// A live source's `reconnect = { after_s, backoff_max_s, attempts }`
/// table (`uri` and `v4l2` kinds read it; [`ReconnectPolicy`] says what
/// it does).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectSpec {
    /// Seconds without a frame before the source counts as lost; the first
    /// wait before a rebuild (default 2).
    after_s: Option<Spanned<f64>>,
    /// Longest wait between attempts, seconds (default 30).
    backoff_max_s: Option<Spanned<f64>>,
    /// Attempts in a row without a frame, or `"forever"` (default).
    attempts: Option<Spanned<AttemptsSpec>>,
}

/// `attempts`: a number or `"forever"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AttemptsSpec {
    /// This many attempts in a row.
    Count(i64),
    /// A named count: only `"forever"`.
    Named(String),
}

/// Default `reconnect.after_s`.
pub const RECONNECT_AFTER_S: f64 = 2.0;
/// Default `reconnect.backoff_max_s`.
pub const RECONNECT_BACKOFF_MAX_S: f64 = 30.0;

impl Resolver<'_> {
    /// Checks a source's `reconnect` table (`field` is `source[i]`).
    pub fn reconnect(
        &self,
        spec: &Option<Spanned<ReconnectSpec>>,
        ctx: &SourceContext<'_>,
    ) -> Result<Option<ReconnectPolicy>, ConfigError> {
        let Some(spec) = spec else {
            return Ok(None);
        };
        let spec = spec.get_ref();
        let seconds = |v: &Option<Spanned<f64>>, name: &str, default: f64| match v {
            None => Ok(default),
            Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 => Ok(*t.get_ref()),
            Some(t) => Err(self.invalid(
                t.span(),
                ctx.field(&format!("reconnect.{name}")),
                "must be a positive number of seconds",
            )),
        };
        let after_s = seconds(&spec.after_s, "after_s", RECONNECT_AFTER_S)?;
        let backoff_max_s = seconds(
            &spec.backoff_max_s,
            "backoff_max_s",
            RECONNECT_BACKOFF_MAX_S.max(after_s),
        )?;
        if backoff_max_s < after_s
            && let Some(b) = &spec.backoff_max_s
        {
            return Err(self.invalid(
                b.span(),
                ctx.field("reconnect.backoff_max_s"),
                format!("must be at least `after_s` ({after_s} s)"),
            ));
        }
        let attempts = match &spec.attempts {
            None => None,
            Some(a) => match a.get_ref() {
                AttemptsSpec::Count(n) if *n >= 1 => Some(u32::try_from(*n).unwrap_or(u32::MAX)),
                AttemptsSpec::Named(n) if n == "forever" => None,
                _ => {
                    return Err(self.invalid(
                        a.span(),
                        ctx.field("reconnect.attempts"),
                        "must be a whole number of attempts (1 or more) or \"forever\"",
                    ));
                }
            },
        };
        Ok(Some(ReconnectPolicy {
            after_s,
            backoff_max_s,
            attempts,
        }))
    }
}

/// A source kind's resolve result.
pub struct ResolvedSource {
    /// What to read.
    pub input: Arc<dyn SourceInput>,
    /// The file's `live`, when the kind has it and it is set.
    pub live: Option<bool>,
    /// The file's `realtime`, when the kind has it and it is set.
    pub realtime: Option<bool>,
    /// The file's `reconnect`, when the kind has it and it is set.
    pub reconnect: Option<ReconnectPolicy>,
}

/// Resolves a source kind's own table.
pub type ResolveSource = fn(
    &Resolver<'_>,
    Spanned<DeTable<'_>>,
    &SourceContext<'_>,
) -> Result<ResolvedSource, ConfigError>;

/// A source kind as the registry lists it. Each kind's file under
/// `sources/` defines one.
pub struct SourceKind {
    /// The `kind` string.
    pub name: &'static str,
    /// The fields of its own table (`field_names::<ItsSpec>`).
    pub fields: fn() -> &'static [&'static str],
    /// Its resolve step.
    pub resolve: ResolveSource,
}
