//! Writing WebSocket frames to the socket ourselves, so that a frame's
//! payload goes from the outbound queue's `Bytes` to the kernel without
//! being copied.
//!
//! A general WebSocket library formats every frame it sends into a write
//! buffer: each binary frame is copied once more, and every connection keeps
//! a buffer as large as the largest frame it sent. Here the writer
//! ([`FrameWriter`]) writes data frames itself, small ones gathered in one
//! buffer, large ones with a vectored write straight from their `Bytes`. A
//! 2.x frame comes as a few slices ([`OutFrame::Binary`]: chunk header and
//! envelope, then the payload a handler or publisher gave as `Value::Bin`
//! or `SharedBytes`), which the vectored write takes as they are: the
//! payload is never copied on its way to the kernel. What the reader must
//! answer (pongs, close replies) goes into a [`ControlPipe`] that the
//! writer forwards between data frames.
//!
//! With permessage-deflate negotiated, a message that is worth it is
//! compressed here (see `deflate.rs` for which); the others, large images
//! among them, keep the zero-copy path with RSV1 clear.

use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::Notify;
use wslink_core::chunking::SegmentedFrame;
use wslink_core::Frame;

use super::deflate::Deflate;

/// Payloads up to this size are copied into the write buffer with their
/// header; larger ones are written from where they are.
const INLINE_MAX: usize = 8 * 1024;
/// The write buffer is written out once it holds this much.
const BUFFER_LIMIT: usize = 64 * 1024;
/// Slices per vectored write (Linux takes up to 1024).
const MAX_SLICES: usize = 64;
/// Control bytes held for a peer that is not reading. The reader answers
/// every ping with a pong, and the pipe takes them at once; without a
/// bound, a peer that floods pings and never reads would grow it forever.
const CONTROL_LIMIT: usize = 16 * 1024;

/// A data frame waiting to be written: what the outbound queue holds.
#[derive(Debug, Clone)]
pub(crate) enum OutFrame {
    /// A text frame (1.x); the bytes are UTF-8.
    Text(Bytes, Packed),
    /// A binary frame, as one buffer (1.x attachments) or as the slices a
    /// 2.x segmented encode made.
    Binary(SegmentedFrame, Packed),
}

/// A frame's compressed form, made by the first connection that sends it
/// with permessage-deflate and reused by the others: a publish goes to
/// every client as one `Arc<[OutFrame]>`, and without context takeover the
/// same message always compresses to the same bytes. `Some(None)`: not
/// worth compressing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Packed(std::sync::OnceLock<Option<Bytes>>);

impl OutFrame {
    /// The payload's length: what queue bounds count.
    pub fn len(&self) -> usize {
        match self {
            OutFrame::Text(t, _) => t.len(),
            OutFrame::Binary(b, _) => b.len(),
        }
    }
}

impl From<Frame> for OutFrame {
    fn from(frame: Frame) -> Self {
        match frame {
            Frame::Text(t) => OutFrame::Text(t, Packed::default()),
            Frame::Binary(b) => OutFrame::Binary(b.into(), Packed::default()),
        }
    }
}

impl From<SegmentedFrame> for OutFrame {
    fn from(frame: SegmentedFrame) -> Self {
        OutFrame::Binary(frame, Packed::default())
    }
}

/// Control frames the reader queued (whole frames), waiting for the writer.
#[derive(Default)]
pub(crate) struct ControlPipe {
    bytes: Mutex<Vec<u8>>,
    ready: Notify,
}

impl ControlPipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one whole control frame for the writer.
    pub fn push(&self, frame: &[u8]) {
        let mut pipe = self.lock();
        // Past the bound a pong is dropped, which RFC 6455 §5.5.3 allows
        // (a pong may answer only the latest ping); a close is always kept.
        let pong = frame.first() == Some(&0x8a);
        if pong && pipe.len() >= CONTROL_LIMIT {
            return;
        }
        pipe.extend_from_slice(frame);
        if pipe.capacity() > 4 * CONTROL_LIMIT && pipe.len() < CONTROL_LIMIT {
            pipe.shrink_to(CONTROL_LIMIT);
        }
        drop(pipe);
        self.ready.notify_one();
    }

    /// Everything queued (tests).
    #[cfg(test)]
    pub fn take_all(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }
}

/// Writes server frames (never masked) to the socket.
pub(crate) struct FrameWriter<S> {
    io: WriteHalf<S>,
    buf: Vec<u8>,
    control: Arc<ControlPipe>,
    /// The reader already answered the peer's close frame.
    closed: bool,
    /// permessage-deflate, when negotiated.
    deflate: Option<Deflate>,
}

impl<S> FrameWriter<S> {
    pub fn new(io: WriteHalf<S>, control: Arc<ControlPipe>, deflate: Option<Deflate>) -> Self {
        FrameWriter {
            io,
            buf: Vec::new(),
            control,
            closed: false,
            deflate,
        }
    }
}

/// `opcode` may carry RSV1 (0x40) for a compressed message.
fn header(buf: &mut Vec<u8>, opcode: u8, len: usize) {
    buf.push(0x80 | opcode); // FIN
    if len < 126 {
        buf.push(len as u8);
    } else if len <= 0xffff {
        buf.push(126);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

impl<S: AsyncRead + AsyncWrite> FrameWriter<S> {
    /// Resolves when the reader queued control frames for the peer.
    pub fn control_pending(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let control = self.control.clone();
        async move {
            loop {
                let ready = control.ready.notified();
                if !control.lock().is_empty() {
                    return;
                }
                ready.await;
            }
        }
    }

    /// Moves pending control frames into the write buffer: they go out
    /// between data frames, never inside one.
    fn take_control(&mut self) {
        let mut control = self.control.lock();
        if control.is_empty() {
            return;
        }
        // Control frames are unmasked here and at most 125 bytes long, so
        // the second byte is the length: walk them to see a close reply.
        let mut at = 0;
        while at + 2 <= control.len() {
            self.closed |= control[at] & 0x0f == 0x8;
            at += 2 + usize::from(control[at + 1] & 0x7f);
        }
        self.buf.append(&mut control);
    }

    /// Queues a data frame; a large one is written at once, its large
    /// slices without a copy. Invalid UTF-8 text is not sent (the codecs
    /// never make any).
    pub async fn data(&mut self, frame: &OutFrame) -> io::Result<()> {
        self.take_control();
        let (opcode, parts, packed) = match frame {
            OutFrame::Text(t, p) if std::str::from_utf8(t).is_ok() => {
                (0x1, std::slice::from_ref(t), p)
            }
            OutFrame::Text(..) => return Ok(()),
            OutFrame::Binary(b, p) => (0x2, b.parts(), p),
        };
        let compressed = match &self.deflate {
            Some(d) if d.is_shareable() => packed.0.get_or_init(|| d.compress(parts)).clone(),
            Some(d) => d.compress(parts),
            None => None,
        };
        if let Some(compressed) = compressed {
            header(&mut self.buf, 0x40 | opcode, compressed.len());
            return if compressed.len() <= INLINE_MAX {
                self.buf.extend_from_slice(&compressed);
                self.write_if_full().await
            } else {
                self.write_buffer(&[compressed]).await
            };
        }
        let len = frame.len();
        header(&mut self.buf, opcode, len);
        if len <= INLINE_MAX {
            for part in parts {
                self.buf.extend_from_slice(part);
            }
            self.write_if_full().await
        } else {
            // Small leading slices (a 2.x chunk header and envelope) join
            // the buffer; the rest go from where they are.
            let small = parts
                .iter()
                .take_while(|part| part.len() <= INLINE_MAX)
                .count();
            for part in &parts[..small] {
                self.buf.extend_from_slice(part);
            }
            self.write_buffer(&parts[small..]).await
        }
    }

    async fn write_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= BUFFER_LIMIT {
            self.write_buffer(&[]).await?;
        }
        Ok(())
    }

    /// Queues a ping.
    pub fn ping(&mut self) {
        self.take_control();
        header(&mut self.buf, 0x9, 0);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.take_control();
        self.write_buffer(&[]).await?;
        self.io.flush().await
    }

    /// Sends a close frame after what is queued (unless the reader already
    /// answered the peer's), then shuts the socket's sending side.
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        self.take_control();
        if !self.closed {
            self.closed = true;
            header(&mut self.buf, 0x8, 2 + reason.len());
            self.buf.extend_from_slice(&code.to_be_bytes());
            self.buf.extend_from_slice(reason.as_bytes());
        }
        self.write_buffer(&[]).await?;
        self.io.shutdown().await
    }

    /// Writes the buffer, then the slices of `tail`, with as few system
    /// calls as the socket allows, resuming after partial writes.
    async fn write_buffer(&mut self, tail: &[Bytes]) -> io::Result<()> {
        // Written so far: `head` bytes of the buffer, the slices of `tail`
        // before `part`, and `within` bytes of `tail[part]`.
        let (mut head, mut part, mut within) = (0, 0, 0);
        loop {
            while part < tail.len() && within == tail[part].len() {
                part += 1;
                within = 0;
            }
            if head == self.buf.len() && part == tail.len() {
                break;
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            if head < self.buf.len() {
                slices[0] = IoSlice::new(&self.buf[head..]);
                count = 1;
            }
            let mut from = within;
            for bytes in &tail[part..] {
                if count == MAX_SLICES {
                    break;
                }
                if from < bytes.len() {
                    slices[count] = IoSlice::new(&bytes[from..]);
                    count += 1;
                }
                from = 0;
            }
            let mut n = self.io.write_vectored(&slices[..count]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let from_head = n.min(self.buf.len() - head);
            head += from_head;
            n -= from_head;
            while n > 0 {
                let Some(bytes) = tail.get(part) else {
                    break; // more written than offered: cannot happen
                };
                let left = bytes.len() - within;
                if n < left {
                    within += n;
                    n = 0;
                } else {
                    n -= left;
                    part += 1;
                    within = 0;
                }
            }
        }
        self.buf.clear();
        if self.buf.capacity() > 4 * BUFFER_LIMIT {
            // A burst of control frames grew it; idle connections stay small.
            self.buf = Vec::new();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{ReadBuf, ReadHalf};

    /// A writer over one half of `io`; the other half comes back for
    /// `unsplit`, and the pipe stands for the reader.
    fn split<S: AsyncRead + AsyncWrite>(io: S) -> (ReadHalf<S>, FrameWriter<S>, Arc<ControlPipe>) {
        let (read, write) = tokio::io::split(io);
        let control = Arc::new(ControlPipe::default());
        (
            read,
            FrameWriter::new(write, control.clone(), None),
            control,
        )
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        for (len, expected) in [
            (0usize, vec![0x82, 0]),
            (125, vec![0x82, 125]),
            (126, vec![0x82, 126, 0, 126]),
            (65535, vec![0x82, 126, 0xff, 0xff]),
            (65536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut buf = Vec::new();
            header(&mut buf, 0x2, len);
            assert_eq!(buf, expected, "length {len}");
        }
    }

    #[tokio::test]
    async fn pongs_for_a_peer_that_does_not_read_are_bounded() {
        let (a, _b) = tokio::io::duplex(1 << 16);
        let (_read, writer, control) = split(a);
        // A ping flood's answers, and nobody draining them.
        let pong = [0x8a, 4, 1, 2, 3, 4];
        for _ in 0..100_000 {
            control.push(&pong);
        }
        let held = writer.control.lock().len();
        assert!(held <= CONTROL_LIMIT + pong.len(), "{held} bytes held");
        // A close reply still gets through past the bound.
        control.push(&[0x88, 2, 0x03, 0xe8]);
        assert!(writer.control.lock().ends_with(&[0x88, 2, 0x03, 0xe8]));
    }

    #[tokio::test]
    async fn a_close_reply_from_the_reader_is_not_doubled() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let (read, mut writer, control) = split(a);
        control.push(&[0x8a, 0]);
        control.push(&[0x88, 2, 0x03, 0xe8]);
        writer.close(1000, "").await.unwrap();
        drop(writer);
        drop(read);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
            .await
            .unwrap();
        assert_eq!(got, vec![0x8a, 0, 0x88, 2, 0x03, 0xe8]);
    }

    #[tokio::test]
    async fn frames_and_control_bytes_arrive_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let (read, mut writer, control) = split(a);
        writer
            .data(&Frame::Binary(Bytes::from_static(b"ab")).into())
            .await
            .unwrap();
        // The reader answering a ping meanwhile:
        control.push(&[0x8a, 0]);
        let big = Bytes::from(vec![7u8; 70_000]);
        writer
            .data(&Frame::Binary(big.clone()).into())
            .await
            .unwrap();
        writer.flush().await.unwrap();
        drop(writer);
        drop(read);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
            .await
            .unwrap();
        let mut expected = vec![0x82, 2, b'a', b'b', 0x8a, 0, 0x82, 127];
        expected.extend_from_slice(&70_000u64.to_be_bytes());
        expected.extend_from_slice(&big);
        assert_eq!(got, expected);
    }

    /// A socket that takes at most `per_write` bytes per call, across
    /// slices when written vectored, and keeps what it took.
    struct Trickle {
        per_write: usize,
        vectored: bool,
        got: Vec<u8>,
        calls: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Trickle {
        /// Takes what one call may from `bufs` (only the first non-empty
        /// one when not vectored, as tokio's default does).
        fn take(&mut self, bufs: &[IoSlice<'_>]) -> usize {
            self.calls += 1;
            let mut n = 0;
            for b in bufs.iter().filter(|b| !b.is_empty()) {
                let take = b.len().min(self.per_write - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.per_write || !self.vectored {
                    break;
                }
            }
            n
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.take(&[IoSlice::new(buf)])))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.take(bufs)))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    /// What the writer should have sent for `frames`: each frame's header
    /// and its slices concatenated.
    fn expected(frames: &[OutFrame]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            let OutFrame::Binary(b, _) = frame else {
                unreachable!()
            };
            header(&mut out, 0x2, b.len());
            out.extend_from_slice(&b.clone().into_bytes());
        }
        out
    }

    /// Frames made of many slices, large and small, come out byte for byte
    /// whatever the socket takes per call, vectored or not.
    #[tokio::test]
    async fn segmented_frames_survive_partial_writes() {
        use wslink_core::chunking::chunk_segmented;
        use wslink_core::{msgpack, Value};

        // A message with several shared payloads between copied bytes,
        // cut into frames across payload boundaries, plus a small one.
        let payloads: Vec<Value> = (0..5)
            .map(|i| Value::Bin(pattern(9_000 + i * 7_777, i as u8)))
            .chain([Value::from("tail")])
            .collect();
        let message = msgpack::encode_segmented_with(&Value::Array(payloads), 12, 4096).unwrap();
        let mut frames: Vec<OutFrame> = chunk_segmented(message, 1, 20_000)
            .unwrap()
            .map(OutFrame::from)
            .collect();
        assert!(frames.iter().any(|f| match f {
            OutFrame::Binary(b, _) => b.parts().len() > 2,
            OutFrame::Text(..) => false,
        }));
        frames.push(Frame::Binary(Bytes::from_static(b"small")).into());
        let want = expected(&frames);
        for vectored in [true, false] {
            for per_write in [1usize, 7, 4096, 65_537, usize::MAX] {
                let io = Trickle {
                    per_write,
                    vectored,
                    got: Vec::new(),
                    calls: 0,
                };
                let (read, mut writer, _control) = split(io);
                for frame in &frames {
                    writer.data(frame).await.unwrap();
                }
                writer.flush().await.unwrap();
                let io = read.unsplit(writer.io);
                assert_eq!(io.got.len(), want.len(), "{per_write} vectored {vectored}");
                assert!(
                    io.got == want,
                    "{per_write} bytes per write, vectored {vectored}"
                );
                if vectored && per_write == usize::MAX {
                    // Few system calls: one per large frame, plus the tail.
                    assert!(io.calls <= frames.len(), "{} writes", io.calls);
                }
            }
        }
    }

    /// A publish's frames are shared by every connection: the first one
    /// that compresses a frame leaves the result for the others, and the
    /// bytes they send are the same.
    #[tokio::test]
    async fn a_shared_frame_is_compressed_once() {
        let json: String = (0..2000).map(|i| format!("{{\"v\":{i}}},")).collect();
        let frame = OutFrame::from(Frame::Text(Bytes::from(json)));
        let deflate = || {
            let offer = super::super::deflate::negotiate(["permessage-deflate"]).unwrap();
            Some(Deflate::new(offer))
        };
        let mut sent = Vec::new();
        for _ in 0..2 {
            let (a, mut b) = tokio::io::duplex(1 << 20);
            let (read, write) = tokio::io::split(a);
            let mut writer = FrameWriter::new(write, Arc::default(), deflate());
            writer.data(&frame).await.unwrap();
            writer.flush().await.unwrap();
            drop((writer, read));
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            assert_eq!(got[0], 0xc1, "FIN, RSV1, text");
            sent.push(got);
        }
        assert_eq!(sent[0], sent[1]);
        let OutFrame::Text(_, packed) = &frame else {
            unreachable!()
        };
        let kept = packed.0.get().cloned().flatten().expect("kept");
        assert!(sent[0].ends_with(&kept));
    }

    /// A payload shared by a segmented encode reaches the socket from its
    /// own memory: the large slice the writer is given is the caller's.
    #[test]
    fn a_large_segmented_frame_keeps_the_callers_payload() {
        let payload = pattern(1 << 20, 3);
        let value = wslink_core::Value::map([("blob", wslink_core::Value::Bin(payload.clone()))]);
        let mut frames = wslink_core::codec::v2::encode_segmented(&value, 0).unwrap();
        let frame = frames.next().unwrap();
        let large: Vec<&Bytes> = frame
            .parts()
            .iter()
            .filter(|p| p.len() > INLINE_MAX)
            .collect();
        assert_eq!(large.len(), 1);
        assert_eq!(large[0].as_ptr(), payload.as_ptr());
    }
}
