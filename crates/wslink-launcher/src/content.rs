//! Static files from `configuration.content`, on the launcher's port.
//!
//! As Kitware's launcher: `GET /` redirects to `index.html` (keeping the
//! query), other paths are files under the directory. A path never leaves
//! the directory: `..` and encoded slashes are refused, and a symbolic
//! link must resolve inside it too.

use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

/// Decodes `%XX` escapes (the proxy's query string; file paths go through
/// `wslink_server::static_files`); `None` for a bad escape or bytes that are not
/// UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Answers a GET or HEAD for a static file.
pub(crate) async fn serve(
    root: &Path,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    }
    if path == "/" {
        let location = match query {
            Some(q) if !q.is_empty() => format!("index.html?{q}"),
            _ => "index.html".to_owned(),
        };
        let mut r = text(StatusCode::FOUND, "302: Found");
        if let Ok(value) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, value);
        }
        return r;
    }
    // The path checks and the reading are the server's own
    // (`wslink_server::static_files`); only the answers' wording is
    // Kitware's launcher's.
    match wslink_server::static_files::read(root, path, method == Method::HEAD).await {
        Ok(file) => {
            let mut r = Response::new(Full::new(file.body));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(file.content_type),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.len));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        Err(_) => text(StatusCode::NOT_FOUND, "404: Not Found"),
    }
}
