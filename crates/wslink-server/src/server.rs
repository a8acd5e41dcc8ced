//! The server: its builder, shared state, listener and lifecycle.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use hyper::http::HeaderMap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{watch, Notify};
use wslink_core::attachments::AttachmentKeys;
use wslink_core::Generation;

use crate::config::{Limits, ServerConfig};
use crate::context::{CallContext, ConnectionInfo};
use crate::handler::{BoxFuture, HandlerError, LinkProtocol, Methods};
use crate::listeners::Listeners;
use crate::metrics::{inc, Metrics, MetricsSnapshot};
use crate::outbound::Outbound;
use crate::policy::{AllowedOrigins, Throttle, TrustedProxies};
use crate::publisher::{Publisher, TopicPolicy};

/// Decides whether a hello's secret is good: `(secret, client_id)`.
///
/// [`ServerBuilder::validator`] builds one from an async closure, which is
/// the usual way; the type is spelled out for code that keeps or passes
/// validators around before a server exists.
///
/// ```
/// use std::sync::Arc;
/// use wslink_server::{Server, Validator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // One policy, chosen at start-up, shared by every server the process runs.
/// let allow_list: Validator = Arc::new(|secret, _client_id| {
///     Box::pin(async move { ["alpha", "beta"].contains(&secret.as_str()) })
/// });
/// assert!(allow_list("alpha".into(), "c0".into()).await);
/// assert!(!allow_list("gamma".into(), "c0".into()).await);
///
/// let check = allow_list.clone();
/// let server = Server::builder()
///     .validator(move |secret, client_id| check(secret, client_id))
///     .build();
/// # drop(server);
/// # }
/// ```
pub type Validator = Arc<dyn Fn(String, String) -> BoxFuture<bool> + Send + Sync>;
type ConnectHook = Arc<dyn Fn(&ConnectionInfo) + Send + Sync>;
type CloseHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Why the server could not start or keep running.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = wslink_server::Server::builder().build();
/// let taken = server.bind("127.0.0.1:0").await.unwrap();
/// let again = server.bind(taken.local_addr()).await;
/// assert!(matches!(again, Err(wslink_server::ServerError::Bind { .. })));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Accepting connections failed for good.
    #[error("accepting connections failed: {0}")]
    Accept(#[source] std::io::Error),
    /// The server would listen beyond this machine with the well-known
    /// default secret, and was told to refuse
    /// ([`ServerBuilder::refuse_public_default_secret`]).
    #[error(
        "refusing to listen on {addr} with the default secret {secret:?}: anyone who can reach \
         this address can connect; set a secret (--authKey / --authKey-file, or \
         ServerBuilder::secret) or listen on 127.0.0.1"
    )]
    DefaultSecretOnPublicAddress {
        /// The address bound.
        addr: SocketAddr,
        /// The default secret, which is public knowledge.
        secret: &'static str,
    },
}

/// One connected client, as the rest of the server sees it.
pub(crate) struct ClientSlot {
    pub client_id: Arc<str>,
    pub outbound: Outbound,
    generation: OnceLock<Generation>,
    authenticated: AtomicBool,
    /// The topics it declared (`wslink.subscribe`); `None` until its first
    /// declaration: then it takes every topic, as wslink clients expect.
    pub declared: Mutex<Option<HashSet<Arc<str>>>>,
}

impl ClientSlot {
    pub fn new(client_id: Arc<str>, limits: &Limits) -> Self {
        ClientSlot {
            client_id,
            outbound: Outbound::new(limits.outbound_queue_bytes, limits.outbound_queue_messages),
            generation: OnceLock::new(),
            authenticated: AtomicBool::new(false),
            declared: Mutex::new(None),
        }
    }
    /// Whether a publish on `topic` goes to this client.
    pub fn wants(&self, topic: &str) -> bool {
        match &*self.declared.lock().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(topics) => topics.contains(topic),
        }
    }
    pub fn generation(&self) -> Option<Generation> {
        self.generation.get().copied()
    }
    pub fn set_generation(&self, g: Generation) {
        let _ = self.generation.set(g);
    }
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }
    pub fn set_authenticated(&self) {
        self.authenticated.store(true, Ordering::Release);
    }
    pub fn clear_authenticated(&self) {
        self.authenticated.store(false, Ordering::Release);
    }
}

pub(crate) struct Shared {
    pub config: ServerConfig,
    pub methods: Methods,
    pub validator: Option<Validator>,
    pub on_connect: Vec<ConnectHook>,
    pub on_close: Vec<CloseHook>,
    pub clients: RwLock<HashMap<Arc<str>, Arc<ClientSlot>>>,
    pub last_active: Mutex<Option<Arc<str>>>,
    pub keys: AttachmentKeys,
    pub publish_seq: AtomicU64,
    pub topic_policies: RwLock<HashMap<String, TopicPolicy>>,
    pub metrics: Metrics,
    pub shutdown: watch::Sender<bool>,
    /// Accepted sockets not yet WebSocket connections (see
    /// `Limits::max_pending_connections`): a permit each.
    pub pending: Arc<tokio::sync::Semaphore>,
    /// Open WebSocket connections (plain HTTP requests are not counted), for
    /// the idle timer and for shutdown to wait on.
    pub open: AtomicUsize,
    pub open_changed: Notify,
    /// Failed hellos per address (see `policy`).
    pub throttle: Throttle,
    /// Who listens to which topic.
    pub listeners: Listeners,
    /// TLS on the listening port (wss:// and https://), if configured.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::transport::tls::TlsConfig>,
    /// The link to other processes, when scaled out (see `broker`).
    #[cfg(feature = "broker")]
    pub broker: Option<crate::broker::Link>,
}

impl Shared {
    /// A handler for a method no handler of this process serves: the
    /// broker's call forwarding, when there is a broker.
    pub fn remote_method(&self, method: &str) -> Option<crate::handler::ErasedHandler> {
        #[cfg(feature = "broker")]
        if let Some(link) = &self.broker {
            if crate::broker::valid_subject_token(method) {
                return Some(link.remote_handler().clone());
            }
        }
        let _ = method;
        None
    }
    pub fn last_active(&self) -> Option<Arc<str>> {
        self.last_active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn set_last_active(&self, id: &Arc<str>) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
    }
    pub fn register(&self, slot: Arc<ClientSlot>) {
        self.clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot.client_id.clone(), slot);
    }
    pub fn unregister(&self, client_id: &str) {
        self.clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(client_id);
    }
    /// Counts a new connection unless `max` are open: one atomic step, so
    /// upgrades arriving together cannot all pass a check made apart.
    pub fn try_open_connection(&self, max: usize) -> bool {
        let opened = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if opened {
            self.open_changed.notify_waiters();
        }
        opened
    }
    pub fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.open_changed.notify_waiters();
    }
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A wslink server. Cheap to clone: clones share everything.
///
/// ```no_run
/// use wslink_server::{CallContext, HandlerError, Server};
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let server = Server::builder()
///         .secret("wslink-secret")
///         .method("math.add", |_ctx: CallContext, (a, b): (f64, f64)| async move {
///             Ok::<_, HandlerError>(a + b)
///         })
///         .build();
///     server.serve("127.0.0.1:8080").await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Server {
    pub(crate) shared: Arc<Shared>,
}

/// Builds a [`Server`].
///
/// Every setting has a default, so a server needs only its methods:
///
/// ```
/// use std::time::Duration;
/// use wslink_server::{CallContext, HandlerError, Limits, Server, TopicPolicy};
///
/// let server = Server::builder()
///     .secret("not-the-default")
///     .ws_endpoint("/api/ws")
///     .method("echo", |_ctx: CallContext, (text,): (String,)| async move {
///         Ok::<_, HandlerError>(text)
///     })
///     .topic_policy("viewport.image", TopicPolicy::KeepLatest)
///     .idle_timeout(Some(Duration::from_secs(300)))
///     .limits(Limits { max_connections: 64, ..Limits::default() })
///     .build();
/// assert_eq!(server.config().ws_endpoint, "/api/ws");
/// assert_eq!(server.method_names(), ["echo"]);
/// ```
pub struct ServerBuilder {
    pub(crate) config: ServerConfig,
    methods: Methods,
    validator: Option<Validator>,
    on_connect: Vec<ConnectHook>,
    on_close: Vec<CloseHook>,
    policies: HashMap<String, TopicPolicy>,
    #[cfg(feature = "tls")]
    tls: Option<crate::transport::tls::TlsConfig>,
    #[cfg(feature = "broker")]
    broker: Option<crate::broker::Link>,
}

impl ServerBuilder {
    /// The hello secret (`--authKey`); `wslink-secret` by default.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().secret("s3cr3t").build();
    /// assert_eq!(server.config().secret, "s3cr3t");
    /// ```
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.config.secret = secret.into();
        self
    }

    /// Replaces the secret check by an async validator of
    /// `(secret, client_id)`, e.g. to look a token up elsewhere.
    ///
    /// The validator runs within the hello deadline
    /// ([`Limits::hello_deadline`]); one that has not answered by then gets
    /// the connection closed with 1008.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let server = Server::builder()
    ///     .validator(|token: String, _client_id: String| async move {
    ///         // Stands in for a look-up in a session store.
    ///         token.starts_with("tok-") && token.len() == 12
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn validator<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.validator = Some(Arc::new(move |s, c| Box::pin(f(s, c))));
        self
    }

    /// Registers one method (see [`Methods::add`]).
    ///
    /// Parameters are any `Deserialize` type: a tuple binds the positional
    /// arguments, a struct binds positional arguments in field order or keyword
    /// arguments by name.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Resize { width: u32, height: u32 }
    ///
    /// let server = Server::builder()
    ///     // resize(640, 360) and resize(width=640, height=360) both reach this.
    ///     .method("view.resize", |_ctx: CallContext, r: Resize| async move {
    ///         if r.width == 0 || r.height == 0 {
    ///             return Err(HandlerError::msg("a view cannot be empty"));
    ///         }
    ///         Ok(r.width * r.height)
    ///     })
    ///     .build();
    /// assert_eq!(server.method_names(), ["view.resize"]);
    /// ```
    pub fn method<P, R, E, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(CallContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        P: serde::de::DeserializeOwned + Send + 'static,
        R: serde::Serialize + Send + Sync + 'static,
        E: Into<HandlerError> + 'static,
    {
        self.methods.add(name, handler);
        self
    }

    /// Adds a set of methods.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Methods, Server};
    ///
    /// let mut time = Methods::new();
    /// time.add("time.zero", |_ctx: CallContext, (): ()| async { Ok::<_, HandlerError>(0) });
    /// let server = Server::builder().methods(time).build();
    /// assert_eq!(server.method_names(), ["time.zero"]);
    /// ```
    pub fn methods(mut self, methods: Methods) -> Self {
        self.methods.merge(methods);
        self
    }

    /// Adds a [`LinkProtocol`]: its methods and its hooks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use wslink_server::{CallContext, HandlerError, LinkProtocol, Methods, Server};
    ///
    /// struct Counter;
    ///
    /// impl LinkProtocol for Counter {
    ///     fn register(self: Arc<Self>, methods: &mut Methods) {
    ///         methods.add("counter.zero", |_ctx: CallContext, (): ()| async {
    ///             Ok::<_, HandlerError>(0u64)
    ///         });
    ///     }
    /// }
    ///
    /// let server = Server::builder().protocol(Counter).build();
    /// assert_eq!(server.method_names(), ["counter.zero"]);
    /// ```
    pub fn protocol<P: LinkProtocol>(mut self, protocol: P) -> Self {
        let protocol = Arc::new(protocol);
        protocol.clone().register(&mut self.methods);
        let p = protocol.clone();
        self.on_connect.push(Arc::new(move |c| p.on_connect(c)));
        self.on_close
            .push(Arc::new(move |id| protocol.on_close(id)));
        self
    }

    /// Called when a client connects, before its hello.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let server = Server::builder()
    ///     .on_connect(|conn| tracing::info!(client = conn.client_id(), uri = %conn.uri(), "connected"))
    ///     .on_close(|client_id| tracing::info!(client = client_id, "gone"))
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn on_connect(mut self, f: impl Fn(&ConnectionInfo) + Send + Sync + 'static) -> Self {
        self.on_connect.push(Arc::new(f));
        self
    }

    /// Called with the client id when a connection ends.
    ///
    /// It runs for every connection that [`on_connect`](Self::on_connect)
    /// saw, authenticated or not, so it is the place to drop per-client
    /// state:
    ///
    /// ```
    /// use std::collections::{HashMap, HashSet};
    /// use std::sync::{Arc, Mutex};
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let selections: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    /// let (on_select, on_leave) = (selections.clone(), selections.clone());
    /// let server = Server::builder()
    ///     .method("scene.select", move |ctx: CallContext, (id,): (u32,)| {
    ///         let selections = on_select.clone();
    ///         async move {
    ///             selections.lock().unwrap().insert(ctx.client_id().to_owned(), id);
    ///             Ok::<_, HandlerError>(())
    ///         }
    ///     })
    ///     // Without this, every client that ever connected would stay in the map.
    ///     .on_close(move |client_id| {
    ///         on_leave.lock().unwrap().remove(client_id);
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn on_close(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_close.push(Arc::new(f));
        self
    }

    /// Sets a topic's slow-client policy.
    ///
    /// ```
    /// use wslink_server::{Server, TopicPolicy};
    ///
    /// // A slow viewer gets the newest frame, never a backlog of old ones.
    /// let server = Server::builder()
    ///     .topic_policy("viewport.image", TopicPolicy::KeepLatest)
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn topic_policy(mut self, topic: &str, policy: TopicPolicy) -> Self {
        self.policies.insert(topic.to_owned(), policy);
        self
    }

    /// The web pages allowed to open a WebSocket (`--allowed-origins`):
    /// an upgrade whose `Origin` is not allowed gets HTTP 403. Requests
    /// without an `Origin` (clients that are not browsers) are not
    /// affected. Any origin by default, as Kitware's server.
    ///
    /// ```
    /// use wslink_server::{AllowedOrigins, Server};
    ///
    /// // The app's own pages (served with `content`), and one other site.
    /// let origins = AllowedOrigins::same_origin().with("https://dashboard.example.org").unwrap();
    /// let server = Server::builder().content("./www").allowed_origins(origins).build();
    /// assert!(!server.config().allowed_origins.is_any());
    /// ```
    pub fn allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.config.allowed_origins = origins;
        self
    }

    /// The reverse proxies whose `X-Forwarded-For` names the client
    /// (`--trusted-proxy`). When a connection comes from one of them, the
    /// right-most forwarded address that is not itself a trusted proxy is
    /// the client's: the failed-hello limit counts it, logs show it and
    /// [`ConnectionInfo::client_ip`](crate::ConnectionInfo::client_ip)
    /// returns it. The header is ignored from every other peer, so a
    /// client cannot shed its ban by claiming another address. None by
    /// default.
    ///
    /// ```
    /// use wslink_server::{Server, TrustedProxies};
    ///
    /// // Sessions behind `wslink launch`'s proxy on the same machine.
    /// let proxies: TrustedProxies = "127.0.0.1,::1".parse().unwrap();
    /// let server = Server::builder().trusted_proxies(proxies).build();
    /// assert!(server.config().trusted_proxies.contains("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config.trusted_proxies = proxies;
        self
    }

    /// Makes [`Server::bind`] fail, rather than warn, when the address is
    /// not a loopback one and the secret is wslink's well-known default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use wslink_server::{Server, ServerError};
    ///
    /// let strict = Server::builder().refuse_public_default_secret(true).build();
    /// let refused = strict.bind("0.0.0.0:0").await;
    /// assert!(matches!(refused, Err(ServerError::DefaultSecretOnPublicAddress { .. })));
    /// // Loopback, or any other secret, is fine.
    /// assert!(strict.bind("127.0.0.1:0").await.is_ok());
    /// # }
    /// ```
    pub fn refuse_public_default_secret(mut self, refuse: bool) -> Self {
        self.config.refuse_public_default_secret = refuse;
        self
    }

    /// Serves the files of `dir` over HTTP on the same port (`--content`).
    ///
    /// Paths are resolved under `dir` only: `..`, encoded separators and
    /// symbolic links that lead out of it get 400 or 404.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().content("./www").build();
    /// assert_eq!(server.config().content.as_deref(), Some(std::path::Path::new("./www")));
    /// ```
    pub fn content(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.content = Some(dir.into());
        self
    }

    /// The WebSocket path (`--ws-endpoint`), `/ws` by default.
    ///
    /// A missing leading `/` is added, so a value taken from a command line
    /// as wslink's Python server takes it works as is:
    ///
    /// ```
    /// let server = wslink_server::Server::builder().ws_endpoint("paraview").build();
    /// assert_eq!(server.config().ws_endpoint, "/paraview");
    /// ```
    pub fn ws_endpoint(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        self.config.ws_endpoint = path;
        self
    }

    /// Serves HTTP only, with no WebSocket endpoint, when `false`
    /// (`--no-ws-endpoint`); `true` by default.
    ///
    /// ```
    /// let server = wslink_server::Server::builder()
    ///     .content("./www")
    ///     .websocket(false)
    ///     .build();
    /// assert!(!server.config().websocket);
    /// ```
    pub fn websocket(mut self, enabled: bool) -> Self {
        self.config.websocket = enabled;
        self
    }

    /// Whether permessage-deflate (RFC 7692) is negotiated with clients that
    /// offer it; `true` by default, as Kitware's server. `false` is
    /// `--no-ws-compress` / `WSLINK_WS_COMPRESS=0`, to save the CPU.
    ///
    /// With it, large JSON and msgpack messages are sent compressed, and
    /// images (JPEG, PNG) and other payloads that do not shrink are sent as
    /// they are; compressed messages from clients are inflated up to the
    /// message limit in force. Contexts are not kept between messages, so an
    /// idle connection costs no more with compression than without.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().compression(false).build();
    /// assert!(!server.config().compression);
    /// ```
    pub fn compression(mut self, enabled: bool) -> Self {
        self.config.compression = enabled;
        self
    }

    /// Serves the files of `dir` under the URL prefix `prefix`
    /// (`--fs-endpoints name=dir`); may be called for several prefixes.
    ///
    /// A missing leading `/` is added and trailing ones are dropped, as
    /// wslink's Python server does. A request goes to the endpoint with the
    /// longest prefix that matches whole path segments, else to
    /// [`content`](Self::content); the WebSocket endpoint takes its own
    /// path before either. The same path checks apply as for `content`.
    ///
    /// ```
    /// let server = wslink_server::Server::builder()
    ///     .content("./www")
    ///     .fs_endpoint("data", "/srv/data")       // /data/a.vtp is /srv/data/a.vtp
    ///     .fs_endpoint("/data/big/", "/mnt/big")  // except under /data/big
    ///     .build();
    /// let prefixes: Vec<&str> =
    ///     server.config().fs_endpoints.iter().map(|(p, _)| p.as_str()).collect();
    /// assert_eq!(prefixes, ["/data", "/data/big"]);
    /// ```
    pub fn fs_endpoint(mut self, prefix: &str, dir: impl Into<PathBuf>) -> Self {
        let prefix = format!("/{}", prefix.trim_matches('/'));
        let dir = dir.into();
        match self
            .config
            .fs_endpoints
            .iter_mut()
            .find(|(p, _)| *p == prefix)
        {
            // A name given twice keeps the last directory, as Python's dict.
            Some(entry) => entry.1 = dir,
            None => self.config.fs_endpoints.push((prefix, dir)),
        }
        self
    }

    /// Serves static files that are symbolic links to outside their
    /// directory (`WSLINK_FOLLOW_SYMLINKS=1`); `false` by default, when a
    /// link is served only if it leads to a file inside the directory.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().follow_symlinks(true).build();
    /// assert!(server.config().follow_symlinks);
    /// ```
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.config.follow_symlinks = follow;
        self
    }

    /// Adds these headers to every HTTP response but the WebSocket upgrade,
    /// where the response does not already set them (`WSLINK_HTTP_HEADERS`).
    /// The usual use: the cross-origin isolation a page needs for
    /// `SharedArrayBuffer`.
    ///
    /// ```
    /// use wslink_server::{HeaderMap, HeaderValue};
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    /// headers.insert("cross-origin-embedder-policy", HeaderValue::from_static("require-corp"));
    /// let server = wslink_server::Server::builder().http_headers(headers).build();
    /// assert_eq!(server.config().http_headers.len(), 2);
    /// ```
    pub fn http_headers(mut self, headers: HeaderMap) -> Self {
        self.config.http_headers = headers;
        self
    }

    /// Applies Kitware's `WSLINK_*` environment variables, as its Python
    /// server reads them: `WSLINK_MAX_MSG_SIZE` ([`Limits::max_frame_size`]),
    /// `WSLINK_MSG_OVERHEAD` ([`Limits::frame_overhead`]),
    /// `WSLINK_AUTH_MSG_SIZE` ([`Limits::pre_auth_max_message_size`]),
    /// `WSLINK_HEART_BEAT` ([`keepalive`](Self::keepalive) in seconds, below
    /// 1 off), `WSLINK_WS_COMPRESS` ([`compression`](Self::compression)),
    /// `WSLINK_FOLLOW_SYMLINKS` ([`follow_symlinks`](Self::follow_symlinks))
    /// and `WSLINK_HTTP_HEADERS` (a JSON file of [`http_headers`](Self::http_headers)).
    ///
    /// Unset variables leave the builder's values; settings made after this
    /// call win. A value that is not what its variable takes (not an
    /// integer, out of range, an unreadable headers file) is an error naming
    /// the variable.
    ///
    /// ```
    /// # fn main() -> Result<(), wslink_server::EnvError> {
    /// let server = wslink_server::Server::builder().apply_env()?.build();
    /// # let _ = server;
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply_env(self) -> Result<Self, crate::EnvError> {
        self.apply_env_from(|name| std::env::var_os(name))
    }

    /// [`apply_env`](Self::apply_env) with the variables looked up by
    /// `lookup` instead of in the process environment (tests, a config
    /// file of `KEY=VALUE` lines).
    ///
    /// ```
    /// use std::ffi::OsString;
    ///
    /// let server = wslink_server::Server::builder()
    ///     .apply_env_from(|name| (name == "WSLINK_MAX_MSG_SIZE").then(|| OsString::from("65536")))
    ///     .unwrap()
    ///     .build();
    /// assert_eq!(server.config().limits.max_frame_size, 65536);
    ///
    /// let bad = wslink_server::Server::builder()
    ///     .apply_env_from(|name| (name == "WSLINK_HEART_BEAT").then(|| OsString::from("30s")));
    /// assert!(bad.err().unwrap().to_string().starts_with("WSLINK_HEART_BEAT="));
    /// ```
    pub fn apply_env_from(
        mut self,
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, crate::EnvError> {
        crate::env::apply(&mut self.config, &lookup)?;
        Ok(self)
    }

    /// Stops the server after this long without clients (`--timeout`).
    ///
    /// The clock starts when the server starts and again each time the last
    /// client leaves; `None` (the default) never stops. A launcher that
    /// starts one server per session uses it to reclaim abandoned ones:
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let server = wslink_server::Server::builder()
    ///     .idle_timeout(Some(Duration::from_secs(300)))
    ///     .build();
    /// assert_eq!(server.config().idle_timeout, Some(Duration::from_secs(300)));
    /// ```
    ///
    /// [`Server::serve`] shows it ending a server.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Speaks only this generation instead of detecting it per connection.
    ///
    /// ```
    /// use wslink_server::{Generation, Server};
    ///
    /// // A deployment whose every page still ships the 1.x npm client.
    /// let server = Server::builder().generation(Generation::V1).build();
    /// assert_eq!(server.config().generation, Some(Generation::V1));
    /// ```
    pub fn generation(mut self, generation: Generation) -> Self {
        self.config.generation = Some(generation);
        self
    }

    /// Ping interval (`None` turns keepalive off); 30 s by default.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // A proxy in front drops sockets idle for 20 s: ping more often than that.
    /// let server = wslink_server::Server::builder()
    ///     .keepalive(Some(Duration::from_secs(10)))
    ///     .build();
    /// assert_eq!(server.config().keepalive, Some(Duration::from_secs(10)));
    /// ```
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.config.keepalive = interval;
        self
    }

    /// How long a graceful shutdown waits for in-flight calls and queues;
    /// 5 s by default.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Renders can take a while; let the last ones reach their viewers.
    /// let server = wslink_server::Server::builder()
    ///     .shutdown_grace(Duration::from_secs(20))
    ///     .build();
    /// assert_eq!(server.config().shutdown_grace, Duration::from_secs(20));
    /// ```
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Resource limits.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wslink_server::{Limits, Server};
    ///
    /// let server = Server::builder()
    ///     .limits(Limits {
    ///         max_message_size: 16 << 20,
    ///         hello_deadline: Duration::from_secs(5),
    ///         ..Limits::default()
    ///     })
    ///     .build();
    /// assert_eq!(server.config().limits.max_message_size, 16 << 20);
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How failed hellos are limited per client address (`--auth-max-failures`,
    /// `--auth-window`, `--auth-ban`), leaving the other [`Limits`] as they
    /// are (after [`ServerBuilder::apply_env`], say). A ban longer than a
    /// year is kept for a year.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wslink_server::{AuthThrottle, Server};
    ///
    /// let server = Server::builder()
    ///     .auth_throttle(AuthThrottle {
    ///         max_failures: 10,
    ///         window: Duration::from_secs(60),
    ///         ban: Duration::from_secs(3600),
    ///     })
    ///     .build();
    /// assert_eq!(server.config().limits.auth_throttle.max_failures, 10);
    /// ```
    pub fn auth_throttle(mut self, throttle: crate::AuthThrottle) -> Self {
        self.config.limits.auth_throttle = throttle;
        self
    }

    /// Serves TLS only on the listening port: wss:// for the WebSocket and
    /// https:// for static content, as Kitware's server with `--ssl`.
    /// Needs the `tls` cargo feature.
    ///
    /// The handshake happens in each connection's task, bounded by
    /// [`TlsConfig::with_handshake_timeout`](crate::tls::TlsConfig::with_handshake_timeout);
    /// a client that does not speak TLS is disconnected without disturbing
    /// the others.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use wslink_server::{tls::TlsConfig, Server};
    ///
    /// let tls = TlsConfig::self_signed(["localhost", "127.0.0.1"])?;
    /// let server = Server::builder().tls(tls).build();
    /// assert!(server.is_tls());
    /// let listener = server.bind("127.0.0.1:0").await?;
    /// println!("wss://{}/ws", listener.local_addr());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::transport::tls::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Replaces the whole configuration.
    ///
    /// Settings made before this call are overwritten; later ones apply on
    /// top of it:
    ///
    /// ```
    /// use wslink_server::{Server, ServerConfig};
    ///
    /// let loaded = ServerConfig { ws_endpoint: "/from-file".into(), ..ServerConfig::default() };
    /// let server = Server::builder()
    ///     .ws_endpoint("/lost")
    ///     .config(loaded)
    ///     .secret("from-the-environment")
    ///     .build();
    /// assert_eq!(server.config().ws_endpoint, "/from-file");
    /// assert_eq!(server.config().secret, "from-the-environment");
    /// ```
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Finishes the server.
    ///
    /// Nothing is bound yet: that is [`Server::bind`] or [`Server::serve`].
    /// The builder is a plain value, so it can be put together in steps:
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let debug = std::env::var_os("APP_DEBUG").is_some();
    /// let mut builder = Server::builder().secret("s3cr3t");
    /// if debug {
    ///     builder = builder.method("debug.ping", |_ctx: CallContext, (): ()| async {
    ///         Ok::<_, HandlerError>("pong")
    ///     });
    /// }
    /// let server = builder.build();
    /// assert_eq!(server.method_names().len(), usize::from(debug));
    /// ```
    pub fn build(self) -> Server {
        let (shutdown, _) = watch::channel(false);
        let limits_throttle = self.config.limits.auth_throttle;
        let pending = self
            .config
            .limits
            .max_pending_connections
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        let server = Server {
            shared: Arc::new(Shared {
                config: self.config,
                methods: self.methods,
                validator: self.validator,
                on_connect: self.on_connect,
                on_close: self.on_close,
                clients: RwLock::new(HashMap::new()),
                last_active: Mutex::new(None),
                keys: AttachmentKeys::new(),
                publish_seq: AtomicU64::new(0),
                topic_policies: RwLock::new(self.policies),
                metrics: Metrics::default(),
                shutdown,
                pending: Arc::new(tokio::sync::Semaphore::new(pending)),
                open: AtomicUsize::new(0),
                open_changed: Notify::new(),
                throttle: Throttle::new(limits_throttle),
                listeners: Listeners::default(),
                #[cfg(feature = "tls")]
                tls: self.tls,
                #[cfg(feature = "broker")]
                broker: self.broker,
            }),
        };
        // Outside a runtime the broker link starts with `bind()` instead.
        #[cfg(feature = "broker")]
        if tokio::runtime::Handle::try_current().is_ok() {
            server.start_broker();
        }
        server
    }

    /// Scales out through a broker: publishes are shared with every server
    /// process on it, and calls for methods this one does not serve go to
    /// [`Worker`](crate::broker::Worker)s (see [`broker`](crate::broker)).
    /// The link starts with [`build`](Self::build) inside a runtime, or
    /// else with [`Server::bind`].
    ///
    /// ```no_run
    /// use wslink_server::broker::BrokerConfig;
    /// use wslink_server::Server;
    ///
    /// # #[tokio::main] async fn main() {
    /// let server = Server::builder()
    ///     .broker(BrokerConfig::nats("nats://127.0.0.1:4222").prefix("demo"))
    ///     .build();
    /// server.broker_ready().await;
    /// # }
    /// ```
    #[cfg(feature = "broker")]
    pub fn broker(mut self, config: crate::broker::BrokerConfig) -> Self {
        self.broker = Some(crate::broker::Link::new(config, true));
        self
    }

    /// A worker's link: it publishes, and takes no topic from the broker.
    #[cfg(feature = "broker")]
    pub(crate) fn worker_link(mut self, config: crate::broker::BrokerConfig) -> Self {
        self.broker = Some(crate::broker::Link::new(config, false));
        self
    }
}

impl Server {
    /// Starts building a server.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().build();
    /// assert!(server.method_names().is_empty());
    /// ```
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: ServerConfig::default(),
            methods: Methods::new(),
            validator: None,
            on_connect: Vec::new(),
            on_close: Vec::new(),
            policies: HashMap::new(),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "broker")]
            broker: None,
        }
    }

    /// Whether the server speaks TLS (`ServerBuilder::tls`, feature `tls`): its URLs are
    /// then wss:// and https://.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().build();
    /// assert!(!server.is_tls());
    /// ```
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.shared.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    #[cfg(feature = "broker")]
    fn start_broker(&self) {
        if let Some(link) = &self.shared.broker {
            link.start(Arc::downgrade(&self.shared));
        }
    }

    /// Resolves once the broker link is connected and subscribed: from then
    /// on publishes of other processes reach this one's clients. At once if
    /// there is no broker. Waits for as long as the broker is unreachable.
    ///
    /// ```no_run
    /// # use wslink_server::{broker::BrokerConfig, Server};
    /// # #[tokio::main] async fn main() {
    /// let server = Server::builder().broker(BrokerConfig::nats("nats://127.0.0.1:4222")).build();
    /// server.broker_ready().await;
    /// # }
    /// ```
    #[cfg(feature = "broker")]
    pub async fn broker_ready(&self) {
        if let Some(link) = &self.shared.broker {
            self.start_broker();
            link.ready().await;
        }
    }

    /// What the broker link has done, if there is one.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().build();
    /// assert!(server.broker_stats().is_none());
    /// ```
    #[cfg(feature = "broker")]
    pub fn broker_stats(&self) -> Option<crate::broker::BrokerStats> {
        self.shared.broker.as_ref().map(|link| link.stats())
    }

    /// A publisher for this server.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().build();
    /// let publisher = server.publisher();
    /// // No client is connected yet, so nobody is sent this.
    /// assert_eq!(publisher.publish("status", &"ready").unwrap(), 0);
    /// ```
    pub fn publisher(&self) -> Publisher {
        Publisher {
            shared: self.shared.clone(),
        }
    }

    /// The server's counters now.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().build();
    /// let m = server.metrics();
    /// assert_eq!((m.connections_open, m.calls), (0, 0));
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// The configuration in force.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().build();
    /// // What a Python wslink server would use with no options given.
    /// assert_eq!(server.config().ws_endpoint, "/ws");
    /// assert_eq!(server.config().secret, "wslink-secret");
    /// ```
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Registered method names, sorted.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::builder()
    ///     .method("b.second", |_ctx: CallContext, (): ()| async { Ok::<_, HandlerError>(2) })
    ///     .method("a.first", |_ctx: CallContext, (): ()| async { Ok::<_, HandlerError>(1) })
    ///     .build();
    /// // Sorted, so a start-up log line or a test can compare it as is.
    /// assert_eq!(server.method_names(), ["a.first", "b.second"]);
    /// ```
    pub fn method_names(&self) -> Vec<String> {
        self.shared
            .methods
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Ids of the authenticated clients connected now.
    ///
    /// A connection that has not completed its hello is not listed: it
    /// cannot be published to yet either.
    ///
    /// ```
    /// let server = wslink_server::Server::builder().build();
    /// let publisher = server.publisher();
    /// for id in server.client_ids() {
    ///     publisher.publish_to(&id, "notice", &"maintenance in 5 minutes").unwrap();
    /// }
    /// assert!(server.client_ids().is_empty());
    /// ```
    pub fn client_ids(&self) -> Vec<String> {
        let clients = self
            .shared
            .clients
            .read()
            .unwrap_or_else(|e| e.into_inner());
        clients
            .values()
            .filter(|c| c.is_authenticated())
            .map(|c| c.client_id.to_string())
            .collect()
    }

    /// Starts a graceful shutdown: no new connections; each connection stops
    /// reading, finishes its in-flight calls, flushes its queue and closes
    /// with 1001, all within the configured grace period. A broker link
    /// (feature `broker`) is drained and closed once the connections are
    /// gone, or the grace period is over.
    ///
    /// Any clone can ask for it, from any task; [`Server::serve`] (or
    /// [`Listener::run`]) returns once it is done. Asking twice is harmless.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wslink_server::ServerError> {
    /// let server = wslink_server::Server::builder().build();
    /// let stopper = server.clone();
    /// tokio::spawn(async move {
    ///     // An app would wait for tokio::signal::ctrl_c() here.
    ///     tokio::task::yield_now().await;
    ///     stopper.shutdown();
    /// });
    /// server.serve("127.0.0.1:0").await?;
    /// // Late callers (a second signal, say) need no guard.
    /// server.shutdown();
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Resolves once a shutdown has been asked for (by [`Server::shutdown`]
    /// or the idle timeout).
    ///
    /// Resolves at once if one already has been, so work started late
    /// still stops:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    ///
    /// let server = wslink_server::Server::builder().build();
    /// let publisher = server.publisher();
    /// let stopping = server.clone();
    /// let ticker = tokio::spawn(async move {
    ///     let mut tick = tokio::time::interval(Duration::from_millis(10));
    ///     // Stop publishing when the server goes, rather than into the void.
    ///     loop {
    ///         tokio::select! {
    ///             _ = tick.tick() => { let _ = publisher.publish("clock.tick", &()); }
    ///             _ = stopping.shutdown_requested() => break,
    ///         }
    ///     }
    /// });
    /// server.shutdown();
    /// ticker.await.unwrap();
    /// # }
    /// ```
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shared.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Binds a listener; [`Listener::run`] then serves on it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wslink_server::ServerError> {
    /// let server = wslink_server::Server::builder().build();
    /// // Port 0: the system picks a free one, which local_addr() reports.
    /// let listener = server.bind("127.0.0.1:0").await?;
    /// assert_ne!(listener.local_addr().port(), 0);
    /// server.shutdown();
    /// listener.run().await
    /// # }
    /// ```
    pub async fn bind(
        &self,
        addr: impl ToSocketAddrs + std::fmt::Debug,
    ) -> Result<Listener, ServerError> {
        let shown = format!("{addr:?}");
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: shown,
                source,
            })?;
        if let Ok(local) = listener.local_addr() {
            self.check_public_secret(local)?;
        }
        #[cfg(feature = "broker")]
        self.start_broker();
        Ok(Listener {
            listener,
            server: self.clone(),
        })
    }

    /// Warns (or, if told to, refuses) when a non-loopback address would
    /// be served with the default secret: wslink's default is printed in
    /// every tutorial, so such a server is open to its whole network.
    fn check_public_secret(&self, local: SocketAddr) -> Result<(), ServerError> {
        let config = &self.shared.config;
        let default = wslink_core::protocol::DEFAULT_SECRET;
        if local.ip().is_loopback() || self.shared.validator.is_some() || config.secret != default {
            return Ok(());
        }
        if config.refuse_public_default_secret {
            return Err(ServerError::DefaultSecretOnPublicAddress {
                addr: local,
                secret: default,
            });
        }
        tracing::warn!(
            addr = %local,
            "listening beyond this machine with the default secret {default:?}: anyone who can \
             reach {local} can connect; set a secret (--authKey / --authKey-file) or listen on 127.0.0.1"
        );
        Ok(())
    }

    /// Binds `addr` and serves until shutdown.
    ///
    /// The usual last line of `main`:
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), wslink_server::ServerError> {
    /// wslink_server::Server::builder().build().serve("0.0.0.0:8080").await
    /// # }
    /// ```
    ///
    /// It returns by itself when the idle timeout stops the server, which
    /// this one does after 50 ms without a client:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wslink_server::ServerError> {
    /// use std::time::Duration;
    ///
    /// let server = wslink_server::Server::builder()
    ///     .idle_timeout(Some(Duration::from_millis(50)))
    ///     .build();
    /// server.serve("127.0.0.1:0").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve(
        &self,
        addr: impl ToSocketAddrs + std::fmt::Debug,
    ) -> Result<(), ServerError> {
        self.bind(addr).await?.run().await
    }
}

/// A bound, not yet running, server socket, from [`Server::bind`].
///
/// Binding apart from running lets a caller learn the port, or fail on a
/// busy address, before it commits to serving:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = wslink_server::Server::builder().build();
/// let listener = server.bind("127.0.0.1:0").await?;
/// // e.g. handed to a launcher that tells the browser where to connect.
/// let url = format!("ws://{}{}", listener.local_addr(), server.config().ws_endpoint);
/// let running = tokio::spawn(listener.run());
/// assert!(url.starts_with("ws://127.0.0.1:"));
/// server.shutdown();
/// running.await??;
/// # Ok(())
/// # }
/// ```
pub struct Listener {
    listener: TcpListener,
    server: Server,
}

impl Listener {
    /// The address actually bound (useful with port 0).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wslink_server::ServerError> {
    /// let server = wslink_server::Server::builder().build();
    /// let listener = server.bind(("127.0.0.1", 0)).await?;
    /// assert!(listener.local_addr().ip().is_loopback());
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Accepts connections until shutdown, then waits (up to the grace
    /// period, plus a second) for connections to finish closing.
    ///
    /// A shutdown asked for before it starts makes it return at once:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wslink_server::ServerError> {
    /// let server = wslink_server::Server::builder().build();
    /// let listener = server.bind("127.0.0.1:0").await?;
    /// server.shutdown();
    /// listener.run().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run(self) -> Result<(), ServerError> {
        let shared = self.server.shared.clone();
        let mut shutdown = shared.shutdown.subscribe();
        if let Some(timeout) = shared.config.idle_timeout {
            tokio::spawn(idle_timer(shared.clone(), timeout));
        }
        tracing::info!(addr = %self.local_addr(), endpoint = %shared.config.ws_endpoint, "wslink server listening");
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        // Running out of file descriptors is worth waiting out.
                        Err(e) if is_transient(&e) => {
                            tracing::warn!(error = %e, "accept failed; retrying");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Err(e) => return Err(ServerError::Accept(e)),
                    };
                    // Held until the socket is a WebSocket connection
                    // (counted by `max_connections` from then on) or closed.
                    let Ok(permit) = shared.pending.clone().try_acquire_owned() else {
                        inc(&shared.metrics.pending_refused);
                        tracing::debug!(%peer, "too many connections not upgraded yet; closed");
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let server = self.server.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        #[cfg(feature = "tls")]
                        if let Some(tls) = server.shared.tls.clone() {
                            // In this task, so a slow or silent client
                            // never holds up the accept loop.
                            match tls.accept(stream).await {
                                Ok(stream) => serve_http(server, stream, peer).await,
                                Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            }
                            return;
                        }
                        serve_http(server, stream, peer).await;
                    });
                }
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
            }
        }
        drop(self.listener);
        let deadline = shared.config.shutdown_grace + Duration::from_secs(1);
        let _ = tokio::time::timeout(deadline, async {
            loop {
                let changed = shared.open_changed.notified();
                if shared.open.load(Ordering::Acquire) == 0 {
                    break;
                }
                changed.await;
            }
        })
        .await;
        tracing::info!("wslink server stopped");
        Ok(())
    }
}

/// Serves HTTP/1.1 (static files and WebSocket upgrades) on one
/// connection, plain or TLS.
async fn serve_http<IO>(server: Server, io: IO, peer: SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = server.shared.config.limits.http_header_timeout;
    let service = service_fn(move |req| {
        let server = server.clone();
        async move {
            Ok::<_, std::convert::Infallible>(crate::http::handle(&server, req, Some(peer)).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // hyper times headers only with a timer given.
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE
        || e.raw_os_error() == Some(23) // ENFILE
}

/// wslink's `--timeout`: stop once no client has been connected for
/// `timeout`, counting from start and from each time the last one leaves.
async fn idle_timer(shared: Arc<Shared>, timeout: Duration) {
    loop {
        let changed = shared.open_changed.notified();
        if shared.open.load(Ordering::Acquire) == 0 {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {
                    if shared.open.load(Ordering::Acquire) == 0 {
                        tracing::info!(?timeout, "no client connected; shutting down");
                        shared.shutdown.send_replace(true);
                        return;
                    }
                }
                _ = changed => {}
            }
        } else {
            changed.await;
        }
    }
}
