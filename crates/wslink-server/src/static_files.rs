//! Files served from a directory over HTTP (wslink's `--content`): the
//! path checks and the reading, shared by the server and the launcher.
//!
//! A path never leaves the directory: `..`, absolute parts and encoded
//! separators or NULs are refused, and the real path (symbolic links
//! followed) must stay under the real root, as aiohttp's static route
//! insists.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

/// A file ready to send.
#[derive(Debug)]
pub struct File {
    /// Where it is.
    pub path: PathBuf,
    /// Its length (the body is empty for a HEAD request).
    pub len: u64,
    /// Its bytes.
    pub body: Bytes,
    /// Its `Content-Type`, from the extension.
    pub content_type: &'static str,
}

/// Why a path gets no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServed {
    /// The path tries to leave the directory or is malformed (400).
    BadPath,
    /// There is no such file under the directory (404).
    NotFound,
}

/// Maps a URL path to a file under `root`, refusing anything that would
/// leave it (`..`, absolute parts, encoded separators). Lexical only: see
/// [`read`] for the symbolic-link check.
///
/// ```
/// use std::path::{Path, PathBuf};
/// use wslink_server::static_files::resolve;
///
/// let root = Path::new("/srv/www");
/// assert_eq!(resolve(root, "/js/app.js"), Some(PathBuf::from("/srv/www/js/app.js")));
/// assert_eq!(resolve(root, "/js/%2e%2e/%2e%2e/etc/passwd"), None);
/// ```
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
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

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            let b = u8::from_str_radix(hex, 16).ok()?;
            // An encoded separator or NUL would smuggle a path past `resolve`.
            if b == b'/' || b == b'\\' || b == 0 {
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

/// The `Content-Type` of a file, from its extension (binary when unknown).
///
/// ```
/// use std::path::Path;
/// use wslink_server::static_files::content_type;
///
/// assert_eq!(content_type(Path::new("app.mjs")), "text/javascript; charset=utf-8");
/// assert_eq!(content_type(Path::new("data.bin")), "application/octet-stream");
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

/// Reads the file `url_path` names under `root` (a directory's
/// `index.html`), or says why not; `head_only` reads only its length.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use wslink_server::static_files::{read, NotServed};
///
/// let root = std::env::temp_dir().join(format!("static-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&root).unwrap();
/// std::fs::write(root.join("index.html"), "<p>hi</p>").unwrap();
/// let page = read(&root, "/", false).await.unwrap();
/// assert_eq!((page.len, page.content_type), (9, "text/html; charset=utf-8"));
/// assert_eq!(read(&root, "/../etc/passwd", false).await.unwrap_err(), NotServed::BadPath);
/// assert_eq!(read(&root, "/missing.js", false).await.unwrap_err(), NotServed::NotFound);
/// # std::fs::remove_dir_all(&root).unwrap();
/// # }
/// ```
pub async fn read(root: &Path, url_path: &str, head_only: bool) -> Result<File, NotServed> {
    let mut path = resolve(root, url_path).ok_or(NotServed::BadPath)?;
    if tokio::fs::metadata(&path)
        .await
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        path.push("index.html");
    }
    // `resolve` keeps the path lexically under the root; a symbolic link
    // inside it could still point anywhere.
    let inside = match (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&path).await,
    ) {
        (Ok(real_root), Ok(real)) => real.starts_with(&real_root),
        _ => false,
    };
    if !inside {
        return Err(NotServed::NotFound);
    }
    let (len, body) = if head_only {
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|_| NotServed::NotFound)?;
        (meta.len(), Bytes::new())
    } else {
        let data = tokio::fs::read(&path)
            .await
            .map_err(|_| NotServed::NotFound)?;
        (data.len() as u64, Bytes::from(data))
    };
    Ok(File {
        content_type: content_type(&path),
        path,
        len,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv/www");
        assert_eq!(
            resolve(root, "/a/b.js"),
            Some(PathBuf::from("/srv/www/a/b.js"))
        );
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/srv/www")));
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/%2e%2e/%2e%2e/etc"), None);
        assert_eq!(resolve(root, "/a/%2E%2E/%2E%2E/etc"), None);
        assert_eq!(resolve(root, "/a%2fb"), None);
        assert_eq!(resolve(root, "/a%00b"), None);
        assert_eq!(resolve(root, "/a%zz"), None);
        assert_eq!(resolve(root, "/%41"), Some(PathBuf::from("/srv/www/A")));
    }
}
