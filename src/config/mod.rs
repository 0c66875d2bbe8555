//! Pipeline files: parsing ([`file`]), validation and the resolved [`Plan`] ([`plan`]).
//!
//! Loading is one step from raw text to a validated plan, so nothing at run
//! time parses or re-checks configuration. Every error names the file, the
//! line and the field.

pub mod file;
pub mod plan;
pub mod resolve;
pub mod types;

use std::path::PathBuf;

pub use crate::sink::{OutputPath, SinkKind};
pub use file::{Delivery, EdgePolicy};
pub use plan::Overrides;
pub use types::{
    EdgePlan, Interval, Plan, ResultWait, Schedule, SinkPlan, SourcePlan, StagePlan, StereoInput,
    StereoPlan,
};

/// A pipeline file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}")]
    /// The file cannot be read.
    Read {
        /// The pipeline file.
        path: PathBuf,
        #[source]
        /// The I/O error.
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: `{field}`: {message}")]
    /// The TOML does not parse or does not fit the schema.
    Parse {
        /// The pipeline file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key at the error (`source.max_frames`), as far as the text shows it.
        field: String,
        /// The parser's message.
        message: String,
    },
    #[error("{path}:{line}: `{field}`: {message}")]
    /// A value that parses but is not valid.
    Invalid {
        /// The pipeline file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The dotted key (`stage[0].iou`).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    #[error("{path}: {message}")]
    /// The pipeline as a whole is wrong (no source, no sink, `--input` count).
    Plan {
        /// The pipeline file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The line (1-based) the error points at, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Parse { line, .. } | ConfigError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// 1-based line and column of a byte offset in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

/// The dotted key of the TOML text at `offset`: the enclosing `[table]` or
/// `[[array]]` header, an enclosing inline table's key, and the key itself.
pub(crate) fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let before = &text[line_start..offset];
    let ident = |s: &str| {
        s.trim()
            .trim_matches('"')
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect::<String>()
    };
    let mut parts = Vec::new();
    let header = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.trim_start().starts_with('[') {
        parts.push(
            line.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    } else {
        parts.extend(header);
        match before.rfind('=') {
            // The key of the value the error is in; with an inline table, its outer key too.
            Some(eq) => {
                let key_start = before[..eq].rfind([',', '{']).map_or(0, |i| i + 1);
                if before[..key_start].contains('{') {
                    parts.push(ident(before.split('=').next().unwrap_or("")));
                }
                parts.push(ident(&before[key_start..eq]));
            }
            // The error is at the key itself.
            None => parts.push(ident(line.split('=').next().unwrap_or(""))),
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::{key_at, line_col};

    #[test]
    fn key_at_names_table_inline_table_and_key() {
        let text =
            "version = 1\n[[sink]]\nkind = \"jsonl\"\nqueue = { capacity = 2, policy = \"x\" }\n";
        assert_eq!(key_at(text, 3), "version");
        assert_eq!(key_at(text, text.find("\"jsonl").unwrap()), "sink.kind");
        assert_eq!(
            key_at(text, text.find("\"x\"").unwrap()),
            "sink.queue.policy"
        );
        assert_eq!(key_at(text, text.find("kind").unwrap()), "sink.kind");
        assert_eq!(key_at(text, text.find("[[sink").unwrap()), "sink");
    }

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 4));
    }
}
