//! `--mode relay`: a server that connected out and the browser that comes
//! for it meet on the same URL path.
//!
//! The rules, Kitware's first and ours where it had none:
//!
//! - The first connection on a path is its server; it holds the path until
//!   it leaves. Ours says so with the [`ROLE_HEADER`]; Kitware's says
//!   nothing, so a connection without it is taken for the server of an
//!   empty path, and for a client of a path that has one.
//! - A server never speaks first (a wslink server answers a hello). A
//!   "server" that sends a message before any client came is a browser
//!   that found no server: it gets close code [`NO_SERVER`] and the path is
//!   freed. A browser (a request with an `Origin` header) on an empty path
//!   gets the same at once.
//! - One client at a time per server, as Kitware's: the server sees one
//!   connection, with one client id. Another waits up to two seconds for
//!   the first to finish leaving (a reloaded page), then gets [`BUSY`]
//!   (Kitware's answers HTTP 403 at once). A second server for a held
//!   path gets HTTP 409 when it says it is one (Kitware's, which does
//!   not, is taken for a client there, as Kitware's relay takes it).
//! - A client leaving does not end the server: the next client on the path
//!   gets it. First the server gets a ping whose payload is [`CLIENT_LEFT`]:
//!   ours then wants a new hello; Kitware's answers the ping and lets the
//!   next client in on the last one's hello. What the server sends while
//!   no client is there is dropped. The server leaving ends its client's
//!   connection (close code 1001).
//! - A side that does not take a message within the stall timeout is
//!   dropped: a stalled client alone (its server waits for the next), a
//!   stalled server with its client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::HeaderMap;

use crate::side::{next_data, Read, Rx, SendFailed, Side};
use crate::Settings;

/// The request header by which a server says it is one:
/// `wslink-relay-role: server`. Kitware's servers do not send it.
pub const ROLE_HEADER: &str = "wslink-relay-role";
/// Close code for a client on a path no server holds.
pub const NO_SERVER: u16 = 4404;
/// Close code for a second client on a held path (after a grace for the
/// first to finish leaving).
pub const BUSY: u16 = 4409;
/// Close code for a side dropped because it stopped reading.
pub const STALLED: u16 = 4408;
/// The payload of the ping a server gets when its client leaves, before
/// the next can come: ours forgets the last client's hello; Kitware's
/// answers it as any ping.
pub const CLIENT_LEFT: &[u8] = b"wslink-relay: client left";

struct Path {
    server: Arc<Side>,
    /// A client has been paired with it: from then on it may speak unasked.
    confirmed: AtomicBool,
    client: Mutex<Option<Arc<Side>>>,
    /// Signalled when the client leaves.
    freed: tokio::sync::Notify,
}

impl Path {
    /// Tells the server its client left, then frees the path for the next
    /// (in that order, so the next one's hello cannot come before it).
    async fn client_left(&self, side: &Arc<Side>, stall: std::time::Duration) {
        let attached = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, side));
        if attached {
            let ping = tokio_tungstenite::tungstenite::Message::Ping(bytes::Bytes::from_static(
                CLIENT_LEFT,
            ));
            let _ = self.server.send(ping, stall).await;
        }
        self.detach(side);
    }

    fn detach(&self, side: &Arc<Side>) {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if client.as_ref().is_some_and(|c| Arc::ptr_eq(c, side)) {
            *client = None;
            self.freed.notify_waiters();
        }
    }
}

/// How long a browser waits for the one before it to finish leaving (a page
/// reloaded reconnects while its old socket is still closing), in either
/// mode.
pub(crate) const BUSY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The paths with a server, and counters for the logs and tests.
#[derive(Default)]
pub(crate) struct Paths {
    map: Mutex<HashMap<String, Arc<Path>>>,
    pub(crate) dropped_messages: AtomicU64,
}

enum Role {
    Server(Arc<Path>),
    Client(Arc<Path>),
    Refused(u16, String),
    /// The path's client is still there: wait for it to leave, then ask again.
    Busy(Arc<Path>),
}

/// What the request itself says about its role.
pub(crate) struct Hints {
    pub declared_server: bool,
    pub browser: bool,
}

impl Hints {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Hints {
        Hints {
            declared_server: headers
                .get(ROLE_HEADER)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"server")),
            browser: headers.contains_key(hyper::header::ORIGIN),
        }
    }
}

impl Paths {
    pub(crate) fn is_held(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Path>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn assign(&self, id: &str, hints: &Hints, side: &Arc<Side>) -> Role {
        let mut map = self.lock();
        match map.get(id) {
            None if hints.browser && !hints.declared_server => Role::Refused(
                NO_SERVER,
                format!("no wslink server is connected to the relay on {id}"),
            ),
            None => {
                let path = Arc::new(Path {
                    server: side.clone(),
                    confirmed: AtomicBool::new(false),
                    client: Mutex::new(None),
                    freed: tokio::sync::Notify::new(),
                });
                map.insert(id.to_owned(), path.clone());
                Role::Server(path)
            }
            Some(_) if hints.declared_server => Role::Refused(
                BUSY,
                format!("another wslink server already holds {id} on the relay"),
            ),
            Some(path) => {
                let mut client = path.client.lock().unwrap_or_else(|e| e.into_inner());
                if client.is_some() {
                    return Role::Busy(path.clone());
                }
                *client = Some(side.clone());
                path.confirmed.store(true, Ordering::Release);
                Role::Client(path.clone())
            }
        }
    }

    /// Frees the path if `path` still holds it.
    fn release(&self, id: &str, path: &Arc<Path>) {
        let mut map = self.lock();
        if map.get(id).is_some_and(|p| Arc::ptr_eq(p, path)) {
            map.remove(id);
        }
    }
}

/// Runs one upgraded connection on path `id` until it ends.
pub(crate) async fn serve(
    settings: Arc<Settings>,
    paths: Arc<Paths>,
    id: String,
    hints: Hints,
    side: Arc<Side>,
    mut rx: Rx,
) {
    let deadline = tokio::time::Instant::now() + BUSY_GRACE;
    let mut role = paths.assign(&id, &hints, &side);
    while let Role::Busy(path) = role {
        let freed = path.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        // It may have left between the first look and `enable`.
        role = paths.assign(&id, &hints, &side);
        if !matches!(role, Role::Busy(_)) {
            break;
        }
        role = if tokio::time::timeout_at(deadline, freed).await.is_err() {
            Role::Refused(
                BUSY,
                format!("another client is already connected through {id}"),
            )
        } else {
            paths.assign(&id, &hints, &side)
        };
    }
    match role {
        Role::Busy(_) => unreachable!("resolved above"),
        Role::Refused(code, reason) => {
            tracing::info!(path = %id, code, %reason, "connection refused");
            side.close(code, &reason).await;
        }
        Role::Server(path) => {
            tracing::info!(path = %id, declared = hints.declared_server, "server connected");
            let end = server_loop(&settings, &paths, &path, &mut rx).await;
            paths.release(&id, &path);
            let (code, reason) = end.unwrap_or((1000, String::new()));
            path.server.close(code, &reason).await;
            let client = path.client.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(client) = client {
                client.close(1001, "the wslink server left the relay").await;
            }
            tracing::info!(path = %id, "server gone; path free");
        }
        Role::Client(path) => {
            tracing::info!(path = %id, "client paired");
            let end = client_loop(&settings, &path, &side, &mut rx).await;
            path.client_left(&side, settings.stall).await;
            let (code, reason) = end.unwrap_or((1000, String::new()));
            side.close(code, &reason).await;
            tracing::info!(path = %id, "client left; the server waits for the next");
        }
    }
}

/// Forwards the server's messages to its client; returns the close to send
/// the server, if any.
async fn server_loop(
    settings: &Settings,
    paths: &Paths,
    path: &Path,
    rx: &mut Rx,
) -> Option<(u16, String)> {
    loop {
        let msg = match next_data(&path.server, rx, settings.heartbeat, settings.stall).await {
            Read::Data(msg) => msg,
            Read::End(refusal) => return refusal,
        };
        let client = path
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(client) = client else {
            if !path.confirmed.load(Ordering::Acquire) {
                return Some((
                    NO_SERVER,
                    "no wslink server is connected to the relay on this path".into(),
                ));
            }
            // Kitware's relay drops these too: the client they were for left.
            paths.dropped_messages.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(server = %path.server.label(), "no client: message dropped");
            continue;
        };
        match client.send(msg, settings.stall).await {
            Ok(()) => {}
            Err(failed) => {
                path.client_left(&client, settings.stall).await;
                if let SendFailed::Stalled = failed {
                    tracing::warn!(client = %client.label(), "client stopped reading: dropped");
                    client.close(STALLED, "relay: client stopped reading").await;
                } else {
                    client.mark_closed();
                }
            }
        }
    }
}

/// Forwards a client's messages to the server; returns the close to send
/// the client, if any.
async fn client_loop(
    settings: &Settings,
    path: &Path,
    side: &Side,
    rx: &mut Rx,
) -> Option<(u16, String)> {
    loop {
        let msg = match next_data(side, rx, settings.heartbeat, settings.stall).await {
            Read::Data(msg) => msg,
            Read::End(refusal) => return refusal,
        };
        match path.server.send(msg, settings.stall).await {
            Ok(()) => {}
            Err(SendFailed::Stalled) => {
                tracing::warn!(server = %path.server.label(), "server stopped reading: dropped");
                path.server
                    .close(STALLED, "relay: server stopped reading")
                    .await;
                return Some((1001, "the wslink server left the relay".into()));
            }
            Err(SendFailed::Gone) => {
                return Some((1001, "the wslink server left the relay".into()));
            }
        }
    }
}
