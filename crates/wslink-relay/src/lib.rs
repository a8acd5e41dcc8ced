//! A WebSocket relay for wslink: a drop-in for Kitware's
//! `python -m wslink.relay`, with its flags and both of its modes.
//!
//! - **relay** (`--mode relay`): a server that cannot be reached (a compute
//!   node behind a firewall) connects *out* to the relay on a path of the
//!   route (`wslink serve --reverse-url ws://RELAY/proxy/ID`, or Kitware's
//!   `--reverse-url`), and a browser connects to the same URL. The relay
//!   carries messages between the two ([`pairing`] has the rules).
//! - **forward** (`--mode forward`, the default as in Kitware's): a browser
//!   connects to the route and the relay connects to
//!   `ws://{host}:{port}/{path}` for it.
//!
//! Beyond Kitware's: a browser that finds no server is told so (close code
//! [`pairing::NO_SERVER`]) instead of waiting forever; between two sockets
//! at most one message per direction is in flight, and a side that stops
//! reading for the stall timeout is dropped, so a slow browser costs one
//! message of memory, not a growing queue; message size and connection
//! count are bounded.
//!
//! ```no_run
//! use wslink_relay::{Mode, Relay, RelayConfig};
//!
//! # async fn demo() -> Result<(), wslink_relay::RelayError> {
//! let config = RelayConfig { mode: Mode::Relay, ..RelayConfig::from_env() };
//! let bound = Relay::new(config)?.bind("127.0.0.1:8080").await?;
//! println!("servers and browsers meet on ws://{}/proxy/ID", bound.local_addr());
//! bound.run_until(std::future::pending()).await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod forward;
pub mod pairing;
mod route;
mod side;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

pub use route::Route;

/// How the relay finds the other end of a browser's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The relay connects to `ws://{host}:{port}/{path}` for each browser.
    Forward,
    /// Servers connect to the relay; browsers meet them on the same path.
    Relay,
}

impl std::str::FromStr for Mode {
    type Err = RelayError;
    fn from_str(s: &str) -> Result<Mode, RelayError> {
        match s {
            "forward" => Ok(Mode::Forward),
            "relay" => Ok(Mode::Relay),
            other => Err(RelayError::Mode(other.to_owned())),
        }
    }
}

/// Errors starting a relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// `--proxy-route` is not a route pattern.
    #[error("bad --proxy-route {pattern:?}: {why}")]
    Route {
        /// The pattern given.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--mode` is neither `forward` nor `relay`.
    #[error("bad --mode {0:?}: forward or relay")]
    Mode(String),
    /// `--www` is not a directory.
    #[error("--www {}: not a readable directory", .0.display())]
    Www(PathBuf),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What `python -m wslink.relay` takes, plus the bounds it lacks.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Forward (Kitware's default) or relay.
    pub mode: Mode,
    /// The WebSocket route, aiohttp style (`/proxy/{port}`).
    pub proxy_route: String,
    /// A directory to serve as static files, if any.
    pub www: Option<PathBuf>,
    /// Largest message (and frame) either side may send, in bytes.
    pub max_message_size: usize,
    /// Ping each side this often; one silent for two periods is dropped.
    pub heartbeat: Option<Duration>,
    /// A side that does not take a message within this is dropped.
    pub stall_timeout: Duration,
    /// WebSocket connections open at once; more get HTTP 503.
    pub max_connections: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            mode: Mode::Forward,
            proxy_route: "/proxy/{port}".to_owned(),
            www: None,
            // Kitware's relay takes 4 MiB messages (WSLINK_MAX_MSG_SIZE); a
            // 2.x frame of that size adds its chunk header, so some room.
            max_message_size: 4 * 1024 * 1024 + 4096,
            heartbeat: Some(Duration::from_secs(30)),
            stall_timeout: Duration::from_secs(30),
            max_connections: 1000,
        }
    }
}

impl RelayConfig {
    /// The defaults, with `WSLINK_MAX_MSG_SIZE` and `WSLINK_HEART_BEAT`
    /// read as Kitware's relay reads them (a heartbeat below 1 turns pings
    /// off).
    pub fn from_env() -> RelayConfig {
        let mut config = RelayConfig::default();
        if let Some(size) = env_number("WSLINK_MAX_MSG_SIZE") {
            config.max_message_size = (size as usize).saturating_add(4096);
        }
        if let Some(beat) = env_number("WSLINK_HEART_BEAT") {
            config.heartbeat = (beat >= 1).then(|| Duration::from_secs(beat as u64));
        }
        config
    }
}

fn env_number(name: &str) -> Option<i64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// What the connection tasks read.
pub(crate) struct Settings {
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) stall: Duration,
}

struct Inner {
    config: RelayConfig,
    route: Route,
    settings: Arc<Settings>,
    paths: Arc<pairing::Paths>,
    targets: Arc<forward::Targets>,
    permits: Arc<Semaphore>,
    closing: watch::Sender<bool>,
}

/// A relay, ready to bind. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Relay {
    /// Checks the configuration.
    pub fn new(config: RelayConfig) -> Result<Relay, RelayError> {
        let route = Route::parse(&config.proxy_route)?;
        if let Some(www) = &config.www {
            if !www.is_dir() {
                return Err(RelayError::Www(www.clone()));
            }
        }
        let settings = Arc::new(Settings {
            heartbeat: config.heartbeat,
            stall: config.stall_timeout,
        });
        Ok(Relay {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.max_connections)),
                route,
                settings,
                paths: Arc::default(),
                targets: Arc::default(),
                closing: watch::channel(false).0,
                config,
            }),
        })
    }

    /// Listens on `addr`.
    pub async fn bind(
        &self,
        addr: impl ToSocketAddrs + std::fmt::Debug,
    ) -> Result<Bound, RelayError> {
        let shown = format!("{addr:?}");
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RelayError::Bind {
                addr: shown.trim_matches('"').to_owned(),
                source,
            })?;
        Ok(Bound {
            listener,
            relay: self.clone(),
        })
    }

    /// Paths a server holds now (relay mode).
    pub fn servers(&self) -> usize {
        self.inner.paths.len()
    }

    /// Messages from a server dropped because no client was connected.
    pub fn dropped_messages(&self) -> u64 {
        self.inner
            .paths
            .dropped_messages
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// WebSocket connections open now.
    pub fn connections(&self) -> usize {
        self.inner.config.max_connections - self.inner.permits.available_permits()
    }
}

/// A relay listening on a socket.
pub struct Bound {
    listener: TcpListener,
    relay: Relay,
}

impl Bound {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` completes, then closes every connection (code
    /// 1001) and returns.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let Bound { listener, relay } = self;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let inner = relay.inner.clone();
            let conn = http
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| {
                        let inner = inner.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(inner, req, peer).await) }
                    }),
                )
                .with_upgrades();
            let mut closing = relay.inner.closing.subscribe();
            tokio::spawn(async move {
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = async { let _ = closing.wait_for(|c| *c).await; } => {}
                }
            });
        }
        drop(listener);
        relay.inner.closing.send_replace(true);
        // Each connection sends its close frame (bounded by a second).
        let all = relay.inner.config.max_connections as u32;
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            relay.inner.permits.acquire_many(all),
        )
        .await;
    }
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

async fn handle(
    inner: Arc<Inner>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let Some(vars) = inner.route.matches(&path) else {
        if let (Some(www), &Method::GET | &Method::HEAD) = (&inner.config.www, req.method()) {
            return wslink_static::serve(
                www,
                req.method(),
                &path,
                req.uri().query(),
                wslink_static::Symlinks::StayInside,
            )
            .await;
        }
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    if req.method() != Method::GET || !is_upgrade(&req) {
        return plain(
            StatusCode::BAD_REQUEST,
            "a WebSocket route: connect with a WebSocket\n",
        );
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return plain(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key\n");
    };
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        let mut r = plain(StatusCode::BAD_REQUEST, "WebSocket version 13 only\n");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    if *inner.closing.borrow() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "relay shutting down\n");
    }
    let Ok(permit) = inner.permits.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "refused: too many connections");
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
    };
    let forward = match inner.config.mode {
        Mode::Relay => None,
        Mode::Forward => {
            let Some(url) = forward::target_url(&vars) else {
                return plain(StatusCode::BAD_REQUEST, "the route's port is not a port\n");
            };
            let Some(claim) = inner.targets.claim(&url, pairing::BUSY_GRACE).await else {
                return plain(
                    StatusCode::FORBIDDEN,
                    "another client is already connected to this target\n",
                );
            };
            Some((url, claim, forward::forwarded_for(req.headers(), peer.ip())))
        }
    };
    let hints = pairing::Hints::from_headers(req.headers());
    if forward.is_none() && hints.declared_server && inner.paths.is_held(&path) {
        // A server is a program: it reads a status, unlike a page's script.
        return plain(
            StatusCode::CONFLICT,
            "another wslink server already holds this path on the relay\n",
        );
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(inner.config.max_message_size))
        .max_frame_size(Some(inner.config.max_message_size))
        .read_buffer_size(4096);
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let _permit = permit;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config))
                .await;
        let role = if forward.is_some() { "browser" } else { "peer" };
        let (side, rx) = side::Side::new(ws, format!("{role} {peer} on {path}"));
        let mut closing = inner.closing.subscribe();
        let work = async {
            match forward {
                Some((url, claim, forwarded_for)) => {
                    forward::serve(
                        inner.settings.clone(),
                        url,
                        claim,
                        side.clone(),
                        rx,
                        ws_config,
                        forwarded_for,
                    )
                    .await
                }
                None => {
                    pairing::serve(
                        inner.settings.clone(),
                        inner.paths.clone(),
                        path,
                        hints,
                        side.clone(),
                        rx,
                    )
                    .await
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = async { let _ = closing.wait_for(|c| *c).await; } => side.close(1001, "relay shutting down").await,
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}
