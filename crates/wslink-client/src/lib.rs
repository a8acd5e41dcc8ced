//! # wslink-client
//!
//! An async client for [wslink](https://github.com/Kitware/wslink) servers:
//! this project's server, or Kitware's Python server (2.x, or 1.x with
//! [`Generation::V1`]). It says hello with a secret, then makes calls, many at
//! once on one connection, receives publishes through subscriptions, and
//! moves binary data both ways.
//!
//! ```no_run
//! use wslink_client::{Client, Value};
//!
//! # async fn demo() -> Result<(), wslink_client::Error> {
//! let client = Client::connect("ws://127.0.0.1:8080/ws", "wslink-secret").await?;
//!
//! // Dynamic values...
//! let sum = client.call("math.add", vec![Value::from(2), Value::from(3)], vec![]).await?;
//! assert_eq!(sum.as_i64(), Some(5));
//!
//! // ...or any serde types: arguments serialize as a sequence.
//! let sum: f64 = client.call_typed("math.add", (0.5, 0.25)).await?;
//! assert_eq!(sum, 0.75);
//!
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! ## How it works
//!
//! [`ClientBuilder::connect`] opens the WebSocket, sends `wslink.hello` and
//! waits for the reply (its client id and, in 2.x, the server's largest
//! accepted frame, `maxMsgSize`). Then a background task owns the socket:
//! calls encode their message, hand the frames to the task through a bounded
//! channel and wait for the reply routed back by id. Messages larger than
//! `maxMsgSize` are cut into chunks (2.x); binary values travel as msgpack
//! `bin` (2.x) or as attachments (1.x).
//!
//! The client reads WebSocket frames itself, into spare capacity (nothing
//! is zero-filled). A large message (64 KiB or more) lands in a buffer
//! taken from a small process-wide pool and goes back to it when the last
//! [`bytes::Bytes`] slice of the message is dropped; the pool keeps at most
//! 8 buffers of at most 4 MiB each. The 2.x chunks of a message that
//! arrives in order are read straight into one buffer, without a
//! reassembly copy.
//!
//! ## Facing a hostile or broken server
//!
//! - Reassembly of chunked messages and 1.x attachments is bounded
//!   ([`ClientBuilder::max_message_size`]); a server going over a bound is a
//!   protocol error.
//! - Replies to ids nobody waits for (unknown, or already timed out) are
//!   ignored and counted ([`Client::stats`]).
//! - A message that cannot be decoded fails every pending call with
//!   [`Error::Protocol`] and closes the connection (close code 1002, or 1009
//!   for a size limit). Nothing the server sends makes the client panic.
//! - Partial 2.x messages are bounded in number
//!   ([`ClientBuilder::max_pending_messages`], 64) and bytes
//!   ([`ClientBuilder::max_pending_bytes`], a little over
//!   [`ClientBuilder::max_message_size`]); memory follows the bytes that
//!   arrived, never the size a chunk or frame header declares (a message
//!   being reassembled reserves at most 16 times its first chunk). Overlapping, duplicate
//!   and past-the-end chunks are protocol errors. 1.x attachment headers
//!   waiting for their bytes are bounded too
//!   ([`ClientBuilder::max_pending_attachments`], 1024 keys).
//! - Nesting deeper than 128 arrays/maps ([`ClientBuilder::max_depth`]; 127
//!   in 1.x JSON) is a protocol error, so no message can overflow the stack.
//! - Subscribers that do not read lose their oldest messages, never the
//!   connection's memory: each [`Subscription`] buffers at most
//!   [`ClientBuilder::subscription_buffer`] messages and
//!   [`ClientBuilder::subscription_buffer_bytes`] bytes.
//! - Outgoing messages are cut into frames as they are written, so a server
//!   announcing a tiny `maxMsgSize` costs frames, not memory; a call that
//!   times out (or whose future is dropped) stops sending the frames of its
//!   message not yet written; and [`Client::close`] returns even when the
//!   server has stopped reading.
//! - A server that never answers the hello fails [`ClientBuilder::connect`]
//!   with [`Error::Timeout`] ([`ClientBuilder::connect_timeout`]); a server
//!   that closes (or vanishes) fails every pending call with
//!   [`Error::Closed`].

#![warn(missing_docs)]

mod connection;
mod error;
mod subscription;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wslink_core::chunking::UnchunkLimits;
use wslink_core::codec::{v1, v2};
use wslink_core::protocol::{self, HelloReply};
use wslink_core::Request;

pub use error::Error;
pub use subscription::Subscription;
pub use wslink_core::{from_value, to_value, Generation, Map, Value};

use connection::{Decoder, Encoder, Outgoing, ReplyError, Shared};
use error::Ended;
use subscription::{lock, SubQueue};

/// Default of [`ClientBuilder::call_timeout`]: 60 s.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`ClientBuilder::connect_timeout`]: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ClientBuilder::subscription_buffer`]: 256 messages.
pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = 256;
/// Default of [`ClientBuilder::subscription_buffer_bytes`]: 64 MiB.
pub const DEFAULT_SUBSCRIPTION_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// Default of [`ClientBuilder::max_message_size`]: 256 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;
/// Default of [`ClientBuilder::max_pending_messages`]: 64 partial 2.x messages.
pub const DEFAULT_MAX_PENDING_MESSAGES: usize = wslink_core::chunking::DEFAULT_MAX_PENDING_MESSAGES;
/// Default of [`ClientBuilder::max_depth`]: 128 levels of arrays and maps.
pub const DEFAULT_MAX_DEPTH: usize = wslink_core::msgpack::DEFAULT_MAX_DEPTH;
/// Default of [`ClientBuilder::max_pending_attachments`]: 1024 keys.
pub const DEFAULT_MAX_PENDING_ATTACHMENTS: usize = wslink_core::attachments::DEFAULT_MAX_ANNOUNCED;
/// What partial 2.x messages may hold beyond [`ClientBuilder::max_message_size`]
/// unless [`ClientBuilder::max_pending_bytes`] says otherwise: room for the
/// reassembler's bookkeeping, so that a message of the largest size fits.
const PENDING_BYTES_SLACK: usize = 1 << 20;
/// serde_json refuses JSON nested deeper than this by itself.
pub(crate) const MAX_JSON_DEPTH: usize = 127;
/// Messages handed to the connection task and not yet written, at most.
const COMMAND_QUEUE: usize = 64;

/// Limits on what the server sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    max_message_size: usize,
    max_pending_messages: usize,
    /// `None`: [`Limits::max_message_size`] plus [`PENDING_BYTES_SLACK`].
    max_pending_bytes: Option<usize>,
    max_depth: usize,
    max_pending_attachments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_pending_messages: DEFAULT_MAX_PENDING_MESSAGES,
            max_pending_bytes: None,
            max_depth: DEFAULT_MAX_DEPTH,
            max_pending_attachments: DEFAULT_MAX_PENDING_ATTACHMENTS,
        }
    }
}

impl Limits {
    fn v2(&self) -> v2::DecodeLimits {
        v2::DecodeLimits {
            unchunk: UnchunkLimits {
                max_message_size: self.max_message_size,
                max_pending_messages: self.max_pending_messages,
                // A message being reassembled holds a little more than its
                // size (see `UnchunkLimits::max_pending_bytes`).
                max_pending_bytes: self
                    .max_pending_bytes
                    .unwrap_or(self.max_message_size.saturating_add(PENDING_BYTES_SLACK)),
                // The client reads its own server's replies: the decoder is
                // marked authenticated before the first frame, so the
                // pre-authentication size never applies.
                ..UnchunkLimits::default()
            },
            max_depth: self.max_depth,
        }
    }

    fn v1(&self) -> v1::DecodeLimits {
        let mut limits = v1::DecodeLimits {
            max_text_size: self.max_message_size,
            ..v1::DecodeLimits::default()
        };
        limits.attachments.max_held_bytes = self.max_message_size;
        limits.attachments.max_announced = self.max_pending_attachments;
        limits
    }

    /// The nesting depth 1.x texts are checked against before parsing, when
    /// it is below what serde_json enforces by itself.
    pub(crate) fn json_depth(&self) -> Option<usize> {
        (self.max_depth < MAX_JSON_DEPTH).then_some(self.max_depth)
    }

    fn websocket(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

/// What the connection has seen and set aside, for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Replies whose id no call was waiting for (unknown ids, calls that
    /// timed out, malformed ids).
    pub unknown_replies: u64,
    /// Publishes on topics nobody here subscribed to (wslink servers send
    /// every publish to every client, so these are normal).
    pub unrouted_publishes: u64,
    /// Publishes dropped because a subscriber's buffer was full (summed over
    /// subscriptions, including past ones).
    pub dropped_publishes: u64,
    /// Messages a server should not send to a client (requests), ignored.
    pub unexpected_messages: u64,
}

/// Configures and opens a connection. Made by [`Client::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use wslink_client::{Client, Generation};
///
/// # async fn demo() -> Result<(), wslink_client::Error> {
/// let client = Client::builder("ws://127.0.0.1:8080/ws")
///     .secret("my-secret")
///     .generation(Generation::V1) // a wslink 1.x server
///     .call_timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .connect() is awaited"]
pub struct ClientBuilder {
    url: String,
    secret: String,
    generation: Generation,
    call_timeout: Duration,
    connect_timeout: Duration,
    subscription_buffer: usize,
    subscription_buffer_bytes: usize,
    limits: Limits,
    declare_subscriptions: bool,
    #[cfg(feature = "tls")]
    tls: tls::TlsSettings,
}

impl ClientBuilder {
    /// The secret for `wslink.hello` (default `wslink-secret`, wslink's own).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// The wire generation: [`Generation::V2`] (default, wslink 2.x: msgpack,
    /// chunked binary frames) or [`Generation::V1`] (wslink 1.x: JSON text
    /// frames with binary attachments).
    pub fn generation(mut self, generation: Generation) -> Self {
        self.generation = generation;
        self
    }

    /// The time limit of every call, unless given per call with
    /// [`Client::call_with_timeout`] (default [`DEFAULT_CALL_TIMEOUT`]).
    /// `Duration::MAX` waits forever.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The time limit for connecting and saying hello (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many messages each [`Subscription`] buffers before it drops the
    /// oldest (default [`DEFAULT_SUBSCRIPTION_BUFFER`], at least 1).
    pub fn subscription_buffer(mut self, messages: usize) -> Self {
        self.subscription_buffer = messages.max(1);
        self
    }

    /// How many bytes of messages each [`Subscription`] buffers before it
    /// drops the oldest (default [`DEFAULT_SUBSCRIPTION_BUFFER_BYTES`]).
    ///
    /// A message is counted as the bytes of its strings and binaries plus
    /// a few dozen bytes per value (see [`Subscription::queued_bytes`]). The
    /// newest message is always kept, even alone over the budget (one
    /// message is bounded by
    /// [`max_message_size`](ClientBuilder::max_message_size) on the wire),
    /// so a subscription holds either at most this many bytes or its single
    /// newest message, whatever the server publishes and however slowly the
    /// application reads.
    pub fn subscription_buffer_bytes(mut self, bytes: usize) -> Self {
        self.subscription_buffer_bytes = bytes;
        self
    }

    /// Whether to tell a server that offers it (this project's) which
    /// topics this client subscribes to, so it sends only those (on by
    /// default). Off, the client receives every topic, as from Kitware's
    /// servers, and filters them itself.
    ///
    /// ```
    /// let builder = wslink_client::Client::builder("ws://127.0.0.1:8080/ws")
    ///     .declare_subscriptions(false); // e.g. to record every topic
    /// # drop(builder);
    /// ```
    pub fn declare_subscriptions(mut self, declare: bool) -> Self {
        self.declare_subscriptions = declare;
        self
    }

    /// The largest message accepted from the server, in bytes: a WebSocket
    /// frame, a reassembled 2.x message, a 1.x JSON text or the attachments
    /// held for one (default [`DEFAULT_MAX_MESSAGE_SIZE`]).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.limits.max_message_size = bytes;
        self
    }

    /// How many 2.x messages may be partly received at once (default
    /// [`DEFAULT_MAX_PENDING_MESSAGES`]).
    ///
    /// wslink servers send each message's chunks in order, one message at a
    /// time per sending task, so a handful is normal; a server that starts
    /// more messages than this without finishing them is a protocol error
    /// (the connection closes with code 1002).
    ///
    /// ```no_run
    /// use wslink_client::Client;
    ///
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let client = Client::builder("ws://127.0.0.1:8080/ws")
    ///     .max_pending_messages(8)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn max_pending_messages(mut self, messages: usize) -> Self {
        self.limits.max_pending_messages = messages;
        self
    }

    /// How many bytes the partly received 2.x messages may hold, all
    /// together (default: [`max_message_size`](ClientBuilder::max_message_size)
    /// plus 1 MiB).
    ///
    /// Memory follows the chunks that arrived, never the size a chunk
    /// header declares. A message whose chunks come in order needs its size
    /// less its last chunk, plus a little bookkeeping per run of bytes
    /// ([`wslink_core::chunking::SEGMENT_OVERHEAD`]); so keep this at least
    /// [`max_message_size`](ClientBuilder::max_message_size) to let the
    /// largest messages through. Going over it is a protocol error (the
    /// connection closes with code 1009).
    ///
    /// ```no_run
    /// use wslink_client::Client;
    ///
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let client = Client::builder("ws://127.0.0.1:8080/ws")
    ///     .max_message_size(16 << 20)
    ///     .max_pending_bytes(32 << 20) // two large messages at once
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn max_pending_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_pending_bytes = Some(bytes);
        self
    }

    /// How deep arrays and maps may nest in a message from the server,
    /// counting the message's own map as the first level (default
    /// [`DEFAULT_MAX_DEPTH`]).
    ///
    /// Deeper is a protocol error (the connection closes with code 1002).
    /// In 1.x the JSON parser stops at 127 levels by itself, so a value
    /// above 127 means 127 there.
    ///
    /// ```no_run
    /// use wslink_client::Client;
    ///
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let client = Client::builder("ws://127.0.0.1:8080/ws")
    ///     .max_depth(32)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn max_depth(mut self, levels: usize) -> Self {
        self.limits.max_depth = levels;
        self
    }

    /// wslink 1.x: how many attachment keys the server may announce (in
    /// attachment headers) before sending their bytes (default
    /// [`DEFAULT_MAX_PENDING_ATTACHMENTS`]).
    ///
    /// Each header announces one key and its binary frame follows, so a
    /// few are normal. One more is a protocol error (the connection closes
    /// with code 1002). The bytes that arrived and wait for their message
    /// are bounded by [`max_message_size`](ClientBuilder::max_message_size).
    ///
    /// ```no_run
    /// use wslink_client::{Client, Generation};
    ///
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let client = Client::builder("ws://127.0.0.1:8080/ws")
    ///     .generation(Generation::V1)
    ///     .max_pending_attachments(64)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn max_pending_attachments(mut self, keys: usize) -> Self {
        self.limits.max_pending_attachments = keys;
        self
    }

    /// Also trusts these certificates (DER) for wss:// URLs: a private CA,
    /// or a self-signed server certificate. Added to the webpki roots
    /// unless [`webpki_roots(false)`](Self::webpki_roots). Feature `tls`.
    ///
    /// ```no_run
    /// use wslink_client::tls::rustls::pki_types::{pem::PemObject, CertificateDer};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = CertificateDer::from_pem_file("/etc/wslink/ca.pem")?;
    /// let client = wslink_client::Client::builder("wss://viz.internal:8443/ws")
    ///     .root_certificates([ca])
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn root_certificates(
        mut self,
        certs: impl IntoIterator<Item = rustls_pki_types::CertificateDer<'static>>,
    ) -> Self {
        self.tls.roots.extend(certs);
        self
    }

    /// Also trusts every certificate of this PEM file for wss:// URLs (a
    /// CA bundle, or the server's self-signed certificate). The file is
    /// read when connecting; a missing or empty file fails
    /// [`connect`](Self::connect) with [`Error::CaFile`] naming it.
    /// Feature `tls`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let client = wslink_client::Client::builder("wss://127.0.0.1:8443/ws")
    ///     .ca_file("adhoc-cert.pem")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_files.push(path.into());
        self
    }

    /// Whether wss:// trusts the public CAs of the webpki (Mozilla) set
    /// built into the client; on by default. Off, only the certificates
    /// given to [`root_certificates`](Self::root_certificates) and
    /// [`ca_file`](Self::ca_file) are trusted. Feature `tls`.
    ///
    /// ```
    /// let builder = wslink_client::Client::builder("wss://127.0.0.1:8443/ws")
    ///     .webpki_roots(false)
    ///     .ca_file("private-ca.pem");
    /// # drop(builder);
    /// ```
    #[cfg(feature = "tls")]
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.tls.webpki_roots = enabled;
        self
    }

    /// Accepts any server certificate on wss://, for any name: no CA, no
    /// name, no expiry check. Only for reaching a test server whose
    /// certificate cannot be verified at all, such as Kitware's
    /// `--ssl adhoc` (its name field is malformed); anyone on the path can
    /// then read and change the traffic. Prefer [`ca_file`](Self::ca_file).
    /// Feature `tls`.
    ///
    /// ```
    /// let builder = wslink_client::Client::builder("wss://127.0.0.1:8443/ws")
    ///     .danger_accept_invalid_certs(true);
    /// # drop(builder);
    /// ```
    #[cfg(feature = "tls")]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.tls.accept_invalid_certs = accept;
        self
    }

    /// Uses this rustls configuration for wss:// as it is (client
    /// certificates, a custom verifier, pinned keys...), instead of the
    /// one made from the roots above. Feature `tls`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use wslink_client::tls::rustls;
    ///
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    /// let config = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()
    /// .unwrap()
    /// .with_root_certificates(roots)
    /// .with_no_client_auth();
    /// let builder = wslink_client::Client::builder("wss://example.org/ws")
    ///     .tls_config(Arc::new(config));
    /// # drop(builder);
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self
    }

    /// Connects, says hello and starts the connection task.
    ///
    /// Fails with [`Error::InvalidUrl`], [`Error::Connect`] (refused, not a
    /// WebSocket endpoint, ...), [`Error::Auth`] (wrong secret),
    /// [`Error::Timeout`] (no hello reply in time), or [`Error::Closed`] /
    /// [`Error::Protocol`] if the server hangs up or talks nonsense.
    pub async fn connect(self) -> Result<Client, Error> {
        let timeout = self.connect_timeout;
        match tokio::time::timeout(timeout, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                method: protocol::HELLO_METHOD.to_owned(),
                after: timeout,
            }),
        }
    }

    async fn connect_inner(self) -> Result<Client, Error> {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let target = transport::Target {
            url: &self.url,
            config: self.limits.websocket(),
            limits: transport::ReadLimits {
                max_message_size: self.limits.max_message_size,
                max_pending_bytes: self.limits.v2().unchunk.max_pending_bytes,
                assemble: self.generation == Generation::V2,
            },
            // Without TLS support, wss:// fails as an invalid URL.
            #[cfg(feature = "tls")]
            tls: if is_wss(&self.url) {
                Some(self.tls.client_config()?)
            } else {
                None
            },
        };
        let connected = transport::connect(target).await;
        let (mut reader, mut writer) = match connected {
            Ok(halves) => halves,
            Err(e @ (WsError::Url(_) | WsError::HttpFormat(_))) => {
                return Err(Error::InvalidUrl {
                    url: self.url,
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                return Err(Error::Connect {
                    url: self.url,
                    source: Box::new(e),
                })
            }
        };

        // Hello, before the task exists: nothing else can be sent yet.
        let hello = wslink_core::Message::Request(protocol::hello_request(&self.secret));
        let pre_hello = match self.generation {
            Generation::V2 => Encoder::V2 {
                max_frame: protocol::PRE_HELLO_MAX_MSG_SIZE,
            },
            Generation::V1 => Encoder::V1,
        };
        let frames = pre_hello.encode(&hello).map_err(|e| Error::InvalidArgs {
            method: protocol::HELLO_METHOD.into(),
            reason: e.to_string(),
        })?;
        connection::send_frames(&mut writer, frames)
            .await
            .map_err(|e| Error::Closed {
                detail: format!("sending the hello failed: {e}"),
            })?;
        let mut decoder = Decoder::new(self.generation, &self.limits);
        let reply = loop {
            let message = connection::read_message(&mut reader, None, &mut decoder)
                .await
                .map_err(|e| match e {
                    Ended::Closed(detail) => Error::Closed {
                        detail: format!("{detail} before answering the hello"),
                    },
                    other => other.to_error(),
                })?;
            if message.id() == Some(wslink_core::ids::HELLO_ID) {
                break message;
            }
            tracing::debug!(id = ?message.id(), "ignoring a message that came before the hello reply");
        };
        let hello = match reply {
            wslink_core::Message::Result { result, .. } => HelloReply::from_value(&result)
                .ok_or_else(|| Error::Protocol {
                    detail: format!("the hello reply has no client id: {result:?}"),
                    source: None,
                })?,
            wslink_core::Message::Error { error, .. } => {
                let _ = tokio::time::timeout(Duration::from_millis(500), writer.close(None)).await;
                return Err(Error::Auth {
                    url: self.url,
                    code: error.code,
                    message: error.message,
                });
            }
            _ => {
                return Err(Error::Protocol {
                    detail: "the server answered the hello with a request".into(),
                    source: None,
                })
            }
        };
        if let Err(e) = wslink_core::ids::validate_client_id(&hello.client_id) {
            return Err(Error::Protocol {
                detail: format!("unusable hello reply: {e}"),
                source: None,
            });
        }

        let max_msg_size = match (self.generation, hello.max_msg_size) {
            (Generation::V1, _) => 0,
            (Generation::V2, Some(size)) => usize::try_from(size).unwrap_or(usize::MAX),
            (Generation::V2, None) => protocol::PRE_HELLO_MAX_MSG_SIZE,
        };
        let encoder = match self.generation {
            Generation::V2 => Encoder::V2 {
                max_frame: max_msg_size,
            },
            Generation::V1 => Encoder::V1,
        };
        let shared = Shared::new(hello.client_id.clone());
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        tokio::spawn(connection::run(
            (reader, writer),
            shared.clone(),
            rx,
            decoder,
        ));
        tracing::debug!(url = %self.url, client_id = %hello.client_id, max_msg_size, "connected");
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                commands: tx,
                url: self.url,
                generation: self.generation,
                max_msg_size: hello.max_msg_size,
                encoder,
                call_timeout: self.call_timeout,
                subscription_buffer: self.subscription_buffer,
                subscription_buffer_bytes: self.subscription_buffer_bytes,
                next_seq: AtomicU64::new(0),
                declares: self.declare_subscriptions
                    && hello.offers(protocol::CAPABILITY_SUBSCRIPTIONS),
            }),
        })
    }
}

/// A connection to a wslink server. Cheap to clone: clones share the
/// connection, which closes when [`Client::close`] is called or when every
/// clone and every [`Subscription`] is gone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Outgoing>,
    url: String,
    generation: Generation,
    max_msg_size: Option<u64>,
    encoder: Encoder,
    call_timeout: Duration,
    subscription_buffer: usize,
    subscription_buffer_bytes: usize,
    next_seq: AtomicU64,
    /// The server offered to send only declared topics, and we declare.
    declares: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: the connection task stops even if it is
        // in the middle of writing to a server that no longer reads
        // (dropping the command channel alone is only seen between messages).
        self.shared.close_requested.notify_one();
    }
}

/// Removes a call's entry from the pending table when the call is over,
/// however it ended (reply, timeout, or the caller dropping the future),
/// and tells the writer to drop what it has not sent of the call's message.
struct PendingGuard<'a> {
    shared: &'a Shared,
    seq: u64,
    abandoned: Arc<AtomicBool>,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Release);
        lock(&self.shared.state).pending.remove(&self.seq);
    }
}

#[cfg(feature = "tls")]
fn is_wss(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("wss://"))
}

impl Client {
    /// Starts configuring a connection to `url` (`ws://HOST:PORT/PATH`, or
    /// `wss://` with the `tls` feature).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            secret: protocol::DEFAULT_SECRET.to_owned(),
            generation: Generation::V2,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            subscription_buffer: DEFAULT_SUBSCRIPTION_BUFFER,
            subscription_buffer_bytes: DEFAULT_SUBSCRIPTION_BUFFER_BYTES,
            limits: Limits::default(),
            declare_subscriptions: true,
            #[cfg(feature = "tls")]
            tls: tls::TlsSettings::default(),
        }
    }

    /// Connects to a wslink 2.x server with default settings.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let client = wslink_client::Client::connect("ws://127.0.0.1:8080/ws", "wslink-secret").await?;
    /// println!("connected as {}", client.client_id());
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str, secret: &str) -> Result<Client, Error> {
        Client::builder(url).secret(secret).connect().await
    }

    /// Calls `method(*args, **kwargs)` and waits for its result, at most the
    /// builder's call timeout.
    ///
    /// Errors: [`Error::Rpc`] when the server answers with an error (an
    /// exception, an unknown method...), [`Error::Timeout`], [`Error::Closed`]
    /// or [`Error::Protocol`] when the connection ends first,
    /// [`Error::InvalidArgs`] when the arguments cannot be encoded.
    ///
    /// ```no_run
    /// use wslink_client::{Client, Value};
    /// # async fn demo(client: Client) -> Result<(), wslink_client::Error> {
    /// let image = client
    ///     .call("viewport.image.render", vec![Value::from(640), Value::from(480)], vec![(Value::from("quality"), Value::from(80))])
    ///     .await?;
    /// let pixels = image.get("image").and_then(Value::as_bytes);
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, method: &str, args: Vec<Value>, kwargs: Map) -> Result<Value, Error> {
        self.call_with_timeout(method, args, kwargs, self.inner.call_timeout)
            .await
    }

    /// [`call`](Client::call) with its own time limit (`Duration::MAX`: none).
    ///
    /// A reply that arrives after the limit is ignored (and counted in
    /// [`ClientStats::unknown_replies`]).
    ///
    /// **Abandoned calls stop sending.** When the call times out, or its
    /// future is dropped, the frames of its message that the connection has
    /// not yet handed to the socket are dropped: a large upload stuck behind
    /// a slow link does not keep the link busy for nobody (nor delay the
    /// calls queued after it). A message none of whose frames went out is
    /// never seen by the server. Otherwise the server is left with a partial
    /// message (2.x), which sits there until its own limits clear it: this
    /// project's server counts it against its partial-message bounds (64
    /// messages and 128 MiB per connection by default) and closes the
    /// connection beyond them; Kitware's Python server keeps it, allocated at
    /// its full declared size, for as long as the connection lasts. In 1.x the message is only ever cut before an
    /// attachment header or before the JSON text, never between a header and
    /// its bytes, so the server may be left with unclaimed attachments but
    /// never with a key paired to the wrong bytes. wslink has no cancel
    /// message: a call whose message was wholly sent still runs on the
    /// server.
    pub async fn call_with_timeout(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Map,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let inner = &*self.inner;
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let request = wslink_core::Message::Request(Request {
            id: inner.shared.rpc_id(seq),
            method: method.to_owned(),
            args,
            kwargs,
        });
        let frames = inner
            .encoder
            .encode(&request)
            .map_err(|e| Error::InvalidArgs {
                method: method.to_owned(),
                reason: e.to_string(),
            })?;
        drop(request);

        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut st = lock(&inner.shared.state);
            if let Some(ended) = &st.ended {
                return Err(ended.to_error());
            }
            st.pending.insert(seq, tx);
        }
        let abandoned = Arc::new(AtomicBool::new(false));
        let _guard = PendingGuard {
            shared: &inner.shared,
            seq,
            abandoned: abandoned.clone(),
        };
        let outgoing = Outgoing { frames, abandoned };
        let exchange = async {
            if inner.commands.send(outgoing).await.is_err() {
                return Err(ReplyError::Ended(self.ended()));
            }
            rx.await
                .unwrap_or_else(|_| Err(ReplyError::Ended(self.ended())))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(ReplyError::Rpc(e))) => Err(Error::Rpc {
                method: method.to_owned(),
                code: e.code,
                message: e.message,
                data: e.data,
            }),
            Ok(Err(ReplyError::Ended(ended))) => Err(ended.to_error()),
            Err(_) => Err(Error::Timeout {
                method: method.to_owned(),
                after: timeout,
            }),
        }
    }

    /// Calls with typed arguments and a typed result.
    ///
    /// `args` must serialize as a sequence: a tuple, an array, a `Vec`, or a
    /// tuple struct (`()` for none). Binary data must serialize as bytes
    /// (e.g. [`bytes::Bytes`] or a `serde_bytes` field), since a plain
    /// `Vec<u8>` serializes as a list of numbers.
    ///
    /// ```no_run
    /// # async fn demo(client: wslink_client::Client) -> Result<(), wslink_client::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Digest { len: u64, sum: u32 }
    ///
    /// let data = bytes::Bytes::from(vec![1u8, 2, 3]);
    /// let d: Digest = client.call_typed("conformance.digest", (data,)).await?;
    /// assert_eq!((d.len, d.sum), (3, 6));
    /// # Ok(()) }
    /// ```
    pub async fn call_typed<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.call_typed_with_kwargs(method, args, ()).await
    }

    /// [`call_typed`](Client::call_typed) with keyword arguments: `kwargs`
    /// must serialize as a map (a struct, a `HashMap`...) or as `()`.
    pub async fn call_typed_with_kwargs<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
        kwargs: impl Serialize,
    ) -> Result<R, Error> {
        self.call_typed_with_timeout(method, args, kwargs, self.inner.call_timeout)
            .await
    }

    /// [`call_typed_with_kwargs`](Client::call_typed_with_kwargs) with its own
    /// time limit instead of the builder's.
    ///
    /// ```no_run
    /// # async fn demo(client: wslink_client::Client) -> Result<(), wslink_client::Error> {
    /// use std::time::Duration;
    /// let slept: u64 = client
    ///     .call_typed_with_timeout("conformance.sleep", (50,), (), Duration::from_secs(1))
    ///     .await?;
    /// assert_eq!(slept, 50);
    /// # Ok(()) }
    /// ```
    pub async fn call_typed_with_timeout<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
        kwargs: impl Serialize,
        timeout: Duration,
    ) -> Result<R, Error> {
        let invalid = |reason: String| Error::InvalidArgs {
            method: method.to_owned(),
            reason,
        };
        let args = match to_value(&args).map_err(|e| invalid(e.to_string()))? {
            Value::Array(items) => items,
            Value::Nil => Vec::new(),
            other => {
                return Err(invalid(format!(
                    "arguments must serialize as a sequence (a tuple, array or Vec), found {}",
                    other.kind()
                )))
            }
        };
        let kwargs = match to_value(&kwargs).map_err(|e| invalid(e.to_string()))? {
            Value::Map(entries) => entries,
            Value::Nil => Vec::new(),
            other => {
                return Err(invalid(format!(
                    "keyword arguments must serialize as a map, found {}",
                    other.kind()
                )))
            }
        };
        let result = self
            .call_with_timeout(method, args, kwargs, timeout)
            .await?;
        from_value(result).map_err(|source| Error::Decode {
            method: method.to_owned(),
            source,
        })
    }

    /// Receives the messages published on `topic` (see [`Subscription`] for
    /// buffering). Against a server that offers it (this project's), the
    /// first subscription to a topic tells the server, which then sends this
    /// client only the topics it subscribed to; calls made after this one
    /// are ordered after that message, and [`Subscription::declared`] waits
    /// for the server's confirmation. Kitware's servers send every publish
    /// to every client, and nothing is sent to them.
    ///
    /// Fails with [`Error::InvalidTopic`] for a topic outside wslink's id
    /// grammar (such a topic could never be routed), and with the
    /// connection's error if it has ended.
    pub fn subscribe(&self, topic: &str) -> Result<Subscription, Error> {
        wslink_core::ids::validate_topic(topic)?;
        let queue = SubQueue::new(
            self.inner.subscription_buffer,
            self.inner.subscription_buffer_bytes,
        );
        {
            let mut st = lock(&self.inner.shared.state);
            if let Some(ended) = &st.ended {
                return Err(ended.to_error());
            }
            let queues = st.subs.entry(topic.to_owned()).or_default();
            // A topic already declared (or being declared) is confirmed for
            // every subscriber at once, when the server answers.
            let confirmed =
                !self.inner.declares || queues.first().is_some_and(|q| q.is_confirmed());
            if confirmed {
                queue.confirm();
            }
            queues.push(queue.clone());
            if queues.len() == 1 && self.inner.declares {
                self.declare(&mut st, protocol::SUBSCRIBE_METHOD, topic);
            }
        }
        Ok(Subscription {
            client: self.clone(),
            topic: topic.to_owned(),
            queue,
        })
    }

    pub(crate) fn unsubscribe(&self, topic: &str, queue: &Arc<SubQueue>) {
        let mut st = lock(&self.inner.shared.state);
        if let Some(list) = st.subs.get_mut(topic) {
            list.retain(|q| !Arc::ptr_eq(q, queue));
            if list.is_empty() {
                st.subs.remove(topic);
                if self.inner.declares && st.ended.is_none() {
                    self.declare(&mut st, protocol::UNSUBSCRIBE_METHOD, topic);
                }
            }
        }
    }

    /// Tells the server about a subscription change (`wslink.subscribe` or
    /// `wslink.unsubscribe`), in order with the calls made after it. Not
    /// awaited: a refusal ends the topic's subscriptions (see
    /// [`Subscription::refused`]).
    fn declare(&self, st: &mut connection::State, method: &str, topic: &str) {
        let inner = &*self.inner;
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let request = wslink_core::Message::Request(Request {
            id: format!("system:{}:{seq}", inner.shared.client_id),
            method: method.to_owned(),
            args: vec![Value::from(topic)],
            kwargs: Vec::new(),
        });
        let frames = match inner.encoder.encode(&request) {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!(%topic, error = %e, "cannot encode a subscription declaration");
                return;
            }
        };
        if method == protocol::SUBSCRIBE_METHOD {
            st.declarations.insert(seq, topic.to_owned());
        }
        let outgoing = Outgoing {
            frames,
            abandoned: Arc::new(AtomicBool::new(false)),
        };
        // Queued now, so it goes out before any call made after it. A
        // full command queue (calls waiting on a slow link) hands it to a
        // task instead, which is as ordered as those calls are.
        if let Err(mpsc::error::TrySendError::Full(outgoing)) = inner.commands.try_send(outgoing) {
            let commands = inner.commands.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = commands.send(outgoing).await;
                });
            }
        }
    }

    /// Whether this connection tells its server what it subscribes to, so
    /// the server sends it only those topics. True against this project's
    /// server (it offers `subscriptions` in its hello reply), false
    /// against Kitware's servers, which send every topic to every client
    /// (the subscriptions then filter here, as they always have).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let client = wslink_client::Client::connect("ws://127.0.0.1:8080/ws", "wslink-secret").await?;
    /// if client.declares_subscriptions() {
    ///     println!("the server sends this client only the topics it subscribes to");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn declares_subscriptions(&self) -> bool {
        self.inner.declares
    }

    /// Closes the connection: calls in flight fail with [`Error::Closed`],
    /// subscriptions end, a close frame is sent, and this returns once the
    /// server answered it (or after a short grace period). Closing twice is
    /// harmless.
    ///
    /// A message being written is abandoned, so this returns (within a few
    /// seconds of grace) even when the server has stopped reading and the
    /// write could never finish.
    pub async fn close(&self) {
        self.inner.shared.close_requested.notify_one();
        self.closed().await;
    }

    /// Waits until the connection has ended, for any reason.
    pub async fn closed(&self) {
        let mut rx = self.inner.shared.finished.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Why the connection ended, as the error later calls get; `None` while
    /// it is open.
    pub fn close_reason(&self) -> Option<Error> {
        self.inner.shared.ended().map(|e| e.to_error())
    }

    /// `true` once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.ended().is_some()
    }

    /// The client id the server gave in its hello reply.
    pub fn client_id(&self) -> &str {
        &self.inner.shared.client_id
    }

    /// The largest frame the server accepts, from its hello reply (2.x
    /// servers announce it, 1.x servers do not). 2.x messages are chunked to
    /// fit it.
    pub fn max_msg_size(&self) -> Option<u64> {
        self.inner.max_msg_size
    }

    /// The wire generation of this connection.
    pub fn generation(&self) -> Generation {
        self.inner.generation
    }

    /// The URL connected to.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Counters of what the connection ignored or dropped.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.shared.counters;
        ClientStats {
            unknown_replies: c.unknown_replies.load(Ordering::Relaxed),
            unrouted_publishes: c.unrouted_publishes.load(Ordering::Relaxed),
            dropped_publishes: c.dropped_publishes.load(Ordering::Relaxed),
            unexpected_messages: c.unexpected_messages.load(Ordering::Relaxed),
        }
    }

    fn ended(&self) -> Ended {
        self.inner
            .shared
            .ended()
            .unwrap_or_else(|| Ended::Closed("the connection task stopped".into()))
    }
}
