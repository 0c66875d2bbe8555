//! Zenoh (<https://zenoh.io>) sessions and the header of every sample
//! percept publishes, shared by the `zenoh` sink and the `zenoh` source.
//!
//! **Session settings** (the same field names on the sink and the source
//! tables): `mode = "peer" | "client"`, `connect = ["tcp/host:port", …]`,
//! `listen = [...]`, `scouting = false` (multicast scouting off) and
//! `config = "zenoh.json5"` (a full Zenoh configuration file, relative to
//! the pipeline file; the other fields are applied on top of it). Sinks and
//! sources of one process with equal settings share one session, so an
//! inference node with several `zenoh` sources listens on its port once.
//!
//! **Sample header** ([`SampleHeader`]): every sample percept publishes
//! (a JSON record, a frame, the end of a stream) carries it as its Zenoh
//! attachment, 56 bytes and a format name, little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `PCP1` |
//! | 4 | 8 | `seq`: the frame's sequence number in its stream (u64) |
//! | 12 | 8 | `capture_wall_ns`: capture time, ns since the Unix epoch (u64) |
//! | 20 | 8 | `pts_ns`: media time, ns (i64, −1 when none) |
//! | 28 | 8 | `duration_ns`: frame duration, ns (i64, −1 when none) |
//! | 36 | 4 | `width`, pixels (u32; 0 for records) |
//! | 40 | 4 | `height`, pixels (u32) |
//! | 44 | 1 | `payload`: 0 JSON record, 1 JPEG frame, 2 raw frame, 3 end of stream |
//! | 45 | 1 | `n`: length of the format name |
//! | 46 | 2 | reserved, 0 |
//! | 48 | 8 | `run`: the publishing run's id (u64; a restarted node has a new one) |
//! | 56 | n | GStreamer video format name of a raw frame (`BGR`, `GRAY8`, …) |

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use serde::Deserialize;
use zenoh::Wait;

/// A Zenoh session's settings as a pipeline file gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SessionOptions {
    /// `peer` (default) or `client`.
    pub mode: Option<String>,
    /// Endpoints to connect to (`tcp/127.0.0.1:7447`).
    pub connect: Option<Vec<String>>,
    /// Endpoints to listen on.
    pub listen: Option<Vec<String>>,
    /// Multicast scouting (default: Zenoh's, on in peer mode).
    pub scouting: Option<bool>,
    /// A Zenoh JSON5 configuration file; the fields above apply on top.
    pub config: Option<PathBuf>,
}

impl SessionOptions {
    /// Checks the settings without opening anything; `Err((field, why))`.
    /// The configuration file is read and every field applied, so a bad
    /// endpoint or mode is caught here.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.zenoh_config().map(|_| ())
    }

    /// Makes `config` relative to `base` (the pipeline file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(c) = &self.config {
            self.config = Some(base.join(c));
        }
    }

    /// The Zenoh configuration these settings give; `Err((field, why))`.
    pub fn zenoh_config(&self) -> Result<zenoh::Config, (&'static str, String)> {
        let mut config = match &self.config {
            Some(path) => zenoh::Config::from_file(path)
                .map_err(|e| ("config", format!("{}: {e}", path.display())))?,
            None => zenoh::Config::default(),
        };
        if let Some(mode) = &self.mode {
            if mode != "peer" && mode != "client" {
                return Err(("mode", format!("`{mode}`: expected \"peer\" or \"client\"")));
            }
            config
                .insert_json5("mode", &json_string(mode))
                .map_err(|e| ("mode", e.to_string()))?;
        }
        for (field, key, endpoints) in [
            ("connect", "connect/endpoints", &self.connect),
            ("listen", "listen/endpoints", &self.listen),
        ] {
            if let Some(endpoints) = endpoints {
                for e in endpoints {
                    e.parse::<zenoh::config::EndPoint>()
                        .map_err(|err| (field, format!("`{e}` is not a Zenoh endpoint: {err}")))?;
                }
                let list: Vec<String> = endpoints.iter().map(|e| json_string(e)).collect();
                config
                    .insert_json5(key, &format!("[{}]", list.join(",")))
                    .map_err(|e| (field, e.to_string()))?;
            }
        }
        if let Some(on) = self.scouting {
            config
                .insert_json5(
                    "scouting/multicast/enabled",
                    if on { "true" } else { "false" },
                )
                .map_err(|e| ("scouting", e.to_string()))?;
        }
        Ok(config)
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The sessions open in this process, by settings (weak: a session closes
/// when its last user drops it).
static SESSIONS: Mutex<Vec<(SessionOptions, Weak<zenoh::Session>)>> = Mutex::new(Vec::new());

/// Opens a session with these settings, or shares the one already open
/// with equal settings. Errors say why Zenoh refused (a port in use, an
/// endpoint it cannot reach in client mode).
pub fn session(options: &SessionOptions) -> Result<Arc<zenoh::Session>, String> {
    let mut open = SESSIONS
        .lock()
        .map_err(|_| "zenoh session table poisoned".to_string())?;
    open.retain(|(_, s)| s.strong_count() > 0);
    if let Some(s) = open
        .iter()
        .find(|(o, _)| o == options)
        .and_then(|(_, s)| s.upgrade())
    {
        return Ok(s);
    }
    let config = options
        .zenoh_config()
        .map_err(|(field, why)| format!("`{field}`: {why}"))?;
    let session = Arc::new(
        zenoh::open(config)
            .wait()
            .map_err(|e| format!("cannot open a Zenoh session: {e}"))?,
    );
    open.push((options.clone(), Arc::downgrade(&session)));
    Ok(session)
}

/// What a sample's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// One JSON record (the JSON Lines schema, `docs/output.md`).
    Record = 0,
    /// A frame encoded as JPEG.
    Jpeg = 1,
    /// A frame's pixels, rows packed without padding, in `format`.
    Raw = 2,
    /// The stream ended (empty payload): the source ends, no reconnect.
    End = 3,
}

/// The header of every sample percept publishes (its attachment; layout in
/// the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleHeader {
    /// The frame's sequence number in its stream.
    pub seq: u64,
    /// Capture time, ns since the Unix epoch.
    pub capture_wall_ns: u64,
    /// Media time, ns.
    pub pts_ns: Option<u64>,
    /// Frame duration, ns.
    pub duration_ns: Option<u64>,
    /// Width, pixels (0 for records).
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// What the payload is.
    pub payload: Payload,
    /// The GStreamer format name of a raw frame, else empty (borrowed when
    /// publishing: a header costs no allocation).
    pub format: std::borrow::Cow<'static, str>,
    /// The publishing run's id: a node that restarts has a new one.
    pub run: u64,
}

/// The header's magic bytes.
pub const MAGIC: &[u8; 4] = b"PCP1";
/// The header's fixed part, bytes.
pub const HEADER_LEN: usize = 56;

impl SampleHeader {
    /// Appends the header's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let opt = |v: Option<u64>| v.map_or(-1i64, |v| i64::try_from(v).unwrap_or(i64::MAX));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.capture_wall_ns.to_le_bytes());
        out.extend_from_slice(&opt(self.pts_ns).to_le_bytes());
        out.extend_from_slice(&opt(self.duration_ns).to_le_bytes());
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        let name = &self.format.as_bytes()[..self.format.len().min(255)];
        out.push(self.payload as u8);
        out.push(name.len() as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.run.to_le_bytes());
        out.extend_from_slice(name);
    }

    /// Reads a header; `Err` says what is wrong (another publisher's
    /// samples on the key, a newer layout).
    pub fn read(bytes: &[u8]) -> Result<SampleHeader, String> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return Err(format!(
                "not a percept sample header ({} bytes, expected `PCP1` and at least {HEADER_LEN})",
                bytes.len()
            ));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[i..i + 4]);
            u32::from_le_bytes(b)
        };
        let opt = |v: u64| (v as i64 >= 0).then_some(v);
        let payload = match bytes[44] {
            0 => Payload::Record,
            1 => Payload::Jpeg,
            2 => Payload::Raw,
            3 => Payload::End,
            p => return Err(format!("unknown payload type {p}")),
        };
        let n = usize::from(bytes[45]);
        let format = bytes
            .get(HEADER_LEN..HEADER_LEN + n)
            .ok_or_else(|| "format name cut short".to_string())?;
        Ok(SampleHeader {
            seq: u64_at(4),
            capture_wall_ns: u64_at(12),
            pts_ns: opt(u64_at(20)),
            duration_ns: opt(u64_at(28)),
            width: u32_at(36),
            height: u32_at(40),
            payload,
            format: String::from_utf8_lossy(format).into_owned().into(),
            run: u64_at(48),
        })
    }
}

/// A run id for this process: its start time (ns since the Unix epoch)
/// mixed with its process id, the same for every call.
pub fn run_id() -> u64 {
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RUN.get_or_init(|| crate::clock::wall_ns() ^ (u64::from(std::process::id()) << 40))
}

/// `key` with `{stream}` replaced by the stream id.
pub fn stream_key(key: &str, stream: &str) -> String {
    key.replace("{stream}", stream)
}

/// Checks a key expression as Zenoh would (with `{stream}` standing for a
/// plain chunk); `Err` says why not.
pub fn check_key(key: &str) -> Result<(), String> {
    let probe = stream_key(key, "s");
    zenoh::key_expr::KeyExpr::try_from(probe.as_str())
        .map(|_| ())
        .map_err(|e| format!("`{key}` is not a Zenoh key expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_as_written() {
        let h = SampleHeader {
            seq: 41,
            capture_wall_ns: 1_764_000_000_123_456_789,
            pts_ns: Some(1_640_000_000),
            duration_ns: None,
            width: 768,
            height: 576,
            payload: Payload::Raw,
            format: "BGR".into(),
            run: 7,
        };
        let mut bytes = Vec::new();
        h.write(&mut bytes);
        assert_eq!(bytes.len(), HEADER_LEN + 3);
        assert_eq!(&bytes[..4], b"PCP1");
        assert_eq!(bytes[4], 41);
        assert_eq!(&bytes[28..36], &[0xff; 8]);
        assert_eq!(bytes[48], 7);
        assert_eq!(SampleHeader::read(&bytes).unwrap(), h);
        assert!(SampleHeader::read(&bytes[..20]).is_err());
        bytes[0] = b'X';
        assert!(SampleHeader::read(&bytes).unwrap_err().contains("PCP1"));
    }

    #[test]
    fn session_settings_are_checked_by_field() {
        let bad_mode = SessionOptions {
            mode: Some("router2".into()),
            ..Default::default()
        };
        assert_eq!(bad_mode.check().unwrap_err().0, "mode");
        let bad_endpoint = SessionOptions {
            connect: Some(vec!["127.0.0.1:7447".into()]),
            ..Default::default()
        };
        assert_eq!(bad_endpoint.check().unwrap_err().0, "connect");
        let missing = SessionOptions {
            config: Some("/nonexistent/zenoh.json5".into()),
            ..Default::default()
        };
        assert_eq!(missing.check().unwrap_err().0, "config");
        let good = SessionOptions {
            mode: Some("peer".into()),
            listen: Some(vec!["tcp/127.0.0.1:0".into()]),
            scouting: Some(false),
            ..Default::default()
        };
        let config = good.zenoh_config().unwrap();
        assert_eq!(
            config.get_json("scouting/multicast/enabled").unwrap(),
            "false"
        );
        assert!(check_key("percept/{stream}/record").is_ok());
        assert!(check_key("percept//record").is_err());
    }
}
