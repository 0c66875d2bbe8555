//! `null`: counts records and writes nothing. For measuring a pipeline's
//! throughput without output cost (the summary still counts every record),
//! and the smallest example of a sink kind.

use std::io;

use crate::record::Work;
use crate::sink::{OutputPath, Sink, SinkKind};

/// The `null` kind: `path` is not used (give `-`).
pub static KIND: SinkKind = SinkKind {
    name: "null",
    path_help: "`-` (nothing is written)",
    check,
    open,
};

fn check(output: &OutputPath) -> Result<(), String> {
    match output {
        OutputPath::Stdout => Ok(()),
        OutputPath::File(p) => Err(format!(
            "a null sink writes nothing: give path = \"-\", not {}",
            p.display()
        )),
    }
}

fn open(output: &OutputPath) -> io::Result<Box<dyn Sink>> {
    check(output).map_err(io::Error::other)?;
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
        assert!(check(&OutputPath::Stdout).is_ok());
        let err = check(&OutputPath::File("out".into())).unwrap_err();
        assert!(err.contains("writes nothing"), "{err}");
        assert!(open(&OutputPath::Stdout).is_ok());
    }
}
