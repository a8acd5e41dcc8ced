//! An in-process fake wslink server on tokio-tungstenite: each test scripts
//! exactly what it sends, including what no real server would.

use std::future::Future;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::WebSocketStream;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::chunking::ChunkHeader;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::HelloReply;
use wslink_core::{Generation, Message, Request, Value};

/// The client id the fake server hands out.
pub const CLIENT_ID: &str = "cfake";

/// One accepted connection, as the script sees it.
pub struct Conn {
    pub ws: WebSocketStream<TcpStream>,
    pub generation: Generation,
    v2: v2::Decoder,
    v1: v1::Decoder,
    keys: AttachmentKeys,
    /// Sizes of every binary frame received (for chunking checks).
    pub binary_frame_sizes: Vec<usize>,
}

/// Starts a server that accepts one connection and runs `script` on it.
/// Returns the URL and the script's task (join it to see its panics).
pub async fn serve<F, Fut>(generation: Generation, script: F) -> (String, JoinHandle<()>)
where
    F: FnOnce(Conn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut d2 = v2::Decoder::new(Default::default());
        d2.set_authenticated(true);
        script(Conn {
            ws,
            generation,
            v2: d2,
            v1: v1::Decoder::new(Default::default()),
            keys: AttachmentKeys::new(),
            binary_frame_sizes: Vec::new(),
        })
        .await;
    });
    (url, task)
}

impl Conn {
    /// The next complete message, `None` when the client closed.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            let frame = match self.ws.next().await? {
                Ok(f) => f,
                Err(_) => return None,
            };
            let decoded = match (self.generation, frame) {
                (Generation::V2, Ws::Binary(b)) => {
                    self.binary_frame_sizes.push(b.len());
                    self.v2.push(b).unwrap()
                }
                (Generation::V1, Ws::Binary(b)) => {
                    self.binary_frame_sizes.push(b.len());
                    self.v1.push_binary(b).unwrap();
                    None
                }
                (Generation::V1, Ws::Text(t)) => self.v1.push_text(t.as_str()).unwrap(),
                (_, Ws::Close(_)) => return None,
                (_, other) => panic!("unexpected frame {other:?}"),
            };
            if let Some(m) = decoded {
                return Some(m);
            }
        }
    }

    /// The next request (panics on anything else).
    pub async fn request(&mut self) -> Request {
        match self.recv().await {
            Some(Message::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// Answers the hello, announcing `max_msg_size`.
    pub async fn hello(&mut self, max_msg_size: Option<u64>) -> Request {
        let hello = self.request().await;
        assert_eq!(hello.method, "wslink.hello");
        let reply = HelloReply {
            client_id: CLIENT_ID.into(),
            max_msg_size,
            capabilities: Vec::new(),
        };
        self.send(&Message::Result {
            id: hello.id.clone(),
            result: reply.to_value(),
        })
        .await;
        hello
    }

    /// Sends a message in this connection's generation.
    pub async fn send(&mut self, message: &Message) {
        let frames = match self.generation {
            Generation::V2 => v2::encode_frames(message, 4 << 20).unwrap(),
            Generation::V1 => v1::encode(message, &self.keys).unwrap(),
        };
        for f in frames {
            let ws = match f {
                Frame::Binary(b) => Ws::Binary(b),
                Frame::Text(t) => Ws::Text(String::from_utf8(t.to_vec()).unwrap().into()),
            };
            if self.ws.feed(ws).await.is_err() {
                return;
            }
        }
        let _ = self.ws.flush().await;
    }

    /// Sends a result for `id`.
    pub async fn reply(&mut self, id: &str, result: Value) {
        self.send(&Message::Result {
            id: id.into(),
            result,
        })
        .await;
    }

    /// Sends one raw WebSocket message.
    pub async fn raw(&mut self, ws: Ws) {
        let _ = self.ws.send(ws).await;
    }

    /// Writes bytes to the socket as they are, past the WebSocket framing
    /// (a frame header that promises more than follows, say).
    pub async fn raw_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let _ = self.ws.flush().await;
        let _ = self.ws.get_mut().write_all(bytes).await;
    }

    /// Reads until the client's close frame; returns it (`None` if the
    /// connection ended without one).
    pub async fn close_frame(&mut self) -> Option<CloseFrame> {
        while let Some(frame) = self.ws.next().await {
            match frame {
                Ok(Ws::Close(f)) => return f,
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

/// A 2.x frame with an arbitrary header.
pub fn chunk_frame(id: u32, offset: u32, total: u32, content: &[u8]) -> Ws {
    let mut f = ChunkHeader { id, offset, total }.encode().to_vec();
    f.extend_from_slice(content);
    Ws::Binary(Bytes::from(f))
}
