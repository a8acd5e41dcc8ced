//! Reverse connections: the server dials a relay (`wslink relay --mode
//! relay`, or Kitware's `python -m wslink.relay --mode relay`) and serves
//! wslink on that one connection, for a server that browsers cannot reach
//! (a compute node behind a firewall), as Kitware's `--reverse-url` does.
//!
//! The connection is the same [`crate::connection`] every accepted socket
//! runs; only the WebSocket roles differ. Here the server is the WebSocket
//! *client*, whose frames must be masked and whose peer's are not, while
//! the connection code reads and writes as a WebSocket server. [`ClientRole`]
//! sits between the two and rewrites frame headers: frames read from the
//! relay get the mask bit and a zero key (XOR with zero leaves the payload
//! as it is), frames written get a random key and a masked copy of their
//! payload. Everything else (hello, limits, queues, publishes) is the
//! server's own.
//!
//! A browser that leaves and the next one on the same path share this one
//! connection. With Kitware's relay the next browser inherits the last one's
//! authentication (so it does with Kitware's server); ours sends a ping with
//! the payload [`CLIENT_LEFT`] when a browser leaves, and the connection
//! then goes back to its state before a hello.
//!
//! Retry policy, as Kitware's server: one connection. A relay that cannot
//! be reached or refuses the handshake is an error; when the relay closes
//! the connection, [`Server::serve_reverse`] returns. A caller wanting a
//! server that outlives its relay calls it in a loop.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::{HeaderMap, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::context::ConnectionInfo;
use crate::server::Server;

/// The payload of the ping our relay sends a server when its browser
/// leaves (Kitware's servers answer it as any ping and carry on).
pub(crate) const CLIENT_LEFT: &[u8] = b"wslink-relay: client left";

/// The header our relay reads to know a server from a browser; Kitware's
/// relay ignores it.
const ROLE_HEADER: &str = "wslink-relay-role: server";
/// Longest handshake answer read from a relay.
const MAX_RESPONSE: usize = 16 * 1024;

/// Why a reverse connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReverseError {
    /// The URL is not `ws://HOST[:PORT]/PATH`.
    #[error("bad --reverse-url {url:?}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No TCP connection to the relay.
    #[error("cannot connect to the relay at {url}: {source}")]
    Connect {
        /// The relay's URL.
        url: String,
        /// The cause.
        source: io::Error,
    },
    /// The relay did not accept the WebSocket handshake.
    #[error("the relay at {url} refused the WebSocket handshake: {answer}")]
    Handshake {
        /// The relay's URL.
        url: String,
        /// Its status line, or what went wrong.
        answer: String,
    },
}

struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse(url: &str) -> Result<Target, ReverseError> {
    let bad = |why| ReverseError::Url {
        url: url.to_owned(),
        why,
    };
    let rest = if let Some(rest) = url.strip_prefix("ws://") {
        rest
    } else if url.starts_with("wss://") {
        return Err(bad("wss:// is not supported yet: use ws:// (a TLS proxy in front of the relay can terminate wss for browsers)"));
    } else {
        return Err(bad("a relay URL starts with ws://"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("the path has spaces or control characters"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
        None => 80,
    };
    Ok(Target {
        host: host.to_owned(),
        port,
        path,
    })
}

/// Opens the TCP connection and does the client's half of the handshake,
/// reading the answer byte by byte so that no frame after it is consumed.
async fn dial(url: &str) -> Result<(TcpStream, Uri), ReverseError> {
    let target = parse(url)?;
    let connect = |source| ReverseError::Connect {
        url: url.to_owned(),
        source,
    };
    let mut tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| connect(io::Error::new(io::ErrorKind::TimedOut, "no answer in 10 s")))?
    .map_err(connect)?;
    let _ = tcp.set_nodelay(true);
    let key = generate_key();
    let host = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ROLE_HEADER}\r\n\r\n",
        target.path
    );
    let refused = |answer: String| ReverseError::Handshake {
        url: url.to_owned(),
        answer,
    };
    tcp.write_all(request.as_bytes()).await.map_err(connect)?;
    let mut answer = Vec::with_capacity(512);
    let read = async {
        while !answer.ends_with(b"\r\n\r\n") {
            if answer.len() >= MAX_RESPONSE {
                return Err(refused(format!(
                    "no end of headers in {MAX_RESPONSE} bytes"
                )));
            }
            let byte = tcp.read_u8().await.map_err(|e| refused(e.to_string()))?;
            answer.push(byte);
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| refused("no answer in 10 s".into()))??;
    let text = String::from_utf8_lossy(&answer);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    if status.split(' ').nth(1) != Some("101") {
        return Err(refused(status));
    }
    let expected = derive_accept_key(key.as_bytes());
    let accepted = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
        })
    });
    if !accepted {
        return Err(refused("wrong or missing Sec-WebSocket-Accept".into()));
    }
    let uri = url.parse().unwrap_or_default();
    Ok((tcp, uri))
}

impl Server {
    /// Connects out to a relay at `url` (`ws://HOST:PORT/PATH`) and serves
    /// wslink on that connection until the relay closes it, or until
    /// [`Server::shutdown`]. Browsers reach the server by connecting to the
    /// same URL on the relay, one at a time: the server sees one client
    /// whose browser may change, each saying its own hello.
    ///
    /// The connection runs with the server's limits, except the hello
    /// deadline: it waits for browsers as long as the relay keeps it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), wslink_server::ReverseError> {
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::builder()
    ///     .secret("a-long-secret")
    ///     .method("math.add", |_ctx: CallContext, (a, b): (f64, f64)| async move {
    ///         Ok::<_, HandlerError>(a + b)
    ///     })
    ///     .build();
    /// // On the relay host: wslink relay --mode relay --host 0.0.0.0 --port 9000
    /// server.serve_reverse("ws://relay.example.org:9000/proxy/job-42").await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve_reverse(&self, url: &str) -> Result<(), ReverseError> {
        self.connect_reverse(url).await?.run().await;
        Ok(())
    }

    /// The first half of [`Server::serve_reverse`]: connects to the relay
    /// and completes the handshake, so a caller can say it is connected
    /// before serving with [`ReverseConnection::run`].
    ///
    /// ```no_run
    /// # async fn demo(server: wslink_server::Server) -> Result<(), wslink_server::ReverseError> {
    /// let connection = server.connect_reverse("ws://127.0.0.1:9000/proxy/job-42").await?;
    /// println!("connected to the relay");
    /// connection.run().await;
    /// # Ok(()) }
    /// ```
    pub async fn connect_reverse(&self, url: &str) -> Result<ReverseConnection, ReverseError> {
        let (tcp, uri) = dial(url).await?;
        tracing::info!(%url, "connected to the relay");
        Ok(ReverseConnection {
            server: self.clone(),
            tcp,
            uri,
            url: url.to_owned(),
        })
    }
}

/// A connection to a relay, handshake done, not yet served.
pub struct ReverseConnection {
    server: Server,
    tcp: TcpStream,
    uri: Uri,
    url: String,
}

impl std::fmt::Debug for ReverseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseConnection")
            .field("url", &self.url)
            .finish()
    }
}

impl ReverseConnection {
    /// Serves wslink on the connection until the relay closes it or the
    /// server shuts down.
    pub async fn run(self) {
        let ReverseConnection {
            server,
            tcp,
            uri,
            url,
        } = self;
        let shared = server.shared.clone();
        let info = ConnectionInfo {
            client_id: Arc::from(format!("c{}", uuid::Uuid::new_v4().simple())),
            // No address: browsers all come through the relay's, so the
            // per-address throttle would ban them together.
            peer: None,
            client_ip: None,
            uri,
            headers: HeaderMap::new(),
            relayed: true,
        };
        // The relay's one connection is counted, whatever the limit: it is
        // the only way in.
        let _ = shared.try_open_connection(usize::MAX);
        // No permessage-deflate through a relay: its upgrade offers none.
        crate::connection::run(shared.clone(), ClientRole::new(tcp), None, info).await;
        shared.connection_closed();
        tracing::info!(%url, "relay connection ended");
    }
}

/// Where a frame header rewrite stands.
#[derive(Default)]
struct Rewrite {
    header: Vec<u8>,
    payload_left: u64,
    key: [u8; 4],
    at: usize,
}

impl Rewrite {
    /// The header's full length once its first two bytes are known.
    fn header_len(&self) -> Option<usize> {
        let second = *self.header.get(1)?;
        let ext = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Some(2 + ext + if second & 0x80 != 0 { 4 } else { 0 })
    }

    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7f {
            126 => u16::from_be_bytes([self.header[2], self.header[3]]) as u64,
            127 => {
                let mut b = [0; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => n as u64,
        }
    }

    /// Feeds `input`, appending the rewritten bytes to `out`; `mask` gives
    /// each frame's key (zero on the way in). Returns the bytes consumed.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, mut mask: impl FnMut() -> [u8; 4]) {
        let mut i = 0;
        while i < input.len() {
            if self.payload_left > 0 {
                let n =
                    (input.len() - i).min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                let (key, at) = (self.key, self.at);
                if key == [0; 4] {
                    out.extend_from_slice(&input[i..i + n]);
                } else {
                    out.extend(
                        input[i..i + n]
                            .iter()
                            .enumerate()
                            .map(|(j, b)| b ^ key[(at + j) & 3]),
                    );
                }
                self.at += n;
                self.payload_left -= n as u64;
                i += n;
                continue;
            }
            self.header.push(input[i]);
            i += 1;
            let Some(len) = self.header_len() else {
                continue;
            };
            if self.header.len() < len {
                continue;
            }
            let already_masked = self.header[1] & 0x80 != 0;
            let payload = self.payload_len();
            if already_masked {
                // Not what a peer of this role sends; passed on unchanged for
                // the reader to refuse.
                out.extend_from_slice(&self.header);
                self.key = [0; 4];
            } else {
                self.key = mask();
                out.push(self.header[0]);
                out.push(self.header[1] | 0x80);
                out.extend_from_slice(&self.header[2..]);
                out.extend_from_slice(&self.key);
            }
            self.header.clear();
            self.at = 0;
            self.payload_left = payload;
        }
    }
}

/// A relay socket made to look, to the server's connection code, like a
/// socket accepted from a browser (see the module's documentation).
pub(crate) struct ClientRole<S> {
    io: S,
    incoming: Rewrite,
    /// Rewritten incoming bytes not yet handed out.
    read_out: Vec<u8>,
    read_at: usize,
    raw: Box<[u8]>,
    outgoing: Rewrite,
    /// Masked outgoing bytes not yet written.
    write_out: Vec<u8>,
    write_at: usize,
    rng: u64,
}

/// Outgoing bytes taken per write call: the masked copy is at most this
/// plus a few frame headers.
const WRITE_CHUNK: usize = 16 * 1024;

impl<S> ClientRole<S> {
    fn new(io: S) -> Self {
        let seed = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or([7; 8]),
        ) | 1;
        ClientRole {
            io,
            incoming: Rewrite::default(),
            read_out: Vec::new(),
            read_at: 0,
            raw: vec![0; 64 * 1024].into_boxed_slice(),
            outgoing: Rewrite::default(),
            write_out: Vec::new(),
            write_at: 0,
            rng: seed,
        }
    }
}

fn next_key(state: &mut u64) -> [u8; 4] {
    // xorshift64*, seeded from the system's randomness: masking keys need
    // to be unpredictable, not cryptographic.
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
    (v >> 32).to_le_bytes()[..4]
        .try_into()
        .unwrap_or([1, 2, 3, 4])
}

impl<S: AsyncWrite + Unpin> ClientRole<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.write_at < self.write_out.len() {
            let n =
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_out[self.write_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_at += n;
        }
        self.write_out.clear();
        self.write_at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientRole<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.read_at == this.read_out.len() {
            this.read_out.clear();
            this.read_at = 0;
            let mut raw = ReadBuf::new(&mut this.raw);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut raw))?;
            let filled = raw.filled().len();
            if filled == 0 {
                return Poll::Ready(Ok(()));
            }
            this.incoming
                .feed(&this.raw[..filled], &mut this.read_out, || [0; 4]);
        }
        let n = buf.remaining().min(this.read_out.len() - this.read_at);
        buf.put_slice(&this.read_out[this.read_at..this.read_at + n]);
        this.read_at += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientRole<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let take = buf.len().min(WRITE_CHUNK);
        let rng = &mut this.rng;
        this.outgoing
            .feed(&buf[..take], &mut this.write_out, || next_key(rng));
        // Start writing now; what the socket does not take waits for the
        // next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    #[test]
    fn frames_get_masked_whatever_the_write_boundaries() {
        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            b"hello".to_vec(),
            (0..300u32).map(|i| i as u8).collect(),
            (0..70_000u32).map(|i| (i * 7) as u8).collect(),
        ];
        let mut stream = Vec::new();
        for p in &payloads {
            stream.extend(frame(0x2, p, None));
        }
        for step in [1, 3, 13, 4096, stream.len()] {
            let mut rw = Rewrite::default();
            let mut out = Vec::new();
            let mut keys = Vec::new();
            let mut n = 0u8;
            for piece in stream.chunks(step) {
                rw.feed(piece, &mut out, || {
                    n = n.wrapping_add(1);
                    let k = [n, 0x5a, n ^ 0xff, 0x11];
                    keys.push(k);
                    k
                });
            }
            let expected: Vec<u8> = payloads
                .iter()
                .zip(&keys)
                .flat_map(|(p, k)| frame(0x2, p, Some(*k)))
                .collect();
            assert_eq!(out, expected, "step {step}");
        }
    }

    #[test]
    fn incoming_frames_get_a_zero_key_and_keep_their_payload() {
        let mut rw = Rewrite::default();
        let mut out = Vec::new();
        rw.feed(&frame(0x1, b"abc", None), &mut out, || [0; 4]);
        assert_eq!(out, frame(0x1, b"abc", Some([0; 4])));
    }

    #[test]
    fn urls() {
        let t = parse("ws://relay.example:9000/proxy/a?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("relay.example", 9000, "/proxy/a?x=1")
        );
        let t = parse("ws://[::1]/p").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        for bad in [
            "http://x/",
            "wss://x/",
            "ws://",
            "ws://h:port/",
            "ws://h/a b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
