//! What a handler knows about the call it serves.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::http::{HeaderMap, Uri};

use crate::publisher::Publisher;

/// The connection a call came in on: who, from where, with what HTTP request.
///
/// ```
/// use wslink_server::Server;
///
/// // Refuse nothing, but note where browsers connect from.
/// let server = Server::builder()
///     .on_connect(|conn| {
///         let origin = conn.headers().get("origin").and_then(|v| v.to_str().ok());
///         tracing::info!(client = conn.client_id(), peer = ?conn.peer_addr(), ?origin, "connected");
///     })
///     .build();
/// # drop(server);
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub(crate) client_id: Arc<str>,
    pub(crate) peer: Option<SocketAddr>,
    /// The client's address: the peer's, or the one a trusted proxy
    /// forwarded.
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) relayed: bool,
}

impl ConnectionInfo {
    /// The client id this connection was given (`c` and 32 hex digits).
    ///
    /// It is the same id handlers see as [`CallContext::client_id`] and
    /// [`ServerBuilder::on_close`](crate::ServerBuilder::on_close) is given,
    /// so it keys per-client state across all three:
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Instant;
    /// use wslink_server::Server;
    ///
    /// let since: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    /// let (joined, left) = (since.clone(), since.clone());
    /// let server = Server::builder()
    ///     .on_connect(move |conn| {
    ///         joined.lock().unwrap().insert(conn.client_id().to_owned(), Instant::now());
    ///     })
    ///     .on_close(move |client_id| {
    ///         if let Some(t) = left.lock().unwrap().remove(client_id) {
    ///             tracing::info!(client = client_id, stayed = ?t.elapsed(), "left");
    ///         }
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether this is the server's own connection out to a relay
    /// ([`Server::serve_reverse`](crate::Server::serve_reverse)): browsers
    /// then come one after another on it, each with its own hello.
    ///
    /// ```
    /// let server = wslink_server::Server::builder()
    ///     .on_connect(|conn| {
    ///         if conn.is_relayed() {
    ///             tracing::info!("connected to the relay; browsers come through it");
    ///         }
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn is_relayed(&self) -> bool {
        self.relayed
    }

    /// The peer's address, when the transport has one.
    ///
    /// A server embedded with
    /// [`Server::handle_request`](crate::Server::handle_request) and no
    /// address given has none; behind a reverse proxy it is the proxy's.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let server = Server::builder()
    ///     .on_connect(|conn| match conn.peer_addr() {
    ///         Some(addr) if !addr.ip().is_loopback() => {
    ///             tracing::info!(%addr, "remote viewer connected");
    ///         }
    ///         _ => {}
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The client's address: the peer's, or, when the peer is a trusted
    /// proxy ([`ServerBuilder::trusted_proxies`](crate::ServerBuilder::trusted_proxies)),
    /// the one it forwarded in `X-Forwarded-For`. This is the address the
    /// failed-hello limit counts. `None` when there is no peer address.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let server = Server::builder()
    ///     .trusted_proxies("127.0.0.1".parse().unwrap())
    ///     .on_connect(|conn| {
    ///         tracing::info!(client = ?conn.client_ip(), via = ?conn.peer_addr(), "connected");
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// The URI of the WebSocket upgrade request (query string included).
    ///
    /// The query string is how a page passes what its npm client's hello
    /// cannot, such as which dataset it opened:
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let server = Server::builder()
    ///     .on_connect(|conn| {
    ///         // ws://host/ws?dataset=head.vti
    ///         let dataset = conn
    ///             .uri()
    ///             .query()
    ///             .into_iter()
    ///             .flat_map(|q| q.split('&'))
    ///             .find_map(|pair| pair.strip_prefix("dataset="));
    ///         tracing::info!(client = conn.client_id(), ?dataset, "connected");
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The headers of the WebSocket upgrade request (cookies, origin, ...).
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let server = Server::builder()
    ///     .on_connect(|conn| {
    ///         // Behind a proxy the peer address is the proxy's; it passes the
    ///         // browser's own in a header.
    ///         // (`ServerBuilder::trusted_proxies` decides whether to believe it.)
    ///         let forwarded = conn.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    ///         tracing::info!(client = conn.client_id(), ?forwarded, "connected");
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// Handed to every handler: the caller's connection and a publisher.
///
/// ```
/// use wslink_server::{CallContext, HandlerError, Server};
///
/// let server = Server::builder()
///     .method("session.whoami", |ctx: CallContext, (): ()| async move {
///         // The upgrade request's query string, e.g. ?user=ada
///         let query = ctx.connection().uri().query().unwrap_or("").to_owned();
///         Ok::<_, HandlerError>((ctx.client_id().to_owned(), ctx.method().to_owned(), query))
///     })
///     .build();
/// # drop(server);
/// ```
#[derive(Clone)]
pub struct CallContext {
    pub(crate) connection: Arc<ConnectionInfo>,
    pub(crate) method: Arc<str>,
    pub(crate) publisher: Publisher,
}

impl CallContext {
    /// The calling client's id.
    ///
    /// The address for [`Publisher::publish_to`], and the key for state
    /// kept per client:
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::{Arc, Mutex};
    /// use wslink_server::{CallContext, HandlerError, Methods};
    ///
    /// let names: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    /// let mut methods = Methods::new();
    /// methods.add_with(names, "chat.nick", |names, ctx: CallContext, (nick,): (String,)| async move {
    ///     let old = names.lock().unwrap().insert(ctx.client_id().to_owned(), nick);
    ///     Ok::<_, HandlerError>(old)
    /// });
    /// # assert!(methods.contains("chat.nick"));
    /// ```
    pub fn client_id(&self) -> &str {
        &self.connection.client_id
    }

    /// The calling connection.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::builder()
    ///     .method("admin.reset", |ctx: CallContext, (): ()| async move {
    ///         // Only from the machine itself, whatever the secret said.
    ///         let local = ctx.connection().peer_addr().is_some_and(|a| a.ip().is_loopback());
    ///         if !local {
    ///             return Err(HandlerError::rpc(-32003, "admin calls are local only", None));
    ///         }
    ///         Ok(())
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// The method being called.
    ///
    /// One handler can serve several names and still tell them apart:
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Methods};
    ///
    /// async fn step(ctx: CallContext, (): ()) -> Result<i32, HandlerError> {
    ///     Ok(if ctx.method() == "time.next" { 1 } else { -1 })
    /// }
    ///
    /// let mut methods = Methods::new();
    /// methods.add("time.next", step).add("time.previous", step);
    /// assert_eq!(methods.names(), ["time.next", "time.previous"]);
    /// ```
    pub fn method(&self) -> &str {
        &self.method
    }

    /// A publisher for this server, to send to one client or to all.
    ///
    /// The same as [`Server::publisher`](crate::Server::publisher), without
    /// having to capture the server in every handler:
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::builder()
    ///     .method("chat.say", |ctx: CallContext, (text,): (String,)| async move {
    ///         let sent = ctx
    ///             .publisher()
    ///             .publish("chat.line", &(ctx.client_id(), text))
    ///             .map_err(HandlerError::msg)?;
    ///         // Tell the speaker how many heard it.
    ///         Ok::<_, HandlerError>(sent)
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("client_id", &self.connection.client_id)
            .field("method", &self.method)
            .finish()
    }
}
