//! Writing WebSocket frames to the socket ourselves, so that a frame's
//! payload goes from the outbound queue's `Bytes` to the kernel without
//! being copied.
//!
//! tungstenite formats every frame it sends into a write buffer: each
//! binary frame is copied once more, and every connection keeps a buffer as
//! large as the largest frame it sent (64 connections fed 1 MiB frames keep
//! 64 MiB). So the socket is split: tungstenite keeps the reading half, and
//! what it writes on its own (pongs, close replies) goes into a
//! [`ControlPipe`] that the connection's writer forwards between frames;
//! the writer ([`FrameWriter`]) writes data frames itself, small ones
//! gathered in one buffer, large ones with a vectored write straight from
//! their `Bytes`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::Notify;
use wslink_core::Frame;

/// Payloads up to this size are copied into the write buffer with their
/// header; larger ones are written from where they are.
const INLINE_MAX: usize = 8 * 1024;
/// The write buffer is written out once it holds this much.
const BUFFER_LIMIT: usize = 64 * 1024;

/// Bytes tungstenite wrote (whole control frames), waiting for the writer.
#[derive(Default)]
pub(crate) struct ControlPipe {
    bytes: Mutex<Vec<u8>>,
    ready: Notify,
}

impl ControlPipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The socket as tungstenite sees it: reads come from the socket, writes go
/// to the control pipe (and always succeed at once).
pub(crate) struct ReadSide<S> {
    read: ReadHalf<S>,
    control: Arc<ControlPipe>,
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for ReadSide<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for ReadSide<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tungstenite writes whole frames from its buffer in one call.
        self.control.lock().extend_from_slice(buf);
        self.control.ready.notify_one();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes server frames (never masked) to the socket.
pub(crate) struct FrameWriter<S> {
    io: WriteHalf<S>,
    buf: Vec<u8>,
    control: Arc<ControlPipe>,
    /// tungstenite already answered the peer's close frame.
    closed: bool,
}

/// Splits a socket into tungstenite's side and ours.
pub(crate) fn split<S: AsyncRead + AsyncWrite>(io: S) -> (ReadSide<S>, FrameWriter<S>) {
    let (read, write) = tokio::io::split(io);
    let control = Arc::new(ControlPipe::default());
    (
        ReadSide {
            read,
            control: control.clone(),
        },
        FrameWriter {
            io: write,
            buf: Vec::new(),
            control,
            closed: false,
        },
    )
}

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
    /// Resolves when tungstenite has control frames for the peer.
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

    /// Queues a data frame; a large one is written at once, without a copy.
    /// Invalid UTF-8 text is not sent (the codecs never make any).
    pub async fn data(&mut self, frame: &Frame) -> io::Result<()> {
        self.take_control();
        let (opcode, payload) = match frame {
            Frame::Text(t) if std::str::from_utf8(t).is_ok() => (0x1, t),
            Frame::Text(_) => return Ok(()),
            Frame::Binary(b) => (0x2, b),
        };
        header(&mut self.buf, opcode, payload.len());
        if payload.len() <= INLINE_MAX {
            self.buf.extend_from_slice(payload);
            if self.buf.len() >= BUFFER_LIMIT {
                self.write_buffer(&[]).await?;
            }
            Ok(())
        } else {
            self.write_buffer(payload).await
        }
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

    /// Sends a close frame after what is queued (unless tungstenite already
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

    /// Writes the buffer, then `tail`, with as few system calls as the
    /// socket allows.
    async fn write_buffer(&mut self, tail: &[u8]) -> io::Result<()> {
        let (mut head, mut rest) = (0, 0);
        while head < self.buf.len() || rest < tail.len() {
            let slices = [IoSlice::new(&self.buf[head..]), IoSlice::new(&tail[rest..])];
            let n = self.io.write_vectored(&slices).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let from_head = n.min(self.buf.len() - head);
            head += from_head;
            rest += n - from_head;
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
    async fn a_close_reply_from_tungstenite_is_not_doubled() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let (mut read_side, mut writer) = split(a);
        read_side
            .write_all(&[0x8a, 0, 0x88, 2, 0x03, 0xe8])
            .await
            .unwrap();
        writer.close(1000, "").await.unwrap();
        drop(writer);
        drop(read_side);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
            .await
            .unwrap();
        assert_eq!(got, vec![0x8a, 0, 0x88, 2, 0x03, 0xe8]);
    }

    #[tokio::test]
    async fn frames_and_control_bytes_arrive_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let (mut read_side, mut writer) = split(a);
        writer
            .data(&Frame::Binary(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        // tungstenite answering a ping meanwhile:
        read_side.write_all(&[0x8a, 0]).await.unwrap();
        let big = Bytes::from(vec![7u8; 70_000]);
        writer.data(&Frame::Binary(big.clone())).await.unwrap();
        writer.flush().await.unwrap();
        drop(writer);
        drop(read_side);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
            .await
            .unwrap();
        let mut expected = vec![0x82, 2, b'a', b'b', 0x8a, 0, 0x82, 127];
        expected.extend_from_slice(&70_000u64.to_be_bytes());
        expected.extend_from_slice(&big);
        assert_eq!(got, expected);
    }
}
