//! Kitware's Python wslink servers (2.x and 1.x) running the conformance
//! service, for tests against the real thing.
//!
//! The interpreters come from `WSLINK_PY2` / `WSLINK_PY1`, or else from
//! `target/peers/py2` / `target/peers/py1`, which `tests/peers/install.sh`
//! creates. A missing interpreter fails the test with instructions: these
//! tests are part of the suite, not optional.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wslink_client::Generation;

/// The secret the peers are started with (not wslink's default, so that
/// the tests show the secret is really sent).
pub const SECRET: &str = "peer-secret-for-tests";

/// A running Python conformance server.
pub struct PyServer {
    /// `ws://127.0.0.1:PORT/ws`.
    pub url: String,
    /// `2.x` or `1.x`.
    pub generation: Generation,
    /// The wrapper shell; the server dies when this process exits (its
    /// stdin, a pipe from us, closes).
    _child: Child,
    _stdin: std::process::ChildStdin,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python(generation: Generation) -> PathBuf {
    let (var, dir) = match generation {
        Generation::V2 => ("WSLINK_PY2", "py2"),
        Generation::V1 => ("WSLINK_PY1", "py1"),
    };
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/peers").join(dir).join("bin/python"));
    assert!(
        path.exists(),
        "the Python wslink {generation} peer is missing: {} does not exist.\n\
         Install the reference peers first with `bash tests/peers/install.sh` \
         (from the repository root), or point {var} at a python that has \
         wslink {generation} installed.",
        path.display()
    );
    path
}

/// The shared server of `generation`, started on first use.
pub fn server(generation: Generation) -> &'static PyServer {
    static V2: OnceLock<PyServer> = OnceLock::new();
    static V1: OnceLock<PyServer> = OnceLock::new();
    let cell = match generation {
        Generation::V2 => &V2,
        Generation::V1 => &V1,
    };
    cell.get_or_init(|| start(generation))
}

fn start(generation: Generation) -> PyServer {
    let python = python(generation);
    let script = root().join("tests/peers/python/conformance_server.py");
    assert!(script.exists(), "{} is missing", script.display());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::env::temp_dir().join(format!("wslink-client-peer-{generation}-{port}.log"));
    let log_file = std::fs::File::create(&log).unwrap();
    // The shell starts the server, then waits for its own stdin (a pipe from
    // this test process) to close, which happens when this process exits,
    // however it exits, and stops the server then.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"exec 3<&0; "$0" "$@" </dev/null & pid=$!; read _ <&3; kill $pid 2>/dev/null; wait $pid"#)
        .arg(&python)
        .arg(&script)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--authKey", SECRET, "--timeout", "0"]);
    if generation == Generation::V1 {
        // wslink 1.x hands this to aiohttp as its largest accepted frame;
        // 1.x does not chunk, so 6 MiB attachments need more than the
        // default 4 MiB (the conformance orchestrator does the same). The
        // 2.x server keeps its default, so uploads must be chunked to it.
        command.env("WSLINK_MAX_MSG_SIZE", (16 * 1024 * 1024).to_string());
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Listening is not enough: connections that came before the ready
        // line were seen reset (1.12.4, under load).
        let ready = std::fs::read_to_string(&log)
            .is_ok_and(|text| text.contains("wslink: Starting factory"));
        if ready && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        let exited = child.try_wait().unwrap();
        if exited.is_some() || Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "the Python wslink {generation} server did not start ({}):\n{text}",
                match exited {
                    Some(status) => format!("exited with {status}"),
                    None => "not listening after 60 s".into(),
                }
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::io::stderr().flush();
    PyServer {
        url: format!("ws://127.0.0.1:{port}/ws"),
        generation,
        _child: child,
        _stdin: stdin,
    }
}
