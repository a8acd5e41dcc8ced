//! Reading the frames a server sends (RFC 6455 §5), without tungstenite.
//!
//! tungstenite zero-fills its 128 KiB read buffer before every socket read
//! and hands each large frame out in a buffer of its own, freshly allocated:
//! on glibc a stream of 1 MiB frames then pays a `memset` and the page
//! faults of new memory for every frame (BENCHMARKS.md, "The load
//! generator's allocator"). This reader:
//!
//! - reads into spare capacity, never zero-filled;
//! - carves small messages out of one read-ahead buffer;
//! - reads a large message's payload straight into a buffer from a small
//!   process-wide [`pool`](BufferPool), which comes back to the pool when the
//!   last slice of the message is dropped;
//! - in 2.x, reads the chunks of a message that arrives in order straight
//!   into one buffer laid out as a single chunk (header, then the whole
//!   content), so the decoder hands it out without the reassembly copy.
//!   The buffer grows as bytes arrive (never more than 16 times the first
//!   chunk ahead) and within the decoder's budget for partial messages.
//!   Anything else (chunks out of order, or interleaved with another
//!   partial message, or over a limit) goes to the decoder as it came, and
//!   from then on the decoder alone reassembles this connection's chunks,
//!   so its limits on partial messages keep counting all of them.
//!
//! It yields tungstenite's [`Message`] and [`Error`] types, so the
//! connection task sorts errors as it did when tungstenite read.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};
use wslink_core::chunking::{ChunkHeader, HEADER_LEN};

/// Bytes asked of the socket at a time for the read-ahead buffer.
const READ_SIZE: usize = 16 * 1024;
/// Payloads this large are read straight into a buffer of their own.
const DIRECT: usize = 64 * 1024;
/// A message being assembled reserves at most this many times the bytes
/// of its first chunk (enough for 64 MiB sent in 4 MiB chunks at once).
const RESERVE_AHEAD: usize = 16;
/// A control frame's payload (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;

/// What a [`FrameReader`] lets through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// The largest message (and 2.x declared size) accepted.
    pub max_message_size: usize,
    /// The decoder's budget for partial 2.x messages.
    pub max_pending_bytes: usize,
    /// Reassemble 2.x chunks that arrive in order (a 2.x connection).
    pub assemble: bool,
}

/// Reads one server's frames.
pub(crate) struct FrameReader<R> {
    io: R,
    /// Read-ahead: bytes read but not parsed yet.
    buf: BytesMut,
    max_message_size: usize,
    /// The decoder's budget for partial messages, which the message being
    /// assembled here stays within.
    max_pending_bytes: usize,
    /// Reassemble 2.x chunks arriving in order.
    assemble: bool,
    assembly: Option<Assembly>,
    /// A fragmented message under way: its kind and bytes so far.
    fragments: Option<(Data, Vec<u8>)>,
    /// A message to hand out before reading on.
    queued: Option<Message>,
    /// The close frame (or the end of the stream) was seen.
    done: bool,
}

/// A 2.x message whose chunks are read into one buffer.
struct Assembly {
    id: u32,
    total: u32,
    /// Header (as one chunk at offset 0) then the content received so far.
    buf: Vec<u8>,
}

impl Assembly {
    fn received(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    /// What was received, as one chunk at offset 0 the decoder can take.
    fn into_chunk(self) -> Bytes {
        pooled(self.buf)
    }
}

struct Header {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    len: u64,
}

/// Parses a frame header from the start of `b`: the header and its length,
/// or `None` if more bytes are needed.
fn parse_header(b: &[u8]) -> Option<(Header, usize)> {
    let (&first, rest) = b.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let masked = second & 0x80 != 0;
    let (len, mut used) = match second & 0x7F {
        126 => (u64::from(u16::from_be_bytes(*rest.first_chunk::<2>()?)), 4),
        127 => (u64::from_be_bytes(*rest.first_chunk::<8>()?), 10),
        n => (u64::from(n), 2),
    };
    if masked {
        used += 4;
        if b.len() < used {
            return None;
        }
    }
    let header = Header {
        fin: first & 0x80 != 0,
        rsv: (first >> 4) & 0b111,
        opcode: first & 0x0F,
        masked,
        len,
    };
    Some((header, used))
}

fn protocol(e: ProtocolError) -> Error {
    Error::Protocol(e)
}

fn too_long(size: u64, max_size: usize) -> Error {
    Error::Capacity(CapacityError::MessageTooLong {
        size: usize::try_from(size).unwrap_or(usize::MAX),
        max_size,
    })
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader starting with `read_ahead` (bytes read with the handshake's
    /// response), for messages up to `max_message_size`; `assemble`
    /// reassembles 2.x chunks.
    pub(crate) fn new(io: R, read_ahead: &[u8], limits: ReadLimits) -> Self {
        FrameReader {
            io,
            buf: BytesMut::from(read_ahead),
            max_message_size: limits.max_message_size,
            max_pending_bytes: limits.max_pending_bytes,
            assemble: limits.assemble,
            assembly: None,
            fragments: None,
            queued: None,
            done: false,
        }
    }

    /// The next message (pings, pongs and the close frame included), or
    /// `None` once the close frame was read.
    ///
    /// Not cancel-safe: a read dropped half way loses its frame (the
    /// connection task drops it only when the connection is ending).
    pub(crate) async fn next(&mut self) -> Option<Result<Message, Error>> {
        if let Some(m) = self.queued.take() {
            return Some(Ok(m));
        }
        if self.done {
            return None;
        }
        let read = self.read_message().await;
        if matches!(read, Err(_) | Ok(Message::Close(_))) {
            self.done = true;
        }
        Some(read)
    }

    /// Makes `buf` hold at least `n` bytes.
    async fn fill(&mut self, n: usize) -> Result<(), Error> {
        while self.buf.len() < n {
            self.buf.reserve((n - self.buf.len()).max(READ_SIZE));
            if self.io.read_buf(&mut self.buf).await.map_err(Error::Io)? == 0 {
                return Err(protocol(ProtocolError::ResetWithoutClosingHandshake));
            }
        }
        Ok(())
    }

    /// Appends the next `n` payload bytes to `out`: what the read-ahead
    /// holds, then straight from the socket. `out` grows with the bytes
    /// that arrive (doubling), never by `n` alone.
    async fn read_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<(), Error> {
        let have = n.min(self.buf.len());
        out.extend_from_slice(&self.buf[..have]);
        self.buf.advance(have);
        let mut left = n - have;
        while left > 0 {
            if out.capacity() == out.len() {
                out.reserve_exact(left.min(out.len().max(DIRECT)));
            }
            let room = left.min(out.capacity() - out.len());
            let read = self
                .io
                .read_buf(&mut (&mut *out).limit(room))
                .await
                .map_err(Error::Io)?;
            if read == 0 {
                return Err(protocol(ProtocolError::ResetWithoutClosingHandshake));
            }
            left -= read;
        }
        Ok(())
    }

    /// A payload of `n` bytes as one buffer.
    async fn payload(&mut self, n: usize) -> Result<Bytes, Error> {
        if n < DIRECT {
            self.fill(n).await?;
            return Ok(self.buf.split_to(n).freeze());
        }
        let mut out = pool().take(n);
        self.read_into(&mut out, n).await?;
        Ok(pooled(out))
    }

    async fn read_message(&mut self) -> Result<Message, Error> {
        loop {
            self.fill(2).await?;
            let (h, used) = loop {
                match parse_header(&self.buf) {
                    Some(parsed) => break parsed,
                    None => self.fill(self.buf.len() + 1).await?,
                }
            };
            self.buf.advance(used);
            if h.masked {
                return Err(protocol(ProtocolError::MaskedFrameFromServer));
            }
            if h.rsv != 0 {
                return Err(protocol(ProtocolError::NonZeroReservedBits));
            }
            if h.opcode >= 0x8 {
                return self.control(h).await;
            }
            let kind = match h.opcode {
                0x0 => Data::Continue,
                0x1 => Data::Text,
                0x2 => Data::Binary,
                other => return Err(protocol(ProtocolError::UnknownDataFrameType(other))),
            };
            let so_far = self.fragments.as_ref().map_or(0, |(_, b)| b.len() as u64);
            let total = so_far.saturating_add(h.len);
            if total > self.max_message_size as u64 {
                return Err(too_long(total, self.max_message_size));
            }
            // No wrap: at most max_message_size, a usize.
            let len = h.len as usize;
            match (kind, self.fragments.take()) {
                (Data::Continue, None) => {
                    return Err(protocol(ProtocolError::UnexpectedContinueFrame))
                }
                (Data::Continue, Some((first, mut bytes))) => {
                    self.read_into(&mut bytes, len).await?;
                    if !h.fin {
                        self.fragments = Some((first, bytes));
                        continue;
                    }
                    return to_message(first, Bytes::from(bytes));
                }
                (_, Some((first, _))) => {
                    return Err(protocol(ProtocolError::ExpectedFragment(first)))
                }
                (kind, None) if !h.fin => {
                    let mut bytes = Vec::new();
                    self.read_into(&mut bytes, len).await?;
                    self.fragments = Some((kind, bytes));
                    continue;
                }
                (Data::Binary, None) if self.assemble && len >= HEADER_LEN => {
                    if let Some(m) = self.chunk(len).await? {
                        return Ok(m);
                    }
                }
                (kind, None) => {
                    let payload = self.payload(len).await?;
                    return to_message(kind, payload);
                }
            }
        }
    }

    /// A 2.x chunk of `len` bytes: a message, or `None` when the chunk
    /// went into the message being assembled without completing it.
    async fn chunk(&mut self, len: usize) -> Result<Option<Message>, Error> {
        self.fill(HEADER_LEN).await?;
        let head = match ChunkHeader::parse(&self.buf[..HEADER_LEN]) {
            Ok((head, _)) => head,
            Err(_) => unreachable!("the header's bytes are there"),
        };
        let content = len - HEADER_LEN;
        let (offset, total) = (u64::from(head.offset), u64::from(head.total));
        let whole = offset == 0 && content as u64 == total;
        if whole {
            // One chunk: straight to the decoder, whatever is under way.
            return self.payload(len).await.map(|b| Some(Message::Binary(b)));
        }
        let end = offset + content as u64;
        match self.assembly.take() {
            Some(mut a)
                if a.id == head.id
                    && a.total == head.total
                    && a.received() as u64 == offset
                    && content > 0
                    && end <= total
                    && (end == total
                        || HEADER_LEN as u64 + end <= self.max_pending_bytes as u64) =>
            {
                self.buf.advance(HEADER_LEN);
                let need = HEADER_LEN + end as usize;
                if need > a.buf.capacity() {
                    // Doubling, as bytes arrive, up to the message.
                    let want = need
                        .max(2 * a.buf.capacity())
                        .min(HEADER_LEN + total as usize);
                    a.buf.reserve_exact(want - a.buf.len());
                }
                self.read_into(&mut a.buf, content).await?;
                if end == total {
                    return Ok(Some(Message::Binary(a.into_chunk())));
                }
                self.assembly = Some(a);
                Ok(None)
            }
            Some(a) => {
                // Out of order, interleaved with another partial message,
                // or over the budget: the decoder takes over (what was
                // assembled, as a chunk at offset 0, then this one), and
                // judges this connection's chunks from now on.
                self.assemble = false;
                let payload = self.payload(len).await?;
                self.queued = Some(Message::Binary(payload));
                Ok(Some(Message::Binary(a.into_chunk())))
            }
            None => {
                let starts = offset == 0
                    && content > 0
                    && (content as u64) < total
                    && total <= self.max_message_size as u64
                    && HEADER_LEN + content <= self.max_pending_bytes;
                if !starts {
                    // The decoder holds partial messages from now on: it
                    // alone keeps count of them.
                    self.assemble = false;
                    return self.payload(len).await.map(|b| Some(Message::Binary(b)));
                }
                // Room for what a sender in order will send, but never
                // more than a few times what arrived: a declared size costs
                // nothing by itself.
                let room = (HEADER_LEN + total as usize)
                    .min(HEADER_LEN + content.saturating_mul(RESERVE_AHEAD))
                    .min(self.max_pending_bytes.max(HEADER_LEN + content));
                let mut buf = Vec::with_capacity(room);
                buf.extend_from_slice(
                    &ChunkHeader {
                        id: head.id,
                        offset: 0,
                        total: head.total,
                    }
                    .encode(),
                );
                self.buf.advance(HEADER_LEN);
                self.read_into(&mut buf, content).await?;
                self.assembly = Some(Assembly {
                    id: head.id,
                    total: head.total,
                    buf,
                });
                Ok(None)
            }
        }
    }

    async fn control(&mut self, h: Header) -> Result<Message, Error> {
        if !h.fin {
            return Err(protocol(ProtocolError::FragmentedControlFrame));
        }
        if h.len > MAX_CONTROL {
            return Err(protocol(ProtocolError::ControlFrameTooBig));
        }
        let payload = self.payload(h.len as usize).await?;
        match h.opcode {
            0x8 => close(payload).map(Message::Close),
            0x9 => Ok(Message::Ping(payload)),
            0xA => Ok(Message::Pong(payload)),
            other => Err(protocol(ProtocolError::UnknownControlFrameType(other))),
        }
    }
}

fn to_message(kind: Data, payload: Bytes) -> Result<Message, Error> {
    match kind {
        Data::Text => Utf8Bytes::try_from(payload)
            .map(Message::Text)
            .map_err(|e| Error::Utf8(e.to_string())),
        _ => Ok(Message::Binary(payload)),
    }
}

fn close(payload: Bytes) -> Result<Option<CloseFrame>, Error> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(protocol(ProtocolError::InvalidCloseSequence)),
        _ => {
            let code = CloseCode::from(u16::from_be_bytes([payload[0], payload[1]]));
            let reason =
                Utf8Bytes::try_from(payload.slice(2..)).map_err(|e| Error::Utf8(e.to_string()))?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// Large receive buffers kept for reuse, for the whole process: a new
/// buffer per frame costs fresh pages (faulted in and cleared by the
/// kernel) whenever the allocator has handed the last one back.
///
/// Bounded: at most [`BufferPool::MAX_BUFFERS`] buffers of at most
/// [`BufferPool::MAX_BUFFER`] bytes each are kept.
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    const MAX_BUFFERS: usize = 8;
    const MAX_BUFFER: usize = 4 * 1024 * 1024;

    /// An empty buffer for a payload of `n` bytes: a kept one with room
    /// for all of it if there is one, else a new one with room for the
    /// first [`DIRECT`] bytes (it grows as the rest arrives).
    fn take(&self, n: usize) -> Vec<u8> {
        if n <= Self::MAX_BUFFER {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= n)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            if let Some(i) = fit {
                return free.swap_remove(i);
            }
        }
        Vec::with_capacity(n.min(DIRECT))
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() < DIRECT || buf.capacity() > Self::MAX_BUFFER {
            return;
        }
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < Self::MAX_BUFFERS {
            free.push(buf);
        } else if let Some(smallest) = free.iter_mut().min_by_key(|b| b.capacity()) {
            if smallest.capacity() < buf.capacity() {
                *smallest = buf;
            }
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.iter().map(Vec::capacity).sum()
    }
}

fn pool() -> &'static Arc<BufferPool> {
    static POOL: OnceLock<Arc<BufferPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
        })
    })
}

/// A received buffer that goes back to the pool when dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

/// `buf` as `Bytes` that give it back to the pool once every slice of it
/// is dropped.
fn pooled(buf: Vec<u8>) -> Bytes {
    if buf.capacity() < DIRECT || buf.capacity() > BufferPool::MAX_BUFFER {
        return Bytes::from(buf);
    }
    Bytes::from_owner(Pooled {
        buf,
        pool: Arc::downgrade(pool()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    fn chunk(id: u32, offset: u32, total: u32, content: &[u8]) -> Vec<u8> {
        let mut c = ChunkHeader { id, offset, total }.encode().to_vec();
        c.extend_from_slice(content);
        frame(0x2, true, &c)
    }

    async fn read_all(wire: Vec<u8>, max: usize) -> Vec<Result<Message, String>> {
        // Split into odd-sized reads, so headers and payloads straddle them.
        let (mut tx, rx) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in wire.chunks(5000) {
                if tx.write_all(piece).await.is_err() {
                    break;
                }
            }
        });
        let limits = ReadLimits {
            max_message_size: max,
            max_pending_bytes: max + 1024,
            assemble: true,
        };
        let mut r = FrameReader::new(rx, &[], limits);
        let mut out = Vec::new();
        while let Some(m) = r.next().await {
            let failed = m.is_err();
            out.push(m.map_err(|e| e.to_string()));
            if failed {
                break;
            }
        }
        writer.abort();
        out
    }

    #[tokio::test]
    async fn in_order_chunks_arrive_as_one_chunk_at_offset_zero() {
        let content: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        for (i, part) in content.chunks(100_000).enumerate() {
            wire.extend(chunk(9, (i * 100_000) as u32, 300_000, part));
        }
        wire.extend(frame(0x8, true, &[0x03, 0xE8]));
        let got = read_all(wire, 1 << 20).await;
        assert_eq!(got.len(), 2, "{got:?}");
        let Ok(Message::Binary(b)) = &got[0] else {
            panic!("{got:?}")
        };
        let (head, body) = ChunkHeader::parse(b).unwrap();
        assert_eq!((head.id, head.offset, head.total), (9, 0, 300_000));
        assert_eq!(body, &content[..]);
        assert!(matches!(&got[1], Ok(Message::Close(Some(f))) if f.code == CloseCode::Normal));
    }

    #[tokio::test]
    async fn chunks_out_of_order_go_to_the_decoder_as_they_came() {
        let mut wire = Vec::new();
        wire.extend(chunk(1, 0, 6, b"abc"));
        wire.extend(chunk(2, 0, 2, b"xy"));
        wire.extend(chunk(1, 4, 6, b"ef"));
        wire.extend(chunk(1, 3, 6, b"d"));
        let got = read_all(wire, 1 << 20).await;
        let chunks: Vec<_> = got
            .iter()
            .filter_map(|m| match m {
                Ok(Message::Binary(b)) => {
                    let (h, c) = ChunkHeader::parse(b).unwrap();
                    Some((h.id, h.offset, c.to_vec()))
                }
                _ => None,
            })
            .collect();
        // Message 2 is whole; message 1's in-order start is handed over
        // when a chunk breaks the order, then the rest as they came.
        assert_eq!(
            chunks,
            vec![
                (2, 0, b"xy".to_vec()),
                (1, 0, b"abc".to_vec()),
                (1, 4, b"ef".to_vec()),
                (1, 3, b"d".to_vec()),
            ]
        );
        // The stream ended without a close frame.
        assert!(got.last().unwrap().is_err());
    }

    #[tokio::test]
    async fn frames_are_checked() {
        let over = read_all(frame(0x2, true, &[0; 100]), 50).await;
        assert!(
            over[0].as_ref().unwrap_err().contains("Message too long"),
            "{over:?}"
        );
        let mut masked = frame(0x2, true, b"abcd");
        masked[1] |= 0x80;
        masked.splice(2..2, [1, 2, 3, 4]);
        assert!(read_all(masked, 50).await[0].is_err());
        let bad_utf8 = read_all(frame(0x1, true, &[0xFF, 0xFE]), 50).await;
        assert!(
            matches!(&bad_utf8[0], Err(e) if e.contains("UTF-8") || e.contains("utf-8") || e.contains("Utf8")),
            "{bad_utf8:?}"
        );
        let rsv = {
            let mut f = frame(0x2, true, b"x");
            f[0] |= 0x40;
            f
        };
        assert!(read_all(rsv, 50).await[0].is_err());
        // Fragments are joined; a ping in between comes out first.
        let mut wire = frame(0x1, false, b"he");
        wire.extend(frame(0x9, true, b"p"));
        wire.extend(frame(0x0, true, b"llo"));
        let got = read_all(wire, 50).await;
        assert!(
            matches!(&got[0], Ok(Message::Ping(p)) if &p[..] == b"p"),
            "{got:?}"
        );
        assert!(
            matches!(&got[1], Ok(Message::Text(t)) if t.as_str() == "hello"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn large_buffers_go_back_to_the_pool() {
        let payload = vec![5u8; 200_000];
        let mut wire = frame(0x2, true, &payload);
        wire.extend(frame(0x2, true, &payload));
        let got = read_all(wire, 1 << 20).await;
        let Ok(Message::Binary(first)) = &got[0] else {
            panic!()
        };
        assert_eq!(&first[..], &payload[..]);
        drop(got);
        assert!(pool().held() >= 200_000);
    }
}
