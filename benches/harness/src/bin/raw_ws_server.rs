//! The raw baseline of the benchmarks: plain tokio-tungstenite, the same
//! payload sizes, no wslink framing (commands in the crate docs of
//! `wslink_bench`).
//!
//! ```text
//! raw-ws-server [--host 127.0.0.1] [--port 8080]
//! ```
//!
//! Each connection is one task that reads, echoes inline, and writes what
//! other connections' `push` commands queue for it; writes are fed and
//! flushed once when nothing more is waiting, and sockets are TCP_NODELAY,
//! as in our server. The WebSocket buffers are configured as our server
//! configures them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use wslink_bench::{pattern, Patterns};

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn main() {
    let mut host = "127.0.0.1".to_string();
    let mut port = 8080u16;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| {
            eprintln!("{flag} needs a value");
            std::process::exit(2)
        });
        match flag.as_str() {
            "--host" => host = value,
            "--port" => port = value.parse().expect("--port: a number"),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2)
            }
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind((host.as_str(), port))
            .await
            .unwrap_or_else(|e| {
                eprintln!("cannot listen on {host}:{port}: {e}");
                std::process::exit(1)
            });
        println!(
            "raw WebSocket server on ws://{}/",
            listener.local_addr().unwrap()
        );
        let peers: Peers = Arc::default();
        let ids = AtomicU64::new(0);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let id = ids.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve(stream, id, peers.clone()));
        }
    });
}

async fn serve(stream: TcpStream, id: u64, peers: Peers) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .read_buffer_size(4096)
        .write_buffer_size(64 * 1024);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    peers.lock().unwrap().insert(id, tx.clone());
    'conn: loop {
        tokio::select! {
            incoming = ws.next() => {
                let mut incoming = incoming;
                // Answer everything already read, then flush once.
                loop {
                    let Some(Ok(msg)) = incoming else { break 'conn };
                    let reply = match msg {
                        Message::Binary(data) => Some(Message::Binary(data)),
                        Message::Text(text) => command(text.as_str(), &peers, &tx),
                        Message::Close(_) => break 'conn,
                        _ => None,
                    };
                    if let Some(reply) = reply {
                        if ws.feed(reply).await.is_err() {
                            break 'conn;
                        }
                    }
                    match ws.next().now_or_never() {
                        Some(next) => incoming = next,
                        None => break,
                    }
                }
                if ws.flush().await.is_err() {
                    break;
                }
            }
            Some(out) = rx.recv() => {
                let mut result = ws.feed(out).await;
                while result.is_ok() {
                    match rx.try_recv() {
                        Ok(more) => result = ws.feed(more).await,
                        Err(_) => break,
                    }
                }
                if result.is_err() || ws.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    peers.lock().unwrap().remove(&id);
}

/// Runs a text command; returns the reply for the sender, if any.
fn command(text: &str, peers: &Peers, own: &mpsc::UnboundedSender<Message>) -> Option<Message> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["push", count, size] => {
            let (count, size): (u64, usize) = (count.parse().ok()?, size.parse().ok()?);
            let patterns = Patterns::new(size);
            let targets: Vec<_> = peers.lock().unwrap().values().cloned().collect();
            for seq in 0..count {
                let frame = Message::Binary(patterns.get(seq));
                for t in &targets {
                    let _ = t.send(frame.clone());
                }
            }
            // Queued behind the frames, like a wslink reply after its publishes.
            let _ = own.send(Message::Text(format!("done {count}").into()));
            None
        }
        ["blob", size] => Some(Message::Binary(pattern(size.parse().ok()?, 0))),
        _ => None,
    }
}
