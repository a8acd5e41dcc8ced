//! `--mode forward` (Kitware's default): the relay itself connects to
//! `ws://{host}:{port}/{path}` (from the route's placeholders; localhost,
//! 1234 and `ws` when the route has none) and carries the browser's
//! messages there and back. One browser per target at a time, as Kitware's,
//! which answers a second one 403 at once. Ours first waits up to the same
//! grace as relay mode for the one before it to finish leaving (a reloaded
//! page reconnects while its old socket is still closing), then answers
//! 403, before the upgrade.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::header::HeaderValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::side::{next_data, Read, Rx, SendFailed, Side};
use crate::Settings;

/// Close code when the target cannot be reached.
pub const UNREACHABLE: u16 = 4502;

/// The targets with a browser connected.
#[derive(Default)]
pub(crate) struct Targets {
    busy: Mutex<HashSet<String>>,
    /// Told whenever a target is released.
    freed: tokio::sync::Notify,
}

/// A target held while its browser is connected.
pub(crate) struct Claim {
    targets: Arc<Targets>,
    url: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.targets
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.url);
        self.targets.freed.notify_waiters();
    }
}

impl Targets {
    /// Holds `url` for one browser; `None` if another has it.
    fn try_claim(self: &Arc<Self>, url: &str) -> Option<Claim> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(url.to_owned()).then(|| Claim {
            targets: self.clone(),
            url: url.to_owned(),
        })
    }

    /// Holds `url` for one browser, waiting up to `grace` for the browser
    /// holding it to leave; `None` if it is still there then.
    pub(crate) async fn claim(self: &Arc<Self>, url: &str, grace: Duration) -> Option<Claim> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a release in between is seen.
            freed.as_mut().enable();
            if let Some(claim) = self.try_claim(url) {
                return Some(claim);
            }
            tokio::time::timeout_at(deadline, freed).await.ok()?;
        }
    }
}

/// The target URL for a route's placeholders.
pub(crate) fn target_url(vars: &std::collections::HashMap<String, String>) -> Option<String> {
    let host = vars.get("host").map_or("localhost", |s| s.as_str());
    let port: u16 = vars.get("port").map_or(Some(1234), |p| p.parse().ok())?;
    let path = vars.get("path").map_or("ws", |s| s.as_str());
    Some(format!(
        "ws://{host}:{port}/{}",
        path.trim_start_matches('/')
    ))
}

/// The `X-Forwarded-For` for the target: the browser's own header, if
/// any (a proxy in front of the relay), then the address the relay saw.
pub(crate) fn forwarded_for(headers: &hyper::HeaderMap, peer: std::net::IpAddr) -> String {
    let mut list: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    list.push(peer.to_canonical().to_string());
    list.join(", ")
}

/// Connects to the target and carries messages both ways until either side
/// leaves; then both are closed.
pub(crate) async fn serve(
    settings: Arc<Settings>,
    url: String,
    claim: Claim,
    browser: Arc<Side>,
    mut browser_rx: Rx,
    ws_config: WebSocketConfig,
    forwarded_for: String,
) {
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        let mut request = url.as_str().into_client_request()?;
        // The target sees the relay's address; this names the browser, for
        // a server that trusts the relay (`wslink serve --trusted-proxy`).
        if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
            request.headers_mut().insert("x-forwarded-for", value);
        }
        tokio_tungstenite::connect_async_with_config(request, Some(ws_config), false).await
    })
    .await;
    let target = match connected {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            tracing::info!(%url, error = %e, "target unreachable");
            browser
                .close(UNREACHABLE, &format!("relay: cannot reach {url}"))
                .await;
            return;
        }
        Err(_) => {
            browser
                .close(UNREACHABLE, &format!("relay: {url} did not answer"))
                .await;
            return;
        }
    };
    let (target, mut target_rx) = Side::new(target, format!("target {url}"));
    tracing::info!(%url, "forwarding");
    let there = pump(&settings, &browser, &mut browser_rx, &target);
    let back = pump(&settings, &target, &mut target_rx, &browser);
    tokio::select! {
        end = there => close_both(&browser, &target, end).await,
        end = back => close_both(&target, &browser, end).await,
    }
    drop(claim);
    tracing::info!(%url, "forward ended");
}

async fn close_both(from: &Side, to: &Side, end: Option<(u16, String)>) {
    let (code, reason) = end.unwrap_or((1000, String::new()));
    from.close(code, &reason).await;
    to.close(1001, "relay: the other side left").await;
}

/// Carries `from`'s messages to `to`; returns the close for `from`.
async fn pump(settings: &Settings, from: &Side, rx: &mut Rx, to: &Side) -> Option<(u16, String)> {
    loop {
        let msg = match next_data(from, rx, settings.heartbeat, settings.stall).await {
            Read::Data(msg) => msg,
            Read::End(refusal) => return refusal,
        };
        match to.send(msg, settings.stall).await {
            Ok(()) => {}
            Err(SendFailed::Stalled) => {
                to.close(crate::pairing::STALLED, "relay: stopped reading")
                    .await;
                return Some((1001, "relay: the other side stopped reading".into()));
            }
            Err(SendFailed::Gone) => return Some((1001, "relay: the other side left".into())),
        }
    }
}
