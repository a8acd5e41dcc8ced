//! The client's WebSocket transport: opening the connection (TCP, TLS, the
//! HTTP upgrade) and the two halves the connection task drives.
//!
//! tungstenite does the upgrade and writes frames (masking them, as a
//! client must); frames are read by [`reader::FrameReader`], which avoids
//! tungstenite's per-read zero-fill and per-frame allocations (see there).
//! The bytes tungstenite read past the upgrade response, if the server
//! wrote a frame right behind it, are handed to the reader, not lost.

pub(crate) mod reader;

use std::io;
use std::pin::Pin;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::{uri_mode, IntoClientRequest};
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::stream::Mode;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) use reader::{FrameReader, ReadLimits};

/// The read half, framed.
pub(crate) type Reader = FrameReader<ReadHalf<Stream>>;
/// The write half, as tungstenite's sink.
pub(crate) type Writer = WebSocketStream<WriteOnly<WriteHalf<Stream>>>;
/// A plain or TLS connection.
pub(crate) type Stream = MaybeTlsStream<TcpStream>;

/// Where to connect and how.
pub(crate) struct Target<'a> {
    pub url: &'a str,
    pub config: WebSocketConfig,
    pub limits: ReadLimits,
    /// For wss:// URLs.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Connects and upgrades; errors are tungstenite's, as the caller sorts
/// them into URL and connection errors.
pub(crate) async fn connect(target: Target<'_>) -> Result<(Reader, Writer), Error> {
    let request = target.url.into_client_request()?;
    let mode = uri_mode(request.uri())?;
    let host = request
        .uri()
        .host()
        .ok_or(Error::Url(UrlError::NoHostName))?;
    // An IPv6 literal comes bracketed in a URL, bare everywhere else.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(match mode {
        Mode::Plain => 80,
        Mode::Tls => 443,
    });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(Error::Io)?;
    // Small calls go out at once; the writer batches what queued up.
    tcp.set_nodelay(true).map_err(Error::Io)?;
    let stream = match mode {
        Mode::Plain => MaybeTlsStream::Plain(tcp),
        #[cfg(feature = "tls")]
        Mode::Tls => {
            use tokio_tungstenite::tungstenite::error::TlsError;
            let config = target
                .tls
                .ok_or(Error::Url(UrlError::TlsFeatureNotEnabled))?;
            let name = rustls_pki_types::ServerName::try_from(host)
                .map_err(|_| Error::Tls(TlsError::InvalidDnsName))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(Error::Io)?;
            MaybeTlsStream::Rustls(tls)
        }
        #[cfg(not(feature = "tls"))]
        Mode::Tls => return Err(Error::Url(UrlError::TlsFeatureNotEnabled)),
    };
    let recorder = Recorder {
        inner: stream,
        seen: Vec::new(),
    };
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, recorder, Some(target.config)).await?;
    let Recorder { inner, seen } = ws.into_inner();
    let (read, write) = tokio::io::split(inner);
    let reader = FrameReader::new(read, after_headers(&seen), target.limits);
    let writer =
        WebSocketStream::from_raw_socket(WriteOnly(write), Role::Client, Some(target.config)).await;
    Ok((reader, writer))
}

/// What was read past the upgrade response's headers (a 101 has no body).
fn after_headers(seen: &[u8]) -> &[u8] {
    seen.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |end| &seen[end + 4..])
}

/// Keeps a copy of what is read through it (the upgrade's bytes only).
struct Recorder<S> {
    inner: S,
    seen: Vec<u8>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.seen.extend_from_slice(&buf.filled()[before..]);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The write half, given to tungstenite to write frames with. tungstenite
/// reads only when asked for a message, which is never done here: the
/// read half belongs to the [`FrameReader`].
pub(crate) struct WriteOnly<W>(W);

impl<W> AsyncRead for WriteOnly<W> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the write half is never read",
        )))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for WriteOnly<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_past_the_upgrade_response_are_kept() {
        let seen = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x82\x01x";
        assert_eq!(after_headers(seen), b"\x82\x01x");
        assert_eq!(after_headers(b"HTTP/1.1 101 OK\r\n\r\n"), b"");
    }
}
