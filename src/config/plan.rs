//! Validation: a [`PipelineFile`] plus command-line [`Overrides`] become a [`Plan`].
//!
//! Relative paths inside a pipeline file are relative to the file's folder;
//! paths given on the command line are relative to the working directory.
//! `${VAR}` and a leading `~` expand in locations and paths. `${PERCEPT_MEDIA}`
//! falls back to the set-up script's media cache when unset.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer_video as gst_video;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::file::{
    Delivery, EdgePolicy, PipelineFile, QueueSpec, SINK_COMMON_FIELDS, SOURCE_COMMON_FIELDS,
    STAGE_COMMON_FIELDS, SinkSpec, SourceSpec, StageSpec,
};
pub use super::resolve::default_media_dir;
use super::resolve::{
    Resolver, SourceContext, StageContext, all_fields_in_unknown, expand, other_kinds_field,
    output_path,
};
use super::types::*;
use super::{ConfigError, line_col};
use crate::edge::DEFAULT_QUEUE_CAPACITY;
use crate::registry;
use crate::sink::OutputPath;

/// The only pipeline-file version this build reads.
pub const PIPELINE_VERSION: u32 = 1;
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
        let mut resolver = Resolver {
            text,
            path,
            base: path.parent().unwrap_or(Path::new(".")),
            realtime: overrides.realtime,
            budget: None,
        };
        let file: PipelineFile = toml::from_str(text)
            .map_err(|e| resolver.parse_error(e.span().map_or(0, |s| s.start), e.message()))?;
        resolver.budget = match &file.budget_ms {
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
        let sources = tables(&resolver, "source")?;
        let stages = tables(&resolver, "stage")?;
        let sinks = tables(&resolver, "sink")?;
        resolver.resolve(file, sources, stages, sinks, overrides)
    }
}

impl Plan {
    /// Resolves one source added to a running pipeline (`POST /streams`):
    /// `text` is the body of a `[[source]]` table in TOML (its fields at the
    /// top level, or one `[[source]]` / `[source]` table), checked exactly as
    /// in a pipeline file. `origin` names the text in errors; relative paths
    /// start at the pipeline file's folder; `taken` are the ids in use
    /// (sources, pairs, stages).
    ///
    /// # Errors
    /// [`ConfigError`] with the line and field (`source.kind`, `source.id`, ...).
    pub fn resolve_source(
        &self,
        text: &str,
        origin: &Path,
        taken: impl IntoIterator<Item = String>,
    ) -> Result<SourcePlan, ConfigError> {
        let resolver = Resolver {
            text,
            path: origin,
            base: self.path.parent().unwrap_or(Path::new(".")),
            realtime: self.realtime,
            budget: self.budget,
        };
        let root = DeTable::parse(text)
            .map_err(|e| resolver.parse_error(e.span().map_or(0, |s| s.start), e.message()))?;
        let span = root.span();
        let mut fields: Vec<_> = root.into_inner().into_iter().collect();
        // `[source]` or a single `[[source]]` around the fields.
        let table = match fields.pop() {
            Some((k, v)) if fields.is_empty() && k.get_ref() == "source" => {
                let span = v.span();
                let one = match v.into_inner() {
                    DeValue::Array(items) if items.len() == 1 => items.into_iter().next(),
                    DeValue::Table(t) => Some(Spanned::new(span.clone(), DeValue::Table(t))),
                    _ => None,
                };
                match one.map(|v| (v.span(), v.into_inner())) {
                    Some((span, DeValue::Table(t))) => Spanned::new(span, t),
                    _ => return Err(resolver.invalid(span, "source", "give one source table")),
                }
            }
            Some(last) => {
                fields.push(last);
                Spanned::new(span, fields.into_iter().collect())
            }
            None => {
                return Err(resolver.plan_error("empty source: give at least `id` and `kind`"));
            }
        };
        let mut ids: HashSet<String> = taken.into_iter().collect();
        resolver.source(table, "source", None, &mut ids)
    }
}

/// The `[[name]]` tables with their spans (each kind reads its own fields).
fn tables<'t>(r: &Resolver<'t>, name: &str) -> Result<Vec<Spanned<DeTable<'t>>>, ConfigError> {
    let root = DeTable::parse(r.text)
        .map_err(|e| r.parse_error(e.span().map_or(0, |s| s.start), e.message()))?
        .into_inner();
    let Some((_, list)) = root.into_iter().find(|(k, _)| k.get_ref() == name) else {
        return Ok(Vec::new());
    };
    let span = list.span();
    let DeValue::Array(mut items) = list.into_inner() else {
        return Err(r.invalid(span, name, format!("give `[[{name}]]` tables")));
    };
    items
        .iter_mut()
        .map(|item| {
            let item = std::mem::replace(item, Spanned::new(0..0, DeValue::Boolean(false)));
            let span = item.span();
            match item.into_inner() {
                DeValue::Table(t) => Ok(Spanned::new(span, t)),
                _ => Err(r.invalid(span, name, format!("give `[[{name}]]` tables"))),
            }
        })
        .collect()
}

/// Splits a source or stage table into its common fields (`common`) and its kind's.
fn split_table<'t>(
    table: Spanned<DeTable<'t>>,
    common_fields: &[&str],
) -> (Spanned<DeTable<'t>>, Spanned<DeTable<'t>>) {
    let span = table.span();
    let (mut common, mut own) = (DeTable::new(), DeTable::new());
    for (k, v) in table.into_inner() {
        if common_fields.contains(&k.get_ref().as_ref()) {
            common.insert(k, v);
        } else {
            own.insert(k, v);
        }
    }
    (Spanned::new(span.clone(), common), Spanned::new(span, own))
}

impl Resolver<'_> {
    fn resolve(
        &self,
        file: PipelineFile,
        source_tables: Vec<Spanned<DeTable<'_>>>,
        stage_tables: Vec<Spanned<DeTable<'_>>>,
        sink_tables: Vec<Spanned<DeTable<'_>>>,
        overrides: &Overrides,
    ) -> Result<Plan, ConfigError> {
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
        let mut sources = Vec::with_capacity(source_tables.len());
        for (i, table) in source_tables.into_iter().enumerate() {
            let field = format!("source[{i}]");
            let input = overrides.inputs.get(i).map(String::as_str);
            sources.push(self.source(table, &field, input, &mut ids)?);
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

        let mut stages: Vec<StagePlan> = Vec::with_capacity(stage_tables.len());
        let mut kinds: Vec<&'static str> = Vec::with_capacity(stage_tables.len());
        for (i, table) in stage_tables.into_iter().enumerate() {
            let field = format!("stage[{i}]");
            let stage = self.stage(
                table,
                &field,
                &sources,
                &streams,
                &kinds,
                default_policy,
                &mut ids,
            )?;
            kinds.push(stage.kind);
            stages.push(stage);
        }

        let mut sinks = Vec::with_capacity(sink_tables.len().max(1));
        for (i, table) in sink_tables.into_iter().enumerate() {
            sinks.push(self.sink(table, &format!("sink[{i}]"), default_policy, overrides)?);
        }
        if let Some(out) = &overrides.output
            && !sinks.iter().any(|s| s.kind == registry::output_sink())
        {
            sinks.push(SinkPlan {
                kind: registry::output_sink(),
                output: output_path(out, Path::new(".")),
                options: Default::default(),
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
                kind: registry::depth_out_sink(),
                output: OutputPath::File(PathBuf::from(dir)),
                options: Default::default(),
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
            realtime: self.realtime,
            budget: self.budget,
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

    fn source(
        &self,
        table: Spanned<DeTable<'_>>,
        field: &str,
        input_override: Option<&str>,
        ids: &mut HashSet<String>,
    ) -> Result<SourcePlan, ConfigError> {
        let (common, own) = split_table(table, &SOURCE_COMMON_FIELDS);
        let spec: SourceSpec = self.typed(common)?;
        self.check_id(&spec.id, field, ids)?;
        let Some(kind) = registry::source_kind(spec.kind.get_ref()) else {
            return Err(self.invalid(
                spec.kind.span(),
                format!("{field}.kind"),
                format!(
                    "unknown source kind `{}` (one of {})",
                    spec.kind.get_ref(),
                    registry::SOURCES
                        .iter()
                        .map(|k| format!("`{}`", k.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
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
        let ctx = SourceContext {
            id: spec.id.get_ref(),
            field,
            kind_span: spec.kind.span(),
            size,
        };
        let resolved = (kind.resolve)(self, own, &ctx).map_err(|e| {
            let others: Vec<(&str, &[&str])> = registry::SOURCES
                .iter()
                .map(|k| (k.name, (k.fields)()))
                .collect();
            let e = other_kinds_field(self, e, field, kind.name, &others);
            all_fields_in_unknown(e, &SOURCE_COMMON_FIELDS, (kind.fields)())
        })?;
        let mut reconnect = resolved.reconnect;
        let input = match input_override {
            Some(raw) => registry::source_from_cli(raw).map_err(|message| ConfigError::Plan {
                path: self.path.to_path_buf(),
                message: format!("--input for {field}: {message}"),
            })?,
            None => resolved.input,
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

        let live = input.live(resolved.live);
        let realtime =
            !live && (resolved.realtime.unwrap_or(false) || (self.realtime && input.can_pace()));
        let delivery = spec.delivery.as_ref().map_or(
            if live || realtime {
                Delivery::Latest
            } else {
                Delivery::Lossless
            },
            |d| *d.get_ref(),
        );

        // `--input` may swap a stream for a file: files never reconnect.
        if !input.reconnects() {
            reconnect = None;
        }
        Ok(SourcePlan {
            id: spec.id.get_ref().clone(),
            kind: kind.name,
            input,
            format,
            size,
            max_frames: spec.max_frames.as_ref().map(|m| *m.get_ref()),
            live,
            realtime,
            delivery,
            budget: self.budget,
            reconnect,
        })
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

    #[allow(clippy::too_many_arguments)]
    fn stage(
        &self,
        table: Spanned<DeTable<'_>>,
        field: &str,
        sources: &[SourcePlan],
        known_streams: &[String],
        earlier: &[&'static str],
        default_policy: EdgePolicy,
        ids: &mut HashSet<String>,
    ) -> Result<StagePlan, ConfigError> {
        let (common, own) = split_table(table, &STAGE_COMMON_FIELDS);
        let spec: StageSpec = self.typed(common)?;
        self.check_id(&spec.id, field, ids)?;
        let Some(kind) = registry::stage_kind(spec.kind.get_ref()) else {
            return Err(self.invalid(
                spec.kind.span(),
                format!("{field}.kind"),
                format!(
                    "unknown stage kind `{}` (one of {})",
                    spec.kind.get_ref(),
                    registry::STAGES
                        .iter()
                        .map(|k| format!("`{}`", k.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
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
        let ctx = StageContext {
            field,
            kind_span: spec.kind.span(),
            sources,
            streams: streams.as_deref(),
            earlier,
        };
        let settings = (kind.resolve)(self, own, &ctx).map_err(|e| {
            let others: Vec<(&str, &[&str])> = registry::STAGES
                .iter()
                .map(|k| (k.name, (k.fields)()))
                .collect();
            let e = other_kinds_field(self, e, field, kind.name, &others);
            all_fields_in_unknown(e, &STAGE_COMMON_FIELDS, (kind.fields)())
        })?;
        let admission = spec
            .admission
            .as_ref()
            .map_or(kind.admission, |a| *a.get_ref());
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
        let interval_offset = match (&spec.interval_offset, interval) {
            (None, _) => 0,
            (Some(k), Interval::Every(n)) if *k.get_ref() < n => *k.get_ref(),
            (Some(k), Interval::Every(n)) => {
                return Err(self.invalid(
                    k.span(),
                    format!("{field}.interval_offset"),
                    format!(
                        "must be below the interval ({n}{}): a frame index within each run of {n}",
                        if spec.interval.is_none() {
                            ", the default"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            (Some(k), Interval::Auto) => {
                return Err(self.invalid(
                    k.span(),
                    format!("{field}.interval_offset"),
                    "needs a whole-number `interval` (with \"auto\" the interval changes as the load does)",
                ));
            }
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
        let can_async = || {
            registry::STAGES
                .iter()
                .filter(|k| k.asynchronous)
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let mut schedule = match &spec.asynchronous {
            Some(a) if *a.get_ref() && !kind.asynchronous => {
                return Err(self.invalid(
                    a.span(),
                    format!("{field}.async"),
                    format!("only a {} stage can run asynchronously", can_async()),
                ));
            }
            Some(a) if *a.get_ref() => Schedule::Async,
            _ => Schedule::Inline,
        };
        if let Some(sch) = &spec.schedule {
            let named = match sch.get_ref().as_str() {
                "inline" => Schedule::Inline,
                "async" => Schedule::Async,
                "auto" => Schedule::Auto,
                _ => {
                    return Err(self.invalid(
                        sch.span(),
                        format!("{field}.schedule"),
                        "one of \"inline\", \"async\", \"auto\"",
                    ));
                }
            };
            if named != Schedule::Inline && !kind.asynchronous {
                return Err(self.invalid(
                    sch.span(),
                    format!("{field}.schedule"),
                    format!("only a {} stage can run beside the stream", can_async()),
                ));
            }
            if spec.asynchronous.is_some() && named != schedule {
                return Err(self.invalid(
                    sch.span(),
                    format!("{field}.schedule"),
                    "contradicts `async` (async = true is schedule = \"async\"): give one",
                ));
            }
            schedule = named;
        }
        let batch = settings.batch().filter(|b| b.max > 1);
        let instances = settings.instances().max(1);
        let in_line_only = [
            (
                batch.is_some(),
                "`batch` works in line only: a batched stage cannot run beside the stream (schedule = \"inline\", or drop `batch`)",
            ),
            (
                instances > 1,
                "`instances` works in line only: several instances cannot run beside the stream (schedule = \"inline\", or drop `instances`)",
            ),
        ];
        if schedule != Schedule::Inline
            && let Some((_, why)) = in_line_only.iter().find(|(used, _)| *used)
        {
            let (span, name) = match (&spec.schedule, &spec.asynchronous) {
                (Some(s), _) => (s.span(), "schedule"),
                (None, Some(a)) => (a.span(), "async"),
                (None, None) => (spec.kind.span(), "kind"),
            };
            return Err(self.invalid(span, format!("{field}.{name}"), *why));
        }
        let wait_for_result = match &spec.wait_for_result {
            None => ResultWait::NextFrame,
            Some(w) if schedule == Schedule::Inline => {
                return Err(self.invalid(
                    w.span(),
                    format!("{field}.wait_for_result"),
                    "applies to a stage beside the stream only (async = true, or schedule = \"async\" or \"auto\")",
                ));
            }
            Some(w) => *w.get_ref(),
        };
        Ok(StagePlan {
            id: spec.id.get_ref().clone(),
            kind: kind.name,
            streams,
            input: self.edge(&spec.queue, field, default_policy)?,
            settings,
            admission,
            interval,
            interval_offset,
            simulate,
            schedule,
            wait_for_result,
            batch,
            instances,
        })
    }

    fn sink(
        &self,
        table: Spanned<DeTable<'_>>,
        field: &str,
        default_policy: EdgePolicy,
        overrides: &Overrides,
    ) -> Result<SinkPlan, ConfigError> {
        let table_span = table.span();
        let (common, own) = split_table(table, &SINK_COMMON_FIELDS);
        let spec: SinkSpec = self.typed(common)?;
        let Some(kind) = registry::sink_kind(spec.kind.get_ref()) else {
            return Err(self.invalid(
                spec.kind.span(),
                format!("{field}.kind"),
                format!(
                    "unknown sink kind `{}` (one of {})",
                    spec.kind.get_ref(),
                    registry::SINKS
                        .iter()
                        .map(|k| format!("`{}`", k.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        // The span of each option, for errors; then the options as plain TOML.
        let own_spans: Vec<(String, std::ops::Range<usize>)> = own
            .get_ref()
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), v.span()))
            .collect();
        for (key, span) in &own_spans {
            if !kind.options.contains(&key.as_str()) {
                return Err(self.invalid(
                    span.clone(),
                    format!("{field}.{key}"),
                    format!(
                        "unknown field `{key}` for kind = \"{}\", expected one of {}",
                        kind.name,
                        SINK_COMMON_FIELDS
                            .iter()
                            .chain(kind.options)
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let mut options: crate::sink::SinkOptions = self.typed(own)?;
        for name in kind.path_options {
            if let Some(toml::Value::String(raw)) = options.get(*name) {
                let span = own_spans
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or(table_span.clone(), |(_, s)| s.clone());
                let expanded =
                    expand(raw).map_err(|m| self.invalid(span, format!("{field}.{name}"), m))?;
                let path = self.base.join(expanded).to_string_lossy().into_owned();
                options.insert((*name).to_string(), toml::Value::String(path));
            }
        }
        let output = match (&overrides.output, &spec.path) {
            (Some(out), _) if kind == registry::output_sink() => output_path(out, Path::new(".")),
            (_, Some(p)) => {
                let expanded = expand(p.get_ref())
                    .map_err(|m| self.invalid(p.span(), format!("{field}.path"), m))?;
                output_path(&expanded, self.base)
            }
            (_, None) if !kind.needs_path => OutputPath::Stdout,
            (_, None) => {
                return Err(self.invalid(
                    spec.kind.span(),
                    format!("{field}.path"),
                    format!("a {} sink needs `path`: {}", kind.name, kind.path_help),
                ));
            }
        };
        (kind.check)(&output, &options).map_err(|e| {
            let span = match (e.field.as_str(), &spec.path) {
                ("path", Some(p)) => p.span(),
                (name, _) => own_spans
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or(table_span.clone(), |(_, s)| s.clone()),
            };
            self.invalid(span, format!("{field}.{}", e.field), e.message)
        })?;
        Ok(SinkPlan {
            kind,
            output,
            options,
            input: self.edge(&spec.queue, field, default_policy)?,
        })
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
    fn a_field_of_another_kind_names_the_kinds_that_use_it() {
        let text = format!(
            "{TEST_SOURCE}[[stage]]\nid = \"s\"\nkind = \"image_stats\"\ndelay_ms = 5\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n"
        );
        let err = plan(&text).unwrap_err();
        assert_eq!(err.line(), Some(8), "{err}");
        assert!(
            err.to_string().contains(
                "`stage[0].delay_ms`: not used by kind = \"image_stats\" (only by \"delay\")"
            ),
            "{err}"
        );
        let text = format!("{TEST_SOURCE}pattern = \"ball\"\nlocation = \"x\"\n");
        let err = plan(&text).unwrap_err();
        assert!(
            err.to_string()
                .contains("`source[0].location`: not used by kind = \"test\" (only by \"file\", \"uri\", \"v4l2\")"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_field_lists_the_common_and_the_kind_fields() {
        let err = plan(&format!("{TEST_SOURCE}max_frame = 3\n")).unwrap_err();
        assert_eq!(err.line(), Some(5), "{err}");
        assert!(
            err.to_string().contains(
                "`source.max_frame`: unknown field `max_frame`, expected one of `id`, `kind`, `max_frames`, `width`, `height`, `delivery`, `format`, `pattern`, `framerate`, `live`"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_kinds_list_the_registered_ones() {
        let text = format!("{TEST_SOURCE}[[stage]]\nid = \"s\"\nkind = \"blur\"\n");
        let err = plan(&text).unwrap_err().to_string();
        assert!(err.contains("`stage[0].kind`: unknown stage kind `blur` (one of `image_stats`, `delay`, `detect`"), "{err}");
        let text = format!("{TEST_SOURCE}[[sink]]\nkind = \"ros_bridge\"\npath = \"-\"\n");
        let err = plan(&text).unwrap_err().to_string();
        assert!(
            err.contains("unknown sink kind `ros_bridge` (one of `jsonl`, `depth_png`"),
            "{err}"
        );
    }

    #[test]
    fn a_sink_path_its_kind_cannot_write_fails_in_the_plan() {
        let text = format!("{TEST_SOURCE}[[sink]]\nkind = \"depth_png\"\npath = \"-\"\n");
        let err = plan(&text).unwrap_err();
        assert_eq!(err.line(), Some(7), "{err}");
        assert!(
            err.to_string()
                .contains("`sink[0].path`: depth_png writes one file per frame"),
            "{err}"
        );
    }

    #[test]
    fn interval_offset_is_a_frame_within_the_interval() {
        let stage = |extra: &str| {
            format!(
                "{TEST_SOURCE}[[stage]]\nid = \"d\"\nkind = \"delay\"\ndelay_ms = 5\n{extra}\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n"
            )
        };
        let p = plan(&stage("interval = 3\ninterval_offset = 2")).unwrap();
        assert_eq!(
            (p.stages[0].interval, p.stages[0].interval_offset),
            (Interval::Every(3), 2)
        );
        assert_eq!(plan(&stage("")).unwrap().stages[0].interval_offset, 0);
        let err = plan(&stage("interval = 3\ninterval_offset = 3")).unwrap_err();
        assert!(
            err.to_string()
                .contains("`stage[0].interval_offset`: must be below the interval (3)"),
            "{err}"
        );
        assert_eq!(err.line(), Some(10), "{err}");
        // Without an interval it is 1: the only offset is 0.
        let err = plan(&stage("interval_offset = 1")).unwrap_err();
        assert!(
            err.to_string()
                .contains("below the interval (1, the default)"),
            "{err}"
        );
        let err = plan(&stage("interval = \"auto\"\ninterval_offset = 1")).unwrap_err();
        assert!(
            err.to_string()
                .contains("`stage[0].interval_offset`: needs a whole-number `interval`"),
            "{err}"
        );
    }

    #[test]
    fn stage_settings_come_from_the_kind_and_common_fields_stay_common() {
        let text = format!(
            "{TEST_SOURCE}live = true\n[[stage]]\nid = \"d\"\nkind = \"delay\"\ndelay_ms = 5\ninterval = 2\nqueue = {{ capacity = 2 }}\n[[sink]]\nkind = \"jsonl\"\npath = \"-\"\n"
        );
        let p = plan(&text).unwrap();
        let s = &p.stages[0];
        assert_eq!((s.id.as_str(), s.kind), ("d", "delay"));
        assert_eq!(s.interval, Interval::Every(2));
        assert!(s.admission, "delay defaults to admission control");
        assert_eq!(
            s.input,
            EdgePlan {
                capacity: 2,
                policy: EdgePolicy::DropOldest
            }
        );
        assert_eq!(s.settings.describe(), "5.0 ms per frame");
        assert_eq!(p.sources[0].kind, "test");
        assert_eq!(
            p.sources[0].describe(),
            "test pattern smpte 320x240 @ 30 fps"
        );
        assert_eq!(p.sinks[0].kind.name, "jsonl");
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
