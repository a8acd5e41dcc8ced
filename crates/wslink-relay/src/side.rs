//! One end of a relayed connection: a WebSocket whose writing half any task
//! may use, one message at a time, and whose reading half one task drives.
//!
//! Nothing is queued here. A forwarder hands a message to the other side's
//! [`Side::send`] and waits for it to be written before reading the next, so
//! between two sockets there is at most one message per direction; a side
//! that does not take it within the stall timeout is dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{watch, Mutex};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

type Tx = Pin<Box<dyn Sink<Message, Error = WsError> + Send>>;
/// The reading half, for the task that drives it.
pub(crate) type Rx = Pin<Box<dyn Stream<Item = Result<Message, WsError>> + Send>>;

/// Why a message did not reach a side.
#[derive(Debug)]
pub(crate) enum SendFailed {
    /// It did not take the message within the stall timeout.
    Stalled,
    /// Its socket failed or it is closed.
    Gone,
}

/// The writing half of one WebSocket, and whether it is closed.
pub(crate) struct Side {
    label: String,
    tx: Mutex<Tx>,
    closed: watch::Sender<bool>,
    closing: AtomicBool,
}

impl Side {
    /// Splits a WebSocket into this side and its reading half.
    pub(crate) fn new<S>(ws: WebSocketStream<S>, label: String) -> (std::sync::Arc<Side>, Rx)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = ws.split();
        let side = Side {
            label,
            tx: Mutex::new(Box::pin(tx)),
            closed: watch::channel(false).0,
            closing: AtomicBool::new(false),
        };
        (std::sync::Arc::new(side), Box::pin(rx))
    }

    /// What the logs call it: its role and path or address.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Writes one message, waiting at most `stall` for the socket to take
    /// it (and for a write in progress to finish).
    pub(crate) async fn send(&self, msg: Message, stall: Duration) -> Result<(), SendFailed> {
        if self.is_closed() {
            return Err(SendFailed::Gone);
        }
        match tokio::time::timeout(stall, async {
            let mut tx = self.tx.lock().await;
            tx.send(msg).await
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendFailed::Gone),
            Err(_) => Err(SendFailed::Stalled),
        }
    }

    /// A ping, unless a write is in progress (which shows the socket is
    /// being used anyway).
    pub(crate) async fn ping(&self, stall: Duration) -> Result<(), SendFailed> {
        let Ok(mut tx) = self.tx.try_lock() else {
            return Ok(());
        };
        match tokio::time::timeout(stall, tx.send(Message::Ping(Default::default()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendFailed::Gone),
            Err(_) => Err(SendFailed::Stalled),
        }
    }

    /// Sends a close frame (given at most a second: a stalled peer gets
    /// none) and marks the side closed, which ends its reading task.
    pub(crate) async fn close(&self, code: u16, reason: &str) {
        if self.closing.swap(true, Ordering::AcqRel) {
            self.closed.send_replace(true);
            return;
        }
        tracing::debug!(side = %self.label, code, reason, "closing");
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: truncate(reason, 123).into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut tx = self.tx.lock().await;
            let _ = tx.send(Message::Close(Some(frame))).await;
            let _ = tx.close().await;
        })
        .await;
        self.closed.send_replace(true);
    }

    /// Marks the side closed without a word (its peer already left).
    pub(crate) fn mark_closed(&self) {
        self.closing.store(true, Ordering::Release);
        self.closed.send_replace(true);
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Completes once the side is closed.
    pub(crate) async fn until_closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// A close reason fits a control frame (125 bytes with the code).
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What a side's reader got.
pub(crate) enum Read {
    /// A text or binary message, to forward.
    Data(Message),
    /// The peer closed, vanished, broke the protocol or went silent.
    End(Option<(u16, String)>),
}

/// Reads the next data message, answering nothing itself (tungstenite
/// answers pings) and sending a ping every `heartbeat`; a peer silent for
/// two heartbeats ends the read, as does the side being closed.
pub(crate) async fn next_data(
    side: &Side,
    rx: &mut Rx,
    heartbeat: Option<Duration>,
    stall: Duration,
) -> Read {
    let beat = heartbeat.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut silent = Duration::ZERO;
    loop {
        let got = tokio::select! {
            got = tokio::time::timeout(beat, rx.next()) => got,
            () = side.until_closed() => return Read::End(None),
        };
        match got {
            Err(_) => {
                silent += beat;
                if silent >= beat * 2 {
                    return Read::End(Some((1001, "relay: no answer to pings".into())));
                }
                if side.ping(stall).await.is_err() {
                    return Read::End(None);
                }
            }
            Ok(None) => return Read::End(None),
            Ok(Some(Err(e))) => {
                let refusal = match e {
                    WsError::Capacity(c) => Some((1009, format!("relay: {c}"))),
                    WsError::Protocol(p) => Some((1002, format!("relay: {p}"))),
                    WsError::Utf8(_) => Some((1007, "relay: text frame is not UTF-8".into())),
                    _ => None,
                };
                return Read::End(refusal);
            }
            Ok(Some(Ok(msg))) => {
                silent = Duration::ZERO;
                match msg {
                    Message::Text(_) | Message::Binary(_) => return Read::Data(msg),
                    Message::Close(_) => return Read::End(None),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
        }
    }
}
