//! A session launcher for wslink apps: a drop-in for Kitware's
//! `python -m wslink.launcher config.json`, with a built-in WebSocket proxy.
//!
//! A browser (npm wslink's `SmartConnect`) POSTs `{"application": NAME}` to
//! the launcher; the launcher takes a port from its pool, starts the app's
//! command line for that session, waits for its ready line and answers with
//! the `sessionURL` (and secret) to connect to. It reads Kitware's
//! configuration files ([`config`]), answers Kitware's HTTP API with the
//! same fields and messages ([`api`]), writes the same proxy-mapping file
//! and per-session logs, and adds:
//!
//! - no orphans and no leaks: a session's port returns to the pool when its
//!   process exits, whatever the reason; a process not ready by `timeout`
//!   is killed; stopping the launcher stops every process it started, with
//!   their children (each session is a process group) ([`sessions`]);
//! - no shell, and client values reach a command line only through
//!   `sanitize` rules ([`sanitize`], [`template`]);
//! - the secret off command lines: `${secretFile}` and per-app `env`;
//! - a WebSocket proxy on the launcher's own port ([`proxy`]);
//! - limits on concurrent launches and request size.
//!
//! ```no_run
//! use wslink_launcher::{config::Config, ApiOptions, Launcher};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_file("launcher.json")?;
//! let launcher = Launcher::new(config, ApiOptions::from_env())?;
//! let bound = launcher.bind_configured().await?;
//! // Handlers first: a script may signal as soon as it reads the next line.
//! let stop = wslink_launcher::terminate_signal();
//! println!("sessions at http://{}/paraview/", bound.local_addr());
//! // Serves until SIGINT or SIGTERM, then stops every session.
//! bound.run_until(stop).await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![cfg(unix)]

pub mod api;
pub mod config;
mod error;
pub mod pool;
mod process;
pub mod proxy;
pub mod sanitize;
pub mod sessions;
pub mod template;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tracing::{info, warn};

pub use api::ApiOptions;
pub use config::{Config, ConfigError};
pub use error::LaunchError;
pub use sessions::{Phase, SessionInfo, SessionManager};

/// A launcher: its sessions, its HTTP API and its proxy. Cheap to clone.
#[derive(Clone)]
pub struct Launcher {
    api: Arc<api::Api>,
    closing: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher")
            .field("sessions", &self.api.sessions)
            .field("options", &self.api.options)
            .finish()
    }
}

impl Launcher {
    /// A launcher for `config`; creates `log_dir` if needed.
    pub fn new(config: Config, options: ApiOptions) -> std::io::Result<Launcher> {
        for warning in config.warnings() {
            warn!("configuration: {warning}");
        }
        let (closing, closing_rx) = watch::channel(false);
        let proxy = config
            .configuration
            .proxy
            .clone()
            .map(|settings| proxy::Proxy::new(settings, closing_rx));
        let sessions = SessionManager::new(Arc::new(config))?;
        Ok(Launcher {
            api: Arc::new(api::Api {
                sessions,
                options,
                proxy,
            }),
            closing: Arc::new(closing),
        })
    }

    /// Its sessions.
    pub fn sessions(&self) -> &SessionManager {
        &self.api.sessions
    }

    /// Listens on `addr`.
    pub async fn bind(&self, addr: impl ToSocketAddrs) -> std::io::Result<Bound> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Bound {
            listener,
            launcher: self.clone(),
        })
    }

    /// Listens on `configuration.host` and `configuration.port`.
    pub async fn bind_configured(&self) -> std::io::Result<Bound> {
        let settings = &self.api.sessions.config().configuration;
        self.bind((settings.host.as_str(), settings.port)).await
    }
}

/// A launcher listening on a port, ready to run.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    launcher: Launcher,
}

impl Bound {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` completes, then refuses new sessions, stops every
    /// session (SIGTERM to each process group, SIGKILL after `stop_grace`),
    /// waits for their processes to exit, closes proxied connections and
    /// returns.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let Bound { listener, launcher } = self;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let api = Arc::clone(&launcher.api);
            let mut closing = launcher.closing.subscribe();
            let conn = http
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| api::serve(Arc::clone(&api), req, peer)),
                )
                .with_upgrades();
            tokio::spawn(async move {
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = until_true(&mut closing) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                    }
                }
            });
        }
        drop(listener);
        info!("stopping: no new sessions; stopping the running ones");
        launcher.api.sessions.shutdown().await;
        launcher.closing.send_replace(true);
        info!("stopped");
    }
}

/// Completes once the flag is true (or its sender is gone).
pub(crate) async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
///
/// The handlers are registered when this is called, not when the future is
/// first polled: call it before printing the line a script waits for, so a
/// signal sent right after that line stops the launcher cleanly instead of
/// killing it (and orphaning its sessions).
pub fn terminate_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    async fn next(signal: Option<tokio::signal::unix::Signal>) {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = next(interrupt) => info!("SIGINT received"),
            () = next(terminate) => info!("SIGTERM received"),
        }
    }
}
