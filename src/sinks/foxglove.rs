//! `foxglove`: a live view. A Foxglove WebSocket server
//! (<https://github.com/foxglove/foxglove-sdk/blob/main/docs/spec/ws-protocol.md>,
//! subprotocol `foxglove.sdk.v1` or `foxglove.websocket.v1`) that Foxglove
//! or Lichtblick opens while percept runs ("Open connection",
//! `ws://127.0.0.1:8765`).
//!
//! ```toml
//! [[sink]]
//! kind = "foxglove"
//! host = "127.0.0.1"   # default; "0.0.0.0" to be seen from other machines
//! port = 8765          # default; 0 = any free port (logged)
//! images = "jpeg"      # or "none"; default "jpeg"
//! jpeg_quality = 85    # 1..=100
//! backlog = 32         # messages queued per client before the oldest is dropped
//! ```
//!
//! It advertises the channels of the `mcap` sink, built by the same code
//! ([`crate::messages`]): the same topics, schemas, encodings and bytes,
//! each channel as its stream first produces it. A message's timestamp is
//! the frame's `capture_wall_ns`. Images are JPEG-encoded only while a
//! client subscribes to them.
//!
//! The sink's thread never waits for the network: each client has its own
//! thread and a queue of `backlog` messages; when a client reads too slowly
//! the oldest queued message is dropped for the newest, and the summary's
//! sink line (and `--summary-json`, `dropped_messages`) counts the drops.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::{Message, WebSocket};

use crate::messages::{Messages, Topic};
use crate::record::Work;
use crate::sink::{OutputPath, Sink, SinkCheckError, SinkKind, SinkOptions, typed_options};
use crate::sinks::mcap::Images;

/// The `foxglove` kind.
pub static KIND: SinkKind = SinkKind {
    name: "foxglove",
    path_help: "none (the live view listens on `host`:`port`)",
    options: &["host", "port", "images", "jpeg_quality", "backlog"],
    path_options: &[],
    needs_path: false,
    check,
    open,
};

/// The subprotocols spoken, preferred first.
pub const SUBPROTOCOLS: [&str; 2] = ["foxglove.sdk.v1", "foxglove.websocket.v1"];
/// Default port.
pub const DEFAULT_PORT: u16 = 8765;
/// Default messages queued per client.
pub const DEFAULT_BACKLOG: usize = 32;
/// How long a client's thread waits for its client's requests before it
/// looks at its queue again: the most a queued message waits.
const POLL: Duration = Duration::from_millis(5);

/// The `foxglove` kind's options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoxgloveOptions {
    /// Address to listen on (default `127.0.0.1`).
    pub host: Option<String>,
    /// Port (default 8765; 0 = any free port).
    pub port: Option<i64>,
    /// `jpeg` (default) or `none`.
    #[serde(default)]
    pub images: Images,
    /// JPEG quality, 1..=100 (default 85).
    pub jpeg_quality: Option<i64>,
    /// Messages queued per client (default 32).
    pub backlog: Option<i64>,
}

fn options(options: &SinkOptions) -> Result<FoxgloveOptions, SinkCheckError> {
    let o: FoxgloveOptions = typed_options(options)?;
    if let Some(q) = o.jpeg_quality
        && !(1..=100).contains(&q)
    {
        return Err(SinkCheckError::option(
            "jpeg_quality",
            format!("{q} is out of range: 1 to 100"),
        ));
    }
    if let Some(p) = o.port
        && !(0..=65535).contains(&p)
    {
        return Err(SinkCheckError::option(
            "port",
            format!("{p} is out of range: 0 (any free port) to 65535"),
        ));
    }
    if let Some(b) = o.backlog
        && !(1..=100_000).contains(&b)
    {
        return Err(SinkCheckError::option(
            "backlog",
            format!("{b} is out of range: 1 to 100000"),
        ));
    }
    if o.host.as_deref().is_some_and(str::is_empty) {
        return Err(SinkCheckError::option(
            "host",
            "empty: give an address such as \"127.0.0.1\" or \"0.0.0.0\"",
        ));
    }
    Ok(o)
}

fn check(output: &OutputPath, opts: &SinkOptions) -> Result<(), SinkCheckError> {
    options(opts)?;
    match output {
        OutputPath::Stdout => Ok(()),
        OutputPath::File(p) => Err(SinkCheckError::path(format!(
            "the live view writes no file: leave `path` out (not {})",
            p.display()
        ))),
    }
}

fn open(output: &OutputPath, opts: &SinkOptions) -> io::Result<Box<dyn Sink>> {
    check(output, opts).map_err(io::Error::other)?;
    let o = options(opts).map_err(io::Error::other)?;
    Ok(Box::new(FoxgloveSink::start(&o)?))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A frame for a client.
enum Out {
    /// A JSON operation (never dropped).
    Text(String),
    /// A message data frame (dropped oldest first when the queue is full).
    Binary(Vec<u8>),
}

/// One connected client, as the sink sees it.
struct Client {
    queue: Mutex<VecDeque<Out>>,
    /// (subscription id, channel id).
    subscriptions: Mutex<Vec<(u32, u32)>>,
    /// A handle on the socket, to end the connection at the end of the run.
    socket: TcpStream,
}

impl Client {
    fn push(&self, out: Out, backlog: usize, dropped: &AtomicU64) {
        let mut q = lock(&self.queue);
        if matches!(out, Out::Binary(_))
            && q.iter().filter(|o| matches!(o, Out::Binary(_))).count() >= backlog
            && let Some(i) = q.iter().position(|o| matches!(o, Out::Binary(_)))
        {
            q.remove(i);
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(out);
    }
}

/// What the sink and the connection threads share.
struct Hub {
    /// Every advertised channel, as its `advertise` JSON object.
    channels: Mutex<Vec<Value>>,
    clients: Mutex<Vec<Arc<Client>>>,
    stop: AtomicBool,
    dropped: Arc<AtomicU64>,
    backlog: usize,
    session: String,
}

fn advertise(channels: &[Value]) -> String {
    json!({ "op": "advertise", "channels": channels }).to_string()
}

/// The channels advertised so far.
struct Adverts {
    hub: Arc<Hub>,
    channels: HashMap<(Arc<str>, Topic), u32>,
    next: u32,
}

impl Adverts {
    /// The channel of `topic` on `stream`, advertised to every client on first use.
    fn channel(&mut self, stream: &Arc<str>, topic: Topic) -> u32 {
        if let Some(id) = self.channels.get(&(stream.clone(), topic)) {
            return *id;
        }
        let id = self.next;
        self.next += 1;
        self.channels.insert((stream.clone(), topic), id);
        let s = topic.schema();
        let schema = if s.encoding == "protobuf" {
            base64::engine::general_purpose::STANDARD.encode(&s.data)
        } else {
            String::from_utf8_lossy(&s.data).into_owned()
        };
        let advert = json!({
            "id": id,
            "topic": topic.of(stream),
            "encoding": topic.message_encoding(),
            "schemaName": s.name,
            "schema": schema,
            "schemaEncoding": s.encoding,
        });
        let mut channels = lock(&self.hub.channels);
        let text = advertise(std::slice::from_ref(&advert));
        channels.push(advert);
        for c in lock(&self.hub.clients).iter() {
            c.push(Out::Text(text.clone()), self.hub.backlog, &self.hub.dropped);
        }
        id
    }

}

/// Publishes frames to Foxglove WebSocket clients.
pub struct FoxgloveSink {
    hub: Arc<Hub>,
    acceptor: Option<JoinHandle<()>>,
    images: bool,
    adverts: Adverts,
    messages: Messages,
    /// The address it listens on.
    pub address: std::net::SocketAddr,
}

impl FoxgloveSink {
    /// Listens on the options' host and port and starts accepting clients.
    /// An address that cannot be listened on is an error whose inner error
    /// is a [`SinkCheckError`] naming `host` or `port`.
    pub fn start(o: &FoxgloveOptions) -> io::Result<FoxgloveSink> {
        let host = o.host.as_deref().unwrap_or("127.0.0.1");
        let port = o.port.map_or(DEFAULT_PORT, |p| p as u16);
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| {
                io::Error::other(SinkCheckError::option(
                    "host",
                    format!("`{host}` is not an address here: {e}"),
                ))
            })?
            .collect();
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| {
            let field = if e.kind() == io::ErrorKind::AddrNotAvailable {
                "host"
            } else {
                "port"
            };
            io::Error::other(SinkCheckError::option(
                field,
                format!(
                    "cannot listen on {host}:{port}: {e} (another program may use the port: choose another, or 0 for any free one)"
                ),
            ))
        })?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        tracing::info!("foxglove: live view on ws://{address}");
        let hub = Arc::new(Hub {
            channels: Mutex::new(Vec::new()),
            clients: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            dropped: Arc::new(AtomicU64::new(0)),
            backlog: o.backlog.map_or(DEFAULT_BACKLOG, |b| b as usize),
            session: format!("percept-{}", crate::clock::wall_ns()),
        });
        let acceptor = {
            let hub = hub.clone();
            std::thread::Builder::new()
                .name("foxglove-accept".into())
                .spawn(move || accept(&listener, &hub))?
        };
        Ok(FoxgloveSink {
            hub: hub.clone(),
            acceptor: Some(acceptor),
            images: o.images == Images::Jpeg,
            adverts: Adverts {
                hub: hub.clone(),
                channels: HashMap::new(),
                next: 1,
            },
            messages: Messages::new(o.jpeg_quality.unwrap_or(85) as i32),
            address,
        })
    }

    fn subscribed(&self, channel: u32) -> bool {
        lock(&self.hub.clients)
            .iter()
            .any(|c| lock(&c.subscriptions).iter().any(|(_, ch)| *ch == channel))
    }

    fn stop(&mut self) {
        self.hub.stop.store(true, Ordering::Relaxed);
        for c in lock(&self.hub.clients).drain(..) {
            // Ends a write blocked on a client that does not read.
            let _ = c.socket.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

impl Sink for FoxgloveSink {
    fn write(&mut self, work: &Work, emit_ns: u64) -> io::Result<()> {
        let stream = work.frame.meta.stream.clone();
        let ts = work.frame.meta.capture_wall_ns;
        let image = self.images && {
            let id = self.adverts.channel(&stream, Topic::Image);
            self.subscribed(id)
        };
        let FoxgloveSink {
            hub,
            adverts,
            messages,
            ..
        } = self;
        messages.build(work, emit_ns, image, |topic, bytes| {
            let id = adverts.channel(&stream, topic);
            for c in lock(&hub.clients).iter() {
                let subs: Vec<u32> = lock(&c.subscriptions)
                    .iter()
                    .filter(|(_, ch)| *ch == id)
                    .map(|(sub, _)| *sub)
                    .collect();
                for sub in subs {
                    let mut frame = Vec::with_capacity(13 + bytes.len());
                    frame.push(1);
                    frame.extend_from_slice(&sub.to_le_bytes());
                    frame.extend_from_slice(&ts.to_le_bytes());
                    frame.extend_from_slice(bytes);
                    c.push(Out::Binary(frame), hub.backlog, &hub.dropped);
                }
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.stop();
        Ok(())
    }

    fn dropped(&self) -> Option<Arc<AtomicU64>> {
        Some(self.hub.dropped.clone())
    }
}

impl Drop for FoxgloveSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept(listener: &TcpListener, hub: &Arc<Hub>) {
    while !hub.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((tcp, peer)) => {
                let hub = hub.clone();
                let spawned = std::thread::Builder::new()
                    .name("foxglove-client".into())
                    .spawn(move || {
                        if let Err(e) = serve(tcp, &hub) {
                            tracing::debug!("foxglove: client {peer}: {e}");
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("foxglove: client {peer} refused: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("foxglove: accept: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Chooses a subprotocol the client offers, or refuses the connection.
/// (The error type is tungstenite's callback signature.)
#[allow(clippy::result_large_err)]
fn negotiate(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered: Vec<String> = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    match SUBPROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
    {
        Some(p) => {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
            Ok(resp)
        }
        None => {
            let mut e = ErrorResponse::new(Some(format!(
                "percept speaks the Foxglove WebSocket protocol: offer subprotocol {}",
                SUBPROTOCOLS.join(" or ")
            )));
            *e.status_mut() = StatusCode::BAD_REQUEST;
            Err(e)
        }
    }
}

fn ws_err(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        e => io::Error::other(e.to_string()),
    }
}

/// One client's connection: handshake, then its queue out and its requests in.
fn serve(tcp: TcpStream, hub: &Hub) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let socket = tcp.try_clone()?;
    let mut ws = tungstenite::accept_hdr(tcp, negotiate).map_err(|e| io::Error::other(e.to_string()))?;
    ws.get_ref().set_read_timeout(Some(POLL))?;
    let client = Arc::new(Client {
        queue: Mutex::new(VecDeque::new()),
        subscriptions: Mutex::new(Vec::new()),
        socket,
    });
    {
        let channels = lock(&hub.channels);
        let info = json!({
            "op": "serverInfo",
            "name": format!("percept {}", env!("CARGO_PKG_VERSION")),
            "capabilities": [],
            "supportedEncodings": [],
            "metadata": {},
            "sessionId": hub.session,
        });
        let mut q = lock(&client.queue);
        q.push_back(Out::Text(info.to_string()));
        if !channels.is_empty() {
            q.push_back(Out::Text(advertise(&channels)));
        }
        drop(q);
        if hub.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        lock(&hub.clients).push(client.clone());
    }
    let result = talk(&mut ws, &client, hub);
    lock(&hub.clients).retain(|c| !Arc::ptr_eq(c, &client));
    let _ = ws.close(None);
    let _ = ws.flush();
    result
}

fn talk(ws: &mut WebSocket<TcpStream>, client: &Client, hub: &Hub) -> io::Result<()> {
    let mut batch = Vec::new();
    while !hub.stop.load(Ordering::Relaxed) {
        batch.extend(lock(&client.queue).drain(..));
        if !batch.is_empty() {
            for out in batch.drain(..) {
                let msg = match out {
                    Out::Text(t) => Message::text(t),
                    Out::Binary(b) => Message::binary(b),
                };
                ws.write(msg).map_err(ws_err)?;
            }
            ws.flush().map_err(ws_err)?;
        }
        match ws.read() {
            Ok(Message::Text(text)) => request(client, text.as_str()),
            Ok(Message::Close(_)) => return Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(());
            }
            Err(e) => return Err(ws_err(e)),
        }
    }
    Ok(())
}

/// A client's JSON request: `subscribe` and `unsubscribe` (others are ignored).
fn request(client: &Client, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let mut subs = lock(&client.subscriptions);
    match v.get("op").and_then(Value::as_str) {
        Some("subscribe") => {
            for s in v
                .get("subscriptions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = s.get("id").and_then(Value::as_u64);
                let channel = s.get("channelId").and_then(Value::as_u64);
                if let (Some(id), Some(channel)) = (id, channel) {
                    subs.retain(|(sub, _)| u64::from(*sub) != id);
                    subs.push((id as u32, channel as u32));
                }
            }
        }
        Some("unsubscribe") => {
            let ids: Vec<u64> = v
                .get("subscriptionIds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            subs.retain(|(sub, _)| !ids.contains(&u64::from(*sub)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(text: &str) -> SinkOptions {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn options_are_checked_with_their_field() {
        assert!(check(&OutputPath::Stdout, &opts("port = 9000")).is_ok());
        let e = check(&OutputPath::Stdout, &opts("port = 70000")).unwrap_err();
        assert_eq!(e.field, "port", "{e}");
        let e = check(&OutputPath::Stdout, &opts("backlog = 0")).unwrap_err();
        assert_eq!(e.field, "backlog", "{e}");
        let e = check(&OutputPath::Stdout, &opts("images = \"png\"")).unwrap_err();
        assert_eq!(e.field, "images", "{e}");
        let e = check(&OutputPath::File("x".into()), &opts("")).unwrap_err();
        assert_eq!(e.field, "path", "{e}");
    }

    #[test]
    fn a_port_in_use_names_the_port() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let o = FoxgloveOptions {
            port: Some(i64::from(port)),
            ..FoxgloveOptions::default()
        };
        let e = FoxgloveSink::start(&o).err().unwrap();
        let inner = e.get_ref().unwrap().downcast_ref::<SinkCheckError>().unwrap();
        assert_eq!(inner.field, "port", "{inner}");
    }

    #[test]
    fn a_full_queue_drops_its_oldest_message() {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = Client {
            queue: Mutex::new(VecDeque::new()),
            subscriptions: Mutex::new(Vec::new()),
            socket: TcpStream::connect(socket.local_addr().unwrap()).unwrap(),
        };
        let dropped = AtomicU64::new(0);
        c.push(Out::Text("info".into()), 2, &dropped);
        for i in 0..4u8 {
            c.push(Out::Binary(vec![i]), 2, &dropped);
        }
        let q = lock(&c.queue);
        let kept: Vec<Vec<u8>> = q
            .iter()
            .filter_map(|o| match o {
                Out::Binary(b) => Some(b.clone()),
                Out::Text(_) => None,
            })
            .collect();
        assert_eq!(kept, vec![vec![2], vec![3]]);
        assert!(matches!(q.front(), Some(Out::Text(_))));
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }
}
