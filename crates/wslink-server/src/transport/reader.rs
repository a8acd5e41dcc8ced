//! Reading WebSocket frames from a client (RFC 6455 §5), with the size
//! limits judged from each frame's header before its payload is read.
//!
//! A wslink connection needs a small limit before its hello (a message of
//! 512 bytes) and larger ones after it (a 2.x chunk up to `maxMsgSize`, a
//! 1.x text or attachment up to its own limit), so the limits in force
//! ([`FrameLimits`]) change while the connection runs. A header is parsed
//! only when the connection asks for the next message, that is once every
//! message before it has been handled: a hello followed at once by a large
//! call is judged by the post-hello limits.
//!
//! Memory: nothing is held while the connection is idle. Bytes are read
//! into a read-ahead buffer that is allocated when a read is attempted and
//! freed as soon as a read would wait with nothing left in it; a message's
//! payload is allocated when its first frame arrives, grows with the bytes
//! that really arrive (never by the declared length alone), and leaves with
//! the message. Pings are answered through the writer's [`ControlPipe`],
//! whose bound keeps a ping flood from growing memory.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes};
use tokio::io::AsyncRead;
use wslink_core::chunking::HEADER_LEN;
use wslink_core::Generation;

use super::deflate::{self, Inflated};
use super::writer::ControlPipe;
use crate::config::Limits;

/// Bytes read from the socket at a time (while data is flowing).
const READ_SIZE: usize = 8 * 1024;
/// A message's payload grows by at most this much ahead of the bytes that
/// arrived, whatever its frames declare.
const GROW_STEP: usize = 64 * 1024;
/// A control frame's payload (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// A data message's kind, as far as limits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Binary,
}

/// A message over the limit in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub kind: Kind,
    /// Declared payload bytes (the running total for a fragmented
    /// message), or the bytes inflated so far for a compressed one.
    pub len: u64,
    /// The limit it broke.
    pub limit: usize,
}

/// The limits in force on one connection: set by the connection when its
/// hello succeeds, read by its frame reader at each header.
#[derive(Debug)]
pub(crate) struct FrameLimits {
    text: AtomicUsize,
    binary: AtomicUsize,
}

impl FrameLimits {
    /// Before the hello: a frame holds at most a pre-authentication message
    /// (plus a 2.x chunk header).
    pub fn pre_auth(limits: &Limits) -> Self {
        let n = limits.pre_auth_max_message_size.saturating_add(HEADER_LEN);
        FrameLimits {
            text: AtomicUsize::new(n),
            binary: AtomicUsize::new(n),
        }
    }

    /// Back to the limits before a hello (a relayed connection whose
    /// browser left, see reverse.rs).
    pub fn back_to_pre_auth(&self, limits: &Limits) {
        let n = limits.pre_auth_max_message_size.saturating_add(HEADER_LEN);
        self.text.store(n, Ordering::Release);
        self.binary.store(n, Ordering::Release);
    }

    /// After a successful hello.
    pub fn authenticated(&self, generation: Generation, limits: &Limits) {
        let (text, binary) = match generation {
            // 2.x sends no text frames; the connection closes with 1003 on one.
            Generation::V2 => (0, limits.v2_frame_limit()),
            Generation::V1 => (limits.max_text_size, limits.max_message_size),
        };
        self.text.store(text, Ordering::Release);
        self.binary.store(binary, Ordering::Release);
    }

    fn limit(&self, kind: Kind) -> usize {
        match kind {
            Kind::Text => self.text.load(Ordering::Acquire),
            Kind::Binary => self.binary.load(Ordering::Acquire),
        }
    }
}

/// What the reader hands out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A complete text message, valid UTF-8.
    Text(String),
    /// A complete binary message.
    Binary(Bytes),
    /// A ping (already answered), with its payload: a sign of life, and
    /// on a relayed connection a word from the relay (reverse.rs).
    Ping(Vec<u8>),
    /// A pong: a sign of life.
    Pong,
    /// The peer's close frame (already answered): nothing more will come.
    Close,
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The socket ended or failed: the peer is gone.
    Gone,
    /// A message over the limit in force.
    Oversized(Violation),
    /// The peer broke the protocol: close with this code and reason.
    Protocol(u16, &'static str),
}

fn protocol(reason: &'static str) -> ReadError {
    ReadError::Protocol(1002, reason)
}

/// A data message being received.
struct Message {
    kind: Kind,
    /// Its first frame had RSV1 set: the payload is deflated.
    compressed: bool,
    data: Vec<u8>,
    /// Declared bytes so far, across its frames.
    total: u64,
}

/// The frame whose payload is being read.
struct Frame {
    opcode: u8,
    fin: bool,
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes unmasked so far (the mask's phase).
    done: usize,
    /// A control frame's payload (data frames go to the message).
    control: Vec<u8>,
}

/// Reads and checks the frames a client sends, one message at a time.
pub(crate) struct FrameReader<R> {
    io: R,
    /// Read-ahead: `buf[pos..]` is not parsed yet. No capacity while idle.
    buf: Vec<u8>,
    pos: usize,
    limits: Arc<FrameLimits>,
    control: Arc<ControlPipe>,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    deflate: bool,
    message: Option<Message>,
    frame: Option<Frame>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R, limits: Arc<FrameLimits>, control: Arc<ControlPipe>, deflate: bool) -> Self {
        FrameReader {
            io,
            buf: Vec::new(),
            pos: 0,
            limits,
            control,
            deflate,
            message: None,
            frame: None,
        }
    }

    /// Whether bytes that arrived are waiting to be parsed: the next
    /// [`FrameReader::next`] may then finish without waiting for the socket.
    pub fn has_buffered(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The next message or control event. Cancel-safe: whatever was read
    /// is kept in the reader, so it may be dropped in a `select!` and
    /// called again.
    pub async fn next(&mut self) -> Result<Incoming, ReadError> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Bytes held by the reader now (tests check an idle reader holds none).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.buf.capacity()
            + self.message.as_ref().map_or(0, |m| m.data.capacity())
            + self.frame.as_ref().map_or(0, |f| f.control.capacity())
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes into the read-ahead buffer. `Ok(false)` at the end
    /// of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let have = self.buf.len();
        self.buf.reserve_exact(READ_SIZE);
        let polled = read_spare(&mut self.io, cx, &mut self.buf, READ_SIZE);
        match polled {
            Poll::Pending => {
                // Idle: keep only what is left of a header, if anything.
                if have == 0 {
                    self.buf = Vec::new();
                } else {
                    self.buf.shrink_to_fit();
                }
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n > 0)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }

    /// Like `poll_fill`, with the end of the stream or a failure as `Gone`.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ReadError>> {
        match ready!(self.poll_fill(cx)) {
            Ok(true) => Poll::Ready(Ok(())),
            Ok(false) | Err(_) => Poll::Ready(Err(ReadError::Gone)),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, ReadError>> {
        loop {
            if self.frame.is_none() {
                match parse_header(self.buffered()) {
                    Some(header) => {
                        self.pos += header.header_len;
                        self.start_frame(header)?;
                    }
                    None => {
                        ready!(self.poll_more(cx))?;
                        continue;
                    }
                }
            }
            let Some(frame) = &mut self.frame else {
                continue;
            };
            if frame.remaining > 0 {
                let buffered = &self.buf[self.pos..];
                if buffered.is_empty() {
                    let direct = frame.opcode < 0x8 && frame.remaining >= READ_SIZE as u64;
                    if direct {
                        ready!(self.poll_payload_direct(cx))?;
                    } else {
                        ready!(self.poll_more(cx))?;
                    }
                    continue;
                }
                let n = frame.remaining.min(buffered.len() as u64) as usize;
                let dest = if frame.opcode >= 0x8 {
                    &mut frame.control
                } else {
                    match &mut self.message {
                        Some(m) => &mut m.data,
                        None => unreachable!("a data frame always has its message"),
                    }
                };
                let start = dest.len();
                dest.extend_from_slice(&buffered[..n]);
                unmask(&mut dest[start..], frame.mask, frame.done);
                frame.done += n;
                frame.remaining -= n as u64;
                self.pos += n;
                if self.pos == self.buf.len() {
                    self.pos = 0;
                    self.buf.clear();
                }
                if frame.remaining > 0 {
                    continue;
                }
            }
            let Some(frame) = self.frame.take() else {
                continue;
            };
            if let Some(incoming) = self.finish_frame(frame)? {
                return Poll::Ready(Ok(incoming));
            }
        }
    }

    /// Reads a large payload straight into its message, bypassing the
    /// read-ahead buffer.
    fn poll_payload_direct(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ReadError>> {
        let (Some(frame), Some(message)) = (&mut self.frame, &mut self.message) else {
            return Poll::Ready(Err(ReadError::Gone));
        };
        // Drop the idle read-ahead buffer: the payload is read in place.
        self.buf = Vec::new();
        self.pos = 0;
        let data = &mut message.data;
        let start = data.len();
        let want = frame.remaining.min(GROW_STEP.max(start) as u64) as usize;
        if data.capacity() - start < want {
            data.reserve(want);
        }
        match read_spare(&mut self.io, cx, data, want) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) | Poll::Ready(Ok(0)) => Poll::Ready(Err(ReadError::Gone)),
            Poll::Ready(Ok(n)) => {
                unmask(&mut data[start..], frame.mask, frame.done);
                frame.done += n;
                frame.remaining -= n as u64;
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Checks a frame's header, and its declared length against the limit
    /// in force, before any of its payload is read.
    fn start_frame(&mut self, h: Header) -> Result<(), ReadError> {
        if !h.masked {
            return Err(protocol("client frames must be masked"));
        }
        if h.rsv & 0b011 != 0 {
            return Err(protocol("reserved bits set (no extension uses them)"));
        }
        let rsv1 = h.rsv & 0b100 != 0;
        if h.opcode >= 0x8 {
            if !matches!(h.opcode, 0x8..=0xA) {
                return Err(protocol("reserved control opcode"));
            }
            if !h.fin {
                return Err(protocol("fragmented control frame"));
            }
            if h.len > MAX_CONTROL as u64 {
                return Err(protocol("control frame over 125 bytes"));
            }
            if rsv1 {
                return Err(protocol("RSV1 set on a control frame"));
            }
            self.frame = Some(Frame {
                opcode: h.opcode,
                fin: true,
                remaining: h.len,
                mask: h.mask,
                done: 0,
                control: Vec::with_capacity(h.len as usize),
            });
            return Ok(());
        }
        let (kind, total) = match (h.opcode, &self.message) {
            (0x1, None) => (Kind::Text, h.len),
            (0x2, None) => (Kind::Binary, h.len),
            (0x0, Some(m)) => {
                if rsv1 {
                    return Err(protocol("RSV1 set on a continuation frame"));
                }
                (m.kind, m.total.saturating_add(h.len))
            }
            (0x0, None) => return Err(protocol("continuation frame with no message to continue")),
            (0x1 | 0x2, Some(_)) => {
                return Err(protocol("new message before the last one's final frame"))
            }
            _ => return Err(protocol("reserved data opcode")),
        };
        if rsv1 && !self.deflate {
            return Err(protocol(
                "RSV1 set but permessage-deflate was not negotiated",
            ));
        }
        let limit = self.limits.limit(kind);
        if total > limit as u64 {
            return Err(ReadError::Oversized(Violation {
                kind,
                len: total,
                limit,
            }));
        }
        let message = self.message.get_or_insert_with(|| Message {
            kind,
            compressed: rsv1,
            data: Vec::with_capacity(h.len.min(GROW_STEP as u64) as usize),
            total: 0,
        });
        message.total = total;
        self.frame = Some(Frame {
            opcode: h.opcode,
            fin: h.fin,
            remaining: h.len,
            mask: h.mask,
            done: 0,
            control: Vec::new(),
        });
        Ok(())
    }

    /// A frame's payload is complete: answer a control frame, hand out a
    /// message after its final frame.
    fn finish_frame(&mut self, frame: Frame) -> Result<Option<Incoming>, ReadError> {
        match frame.opcode {
            0x9 => {
                self.control.push(&control_frame(0xA, &frame.control));
                Ok(Some(Incoming::Ping(frame.control)))
            }
            0xA => Ok(Some(Incoming::Pong)),
            0x8 => {
                let reply = check_close(&frame.control)?;
                self.control.push(&control_frame(0x8, reply));
                Ok(Some(Incoming::Close))
            }
            _ if !frame.fin => Ok(None),
            _ => {
                let Some(message) = self.message.take() else {
                    return Err(ReadError::Gone);
                };
                let limit = self.limits.limit(message.kind);
                let data = if message.compressed {
                    match deflate::inflate(&message.data, limit) {
                        Inflated::Done(data) => data,
                        Inflated::TooLarge(len) => {
                            return Err(ReadError::Oversized(Violation {
                                kind: message.kind,
                                len,
                                limit,
                            }))
                        }
                        Inflated::Corrupt => {
                            return Err(protocol("compressed message does not inflate"))
                        }
                    }
                } else {
                    message.data
                };
                Ok(Some(match message.kind {
                    Kind::Binary => Incoming::Binary(Bytes::from(data)),
                    Kind::Text => match String::from_utf8(data) {
                        Ok(text) => Incoming::Text(text),
                        Err(_) => {
                            return Err(ReadError::Protocol(
                                1007,
                                "text message is not valid UTF-8",
                            ))
                        }
                    },
                }))
            }
        }
    }
}

/// A frame header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    /// RSV1, RSV2, RSV3 as the low three bits.
    rsv: u8,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    len: u64,
    header_len: usize,
}

/// The header at the start of `bytes`, once all of it is there.
fn parse_header(bytes: &[u8]) -> Option<Header> {
    let (&b0, &b1) = (bytes.first()?, bytes.get(1)?);
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let masked = b1 & 0x80 != 0;
    let header_len = 2 + ext + if masked { 4 } else { 0 };
    if bytes.len() < header_len {
        return None;
    }
    let len = match ext {
        0 => u64::from(b1 & 0x7f),
        2 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        _ => u64::from_be_bytes(bytes[2..10].try_into().ok()?),
    };
    let mut mask = [0; 4];
    if masked {
        mask.copy_from_slice(&bytes[2 + ext..header_len]);
    }
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0b111,
        opcode: b0 & 0x0f,
        masked,
        mask,
        // A length with the top bit set is invalid (RFC 6455 §5.2); as
        // u64::MAX it is over any limit.
        len: if len >> 63 != 0 { u64::MAX } else { len },
        header_len,
    })
}

/// Reads at most `max` bytes into `buf`'s spare capacity, appending them.
/// Nothing is zero-filled first: a payload read in many short reads (a
/// socket rarely hands over a whole large frame at once) would otherwise
/// clear its unread tail again on every read.
fn read_spare<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Poll<io::Result<usize>> {
    tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut buf.limit(max))
}

/// Unmasks `data`, which starts `phase` bytes into its frame's payload.
fn unmask(data: &mut [u8], mask: [u8; 4], phase: usize) {
    if mask == [0; 4] {
        return;
    }
    let mut rotated = [0u8; 4];
    for (i, m) in rotated.iter_mut().enumerate() {
        *m = mask[(phase + i) % 4];
    }
    let word = u32::from_ne_bytes(rotated);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= rotated[i];
    }
}

/// An unmasked control frame from the server.
fn control_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(2 + payload.len());
    f.push(0x80 | opcode);
    f.push(payload.len() as u8);
    f.extend_from_slice(payload);
    f
}

/// Checks a close frame's payload (RFC 6455 §5.5.1, §7.4); `Ok` is the
/// payload of the reply: the peer's code echoed, or nothing.
fn check_close(payload: &[u8]) -> Result<&[u8], ReadError> {
    match payload.len() {
        0 => return Ok(&[]),
        1 => return Err(protocol("close frame with a one-byte payload")),
        _ => {}
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !valid {
        return Err(protocol("invalid close code"));
    }
    if std::str::from_utf8(&payload[2..]).is_err() {
        return Err(ReadError::Protocol(1007, "close reason is not valid UTF-8"));
    }
    Ok(&payload[..2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A client frame: masked with a fixed non-trivial key.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![b0];
        let len = payload.len();
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn limits(pre_auth: usize) -> Arc<FrameLimits> {
        Arc::new(FrameLimits::pre_auth(&Limits {
            pre_auth_max_message_size: pre_auth,
            ..Limits::default()
        }))
    }

    /// Everything the reader hands out for `input` sent in pieces of
    /// `chunk` bytes, up to its first error; and the control bytes it
    /// queued for the writer.
    async fn read_all(
        input: Vec<u8>,
        limits: Arc<FrameLimits>,
        chunk: usize,
        deflate: bool,
    ) -> (Vec<Incoming>, Option<ReadError>, Vec<u8>) {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            for piece in input.chunks(chunk.max(1)) {
                if a.write_all(piece).await.is_err() {
                    return;
                }
            }
        });
        let control = Arc::new(ControlPipe::default());
        let mut reader = FrameReader::new(b, limits, control.clone(), deflate);
        let mut got = Vec::new();
        let error = loop {
            match reader.next().await {
                Ok(Incoming::Close) => {
                    got.push(Incoming::Close);
                    break None;
                }
                Ok(incoming) => got.push(incoming),
                Err(ReadError::Gone) => break None,
                Err(e) => break Some(e),
            }
        };
        (got, error, control.take_all())
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn fragmented_messages_with_control_frames_between_decode_however_cut() {
        let big = pattern(70_000);
        let mut input = Vec::new();
        input.extend(frame(0x82, b"one"));
        // Text in three fragments, a ping between the first two, a pong
        // between the last two, a multi-byte character across a cut.
        input.extend(frame(0x01, "hé".as_bytes()));
        input.extend(frame(0x89, b"p1"));
        input.extend(frame(0x00, "llo ".as_bytes()));
        input.extend(frame(0x8a, b""));
        input.extend(frame(0x80, "wörld".as_bytes()));
        input.extend(frame(0x02, &big[..10]));
        input.extend(frame(0x80, &big[10..]));
        input.extend(frame(0x82, b""));
        input.extend(frame(0x81, b""));
        input.extend(frame(0x88, &[0x03, 0xe8]));
        let want = vec![
            Incoming::Binary(Bytes::from_static(b"one")),
            Incoming::Ping(b"p1".to_vec()),
            Incoming::Pong,
            Incoming::Text("héllo wörld".into()),
            Incoming::Binary(Bytes::from(big.clone())),
            Incoming::Binary(Bytes::new()),
            Incoming::Text(String::new()),
            Incoming::Close,
        ];
        for chunk in [1, 2, 3, 5, 7, 13, 100, 4096, 1 << 20] {
            let l = Arc::new(FrameLimits::pre_auth(&Limits::default()));
            l.authenticated(Generation::V1, &Limits::default());
            let (got, error, control) = read_all(input.clone(), l, chunk, false).await;
            assert_eq!(error, None, "pieces of {chunk}");
            assert_eq!(got, want, "pieces of {chunk}");
            // The ping answered with its payload, the close echoed.
            assert_eq!(control, [0x8a, 2, b'p', b'1', 0x88, 2, 0x03, 0xe8]);
        }
    }

    #[tokio::test]
    async fn broken_frames_get_their_close_codes() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // Unmasked.
            (vec![0x82, 0x01, 0x00], 1002),
            // RSV2, RSV3, and RSV1 without deflate.
            (frame(0xa2, b"x"), 1002),
            (frame(0x92, b"x"), 1002),
            (frame(0xc2, b"x"), 1002),
            // Reserved opcodes.
            (frame(0x83, b"x"), 1002),
            (frame(0x8b, b""), 1002),
            // Control frames: fragmented, over 125 bytes.
            (frame(0x09, b""), 1002),
            (frame(0x89, &[0; 126]), 1002),
            // Continuation of nothing; a new message inside a fragmented one.
            (frame(0x80, b"x"), 1002),
            ([frame(0x01, b"a"), frame(0x81, b"b")].concat(), 1002),
            // Invalid UTF-8: in one frame, across fragments, in a close reason.
            (frame(0x81, &[0xff, 0xfe]), 1007),
            (
                [frame(0x01, &[0xe2, 0x82]), frame(0x80, &[0x28])].concat(),
                1007,
            ),
            (frame(0x88, &[0x03, 0xe8, 0xc3]), 1007),
            // Close payloads: one byte, reserved or invalid codes.
            (frame(0x88, &[0x03]), 1002),
            (frame(0x88, &1005u16.to_be_bytes()), 1002),
            (frame(0x88, &999u16.to_be_bytes()), 1002),
            (frame(0x88, &5000u16.to_be_bytes()), 1002),
        ];
        for (input, code) in cases {
            for chunk in [1, 3, 1000] {
                let l = Arc::new(FrameLimits::pre_auth(&Limits::default()));
                l.authenticated(Generation::V1, &Limits::default());
                let (_, error, _) = read_all(input.clone(), l, chunk, false).await;
                match error {
                    Some(ReadError::Protocol(c, _)) => assert_eq!(c, code, "{input:02x?}"),
                    other => panic!("{input:02x?}: {other:?}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn an_oversized_header_is_refused_before_its_payload() {
        for (input, kind, len) in [
            (frame(0x82, &[0; 525]), Kind::Binary, 525),
            (frame(0x81, &[b'a'; 70_000]), Kind::Text, 70_000),
            // A fragmented message over the limit in total.
            (
                [frame(0x01, &[b'a'; 300]), frame(0x80, &[b'a'; 300])].concat(),
                Kind::Text,
                600,
            ),
        ] {
            for chunk in [1, 5, 4096] {
                let (got, error, _) = read_all(input.clone(), limits(512), chunk, false).await;
                assert!(got.is_empty());
                assert_eq!(
                    error,
                    Some(ReadError::Oversized(Violation {
                        kind,
                        len,
                        limit: 524
                    }))
                );
            }
        }
        // A header declaring 2^63 bytes, and no payload at all.
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        let (_, error, _) = read_all(huge, limits(512), 3, false).await;
        assert!(matches!(error, Some(ReadError::Oversized(_))), "{error:?}");
    }

    #[tokio::test]
    async fn a_raised_limit_applies_to_the_next_header() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let big = pattern(100_000);
        a.write_all(&[frame(0x82, b"hello"), frame(0x82, &big)].concat())
            .await
            .unwrap();
        drop(a);
        let l = limits(512);
        let mut reader = FrameReader::new(b, l.clone(), Arc::default(), false);
        assert_eq!(
            reader.next().await,
            Ok(Incoming::Binary(Bytes::from_static(b"hello")))
        );
        // The hello succeeded meanwhile.
        l.authenticated(Generation::V2, &Limits::default());
        assert_eq!(reader.next().await, Ok(Incoming::Binary(Bytes::from(big))));
        assert_eq!(reader.next().await, Err(ReadError::Gone));
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let l = Arc::new(FrameLimits::pre_auth(&Limits::default()));
        l.authenticated(Generation::V2, &Limits::default());
        let mut reader = FrameReader::new(b, l, Arc::default(), false);
        let big = pattern(300_000);
        a.write_all(&frame(0x82, &big)).await.unwrap();
        a.write_all(&frame(0x82, b"small")).await.unwrap();
        assert_eq!(reader.next().await, Ok(Incoming::Binary(Bytes::from(big))));
        assert_eq!(
            reader.next().await,
            Ok(Incoming::Binary(Bytes::from_static(b"small")))
        );
        // Waiting for the next frame: nothing held.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), reader.next());
        assert!(waiting.await.is_err());
        assert_eq!(reader.held(), 0);
        // A header cut short holds its few bytes only.
        a.write_all(&[0x82]).await.unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), reader.next());
        assert!(waiting.await.is_err());
        assert!(reader.held() <= 16, "{}", reader.held());
    }

    #[tokio::test]
    async fn a_large_declared_length_does_not_allocate_ahead_of_the_bytes() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let l = Arc::new(FrameLimits::pre_auth(&Limits::default()));
        l.authenticated(Generation::V1, &Limits::default());
        let mut reader = FrameReader::new(b, l, Arc::default(), false);
        // 8 MiB declared (within the limit), 10 bytes sent.
        let mut head = frame(0x82, &[]);
        head[1] = 0x80 | 127;
        head.splice(2..2, (8u64 << 20).to_be_bytes());
        head.extend_from_slice(&[0; 10]);
        a.write_all(&head).await.unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), reader.next());
        assert!(waiting.await.is_err());
        assert!(reader.held() <= 2 * GROW_STEP, "{}", reader.held());
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    /// Reads `input` delivered in the given pieces; everything handed out
    /// up to the end or the first error.
    async fn read_split(input: &[u8], cuts: &[usize]) -> (Vec<Incoming>, Option<ReadError>) {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let mut pieces = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            pieces.push(input[at..cut].to_vec());
            at = cut;
        }
        pieces.push(input[at..].to_vec());
        tokio::spawn(async move {
            for piece in pieces {
                if a.write_all(&piece).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        let l = Arc::new(FrameLimits::pre_auth(&Limits::default()));
        l.authenticated(Generation::V1, &Limits::default());
        let mut reader = FrameReader::new(b, l, Arc::default(), true);
        let mut got = Vec::new();
        loop {
            match reader.next().await {
                Ok(Incoming::Close) => return (got, None),
                Ok(i) => got.push(i),
                Err(ReadError::Gone) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    /// Random valid streams (fragmented text and binary, compressed or
    /// not, pings between fragments, lengths across the 7/16/64-bit forms)
    /// decode to the same messages however they are cut.
    #[tokio::test]
    async fn any_split_of_valid_frames_decodes_the_same() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..40 {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for _ in 0..1 + rng.below(6) {
                let len = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000][rng.below(8)];
                let text = rng.below(2) == 0;
                let body = if text {
                    // Multi-byte characters, cut at a boundary near `len`.
                    let s = "aé€😀".repeat(len / 4 + 1);
                    let mut end = len;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    s.as_bytes()[..end].to_vec()
                } else {
                    pattern(len)
                };
                let compressed = rng.below(3) == 0;
                let payload = if compressed {
                    super::deflate::Deflate::compress_always(&body)
                } else {
                    body.clone()
                };
                let opcode = if text { 0x1 } else { 0x2 };
                let parts = 1 + rng.below(3);
                let step = payload.len() / parts + 1;
                let chunks: Vec<&[u8]> = if payload.is_empty() {
                    vec![&[]]
                } else {
                    payload.chunks(step).collect()
                };
                for (i, chunk) in chunks.iter().enumerate() {
                    let first = i == 0;
                    let last = i + 1 == chunks.len();
                    let mut b0 = if first { opcode } else { 0 };
                    if last {
                        b0 |= 0x80;
                    }
                    if first && compressed {
                        b0 |= 0x40;
                    }
                    input.extend(frame(b0, chunk));
                    if !last && rng.below(2) == 0 {
                        input.extend(frame(0x89, b"between"));
                        want.push(Incoming::Ping(b"between".to_vec()));
                    }
                }
                want.push(if text {
                    Incoming::Text(String::from_utf8(body).unwrap())
                } else {
                    Incoming::Binary(Bytes::from(body))
                });
            }
            for _ in 0..3 {
                let mut cuts: Vec<usize> = (0..rng.below(20))
                    .map(|_| rng.below(input.len() as u64 + 1))
                    .collect();
                cuts.sort_unstable();
                let (got, error) = read_split(&input, &cuts).await;
                assert_eq!(error, None);
                assert!(got == want, "cuts {cuts:?}");
            }
        }
    }

    /// Arbitrary bytes never panic the reader nor make it hold more than
    /// the limits allow.
    #[tokio::test]
    async fn random_bytes_never_panic() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for round in 0..300 {
            let len = rng.below(400);
            let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the rounds start from a plausible masked header.
            if round % 2 == 0 && input.len() > 6 {
                input[0] = [0x81, 0x82, 0x01, 0x02, 0x88, 0x89, 0xc2, 0x80][rng.below(8)];
                input[1] |= 0x80;
            }
            let cuts = [rng.below(len as u64 + 1)];
            let _ = read_split(&input, &cuts).await;
        }
    }

    #[test]
    fn unmasking_in_pieces_matches_unmasking_at_once() {
        let mask = [1, 2, 3, 4];
        let data = pattern(103);
        let mut whole = data.clone();
        unmask(&mut whole, mask, 0);
        for cut in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            unmask(a, mask, 0);
            unmask(b, mask, cut);
            assert_eq!(pieces, whole, "cut at {cut}");
        }
    }
}
