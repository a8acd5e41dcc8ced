//! One WebSocket connection: a reader that decodes frames and dispatches
//! calls, and a writer that drains the connection's outbound queue.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};
use tokio::sync::Semaphore;
use tracing::Instrument;
use wslink_core::codec::{v1, v2, CodecError};
use wslink_core::envelope::{EnvelopeError, Request};
use wslink_core::protocol::{
    hello_secret, HelloReply, CAPABILITY_SUBSCRIPTIONS, HELLO_METHOD, SUBSCRIBE_METHOD,
    UNSUBSCRIBE_METHOD,
};
use wslink_core::{Generation, Message, RpcError, Value};

use crate::context::{CallContext, ConnectionInfo};
use crate::handler::Reply;
use crate::metrics::{add, inc};
use crate::outbound::{CloseRequest, Next};
use crate::policy::Verdict;
use crate::publisher::Publisher;
use crate::server::{ClientSlot, Shared};
use crate::transport::{
    self, FrameLimits, FrameReader, FrameWriter, Incoming, Kind, Negotiated, OutFrame, ReadError,
    Violation,
};

enum Decoder {
    Undecided,
    V1(v1::Decoder),
    V2(v2::Decoder),
}

/// How reading ended, and what the writer should do about it.
enum End {
    /// The peer closed or vanished: nothing more to say to it.
    PeerGone,
    /// Close with this frame.
    Close(CloseRequest),
    /// The server is shutting down.
    Shutdown,
}

fn close(code: u16, reason: impl Into<String>) -> End {
    End::Close(CloseRequest {
        code,
        reason: reason.into(),
        drain: false,
    })
}

/// Close after the frames already queued (e.g. a last error reply).
fn close_after_queue(code: u16, reason: impl Into<String>) -> End {
    End::Close(CloseRequest {
        code,
        reason: reason.into(),
        drain: true,
    })
}

struct Conn {
    shared: Arc<Shared>,
    slot: Arc<ClientSlot>,
    info: Arc<ConnectionInfo>,
    decoder: Decoder,
    calls: Arc<Semaphore>,
    frame_limits: Arc<FrameLimits>,
    auth_failures: usize,
    pre_auth_messages: usize,
    /// When the hello deadline runs out; a custom validator is bounded by it
    /// too, since the read loop does not poll its timers while a frame is
    /// being handled.
    hello_deadline_at: tokio::time::Instant,
}

pub(crate) async fn run<S>(
    shared: Arc<Shared>,
    io: S,
    deflate: Option<Negotiated>,
    info: ConnectionInfo,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::info_span!(
        "wslink_connection",
        client = %info.client_id,
        peer = ?info.peer,
        forwarded_for = tracing::field::Empty
    );
    // Behind a trusted proxy the peer is the proxy: the lines say whom for.
    if let Some(ip) = info
        .client_ip
        .filter(|ip| Some(*ip) != info.peer.map(|p| p.ip().to_canonical()))
    {
        span.record("forwarded_for", tracing::field::display(ip));
    }
    async move {
        let info = Arc::new(info);
        let limits = shared.config.limits;
        let slot = Arc::new(ClientSlot::new(info.client_id.clone(), &limits));
        inc(&shared.metrics.connections_total);
        inc(&shared.metrics.connections_open);
        shared.register(slot.clone());
        for hook in &shared.on_connect {
            if std::panic::catch_unwind(AssertUnwindSafe(|| hook(&info))).is_err() {
                tracing::error!("on_connect hook panicked");
            }
        }
        tracing::debug!("connected");

        // Frame sizes are judged from their headers, before any payload is
        // read (see transport/reader.rs); the limits rise after the hello.
        let frame_limits = Arc::new(FrameLimits::pre_auth(&limits));
        let (reader, frame_writer) = transport::split(io, frame_limits.clone(), deflate);
        let writer =
            tokio::spawn(write_loop(frame_writer, slot.clone(), shared.clone()).in_current_span());
        let mut conn = Conn {
            shared: shared.clone(),
            slot: slot.clone(),
            info: info.clone(),
            decoder: Decoder::Undecided,
            calls: Arc::new(Semaphore::new(limits.max_in_flight_calls)),
            frame_limits,
            auth_failures: 0,
            pre_auth_messages: 0,
            // A relayed connection waits for browsers as long as the relay
            // keeps it; each browser's hello is still required.
            hello_deadline_at: tokio::time::Instant::now()
                + if info.relayed {
                    Duration::from_secs(100 * 365 * 24 * 3600)
                } else {
                    limits.hello_deadline
                },
        };
        if let Some(g) = shared.config.generation {
            conn.choose(g);
        }
        let end = conn.read_loop(reader).await;

        // From here on the client gets no publishes.
        shared.unregister(&info.client_id);
        if slot.is_authenticated() {
            let declared = slot
                .declared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            shared.listeners.left(declared);
        }
        let grace = match &end {
            End::Shutdown => {
                // One grace period covers both the in-flight calls and the
                // flush of what they queued, so the whole connection is done
                // before `Listener::run` stops waiting (grace + 1 s); the
                // close frame always gets a moment of its own.
                let deadline = tokio::time::Instant::now() + shared.config.shutdown_grace;
                let all = limits.max_in_flight_calls as u32;
                let _ = tokio::time::timeout_at(deadline, conn.calls.acquire_many(all)).await;
                slot.outbound.close(CloseRequest {
                    code: 1001,
                    reason: "server shutting down".into(),
                    drain: true,
                });
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_millis(100))
            }
            End::Close(request) => {
                inc(&shared.metrics.protocol_errors);
                tracing::info!(code = request.code, reason = %request.reason, "closing connection");
                slot.outbound.close(request.clone());
                Duration::from_secs(1)
            }
            End::PeerGone => {
                slot.outbound.mark_dead();
                slot.outbound.close(CloseRequest {
                    code: 1000,
                    reason: String::new(),
                    drain: false,
                });
                Duration::from_millis(100)
            }
        };
        let mut writer = writer;
        if tokio::time::timeout(grace, &mut writer).await.is_err() {
            writer.abort();
        }
        for hook in &shared.on_close {
            if std::panic::catch_unwind(AssertUnwindSafe(|| hook(&info.client_id))).is_err() {
                tracing::error!("on_close hook panicked");
            }
        }
        shared
            .metrics
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await
}

impl Conn {
    fn choose(&mut self, generation: Generation) {
        let limits = self.shared.config.limits;
        self.decoder = match generation {
            Generation::V1 => Decoder::V1(v1::Decoder::new(limits.v1())),
            Generation::V2 => Decoder::V2(v2::Decoder::new(limits.v2())),
        };
        self.slot.set_generation(generation);
    }

    /// The relay says the browser on this relayed connection left: the next
    /// one starts from scratch (hello, limits, partial messages, declared
    /// topics), instead of inheriting the last one's authentication.
    fn relay_client_left(&mut self) {
        tracing::debug!("relay: the browser left; the next one must say hello");
        let limits = self.shared.config.limits;
        if self.slot.is_authenticated() {
            self.slot.clear_authenticated();
            let declared = self
                .slot
                .declared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            self.shared.listeners.left(declared);
            self.frame_limits.back_to_pre_auth(&limits);
        }
        if let Some(g) = self.slot.generation() {
            self.choose(g);
        }
        self.auth_failures = 0;
        self.pre_auth_messages = 0;
    }

    fn generation(&self) -> Generation {
        self.slot.generation().unwrap_or(Generation::V2)
    }

    async fn read_loop<S>(&mut self, mut reader: FrameReader<ReadHalf<S>>) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = self.shared.clone();
        let config = &shared.config;
        let hello_deadline = tokio::time::sleep_until(self.hello_deadline_at);
        tokio::pin!(hello_deadline);
        let keepalive = config
            .keepalive
            .unwrap_or(Duration::from_secs(3600 * 24 * 365));
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut last_heard = Instant::now();
        // Since when this loop has been handling frames that had already
        // arrived, without waiting for the socket (see `YIELD_AFTER`).
        let mut busy_since: Option<Instant> = None;
        let mut shutdown = shared.shutdown.subscribe();
        let slot = self.slot.clone();
        loop {
            let result = tokio::select! {
                incoming = reader.next() => {
                    match incoming {
                        Err(ReadError::Gone) => return End::PeerGone,
                        Err(ReadError::Oversized(v)) => return self.oversized(v),
                        Err(ReadError::Protocol(code, reason)) => return close(code, reason),
                        Ok(msg) => {
                            // Boxed: handling a message is the largest state
                            // of this loop; inline, every idle connection's
                            // task would carry it (the task's future: 5,120
                            // bytes inline, 2,552 boxed).
                            let batch_start = *busy_since.get_or_insert_with(Instant::now);
                            let handled = Box::pin(self.on_frame(msg)).await;
                            // Stamped after handling, which may have waited
                            // (reply backpressure, a free call slot): that pause
                            // is ours, not the peer's silence.
                            last_heard = Instant::now();
                            if !reader.has_buffered() {
                                busy_since = None;
                            } else if last_heard.duration_since(batch_start) >= YIELD_AFTER
                                && !slot.outbound.is_empty()
                            {
                                busy_since = None;
                                tokio::task::yield_now().await;
                            }
                            handled
                        }
                    }
                }
                _ = &mut hello_deadline, if !self.slot.is_authenticated() => {
                    let secs = config.limits.hello_deadline.as_secs_f64();
                    Err(close(1008, format!("no successful wslink.hello within {secs} s")))
                }
                _ = ticker.tick(), if config.keepalive.is_some() => {
                    if last_heard.elapsed() > keepalive * 2 {
                        return close(1001, "keepalive timeout: peer silent");
                    }
                    self.slot.outbound.request_ping();
                    Ok(())
                }
                _ = slot.outbound.closing() => {
                    // Someone else (a publisher) decided to close this connection.
                    return match slot.outbound.close_requested() {
                        Some(request) => End::Close(request),
                        None => End::PeerGone,
                    };
                }
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return End::Shutdown,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn on_frame(&mut self, msg: Incoming) -> Result<(), End> {
        let metrics = &self.shared.metrics;
        match msg {
            Incoming::Binary(data) => {
                inc(&metrics.frames_in);
                add(&metrics.bytes_in, data.len());
                self.on_binary(data).await
            }
            Incoming::Text(text) => {
                inc(&metrics.frames_in);
                add(&metrics.bytes_in, text.len());
                self.on_text(text).await
            }
            Incoming::Close => Err(End::PeerGone),
            Incoming::Ping(p) if self.info.relayed && p[..] == *crate::reverse::CLIENT_LEFT => {
                self.relay_client_left();
                Ok(())
            }
            // The reader answered pings; any frame counts as a sign of life.
            Incoming::Ping(_) | Incoming::Pong => Ok(()),
        }
    }

    async fn on_binary(&mut self, data: Bytes) -> Result<(), End> {
        if matches!(self.decoder, Decoder::Undecided) {
            self.choose(Generation::from_first_frame(true));
        }
        let limits = self.shared.config.limits;
        let authenticated = self.slot.is_authenticated();
        let decoded = match &mut self.decoder {
            Decoder::V2(d) => {
                let limit = limits.v2_frame_limit();
                if data.len() > limit {
                    return Err(close(
                        1009,
                        format!(
                            "frame of {} bytes over maxMsgSize; chunk messages to {} bytes",
                            data.len(),
                            limits.max_frame_size
                        ),
                    ));
                }
                match d.push(data) {
                    Ok(decoded) => decoded,
                    Err(CodecError::Envelope(e)) => return self.on_bad_envelope(e),
                    Err(e) => return Err(codec_close(e)),
                }
            }
            Decoder::V1(d) => {
                if !authenticated {
                    return Err(close(1008, "binary frame before wslink.hello"));
                }
                d.push_binary(data).map_err(codec_close)?;
                None
            }
            Decoder::Undecided => None,
        };
        match decoded {
            Some(message) => self.on_message(message).await,
            None => Ok(()),
        }
    }

    async fn on_text(&mut self, text: String) -> Result<(), End> {
        if matches!(self.decoder, Decoder::Undecided) {
            self.choose(Generation::from_first_frame(false));
        }
        let limits = self.shared.config.limits;
        let authenticated = self.slot.is_authenticated();
        match &mut self.decoder {
            Decoder::V1(d) => {
                if !authenticated && text.len() > limits.pre_auth_max_message_size {
                    return Err(close(
                        1009,
                        format!(
                            "message of {} bytes before wslink.hello; the limit is {}",
                            text.len(),
                            limits.pre_auth_max_message_size
                        ),
                    ));
                }
                // serde_json stops at 127 levels by itself: refuse before it
                // does, in our terms, and at max_depth if that is lower.
                let depth = limits.max_depth.min(MAX_JSON_DEPTH);
                if v1::json_deeper_than(&text, depth) {
                    return Err(close(
                        1008,
                        format!("JSON nesting deeper than {depth} levels"),
                    ));
                }
                match d.push_text(&text) {
                    Ok(Some(message)) => self.on_message(message).await,
                    Ok(None) => Ok(()),
                    Err(CodecError::Envelope(e)) => self.on_bad_envelope(e),
                    Err(e) => Err(codec_close(e)),
                }
            }
            _ => Err(close(
                1003,
                "text frame on a wslink 2.x connection (2.x sends binary frames only)",
            )),
        }
    }

    fn on_bad_envelope(&mut self, e: EnvelopeError) -> Result<(), End> {
        match e.id() {
            // Well-formed enough to answer: say what is wrong and go on.
            Some(id) => {
                let id = id.to_owned();
                let error = RpcError::exception("", format!("invalid request: {e}"), String::new());
                self.reply(Message::Error { id, error });
                Ok(())
            }
            None => Err(close(1008, format!("not a wslink message: {e}"))),
        }
    }

    async fn on_message(&mut self, message: Message) -> Result<(), End> {
        match message {
            Message::Request(req) => self.on_request(req).await,
            Message::Result { id, .. } | Message::Error { id, .. } => {
                // Nothing to answer; before hello it counts as a message
                // all the same (a publish-shaped flood gets closed too).
                if !self.slot.is_authenticated() {
                    self.pre_auth_messages += 1;
                    if self.pre_auth_messages >= self.shared.config.limits.max_pre_auth_messages {
                        return Err(close_after_queue(
                            1008,
                            "too many messages before wslink.hello",
                        ));
                    }
                }
                tracing::debug!(%id, "ignoring a reply sent by the client");
                Ok(())
            }
            Message::AttachmentHeader { .. } => Ok(()),
        }
    }

    fn reply(&self, message: Message) {
        let frames = encode_reply(&self.shared, self.generation(), message);
        self.slot.outbound.push_reply(frames);
    }

    async fn on_request(&mut self, req: Request) -> Result<(), End> {
        if req.id.split(':').next() == Some("system") {
            // Before hello, only a hello is free: any other system request
            // (a declaration, an unknown method) counts like a call would.
            if req.method != HELLO_METHOD && !self.slot.is_authenticated() {
                self.pre_auth_messages += 1;
                if self.pre_auth_messages >= self.shared.config.limits.max_pre_auth_messages {
                    self.reply(Message::Error {
                        id: req.id,
                        error: RpcError::unauthorized(),
                    });
                    return Err(close_after_queue(
                        1008,
                        "too many messages before wslink.hello",
                    ));
                }
            }
            return self.on_system(req).await;
        }
        if !self.slot.is_authenticated() {
            self.pre_auth_messages += 1;
            self.reply(Message::Error {
                id: req.id,
                error: RpcError::unauthorized(),
            });
            if self.pre_auth_messages >= self.shared.config.limits.max_pre_auth_messages {
                return Err(close_after_queue(
                    1008,
                    "too many messages before wslink.hello",
                ));
            }
            return Ok(());
        }
        // Backpressure: while this client leaves its replies unread, it is
        // not read either, so the replies queued for it stay bounded.
        if self.slot.outbound.replies_over_bound() {
            let mut shutdown = self.shared.shutdown.subscribe();
            tokio::select! {
                () = self.slot.outbound.reply_room() => {}
                // Answer it anyway: shutdown drains what it can.
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
        let local = self.shared.methods.get(&req.method).cloned();
        // Not served here: a worker behind the broker may serve it.
        let Some(handler) = local.or_else(|| self.shared.remote_method(&req.method)) else {
            inc(&self.shared.metrics.call_errors);
            self.reply(Message::Error {
                error: RpcError::method_not_found(&req.method),
                id: req.id,
            });
            return Ok(());
        };
        // Waiting here stops reading this connection: backpressure, not loss.
        let permit = self
            .calls
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| End::PeerGone)?;
        inc(&self.shared.metrics.calls);
        self.shared.set_last_active(&self.info.client_id);
        let method: Arc<str> = Arc::from(req.method.as_str());
        let ctx = CallContext {
            connection: self.info.clone(),
            method: method.clone(),
            publisher: Publisher {
                shared: self.shared.clone(),
            },
        };
        let shared = self.shared.clone();
        let slot = self.slot.clone();
        let generation = self.generation();
        let id = req.id;
        let span = tracing::debug_span!("wslink_call", %method, %id);
        let mut call = AssertUnwindSafe(handler(ctx, req.args, req.kwargs)).catch_unwind();
        let finish = move |outcome: CallOutcome| {
            let max_frame = shared.config.limits.max_frame_size;
            let frames = match outcome {
                Ok(Ok(reply)) => match reply.encode(&id, generation, max_frame, &shared.keys) {
                    Ok(frames) => frames,
                    Err(e) => {
                        tracing::warn!(error = %e, "result cannot be serialized");
                        inc(&shared.metrics.call_errors);
                        let error = RpcError::result_not_serializable(&method);
                        encode_reply(&shared, generation, Message::Error { id, error })
                    }
                },
                Ok(Err(error)) => {
                    inc(&shared.metrics.call_errors);
                    encode_reply(&shared, generation, Message::Error { id, error })
                }
                Err(panic) => {
                    inc(&shared.metrics.call_errors);
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(panic = %text, "handler panicked");
                    let error = RpcError::exception(
                        &method,
                        format!("handler panicked: {text}"),
                        String::new(),
                    );
                    encode_reply(&shared, generation, Message::Error { id, error })
                }
            };
            slot.outbound.push_reply(frames);
            drop(permit);
        };
        // A handler that finishes at its first poll (most do: no await on
        // anything slow) is answered right here, without a task spawned, a
        // worker woken and a context switched per call. One that waits goes
        // on in its own task, so calls still run concurrently.
        let first = span.in_scope(|| (&mut call).now_or_never());
        match first {
            Some(outcome) => span.in_scope(|| finish(outcome)),
            None => {
                tokio::spawn(async move { finish(call.await) }.instrument(span));
            }
        }
        Ok(())
    }

    /// `wslink.subscribe` / `wslink.unsubscribe` (our extension): from the
    /// first declaration on, the client gets only the topics it declared.
    fn on_declaration(&mut self, req: Request) {
        let subscribe = req.method == SUBSCRIBE_METHOD;
        let refuse = |message: String| Message::Error {
            id: req.id.clone(),
            error: RpcError::new(wslink_core::protocol::codes::EXCEPTION_ERROR, message),
        };
        if !self.slot.is_authenticated() {
            self.reply(Message::Error {
                id: req.id,
                error: RpcError::unauthorized(),
            });
            return;
        }
        let topic = match req.args.first().and_then(Value::as_str) {
            Some(t) => t,
            None => {
                let m = format!("{}: args must be [topic], a string", req.method);
                self.reply(refuse(m));
                return;
            }
        };
        if let Err(e) = wslink_core::ids::validate_topic(topic) {
            self.reply(refuse(format!("{}: {e}", req.method)));
            return;
        }
        let max = self.shared.config.limits.max_subscriptions;
        let outcome = {
            let mut declared = self.slot.declared.lock().unwrap_or_else(|e| e.into_inner());
            let first = declared.is_none();
            let topics = declared.get_or_insert_with(Default::default);
            if subscribe && !topics.contains(topic) && topics.len() >= max {
                Err(format!(
                    "{SUBSCRIBE_METHOD}: too many subscriptions on this connection (limit {max})"
                ))
            } else {
                if first {
                    self.shared.listeners.started_declaring();
                }
                if subscribe {
                    let topic: Arc<str> = Arc::from(topic);
                    if topics.insert(topic.clone()) {
                        self.shared.listeners.subscribed(&topic);
                    }
                } else if topics.remove(topic) {
                    self.shared.listeners.unsubscribed(topic);
                }
                Ok(())
            }
        };
        match outcome {
            Ok(()) => self.reply(Message::Result {
                id: req.id,
                result: Value::Bool(true),
            }),
            Err(m) => self.reply(refuse(m)),
        }
    }

    async fn on_system(&mut self, req: Request) -> Result<(), End> {
        if req.method == SUBSCRIBE_METHOD || req.method == UNSUBSCRIBE_METHOD {
            self.on_declaration(req);
            return Ok(());
        }
        if req.method != HELLO_METHOD {
            self.reply(Message::Error {
                id: req.id,
                error: RpcError::new(
                    wslink_core::protocol::codes::METHOD_NOT_FOUND,
                    wslink_core::protocol::messages::UNKNOWN_SYSTEM_METHOD,
                ),
            });
            return Ok(());
        }
        let peer_ip = self.info.client_ip;
        // An address banned since this connection opened (by its other
        // connections) gets no more guesses on this one either.
        if let Some(ip) = peer_ip {
            if let Verdict::Banned(_) = self.shared.throttle.check(ip) {
                self.reply(Message::Error {
                    id: req.id,
                    error: RpcError::authentication_failed(),
                });
                return Err(close_after_queue(
                    1008,
                    "too many failed wslink.hello attempts from this address",
                ));
            }
        }
        // The secret is never logged, not even on failure.
        let accepted = match hello_secret(&req) {
            None => false,
            Some(secret) => match &self.shared.validator {
                Some(validate) => {
                    let verdict = validate(secret.to_owned(), self.info.client_id.to_string());
                    // A repeated hello after authentication gets a deadline of its own.
                    let deadline = if self.slot.is_authenticated() {
                        tokio::time::Instant::now() + self.shared.config.limits.hello_deadline
                    } else {
                        self.hello_deadline_at
                    };
                    match tokio::time::timeout_at(deadline, verdict).await {
                        Ok(accepted) => accepted,
                        Err(_) => {
                            let secs = self.shared.config.limits.hello_deadline.as_secs_f64();
                            tracing::warn!(
                                "hello validator did not answer within the hello deadline"
                            );
                            return Err(close(
                                1008,
                                format!("no successful wslink.hello within {secs} s (the validator did not answer)"),
                            ));
                        }
                    }
                }
                None => constant_time_eq(secret.as_bytes(), self.shared.config.secret.as_bytes()),
            },
        };
        if !accepted {
            inc(&self.shared.metrics.auth_failures);
            self.auth_failures += 1;
            tracing::info!(failures = self.auth_failures, "hello refused");
            self.reply(Message::Error {
                id: req.id,
                error: RpcError::authentication_failed(),
            });
            if let Some(ban) = peer_ip.and_then(|ip| self.shared.throttle.failed(ip)) {
                tracing::warn!(
                    client = ?self.info.client_ip,
                    peer = ?self.info.peer,
                    ban_secs = ban.as_secs_f64(),
                    "address banned: too many failed wslink.hello attempts"
                );
                return Err(close_after_queue(
                    1008,
                    "too many failed wslink.hello attempts from this address",
                ));
            }
            if self.auth_failures >= self.shared.config.limits.max_auth_failures {
                return Err(close_after_queue(
                    1008,
                    "too many failed wslink.hello attempts",
                ));
            }
            return Ok(());
        }
        if let Some(ip) = peer_ip {
            self.shared.throttle.succeeded(ip);
        }
        if !self.slot.is_authenticated() {
            self.shared.listeners.joined();
        }
        self.slot.set_authenticated();
        if let Decoder::V2(d) = &mut self.decoder {
            d.set_authenticated(true);
        }
        let generation = self.generation();
        self.frame_limits
            .authenticated(generation, &self.shared.config.limits);
        let hello = HelloReply {
            client_id: self.info.client_id.to_string(),
            // 1.x servers do not announce a size; 1.x clients never chunk.
            max_msg_size: (generation == Generation::V2)
                .then_some(self.shared.config.limits.max_frame_size as u64),
            capabilities: vec![CAPABILITY_SUBSCRIPTIONS.to_owned()],
        };
        tracing::debug!(%generation, "hello accepted");
        self.reply(Message::Result {
            id: req.id,
            result: hello.to_value(),
        });
        Ok(())
    }
}

/// Deepest 1.x JSON serde_json parses (its recursion limit, fixed).
const MAX_JSON_DEPTH: usize = 127;

impl Conn {
    /// The close for a message over the limit in force, refused from its
    /// frame header (or, compressed, when inflating reached the limit).
    fn oversized(&self, v: Violation) -> End {
        let Violation { kind, len, limit } = v;
        if kind == Kind::Text && self.slot.generation() == Some(Generation::V2) {
            return close(
                1003,
                "text frame on a wslink 2.x connection (2.x sends binary frames only)",
            );
        }
        let limits = &self.shared.config.limits;
        let reason = if !self.slot.is_authenticated() {
            format!(
                "frame of {len} bytes before wslink.hello; the limit is {limit} (a {}-byte message)",
                limits.pre_auth_max_message_size
            )
        } else {
            match (self.generation(), kind) {
                (Generation::V2, _) => format!(
                    "frame of {len} bytes over maxMsgSize; chunk messages to {} bytes",
                    limits.max_frame_size
                ),
                (Generation::V1, Kind::Text) => {
                    format!("text frame of {len} bytes is over the limit of {limit}")
                }
                (Generation::V1, Kind::Binary) => {
                    format!("attachment frame of {len} bytes is over the limit of {limit}")
                }
            }
        };
        close(1009, reason)
    }
}

/// What a handler's future ends with: its reply or error, or its panic.
type CallOutcome = Result<Result<Box<dyn Reply>, RpcError>, Box<dyn std::any::Any + Send>>;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare every byte whatever the first difference, so the time taken
    // says nothing about how much of a guess was right.
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= (*x ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

/// Encodes a reply; an error whose `data` cannot be encoded goes without it.
fn encode_reply(shared: &Shared, generation: Generation, message: Message) -> Vec<OutFrame> {
    let encode = |m: &Message| -> Result<Vec<OutFrame>, CodecError> {
        Ok(match generation {
            Generation::V2 => v2::encode_segmented(m, shared.config.limits.max_frame_size)?
                .map(OutFrame::from)
                .collect(),
            Generation::V1 => v1::encode(m, &shared.keys)?
                .into_iter()
                .map(OutFrame::from)
                .collect(),
        })
    };
    match encode(&message) {
        Ok(frames) => frames,
        Err(e) => {
            tracing::warn!(error = %e, "reply cannot be encoded; sending it without data");
            let stripped = match message {
                Message::Error { id, mut error } => {
                    error.data = None;
                    Message::Error { id, error }
                }
                Message::Result { id, .. } => Message::Error {
                    id,
                    error: RpcError::result_not_serializable(""),
                },
                other => other,
            };
            encode(&stripped).unwrap_or_default()
        }
    }
}

fn codec_close(e: CodecError) -> End {
    let code = if e.is_size_limit() { 1009 } else { 1008 };
    close(code, e.to_string())
}

/// Close reasons travel in a control frame: 123 bytes at most.
fn truncate_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_owned();
    }
    let mut end = 120;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &reason[..end])
}

/// How long the reader may go on handling frames that had already arrived
/// (slow handlers, answered in place, with more calls queued behind them)
/// before it lets this worker run the writer. The writer's task, woken from
/// this worker, waits in its slot that other workers do not steal from, so
/// without this the replies would wait until the whole batch was handled.
const YIELD_AFTER: Duration = Duration::from_millis(1);

async fn write_loop<S>(mut out: FrameWriter<S>, slot: Arc<ClientSlot>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = &shared.metrics;
    loop {
        let next = tokio::select! {
            biased;
            next = slot.outbound.next() => next,
            // Pongs and close replies the reader queued.
            () = out.control_pending() => {
                if out.flush().await.is_err() {
                    slot.outbound.mark_dead();
                    return;
                }
                continue;
            }
        };
        let sent = match next {
            Next::Frames(frames) => {
                let mut result = Ok(());
                for frame in frames.iter() {
                    inc(&metrics.frames_out);
                    add(&metrics.bytes_out, frame.len());
                    // Buffered (small) or written without a copy (large);
                    // consecutive messages share one flush.
                    result = out.data(frame).await;
                    if result.is_err() {
                        break;
                    }
                }
                match result {
                    Ok(()) if slot.outbound.is_empty() => {
                        // Let the calls that are ready to answer (this
                        // connection's, on this worker) queue their replies
                        // first, so that one write carries them all.
                        tokio::task::yield_now().await;
                        if slot.outbound.is_empty() {
                            out.flush().await
                        } else {
                            Ok(())
                        }
                    }
                    other => other,
                }
            }
            Next::Ping => {
                out.ping();
                if slot.outbound.is_empty() {
                    out.flush().await
                } else {
                    Ok(())
                }
            }
            Next::Close(request) => {
                let _ = out
                    .close(request.code, &truncate_reason(&request.reason))
                    .await;
                slot.outbound.mark_dead();
                return;
            }
        };
        if sent.is_err() {
            slot.outbound.mark_dead();
            return;
        }
    }
}
