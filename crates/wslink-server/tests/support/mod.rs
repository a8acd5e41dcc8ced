//! A bare wslink peer for tests: raw WebSocket plus the core codecs, so the
//! server is tested without trusting any client library.

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wslink_core::attachments::AttachmentKeys;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::hello_request;
use wslink_core::{Generation, Message, Request, Value};
use wslink_server::{Listener, Server};

pub async fn start(server: &Server) -> String {
    let listener: Listener = server.bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr());
    tokio::spawn(listener.run());
    url
}

pub struct Peer {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub generation: Generation,
    v2: v2::Decoder,
    v1: v1::Decoder,
    keys: AttachmentKeys,
    seq: u64,
    pub client_id: String,
}

impl Peer {
    pub async fn connect(url: &str, generation: Generation) -> Peer {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self::over(ws, generation)
    }

    /// Connects from a chosen local address (127.0.0.2 is another client
    /// than 127.0.0.1 to the server); the upgrade's refusal is returned.
    pub async fn connect_from(
        url: &str,
        generation: Generation,
        from: std::net::IpAddr,
    ) -> Result<Peer, tokio_tungstenite::tungstenite::Error> {
        Self::connect_from_with(url, generation, from, &[]).await
    }

    /// [`Peer::connect_from`] with extra headers on the upgrade request
    /// (what a proxy adds, or a client forges).
    pub async fn connect_from_with(
        url: &str,
        generation: Generation,
        from: std::net::IpAddr,
        headers: &[(&'static str, &str)],
    ) -> Result<Peer, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let addr: std::net::SocketAddr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .append(*name, value.parse().expect("a header value"));
        }
        let (ws, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
        Ok(Self::over(ws, generation))
    }

    fn over(ws: WebSocketStream<MaybeTlsStream<TcpStream>>, generation: Generation) -> Peer {
        let mut v2 = v2::Decoder::new(Default::default());
        v2.set_authenticated(true);
        Peer {
            ws,
            generation,
            v2,
            v1: v1::Decoder::new(Default::default()),
            keys: AttachmentKeys::new(),
            seq: 0,
            client_id: String::new(),
        }
    }

    pub async fn send(&mut self, message: &Message) {
        let frames = match self.generation {
            Generation::V2 => v2::encode_frames(message, 4 << 20).unwrap(),
            Generation::V1 => v1::encode(message, &self.keys).unwrap(),
        };
        for f in frames {
            self.send_frame(f).await;
        }
    }

    /// Sends the messages in one write, so that the server finds them all
    /// in one read.
    pub async fn send_together(&mut self, messages: &[Message]) {
        for message in messages {
            for f in v2::encode_frames(message, 4 << 20).unwrap() {
                let Frame::Binary(b) = f else { unreachable!() };
                self.ws.feed(Ws::Binary(b)).await.unwrap();
            }
        }
        self.ws.flush().await.unwrap();
    }

    pub async fn send_frame(&mut self, f: Frame) {
        let msg = match f {
            Frame::Binary(b) => Ws::Binary(b),
            Frame::Text(t) => Ws::Text(String::from_utf8(t.to_vec()).unwrap().into()),
        };
        self.ws.send(msg).await.unwrap();
    }

    /// The next complete message, or `Err(close reason)` when the server
    /// closes or the socket ends.
    pub async fn recv(&mut self) -> Result<Message, String> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .map_err(|_| "timed out waiting for a message".to_string())?;
            match frame {
                None => return Err("socket ended".into()),
                Some(Err(e)) => return Err(format!("socket error: {e}")),
                Some(Ok(Ws::Close(frame))) => {
                    return Err(frame
                        .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                        .unwrap_or_default())
                }
                Some(Ok(Ws::Binary(b))) => match self.generation {
                    Generation::V2 => {
                        if let Some(m) = self.v2.push(b).unwrap() {
                            return Ok(m);
                        }
                    }
                    Generation::V1 => self.v1.push_binary(b).unwrap(),
                },
                Some(Ok(Ws::Text(t))) => {
                    if let Some(m) = self.v1.push_text(t.as_str()).unwrap() {
                        return Ok(m);
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn hello(&mut self, secret: &str) -> Message {
        self.send(&Message::Request(hello_request(secret))).await;
        let reply = self.recv().await.unwrap();
        if let Message::Result { result, .. } = &reply {
            self.client_id = result.get("clientID").unwrap().as_str().unwrap().to_owned();
        }
        reply
    }

    pub fn request(&mut self, method: &str, args: Vec<Value>) -> Message {
        let id = format!(
            "rpc:{}:{}",
            if self.client_id.is_empty() {
                "c0"
            } else {
                &self.client_id
            },
            self.seq
        );
        self.seq += 1;
        Message::Request(Request {
            id,
            method: method.into(),
            args,
            kwargs: vec![],
        })
    }

    pub async fn call(&mut self, method: &str, args: Vec<Value>) -> Message {
        let req = self.request(method, args);
        self.send(&req).await;
        loop {
            let m = self.recv().await.unwrap();
            if m.id() == req.id() {
                return m;
            }
        }
    }
}

pub fn result(m: Message) -> Value {
    match m {
        Message::Result { result, .. } => result,
        other => panic!("expected a result, got {other:?}"),
    }
}

pub fn error_code(m: &Message) -> i64 {
    match m {
        Message::Error { error, .. } => error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

pub fn bin(b: &[u8]) -> Value {
    Value::Bin(Bytes::copy_from_slice(b))
}

/// Resident memory of this process, from /proc (Linux).
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}
