//! `--www DIR`: static files beside the relay route, as Kitware's relay
//! serves them: `/` redirects to `index.html` (keeping the query), other
//! paths are files under the directory and never outside it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::plain;

fn percent_decode(text: &str) -> Option<String> {
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

fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for segment in url_path.split('/') {
        let segment = percent_decode(segment)?;
        match segment.as_str() {
            "" | "." => {}
            ".." => return None,
            s if s.contains(['/', '\\', '\0']) => return None,
            s => path.push(s),
        }
    }
    // A symbolic link must not lead out of the directory either.
    let real = path.canonicalize().ok()?;
    real.starts_with(root.canonicalize().ok()?).then_some(real)
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
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Answers a GET for `path` (with `query`) from `root`.
pub(crate) async fn serve(root: &Path, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    if path == "/" {
        let location = match query {
            Some(q) if !q.is_empty() => format!("index.html?{q}"),
            _ => "index.html".to_owned(),
        };
        let mut r = plain(StatusCode::FOUND, "");
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let Some(file) = resolve(root, path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    match tokio::fs::read(&file).await {
        Ok(data) => {
            let mut r = Response::new(Full::new(Bytes::from(data)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&file)),
            );
            r
        }
        Err(_) => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}
