//! The launcher's HTTP API, on one port with the proxy and static files.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /ENDPOINT` (or `/ENDPOINT/`), body `{"application": ..., ...}` | 200 and the session's public fields, or `{"error": ...}` with 400, 413 or 503 |
//! | `GET /ENDPOINT/ID` (only with `WSLINK_LAUNCHER_GET`) | 200 and the public fields, 400 for an unknown id |
//! | `DELETE /ENDPOINT/ID` (only with `WSLINK_LAUNCHER_DELETE`) | 200 and the public fields once the process has exited, 404 for an unknown id |
//! | `GET PROXY_PATH?sessionId=ID` with `Upgrade: websocket` | the session's WebSocket, see [`crate::proxy`] |
//! | `GET /` and other paths | `configuration.content` (`GET /` redirects to `index.html`; paths never leave the directory) |
//!
//! The body is read as JSON whatever its `Content-Type` (npm wslink sends
//! `text/plain`), up to `configuration.max_request_bytes`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::error::LaunchError;
use crate::proxy::Proxy;
use crate::sessions::SessionManager;

/// Which optional routes are on; Kitware's launcher reads the same two
/// environment variables.
///
/// ```
/// let options = wslink_launcher::ApiOptions { enable_get: true, enable_delete: false };
/// assert!(options.enable_get);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiOptions {
    /// `GET /ENDPOINT/ID` (`WSLINK_LAUNCHER_GET`).
    pub enable_get: bool,
    /// `DELETE /ENDPOINT/ID` (`WSLINK_LAUNCHER_DELETE`).
    pub enable_delete: bool,
}

impl ApiOptions {
    /// Reads `WSLINK_LAUNCHER_GET` and `WSLINK_LAUNCHER_DELETE`: a route is
    /// on when its variable is a non-zero integer, as in Kitware's.
    pub fn from_env() -> Self {
        let on = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .is_some_and(|n| n != 0)
        };
        ApiOptions {
            enable_get: on("WSLINK_LAUNCHER_GET"),
            enable_delete: on("WSLINK_LAUNCHER_DELETE"),
        }
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn error(status: u16, message: impl std::fmt::Display) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({ "error": message.to_string() }),
    )
}

pub(crate) struct Api {
    pub(crate) sessions: SessionManager,
    pub(crate) options: ApiOptions,
    pub(crate) proxy: Option<Proxy>,
}

enum Route<'a> {
    Launch,
    Session(&'a str),
    Proxy,
    Other,
}

impl Api {
    fn route<'a>(&self, path: &'a str) -> Route<'a> {
        let endpoint = &self.sessions.config().configuration.endpoint;
        if let Some(proxy) = &self.proxy {
            if path == proxy.settings.path {
                return Route::Proxy;
            }
        }
        let Some(rest) = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(endpoint.as_str()))
        else {
            return Route::Other;
        };
        if rest.trim_matches('/').is_empty() {
            return Route::Launch;
        }
        match rest.strip_prefix('/') {
            Some(id) => Route::Session(id.trim_matches('/')),
            None => Route::Other,
        }
    }

    async fn launch(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let limit = self.sessions.config().configuration.max_request_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let outcome = if declared.is_some_and(|n| n > limit as u64) {
            Err(LaunchError::TooLarge { limit })
        } else {
            match Limited::new(req.into_body(), limit).collect().await {
                Err(e)
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some() =>
                {
                    Err(LaunchError::TooLarge { limit })
                }
                Err(e) => Err(LaunchError::Malformed(format!(
                    "the body could not be read: {e}"
                ))),
                Ok(body) => match serde_json::from_slice::<Value>(&body.to_bytes()) {
                    Err(e) => Err(LaunchError::Malformed(e.to_string())),
                    Ok(request) => self.sessions.launch(request).await,
                },
            }
        };
        match outcome {
            Ok(fields) => json_response(StatusCode::OK, &Value::Object(fields)),
            Err(e) => {
                warn!("POST from {peer}: {} {e}", e.status());
                error(e.status(), e)
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        match self.route(&path) {
            Route::Proxy => {
                return crate::proxy::handle(
                    self.proxy.as_ref().expect("routed"),
                    &self.sessions,
                    req,
                    peer,
                )
                .await
            }
            Route::Launch if method == Method::POST => return self.launch(req, peer).await,
            Route::Launch if method == Method::GET && self.options.enable_get => {
                return error(400, "id not provided in GET request")
            }
            Route::Launch if method == Method::DELETE && self.options.enable_delete => {
                return error(400, "id not provided in DELETE request")
            }
            Route::Session(id) if method == Method::GET && self.options.enable_get => {
                return match self.sessions.public_fields(id) {
                    Some(fields) => json_response(StatusCode::OK, &Value::Object(fields)),
                    None => error(400, format!("No session with id: {id}")),
                };
            }
            Route::Session(id) if method == Method::DELETE && self.options.enable_delete => {
                info!("DELETE request received for id: {id}");
                return match self.sessions.stop(id).await {
                    Some(fields) => json_response(StatusCode::OK, &Value::Object(fields)),
                    None => error(404, format!("No session with id: {id}")),
                };
            }
            Route::Launch if method != Method::GET && method != Method::HEAD => {
                return error(
                    405,
                    format!("{method} is not allowed here; POST a session request"),
                )
            }
            _ => {}
        }
        match &self.sessions.config().configuration.content {
            Some(root) => {
                wslink_static::serve(
                    root,
                    &method,
                    &path,
                    req.uri().query(),
                    wslink_static::Symlinks::StayInside,
                )
                .await
            }
            None if method == Method::GET || method == Method::HEAD => error(404, "Not Found"),
            None => error(405, "Method Not Allowed"),
        }
    }
}

pub(crate) async fn serve(
    api: Arc<Api>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(api.handle(req, peer).await)
}
