//! The HTTP side: the WebSocket upgrade on the wslink endpoint, static files
//! everywhere else (wslink's `--content`), so a web app and its socket share
//! one origin.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::http::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::config::ServerConfig;
use crate::context::ConnectionInfo;
use crate::policy::Verdict;
use crate::server::Server;
use crate::transport::deflate;

/// The response type of [`Server::handle_request`].
pub type HttpResponse = Response<Full<Bytes>>;

impl Server {
    /// Answers one HTTP request: upgrades it to a wslink connection if it is
    /// a WebSocket request for the endpoint, serves a static file otherwise.
    ///
    /// This is how the server mounts inside an existing hyper or axum app:
    /// route the endpoint's requests here (the request must come from a
    /// hyper connection served `with_upgrades()`, as `axum::serve` does).
    /// The app owns the listener, so the server's idle timeout
    /// ([`ServerConfig::idle_timeout`](crate::ServerConfig::idle_timeout))
    /// does not apply; graceful shutdown does ([`Server::shutdown`]).
    ///
    /// ```no_run
    /// use axum::{extract::Request, routing::get, Router};
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let wslink = wslink_server::Server::builder().build();
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "the app's own page" }))
    ///     .route("/ws", get(move |req: Request| {
    ///         let wslink = wslink.clone();
    ///         async move { wslink.handle_request(req, None).await }
    ///     }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// axum::serve(listener, app).await
    /// # }
    /// ```
    pub async fn handle_request<B>(
        &self,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> HttpResponse {
        handle(self, req, peer).await
    }
}

pub(crate) async fn handle<B>(
    server: &Server,
    mut req: Request<B>,
    peer: Option<SocketAddr>,
) -> HttpResponse {
    let config = &server.shared.config;
    let mut response = if config.websocket && req.uri().path() == config.ws_endpoint {
        upgrade(server, &mut req, peer)
    } else {
        // Only the method, path and query go on: holding the request across
        // an await would make this future `!Send` for bodies that are not
        // `Sync` (axum's), and so unusable as an axum handler.
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        static_route(config, method, path, query).await
    };
    // Python sets them from a middleware after its handler returns, which for
    // the WebSocket is after the 101 went out: they never reach an upgrade.
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let headers = response.headers_mut();
        for (name, value) in &config.http_headers {
            headers.entry(name).or_insert_with(|| value.clone());
        }
    }
    response
}

/// Static files: `/` redirects to `index.html` (as wslink's aiohttp server
/// does), then the `fs_endpoints` with the longest matching prefix, then
/// `content`.
async fn static_route(
    config: &ServerConfig,
    method: Method,
    path: String,
    query: String,
) -> HttpResponse {
    if config.content.is_none() && config.fs_endpoints.is_empty() {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if path == "/" && (method == Method::GET || method == Method::HEAD) {
        return wslink_static::redirect_to_index(Some(&query));
    }
    let Some(decoded) = wslink_static::decode_path(&path) else {
        return wslink_static::not_found();
    };
    let mount = config
        .fs_endpoints
        .iter()
        .filter(|(prefix, _)| under_prefix(&decoded, prefix))
        .max_by_key(|(prefix, _)| prefix.len());
    let (root, rest) = match (mount, &config.content) {
        (Some((prefix, dir)), _) => (dir, &decoded[prefix.len()..]),
        (None, Some(dir)) => (dir, decoded.as_str()),
        (None, None) => return wslink_static::not_found(),
    };
    wslink_static::serve_decoded(root, &method, rest, config.follow_symlinks.into()).await
}

/// Whether `path` is `prefix` or below it, segment-wise (`/data` holds
/// `/data/a` but not `/database`).
fn under_prefix(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn plain(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn header_has(req: &Request<impl Sized>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn upgrade<B>(server: &Server, req: &mut Request<B>, peer: Option<SocketAddr>) -> HttpResponse {
    let shared = server.shared.clone();
    if req.method() != Method::GET
        || !header_has(req, header::CONNECTION, "upgrade")
        || !header_has(req, header::UPGRADE, "websocket")
    {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks wslink over WebSocket\n",
        );
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "unsupported WebSocket version (13 required)\n",
        );
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    if shared.is_shutting_down() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "server shutting down\n");
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if !shared.config.allowed_origins.allows(origin, host) {
        tracing::warn!(
            origin = origin.unwrap_or_default(),
            peer = ?peer,
            forwarded_for = ?req.headers().get("x-forwarded-for"),
            allowed = %shared.config.allowed_origins,
            "WebSocket upgrade refused: origin not allowed"
        );
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    // Behind a trusted proxy the browser's address, not the proxy's: one
    // guesser must not ban everyone who comes through it.
    let client_ip = peer.map(|p| {
        shared
            .config
            .trusted_proxies
            .client_ip(p.ip(), req.headers())
    });
    if let Some(Verdict::Banned(left)) = client_ip.map(|ip| shared.throttle.check(ip)) {
        tracing::info!(client = ?client_ip, peer = ?peer, "WebSocket upgrade refused: too many failed hellos from this address");
        let mut r = plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed wslink.hello attempts from this address\n",
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(left.as_secs().max(1)),
        );
        return r;
    }
    let limits = &shared.config.limits;
    // Nothing below refuses the upgrade: the slot taken here is given back
    // when the connection's task ends.
    if !shared.try_open_connection(limits.max_connections) {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
    }
    let accept = derive_accept_key(key.as_bytes());
    let info = ConnectionInfo {
        client_id: Arc::from(format!("c{}", uuid::Uuid::new_v4().simple())),
        peer,
        client_ip,
        uri: owned_uri(req.uri()),
        headers: owned_headers(req.headers()),
        relayed: false,
    };
    // permessage-deflate unless turned off; an offer we cannot take is
    // simply not accepted (RFC 7692 §5).
    let deflate = if shared.config.compression {
        deflate::negotiate(
            req.headers()
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    } else {
        None
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                crate::connection::run(shared.clone(), io, deflate, info).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
        shared.connection_closed();
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(Ok(v)) = deflate.map(|d| HeaderValue::from_str(&d.response())) {
        h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
    }
    r
}

/// hyper's parsed header values and URI are slices of its 8 KiB read
/// buffer: a clone kept for the connection's life would keep that buffer
/// too (it was most of an idle connection's memory). These copies own
/// their few bytes.
fn owned_headers(headers: &hyper::HeaderMap) -> hyper::HeaderMap {
    let mut out = hyper::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            out.append(name.clone(), copy);
        }
    }
    out
}

fn owned_uri(uri: &hyper::Uri) -> hyper::Uri {
    hyper::Uri::from_maybe_shared(Bytes::copy_from_slice(uri.to_string().as_bytes()))
        .unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_and_uri_do_not_share_the_request_buffer() {
        let buffer = Bytes::from_static(b"/ws?a=1 text/plain");
        let mut headers = hyper::HeaderMap::new();
        let value = HeaderValue::from_maybe_shared(buffer.slice(8..)).unwrap();
        headers.insert(header::ACCEPT, value);
        let uri = hyper::Uri::from_maybe_shared(buffer.slice(..7)).unwrap();
        let (h, u) = (owned_headers(&headers), owned_uri(&uri));
        assert_eq!((&h, &u), (&headers, &uri));
        let range = buffer.as_ptr_range();
        assert!(!range.contains(&h[header::ACCEPT].as_bytes().as_ptr()));
        assert!(!range.contains(&u.path().as_ptr()));
    }
}
