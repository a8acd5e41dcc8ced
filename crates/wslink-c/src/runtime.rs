//! The library's one tokio runtime, shared by every connection.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::error::Failure;

/// Worker threads of the runtime: each connection's socket task runs there.
/// Two keep one slow connection from delaying the others, without a thread
/// per core in an application that opens one connection.
pub const WORKER_THREADS: usize = 2;

/// The name of the runtime's worker threads (as `ps -L` and debuggers show it).
pub const WORKER_THREAD_NAME: &str = "wslink-runtime";

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime, started on first use. It lives as long as the process.
pub(crate) fn runtime() -> Result<&'static Runtime, Failure> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(WORKER_THREADS)
                .thread_name(WORKER_THREAD_NAME)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Failure::internal(format!("cannot start the library's runtime: {e}")))
}

/// Runs `future` to its end on the calling thread (tasks it spawns go to
/// the runtime's workers).
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output, Failure> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // tokio would panic: a thread driving a runtime cannot block on one.
        return Err(Failure::internal(
            "a blocking wslink function was called from a thread that runs a tokio runtime; \
             call it from a plain thread (Rust programs should use wslink-client directly)",
        ));
    }
    Ok(runtime()?.block_on(future))
}
