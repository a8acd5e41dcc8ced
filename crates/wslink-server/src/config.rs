//! Every knob of the server, with wslink's defaults where wslink has one.

use std::path::PathBuf;
use std::time::Duration;

use hyper::http::HeaderMap;

use wslink_core::attachments::AttachmentLimits;
use wslink_core::chunking::UnchunkLimits;
use wslink_core::codec::{v1, v2};
use wslink_core::protocol::DEFAULT_MAX_MSG_SIZE;
use wslink_core::Generation;

use crate::policy::{AllowedOrigins, AuthThrottle, TrustedProxies};

/// Bounds that keep one connection from taking more than its share.
///
/// Each is a hard limit: crossing it gets the offending message an error
/// reply or the connection a close frame that says which limit it hit.
///
/// The defaults are documented in PROTOCOL.md section 5; change what the
/// deployment needs and keep the rest:
///
/// ```
/// use wslink_server::{Limits, Server};
///
/// // A viewer that uploads whole volumes: larger messages, fewer clients.
/// let limits = Limits {
///     max_message_size: 1 << 30,
///     max_pending_bytes: 1 << 30,
///     max_connections: 32,
///     ..Limits::default()
/// };
/// let server = Server::builder().limits(limits).build();
/// assert_eq!(server.config().limits.max_connections, 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted before a successful hello (wslink: 512 bytes,
    /// `WSLINK_AUTH_MSG_SIZE`). Applies to 2.x declared sizes and 1.x text;
    /// a larger frame (this plus the 12-byte chunk header) is refused from
    /// its WebSocket header, before its payload is read.
    pub pre_auth_max_message_size: usize,
    /// Largest complete message accepted after hello: a 2.x reassembled
    /// message, or a 1.x attachment frame.
    pub max_message_size: usize,
    /// Largest 1.x JSON text frame after hello.
    pub max_text_size: usize,
    /// Largest single frame a 2.x client may send; announced in the hello
    /// reply as `maxMsgSize` so clients chunk below it (wslink: 4 MiB,
    /// `WSLINK_MAX_MSG_SIZE`).
    pub max_frame_size: usize,
    /// How far past `max_frame_size` an authenticated 2.x client's frame may
    /// go before the connection is closed with 1009 (wslink: 4096,
    /// `WSLINK_MSG_OVERHEAD`: aiohttp's limit is their sum).
    pub frame_overhead: usize,
    /// Partial 2.x messages being reassembled at once.
    pub max_pending_messages: usize,
    /// Bytes held across partial 2.x messages and unclaimed 1.x attachments.
    pub max_pending_bytes: usize,
    /// Nesting depth of arrays and maps (1.x JSON: at most 127, serde_json's
    /// own bound).
    pub max_depth: usize,
    /// Calls from one connection running at once; the connection is not read
    /// further until one finishes (backpressure, nothing is dropped).
    pub max_in_flight_calls: usize,
    /// Bytes of publishes queued for one client before the publish policy
    /// applies. Replies have a bound of the same size, counted apart: the
    /// connection is not read while the replies queued for it reach it.
    pub outbound_queue_bytes: usize,
    /// Publishes queued for one client before the publish policy applies;
    /// replies likewise pause reading at this many.
    pub outbound_queue_messages: usize,
    /// Messages a client may send before a successful hello (requests are
    /// answered `Unauthorized`; anything else is only counted).
    pub max_pre_auth_messages: usize,
    /// Failed hellos before the connection is closed.
    pub max_auth_failures: usize,
    /// Time a connection has to complete its hello.
    pub hello_deadline: Duration,
    /// Open WebSocket connections, authenticated or not; the next upgrade
    /// request is answered HTTP 503.
    pub max_connections: usize,
    /// Accepted sockets that are not WebSocket connections yet: TLS
    /// handshakes, HTTP requests (static files) and upgrades under way.
    /// Past it a new socket is closed as soon as it is accepted, so
    /// clients that connect and send nothing cost a bounded amount of
    /// memory whatever the file-descriptor limit.
    pub max_pending_connections: usize,
    /// How long an HTTP client has to send a request's headers, the first
    /// request's and each next one's on a kept-alive connection; then the
    /// socket is closed. (The TLS handshake has its own timeout, in
    /// `TlsConfig`.)
    pub http_header_timeout: Duration,
    /// How long [`Publisher::publish_wait`](crate::Publisher::publish_wait)
    /// waits on a client whose full queue makes no progress (nothing sent
    /// to it meanwhile) before the topic's policy applies: a client that
    /// stopped reading is then disconnected, after holding the producer
    /// this long once. A slow client that still reads is waited for.
    pub publish_wait: Duration,
    /// Topics one connection may declare (`wslink.subscribe`); past it a
    /// declaration gets an error reply.
    pub max_subscriptions: usize,
    /// Failed hellos per client address, across connections: past the
    /// bound the address is banned for a while (upgrades answered 429).
    pub auth_throttle: AuthThrottle,
}

impl Default for Limits {
    fn default() -> Self {
        let unchunk = UnchunkLimits::default();
        Limits {
            pre_auth_max_message_size: unchunk.pre_auth_max_message_size,
            max_message_size: unchunk.max_message_size,
            max_text_size: v1::DEFAULT_MAX_TEXT_SIZE,
            max_frame_size: DEFAULT_MAX_MSG_SIZE,
            frame_overhead: 4096,
            max_pending_messages: unchunk.max_pending_messages,
            max_pending_bytes: unchunk.max_pending_bytes,
            max_depth: wslink_core::msgpack::DEFAULT_MAX_DEPTH,
            max_in_flight_calls: 256,
            outbound_queue_bytes: 64 * 1024 * 1024,
            outbound_queue_messages: 4096,
            max_pre_auth_messages: 16,
            max_auth_failures: 5,
            hello_deadline: Duration::from_secs(30),
            max_connections: 16_384,
            max_pending_connections: 1024,
            http_header_timeout: Duration::from_secs(30),
            publish_wait: Duration::from_secs(2),
            max_subscriptions: 1024,
            auth_throttle: AuthThrottle::default(),
        }
    }
}

impl Limits {
    pub(crate) fn v2(&self) -> v2::DecodeLimits {
        v2::DecodeLimits {
            unchunk: UnchunkLimits {
                pre_auth_max_message_size: self.pre_auth_max_message_size,
                max_message_size: self.max_message_size,
                max_pending_messages: self.max_pending_messages,
                max_pending_bytes: self.max_pending_bytes,
            },
            max_depth: self.max_depth,
        }
    }

    pub(crate) fn v1(&self) -> v1::DecodeLimits {
        v1::DecodeLimits {
            max_text_size: self.max_text_size,
            attachments: AttachmentLimits {
                max_announced: self.max_pending_messages.max(16) * 16,
                max_held_bytes: self.max_pending_bytes,
            },
        }
    }

    /// The largest frame an authenticated 2.x client may send: wslink's
    /// aiohttp server allows `WSLINK_MSG_OVERHEAD` over maxMsgSize; so do we.
    pub(crate) fn v2_frame_limit(&self) -> usize {
        self.max_frame_size.saturating_add(self.frame_overhead)
    }
}

/// How the server runs: where, for whom, and for how long.
///
/// Its `Debug` output shows `secret: "<redacted>"`, so logging the whole
/// configuration never leaks the secret.
///
/// ```
/// use wslink_server::{Server, ServerConfig};
///
/// let config = ServerConfig {
///     secret: "from-the-environment".to_owned(),
///     content: Some("./www".into()),
///     ..ServerConfig::default()
/// };
/// let server = Server::builder().config(config).build();
/// assert!(!format!("{:?}", server.config()).contains("from-the-environment"));
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    /// The shared secret clients send in their hello (`--authKey`).
    pub secret: String,
    /// The WebSocket path (`--ws-endpoint`), `/ws` by default.
    pub ws_endpoint: String,
    /// Whether `ws_endpoint` upgrades to WebSocket at all; `false` serves
    /// HTTP only (`--no-ws-endpoint`), and the endpoint's path is then an
    /// ordinary static path.
    pub websocket: bool,
    /// Whether permessage-deflate (RFC 7692) is negotiated with clients
    /// that offer it (`--no-ws-compress` and `WSLINK_WS_COMPRESS=0` turn it
    /// off); on by default, as in wslink's aiohttp server. A client that
    /// does not offer it is never sent compressed frames. Large JSON and
    /// msgpack messages are then compressed; images and anything else that
    /// does not shrink go out as they are.
    pub compression: bool,
    /// A directory served over HTTP on the same port (`--content`).
    pub content: Option<PathBuf>,
    /// More directories, each under its own URL prefix (`--fs-endpoints
    /// "data=/srv/data"` serves `/srv/data/a.txt` as `/data/a.txt`). Prefixes
    /// start with `/` and have no trailing `/`; the longest matching prefix
    /// wins, `content` takes what none matches.
    pub fs_endpoints: Vec<(String, PathBuf)>,
    /// Serve files that are symbolic links leading out of their directory
    /// (`WSLINK_FOLLOW_SYMLINKS=1`). Off by default: a link is served only
    /// when its target is inside the directory too. URL paths can never
    /// climb out (`..`) either way.
    pub follow_symlinks: bool,
    /// Headers added to every HTTP response except the WebSocket upgrade
    /// (`WSLINK_HTTP_HEADERS`), unless the response already has that header.
    pub http_headers: HeaderMap,
    /// Seconds without any client before the server stops itself
    /// (`--timeout`); `None` never stops.
    pub idle_timeout: Option<Duration>,
    /// Force one wire generation instead of detecting it per connection.
    pub generation: Option<Generation>,
    /// Ping interval; a peer silent for two intervals is dropped.
    pub keepalive: Option<Duration>,
    /// How long a graceful shutdown waits for calls and queued frames.
    pub shutdown_grace: Duration,
    /// Resource bounds.
    pub limits: Limits,
    /// Web pages allowed to open a WebSocket (`--allowed-origins`); any by
    /// default, as Python's server.
    pub allowed_origins: AllowedOrigins,
    /// Refuse to listen on a non-loopback address with the default secret
    /// (by default this only warns, as Python's server starts silently).
    pub refuse_public_default_secret: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client
    /// (`--trusted-proxy`); none by default, so the header is ignored.
    pub trusted_proxies: TrustedProxies,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("secret", &"<redacted>")
            .field("ws_endpoint", &self.ws_endpoint)
            .field("websocket", &self.websocket)
            .field("compression", &self.compression)
            .field("content", &self.content)
            .field("fs_endpoints", &self.fs_endpoints)
            .field("follow_symlinks", &self.follow_symlinks)
            .field("http_headers", &self.http_headers)
            .field("idle_timeout", &self.idle_timeout)
            .field("generation", &self.generation)
            .field("keepalive", &self.keepalive)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("limits", &self.limits)
            .field("allowed_origins", &self.allowed_origins)
            .field(
                "refuse_public_default_secret",
                &self.refuse_public_default_secret,
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            secret: wslink_core::protocol::DEFAULT_SECRET.to_owned(),
            ws_endpoint: "/ws".to_owned(),
            websocket: true,
            compression: true,
            content: None,
            fs_endpoints: Vec::new(),
            follow_symlinks: false,
            http_headers: HeaderMap::new(),
            idle_timeout: None,
            generation: None,
            keepalive: Some(Duration::from_secs(30)),
            shutdown_grace: Duration::from_secs(5),
            limits: Limits::default(),
            allowed_origins: AllowedOrigins::default(),
            refuse_public_default_secret: false,
            trusted_proxies: TrustedProxies::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let config = ServerConfig {
            secret: "hunter2-very-secret".to_owned(),
            ..ServerConfig::default()
        };
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("ws_endpoint"), "{shown}");
    }
}
