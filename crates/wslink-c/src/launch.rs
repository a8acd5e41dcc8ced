//! Asking a session manager (wslink's launcher) for a session: one HTTP/1.1
//! POST over a plain TCP stream, its JSON answer read within bounds.
//!
//! Written by hand rather than with hyper's client: it is one request with
//! `Connection: close`, and the workspace's hyper has only its server
//! features; the client side would add hyper-util's client and its pool
//! for a single exchange. Only `http://` is spoken: a session manager
//! behind TLS is reached through its proxy's plain port, or not at all.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::wslink_status::{WSLINK_ERR_INVALID_URL, WSLINK_ERR_LAUNCH};
use crate::error::Failure;

/// The most bytes read from the session manager (headers and body). The
/// launcher's answer is a small JSON object; anything larger is refused
/// rather than held.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// The most bytes of headers.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A session the launcher started.
#[derive(Debug)]
pub(crate) struct Session {
    /// Where to connect (`USE_HOST` replaced by the launcher's host:port).
    pub(crate) url: String,
    /// The session's secret, when the launcher sends it.
    pub(crate) secret: Option<String>,
    /// The launcher's answer as it came.
    pub(crate) answer: String,
}

#[derive(Debug)]
struct Target<'a> {
    /// `host:port` as written (for the Host header and `USE_HOST`).
    authority: &'a str,
    host: &'a str,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target<'_>, Failure> {
    let bad = |why: &str| {
        Failure::new(
            WSLINK_ERR_INVALID_URL,
            format!("session manager URL {url:?}: {why}"),
        )
    };
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => return Err(bad(
            "https is not supported; use the launcher's plain http port (TLS ends at its proxy)",
        )),
        _ => return Err(bad("must start with http://")),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or_default();
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("needs a host (and no user info)"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p
            .parse()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?,
    };
    if host.is_empty() || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("unusable host or path"));
    }
    Ok(Target {
        authority,
        host,
        port,
        path,
    })
}

/// POSTs `request` (a JSON object naming the `application`) and reads the
/// session from the answer.
pub(crate) async fn start_session(
    manager_url: &str,
    request: &str,
    timeout: Duration,
) -> Result<Session, Failure> {
    let parsed: serde_json::Value = serde_json::from_str(request)
        .map_err(|e| Failure::invalid(format!("the launch request is not valid JSON: {e}")))?;
    match parsed.get("application") {
        Some(serde_json::Value::String(_)) => {}
        _ if !parsed.is_object() => return Err(Failure::invalid("the launch request must be a JSON object")),
        _ => {
            return Err(Failure::invalid(
                "the launch request needs \"application\": the name of an app in the launcher's configuration",
            ))
        }
    }
    let target = parse_url(manager_url)?;
    let (status, body) = match tokio::time::timeout(timeout, post(&target, request)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Failure::new(
                crate::error::wslink_status::WSLINK_ERR_TIMEOUT,
                format!("the session manager at {manager_url} did not answer within {timeout:?}"),
            ))
        }
    };
    let launch_error =
        |why: String| Failure::new(WSLINK_ERR_LAUNCH, format!("{manager_url}: {why}"));
    let answer: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    if status != 200 {
        let why = answer
            .as_ref()
            .and_then(|a| a.get("error"))
            .and_then(|e| e.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| shorten(&body));
        return Err(launch_error(format!("HTTP {status}: {why}")));
    }
    let answer = answer
        .ok_or_else(|| launch_error(format!("the answer is not JSON: {}", shorten(&body))))?;
    if let Some(error) = answer.get("error") {
        return Err(launch_error(format!(
            "the launcher answered an error: {error}"
        )));
    }
    let url = answer
        .get("sessionURL")
        .and_then(|u| u.as_str())
        .ok_or_else(|| {
            launch_error(format!(
                "the answer has no \"sessionURL\": {}",
                shorten(&body)
            ))
        })?;
    // What npm wslink's SmartConnect does: the launcher may leave the host
    // to the client, which knows how it reached the launcher.
    let url = url.replace("USE_HOST", target.authority);
    let secret = answer
        .get("secret")
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    Ok(Session {
        url,
        secret,
        answer: body,
    })
}

/// The first 200 characters of a text, for a message.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

async fn post(target: &Target<'_>, body: &str) -> Result<(u16, String), Failure> {
    let fail = |why: String| {
        Failure::new(
            WSLINK_ERR_LAUNCH,
            format!("session manager at {}: {why}", target.authority),
        )
    };
    let mut stream = TcpStream::connect((target.host, target.port))
        .await
        .map_err(|e| fail(format!("cannot connect: {e}")))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\
         User-Agent: wslink-c/{version}\r\n\r\n",
        path = target.path,
        host = target.authority,
        len = body.len(),
        version = env!("CARGO_PKG_VERSION"),
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| fail(format!("sending the request failed: {e}")))?;
    stream
        .write_all(body.as_bytes())
        .await
        .map_err(|e| fail(format!("sending the request failed: {e}")))?;

    // Read until the headers end, then as much body as they announce (or
    // to the end of the stream), never past MAX_RESPONSE_BYTES.
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(fail(format!(
                "the answer's headers are over {MAX_HEAD_BYTES} bytes"
            )));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| fail(format!("reading the answer failed: {e}")))?;
        if n == 0 {
            return Err(fail(
                "the connection closed before the answer's headers ended".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| fail("the answer's headers are not text".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = match status_line.split(' ').collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => code
            .parse()
            .map_err(|_| fail(format!("not an HTTP status line: {}", shorten(status_line))))?,
        _ => {
            return Err(fail(format!(
                "not an HTTP answer: {}",
                shorten(status_line)
            )))
        }
    };
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| {
                fail(format!(
                    "a Content-Length that is not a number: {}",
                    shorten(value)
                ))
            })?;
            if n > MAX_RESPONSE_BYTES as u64 {
                return Err(fail(format!(
                    "the answer announces {n} bytes, over the {MAX_RESPONSE_BYTES} this reads"
                )));
            }
            length = Some(n as usize);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let mut body = buf.split_off(head_end);
    loop {
        if !chunked && length.is_some_and(|n| body.len() >= n) {
            break;
        }
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(fail(format!(
                "the answer is over {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| fail(format!("reading the answer failed: {e}")))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if chunked {
        body = dechunk(&body).ok_or_else(|| fail("a malformed chunked body".into()))?;
    } else if let Some(n) = length {
        if body.len() < n {
            return Err(fail(format!(
                "the answer ended after {} of its {n} bytes",
                body.len()
            )));
        }
        body.truncate(n);
    }
    let body = String::from_utf8(body).map_err(|_| fail("the answer is not UTF-8".into()))?;
    Ok((status, body))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The body of a `Transfer-Encoding: chunked` message.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:9000/paraview/").unwrap();
        assert_eq!(
            (t.host, t.port, t.path.as_str(), t.authority),
            ("127.0.0.1", 9000, "/paraview/", "127.0.0.1:9000")
        );
        let t = parse_url("http://[::1]:8080").unwrap();
        assert_eq!((t.host, t.port, t.path.as_str()), ("::1", 8080, "/"));
        let t = parse_url("HTTP://example.org?x=1#frag").unwrap();
        assert_eq!(
            (t.host, t.port, t.path.as_str()),
            ("example.org", 80, "/?x=1")
        );
        assert!(parse_url("https://x/")
            .unwrap_err()
            .message
            .contains("https is not supported"));
        assert!(parse_url("ws://x/").is_err());
        assert!(parse_url("http://x:99999/").is_err());
        assert!(parse_url("http://u@x/").is_err());
        assert!(parse_url("http:///p").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n").unwrap(),
            b"Wikipedia"
        );
        assert!(dechunk(b"ff\r\nshort\r\n").is_none());
        assert!(dechunk(b"zz\r\n").is_none());
    }
}
