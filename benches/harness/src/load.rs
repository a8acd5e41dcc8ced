//! The load: wslink clients (our `wslink-client`) and raw tokio-tungstenite
//! clients, doing the same things.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wslink_client::{Client, Generation, Value};

pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The topic `conformance.publish` runs publish on.
const TOPIC_PREFIX: &str = "bench";

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---------------------------------------------------------------- connecting

pub async fn connect(url: &str, generation: Generation) -> Result<Client, String> {
    Client::builder(url)
        .generation(generation)
        .subscription_buffer(4096)
        .call_timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(60))
        .connect()
        .await
        .map_err(err)
}

pub async fn connect_many(
    url: &str,
    generation: Generation,
    n: usize,
) -> Result<Vec<Client>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(connect(url, generation).await?);
    }
    Ok(out)
}

/// The raw client is configured like our client: tungstenite's default
/// buffers, large messages allowed.
fn raw_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20))
}

pub async fn raw_connect(url: &str) -> Result<RawWs, String> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(raw_config()), true)
        .await
        .map_err(err)?;
    Ok(ws)
}

pub async fn raw_connect_many(url: &str, n: usize) -> Result<Vec<RawWs>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(raw_connect(url).await?);
    }
    Ok(out)
}

// ---------------------------------------------------------------- small RPC

async fn add(c: &Client) -> Result<(), String> {
    let v = c
        .call(
            "conformance.add",
            vec![Value::from(1), Value::from(2)],
            Vec::new(),
        )
        .await
        .map_err(err)?;
    if v.as_i64() != Some(3) {
        return Err(format!("conformance.add(1, 2) returned {v:?}"));
    }
    Ok(())
}

/// Calls per second with `depth` calls of `conformance.add` in flight on
/// each client, for `duration`.
pub async fn rpc_rate(clients: &[Client], depth: usize, duration: Duration) -> Result<f64, String> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for c in clients {
        for _ in 0..depth {
            let c = c.clone();
            tasks.spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    add(&c).await?;
                    n += 1;
                }
                Ok::<_, String>(n)
            });
        }
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.map_err(err)??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Round trips per second of `size`-byte binary frames echoed by the raw
/// server, `depth` in flight on each connection. Replies already read are
/// answered together and flushed once.
pub async fn raw_rate(
    conns: Vec<RawWs>,
    depth: usize,
    size: usize,
    duration: Duration,
) -> Result<(f64, Vec<RawWs>), String> {
    let start = Instant::now();
    let deadline = start + duration;
    let payload = Bytes::from(vec![7u8; size]);
    let mut tasks = JoinSet::new();
    for mut ws in conns {
        let payload = payload.clone();
        tasks.spawn(async move {
            let mut outstanding = 0usize;
            let mut n = 0u64;
            for _ in 0..depth {
                ws.feed(Message::Binary(payload.clone()))
                    .await
                    .map_err(err)?;
                outstanding += 1;
            }
            ws.flush().await.map_err(err)?;
            while outstanding > 0 {
                let mut next = ws.next().await;
                loop {
                    match next {
                        Some(Ok(Message::Binary(b))) if b.len() == size => {}
                        other => return Err(format!("raw echo: unexpected {other:?}")),
                    }
                    outstanding -= 1;
                    n += 1;
                    if Instant::now() < deadline {
                        ws.feed(Message::Binary(payload.clone()))
                            .await
                            .map_err(err)?;
                        outstanding += 1;
                    }
                    match ws.next().now_or_never() {
                        Some(more) => next = more,
                        None => break,
                    }
                }
                ws.flush().await.map_err(err)?;
            }
            Ok::<_, String>((n, ws))
        });
    }
    let mut total = 0;
    let mut back = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (n, ws) = done.map_err(err)??;
        total += n;
        back.push(ws);
    }
    Ok((total as f64 / start.elapsed().as_secs_f64(), back))
}

// ---------------------------------------------------------------- publishing

/// Frames each subscriber has received, and a wake-up for whoever waits on
/// the slowest.
struct Progress {
    counts: Vec<AtomicU64>,
    changed: Notify,
}

impl Progress {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Progress {
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            changed: Notify::new(),
        })
    }

    fn min(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    fn bump(&self, i: usize) {
        self.counts[i].fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Waits until every subscriber has at least `n` frames.
    async fn wait_min(&self, n: u64, until: Instant) -> Result<(), String> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.min() >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(until.into(), changed)
                .await
                .is_err()
            {
                return Err(format!(
                    "timed out: the slowest subscriber has {} of {n} frames",
                    self.min()
                ));
            }
        }
    }
}

/// How publishes are paced: `conformance.publish(topic, BATCH, size)` calls,
/// issued while every subscriber is at most `WINDOW` frames behind, so that
/// no server's per-client queue (ours: 64 MiB) fills up.
const BATCH: u64 = 8;
const WINDOW: u64 = 32;

/// The time every subscriber (all of `clients`; the first one also makes
/// the calls) takes to receive `frames` messages of `size` bytes.
pub async fn publish(
    clients: &[Client],
    run: usize,
    frames: u64,
    size: usize,
    timeout: Duration,
) -> Result<Duration, String> {
    let topic = format!("{TOPIC_PREFIX}.r{run}");
    let progress = Progress::new(clients.len());
    let mut subscribers = JoinSet::new();
    for (i, c) in clients.iter().enumerate() {
        let mut sub = c.subscribe(&topic).map_err(err)?;
        // The publishes come from another connection: without this, the
        // first frames could be published before our server has heard of
        // this subscriber, and never reach it.
        sub.declared().await.map_err(err)?;
        let progress = progress.clone();
        subscribers.spawn(async move {
            let mut n = 0;
            while n < frames {
                let Some(message) = sub.next().await else {
                    return Err("subscription ended".to_string());
                };
                let len = message
                    .get("blob")
                    .and_then(Value::as_bytes)
                    .map(Bytes::len);
                if len != Some(size) {
                    return Err(format!("published blob of {len:?} bytes, not {size}"));
                }
                n += 1;
                progress.bump(i);
            }
            Ok(Instant::now())
        });
    }
    let start = Instant::now();
    let until = start + timeout;
    let mut calls = JoinSet::new();
    let mut issued = 0;
    while issued < frames {
        let batch = BATCH.min(frames - issued);
        if issued + batch > WINDOW {
            progress.wait_min(issued + batch - WINDOW, until).await?;
        }
        let c = clients[0].clone();
        let topic = topic.clone();
        calls.spawn(async move {
            c.call(
                "conformance.publish",
                vec![
                    Value::from(topic.as_str()),
                    Value::from(batch),
                    Value::from(size as u64),
                ],
                Vec::new(),
            )
            .await
            .map_err(err)
        });
        issued += batch;
    }
    let mut last = start;
    loop {
        let next = tokio::time::timeout_at(until.into(), subscribers.join_next()).await;
        match next {
            Err(_) => {
                return Err(format!(
                    "timed out: the slowest subscriber has {} of {frames} frames",
                    progress.min()
                ))
            }
            Ok(None) => break,
            Ok(Some(done)) => last = last.max(done.map_err(err)??),
        }
    }
    while let Some(done) = calls.join_next().await {
        done.map_err(err)??;
    }
    Ok(last - start)
}

/// [`publish`] against the raw server: `push` commands on the first
/// connection, every connection subscribed.
pub async fn raw_publish(
    conns: Vec<RawWs>,
    frames: u64,
    size: usize,
    timeout: Duration,
) -> Result<(Duration, Vec<RawWs>), String> {
    let progress = Progress::new(conns.len());
    let mut sinks: Vec<SplitSink<RawWs, Message>> = Vec::new();
    let mut readers = JoinSet::new();
    for (i, ws) in conns.into_iter().enumerate() {
        let (sink, mut stream): (_, SplitStream<RawWs>) = ws.split();
        sinks.push(sink);
        let progress = progress.clone();
        readers.spawn(async move {
            let mut n = 0;
            while n < frames {
                match stream.next().await {
                    Some(Ok(Message::Binary(b))) if b.len() == size => {
                        n += 1;
                        progress.bump(i);
                    }
                    Some(Ok(Message::Text(_))) => {}
                    other => return Err(format!("raw push: unexpected {other:?}")),
                }
            }
            Ok((i, Instant::now(), stream))
        });
    }
    let start = Instant::now();
    let until = start + timeout;
    let mut issued = 0;
    while issued < frames {
        let batch = BATCH.min(frames - issued);
        if issued + batch > WINDOW {
            progress.wait_min(issued + batch - WINDOW, until).await?;
        }
        sinks[0]
            .send(Message::Text(format!("push {batch} {size}").into()))
            .await
            .map_err(err)?;
        issued += batch;
    }
    let mut last = start;
    let mut streams: Vec<Option<SplitStream<RawWs>>> = (0..sinks.len()).map(|_| None).collect();
    loop {
        let next = tokio::time::timeout_at(until.into(), readers.join_next()).await;
        match next {
            Err(_) => {
                return Err(format!(
                    "timed out: the slowest subscriber has {} of {frames} frames",
                    progress.min()
                ))
            }
            Ok(None) => break,
            Ok(Some(done)) => {
                let (i, at, stream) = done.map_err(err)??;
                last = last.max(at);
                streams[i] = Some(stream);
            }
        }
    }
    let elapsed = last - start;
    // The last "done" reply may still be on its way; it is skipped as text
    // by the next run's reader.
    let mut back = Vec::new();
    for (sink, stream) in sinks.into_iter().zip(streams) {
        let stream = stream.ok_or("a reader went missing")?;
        back.push(stream.reunite(sink).map_err(err)?);
    }
    Ok((elapsed, back))
}

// ---------------------------------------------------------------- large messages

/// Latency of one `conformance.blob(size)` call.
pub async fn blob(c: &Client, size: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let v = c
        .call(
            "conformance.blob",
            vec![Value::from(size as u64), Value::from(0)],
            Vec::new(),
        )
        .await
        .map_err(err)?;
    let elapsed = start.elapsed();
    let len = v.get("blob").and_then(Value::as_bytes).map(Bytes::len);
    if len != Some(size) {
        return Err(format!("blob of {len:?} bytes, not {size}"));
    }
    Ok(elapsed)
}

/// Latency of one raw `blob SIZE` request.
pub async fn raw_blob(ws: &mut RawWs, size: usize) -> Result<Duration, String> {
    let start = Instant::now();
    ws.send(Message::Text(format!("blob {size}").into()))
        .await
        .map_err(err)?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() == size => return Ok(start.elapsed()),
            Some(Ok(Message::Text(_))) => {}
            other => return Err(format!("raw blob: unexpected {other:?}")),
        }
    }
}

// ---------------------------------------------------------------- idle connections

/// Opens up to `n` idle connections (wslink: hello done), `parallel` at a
/// time, within `limit`. Returns what it got and the first error, if any.
pub async fn idle_wslink(
    url: &str,
    generation: Generation,
    n: usize,
    limit: Duration,
) -> (Vec<Client>, Option<String>) {
    open_many(n, limit, |_| {
        let url = url.to_owned();
        async move { connect(&url, generation).await }
    })
    .await
}

pub async fn idle_raw(url: &str, n: usize, limit: Duration) -> (Vec<RawWs>, Option<String>) {
    open_many(n, limit, |_| {
        let url = url.to_owned();
        async move {
            // Small buffers: these clients only sit there.
            let config = WebSocketConfig::default().read_buffer_size(4096);
            tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
                .await
                .map(|(ws, _)| ws)
                .map_err(err)
        }
    })
    .await
}

/// An idle wslink connection whose upgrade offered permessage-deflate as
/// browsers do (`permessage-deflate; client_max_window_bits`): hello done,
/// the server's answer to the offer checked. The socket is raw (our client
/// has no deflate); the hello reply is read as one frame, whatever its RSV1.
pub async fn idle_deflate(
    url: &str,
    generation: Generation,
    n: usize,
    limit: Duration,
) -> (Vec<TcpStream>, Option<String>) {
    open_many(n, limit, |_| {
        let url = url.to_owned();
        async move { deflate_hello(&url, generation).await }
    })
    .await
}

async fn deflate_hello(url: &str, generation: Generation) -> Result<TcpStream, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wslink_core::codec::{v1, v2, Frame};
    let rest = url.trim_start_matches("ws://");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut tcp = TcpStream::connect(addr).await.map_err(err)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.map_err(err)?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.map_err(err)?);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        return Err(format!(
            "upgrade refused: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    if !head.contains("sec-websocket-extensions: permessage-deflate") {
        return Err("the server did not accept permessage-deflate".into());
    }
    let hello =
        wslink_core::Message::Request(wslink_core::protocol::hello_request("wslink-secret"));
    let frames = match generation {
        Generation::V2 => v2::encode_frames(&hello, 4 << 20).map_err(err)?,
        Generation::V1 => v1::encode(&hello, &Default::default()).map_err(err)?,
    };
    for frame in frames {
        let (opcode, payload) = match frame {
            Frame::Text(t) => (0x81u8, t),
            Frame::Binary(b) => (0x82u8, b),
        };
        // A zero mask: the payload goes as it is.
        let mut f = vec![opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        if payload.len() > 125 {
            return Err("hello over 125 bytes".into());
        }
        f.extend_from_slice(&payload);
        tcp.write_all(&f).await.map_err(err)?;
    }
    // The reply: one frame, skipped.
    let b1 = {
        tcp.read_u8().await.map_err(err)?;
        tcp.read_u8().await.map_err(err)?
    };
    let len = match b1 & 0x7f {
        126 => u64::from(tcp.read_u16().await.map_err(err)?),
        127 => tcp.read_u64().await.map_err(err)?,
        n => u64::from(n),
    };
    let mut payload = vec![0; len as usize];
    tcp.read_exact(&mut payload).await.map_err(err)?;
    Ok(tcp)
}

const PARALLEL_CONNECTS: usize = 64;

async fn open_many<T, F, Fut>(n: usize, limit: Duration, open: F) -> (Vec<T>, Option<String>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let until = tokio::time::Instant::now() + limit;
    let mut pending = futures_util::stream::iter(0..n)
        .map(open)
        .buffer_unordered(PARALLEL_CONNECTS);
    let mut out = Vec::with_capacity(n);
    let mut first_error = None;
    loop {
        match tokio::time::timeout_at(until, pending.next()).await {
            Err(_) => {
                first_error
                    .get_or_insert_with(|| format!("time limit of {} s reached", limit.as_secs()));
                break;
            }
            Ok(None) => break,
            Ok(Some(Ok(c))) => out.push(c),
            Ok(Some(Err(e))) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (out, first_error)
}
