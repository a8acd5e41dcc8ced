//! Static files for the wslink server (`--content`, `fs_endpoints`), the
//! launcher (`configuration.content`) and the relay (`--www`): one directory
//! answered over hyper, the way Kitware's aiohttp servers answer it.
//!
//! - `GET /` redirects to `index.html`, keeping the query (a wslink page
//!   reads its `ws=`/`secret=` from there);
//! - other paths are percent-decoded once and name a file under the
//!   directory (a directory stands for its `index.html`);
//! - a path never leaves the directory: `..`, absolute parts and encoded
//!   separators are refused, and a symbolic link must resolve inside it too
//!   unless the caller asks for [`Symlinks::Follow`];
//! - only GET and HEAD; every refusal is a bare `404: Not Found`, so a probe
//!   learns nothing about what exists outside.
//!
//! [`serve`] is the whole of it for a directory mounted at `/`. A caller
//! with mounts of its own (the server's `fs_endpoints`) redirects `/` with
//! [`redirect_to_index`], decodes with [`decode_path`], picks its directory
//! by the decoded prefix and hands the rest to [`serve_decoded`].
//!
//! ```
//! use hyper::{Method, StatusCode};
//! use wslink_static::{serve, Symlinks};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let www = tempfile::tempdir()?;
//! std::fs::write(www.path().join("index.html"), "<p>hello</p>")?;
//!
//! let home = serve(www.path(), &Method::GET, "/", Some("ws=1"), Symlinks::StayInside).await;
//! assert_eq!(home.status(), StatusCode::FOUND);
//! assert_eq!(home.headers()["location"], "index.html?ws=1");
//!
//! let page = serve(www.path(), &Method::GET, "/index.html", None, Symlinks::StayInside).await;
//! assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
//!
//! let out = serve(www.path(), &Method::GET, "/%2e%2e/etc/passwd", None, Symlinks::StayInside).await;
//! assert_eq!(out.status(), StatusCode::NOT_FOUND);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

/// What every function here answers with.
pub type FileResponse = Response<Full<Bytes>>;

/// Whether a symbolic link inside the directory may lead out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symlinks {
    /// The link's target must be inside the directory too, as aiohttp's
    /// static route insists by default.
    #[default]
    StayInside,
    /// Any target (wslink's `WSLINK_FOLLOW_SYMLINKS`); the URL itself still
    /// cannot climb out.
    Follow,
}

impl From<bool> for Symlinks {
    /// `true` is [`Symlinks::Follow`], as a `follow_symlinks` setting reads.
    fn from(follow: bool) -> Self {
        if follow {
            Symlinks::Follow
        } else {
            Symlinks::StayInside
        }
    }
}

/// Answers a request for `path` (as it came, still percent-encoded) from
/// the directory `root` mounted at `/`; `query` is only kept by the
/// redirect of `/`.
pub async fn serve(
    root: &Path,
    method: &Method,
    path: &str,
    query: Option<&str>,
    links: Symlinks,
) -> FileResponse {
    if !readable(method) {
        return method_not_allowed();
    }
    if path == "/" {
        return redirect_to_index(query);
    }
    match decode_path(path) {
        Some(decoded) => serve_decoded(root, method, &decoded, links).await,
        None => not_found(),
    }
}

/// Answers for a path that is already percent-decoded (by [`decode_path`])
/// and relative to `root`, as a mount hands on what follows its prefix.
/// Decoding twice would turn `%252e` into `.`, hence a function of its own.
pub async fn serve_decoded(
    root: &Path,
    method: &Method,
    decoded: &str,
    links: Symlinks,
) -> FileResponse {
    if !readable(method) {
        return method_not_allowed();
    }
    let Some(mut file) = resolve(root, decoded) else {
        return not_found();
    };
    if tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_dir()) {
        file.push("index.html");
    }
    // `resolve` keeps the path lexically under the root; a link inside it
    // could still point anywhere, so compare real paths as well.
    let inside = links == Symlinks::Follow
        || match (
            tokio::fs::canonicalize(root).await,
            tokio::fs::canonicalize(&file).await,
        ) {
            (Ok(real_root), Ok(real)) => real.starts_with(real_root),
            _ => false,
        };
    if !inside {
        return not_found();
    }
    // HEAD must not read a file it will not send.
    let read = if method == Method::HEAD {
        match tokio::fs::metadata(&file).await {
            Ok(m) if m.is_file() => Ok((m.len(), Bytes::new())),
            Ok(_) => Err(std::io::ErrorKind::NotFound.into()),
            Err(e) => Err(e),
        }
    } else {
        tokio::fs::read(&file)
            .await
            .map(|data| (data.len() as u64, Bytes::from(data)))
    };
    let Ok((len, body)) = read else {
        return not_found();
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // Apps under development are reloaded often; a stale script against a
    // newer server is the confusing failure this avoids.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The answer to `GET /`: a 302 to `index.html`, relative so that it works
/// under any prefix a proxy adds, with the query kept.
pub fn redirect_to_index(query: Option<&str>) -> FileResponse {
    let location = match query {
        Some(q) if !q.is_empty() => format!("index.html?{q}"),
        _ => "index.html".to_owned(),
    };
    let mut r = text(StatusCode::FOUND, "302: Found");
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A URL path percent-decoded once, or `None` for a bad escape, bytes that
/// are not UTF-8, or an escape that decodes to `/`, `\` or NUL (each would
/// smuggle a separator past [`resolve`]).
///
/// ```
/// assert_eq!(wslink_static::decode_path("/d%61ta/a%20b").as_deref(), Some("/data/a b"));
/// assert_eq!(wslink_static::decode_path("/..%2fsecret"), None);
/// ```
pub fn decode_path(path: &str) -> Option<String> {
    decode(path, |b| matches!(b, b'/' | b'\\' | 0))
}

/// Text percent-decoded once (a query value, say), or `None` for a bad
/// escape or bytes that are not UTF-8. Unlike [`decode_path`], any byte may
/// be escaped.
///
/// ```
/// assert_eq!(wslink_static::percent_decode("a%2Fb").as_deref(), Some("a/b"));
/// assert_eq!(wslink_static::percent_decode("%zz"), None);
/// ```
pub fn percent_decode(text: &str) -> Option<String> {
    decode(text, |_| false)
}

fn decode(text: &str, refused: impl Fn(u8) -> bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            let b = u8::from_str_radix(hex, 16).ok()?;
            if refused(b) {
                return None;
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file a decoded URL path names under `root`, or `None` if it would
/// leave it: `..`, an absolute or prefixed part, a backslash (a separator
/// on Windows) or NUL. Lexical only; [`serve_decoded`] checks links.
///
/// ```
/// use std::path::{Path, PathBuf};
/// let root = Path::new("/srv/www");
/// assert_eq!(wslink_static::resolve(root, "/a/b.js"), Some(PathBuf::from("/srv/www/a/b.js")));
/// assert_eq!(wslink_static::resolve(root, "/a/../../etc"), None);
/// ```
pub fn resolve(root: &Path, decoded: &str) -> Option<PathBuf> {
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut path = root.to_path_buf();
    for part in Path::new(decoded.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => path.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

/// The `Content-Type` for a file, by its extension: what a wslink web app
/// ships (pages, scripts, styles, source maps, images, wasm), anything
/// else as bytes.
///
/// ```
/// use std::path::Path;
/// assert_eq!(wslink_static::content_type(Path::new("app.mjs")), "text/javascript; charset=utf-8");
/// assert_eq!(wslink_static::content_type(Path::new("data.vtp")), "application/octet-stream");
/// ```
pub fn content_type(path: &Path) -> &'static str {
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

fn readable(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The one answer to every refusal: a missing file, a path that would leave
/// the directory, a bad escape. Callers with routes of their own use it for
/// a path none of their directories takes, so those look alike too.
pub fn not_found() -> FileResponse {
    text(StatusCode::NOT_FOUND, "404: Not Found")
}

fn method_not_allowed() -> FileResponse {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

fn text(status: StatusCode, body: &'static str) -> FileResponse {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: FileResponse) -> Vec<u8> {
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    async fn ask(root: &Path, method: Method, path: &str) -> FileResponse {
        serve(root, &method, path, None, Symlinks::StayInside).await
    }

    async fn get(root: &Path, path: &str) -> FileResponse {
        ask(root, Method::GET, path).await
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv/www");
        let r = |p: &str| decode_path(p).and_then(|d| resolve(root, &d));
        assert_eq!(r("/a/b.js"), Some(PathBuf::from("/srv/www/a/b.js")));
        assert_eq!(r("/"), Some(PathBuf::from("/srv/www")));
        assert_eq!(r("/./a"), Some(PathBuf::from("/srv/www/a")));
        assert_eq!(r("//a"), Some(PathBuf::from("/srv/www/a")));
        assert_eq!(r("/%41"), Some(PathBuf::from("/srv/www/A")));
        assert_eq!(r("/../etc/passwd"), None);
        assert_eq!(r("/a/%2e%2e/%2E%2E/etc"), None);
        assert_eq!(r("/a%2fb"), None);
        assert_eq!(r("/a%5cb"), None);
        assert_eq!(r("/a\\..\\b"), None);
        assert_eq!(r("/a%00b"), None);
        assert_eq!(r("/a%zz"), None);
        assert_eq!(r("/a%2"), None);
        assert_eq!(r("/%ff"), None, "not UTF-8");
    }

    #[test]
    fn decoding_is_once_and_general_decoding_takes_any_byte() {
        assert_eq!(decode_path("/%252e").as_deref(), Some("/%2e"));
        assert_eq!(percent_decode("a%2Fb%00").as_deref(), Some("a/b\0"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }

    #[tokio::test]
    async fn files_directories_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir_all(www.join("sub")).unwrap();
        std::fs::write(www.join("index.html"), "home").unwrap();
        std::fs::write(www.join("sub/index.html"), "sub home").unwrap();
        std::fs::write(www.join("app.wasm"), [0, 97, 115, 109]).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();

        let r = get(&www, "/index.html").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "4");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(body(r).await, b"home");
        let r = get(&www, "/sub/").await;
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(body(r).await, b"sub home");
        let r = get(&www, "/app.wasm").await;
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/wasm");

        for refused in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/nope",
            "/%zz",
        ] {
            let r = get(&www, refused).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{refused}");
            assert_eq!(body(r).await, b"404: Not Found", "{refused}");
        }

        let r = ask(&www, Method::POST, "/index.html").await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        let r = ask(&www, Method::POST, "/").await;
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "POST / is not redirected"
        );
    }

    #[tokio::test]
    async fn head_sends_the_length_without_the_body() {
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("a.txt"), "twelve bytes").unwrap();
        let r = ask(www.path(), Method::HEAD, "/a.txt").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "12");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert!(body(r).await.is_empty());
        let r = ask(www.path(), Method::HEAD, "/missing").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_root_redirects_to_index_html_with_its_query() {
        let www = tempfile::tempdir().unwrap();
        for (query, location) in [
            (None, "index.html"),
            (Some(""), "index.html"),
            (
                Some("ws=ws://x/ws&secret=s"),
                "index.html?ws=ws://x/ws&secret=s",
            ),
        ] {
            let r = serve(www.path(), &Method::GET, "/", query, Symlinks::StayInside).await;
            assert_eq!(r.status(), StatusCode::FOUND);
            assert_eq!(r.headers()[header::LOCATION], location);
        }
        let r = serve(
            www.path(),
            &Method::HEAD,
            "/",
            Some("a=1"),
            Symlinks::StayInside,
        )
        .await;
        assert_eq!(r.headers()[header::LOCATION], "index.html?a=1");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn links_out_of_the_directory_need_follow() {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(dir.path().join("outside.txt"), "outside").unwrap();
        std::fs::write(www.join("real.txt"), "inside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), www.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(www.join("real.txt"), www.join("in.txt")).unwrap();

        let strict = |p: &'static str| serve_decoded(&www, &Method::GET, p, Symlinks::StayInside);
        assert_eq!(strict("/out.txt").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(strict("/in.txt").await).await, b"inside");

        let follow = |p: &'static str| serve_decoded(&www, &Method::GET, p, Symlinks::Follow);
        assert_eq!(body(follow("/out.txt").await).await, b"outside");
        assert_eq!(
            follow("/../outside.txt").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(Symlinks::from(true), Symlinks::Follow);
        assert_eq!(Symlinks::from(false), Symlinks::StayInside);

        // The root's real path is compared too: a directory reached through
        // a link (a common deployment layout) is not "outside" itself.
        let current = dir.path().join("current");
        std::os::unix::fs::symlink(&www, &current).unwrap();
        assert_eq!(body(get(&current, "/real.txt").await).await, b"inside");
        assert_eq!(
            get(&current, "/out.txt").await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
