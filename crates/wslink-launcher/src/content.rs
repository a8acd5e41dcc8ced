//! Static files from `configuration.content`, on the launcher's port.
//!
//! As Kitware's launcher: `GET /` redirects to `index.html` (keeping the
//! query), other paths are files under the directory. A path never leaves
//! the directory: `..` and encoded slashes are refused, and a symbolic
//! link must resolve inside it too.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not
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

/// The file a URL path names under `root`, or `None` if it would leave it.
pub(crate) fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for segment in url_path.split('/') {
        let segment = percent_decode(segment)?;
        match segment.as_str() {
            "" | "." => continue,
            ".." => return None,
            s if s.contains(['/', '\\', '\0']) => return None,
            s => path.push(s),
        }
    }
    Some(path)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
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
    let Some(mut file) = resolve(root, path) else {
        return text(StatusCode::NOT_FOUND, "404: Not Found");
    };
    if tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_dir()) {
        file.push("index.html");
    }
    let inside = match (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&file).await,
    ) {
        (Ok(real_root), Ok(real)) => real.starts_with(real_root),
        _ => false,
    };
    if !inside {
        return text(StatusCode::NOT_FOUND, "404: Not Found");
    }
    let data = if method == Method::HEAD {
        tokio::fs::metadata(&file)
            .await
            .map(|m| (m.len(), Bytes::new()))
    } else {
        tokio::fs::read(&file)
            .await
            .map(|d| (d.len() as u64, Bytes::from(d)))
    };
    match data {
        Ok((len, body)) => {
            let mut r = Response::new(Full::new(body));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&file)),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        Err(_) => text(StatusCode::NOT_FOUND, "404: Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let root = Path::new("/srv");
        assert_eq!(resolve(root, "/a/b.js"), Some(PathBuf::from("/srv/a/b.js")));
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/%2e%2e/%2E%2E/etc"), None);
        assert_eq!(resolve(root, "/a%2fb"), None);
        assert_eq!(resolve(root, "/a%00b"), None);
        assert_eq!(resolve(root, "/a%zz"), None);
        assert_eq!(resolve(root, "/%41"), Some(PathBuf::from("/srv/A")));
    }
}
