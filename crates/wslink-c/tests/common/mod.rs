//! What the C API tests share: safe wrappers over the extern functions (as a
//! C program would call them), this project's server in process, and a
//! scripted WebSocket server that sends whatever a test wants.

#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::WebSocketStream;
use wslink_c::*;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::chunking::ChunkHeader;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::HelloReply;
use wslink_core::{Generation, Message, Request, Value};

/// The secret of the in-process server.
pub const SECRET: &str = "c-api-test-secret";
/// The client id scripted servers hand out.
pub const FAKE_ID: &str = "cscripted";

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A failure as C sees it.
#[derive(Debug, Clone)]
pub struct Failed {
    pub status: wslink_status,
    pub message: String,
    pub code: i64,
    pub data: Option<String>,
}

impl Failed {
    /// This thread's last error, after a call returned `status`.
    pub fn last(status: wslink_status) -> Failed {
        assert_eq!(
            wslink_last_error_status(),
            status,
            "the last error's status"
        );
        let data = wslink_last_error_data();
        Failed {
            status,
            message: text(wslink_last_error_message()),
            code: wslink_last_error_code(),
            data: (!data.is_null()).then(|| text(data)),
        }
    }
}

pub fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

/// A result: its JSON and copies of its buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub json: String,
    pub buffers: Vec<Vec<u8>>,
}

impl Got {
    /// Reads (without freeing) a payload.
    ///
    /// # Safety
    ///
    /// `p` is a valid payload.
    pub unsafe fn read(p: *const wslink_payload) -> Got {
        let p = &*p;
        let json = CStr::from_ptr(p.json).to_str().unwrap().to_owned();
        assert_eq!(json.len(), p.json_len);
        let buffers = (0..p.buffer_count)
            .map(|i| {
                let b = *p.buffers.add(i);
                if b.len == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(b.data, b.len).to_vec()
                }
            })
            .collect();
        Got { json, buffers }
    }
}

/// Options as a test writes them; `c()` gives the C struct.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub secret: Option<CString>,
    pub generation: u32,
    pub connect_timeout_ms: u32,
    pub call_timeout_ms: u32,
    pub launch_timeout_ms: u32,
    pub max_message_size: u64,
    pub max_pending_messages: u32,
    pub subscription_buffer: u32,
    pub subscription_buffer_bytes: u64,
    pub ca_file: Option<CString>,
    pub accept_invalid_certs: bool,
}

impl Opts {
    pub fn new(generation: Generation) -> Opts {
        Opts {
            secret: Some(cstr(SECRET)),
            generation: match generation {
                Generation::V1 => 1,
                _ => 2,
            },
            connect_timeout_ms: 10_000,
            call_timeout_ms: 20_000,
            ..Opts::default()
        }
    }

    pub fn c(&self) -> wslink_options {
        wslink_options {
            secret: self
                .secret
                .as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr()),
            generation: self.generation,
            connect_timeout_ms: self.connect_timeout_ms,
            call_timeout_ms: self.call_timeout_ms,
            launch_timeout_ms: self.launch_timeout_ms,
            max_message_size: self.max_message_size,
            max_pending_messages: self.max_pending_messages,
            max_pending_bytes: 0,
            max_depth: 0,
            subscription_buffer: self.subscription_buffer,
            subscription_buffer_bytes: self.subscription_buffer_bytes,
            ca_file: self
                .ca_file
                .as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr()),
            accept_invalid_certs: u32::from(self.accept_invalid_certs),
        }
    }
}

/// A connection made through the C API, closed on drop.
pub struct Conn(pub *mut wslink_connection);

// The C API allows calls on one connection from many threads.
unsafe impl Send for Conn {}
unsafe impl Sync for Conn {}

impl Conn {
    pub fn open(url: &str, opts: &Opts) -> Result<Conn, Failed> {
        let url = cstr(url);
        let o = opts.c();
        let mut conn = std::ptr::null_mut();
        let status = unsafe { wslink_connect(url.as_ptr(), &o, &mut conn) };
        if status == wslink_status::WSLINK_OK {
            assert!(!conn.is_null());
            Ok(Conn(conn))
        } else {
            assert!(conn.is_null(), "a failed connect leaves *connection NULL");
            Err(Failed::last(status))
        }
    }

    pub fn call(&self, method: &str, args: &str, buffers: &[&[u8]]) -> Result<Got, Failed> {
        self.call_ex(method, Some(args), None, buffers, 0)
    }

    pub fn call_ex(
        &self,
        method: &str,
        args: Option<&str>,
        kwargs: Option<&str>,
        buffers: &[&[u8]],
        timeout_ms: u32,
    ) -> Result<Got, Failed> {
        let method = cstr(method);
        let args = args.map(cstr);
        let kwargs = kwargs.map(cstr);
        let bufs: Vec<wslink_buffer> = buffers
            .iter()
            .map(|b| wslink_buffer {
                data: b.as_ptr(),
                len: b.len(),
            })
            .collect();
        let mut result = std::ptr::null_mut();
        let status = unsafe {
            wslink_call_ex(
                self.0,
                method.as_ptr(),
                args.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                kwargs.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
                if bufs.is_empty() {
                    std::ptr::null()
                } else {
                    bufs.as_ptr()
                },
                bufs.len(),
                timeout_ms,
                &mut result,
            )
        };
        if status == wslink_status::WSLINK_OK {
            let got = unsafe { Got::read(result) };
            unsafe { wslink_payload_free(result) };
            Ok(got)
        } else {
            assert!(result.is_null(), "a failed call leaves *result NULL");
            Err(Failed::last(status))
        }
    }

    pub fn is_closed(&self) -> bool {
        unsafe { wslink_connection_is_closed(self.0) }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        assert_eq!(unsafe { wslink_close(self.0) }, wslink_status::WSLINK_OK);
    }
}

#[track_caller]
pub fn assert_failed(got: Result<Got, Failed>, status: wslink_status, needle: &str) -> Failed {
    let failed = got.expect_err("the call should have failed");
    assert_eq!(failed.status, status, "{failed:?}");
    assert!(
        failed.message.contains(needle),
        "expected {needle:?} in the message: {failed:?}"
    );
    failed
}

// ---------------------------------------------------------------------------
// Servers

/// This project's server with the conformance service, started once for the
/// test binary on a thread of its own. Returns its URL.
pub fn our_server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = wslink_server::conformance::builder().secret(SECRET).build();
                let listener = server.bind("127.0.0.1:0").await.unwrap();
                tx.send(format!("ws://{}/ws", listener.local_addr()))
                    .unwrap();
                listener.run().await.unwrap();
            });
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    })
}

/// One accepted connection of a scripted server.
pub struct Peer {
    pub ws: WebSocketStream<TcpStream>,
    pub generation: Generation,
    v2: v2::Decoder,
    v1: v1::Decoder,
    keys: AttachmentKeys,
}

/// Starts a server that accepts one WebSocket connection and runs `script`
/// on it, on a thread and runtime of its own (the C API blocks the test's
/// thread). Returns the URL and the thread (join it to see its panics).
pub fn scripted<F, Fut>(generation: Generation, script: F) -> (String, std::thread::JoinHandle<()>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("ws://{}/ws", listener.local_addr().unwrap()))
                .unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let mut v2 = v2::Decoder::new(Default::default());
            v2.set_authenticated(true);
            script(Peer {
                ws,
                generation,
                v2,
                v1: v1::Decoder::new(Default::default()),
                keys: AttachmentKeys::new(),
            })
            .await;
        });
    });
    (rx.recv_timeout(Duration::from_secs(10)).unwrap(), thread)
}

impl Peer {
    /// The next message from the client; `None` once it closed.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            let frame = self.ws.next().await?.ok()?;
            let message = match frame {
                Ws::Binary(b) if self.generation == Generation::V2 => self.v2.push(b).unwrap(),
                Ws::Binary(b) => {
                    self.v1.push_binary(b).unwrap();
                    None
                }
                Ws::Text(t) => self.v1.push_text(t.as_str()).unwrap(),
                Ws::Close(_) => return None,
                _ => None,
            };
            if message.is_some() {
                return message;
            }
        }
    }

    pub async fn request(&mut self) -> Request {
        match self.next().await {
            Some(Message::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// Answers the hello.
    pub async fn hello(&mut self) {
        let hello = self.request().await;
        assert_eq!(hello.method, "wslink.hello");
        let reply = HelloReply {
            client_id: FAKE_ID.into(),
            max_msg_size: (self.generation == Generation::V2).then_some(4 << 20),
            capabilities: Vec::new(),
        };
        self.send(&Message::Result {
            id: hello.id,
            result: reply.to_value(),
        })
        .await;
    }

    pub async fn send(&mut self, message: &Message) {
        let frames = match self.generation {
            Generation::V1 => v1::encode(message, &self.keys).unwrap(),
            _ => v2::encode_frames(message, 4 << 20).unwrap(),
        };
        for frame in frames {
            let ws = match frame {
                Frame::Binary(b) => Ws::Binary(b),
                Frame::Text(t) => Ws::Text(String::from_utf8(t.to_vec()).unwrap().into()),
            };
            if self.ws.feed(ws).await.is_err() {
                return;
            }
        }
        let _ = self.ws.flush().await;
    }

    pub async fn reply(&mut self, id: &str, result: Value) {
        self.send(&Message::Result {
            id: id.into(),
            result,
        })
        .await;
    }

    pub async fn raw(&mut self, frame: Ws) {
        let _ = self.ws.send(frame).await;
    }

    /// Reads until the client closes (or the socket ends).
    pub async fn until_closed(&mut self) {
        while let Some(Ok(frame)) = self.ws.next().await {
            if matches!(frame, Ws::Close(_)) {
                break;
            }
        }
    }
}

/// A 2.x frame with any header the test likes.
pub fn chunk(id: u32, offset: u32, total: u32, content: &[u8]) -> Ws {
    let mut frame = ChunkHeader { id, offset, total }.encode().to_vec();
    frame.extend_from_slice(content);
    Ws::Binary(Bytes::from(frame))
}
