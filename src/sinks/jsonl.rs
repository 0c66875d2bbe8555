//! `jsonl`: one JSON object per frame and line ([`crate::schema`],
//! `docs/output.md`), to a file or standard output.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use crate::record::Work;
use crate::schema::RecordLine;
use crate::sink::{OutputPath, Sink, SinkKind, SinkOptions, no_options};

/// The `jsonl` kind.
pub static KIND: SinkKind = SinkKind {
    name: "jsonl",
    path_help: "a file, or `-` for standard output",
    options: &[],
    path_options: &[],
    needs_path: true,
    check: |_, options| no_options(options),
    open,
};

fn open(output: &OutputPath, _options: &SinkOptions) -> io::Result<Box<dyn Sink>> {
    Ok(Box::new(JsonlSink::create(output)?))
}

/// Writes records as JSON Lines to a file or standard output.
pub struct JsonlSink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl JsonlSink {
    /// Opens (creating parent folders) or takes standard output.
    pub fn create(output: &OutputPath) -> io::Result<JsonlSink> {
        let out: Box<dyn Write + Send> = match output {
            OutputPath::Stdout => Box::new(io::stdout()),
            OutputPath::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Box::new(File::create(path)?)
            }
        };
        Ok(JsonlSink {
            out: BufWriter::with_capacity(1 << 16, out),
        })
    }
}

impl Sink for JsonlSink {
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &RecordLine::new(work, emit_ns))?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
