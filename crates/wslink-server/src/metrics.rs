//! Counters a server keeps about itself.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters; read them with [`Server::metrics`](crate::Server::metrics).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub calls: AtomicU64,
    pub call_errors: AtomicU64,
    pub publishes: AtomicU64,
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub slow_clients_closed: AtomicU64,
    pub auth_failures: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub pending_refused: AtomicU64,
}

/// A copy of the server's counters at one moment.
///
/// It serializes, so a status endpoint or a log line can take it as it is:
///
/// ```
/// let server = wslink_server::Server::builder().build();
/// let json = serde_json::to_string(&server.metrics()).unwrap();
/// assert!(json.contains("\"connections_open\":0"));
/// ```
///
/// Every counter but `connections_open` only grows, so a rate over an
/// interval is the difference of two snapshots:
///
/// ```
/// use wslink_server::MetricsSnapshot;
///
/// fn calls_per_second(before: &MetricsSnapshot, after: &MetricsSnapshot, secs: f64) -> f64 {
///     (after.calls - before.calls) as f64 / secs
/// }
///
/// let server = wslink_server::Server::builder().build();
/// let before = server.metrics();
/// let after = server.metrics();
/// assert_eq!(calls_per_second(&before, &after, 10.0), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MetricsSnapshot {
    /// WebSocket connections open now.
    pub connections_open: u64,
    /// WebSocket connections accepted since start.
    pub connections_total: u64,
    /// Calls dispatched to handlers.
    pub calls: u64,
    /// Calls answered with an error (any code).
    pub call_errors: u64,
    /// Messages published (once per publish, whatever the recipients).
    pub publishes: u64,
    /// WebSocket data frames received.
    pub frames_in: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// WebSocket data frames sent.
    pub frames_out: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Published messages replaced by newer ones on keep-latest topics
    /// before a slow client read them.
    pub frames_dropped: u64,
    /// Clients disconnected because their outbound queue overflowed.
    pub slow_clients_closed: u64,
    /// Failed hellos.
    pub auth_failures: u64,
    /// Connections closed for malformed input or a broken limit.
    pub protocol_errors: u64,
    /// Sockets closed as soon as accepted because
    /// [`Limits::max_pending_connections`](crate::Limits::max_pending_connections)
    /// were not WebSocket connections yet.
    pub pending_refused: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            calls: self.calls.load(Relaxed),
            call_errors: self.call_errors.load(Relaxed),
            publishes: self.publishes.load(Relaxed),
            frames_in: self.frames_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            slow_clients_closed: self.slow_clients_closed.load(Relaxed),
            auth_failures: self.auth_failures.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            pending_refused: self.pending_refused.load(Relaxed),
        }
    }
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Relaxed);
}
