//! The connection task: it owns the socket, writes what calls hand it and
//! routes what the server sends to the calls and subscriptions waiting for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as Ws, Utf8Bytes};
use wslink_core::attachments::AttachmentKeys;
use wslink_core::chunking::Chunks;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::ids::{IdKind, MessageId};
use wslink_core::{CodecError, Generation, Message, RpcError, Value};

use crate::error::Ended;
use crate::subscription::{lock, SubQueue};
use crate::transport::{Reader, Writer};

/// How long a closing side waits for the other side's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a pending call receives.
pub(crate) type Reply = Result<Value, ReplyError>;

/// A call's failure as the connection task sees it (the caller adds the method).
#[derive(Debug)]
pub(crate) enum ReplyError {
    Rpc(RpcError),
    Ended(Ended),
}

/// What calls hand to the writer: the frames of one message, written in
/// order and without any other message's frames between them (1.x
/// attachments depend on that).
pub(crate) struct Outgoing {
    pub(crate) frames: Frames,
    /// Set once the call is over (answered, timed out, or its future
    /// dropped): the frames not yet written are dropped then.
    pub(crate) abandoned: Arc<AtomicBool>,
}

/// The frames of one encoded message.
///
/// 2.x frames are cut from the encoded message as they are written, never
/// all at once: a server announcing a tiny `maxMsgSize` (13 bytes: one byte
/// of content per frame) would otherwise make the client hold some 50 bytes
/// of frame bookkeeping per byte of every upload. 1.x messages are a few
/// frames (attachments, then the JSON) made up front.
#[derive(Debug)]
pub(crate) enum Frames {
    V2(Chunks),
    V1(std::vec::IntoIter<Frame>),
}

impl Frames {
    /// Whether the message may be cut short just before `next`, leaving the
    /// server a state it can recover from: anywhere in 2.x (a partial
    /// message, which the server's limits bound); in 1.x only before a text
    /// frame, never between an attachment header and its bytes (the server
    /// would pair the next message's bytes with the announced key).
    fn may_stop_before(&self, next: &Frame) -> bool {
        matches!(self, Frames::V2(_)) || matches!(next, Frame::Text(_))
    }
}

impl Iterator for Frames {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        match self {
            Frames::V2(chunks) => chunks.next().map(Frame::Binary),
            Frames::V1(frames) => frames.next(),
        }
    }
}

/// Counters of what the connection saw and set aside.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) unknown_replies: AtomicU64,
    pub(crate) unrouted_publishes: AtomicU64,
    pub(crate) dropped_publishes: AtomicU64,
    pub(crate) unexpected_messages: AtomicU64,
}

/// State shared by the client handles, the subscriptions and the task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client_id: String,
    /// `rpc:{client_id}:`, what this client's call ids start with.
    rpc_prefix: String,
    /// Whether a reply's id can be matched by that prefix alone: the
    /// client id is a valid name (the server's hello checked it), so an
    /// id with the prefix parses as an rpc id of this client.
    rpc_prefix_matches: bool,
    pub(crate) state: Mutex<State>,
    pub(crate) counters: Counters,
    /// Set by `Client::close`.
    pub(crate) close_requested: Notify,
    /// `true` once the task has finished.
    pub(crate) finished: watch::Sender<bool>,
    /// The payload of the last ping not answered yet (RFC 6455 lets a
    /// pong answer only the latest), for the writer.
    pong: Mutex<Option<Bytes>>,
    pong_due: Notify,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) pending: HashMap<u64, oneshot::Sender<Reply>>,
    pub(crate) subs: HashMap<String, Vec<Arc<SubQueue>>>,
    /// Subscription declarations awaiting the server's answer, by sequence
    /// number: the topic.
    pub(crate) declarations: HashMap<u64, String>,
    pub(crate) ended: Option<Ended>,
}

impl Shared {
    pub(crate) fn new(client_id: String) -> Arc<Self> {
        Arc::new(Shared {
            rpc_prefix: format!("rpc:{client_id}:"),
            rpc_prefix_matches: wslink_core::ids::is_valid_name(&client_id),
            client_id,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            close_requested: Notify::new(),
            finished: watch::channel(false).0,
            pong: Mutex::new(None),
            pong_due: Notify::new(),
        })
    }

    /// Marks the connection ended (the first reason wins), fails every
    /// pending call and ends every subscription.
    pub(crate) fn end(&self, ended: Ended) {
        let (pending, subs) = {
            let mut st = lock(&self.state);
            let ended = st.ended.get_or_insert(ended).clone();
            let pending: Vec<_> = st
                .pending
                .drain()
                .map(|(_, tx)| (tx, ended.clone()))
                .collect();
            let subs: Vec<_> = st.subs.values().flatten().cloned().collect();
            (pending, subs)
        };
        for (tx, ended) in pending {
            let _ = tx.send(Err(ReplyError::Ended(ended)));
        }
        for q in subs {
            q.end();
        }
    }

    /// Has the writer answer a ping.
    fn ping(&self, payload: Bytes) {
        *self.pong.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
        self.pong_due.notify_one();
    }

    /// Why the connection ended, if it did.
    pub(crate) fn ended(&self) -> Option<Ended> {
        lock(&self.state).ended.clone()
    }

    fn dispatch(&self, message: Message) {
        match message {
            Message::Result { id, result } => self.route(id, Ok(result)),
            Message::Error { id, error } => self.route(id, Err(error)),
            Message::Request(req) => {
                tracing::debug!(method = %req.method, "ignoring a request sent by the server");
                self.counters
                    .unexpected_messages
                    .fetch_add(1, Ordering::Relaxed);
            }
            Message::AttachmentHeader { .. } => {
                self.counters
                    .unexpected_messages
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The id of this client's call number `seq`: `rpc:{client_id}:{seq}`.
    pub(crate) fn rpc_id(&self, seq: u64) -> String {
        // Digits by hand: this runs for every call, and `format!` showed
        // in its profile.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = seq;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut id = String::with_capacity(self.rpc_prefix.len() + digits.len() - at);
        id.push_str(&self.rpc_prefix);
        id.extend(digits[at..].iter().map(|&d| char::from(d)));
        id
    }

    /// The sequence number of a reply to one of this client's calls, read
    /// without parsing the id in general: the same answer as
    /// `MessageId::from_str` for ids with this client's prefix, `None` for
    /// every other id (left to the general parse).
    fn own_call_seq(&self, id: &str) -> Option<u64> {
        if !self.rpc_prefix_matches {
            return None;
        }
        let seq = id.strip_prefix(self.rpc_prefix.as_str())?;
        let canonical = seq == "0" || !seq.starts_with('0');
        if seq.is_empty() || !canonical || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        seq.parse().ok()
    }

    fn route(&self, id: String, reply: Result<Value, RpcError>) {
        if let Some(seq) = self.own_call_seq(&id) {
            let tx = lock(&self.state).pending.remove(&seq);
            match tx {
                Some(tx) => {
                    let _ = tx.send(reply.map_err(ReplyError::Rpc));
                }
                None => self.unknown(&id),
            }
            return;
        }
        let parsed = id.parse::<MessageId>().ok();
        match parsed {
            Some(mid) if mid.kind == IdKind::Rpc && mid.name == self.client_id => {
                let tx = lock(&self.state).pending.remove(&mid.seq);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(reply.map_err(ReplyError::Rpc));
                    }
                    None => self.unknown(&id),
                }
            }
            Some(mid) if mid.kind == IdKind::System && mid.name == self.client_id => {
                let topic = lock(&self.state).declarations.remove(&mid.seq);
                match (topic, reply) {
                    (Some(topic), Ok(_)) => {
                        // A later declaration of the same topic (after an
                        // unsubscribe) is what current subscribers wait for.
                        let queues = {
                            let st = lock(&self.state);
                            if st.declarations.values().any(|t| *t == topic) {
                                None
                            } else {
                                st.subs.get(&topic).cloned()
                            }
                        };
                        for q in queues.into_iter().flatten() {
                            q.confirm();
                        }
                    }
                    (Some(topic), Err(e)) => {
                        tracing::warn!(%topic, code = e.code, message = %e.message, "the server refused a subscription");
                        let queues = lock(&self.state).subs.remove(&topic).unwrap_or_default();
                        for q in queues {
                            q.refuse(e.message.clone());
                        }
                    }
                    (None, _) => self.unknown(&id),
                }
            }
            Some(mid) if mid.kind == IdKind::Publish => match reply {
                Ok(value) => self.publish(&mid.name, value),
                Err(_) => self.unknown(&id),
            },
            _ => self.unknown(&id),
        }
    }

    fn unknown(&self, id: &str) {
        tracing::debug!(%id, "ignoring a reply to an unknown id");
        self.counters
            .unknown_replies
            .fetch_add(1, Ordering::Relaxed);
    }

    fn publish(&self, topic: &str, value: Value) {
        let queues = lock(&self.state).subs.get(topic).cloned();
        let Some(queues) = queues.filter(|q| !q.is_empty()) else {
            self.counters
                .unrouted_publishes
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let last = queues.len() - 1;
        let mut value = Some(value);
        for (i, q) in queues.iter().enumerate() {
            let v = if i == last {
                value.take().unwrap_or_default()
            } else {
                value.clone().unwrap_or_default()
            };
            let dropped = q.push(v);
            if dropped > 0 {
                self.counters
                    .dropped_publishes
                    .fetch_add(dropped, Ordering::Relaxed);
            }
        }
    }
}

/// Encodes messages for one generation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Encoder {
    /// 2.x, chunked to this frame size (0: never chunk).
    V2 { max_frame: usize },
    /// 1.x JSON with attachments.
    V1,
}

/// One key allocator for the whole process: a Python 1.x server keeps the
/// attachments of all its connections in one table, so keys that differ
/// across this process's connections avoid mix-ups there.
fn attachment_keys() -> &'static AttachmentKeys {
    static KEYS: OnceLock<AttachmentKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys = AttachmentKeys::new();
        // wslink_bin0 is what every fresh npm or Python peer uses first.
        keys.next_key();
        keys
    })
}

impl Encoder {
    pub(crate) fn encode(self, message: &Message) -> Result<Frames, CodecError> {
        match self {
            Encoder::V2 { max_frame } => v2::encode(message, max_frame).map(Frames::V2),
            Encoder::V1 => {
                v1::encode(message, attachment_keys()).map(|f| Frames::V1(f.into_iter()))
            }
        }
    }
}

/// Decodes incoming frames for one generation.
#[derive(Debug)]
pub(crate) enum Decoder {
    V2(v2::Decoder),
    V1 {
        decoder: v1::Decoder,
        /// Checked before parsing when below serde_json's own bound.
        json_depth: Option<usize>,
    },
}

impl Decoder {
    pub(crate) fn new(generation: Generation, limits: &crate::Limits) -> Self {
        match generation {
            Generation::V2 => {
                let mut d = v2::Decoder::new(limits.v2());
                // The pre-authentication limit protects servers from
                // strangers; a client reads its own server's hello reply.
                d.set_authenticated(true);
                Decoder::V2(d)
            }
            Generation::V1 => Decoder::V1 {
                decoder: v1::Decoder::new(limits.v1()),
                json_depth: limits.json_depth(),
            },
        }
    }

    /// Feeds one WebSocket message; returns the wslink message it completes,
    /// or why the connection cannot go on and the close code to send.
    fn push(&mut self, ws: Ws) -> Result<Option<Message>, (Ended, CloseCode)> {
        let decoded = match (self, ws) {
            (Decoder::V2(d), Ws::Binary(b)) => d.push(b),
            (Decoder::V2(_), Ws::Text(_)) => Err(CodecError::WrongFrameKind {
                kind: "text",
                generation: Generation::V2,
            }),
            (
                Decoder::V1 {
                    decoder,
                    json_depth,
                },
                Ws::Text(t),
            ) => {
                if let Some(limit) = *json_depth {
                    if v1::json_deeper_than(t.as_str(), limit) {
                        let detail = format!(
                            "the server sent an invalid message: JSON nesting deeper than {limit} levels"
                        );
                        return Err((Ended::Protocol(detail, None), CloseCode::Protocol));
                    }
                }
                decoder.push_text(t.as_str())
            }
            (Decoder::V1 { decoder, .. }, Ws::Binary(b)) => decoder.push_binary(b).map(|()| None),
            _ => Ok(None),
        };
        decoded.map_err(|e| {
            let code = if e.is_size_limit() {
                CloseCode::Size
            } else {
                CloseCode::Protocol
            };
            (protocol(e), code)
        })
    }
}

/// Turns a frame into a WebSocket message.
fn to_ws(frame: Frame) -> Ws {
    match frame {
        Frame::Binary(b) => Ws::Binary(b),
        // The codecs only make text frames from serde_json output.
        Frame::Text(b) => match Utf8Bytes::try_from(b.clone()) {
            Ok(t) => Ws::Text(t),
            Err(_) => Ws::Binary(b),
        },
    }
}

/// Sends one message's frames.
pub(crate) async fn send_frames(
    sink: &mut (impl futures_util::Sink<Ws, Error = tungstenite::Error> + Unpin),
    frames: impl IntoIterator<Item = Frame>,
) -> Result<(), tungstenite::Error> {
    feed_frames(sink, frames).await?;
    sink.flush().await
}

/// Queues one message's frames in the socket's write buffer, without
/// flushing (the buffer is written out when it grows past its size).
///
/// Cancel-safe between frames: each frame is wholly handed to the
/// WebSocket or not at all.
async fn feed_frames(
    sink: &mut (impl futures_util::Sink<Ws, Error = tungstenite::Error> + Unpin),
    frames: impl IntoIterator<Item = Frame>,
) -> Result<(), tungstenite::Error> {
    for f in frames {
        sink.feed(to_ws(f)).await?;
    }
    Ok(())
}

/// [`feed_frames`] for a call's message: once the call is abandoned, the
/// frames not yet handed to the WebSocket are dropped (at the first point
/// where [`Frames::may_stop_before`] allows it).
async fn feed_message(
    sink: &mut (impl futures_util::Sink<Ws, Error = tungstenite::Error> + Unpin),
    message: Outgoing,
) -> Result<(), tungstenite::Error> {
    let Outgoing {
        mut frames,
        abandoned,
    } = message;
    let mut written = 0usize;
    while let Some(f) = frames.next() {
        if abandoned.load(Ordering::Acquire) && frames.may_stop_before(&f) {
            tracing::debug!(
                written,
                "call abandoned: the rest of its message is not sent"
            );
            break;
        }
        sink.feed(to_ws(f)).await?;
        written += 1;
    }
    Ok(())
}

/// Reads until a complete wslink message arrives (used for the hello,
/// before the task exists). Publishes and stray replies that come first are
/// ignored.
pub(crate) async fn read_message(
    reader: &mut Reader,
    shared: Option<&Shared>,
    decoder: &mut Decoder,
) -> Result<Message, Ended> {
    loop {
        let frame = match reader.next().await {
            None => return Err(Ended::Closed("the server closed the connection".into())),
            // Sorted as after the hello: a frame over the size limit is a
            // protocol error, not a lost connection.
            Some(Err(e)) => return Err(transport_error(e).0),
            Some(Ok(Ws::Close(frame))) => return Err(Ended::Closed(describe_close(frame))),
            Some(Ok(Ws::Ping(payload))) => {
                if let Some(shared) = shared {
                    shared.ping(payload);
                }
                continue;
            }
            Some(Ok(m)) => m,
        };
        match decoder.push(frame) {
            Ok(Some(m)) => return Ok(m),
            Ok(None) => {}
            Err((ended, _code)) => return Err(ended),
        }
    }
}

fn protocol(e: CodecError) -> Ended {
    Ended::Protocol(
        format!("the server sent an invalid message: {e}"),
        Some(Arc::new(e)),
    )
}

fn describe_close(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => {
            format!(
                "the server closed the connection (code {})",
                u16::from(f.code)
            )
        }
        Some(f) => format!(
            "the server closed the connection (code {}: {})",
            u16::from(f.code),
            f.reason
        ),
        None => "the server closed the connection".into(),
    }
}

/// The connection task. Reading and writing run side by side on the two
/// halves of the socket, so a large upload never stops replies from being
/// read (and the other way round).
pub(crate) async fn run(
    (mut stream, mut sink): (Reader, Writer),
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<Outgoing>,
    mut decoder: Decoder,
) {
    // Whatever happens to this task (even a panic, or the runtime shutting
    // down), waiting calls and `Client::closed` must hear of it.
    let _finish = Finish(&shared);
    let mut close_frame: Option<CloseFrame> = None;
    {
        let reader = read_loop(&mut stream, &shared, &mut decoder);
        let writer = write_loop(&mut sink, &shared, &mut commands);
        tokio::pin!(reader, writer);
        tokio::select! {
            (ended, code) = &mut reader => {
                if let (Some(code), Ended::Protocol(detail, _)) = (code, &ended) {
                    close_frame = Some(CloseFrame { code, reason: truncate(detail).into() });
                }
                tracing::debug!(%ended, "connection ended by the read side");
                shared.end(ended);
            }
            result = &mut writer => {
                let ended = match result {
                    Ok(()) => Ended::Closed("the client closed the connection".into()),
                    Err(e) => Ended::Closed(format!("sending failed: {e}")),
                };
                tracing::debug!(%ended, "connection ended by the write side");
                shared.end(ended);
                close_frame = Some(CloseFrame { code: CloseCode::Normal, reason: "".into() });
            }
        }
    }
    if let Some(frame) = close_frame {
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Ws::Close(Some(frame)))).await;
        // Wait (briefly) for the server's close frame, reading whatever
        // comes before it, then drop the socket.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(m)) = stream.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close(None)).await;
    drop(commands);
}

/// Marks the connection ended and finished when the task stops.
struct Finish<'a>(&'a Shared);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        // The first reason wins: this only matters if nothing ended it yet.
        self.0
            .end(Ended::Closed("the connection task stopped".into()));
        self.0.finished.send_replace(true);
    }
}

fn truncate(s: &str) -> String {
    // A close frame's reason is at most 123 bytes.
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Reads and routes messages until the connection ends; returns why, and
/// the close code to send when the client is the one ending it.
async fn read_loop(
    stream: &mut Reader,
    shared: &Shared,
    decoder: &mut Decoder,
) -> (Ended, Option<CloseCode>) {
    loop {
        let frame = match stream.next().await {
            None => {
                let detail = "the connection ended without a close frame";
                return (Ended::Closed(detail.into()), None);
            }
            Some(Err(e)) => return transport_error(e),
            Some(Ok(Ws::Close(frame))) => return (Ended::Closed(describe_close(frame)), None),
            Some(Ok(Ws::Ping(payload))) => {
                shared.ping(payload);
                continue;
            }
            Some(Ok(m)) => m,
        };
        match decoder.push(frame) {
            Ok(Some(message)) => shared.dispatch(message),
            Ok(None) => {}
            Err((ended, code)) => return (ended, Some(code)),
        }
    }
}

/// Sorts the WebSocket library's read errors: the server breaking a limit
/// or the WebSocket rules is a protocol error, anything else a lost
/// connection.
fn transport_error(e: tungstenite::Error) -> (Ended, Option<CloseCode>) {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::Capacity(c) => (
            Ended::Protocol(
                format!("the server sent a message over the size limit: {c}"),
                None,
            ),
            Some(CloseCode::Size),
        ),
        tungstenite::Error::Utf8(_) => (
            Ended::Protocol(
                "the server sent a text frame that is not UTF-8".into(),
                None,
            ),
            Some(CloseCode::Invalid),
        ),
        tungstenite::Error::Protocol(p)
            if !matches!(p, ProtocolError::ResetWithoutClosingHandshake) =>
        {
            (
                Ended::Protocol(
                    format!("the server broke the WebSocket protocol: {p}"),
                    None,
                ),
                Some(CloseCode::Protocol),
            )
        }
        other => (Ended::Closed(format!("connection lost: {other}")), None),
    }
}

/// Writes messages until the client asks to close (or every handle is
/// gone: `Ok`) or a write fails (`Err`).
///
/// A close request also interrupts the messages being written: a server
/// that stops reading would otherwise keep the writer (and so
/// [`Client::close`](crate::Client::close)) waiting forever.
async fn write_loop(
    sink: &mut (impl futures_util::Sink<Ws, Error = tungstenite::Error> + Unpin),
    shared: &Shared,
    commands: &mut mpsc::Receiver<Outgoing>,
) -> Result<(), tungstenite::Error> {
    loop {
        tokio::select! {
            biased;
            () = shared.close_requested.notified() => return Ok(()),
            () = shared.pong_due.notified() => {
                let payload = shared.pong.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(payload) = payload {
                    sink.send(Ws::Pong(payload)).await?;
                }
            }
            cmd = commands.recv() => match cmd {
                None => return Ok(()),
                Some(message) => {
                    // Messages that queued up meanwhile go out with this
                    // one, flushed once: one write for many small calls.
                    let write = async {
                        feed_message(sink, message).await?;
                        loop {
                            while let Ok(more) = commands.try_recv() {
                                feed_message(sink, more).await?;
                            }
                            // With other calls under way, those woken by
                            // the same batch of replies run before this task
                            // comes back (the scheduler would otherwise run
                            // this task first, after the first of them),
                            // and their messages share the write. A lone
                            // call is not kept waiting for company.
                            if lock(&shared.state).pending.len() <= 1 {
                                break;
                            }
                            tokio::task::yield_now().await;
                            if commands.is_empty() {
                                break;
                            }
                        }
                        sink.flush().await
                    };
                    tokio::select! {
                        biased;
                        () = shared.close_requested.notified() => return Ok(()),
                        written = write => written?,
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn call_ids_are_made_and_read_back_as_the_general_parse_does() {
        let shared = Shared::new("c1a2_x".into());
        for seq in [0, 7, 10, 1234567890, u64::MAX] {
            let id = shared.rpc_id(seq);
            assert_eq!(id, format!("rpc:c1a2_x:{seq}"));
            let general: MessageId = id.parse().unwrap();
            assert_eq!(shared.own_call_seq(&id), Some(general.seq));
        }
        // Not this client's call (or not canonical): left to the general
        // parse, which also refuses or routes them elsewhere.
        for other in [
            "rpc:c1a2_x:",
            "rpc:c1a2_x:007",
            "rpc:c1a2_x:+7",
            "rpc:c1a2_x:7:8",
            "rpc:c1a2_x:18446744073709551616",
            "rpc:c1a2_xy:7",
            "rpc:other:7",
            "system:c1a2_x:7",
            "publish:c1a2_x:7",
        ] {
            assert_eq!(shared.own_call_seq(other), None, "{other}");
            let general = other.parse::<MessageId>().ok();
            assert!(
                general.is_none_or(|m| m.kind != IdKind::Rpc || m.name != "c1a2_x"),
                "{other}"
            );
        }
        // A client id that is not a valid name never matches by prefix.
        let odd = Shared::new("a:b".into());
        assert_eq!(odd.own_call_seq(&odd.rpc_id(3)), None);
    }

    #[test]
    fn a_1x_message_is_never_cut_between_a_header_and_its_bytes() {
        let header = Frame::Text(Bytes::from_static(b"{}"));
        let bytes = Frame::Binary(Bytes::from_static(b"\x01"));
        let frames = Frames::V1(Vec::new().into_iter());
        assert!(frames.may_stop_before(&header));
        assert!(!frames.may_stop_before(&bytes));
        let chunks =
            Frames::V2(wslink_core::chunking::chunk(Bytes::from_static(b"abc"), 1, 13).unwrap());
        assert!(chunks.may_stop_before(&bytes));
    }
}
