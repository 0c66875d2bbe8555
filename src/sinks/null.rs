//! `null`: counts records and writes nothing. For measuring a pipeline's
//! throughput without output cost (the summary still counts every record),
//! and the smallest example of a sink kind.

use std::io;

use crate::record::Work;
use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, no_options};

/// The `null` kind: `path` is not used (give `-`).
pub static KIND: SinkKind = SinkKind {
    name: "null",
    path_help: "`-` (nothing is written)",
    options: &[],
    path_options: &[],
    needs_path: true,
    check,
    open,
};

fn check(output: &OutputPath, options: &SinkOptions) -> Result<(), SinkCheckError> {
    no_options(options)?;
    match output {
        OutputPath::Stdout => Ok(()),
        OutputPath::File(p) => Err(SinkCheckError::path(format!(
            "a null sink writes nothing: give path = \"-\", not {}",
            p.display()
        ))),
    }
}

fn open(output: &OutputPath, options: &SinkOptions) -> io::Result<Box<dyn Sink>> {
    check(output, options).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(Box::new(NullSink))
}

/// Drops every record.
pub struct NullSink;

impl Sink for NullSink {
    fn write(&mut self, _work: &Work, _emit_ns: u64) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_standard_output_only() {
        let none = SinkOptions::new();
        assert!(check(&OutputPath::Stdout, &none).is_ok());
        let err = check(&OutputPath::File("out".into()), &none).unwrap_err();
        assert!(err.message.contains("writes nothing"), "{err}");
        assert_eq!(err.field, "path");
        assert!(open(&OutputPath::Stdout, &none).is_ok());
    }
}
