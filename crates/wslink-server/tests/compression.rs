//! permessage-deflate (RFC 7692) on the wire: what the upgrade answers, which
//! messages go out compressed, and how compressed input is bounded. The
//! client here is a raw socket that reads every frame header, so RSV1 is
//! checked bit by bit rather than trusted to a library.

mod support;

use std::time::Duration;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::hello_request;
use wslink_core::{Generation, Message, Request, Value};
use wslink_server::{CallContext, HandlerError, Server};

const SECRET: &str = "wslink-secret";
const OFFER: &str = "permessage-deflate; client_max_window_bits";
const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A state update as apps send them: many records of numbers and strings.
fn state(records: usize) -> Value {
    Value::Array(
        (0..records)
            .map(|i| {
                Value::map([
                    ("id", Value::from(i as i64)),
                    ("name", Value::from(format!("actor-{i}"))),
                    ("visible", Value::Bool(i % 3 != 0)),
                    ("opacity", Value::from(((i % 100) as f64) / 100.0)),
                    (
                        "bounds",
                        Value::Array((0..6).map(|k| Value::from((i * k) as f64 * 0.5)).collect()),
                    ),
                ])
            })
            .collect(),
    )
}

/// JPEG-like bytes: the signature, then bytes that do not compress.
fn jpeg(len: usize) -> Bytes {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut out = vec![0xff, 0xd8, 0xff, 0xe0];
    out.extend((4..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    Bytes::from(out)
}

fn app() -> Server {
    Server::builder()
        .secret(SECRET)
        .method("app.state", |_: CallContext, (): ()| async move {
            Ok::<_, HandlerError>(state(4000))
        })
        .method("app.len", |_: CallContext, (v,): (Value,)| async move {
            let n = match v {
                Value::Str(s) => s.len(),
                Value::Bin(b) => b.len(),
                _ => 0,
            };
            Ok::<_, HandlerError>(n as i64)
        })
        .method("app.frame", |ctx: CallContext, (): ()| async move {
            ctx.publisher()
                .publish("app.frames", &Value::Bin(jpeg(200_000)))
                .map_err(HandlerError::msg)?;
            Ok::<_, HandlerError>(true)
        })
        .build()
}

/// Raw deflate of one message, as a client sends it (tail removed).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(data.len() * 20 + 1024);
    loop {
        let before = d.total_in() as usize;
        d.decompress_vec(&input[before..], &mut out, FlushDecompress::Sync)
            .unwrap();
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// One frame as it came off the wire.
#[derive(Debug)]
struct WireFrame {
    rsv1: bool,
    opcode: u8,
    fin: bool,
    payload: Vec<u8>,
}

/// A WebSocket client that shows every frame header.
struct Raw {
    tcp: TcpStream,
    generation: Generation,
    /// The `Sec-WebSocket-Extensions` the server answered, if any.
    extensions: Option<String>,
    v2: v2::Decoder,
    v1: v1::Decoder,
    keys: AttachmentKeys,
    /// Every data frame received: (RSV1, opcode, bytes on the wire).
    seen: Vec<(bool, u8, usize)>,
    seq: u64,
}

impl Raw {
    async fn connect(url: &str, generation: Generation, offer: Option<&str>) -> Raw {
        let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(offer) = offer {
            request.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        // The response, byte by byte up to its blank line.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        let mut v2 = v2::Decoder::new(Default::default());
        v2.set_authenticated(true);
        Raw {
            tcp,
            generation,
            extensions,
            v2,
            v1: v1::Decoder::new(Default::default()),
            keys: AttachmentKeys::new(),
            seen: Vec::new(),
            seq: 0,
        }
    }

    async fn send_frame(&mut self, b0: u8, payload: &[u8]) {
        let mask = [0x11, 0x5a, 0xc3, 0x7e];
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&f).await.unwrap();
    }

    /// Sends a message, its frames compressed when `compress` is set.
    async fn send(&mut self, message: &Message, compress: bool) {
        let frames = match self.generation {
            Generation::V2 => v2::encode_frames(message, 4 << 20).unwrap(),
            Generation::V1 => v1::encode(message, &self.keys).unwrap(),
        };
        for frame in frames {
            let (opcode, payload) = match frame {
                Frame::Text(t) => (0x1, t),
                Frame::Binary(b) => (0x2, b),
            };
            if compress {
                self.send_frame(0xc0 | opcode, &deflate(&payload)).await;
            } else {
                self.send_frame(0x80 | opcode, &payload).await;
            }
        }
    }

    async fn frame(&mut self) -> std::io::Result<WireFrame> {
        let b0 = self.tcp.read_u8().await?;
        let b1 = self.tcp.read_u8().await?;
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let len = match b1 & 0x7f {
            126 => u64::from(self.tcp.read_u16().await?),
            127 => self.tcp.read_u64().await?,
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        self.tcp.read_exact(&mut payload).await?;
        Ok(WireFrame {
            rsv1: b0 & 0x40 != 0,
            opcode: b0 & 0x0f,
            fin: b0 & 0x80 != 0,
            payload,
        })
    }

    /// The next wslink message, or `Err` with the close frame's code.
    async fn recv(&mut self) -> Result<Message, u16> {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(20), self.frame())
                .await
                .expect("a frame within 20 s")
                .map_err(|_| 1006u16)?;
            assert!(f.fin, "the server does not fragment");
            if f.opcode == 0x8 {
                return Err(u16::from_be_bytes([f.payload[0], f.payload[1]]));
            }
            if f.opcode >= 0x8 {
                continue;
            }
            self.seen.push((f.rsv1, f.opcode, f.payload.len()));
            let data = if f.rsv1 {
                inflate(&f.payload)
            } else {
                f.payload
            };
            let message = match f.opcode {
                0x1 => self
                    .v1
                    .push_text(std::str::from_utf8(&data).unwrap())
                    .unwrap(),
                _ if self.generation == Generation::V2 => self.v2.push(Bytes::from(data)).unwrap(),
                _ => {
                    self.v1.push_binary(Bytes::from(data)).unwrap();
                    None
                }
            };
            if let Some(m) = message {
                return Ok(m);
            }
        }
    }

    async fn call(&mut self, method: &str, args: Vec<Value>, compress: bool) -> Result<Value, u16> {
        self.seq += 1;
        let id = format!("rpc:c0:{}", self.seq);
        let request = Message::Request(Request {
            id: id.clone(),
            method: method.into(),
            args,
            kwargs: vec![],
        });
        self.send(&request, compress).await;
        loop {
            match self.recv().await? {
                Message::Result { id: got, result } if got == id => return Ok(result),
                Message::Error { id: got, error } if got == id => panic!("{error:?}"),
                _ => {}
            }
        }
    }

    async fn hello(&mut self, compress: bool) {
        self.send(&Message::Request(hello_request(SECRET)), compress)
            .await;
        assert!(matches!(self.recv().await, Ok(Message::Result { .. })));
    }
}

#[tokio::test]
async fn a_client_that_offers_deflate_gets_json_compressed_and_images_as_they_are() {
    let url = support::start(&app()).await;
    for generation in [Generation::V2, Generation::V1] {
        let mut c = Raw::connect(&url, generation, Some(OFFER)).await;
        assert_eq!(c.extensions.as_deref(), Some(ACCEPTED));
        // The client compresses too: a compressed hello and call.
        c.hello(true).await;
        let text = "x".repeat(50_000);
        let n = c
            .call("app.len", vec![Value::from(text)], true)
            .await
            .unwrap();
        assert_eq!(n, Value::from(50_000i64));

        c.seen.clear();
        let got = c.call("app.state", vec![], false).await.unwrap();
        assert_eq!(got, state(4000), "{generation}");
        let (rsv1, _, wire) = c.seen[0];
        assert!(rsv1, "{generation}: the state reply is compressed");
        let plain = match generation {
            Generation::V2 => wslink_core::msgpack::encode(&state(4000)).unwrap().len(),
            Generation::V1 => serde_json::to_string(&state(4000)).unwrap().len(),
        };
        assert!(
            wire * 4 < plain,
            "{generation}: {wire} bytes on the wire for {plain}"
        );

        // A JPEG publish goes out uncompressed, RSV1 clear. (A publish is
        // a result whose id names the topic; it may come before the reply.)
        c.seen.clear();
        let request = Message::Request(Request {
            id: "rpc:c0:frame".into(),
            method: "app.frame".into(),
            args: vec![],
            kwargs: vec![],
        });
        c.send(&request, false).await;
        let (mut replied, mut published) = (false, None);
        while !replied || published.is_none() {
            match c.recv().await.unwrap() {
                Message::Result { id, .. } if id == "rpc:c0:frame" => replied = true,
                Message::Result { id, result } if id.starts_with("publish:app.frames:") => {
                    published = Some(result)
                }
                _ => {}
            }
        }
        assert_eq!(published, Some(Value::Bin(jpeg(200_000))));
        let big: Vec<_> = c.seen.iter().filter(|(_, _, len)| *len > 100_000).collect();
        assert_eq!(big.len(), 1, "{generation}: {:?}", c.seen);
        assert!(!big[0].0, "{generation}: the image frame has RSV1 clear");
    }
}

#[tokio::test]
async fn without_an_offer_or_with_compression_off_nothing_is_compressed() {
    let on = support::start(&app()).await;
    let off_server = Server::builder().secret(SECRET).compression(false).build();
    let off = support::start(&off_server).await;
    for (url, offer) in [(&on, None), (&off, Some(OFFER))] {
        let mut c = Raw::connect(url, Generation::V1, offer).await;
        assert_eq!(c.extensions, None, "{url} {offer:?}");
        c.hello(false).await;
        // RSV1 without the extension breaks the protocol.
        c.send_frame(0xc1, &deflate(b"{}")).await;
        assert_eq!(c.recv().await.err(), Some(1002));
    }
    let mut c = Raw::connect(&on, Generation::V1, None).await;
    c.hello(false).await;
    assert_eq!(
        c.call("app.state", vec![], false).await.unwrap(),
        state(4000)
    );
    assert!(c.seen.iter().all(|(rsv1, _, _)| !rsv1));
}

/// A small compressed frame that inflates far past the message limit:
/// refused like an oversized message, after inflating no more than the
/// limit, while other clients go on.
#[tokio::test]
async fn an_inflate_bomb_is_refused_with_memory_flat() {
    let url = support::start(&app()).await;
    let mut bystander = Raw::connect(&url, Generation::V2, Some(OFFER)).await;
    bystander.hello(true).await;

    // 1 GiB of zeros as raw deflate: a 64 MiB stream repeated (each part
    // ends on a sync flush, so the parts chain into one valid stream).
    let part = deflate(&vec![0u8; 64 << 20]);
    let mut part = part;
    part.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let bomb: Vec<u8> = part.repeat(16);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());

    // Before the hello: a 400-byte frame that inflates to 400 KB.
    let small = deflate(&vec![b' '; 400_000]);
    assert!(small.len() < 500, "{}", small.len());
    let mut early = Raw::connect(&url, Generation::V2, Some(OFFER)).await;
    early.send_frame(0xc2, &small).await;
    assert_eq!(early.recv().await.err(), Some(1009));

    let before = support::rss_bytes();
    for _ in 0..3 {
        let mut attacker = Raw::connect(&url, Generation::V2, Some(OFFER)).await;
        attacker.hello(false).await;
        attacker.send_frame(0xc2, &bomb).await;
        assert_eq!(attacker.recv().await.err(), Some(1009));
        let n = bystander
            .call("app.len", vec![Value::from("still here")], true)
            .await;
        assert_eq!(n, Ok(Value::from(10i64)));
    }
    let grown = support::rss_bytes().saturating_sub(before);
    // The 4 MiB message limit and a few buffers, never the gigabyte.
    assert!(grown < 64 << 20, "grew {} MiB", grown >> 20);
}
