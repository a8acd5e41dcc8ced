//! The attacker's side: a bare WebSocket peer that can send anything,
//! well-formed or not, and reports exactly how the server answered.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as Ws};
use tokio_tungstenite::WebSocketStream;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::chunking::{ChunkHeader, UnchunkLimits};
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::hello_request;
use wslink_core::{Generation, Message, Request, Value};

pub const SECRET: &str = "wslink-secret";

/// How a connection ended, as the attacker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code and reason.
    Close(u16, String),
    /// The socket ended (reset, EOF) without a close frame.
    Dropped(String),
    /// Nothing happened within the time allowed.
    TimedOut,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Close(code, reason) => write!(f, "close {code} {reason:?}"),
            Ending::Dropped(why) => write!(f, "dropped without a close frame ({why})"),
            Ending::TimedOut => write!(f, "no close within the time allowed"),
        }
    }
}

/// What the server sent next.
#[derive(Debug)]
pub enum Event {
    Message(Message),
    End(Ending),
}

pub struct Raw {
    pub ws: WebSocketStream<TcpStream>,
    pub generation: Generation,
    v2: v2::Decoder,
    v1: v1::Decoder,
    keys: AttachmentKeys,
    seq: u64,
    pub client_id: String,
}

fn unlimited() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

/// A 2.x frame: chunk header, then `content`.
pub fn chunk(id: u32, offset: u32, total: u32, content: &[u8]) -> Bytes {
    let mut f = ChunkHeader { id, offset, total }.encode().to_vec();
    f.extend_from_slice(content);
    Bytes::from(f)
}

impl Raw {
    pub async fn connect(url: &str, generation: Generation) -> Result<Raw, String> {
        Self::connect_from(url, generation, None).await
    }

    /// Connects from a chosen loopback address (127.0.0.2, ...): another
    /// client, to the server's per-address limits.
    pub async fn connect_from(
        url: &str,
        generation: Generation,
        from: Option<std::net::IpAddr>,
    ) -> Result<Raw, String> {
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let tcp = match from {
            None => TcpStream::connect(&addr).await,
            Some(ip) => {
                let target: std::net::SocketAddr =
                    addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .bind((ip, 0).into())
                    .map_err(|e| format!("bind {ip}: {e}"))?;
                socket.connect(target).await
            }
        }
        .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(unlimited()))
            .await
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        let mut v2 = v2::Decoder::new(v2::DecodeLimits {
            unchunk: UnchunkLimits {
                max_message_size: 1 << 30,
                max_pending_bytes: 1 << 30,
                ..UnchunkLimits::default()
            },
            ..Default::default()
        });
        v2.set_authenticated(true);
        let mut v1_limits = v1::DecodeLimits::default();
        v1_limits.attachments.max_held_bytes = 1 << 30;
        Ok(Raw {
            ws,
            generation,
            v2,
            v1: v1::Decoder::new(v1_limits),
            keys: AttachmentKeys::new(),
            seq: 0,
            client_id: String::new(),
        })
    }

    /// Connects and says hello with the right secret.
    pub async fn authenticated(url: &str, generation: Generation) -> Result<Raw, String> {
        let mut raw = Raw::connect(url, generation).await?;
        let reply = raw.hello(SECRET).await?;
        match reply {
            Message::Result { .. } => Ok(raw),
            other => Err(format!("hello refused: {other:?}")),
        }
    }

    pub async fn send_ws(&mut self, msg: Ws) -> Result<(), String> {
        self.ws.send(msg).await.map_err(|e| format!("send: {e}"))
    }

    pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), String> {
        self.send_ws(Ws::Binary(data.into())).await
    }

    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), String> {
        self.send_ws(Ws::Text(text.into().into())).await
    }

    /// Writes bytes straight to the TCP socket, past the WebSocket layer.
    pub async fn send_raw_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.ws
            .get_mut()
            .write_all(bytes)
            .await
            .map_err(|e| format!("raw write: {e}"))
    }

    pub fn encode(&self, message: &Message) -> Vec<Frame> {
        match self.generation {
            Generation::V2 => v2::encode_frames(message, 4 << 20).expect("encodable"),
            Generation::V1 => v1::encode(message, &self.keys).expect("encodable"),
        }
    }

    pub async fn send(&mut self, message: &Message) -> Result<(), String> {
        for f in self.encode(message) {
            let msg = match f {
                Frame::Binary(b) => Ws::Binary(b),
                Frame::Text(t) => Ws::Text(String::from_utf8(t.to_vec()).unwrap().into()),
            };
            self.send_ws(msg).await?;
        }
        Ok(())
    }

    pub fn request(&mut self, method: &str, args: Vec<Value>) -> Message {
        let client = if self.client_id.is_empty() {
            "c0"
        } else {
            &self.client_id
        };
        let id = format!("rpc:{client}:{}", self.seq);
        self.seq += 1;
        Message::Request(Request {
            id,
            method: method.into(),
            args,
            kwargs: vec![],
        })
    }

    /// The next message or the end of the connection.
    pub async fn next_event(&mut self, limit: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Event::End(Ending::TimedOut),
                Ok(None) => return Event::End(Ending::Dropped("end of stream".into())),
                Ok(Some(Err(tungstenite::Error::ConnectionClosed))) => {
                    return Event::End(Ending::Dropped("connection closed".into()))
                }
                Ok(Some(Err(e))) => return Event::End(Ending::Dropped(e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            let decoded = match frame {
                Ws::Close(Some(c)) => {
                    return Event::End(Ending::Close(u16::from(c.code), c.reason.to_string()))
                }
                Ws::Close(None) => return Event::End(Ending::Close(1005, String::new())),
                Ws::Binary(b) => match self.generation {
                    Generation::V2 => self.v2.push(b).map_err(|e| e.to_string()),
                    Generation::V1 => self
                        .v1
                        .push_binary(b)
                        .map(|()| None)
                        .map_err(|e| e.to_string()),
                },
                Ws::Text(t) => self.v1.push_text(t.as_str()).map_err(|e| e.to_string()),
                _ => Ok(None),
            };
            match decoded {
                Ok(Some(m)) => return Event::Message(m),
                Ok(None) => {}
                Err(e) => {
                    return Event::End(Ending::Dropped(format!("undecodable server frame: {e}")))
                }
            }
        }
    }

    /// The next message that is not a publish.
    pub async fn recv_reply(&mut self, limit: Duration) -> Result<Message, Ending> {
        loop {
            match self.next_event(limit).await {
                Event::Message(m) if is_publish(&m) => continue,
                Event::Message(m) => return Ok(m),
                Event::End(e) => return Err(e),
            }
        }
    }

    /// Reads (and discards messages) until the connection ends.
    pub async fn ending(&mut self, limit: Duration) -> Ending {
        loop {
            if let Event::End(e) = self.next_event(limit).await {
                return e;
            }
        }
    }

    pub async fn hello(&mut self, secret: &str) -> Result<Message, String> {
        self.send(&Message::Request(hello_request(secret))).await?;
        let reply = self
            .recv_reply(Duration::from_secs(10))
            .await
            .map_err(|e| format!("no hello reply: {e}"))?;
        if let Message::Result { result, .. } = &reply {
            if let Some(id) = result.get("clientID").and_then(Value::as_str) {
                self.client_id = id.to_owned();
            }
        }
        Ok(reply)
    }

    pub async fn call(&mut self, method: &str, args: Vec<Value>) -> Result<Message, String> {
        let req = self.request(method, args);
        self.send(&req).await?;
        loop {
            let m = self
                .recv_reply(Duration::from_secs(20))
                .await
                .map_err(|e| format!("no reply to {method}: {e}"))?;
            if m.id() == req.id() {
                return Ok(m);
            }
        }
    }

    /// Ends the connection with a TCP reset (SO_LINGER 0), no close frame.
    pub fn reset(self) {
        #[allow(deprecated)]
        let _ = self.ws.get_ref().set_linger(Some(Duration::ZERO));
        drop(self);
    }
}

pub fn is_publish(m: &Message) -> bool {
    m.id().is_some_and(|id| id.starts_with("publish:"))
}

/// `Ok` if `ending` is a close with `code` whose reason contains `needle`.
pub fn expect_close(ending: &Ending, code: u16, needle: &str) -> Result<String, String> {
    match ending {
        Ending::Close(c, reason) if *c == code && reason.contains(needle) => Ok(ending.to_string()),
        other => Err(format!(
            "expected close {code} with a reason containing {needle:?}, got {other}"
        )),
    }
}

/// `Ok(description)` if `m` is an error reply with `code` whose message or
/// data mentions `needle`.
pub fn expect_error(m: &Message, code: i64, needle: &str) -> Result<String, String> {
    match m {
        Message::Error { error, .. } if error.code == code => {
            let text = format!("{} {:?}", error.message, error.data);
            if text.contains(needle) {
                let data = error
                    .data
                    .as_ref()
                    .and_then(|d| d.get("exception"))
                    .and_then(Value::as_str)
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                Ok(format!("error {} {:?}{data}", error.code, error.message))
            } else {
                Err(format!("error {code} does not mention {needle:?}: {text}"))
            }
        }
        other => Err(format!("expected error {code}, got {other:?}")),
    }
}

pub fn result(m: Message) -> Result<Value, String> {
    match m {
        Message::Result { result, .. } => Ok(result),
        other => Err(format!("expected a result, got {other:?}")),
    }
}
