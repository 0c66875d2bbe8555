//! Validation: a [`PipelineFile`] plus command-line [`Overrides`] become a [`Plan`].
//!
//! Relative paths inside a pipeline file are relative to the file's folder;
//! paths given on the command line are relative to the working directory.
//! `${VAR}` and a leading `~` expand in locations and paths. `${PERCEPT_MEDIA}`
//! falls back to the set-up script's media cache when unset.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer_video as gst_video;
use serde_spanned::Spanned;

use super::file::{
    Delivery, DetectBackend, EdgePolicy, ModelSpec, PipelineFile, QueueSpec, SinkKind, SinkSpec,
    SourceKind, SourceSpec, StageKind, StageSpec,
};
use super::{ConfigError, key_at, line_col};
use crate::detect::decode::Layout;
use crate::detect::hog::HogSettings;
use crate::detect::{Backend, DetectSettings};
use crate::model::preprocess::PreprocessSettings;
use crate::model::{ModelSettings, Optimization, Provider};
use crate::track::TrackSettings;

/// The only pipeline-file version this build reads.
pub const PIPELINE_VERSION: u32 = 1;
/// Default capacity of an edge.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4;
/// Pixel formats a source can deliver.
pub const SUPPORTED_FORMATS: [&str; 7] = ["RGB", "BGR", "RGBA", "BGRA", "GRAY8", "I420", "NV12"];

/// Command-line replacements applied while resolving.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Replaces the sources' locations, one per source, in order.
    pub inputs: Vec<String>,
    /// Replaces the JSON Lines destination (`-` = stdout).
    pub output: Option<String>,
    /// Also writes depth maps as PNG files into this folder.
    pub depth_out: Option<String>,
    /// Paces every file and URI recording at its native rate (`realtime = true`).
    pub realtime: bool,
}

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub name: String,
    pub sources: Vec<SourcePlan>,
    pub stereo: Vec<StereoPlan>,
    pub stages: Vec<StagePlan>,
    pub sinks: Vec<SinkPlan>,
}

/// What a source reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceInput {
    File(PathBuf),
    Uri(String),
    V4l2(PathBuf),
    Test {
        pattern: String,
        framerate: u32,
        width: u32,
        height: u32,
    },
    Gst(String),
}

/// A resolved source.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub id: String,
    pub input: SourceInput,
    pub format: gst_video::VideoFormat,
    /// Scale to this size when set.
    pub size: Option<(u32, u32)>,
    pub max_frames: Option<u64>,
    /// Produces frames in real time whether or not anyone reads them.
    pub live: bool,
    /// A recording paced at its native rate.
    pub realtime: bool,
    pub delivery: Delivery,
    /// Capture-to-output budget per frame; `None`: one frame period.
    pub budget: Option<Duration>,
}

/// Where a stereo pair's views come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StereoInput {
    /// Two sources, paired by time.
    Pair { left: String, right: String },
    /// One source whose frames hold both views side by side.
    SideBySide(String),
}

/// A resolved `[[stereo]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoPlan {
    pub id: String,
    pub input: StereoInput,
    pub settings: crate::stereo::PairSettings,
}

impl StereoPlan {
    /// The source ids this pair consumes.
    pub fn consumes(&self, source: &str) -> bool {
        match &self.input {
            StereoInput::Pair { left, right } => left == source || right == source,
            StereoInput::SideBySide(s) => s == source,
        }
    }
}

/// A bounded edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgePlan {
    pub capacity: usize,
    pub policy: EdgePolicy,
}

/// A resolved stage.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub id: String,
    pub kind: StageKind,
    /// Streams the stage works on; `None` = all.
    pub streams: Option<Vec<String>>,
    pub input: EdgePlan,
    pub settings: StageSettings,
    /// Skip frames this stage cannot finish before their deadline.
    pub admission: bool,
    pub interval: Interval,
    /// Extra time spent on each frame worked on (load tests).
    pub simulate: Option<Duration>,
    /// Runs beside the stream (`detect` only): see [`crate::runtime`].
    pub asynchronous: bool,
}

/// How often a stage works on a stream's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Every Nth frame (1 = all).
    Every(u32),
    /// N = ceil(recent p95 latency / frame period), at least 1.
    Auto,
}

/// Kind-specific settings of a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum StageSettings {
    ImageStats,
    Delay(Duration),
    Detect(DetectSettings),
    Track(TrackSettings),
    Reid(ModelSettings, crate::reid::ReuseSettings),
    StereoDepth(Box<crate::stereo::depth::StereoDepthSettings>),
    Depth(Box<crate::depth::MonoDepthSettings>),
    Cascade(Box<crate::cascade::CascadeSettings>),
}

/// Where a sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputPath {
    Stdout,
    File(PathBuf),
}

impl fmt::Display for OutputPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputPath::Stdout => f.write_str("standard output"),
            OutputPath::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A resolved sink.
#[derive(Debug, Clone)]
pub struct SinkPlan {
    pub kind: SinkKind,
    pub output: OutputPath,
    pub input: EdgePlan,
}

impl SourcePlan {
    /// A short human description of the input.
    pub fn describe(&self) -> String {
        match &self.input {
            SourceInput::File(p) => format!("file {}", p.display()),
            SourceInput::Uri(u) => format!("uri {u}"),
            SourceInput::V4l2(d) => format!("v4l2 {}", d.display()),
            SourceInput::Test {
                pattern,
                framerate,
                width,
                height,
            } => format!("test pattern {pattern} {width}x{height} @ {framerate} fps"),
            SourceInput::Gst(l) => format!("gst `{l}`"),
        }
    }
}

impl Plan {
    /// Reads, parses and validates a pipeline file.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Plan, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Plan::from_str(&text, path, overrides)
    }

    /// Parses and validates pipeline text; `path` names it in errors and anchors relative paths.
    pub fn from_str(text: &str, path: &Path, overrides: &Overrides) -> Result<Plan, ConfigError> {
        let file: PipelineFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_col(text, offset);
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                field: key_at(text, offset),
                message: e.message().trim_end().to_string(),
            }
        })?;
        let budget = match &file.budget_ms {
            None => None,
            Some(b) if b.get_ref().is_finite() && *b.get_ref() > 0.0 => {
                Some(Duration::from_secs_f64(*b.get_ref() / 1e3))
            }
            Some(b) => {
                let (line, _) = line_col(text, b.span().start);
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    field: "budget_ms".into(),
                    message: "milliseconds, more than 0".into(),
                });
            }
        };
        Resolver {
            text,
            path,
            base: path.parent().unwrap_or(Path::new(".")),
            realtime: overrides.realtime,
            budget,
        }
        .resolve(file, overrides)
    }
}

struct Resolver<'a> {
    text: &'a str,
    path: &'a Path,
    base: &'a Path,
    realtime: bool,
    budget: Option<Duration>,
}

impl Resolver<'_> {
    fn invalid(
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

    fn plan_error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Plan {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    fn resolve(&self, file: PipelineFile, overrides: &Overrides) -> Result<Plan, ConfigError> {
        if *file.version.get_ref() != PIPELINE_VERSION {
            return Err(self.invalid(
                file.version.span(),
                "version",
                format!(
                    "unsupported version {} (this build reads version {PIPELINE_VERSION})",
                    file.version.get_ref()
                ),
            ));
        }
        if file.sources.is_empty() {
            return Err(self.plan_error("no [[source]]: a pipeline needs at least one source"));
        }
        if !overrides.inputs.is_empty() && overrides.inputs.len() != file.sources.len() {
            return Err(self.plan_error(format!(
                "{} --input given but the pipeline has {} source(s): give one per source",
                overrides.inputs.len(),
                file.sources.len()
            )));
        }

        let mut ids = HashSet::new();
        let mut sources = Vec::with_capacity(file.sources.len());
        for (i, spec) in file.sources.iter().enumerate() {
            let field = format!("source[{i}]");
            self.check_id(&spec.id, &field, &mut ids)?;
            sources.push(self.source(spec, &field, overrides.inputs.get(i).map(String::as_str))?);
        }
        let any_live = sources.iter().any(|s| s.live || s.realtime);
        let default_policy = if any_live {
            EdgePolicy::DropOldest
        } else {
            EdgePolicy::Block
        };

        let mut stereo = Vec::with_capacity(file.stereo.len());
        for (i, spec) in file.stereo.iter().enumerate() {
            let field = format!("stereo[{i}]");
            self.check_id(&spec.id, &field, &mut ids)?;
            stereo.push(self.stereo(spec, &field, &sources, &stereo)?);
        }
        // Streams stages see: sources not consumed by a pair, and the pairs.
        let streams: Vec<String> = sources
            .iter()
            .map(|s| s.id.clone())
            .filter(|id| !stereo.iter().any(|p: &StereoPlan| p.consumes(id)))
            .chain(stereo.iter().map(|p| p.id.clone()))
            .collect();

        let mut stages = Vec::with_capacity(file.stages.len());
        for (i, spec) in file.stages.iter().enumerate() {
            let field = format!("stage[{i}]");
            self.check_id(&spec.id, &field, &mut ids)?;
            let stage = self.stage(spec, &field, &sources, &streams, default_policy)?;
            if let StageSettings::Depth(d) = &stage.settings
                && d.fixed.is_none()
                && !stages
                    .iter()
                    .any(|s: &StagePlan| s.kind == StageKind::StereoDepth)
            {
                return Err(self.invalid(
                    spec.kind.span(),
                    format!("{field}.scale"),
                    "a depth stage needs a stereo_depth stage before it to fit against, or a fixed `scale` (and `shift`)",
                ));
            }
            stages.push(stage);
        }

        let mut sinks = Vec::with_capacity(file.sinks.len().max(1));
        for (i, spec) in file.sinks.iter().enumerate() {
            sinks.push(self.sink(spec, &format!("sink[{i}]"), default_policy, overrides)?);
        }
        if let Some(out) = &overrides.output
            && !sinks.iter().any(|s| s.kind == SinkKind::Jsonl)
        {
            sinks.push(SinkPlan {
                kind: SinkKind::Jsonl,
                output: output_path(out, Path::new(".")),
                input: EdgePlan {
                    capacity: DEFAULT_QUEUE_CAPACITY,
                    policy: default_policy,
                },
            });
        }
        if sinks.is_empty() {
            return Err(self.plan_error("no [[sink]]: add one or pass --output"));
        }
        if let Some(dir) = &overrides.depth_out {
            sinks.push(SinkPlan {
                kind: SinkKind::DepthPng,
                output: OutputPath::File(PathBuf::from(dir)),
                input: EdgePlan {
                    capacity: DEFAULT_QUEUE_CAPACITY,
                    policy: default_policy,
                },
            });
        }

        Ok(Plan {
            path: self.path.to_path_buf(),
            name: file.name.clone().unwrap_or_else(|| {
                self.path
                    .file_stem()
                    .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
            }),
            sources,
            stereo,
            stages,
            sinks,
        })
    }

    fn stereo(
        &self,
        spec: &super::file::StereoSpec,
        field: &str,
        sources: &[SourcePlan],
        earlier: &[StereoPlan],
    ) -> Result<StereoPlan, ConfigError> {
        let source = |v: &Spanned<String>, name: &str| -> Result<String, ConfigError> {
            let id = v.get_ref();
            if !sources.iter().any(|s| &s.id == id) {
                return Err(self.invalid(
                    v.span(),
                    format!("{field}.{name}"),
                    format!("no source has id `{id}`"),
                ));
            }
            if earlier.iter().any(|p| p.consumes(id)) {
                return Err(self.invalid(
                    v.span(),
                    format!("{field}.{name}"),
                    format!("source `{id}` is already part of another stereo pair"),
                ));
            }
            Ok(id.clone())
        };
        let input = match (&spec.left, &spec.right, &spec.side_by_side) {
            (Some(l), Some(r), None) => {
                let (left, right) = (source(l, "left")?, source(r, "right")?);
                if left == right {
                    return Err(self.invalid(
                        r.span(),
                        format!("{field}.right"),
                        "left and right must be different sources",
                    ));
                }
                StereoInput::Pair { left, right }
            }
            (None, None, Some(s)) => StereoInput::SideBySide(source(s, "side_by_side")?),
            _ => {
                return Err(self.invalid(
                    spec.id.span(),
                    field.to_string(),
                    "give `left` and `right` (two sources) or `side_by_side` (one source)",
                ));
            }
        };
        let ms = |v: &Option<Spanned<f64>>, name: &str, default: f64| -> Result<u64, ConfigError> {
            match v {
                None => Ok((default * 1e6) as u64),
                Some(v) if v.get_ref().is_finite() && *v.get_ref() >= 0.0 => {
                    Ok((*v.get_ref() * 1e6) as u64)
                }
                Some(v) => Err(self.invalid(
                    v.span(),
                    format!("{field}.{name}"),
                    "milliseconds, at least 0",
                )),
            }
        };
        let max_skew_ns = ms(&spec.max_skew_ms, "max_skew_ms", 10.0)?;
        let max_wait_ns = ms(&spec.max_wait_ms, "max_wait_ms", 100.0)?;
        let live = sources
            .iter()
            .filter(|s| match &input {
                StereoInput::Pair { left, right } => &s.id == left || &s.id == right,
                StereoInput::SideBySide(x) => &s.id == x,
            })
            .any(|s| s.live || s.realtime);
        Ok(StereoPlan {
            id: spec.id.get_ref().clone(),
            input,
            settings: crate::stereo::PairSettings {
                max_skew_ns,
                max_wait_ns: live.then_some(max_wait_ns),
            },
        })
    }

    fn check_id(
        &self,
        id: &Spanned<String>,
        field: &str,
        seen: &mut HashSet<String>,
    ) -> Result<(), ConfigError> {
        let name = id.get_ref();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(self.invalid(
                id.span(),
                format!("{field}.id"),
                format!("`{name}` is not a valid id: use letters, digits, `_` and `-`"),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(self.invalid(
                id.span(),
                format!("{field}.id"),
                format!("duplicate id `{name}`: source and stage ids must be unique"),
            ));
        }
        Ok(())
    }

    /// Rejects a field that the source's kind does not use.
    fn only_for<T>(
        &self,
        value: &Option<Spanned<T>>,
        field: &str,
        name: &str,
        kind: SourceKind,
        allowed: &[SourceKind],
    ) -> Result<(), ConfigError> {
        match value {
            Some(v) if !allowed.contains(&kind) => Err(self.invalid(
                v.span(),
                format!("{field}.{name}"),
                format!(
                    "not used by kind = \"{}\" (only by {})",
                    kind.as_str(),
                    allowed
                        .iter()
                        .map(|k| format!("\"{}\"", k.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }

    fn source(
        &self,
        spec: &SourceSpec,
        field: &str,
        input_override: Option<&str>,
    ) -> Result<SourcePlan, ConfigError> {
        use SourceKind::*;
        let declared = *spec.kind.get_ref();
        self.only_for(
            &spec.location,
            field,
            "location",
            declared,
            &[File, Uri, V4l2],
        )?;
        self.only_for(&spec.pattern, field, "pattern", declared, &[Test])?;
        self.only_for(&spec.framerate, field, "framerate", declared, &[Test])?;
        self.only_for(&spec.launch, field, "launch", declared, &[Gst])?;
        self.only_for(&spec.live, field, "live", declared, &[Test, Uri, Gst])?;
        self.only_for(&spec.realtime, field, "realtime", declared, &[File, Uri])?;

        let input = match input_override {
            Some(raw) => self.input_from_cli(raw, field)?,
            None => self.input_from_file(spec, field)?,
        };

        let size = match (&spec.width, &spec.height) {
            (None, None) => None,
            (Some(w), Some(h)) => {
                for (v, n) in [(w, "width"), (h, "height")] {
                    if *v.get_ref() == 0 {
                        return Err(self.invalid(
                            v.span(),
                            format!("{field}.{n}"),
                            "must be at least 1",
                        ));
                    }
                }
                Some((*w.get_ref(), *h.get_ref()))
            }
            (Some(v), None) | (None, Some(v)) => {
                return Err(self.invalid(
                    v.span(),
                    format!("{field}.width"),
                    "set both `width` and `height`, or neither",
                ));
            }
        };
        let input = match input {
            SourceInput::Test {
                pattern, framerate, ..
            } => {
                let (width, height) = size.unwrap_or((320, 240));
                SourceInput::Test {
                    pattern,
                    framerate,
                    width,
                    height,
                }
            }
            other => other,
        };

        let format = match &spec.format {
            None => gst_video::VideoFormat::Rgb,
            Some(f) => {
                let name = f.get_ref().to_ascii_uppercase();
                if !SUPPORTED_FORMATS.contains(&name.as_str()) {
                    return Err(self.invalid(
                        f.span(),
                        format!("{field}.format"),
                        format!(
                            "unsupported pixel format `{}` (one of {})",
                            f.get_ref(),
                            SUPPORTED_FORMATS.join(", ")
                        ),
                    ));
                }
                format_from_name(&name)
            }
        };

        if let Some(m) = &spec.max_frames
            && *m.get_ref() == 0
        {
            return Err(self.invalid(
                m.span(),
                format!("{field}.max_frames"),
                "must be at least 1",
            ));
        }

        let live = match &input {
            SourceInput::V4l2(_) => true,
            SourceInput::Uri(u) => spec
                .live
                .as_ref()
                .map_or_else(|| is_live_scheme(u), |l| *l.get_ref()),
            SourceInput::File(_) => false,
            _ => spec.live.as_ref().is_some_and(|l| *l.get_ref()),
        };
        let realtime = !live
            && (spec.realtime.as_ref().is_some_and(|r| *r.get_ref())
                || (self.realtime && matches!(input, SourceInput::File(_) | SourceInput::Uri(_))));
        let delivery = spec.delivery.as_ref().map_or(
            if live || realtime {
                Delivery::Latest
            } else {
                Delivery::Lossless
            },
            |d| *d.get_ref(),
        );

        Ok(SourcePlan {
            id: spec.id.get_ref().clone(),
            input,
            format,
            size,
            max_frames: spec.max_frames.as_ref().map(|m| *m.get_ref()),
            live,
            realtime,
            delivery,
            budget: self.budget,
        })
    }

    fn input_from_file(&self, spec: &SourceSpec, field: &str) -> Result<SourceInput, ConfigError> {
        let kind = *spec.kind.get_ref();
        let required = |v: &Option<Spanned<String>>,
                        name: &str|
         -> Result<(String, Range<usize>), ConfigError> {
            match v {
                Some(s) => Ok((s.get_ref().clone(), s.span())),
                None => Err(self.invalid(
                    spec.kind.span(),
                    format!("{field}.{name}"),
                    format!("kind = \"{}\" needs `{name}`", kind.as_str()),
                )),
            }
        };
        Ok(match kind {
            SourceKind::File => {
                let (raw, span) = required(&spec.location, "location")?;
                let loc_field = format!("{field}.location");
                let expanded =
                    expand(&raw).map_err(|m| self.invalid(span.clone(), &loc_field, m))?;
                let path = self.base.join(expanded);
                if !path.is_file() {
                    return Err(self.invalid(
                        span,
                        loc_field,
                        format!("file not found: {}", path.display()),
                    ));
                }
                SourceInput::File(path)
            }
            SourceKind::Uri => {
                let (raw, span) = required(&spec.location, "location")?;
                let uri = expand(&raw)
                    .map_err(|m| self.invalid(span.clone(), format!("{field}.location"), m))?;
                if !uri.contains("://") {
                    return Err(self.invalid(
                        span,
                        format!("{field}.location"),
                        format!("`{uri}` is not a URI (scheme://...)"),
                    ));
                }
                SourceInput::Uri(uri)
            }
            SourceKind::V4l2 => {
                let (raw, span) = required(&spec.location, "location")?;
                let dev =
                    expand(&raw).map_err(|m| self.invalid(span, format!("{field}.location"), m))?;
                SourceInput::V4l2(PathBuf::from(dev))
            }
            SourceKind::Test => {
                let pattern = spec
                    .pattern
                    .as_ref()
                    .map_or_else(|| "smpte".to_string(), |p| p.get_ref().clone());
                if !pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    let span = spec
                        .pattern
                        .as_ref()
                        .map_or(spec.kind.span(), Spanned::span);
                    return Err(self.invalid(
                        span,
                        format!("{field}.pattern"),
                        format!("`{pattern}` is not a videotestsrc pattern name"),
                    ));
                }
                let framerate = match &spec.framerate {
                    Some(f) if *f.get_ref() == 0 => {
                        return Err(self.invalid(
                            f.span(),
                            format!("{field}.framerate"),
                            "must be at least 1",
                        ));
                    }
                    Some(f) => *f.get_ref(),
                    None => 30,
                };
                SourceInput::Test {
                    pattern,
                    framerate,
                    width: 0,
                    height: 0,
                }
            }
            SourceKind::Gst => {
                let (launch, span) = required(&spec.launch, "launch")?;
                if launch.trim().is_empty() {
                    return Err(self.invalid(
                        span,
                        format!("{field}.launch"),
                        "empty launch fragment",
                    ));
                }
                SourceInput::Gst(launch)
            }
        })
    }

    /// `--input`: a URI, a V4L2 device or a file path (relative to the working directory).
    fn input_from_cli(&self, raw: &str, field: &str) -> Result<SourceInput, ConfigError> {
        let bad = |message: String| ConfigError::Plan {
            path: self.path.to_path_buf(),
            message: format!("--input for {field}: {message}"),
        };
        if raw.contains("://") {
            return Ok(SourceInput::Uri(raw.to_string()));
        }
        let expanded = expand(raw).map_err(bad)?;
        if expanded.starts_with("/dev/video") {
            return Ok(SourceInput::V4l2(PathBuf::from(expanded)));
        }
        let path = std::path::absolute(&expanded).map_err(|e| bad(format!("{expanded}: {e}")))?;
        if !path.is_file() {
            return Err(bad(format!("file not found: {}", path.display())));
        }
        Ok(SourceInput::File(path))
    }

    fn edge(
        &self,
        queue: &Option<QueueSpec>,
        field: &str,
        default_policy: EdgePolicy,
    ) -> Result<EdgePlan, ConfigError> {
        let Some(q) = queue else {
            return Ok(EdgePlan {
                capacity: DEFAULT_QUEUE_CAPACITY,
                policy: default_policy,
            });
        };
        let capacity = match &q.capacity {
            Some(c) if *c.get_ref() == 0 => {
                return Err(self.invalid(
                    c.span(),
                    format!("{field}.queue.capacity"),
                    "must be at least 1 (edges are bounded)",
                ));
            }
            Some(c) => *c.get_ref(),
            None => DEFAULT_QUEUE_CAPACITY,
        };
        Ok(EdgePlan {
            capacity,
            policy: q.policy.as_ref().map_or(default_policy, |p| *p.get_ref()),
        })
    }

    fn stage(
        &self,
        spec: &StageSpec,
        field: &str,
        sources: &[SourcePlan],
        known_streams: &[String],
        default_policy: EdgePolicy,
    ) -> Result<StagePlan, ConfigError> {
        let kind = *spec.kind.get_ref();
        let streams = match &spec.streams {
            None => None,
            Some(list) => {
                for name in list.get_ref() {
                    if !known_streams.iter().any(|s| s == name) {
                        return Err(self.invalid(
                            list.span(),
                            format!("{field}.streams"),
                            format!(
                                "no source has id `{name}` (sources: {})",
                                known_streams.join(", ")
                            ),
                        ));
                    }
                }
                Some(list.get_ref().clone())
            }
        };
        if kind != StageKind::Delay
            && let Some(d) = &spec.delay_ms
        {
            return Err(self.invalid(
                d.span(),
                format!("{field}.delay_ms"),
                "only used by kind = \"delay\"",
            ));
        }
        if kind != StageKind::Detect {
            self.reject_detect_fields(spec, field)?;
        }
        let settings = match kind {
            StageKind::ImageStats => StageSettings::ImageStats,
            StageKind::Delay => {
                let Some(d) = &spec.delay_ms else {
                    return Err(self.invalid(
                        spec.kind.span(),
                        format!("{field}.delay_ms"),
                        "kind = \"delay\" needs `delay_ms`",
                    ));
                };
                let ms = *d.get_ref();
                if !(0.0..=60_000.0).contains(&ms) {
                    return Err(self.invalid(
                        d.span(),
                        format!("{field}.delay_ms"),
                        "must be between 0 and 60000",
                    ));
                }
                StageSettings::Delay(Duration::from_secs_f64(ms / 1e3))
            }
            StageKind::Detect => {
                let settings = self.detect(spec, field)?;
                self.check_stream_formats(spec, field, sources, &settings)?;
                StageSettings::Detect(settings)
            }
            StageKind::Track => StageSettings::Track(self.tracker(spec, field)?),
            StageKind::Reid => {
                let Some(model) = &spec.model else {
                    return Err(self.invalid(
                        spec.kind.span(),
                        format!("{field}.model"),
                        "a reid stage needs `[stage.model]` with `path`",
                    ));
                };
                let mut settings = self.model(model.get_ref(), &format!("{field}.model"))?;
                if model.get_ref().max_batch.is_none() {
                    settings.max_batch = 32;
                }
                if model.get_ref().resize.is_none() {
                    settings.preprocess.resize = crate::model::preprocess::Resize::Stretch;
                }
                StageSettings::Reid(settings, self.reuse(spec, field)?)
            }
            StageKind::StereoDepth => {
                StageSettings::StereoDepth(Box::new(self.stereo_depth(spec, field)?))
            }
            StageKind::Depth => StageSettings::Depth(Box::new(self.mono_depth(spec, field)?)),
            StageKind::Cascade => StageSettings::Cascade(Box::new(self.cascade(spec, field)?)),
        };
        let admission = spec.admission.as_ref().map_or(
            !matches!(kind, StageKind::Track | StageKind::ImageStats),
            |a| *a.get_ref(),
        );
        let interval = match &spec.interval {
            None => Interval::Every(1),
            Some(i) => match i.get_ref() {
                super::file::IntervalSpec::Every(n) if *n >= 1 => Interval::Every(*n),
                super::file::IntervalSpec::Named(a) if a == "auto" => Interval::Auto,
                _ => {
                    return Err(self.invalid(
                        i.span(),
                        format!("{field}.interval"),
                        "a whole number of frames, at least 1, or \"auto\"",
                    ));
                }
            },
        };
        let simulate = match &spec.simulate_ms {
            None => None,
            Some(v) if (0.0..=60_000.0).contains(v.get_ref()) => {
                Some(Duration::from_secs_f64(*v.get_ref() / 1e3))
            }
            Some(v) => {
                return Err(self.invalid(
                    v.span(),
                    format!("{field}.simulate_ms"),
                    "must be between 0 and 60000",
                ));
            }
        };
        let asynchronous = match &spec.asynchronous {
            Some(a) if *a.get_ref() && kind != StageKind::Detect => {
                return Err(self.invalid(
                    a.span(),
                    format!("{field}.async"),
                    "only a detect stage can run asynchronously",
                ));
            }
            Some(a) => *a.get_ref(),
            None => false,
        };
        Ok(StagePlan {
            id: spec.id.get_ref().clone(),
            kind,
            streams,
            input: self.edge(&spec.queue, field, default_policy)?,
            settings,
            admission,
            interval,
            simulate,
            asynchronous,
        })
    }

    fn tracker(&self, spec: &StageSpec, field: &str) -> Result<TrackSettings, ConfigError> {
        let mut t = TrackSettings::default();
        let Some(spec) = &spec.tracker else {
            return Ok(t);
        };
        let spec = spec.get_ref();
        let f = |name: &str| format!("{field}.tracker.{name}");
        let unit = |v: &Option<Spanned<f32>>, name: &str, default: f32| {
            self.unit(v, f(name), default, false)
        };
        t.high_score = unit(&spec.high_score, "high_score", t.high_score)?;
        t.low_score = unit(&spec.low_score, "low_score", t.low_score)?;
        t.new_track_score = unit(&spec.new_track_score, "new_track_score", t.new_track_score)?;
        t.match_iou = unit(&spec.match_iou, "match_iou", t.match_iou)?;
        t.low_match_iou = unit(&spec.low_match_iou, "low_match_iou", t.low_match_iou)?;
        t.appearance_weight = unit(
            &spec.appearance_weight,
            "appearance_weight",
            t.appearance_weight,
        )?;
        t.embedding_ema = unit(&spec.embedding_ema, "embedding_ema", t.embedding_ema)?;
        if let Some(g) = &spec.appearance_gate {
            if !(0.0..=2.0).contains(g.get_ref()) {
                return Err(self.invalid(
                    g.span(),
                    f("appearance_gate"),
                    "a cosine distance, between 0 and 2",
                ));
            }
            t.appearance_gate = *g.get_ref();
        }
        for (v, name, slot) in [
            (&spec.max_lost_s, "max_lost_s", &mut t.max_lost_s),
            (&spec.confirm_s, "confirm_s", &mut t.confirm_s),
            (
                &spec.reacquire_sizes,
                "reacquire_sizes",
                &mut t.reacquire_sizes,
            ),
        ] {
            if let Some(v) = v {
                if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) {
                    let unit = if name == "reacquire_sizes" {
                        "box sizes, at least 0"
                    } else {
                        "seconds, at least 0"
                    };
                    return Err(self.invalid(v.span(), f(name), unit));
                }
                *slot = *v.get_ref();
            }
        }
        if let Some(l) = &spec.low_score
            && t.low_score > t.high_score
        {
            return Err(self.invalid(l.span(), f("low_score"), "must not exceed high_score"));
        }
        Ok(t)
    }

    fn reject_detect_fields(&self, spec: &StageSpec, field: &str) -> Result<(), ConfigError> {
        let spans = [
            ("backend", spec.backend.as_ref().map(Spanned::span)),
            ("layout", spec.layout.as_ref().map(Spanned::span)),
            ("outputs", spec.outputs.as_ref().map(Spanned::span)),
            ("confidence", spec.confidence.as_ref().map(Spanned::span)),
            ("iou", spec.iou.as_ref().map(Spanned::span)),
            (
                "max_detections",
                spec.max_detections.as_ref().map(Spanned::span),
            ),
            ("classes", spec.classes.as_ref().map(Spanned::span)),
            ("labels", spec.labels.as_ref().map(Spanned::span)),
            (
                "model",
                spec.model.as_ref().map(Spanned::span).filter(|_| {
                    !matches!(
                        spec.kind.get_ref(),
                        StageKind::Reid | StageKind::Depth | StageKind::Cascade
                    )
                }),
            ),
            ("hog", spec.hog.as_ref().map(Spanned::span)),
        ];
        let kind = *spec.kind.get_ref();
        let depth_kinds = [StageKind::StereoDepth, StageKind::Depth];
        let both = "stereo_depth and depth";
        let cascade = [StageKind::Cascade];
        for (name, span, kinds, used_by) in [
            (
                "calibration",
                spec.calibration.as_ref().map(Spanned::span),
                &depth_kinds[..],
                both,
            ),
            (
                "max_depth_m",
                spec.max_depth_m.as_ref().map(Spanned::span),
                &depth_kinds[..],
                both,
            ),
            (
                "box_shrink",
                spec.box_shrink.as_ref().map(Spanned::span),
                &depth_kinds[..],
                both,
            ),
            (
                "sgbm",
                spec.sgbm.as_ref().map(Spanned::span),
                &depth_kinds[..1],
                "stereo_depth",
            ),
            (
                "inverse",
                spec.inverse.as_ref().map(Spanned::span),
                &depth_kinds[1..],
                "depth",
            ),
            (
                "scale",
                spec.scale.as_ref().map(Spanned::span),
                &depth_kinds[1..],
                "depth",
            ),
            (
                "shift",
                spec.shift.as_ref().map(Spanned::span),
                &depth_kinds[1..],
                "depth",
            ),
            (
                "threshold",
                spec.threshold.as_ref().map(Spanned::span),
                &cascade[..],
                "cascade",
            ),
            (
                "exit",
                spec.exit.as_ref().map(Spanned::span),
                &cascade[..],
                "cascade",
            ),
        ] {
            if let Some(span) = span
                && !kinds.contains(&kind)
            {
                return Err(self.invalid(
                    span,
                    format!("{field}.{name}"),
                    format!("only used by kind = {used_by}"),
                ));
            }
        }
        if spec.kind.get_ref() != &StageKind::Reid
            && let Some(r) = &spec.reuse
        {
            return Err(self.invalid(
                r.span(),
                format!("{field}.reuse"),
                "only used by kind = \"reid\"",
            ));
        }
        if spec.kind.get_ref() != &StageKind::Track
            && let Some(t) = &spec.tracker
        {
            return Err(self.invalid(
                t.span(),
                format!("{field}.tracker"),
                "only used by kind = \"track\"",
            ));
        }
        match spans
            .into_iter()
            .find_map(|(name, span)| span.map(|s| (name, s)))
        {
            Some((name, span)) => Err(self.invalid(
                span,
                format!("{field}.{name}"),
                "only used by kind = \"detect\"",
            )),
            None => Ok(()),
        }
    }

    /// A value in [0, 1] (or (0, 1] when `low_open`), with a default.
    fn unit(
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

    /// Resolves a `detect` stage: backend, model, thresholds, labels.
    fn detect(&self, spec: &StageSpec, field: &str) -> Result<DetectSettings, ConfigError> {
        let backend_kind = spec
            .backend
            .as_ref()
            .map_or(DetectBackend::Onnx, |b| *b.get_ref());
        let backend = match backend_kind {
            DetectBackend::Onnx => {
                if let Some(h) = &spec.hog {
                    return Err(self.invalid(
                        h.span(),
                        format!("{field}.hog"),
                        "only used by backend = \"hog_people\"",
                    ));
                }
                let Some(model) = &spec.model else {
                    return Err(self.invalid(
                        spec.kind.span(),
                        format!("{field}.model"),
                        "an ONNX detector needs `[stage.model]` with `path`",
                    ));
                };
                Backend::Onnx {
                    model: self.model(model.get_ref(), &format!("{field}.model"))?,
                    layout: spec
                        .layout
                        .as_ref()
                        .map_or(Layout::Yolov8, |l| *l.get_ref()),
                    outputs: spec.outputs.as_ref().map(|o| o.get_ref().clone()),
                }
            }
            DetectBackend::HogPeople => {
                for (name, span) in [
                    ("model", spec.model.as_ref().map(Spanned::span)),
                    ("layout", spec.layout.as_ref().map(Spanned::span)),
                    ("outputs", spec.outputs.as_ref().map(Spanned::span)),
                ] {
                    if let Some(span) = span {
                        return Err(self.invalid(
                            span,
                            format!("{field}.{name}"),
                            "not used by backend = \"hog_people\"",
                        ));
                    }
                }
                Backend::HogPeople(self.hog(spec, field)?)
            }
        };
        let confidence = match (&backend, &spec.confidence) {
            // HOG scores are SVM margins, not probabilities.
            (Backend::HogPeople(_), Some(c)) => *c.get_ref(),
            (Backend::HogPeople(_), None) => 0.0,
            (Backend::Onnx { .. }, _) => {
                self.unit(&spec.confidence, format!("{field}.confidence"), 0.25, false)?
            }
        };
        let max_detections = match &spec.max_detections {
            Some(m) if *m.get_ref() == 0 => {
                return Err(self.invalid(
                    m.span(),
                    format!("{field}.max_detections"),
                    "must be at least 1",
                ));
            }
            Some(m) => *m.get_ref(),
            None => 100,
        };
        let labels = match &spec.labels {
            None => None,
            Some(l) => Some(self.existing_file(l, &format!("{field}.labels"))?),
        };
        Ok(DetectSettings {
            backend,
            confidence,
            iou: self.unit(&spec.iou, format!("{field}.iou"), 0.45, true)?,
            max_detections,
            classes: spec.classes.as_ref().map(|c| c.get_ref().clone()),
            labels,
        })
    }

    fn cascade(
        &self,
        spec: &StageSpec,
        field: &str,
    ) -> Result<crate::cascade::CascadeSettings, ConfigError> {
        use crate::cascade::{CascadeSettings, ExitSettings};
        let Some(model) = &spec.model else {
            return Err(self.invalid(
                spec.kind.span(),
                format!("{field}.model"),
                "a cascade stage needs `[stage.model]`: its first exit",
            ));
        };
        let threshold = |v: &Option<Spanned<f32>>, name: String, default: f32| match v {
            None => Ok(default),
            Some(t) if (0.0..=1.0).contains(t.get_ref()) => Ok(*t.get_ref()),
            Some(t) => Err(self.invalid(t.span(), name, "a score, 0 to 1")),
        };
        let first = ExitSettings {
            model: self.model(model.get_ref(), &format!("{field}.model"))?,
            threshold: threshold(&spec.threshold, format!("{field}.threshold"), 0.9)?,
        };
        let mut rest = Vec::new();
        for (i, e) in spec
            .exit
            .iter()
            .flat_map(|e| e.get_ref().iter())
            .enumerate()
        {
            let f = format!("{field}.exit[{i}]");
            let mut m = ModelSettings::new(self.existing_file(&e.path, &format!("{f}.path"))?);
            m.threads = e.threads.as_ref().map_or(1, |t| *t.get_ref());
            rest.push(ExitSettings {
                model: m,
                threshold: threshold(&e.threshold, format!("{f}.threshold"), 0.0)?,
            });
        }
        Ok(CascadeSettings { first, rest })
    }

    fn reuse(
        &self,
        spec: &StageSpec,
        field: &str,
    ) -> Result<crate::reid::ReuseSettings, ConfigError> {
        let mut r = crate::reid::ReuseSettings::default();
        let Some(spec) = &spec.reuse else {
            return Ok(r);
        };
        let spec = spec.get_ref();
        let check = |v: &Option<Spanned<f32>>,
                     name: &str,
                     slot: &mut f32,
                     ok: fn(f32) -> bool,
                     rule: &str| {
            if let Some(v) = v {
                if !ok(*v.get_ref()) {
                    return Err(self.invalid(
                        v.span(),
                        format!("{field}.reuse.{name}"),
                        rule.to_string(),
                    ));
                }
                *slot = *v.get_ref();
            }
            Ok(())
        };
        check(
            &spec.iou,
            "iou",
            &mut r.iou,
            |x| (0.0..=1.01).contains(&x),
            "an IoU, 0 to 1 (above 1: never reuse)",
        )?;
        check(
            &spec.grow,
            "grow",
            &mut r.grow,
            |x| x.is_finite() && x >= 1.0,
            "an area ratio, at least 1",
        )?;
        check(
            &spec.refresh_s,
            "refresh_s",
            &mut r.refresh_s,
            |x| x.is_finite() && x >= 0.0,
            "seconds, at least 0",
        )?;
        Ok(r)
    }

    fn mono_depth(
        &self,
        spec: &StageSpec,
        field: &str,
    ) -> Result<crate::depth::MonoDepthSettings, ConfigError> {
        let Some(model) = &spec.model else {
            return Err(self.invalid(
                spec.kind.span(),
                format!("{field}.model"),
                "a depth stage needs `[stage.model]` with `path`",
            ));
        };
        let Some(cal) = &spec.calibration else {
            return Err(self.invalid(
                spec.kind.span(),
                format!("{field}.calibration"),
                "a depth stage needs `calibration` (its left camera gives the intrinsics)",
            ));
        };
        let mut settings = self.model(model.get_ref(), &format!("{field}.model"))?;
        if model.get_ref().resize.is_none() {
            settings.preprocess.resize = crate::model::preprocess::Resize::Stretch;
        }
        let calibration_path = self.existing_file(cal, &format!("{field}.calibration"))?;
        let calibration = crate::calib::StereoCalibration::load(&calibration_path)?;
        let fixed = match (&spec.scale, &spec.shift) {
            (Some(s), shift) => {
                if !s.get_ref().is_finite() || *s.get_ref() == 0.0 {
                    return Err(self.invalid(
                        s.span(),
                        format!("{field}.scale"),
                        "a finite, non-zero number",
                    ));
                }
                Some((*s.get_ref(), shift.as_ref().map_or(0.0, |t| *t.get_ref())))
            }
            (None, Some(t)) => {
                return Err(self.invalid(
                    t.span(),
                    format!("{field}.shift"),
                    "only used with `scale`",
                ));
            }
            (None, None) => None,
        };
        let (max_depth_m, box_shrink) = self.depth_common(spec, field)?;
        Ok(crate::depth::MonoDepthSettings {
            model: settings,
            calibration_path,
            calibration,
            inverse: spec.inverse.as_ref().is_none_or(|v| *v.get_ref()),
            fixed,
            max_depth_m,
            box_shrink,
        })
    }

    /// `max_depth_m` and `box_shrink`, shared by the depth stages.
    fn depth_common(&self, spec: &StageSpec, field: &str) -> Result<(f32, f32), ConfigError> {
        let max_depth_m = match &spec.max_depth_m {
            None => 0.0,
            Some(v) if v.get_ref().is_finite() && *v.get_ref() >= 0.0 => *v.get_ref(),
            Some(v) => {
                return Err(self.invalid(
                    v.span(),
                    format!("{field}.max_depth_m"),
                    "metres, at least 0",
                ));
            }
        };
        let box_shrink = match &spec.box_shrink {
            None => 0.25,
            Some(v) if (0.0..0.5).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(self.invalid(
                    v.span(),
                    format!("{field}.box_shrink"),
                    "a fraction, at least 0 and under 0.5",
                ));
            }
        };
        Ok((max_depth_m, box_shrink))
    }

    fn stereo_depth(
        &self,
        spec: &StageSpec,
        field: &str,
    ) -> Result<crate::stereo::depth::StereoDepthSettings, ConfigError> {
        use crate::stereo::depth::{SgbmSettings, StereoDepthSettings};
        let Some(cal) = &spec.calibration else {
            return Err(self.invalid(
                spec.kind.span(),
                format!("{field}.calibration"),
                "a stereo_depth stage needs `calibration` (a file in calibration/)",
            ));
        };
        let calibration_path = self.existing_file(cal, &format!("{field}.calibration"))?;
        let calibration = crate::calib::StereoCalibration::load(&calibration_path)?;
        let mut sgbm = SgbmSettings::default();
        if let Some(g) = &spec.sgbm {
            let g = g.get_ref();
            let int = |v: &Option<Spanned<i32>>,
                       name: &str,
                       default: i32,
                       ok: &dyn Fn(i32) -> bool,
                       rule: &str| {
                match v {
                    None => Ok(default),
                    Some(v) if ok(*v.get_ref()) => Ok(*v.get_ref()),
                    Some(v) => Err(self.invalid(
                        v.span(),
                        format!("{field}.sgbm.{name}"),
                        rule.to_string(),
                    )),
                }
            };
            let any = |_: i32| true;
            let nonneg = |x: i32| x >= 0;
            sgbm.min_disparity = int(
                &g.min_disparity,
                "min_disparity",
                sgbm.min_disparity,
                &any,
                "",
            )?;
            sgbm.num_disparities = int(
                &g.num_disparities,
                "num_disparities",
                sgbm.num_disparities,
                &|x| x > 0 && x % 16 == 0,
                "a positive multiple of 16",
            )?;
            sgbm.block_size = int(
                &g.block_size,
                "block_size",
                sgbm.block_size,
                &|x| (1..=11).contains(&x) && x % 2 == 1,
                "odd, 1 to 11",
            )?;
            sgbm.p1 = g.p1.as_ref().map(|v| *v.get_ref());
            sgbm.p2 = g.p2.as_ref().map(|v| *v.get_ref());
            if let (Some(p1), Some(p2)) = (sgbm.p1, sgbm.p2)
                && p2 <= p1
            {
                let span = g.p2.as_ref().map_or(spec.kind.span(), Spanned::span);
                return Err(self.invalid(
                    span,
                    format!("{field}.sgbm.p2"),
                    "must be larger than p1",
                ));
            }
            sgbm.disp12_max_diff = int(
                &g.disp12_max_diff,
                "disp12_max_diff",
                sgbm.disp12_max_diff,
                &any,
                "",
            )?;
            sgbm.pre_filter_cap = int(
                &g.pre_filter_cap,
                "pre_filter_cap",
                sgbm.pre_filter_cap,
                &nonneg,
                "at least 0",
            )?;
            sgbm.uniqueness_ratio = int(
                &g.uniqueness_ratio,
                "uniqueness_ratio",
                sgbm.uniqueness_ratio,
                &nonneg,
                "at least 0",
            )?;
            sgbm.speckle_window_size = int(
                &g.speckle_window_size,
                "speckle_window_size",
                sgbm.speckle_window_size,
                &nonneg,
                "at least 0",
            )?;
            sgbm.speckle_range = int(
                &g.speckle_range,
                "speckle_range",
                sgbm.speckle_range,
                &nonneg,
                "at least 0",
            )?;
            if let Some(m) = &g.mode {
                sgbm.mode = *m.get_ref();
            }
            if let Some(f) = &g.full_width {
                sgbm.full_width = *f.get_ref();
            }
        }
        let (max_depth_m, box_shrink) = self.depth_common(spec, field)?;
        Ok(StereoDepthSettings {
            calibration_path,
            calibration,
            sgbm,
            max_depth_m,
            box_shrink,
        })
    }

    /// A path field that must name an existing file (relative to the pipeline file).
    fn existing_file(&self, raw: &Spanned<String>, field: &str) -> Result<PathBuf, ConfigError> {
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

    fn hog(&self, spec: &StageSpec, field: &str) -> Result<HogSettings, ConfigError> {
        let mut hog = HogSettings::default();
        let Some(h) = &spec.hog else {
            return Ok(hog);
        };
        let h = h.get_ref();
        let bad = |span: Range<usize>, name: &str, message: &str| {
            Err(self.invalid(span, format!("{field}.hog.{name}"), message))
        };
        if let Some(v) = &h.scale {
            if !(*v.get_ref() > 1.0 && *v.get_ref() <= 2.0) {
                return bad(v.span(), "scale", "must be in (1, 2]");
            }
            hog.scale = *v.get_ref();
        }
        if let Some(v) = &h.win_stride {
            if *v.get_ref() <= 0 || *v.get_ref() % 8 != 0 {
                return bad(v.span(), "win_stride", "must be a positive multiple of 8");
            }
            hog.win_stride = *v.get_ref();
        }
        if let Some(v) = &h.upscale {
            if !(0.25..=4.0).contains(v.get_ref()) {
                return bad(v.span(), "upscale", "must be between 0.25 and 4");
            }
            hog.upscale = *v.get_ref();
        }
        if let Some(v) = &h.group_threshold {
            if *v.get_ref() < 0.0 {
                return bad(v.span(), "group_threshold", "must be at least 0");
            }
            hog.group_threshold = *v.get_ref();
        }
        Ok(hog)
    }

    fn model(&self, m: &ModelSpec, field: &str) -> Result<ModelSettings, ConfigError> {
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

    /// A detector reads packed RGB-family frames; HOG needs 3 channels.
    fn check_stream_formats(
        &self,
        spec: &StageSpec,
        field: &str,
        sources: &[SourcePlan],
        settings: &DetectSettings,
    ) -> Result<(), ConfigError> {
        use gst_video::VideoFormat as F;
        let allowed: &[F] = match settings.backend {
            Backend::HogPeople(_) => &[F::Rgb, F::Bgr],
            Backend::Onnx { .. } => &[F::Rgb, F::Bgr, F::Rgba, F::Bgra],
        };
        let applies = |id: &str| {
            spec.streams
                .as_ref()
                .is_none_or(|s| s.get_ref().iter().any(|x| x == id))
        };
        for s in sources.iter().filter(|s| applies(&s.id)) {
            if !allowed.contains(&s.format) {
                return Err(self.invalid(
                    spec.kind.span(),
                    format!("{field}.kind"),
                    format!(
                        "this detector cannot read source `{}`'s {} frames: give that source format = \"RGB\"",
                        s.id,
                        s.format.to_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn sink(
        &self,
        spec: &SinkSpec,
        field: &str,
        default_policy: EdgePolicy,
        overrides: &Overrides,
    ) -> Result<SinkPlan, ConfigError> {
        let kind = *spec.kind.get_ref();
        let output = match (&overrides.output, &spec.path) {
            (Some(out), _) if kind == SinkKind::Jsonl => output_path(out, Path::new(".")),
            (_, Some(p)) => {
                let expanded = expand(p.get_ref())
                    .map_err(|m| self.invalid(p.span(), format!("{field}.path"), m))?;
                output_path(&expanded, self.base)
            }
            (_, None) => {
                return Err(self.invalid(
                    spec.kind.span(),
                    format!("{field}.path"),
                    "a sink needs `path` (jsonl: a file or `-` for standard output; depth_png: a folder)",
                ));
            }
        };
        Ok(SinkPlan {
            kind,
            output,
            input: self.edge(&spec.queue, field, default_policy)?,
        })
    }
}

fn output_path(raw: &str, base: &Path) -> OutputPath {
    if raw == "-" {
        OutputPath::Stdout
    } else {
        OutputPath::File(base.join(raw))
    }
}

/// The GStreamer format of a name in [`SUPPORTED_FORMATS`] (no GStreamer init needed).
fn format_from_name(name: &str) -> gst_video::VideoFormat {
    use gst_video::VideoFormat as F;
    match name {
        "BGR" => F::Bgr,
        "RGBA" => F::Rgba,
        "BGRA" => F::Bgra,
        "GRAY8" => F::Gray8,
        "I420" => F::I420,
        "NV12" => F::Nv12,
        _ => F::Rgb,
    }
}

fn is_live_scheme(uri: &str) -> bool {
    let scheme = uri.split("://").next().unwrap_or("").to_ascii_lowercase();
    matches!(
        scheme.as_str(),
        "rtsp" | "rtsps" | "rtspt" | "rtmp" | "udp" | "rtp" | "srt"
    )
}

/// The media cache the set-up script fills (`$PERCEPT_CACHE/media`, default `~/.cache/percept/media`).
pub fn default_media_dir() -> Option<PathBuf> {
    if let Ok(cache) = std::env::var("PERCEPT_CACHE") {
        return Some(PathBuf::from(cache).join("media"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/percept/media"))
}

/// Expands `${VAR}`, `$VAR` and a leading `~`.
fn expand(raw: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan, ConfigError> {
        Plan::from_str(text, Path::new("/p/x.toml"), &Overrides::default())
    }

    const TEST_SOURCE: &str = "version = 1\n[[source]]\nid = \"a\"\nkind = \"test\"\n";

    #[test]
    fn defaults_follow_liveness() {
        let p = plan(&format!("{TEST_SOURCE}[[stage]]\nid = \"s\"\nkind = \"image_stats\"\n[[sink]]\nkind = \"jsonl\"\npath = \"o.jsonl\"\n")).unwrap();
        assert_eq!(p.sources[0].delivery, Delivery::Lossless);
        assert_eq!(
            p.stages[0].input,
            EdgePlan {
                capacity: DEFAULT_QUEUE_CAPACITY,
                policy: EdgePolicy::Block
            }
        );
        assert_eq!(
            p.sinks[0].output,
            OutputPath::File(PathBuf::from("/p/o.jsonl"))
        );
        assert_eq!(p.name, "x");

        let live = plan(&format!("{TEST_SOURCE}live = true\n[[stage]]\nid = \"s\"\nkind = \"image_stats\"\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n")).unwrap();
        assert!(live.sources[0].live);
        assert_eq!(live.sources[0].delivery, Delivery::Latest);
        assert_eq!(live.stages[0].input.policy, EdgePolicy::DropOldest);
        assert_eq!(live.sinks[0].output, OutputPath::Stdout);
    }

    #[test]
    fn output_override_adds_or_replaces_the_jsonl_sink() {
        let overrides = Overrides {
            output: Some("-".into()),
            ..Overrides::default()
        };
        let p = Plan::from_str(TEST_SOURCE, Path::new("x.toml"), &overrides).unwrap();
        assert_eq!(p.sinks.len(), 1);
        assert_eq!(p.sinks[0].output, OutputPath::Stdout);
    }

    #[test]
    fn errors_point_at_the_line_of_the_field() {
        let text = format!("{TEST_SOURCE}width = 10\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n");
        let err = plan(&text).unwrap_err();
        assert_eq!(err.line(), Some(5), "{err}");
        assert!(
            err.to_string().contains("`source[0].width`: set both"),
            "{err}"
        );

        let err = plan("version = 1\n[[source]]\nid = \"a b\"\nkind = \"test\"\n").unwrap_err();
        assert_eq!(err.line(), Some(3), "{err}");
    }

    #[test]
    fn unset_variables_are_errors_and_percept_media_has_a_default() {
        let err = expand("${PERCEPT_TEST_UNSET_VAR}/x").unwrap_err();
        assert!(err.contains("PERCEPT_TEST_UNSET_VAR"), "{err}");
        assert!(
            expand("${PERCEPT_MEDIA}/vtest.avi")
                .unwrap()
                .ends_with("/vtest.avi")
        );
    }
}
