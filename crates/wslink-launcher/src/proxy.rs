//! The built-in WebSocket proxy: a browser's WebSocket to a session's
//! process through the launcher's own port, so a deployment needs one
//! public port and no Apache.
//!
//! A browser opens `ws://LAUNCHER/proxy?sessionId=ID` (the route is
//! `configuration.proxy.path`); the launcher opens a connection to the
//! session's host and port, passes the WebSocket handshake on (the path is
//! `proxy.target_path`, or `/PATH` when the request has `&path=PATH` as in
//! ParaView's Apache setups) and, once both sides have switched protocols,
//! copies bytes both ways. Each direction has one 16 KiB buffer and reads
//! again only when the previous bytes are written, so a slow reader slows
//! only its own connection and memory per connection stays fixed. Frames
//! are not decoded: the session's server applies its own limits.
//!
//! An unknown or ended session answers 404, a session still starting 503,
//! a connection over `proxy.max_connections` 503, each with a JSON
//! `{"error": ...}` body; a handshake the session's server refuses is
//! passed back as it answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

use crate::api::json_response;
use crate::config::ProxySettings;
use crate::sessions::{SessionManager, Unreachable};

/// Bytes buffered per direction of a proxied connection.
pub const BUFFER_BYTES: usize = 16 * 1024;

/// The proxy's settings and its connection budget.
pub(crate) struct Proxy {
    pub(crate) settings: ProxySettings,
    permits: Arc<Semaphore>,
    closing: watch::Receiver<bool>,
}

impl Proxy {
    pub(crate) fn new(settings: ProxySettings, closing: watch::Receiver<bool>) -> Self {
        Proxy {
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            closing,
        }
    }
}

/// `(sessionId, path)` from a query string.
fn parse_query(query: &str) -> (Option<String>, Option<String>) {
    let mut id = None;
    let mut path = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = wslink_static::percent_decode(&value.replace('+', " "));
        match key {
            "sessionId" => id = value,
            "path" => path = value,
            _ => {}
        }
    }
    (id, path)
}

/// A `path=` value usable as a path on the session's server.
fn target_path(requested: &str) -> Option<String> {
    let trimmed = requested.trim_start_matches('/');
    let ok = trimmed.len() <= 256
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && !trimmed.split('/').any(|s| s == "..");
    ok.then(|| format!("/{trimmed}"))
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message }))
}

/// Answers a request on the proxy route.
pub(crate) async fn handle(
    proxy: &Proxy,
    sessions: &SessionManager,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let (id, requested_path) = parse_query(req.uri().query().unwrap_or(""));
    let Some(id) = id.filter(|id| !id.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "the proxy needs a session: {}?sessionId=ID",
                proxy.settings.path
            ),
        );
    };
    if !is_upgrade(&req) {
        return error(
            StatusCode::BAD_REQUEST,
            "the proxy only carries WebSocket connections (no Upgrade: websocket header)".into(),
        );
    }
    let path = match requested_path {
        None => proxy.settings.target_path.clone(),
        Some(p) => match target_path(&p) {
            Some(path) => path,
            None => return error(StatusCode::BAD_REQUEST, "unusable path parameter".into()),
        },
    };
    let shown_id: String = id.chars().take(64).collect();
    let (host, port) = match sessions.proxy_target(&id) {
        Ok(target) => target,
        Err(Unreachable::Unknown) => {
            info!("proxy: refused {peer}: no session {shown_id:?}");
            return error(
                StatusCode::NOT_FOUND,
                format!("No session with id: {shown_id} (it has ended, or never existed)"),
            );
        }
        Err(Unreachable::Starting) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Session {shown_id} is not ready yet"),
            )
        }
    };
    let Ok(permit) = Arc::clone(&proxy.permits).try_acquire_owned() else {
        warn!(
            "proxy: refused {peer}: {} connections already open",
            proxy.settings.max_connections
        );
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many proxied connections; try again".into(),
        );
    };

    // The session's side of the handshake.
    let connect = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut forward = Request::builder().method(req.method()).uri(&path);
        for (name, value) in req.headers() {
            if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
                forward = forward.header(name, value);
            }
        }
        if !req.headers().contains_key(header::HOST) {
            forward = forward.header(header::HOST, format!("{host}:{port}"));
        }
        let forward = forward
            .header("x-forwarded-for", peer.ip().to_string())
            .body(Empty::new())
            .map_err(std::io::Error::other)?;
        sender
            .send_request(forward)
            .await
            .map_err(std::io::Error::other)
    };
    let mut response = match tokio::time::timeout(proxy.settings.connect_timeout, connect).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            warn!("proxy: session {id} at {host}:{port} unreachable: {e}");
            return error(
                StatusCode::BAD_GATEWAY,
                format!("Session {id} did not accept the connection: {e}"),
            );
        }
        Err(_) => {
            warn!("proxy: session {id} at {host}:{port}: no handshake within the connect timeout");
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("Session {id} did not answer in time"),
            );
        }
    };

    let status = response.status();
    let mut answer = Response::builder().status(status);
    for (name, value) in response.headers() {
        let hop = name == header::TRANSFER_ENCODING || name == header::CONTENT_LENGTH;
        if !hop || status == StatusCode::SWITCHING_PROTOCOLS {
            answer = answer.header(name, value);
        }
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // Refused (origin, throttling, wrong path...): pass it back as is.
        let body = Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        info!("proxy: session {id} refused the WebSocket of {peer}: {status}");
        return answer.body(Full::new(body)).unwrap_or_else(|_| {
            error(
                StatusCode::BAD_GATEWAY,
                "bad answer from the session".into(),
            )
        });
    }

    let to_session = hyper::upgrade::on(&mut response);
    let to_browser = hyper::upgrade::on(&mut req);
    let mut closing = proxy.closing.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        let upgraded = tokio::time::timeout(Duration::from_secs(10), async {
            Ok::<_, hyper::Error>((to_browser.await?, to_session.await?))
        })
        .await;
        let (browser, session) = match upgraded {
            Ok(Ok(pair)) => pair,
            _ => return,
        };
        info!("proxy: {peer} connected to session {id} ({host}:{port})");
        let mut browser = TokioIo::new(browser);
        let mut session = TokioIo::new(session);
        let outcome = tokio::select! {
            r = tokio::io::copy_bidirectional_with_sizes(&mut browser, &mut session, BUFFER_BYTES, BUFFER_BYTES) => r.ok(),
            () = crate::until_true(&mut closing) => None,
        };
        let (up, down) = outcome.unwrap_or((0, 0));
        info!(
            "proxy: {peer} left session {id} after {:.1} s ({up} bytes up, {down} down)",
            started.elapsed().as_secs_f64()
        );
    });
    answer.body(Full::new(Bytes::new())).unwrap_or_else(|_| {
        error(
            StatusCode::BAD_GATEWAY,
            "bad answer from the session".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_paths() {
        assert_eq!(
            parse_query("sessionId=ab%2Dc&path=ws"),
            (Some("ab-c".into()), Some("ws".into()))
        );
        assert_eq!(parse_query("x=1"), (None, None));
        assert_eq!(target_path("ws"), Some("/ws".into()));
        assert_eq!(target_path("/a/b_c.d"), Some("/a/b_c.d".into()));
        assert_eq!(target_path("../etc"), None);
        assert_eq!(target_path("a?b"), None);
        assert_eq!(target_path("a b"), None);
    }
}
