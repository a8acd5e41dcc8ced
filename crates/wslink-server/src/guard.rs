//! Checks made on raw input before the decoders see it: WebSocket frame
//! sizes, from each frame's header, and the nesting depth of 1.x JSON.
//!
//! tungstenite checks a frame's declared length against one limit fixed for
//! the whole connection, and reserves that length as soon as the header has
//! arrived. A wslink connection needs a small limit before its hello (a
//! message of 512 bytes) and larger ones after it (a 2.x chunk up to
//! `maxMsgSize`, a 1.x text or attachment up to its own limit). So
//! [`LimitedIo`] sits under tungstenite: it follows the frame headers in the
//! byte stream and fails the read when a header declares more than the
//! limit in force, before any of the frame's payload is read. A header is
//! judged when tungstenite asks for the bytes after it, that is once every
//! frame before it has been handed out and handled (a hello followed at
//! once by a large call is judged by the post-hello limits).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wslink_core::chunking::HEADER_LEN;
use wslink_core::Generation;

use crate::config::Limits;

/// A data frame's kind, as far as limits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Binary,
}

/// A frame (or fragmented message) over the limit in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub kind: Kind,
    /// Declared payload bytes (the running total for a fragmented message).
    pub len: u64,
    /// The limit it broke.
    pub limit: usize,
}

/// The limits in force on one connection, shared by its reader and
/// [`LimitedIo`].
#[derive(Debug)]
pub(crate) struct FrameLimits {
    text: AtomicUsize,
    binary: AtomicUsize,
    violation: Mutex<Option<Violation>>,
}

impl FrameLimits {
    /// Before the hello: a frame holds at most a pre-authentication message
    /// (plus a 2.x chunk header).
    pub fn pre_auth(limits: &Limits) -> Self {
        let n = limits.pre_auth_max_message_size.saturating_add(HEADER_LEN);
        FrameLimits {
            text: AtomicUsize::new(n),
            binary: AtomicUsize::new(n),
            violation: Mutex::new(None),
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
            // 2.x sends no text frames; the reader closes with 1003 on one.
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

    /// The violation that failed the read, if one did.
    pub fn violation(&self) -> Option<Violation> {
        *self.violation.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the scan of the byte stream is.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// At the start of a frame header.
    Header,
    /// At a complete header whose payload is over the limit it was checked
    /// against: judged again when tungstenite wants the bytes after it.
    Held { kind: Kind, total: u64, len: u64 },
    /// Inside a payload: this many bytes to go.
    Payload(u64),
}

/// Bytes read at a time to complete a header held back in `staging`.
const HEADER_READ: usize = 64;

/// A socket whose reads stop at the first frame over its limits. Writes go
/// straight through.
///
/// Reads go straight into the caller's buffer; only a frame header that
/// cannot be handed out yet (incomplete, or over the limit) is moved aside,
/// into `staging`, with whatever followed it in the same read.
pub(crate) struct LimitedIo<S> {
    inner: S,
    limits: Arc<FrameLimits>,
    scan: Scan,
    /// The data message being received: its kind and bytes so far.
    message: Option<(Kind, u64)>,
    /// Bytes read but not handed out: `staging[pos..cleared]` may go,
    /// `staging[cleared..]` starts with a header that may not go yet.
    staging: Vec<u8>,
    pos: usize,
    cleared: usize,
}

impl<S> LimitedIo<S> {
    pub fn new(inner: S, limits: Arc<FrameLimits>) -> Self {
        LimitedIo {
            inner,
            limits,
            scan: Scan::Header,
            message: None,
            staging: Vec::new(),
            pos: 0,
            cleared: 0,
        }
    }

    /// Follows the frames in `bytes` (which continue the stream where the
    /// scan is). `Some(i)` when the bytes from `i` on, starting with a frame
    /// header, must be held back; the scan is then at that header.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            match self.scan {
                Scan::Payload(remaining) => {
                    let n = remaining.min((bytes.len() - i) as u64);
                    i += n as usize;
                    self.scan = if n == remaining {
                        Scan::Header
                    } else {
                        Scan::Payload(remaining - n)
                    };
                }
                Scan::Held { .. } => return Some(i),
                Scan::Header => {
                    let Some((opcode, len, header_len)) = parse_header(&bytes[i..]) else {
                        // Incomplete: wait for the rest of it.
                        return Some(i);
                    };
                    if let Some(held) = self.judge(opcode, len) {
                        self.scan = held;
                        return Some(i);
                    }
                    i += header_len;
                    self.scan = if len == 0 {
                        Scan::Header
                    } else {
                        Scan::Payload(len)
                    };
                }
            }
        }
        None
    }

    /// Scans the staged bytes not yet cleared.
    fn scan_staging(&mut self) {
        let staged = std::mem::take(&mut self.staging);
        match self.scan(&staged[self.cleared..]) {
            Some(i) => self.cleared += i,
            None => self.cleared = staged.len(),
        }
        self.staging = staged;
    }

    /// Checks a complete header; `Some` holds it back.
    fn judge(&mut self, opcode: u8, len: u64) -> Option<Scan> {
        let (kind, total) = match opcode {
            0x1 => (Kind::Text, len),
            0x2 => (Kind::Binary, len),
            // A continuation adds to the message it continues.
            0x0 => match self.message {
                Some((kind, so_far)) => (kind, so_far.saturating_add(len)),
                None => return None,
            },
            // Control frames (tungstenite bounds them at 125 bytes) and
            // reserved opcodes (tungstenite refuses them).
            _ => return None,
        };
        if total > self.limits.limit(kind) as u64 {
            return Some(Scan::Held { kind, total, len });
        }
        self.message = Some((kind, total));
        None
    }

    /// Judges the held header (at `staging[cleared..]`) again, now that
    /// the frames before it have been handled. `Err` fails the read.
    fn release(&mut self, kind: Kind, total: u64, len: u64) -> io::Result<()> {
        let limit = self.limits.limit(kind);
        if total > limit as u64 {
            let violation = Violation {
                kind,
                len: total,
                limit,
            };
            *self
                .limits
                .violation
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(violation);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("WebSocket frame of {total} bytes over the limit of {limit}"),
            ));
        }
        self.message = Some((kind, total));
        let header_len =
            parse_header(&self.staging[self.cleared..]).map_or(0, |(_, _, header_len)| header_len);
        self.cleared += header_len;
        self.scan = if len == 0 {
            Scan::Header
        } else {
            Scan::Payload(len)
        };
        Ok(())
    }
}

/// `(opcode, payload length, header length)` when `bytes` start with a
/// whole frame header.
fn parse_header(bytes: &[u8]) -> Option<(u8, u64, usize)> {
    let b1 = *bytes.get(1)?;
    let (ext, len7) = match b1 & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let header_len = 2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 };
    if bytes.len() < header_len {
        return None;
    }
    let len = match (len7, ext) {
        (Some(n), _) => n,
        (None, 2) => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        (None, _) => u64::from_be_bytes(bytes[2..10].try_into().ok()?),
    };
    Some((bytes[0] & 0x0f, len, header_len))
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Staged bytes that may go.
            if this.cleared > this.pos {
                let n = (this.cleared - this.pos).min(out.remaining());
                out.put_slice(&this.staging[this.pos..this.pos + n]);
                this.pos += n;
                if this.pos == this.staging.len() {
                    this.staging = Vec::new();
                    this.pos = 0;
                    this.cleared = 0;
                }
                return Poll::Ready(Ok(()));
            }
            // Everything before a held header has been handed out, and the
            // frames it made handled: judge it again.
            if let Scan::Held { kind, total, len } = this.scan {
                this.release(kind, total, len)?;
                this.scan_staging();
                continue;
            }
            // An incomplete header is staged: read the rest of it.
            if this.cleared < this.staging.len() {
                let old = this.staging.len();
                this.staging.resize(old + HEADER_READ, 0);
                let mut buf = ReadBuf::new(&mut this.staging[old..]);
                let polled = Pin::new(&mut this.inner).poll_read(cx, &mut buf);
                let n = buf.filled().len();
                this.staging.truncate(old + n);
                ready!(polled)?;
                if n == 0 {
                    // The stream ended inside a header: hand it out as it
                    // is, and let tungstenite report the truncation.
                    this.cleared = this.staging.len();
                } else {
                    this.scan_staging();
                }
                continue;
            }
            // Nothing staged: read straight into the caller's buffer.
            if out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            let filled = out.filled();
            if filled.len() == before {
                return Poll::Ready(Ok(())); // end of stream
            }
            if let Some(i) = this.scan(&filled[before..]) {
                this.staging = filled[before + i..].to_vec();
                this.pos = 0;
                this.cleared = 0;
                out.set_filled(before + i);
                if i == 0 {
                    continue;
                }
            }
            return Poll::Ready(Ok(()));
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `true` when JSON `text` nests arrays and objects deeper than `max`
/// (brackets inside strings do not count). Run before parsing, so that the
/// parser never descends further than `max`.
pub(crate) fn json_too_deep(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
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
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(0xab, len));
        f
    }

    fn limits(pre_auth: usize) -> Arc<FrameLimits> {
        Arc::new(FrameLimits::pre_auth(&Limits {
            pre_auth_max_message_size: pre_auth,
            ..Limits::default()
        }))
    }

    /// Reads everything through a `LimitedIo`, in reads of `chunk` bytes.
    async fn read_all(
        input: Vec<u8>,
        limits: Arc<FrameLimits>,
        chunk: usize,
    ) -> io::Result<Vec<u8>> {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            for piece in input.chunks(chunk.max(1)) {
                a.write_all(piece).await.unwrap();
            }
        });
        let mut io = LimitedIo::new(b, limits);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 777];
        loop {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn frames_within_the_limit_pass_unchanged_however_they_are_cut() {
        let mut input = Vec::new();
        for (op, fin, len) in [
            (2, true, 524),
            (1, true, 0),
            (9, true, 3),
            (2, false, 300),
            (0, true, 224),
            (1, true, 100),
        ] {
            input.extend(frame(op, fin, len));
        }
        for chunk in [1, 2, 3, 7, 13, 100, 4096] {
            let out = read_all(input.clone(), limits(512), chunk).await.unwrap();
            assert_eq!(out, input, "reads of {chunk} bytes");
        }
    }

    #[tokio::test]
    async fn an_oversized_header_fails_the_read_before_its_payload() {
        for (input, kind, len) in [
            (frame(2, true, 525), Kind::Binary, 525),
            (frame(1, true, 70_000), Kind::Text, 70_000),
            // A fragmented message over the limit in total.
            (
                [frame(1, false, 300), frame(0, true, 300)].concat(),
                Kind::Text,
                600,
            ),
        ] {
            for chunk in [1, 5, 4096] {
                let l = limits(512);
                let err = read_all(input.clone(), l.clone(), chunk).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidData);
                assert_eq!(
                    l.violation(),
                    Some(Violation {
                        kind,
                        len,
                        limit: 524
                    })
                );
            }
        }
        // A header declaring 2^63 bytes.
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert!(read_all(huge, limits(512), 3).await.is_err());
    }

    #[tokio::test]
    async fn a_raised_limit_applies_to_headers_not_yet_handed_out() {
        // A hello-sized frame, then a large one right behind it.
        let first = frame(2, true, 100);
        let second = frame(2, true, 100_000);
        let l = limits(512);
        let (mut a, b) = tokio::io::duplex(1 << 20);
        a.write_all(&[first.clone(), second.clone()].concat())
            .await
            .unwrap();
        drop(a);
        let mut io = LimitedIo::new(b, l.clone());
        // One read sees both headers, and stops before the second.
        let mut buf = vec![0u8; 1 << 20];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &first[..]);
        // The hello succeeded meanwhile.
        l.authenticated(Generation::V2, &Limits::default());
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, second);
        assert_eq!(l.violation(), None);
    }

    #[test]
    fn json_depth_ignores_brackets_in_strings() {
        assert!(!json_too_deep(r#"[[["[[[[\"[[[["]]]"#, 3));
        assert!(json_too_deep("[[[[]]]]", 3));
        assert!(!json_too_deep("[[[]]]", 3));
        assert!(!json_too_deep(r#"{"a":{"b":[1]}}"#, 3));
        assert!(json_too_deep(r#"{"a":{"b":[{}]}}"#, 3));
        assert!(!json_too_deep(r#"["\\", [[]]]"#, 3));
    }
}
