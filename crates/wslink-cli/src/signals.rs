//! Stopping on SIGINT or SIGTERM.
//!
//! Every long-running command prints a line scripts wait for (the URL, the
//! ready line). A script may signal as soon as it reads it, so the handlers
//! are registered before that line is printed, not when first awaited (as
//! `tokio::signal::ctrl_c()` would): a signal in between would take the
//! default action and kill the process instead of stopping it cleanly.

/// SIGINT or SIGTERM (Ctrl-C elsewhere), as aiohttp's runner handles them,
/// registered when installed rather than when first awaited.
pub(crate) struct StopSignal {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignal {
    pub(crate) fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignal {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignal {}
    }

    pub(crate) async fn recv(self) {
        #[cfg(unix)]
        {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(self.interrupt) => {}
                _ = next(self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
