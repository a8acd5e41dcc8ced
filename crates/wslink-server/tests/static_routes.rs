//! The HTTP side as Kitware's `--fs-endpoints`, `--no-ws-endpoint`,
//! `WSLINK_HTTP_HEADERS` and `WSLINK_FOLLOW_SYMLINKS` shape it.

mod support;

use std::path::{Path, PathBuf};

use support::{result, Peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wslink_core::Generation;
use wslink_server::{HeaderMap, HeaderValue, Server};

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wslink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self, rel: &str, body: &str) -> &Self {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        self
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

async fn request(addr: &str, method: &str, path: &str, extra: &str) -> Response {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A 101 keeps the socket open: read what arrives within a moment.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        s.read_to_end(&mut raw),
    )
    .await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete HTTP head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

async fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, "").await
}

async fn start(server: &Server) -> String {
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().to_string();
    tokio::spawn(async move { listener.run().await.unwrap() });
    addr
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[tokio::test]
async fn fs_endpoints_mount_directories_under_prefixes_beside_content() {
    let www = TempDir::new("www");
    www.file("index.html", "home")
        .file("data/shadowed.txt", "from content")
        .file("database.txt", "content's");
    let data = TempDir::new("data");
    data.file("a.txt", "A")
        .file("big/in-data.txt", "data's big");
    let big = TempDir::new("big");
    big.file("b.txt", "B");

    let server = Server::builder()
        .content(www.path())
        .fs_endpoint("data", data.path())
        .fs_endpoint("/data/big/", big.path())
        .build();
    let addr = start(&server).await;

    let r = get(&addr, "/data/a.txt").await;
    assert_eq!((r.status, r.body.as_str()), (200, "A"));
    // The longest prefix wins; a prefix hides content's files below it.
    let r = get(&addr, "/data/big/b.txt").await;
    assert_eq!((r.status, r.body.as_str()), (200, "B"));
    assert_eq!(get(&addr, "/data/big/in-data.txt").await.status, 404);
    assert_eq!(get(&addr, "/data/shadowed.txt").await.status, 404);
    // Whole segments only: /database.txt is content's.
    let r = get(&addr, "/database.txt").await;
    assert_eq!((r.status, r.body.as_str()), (200, "content's"));
    // Encoded names are decoded once, and cannot climb out of a mount.
    assert_eq!(get(&addr, "/d%61ta/a.txt").await.body, "A");
    for escape in [
        "/data/../index.html",
        "/data/%2e%2e/index.html",
        "/data/..%2findex.html",
    ] {
        let r = get(&addr, escape).await;
        assert_ne!(r.body, "home", "{escape}");
        assert!(matches!(r.status, 400 | 404), "{escape}: {}", r.status);
    }
    // `/` redirects to index.html with the query, as Python's server.
    let r = get(&addr, "/?ws=ws://x/ws&secret=s").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("index.html?ws=ws://x/ws&secret=s")
    );
    assert_eq!(
        request(&addr, "POST", "/data/a.txt", "Content-Length: 0\r\n")
            .await
            .status,
        405
    );
}

#[tokio::test]
async fn fs_endpoints_alone_serve_without_content() {
    let data = TempDir::new("alone");
    data.file("a.txt", "A");
    let server = Server::builder().fs_endpoint("data", data.path()).build();
    let addr = start(&server).await;
    assert_eq!(get(&addr, "/data/a.txt").await.body, "A");
    assert_eq!(get(&addr, "/a.txt").await.status, 404);
}

#[tokio::test]
async fn without_the_ws_endpoint_its_path_is_just_a_file() {
    let www = TempDir::new("nows");
    www.file("ws", "a file named ws");
    let server = Server::builder()
        .content(www.path())
        .websocket(false)
        .build();
    let addr = start(&server).await;
    let r = request(&addr, "GET", "/ws", UPGRADE).await;
    assert_eq!((r.status, r.body.as_str()), (200, "a file named ws"));

    let plain = Server::builder().websocket(false).build();
    let addr = start(&plain).await;
    assert_eq!(request(&addr, "GET", "/ws", UPGRADE).await.status, 404);
}

#[tokio::test]
async fn a_ws_endpoint_path_takes_precedence_over_files() {
    let www = TempDir::new("wsfirst");
    www.file("api/ws", "shadowed file");
    let server = Server::builder()
        .content(www.path())
        .ws_endpoint("api/ws")
        .build();
    let addr = start(&server).await;
    assert_eq!(server.config().ws_endpoint, "/api/ws");
    let mut peer = Peer::connect(&format!("ws://{addr}/api/ws"), Generation::V2).await;
    result(peer.hello("wslink-secret").await);
    assert_eq!(get(&addr, "/ws").await.status, 404);
}

#[tokio::test]
async fn http_headers_go_on_every_response_but_the_upgrade() {
    let www = TempDir::new("headers");
    www.file("index.html", "home");
    let mut headers = HeaderMap::new();
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // A header the response sets itself is kept (Python: setdefault).
    headers.insert("content-type", HeaderValue::from_static("x/never"));
    let server = Server::builder()
        .content(www.path())
        .http_headers(headers)
        .build();
    let addr = start(&server).await;
    for path in ["/index.html", "/missing", "/"] {
        let r = get(&addr, path).await;
        assert_eq!(
            r.header("cross-origin-opener-policy"),
            Some("same-origin"),
            "{path}"
        );
        assert_ne!(r.header("content-type"), Some("x/never"), "{path}");
    }
    let r = request(&addr, "GET", "/ws", UPGRADE).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("cross-origin-opener-policy"), None);
}

#[tokio::test]
async fn symlinks_out_of_a_directory_need_follow_symlinks() {
    let data = TempDir::new("links");
    let outside = TempDir::new("links-target");
    outside.file("secret.txt", "outside");
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        data.path().join("link.txt"),
    )
    .unwrap();
    let strict = Server::builder().fs_endpoint("d", data.path()).build();
    let addr = start(&strict).await;
    assert_eq!(get(&addr, "/d/link.txt").await.status, 404);

    let following = Server::builder()
        .fs_endpoint("d", data.path())
        .follow_symlinks(true)
        .build();
    let addr = start(&following).await;
    let r = get(&addr, "/d/link.txt").await;
    assert_eq!((r.status, r.body.as_str()), (200, "outside"));
    // Following links never lets a URL climb out.
    let r = get(&addr, "/d/../links-target/secret.txt").await;
    assert!(matches!(r.status, 400 | 404), "{}", r.status);
}
