//! What a handler knows about the call it serves.

use std::net::SocketAddr;
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
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
}

impl ConnectionInfo {
    /// The client id this connection was given (`c` and 32 hex digits).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The peer's address, when the transport has one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The URI of the WebSocket upgrade request (query string included).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The headers of the WebSocket upgrade request (cookies, origin, ...).
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
    pub fn client_id(&self) -> &str {
        &self.connection.client_id
    }

    /// The calling connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// The method being called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// A publisher for this server, to send to one client or to all.
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
