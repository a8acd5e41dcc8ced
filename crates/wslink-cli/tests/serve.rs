//! `wslink serve` started the way launchers and scripts start Kitware's
//! `python -m wslink.server`: its flags, its environment variables, its
//! ready line. (tests/cli-compat/run.sh runs the same command lines against
//! the Python server itself.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wslink");

/// A running `wslink serve`, killed on drop.
struct Serve {
    child: Child,
    out: BufReader<ChildStdout>,
    /// Lines printed so far.
    lines: Vec<String>,
}

impl Serve {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--host", "127.0.0.1", "-p", "0"])
            .args(args)
            .env_remove("WSLINK_AUTH_KEY")
            .env_remove("WSLINK_READY_MSG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting wslink serve");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut serve = Serve {
            child,
            out,
            lines: Vec::new(),
        };
        serve.read_line();
        serve
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        self.lines.push(line.trim_end().to_owned());
        line.trim_end().to_owned()
    }

    /// HOST:PORT from the first line.
    fn addr(&self) -> String {
        let rest = self.lines[0].strip_prefix("wslink server on ").unwrap();
        let rest = rest.split_once("://").unwrap().1;
        rest.split('/').next().unwrap().to_owned()
    }

    fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("serve")
        .args(["--host", "127.0.0.1", "-p", "0", "--timeout", "1"])
        .args(args)
        .env_remove("WSLINK_AUTH_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Status code, head and body of one HTTP GET.
fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_owned())
}

fn call(url: &str, secret: &str) -> Output {
    Command::new(BIN)
        .args(["call", url, "conformance.add", "1", "2", "--secret", secret])
        .output()
        .unwrap()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

#[test]
fn the_ready_line_follows_the_url_line_and_can_be_changed() {
    let mut serve = Serve::start(&["--timeout", "0"], &[]);
    assert!(serve.lines[0].starts_with("wslink server on ws://127.0.0.1:"));
    assert_eq!(serve.read_line(), "wslink: Starting factory");

    let mut serve = Serve::start(&["--timeout", "0"], &[("WSLINK_READY_MSG", "app ready")]);
    assert_eq!(serve.read_line(), "app ready");

    // Empty: no ready line at all, as Python.
    let mut serve = Serve::start(&["--timeout", "1"], &[("WSLINK_READY_MSG", "")]);
    assert!(serve.wait(Duration::from_secs(10)).is_some());
    let mut rest = String::new();
    serve.out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
}

#[test]
fn a_python_launcher_command_line_runs_as_is() {
    let www = tempdir();
    write(www.path(), "index.html", "home");
    let data = tempdir();
    write(data.path(), "x.txt", "data file");
    let fs = format!("data={}", data.path().display());
    let mut serve = Serve::start(
        &[
            "--authKey",
            "s3cret",
            "--timeout",
            "30",
            "--content",
            www.path().to_str().unwrap(),
            "--fs-endpoints",
            &fs,
            "--ws-endpoint",
            "myws",
            "--no-ws-compress",
            "--nosignalhandlers",
            "--debug",
            "--conformance",
        ],
        &[],
    );
    let url = serve.lines[0]
        .strip_prefix("wslink server on ")
        .unwrap()
        .to_owned();
    assert!(url.ends_with("/myws"), "{url}");
    assert!(serve.read_line().starts_with("conformance service: "));
    assert_eq!(serve.read_line(), "wslink: Starting factory");
    let addr = serve.addr();

    let ok = call(&url, "s3cret");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "3");
    let refused = call(&url, "wrong");
    assert_eq!(refused.status.code(), Some(3));
    assert_eq!(http_get(&addr, "/data/x.txt").2, "data file");
    assert_eq!(http_get(&addr, "/index.html").2, "home");
    assert_eq!(http_get(&addr, "/ws").0, 404);
}

#[test]
fn no_ws_endpoint_serves_http_only() {
    let www = tempdir();
    write(www.path(), "index.html", "home");
    let serve = Serve::start(
        &[
            "--no-ws-endpoint",
            "--content",
            www.path().to_str().unwrap(),
            "--timeout",
            "0",
        ],
        &[],
    );
    assert!(
        serve.lines[0].starts_with("wslink server on http://"),
        "{:?}",
        serve.lines
    );
    let addr = serve.addr();
    assert_eq!(http_get(&addr, "/ws").0, 404);
    assert_eq!(http_get(&addr, "/index.html").2, "home");
    assert_eq!(
        call(&format!("ws://{addr}/ws"), "wslink-secret")
            .status
            .code(),
        Some(3)
    );
}

#[test]
fn http_headers_come_from_the_file_wslink_http_headers_names() {
    let dir = tempdir();
    write(dir.path(), "index.html", "home");
    write(
        dir.path(),
        "headers.json",
        r#"{"Cross-Origin-Embedder-Policy": "require-corp"}"#,
    );
    let headers = dir.path().join("headers.json");
    let serve = Serve::start(
        &["--content", dir.path().to_str().unwrap(), "--timeout", "0"],
        &[("WSLINK_HTTP_HEADERS", headers.to_str().unwrap())],
    );
    let (status, head, _) = http_get(&serve.addr(), "/index.html");
    assert_eq!(status, 200);
    assert!(
        head.contains("cross-origin-embedder-policy: require-corp"),
        "{head}"
    );
}

#[test]
fn a_bad_environment_variable_is_named_and_nothing_starts() {
    for (var, value, says) in [
        ("WSLINK_MAX_MSG_SIZE", "4MB", "expected an integer"),
        ("WSLINK_HEART_BEAT", "30s", "expected an integer"),
        ("WSLINK_WS_COMPRESS", "false", "expected an integer"),
        (
            "WSLINK_HTTP_HEADERS",
            "/no/such/headers.json",
            "cannot read",
        ),
    ] {
        let out = run(&[], &[(var, value)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(
            err.contains(&format!("wslink: {var}=")) && err.contains(says),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn bad_broker_flags_are_usage_errors() {
    // A prefix without a broker, and a prefix NATS subjects cannot carry.
    // (The broker itself: tests/broker/failover.test.mjs.)
    let out = run(&["--broker-prefix", "demo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--broker"));
    let out = run(
        &["--broker", "nats://127.0.0.1:1", "--broker-prefix", "a..b"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--broker-prefix") && stderr.contains("a..b"),
        "{stderr}"
    );
}

#[test]
fn bad_fs_endpoints_are_usage_errors() {
    for spec in ["data", "data=/definitely/not/here"] {
        let out = run(&["--fs-endpoints", spec], &[]);
        assert_eq!(out.status.code(), Some(2), "{spec}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--fs-endpoints"));
    }
}

#[test]
fn the_timeout_stops_an_unused_server_and_zero_or_less_never_does() {
    let mut serve = Serve::start(&["--timeout", "1"], &[]);
    let status = serve
        .wait(Duration::from_secs(10))
        .expect("still running after 10 s");
    assert!(status.success(), "{status}");
    for never in ["0", "-1"] {
        let mut serve = Serve::start(&["--timeout", never], &[]);
        assert!(
            serve.wait(Duration::from_millis(2500)).is_none(),
            "--timeout {never}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_cleanly_unless_nosignalhandlers() {
    use std::os::unix::process::ExitStatusExt;
    let term = |serve: &mut Serve| {
        let pid = serve.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        serve
            .wait(Duration::from_secs(10))
            .expect("still running 10 s after SIGTERM")
    };
    let mut serve = Serve::start(&["--timeout", "0"], &[]);
    serve.read_line();
    assert_eq!(term(&mut serve).code(), Some(0));

    let mut serve = Serve::start(&["--timeout", "0", "--nosignalhandlers"], &[]);
    serve.read_line();
    assert_eq!(term(&mut serve).signal(), Some(15));
}

#[test]
fn unique_prefixes_of_long_flags_work_as_in_argparse() {
    let mut serve = Serve::start(&["--time", "0", "--deb", "--nosig"], &[]);
    assert_eq!(serve.read_line(), "wslink: Starting factory");
}

/// The ws:// URL from the first line.
fn ws_url(serve: &Serve) -> String {
    serve.lines[0]
        .strip_prefix("wslink server on ")
        .unwrap()
        .to_owned()
}

#[test]
fn throttle_and_trusted_proxy_flags_refuse_bad_values_by_name() {
    let year = "31536000";
    for (args, names) in [
        (&["--auth-window", "0"][..], "--auth-window"),
        (&["--auth-window", "31536001"][..], "--auth-window"),
        (&["--auth-ban", "0"][..], "--auth-ban"),
        (&["--auth-ban", "31536001"][..], "--auth-ban"),
        (&["--auth-ban", "1.5"][..], "--auth-ban"),
        (&["--auth-max-failures", "-1"][..], "-1"),
        (
            &["--auth-max-failures", "4294967296"][..],
            "--auth-max-failures",
        ),
        (&["--trusted-proxy", "localhost"][..], "--trusted-proxy"),
        (&["--trusted-proxy", "10.0.0.0/33"][..], "--trusted-proxy"),
        (&["--trusted-proxy", "127.0.0.1,::1/129"][..], "::1/129"),
    ] {
        let out = run(args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(names), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} started");
    }
    // The edges themselves are taken.
    for args in [
        &["--auth-window", "1", "--auth-ban", "1"][..],
        &["--auth-window", year, "--auth-ban", year][..],
        &["--auth-max-failures", "0"][..],
        &["--auth-max-failures", "4294967295"][..],
        &[
            "--trusted-proxy",
            "127.0.0.1,::1",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "0.0.0.0/0",
        ][..],
    ] {
        let mut serve = Serve::start(args, &[]);
        assert_eq!(serve.read_line(), "wslink: Starting factory", "{args:?}");
    }
}

#[test]
fn auth_flags_set_the_per_address_limit() {
    // Two wrong secrets ban the address for a second.
    let serve = Serve::start(
        &[
            "--conformance",
            "--secret",
            "s3",
            "--auth-max-failures",
            "2",
            "--auth-ban",
            "1",
        ],
        &[],
    );
    let url = ws_url(&serve);
    for _ in 0..2 {
        let err = String::from_utf8_lossy(&call(&url, "wrong").stderr).into_owned();
        assert!(err.contains("authentication failed"), "{err}");
    }
    let banned = Instant::now();
    let out = call(&url, "s3");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("429"));
    // The ban ends after --auth-ban.
    loop {
        let out = call(&url, "s3");
        if out.status.success() {
            break;
        }
        assert!(String::from_utf8_lossy(&out.stderr).contains("429"));
        assert!(
            banned.elapsed() < Duration::from_secs(5),
            "still banned 5 s after a 1 s ban"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(banned.elapsed() >= Duration::from_millis(500));

    // 0: no per-address limit; the same guesses ban nobody.
    let serve = Serve::start(
        &[
            "--conformance",
            "--secret",
            "s3",
            "--auth-max-failures",
            "0",
        ],
        &[],
    );
    let url = ws_url(&serve);
    for _ in 0..40 {
        assert_eq!(call(&url, "wrong").status.code(), Some(3));
    }
    assert!(call(&url, "s3").status.success());

    // The default bans at 30, as the server library does.
    let serve = Serve::start(&["--conformance", "--secret", "s3"], &[]);
    let url = ws_url(&serve);
    for i in 0..30 {
        let err = String::from_utf8_lossy(&call(&url, "wrong").stderr).into_owned();
        assert!(err.contains("authentication failed"), "try {i}: {err}");
    }
    assert!(String::from_utf8_lossy(&call(&url, "s3").stderr).contains("429"));
}
