//! The built `wslink` binary against Kitware's Python wslink servers (2.6.0,
//! and 1.12.4 for `--legacy`) running the conformance service.
//!
//! Needs the reference peers: `bash tests/peers/install.sh` (or `WSLINK_PY2`
//! / `WSLINK_PY1`). Without them these tests fail and say so.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::peers::{server, SECRET};
use wslink_core::Generation;

fn wslink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wslink"))
        .args(args)
        .output()
        .expect("running wslink")
}

/// `wslink call URL METHOD ARGS... --secret SECRET` on the 2.x peer.
fn call(args: &[&str]) -> Output {
    let url = &server(Generation::V2).url;
    let mut all = vec!["call", url.as_str()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--secret", SECRET]);
    wslink(&all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn pattern(size: usize, seed: u64) -> Vec<u8> {
    (0..size as u64)
        .map(|i| ((i * 31 + seed) % 251) as u8)
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_call_prints_its_result_as_json() {
    let out = call(&["conformance.add", "2", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "5\n");

    let out = call(&[
        "conformance.kwargs",
        "1",
        "\"a\"",
        "--kwargs",
        r#"{"x": [true, null]}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"args\":[1,\"a\"],\"kwargs\":{\"x\":[true,null]}}\n"
    );
}

#[test]
fn integers_print_exactly_and_negative_numbers_are_arguments() {
    let out = call(&[
        "conformance.echo",
        "[9007199254740993, -9223372036854775808, 18446744073709551615]",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[9007199254740993,-9223372036854775808,18446744073709551615]\n"
    );
    let out = call(&["conformance.add", "-1", "-2.5"]);
    assert_eq!(stdout(&out), "-3.5\n", "{}", stderr(&out));
}

#[test]
fn binary_results_print_their_length_and_sha256() {
    let out = call(&["conformance.blob", "1000", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = sha256_hex(&pattern(1000, 7));
    assert_eq!(
        stdout(&out),
        format!("{{\"size\":1000,\"blob\":{{\"$binary\":{{\"len\":1000,\"sha256\":\"{expected}\"}}}}}}\n")
    );
}

#[test]
fn save_binary_writes_files_and_names_them() {
    let dir = std::env::temp_dir().join(format!("wslink-cli-save-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = call(&[
        "conformance.blob",
        "5000",
        "2",
        "--save-binary",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let bin = &printed["blob"]["$binary"];
    let file = PathBuf::from(bin["file"].as_str().unwrap());
    let data = std::fs::read(&file).unwrap();
    assert_eq!(data, pattern(5000, 2));
    assert_eq!(bin["len"], 5000);
    assert_eq!(bin["sha256"], sha256_hex(&data));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_method_is_named_and_exits_1() {
    let out = call(&["conformance.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("method not found: conformance.nope"), "{err}");
}

#[test]
fn an_exception_shows_the_servers_text_and_exits_1() {
    let out = call(&["conformance.fail", "\"boom-42\""]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("conformance.fail raised an exception on the server")
            && err.contains("boom-42"),
        "{err}"
    );
}

#[test]
fn a_refused_connection_names_the_url_and_exits_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let out = wslink(&["call", &url, "conformance.add", "1", "2"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot connect to {url}: connection refused")),
        "{err}"
    );
}

#[test]
fn a_wrong_secret_says_authentication_failed_and_exits_3() {
    let url = &server(Generation::V2).url;
    let out = wslink(&["call", url, "conformance.add", "1", "2", "--secret", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("authentication failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_argument_that_is_not_json_is_a_usage_error() {
    let out = call(&["conformance.echo", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("not valid JSON") && err.contains(r#"'"hello"'"#),
        "{err}"
    );
}

#[test]
fn a_timeout_exits_4() {
    let out = call(&["conformance.sleep", "3000", "--timeout", "0.3"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
}

#[test]
fn legacy_speaks_wslink_1() {
    let url = &server(Generation::V1).url;
    let out = wslink(&[
        "call",
        url,
        "conformance.blob",
        "300",
        "1",
        "--legacy",
        "--secret",
        SECRET,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        printed["blob"]["$binary"]["sha256"],
        sha256_hex(&pattern(300, 1))
    );
}

#[test]
fn subscribe_prints_count_messages_then_exits() {
    let url = server(Generation::V2).url.clone();
    let topic = "cli.test.topic";
    let mut sub = Command::new(env!("CARGO_BIN_EXE_wslink"))
        .args(["subscribe", &url, topic, "--count", "3", "--secret", SECRET])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Publish until the subscriber, once connected, has seen its three.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = sub.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "subscribe did not finish");
        let out = call(&["conformance.publish", &format!("\"{topic}\""), "1", "4"]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = sub.wait_with_output().unwrap();
    assert!(status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let blob = sha256_hex(&pattern(4, 0));
    for line in lines {
        assert_eq!(
            line,
            format!("{{\"seq\":0,\"blob\":{{\"$binary\":{{\"len\":4,\"sha256\":\"{blob}\"}}}}}}")
        );
    }
}

/// `wslink serve --conformance` on a free port; killed on drop.
struct OurServer {
    child: std::process::Child,
    url: String,
}

impl Drop for OurServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_conformance(extra: &[&str]) -> OurServer {
    let mut args = vec!["--secret", SECRET];
    args.extend_from_slice(extra);
    serve_with(&args, &[])
}

/// `wslink serve --conformance` on a free port with these extra arguments
/// and environment variables (no secret unless they give one).
fn serve_with(extra: &[&str], env: &[(&str, &str)]) -> OurServer {
    use std::io::BufRead;
    let mut args = vec![
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--conformance",
        "--timeout",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wslink"))
        .args(&args)
        .env_remove("WSLINK_AUTH_KEY")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting wslink serve");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("wslink server on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .to_string();
    OurServer { child, url }
}

#[test]
fn serve_conformance_answers_calls() {
    let server = serve_conformance(&[]);
    let out = wslink(&[
        "call",
        &server.url,
        "conformance.add",
        "2",
        "40",
        "--secret",
        SECRET,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "42");
}

#[test]
fn serve_refuses_a_content_path_that_is_not_a_directory() {
    let out = wslink(&["serve", "--port", "0", "--content", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

#[test]
fn serve_says_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = wslink(&["serve", "--host", "127.0.0.1", "--port", &port]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.starts_with("wslink: cannot listen on 127.0.0.1:") && err.contains(&port),
        "{err}"
    );
}

/// The same `wslink call` command lines print the same output against
/// Kitware's Python 2.6.0 server and ours.
#[test]
fn call_prints_the_same_against_python_and_ours() {
    let ours = serve_conformance(&[]);
    let python = &server(Generation::V2).url;
    let cases: &[&[&str]] = &[
        &[
            "conformance.echo",
            r#"{"a":[1,2.5,null,true],"b":"\u0000é😀"}"#,
        ],
        &["conformance.add", "9007199254740993", "1"],
        &["conformance.echo", "-9223372036854775808"],
        &["conformance.echo", "18446744073709551615"],
        &["conformance.kwargs", "--kwargs", r#"{"x":1,"y":"two"}"#],
        &["conformance.blob", "1000", "3"],
        &["conformance.blob", "70000", "1"],
        &["conformance.sleep", "5"],
        &["conformance.fail", "boom"],
        &["conformance.no_such_method"],
    ];
    let mut compared = 0;
    for case in cases {
        let run = |url: &str| {
            let mut args = vec!["call", url];
            args.extend_from_slice(case);
            args.extend_from_slice(&["--secret", SECRET]);
            let out = wslink(&args);
            (out.status.code(), stdout(&out))
        };
        let theirs = run(python);
        let mine = run(&ours.url);
        assert_eq!(mine, theirs, "wslink call {case:?} differs (ours, python)");
        compared += 1;
    }
    assert_eq!(compared, cases.len());
}

#[test]
fn help_documents_the_exit_codes() {
    let out = wslink(&["call", "--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for needle in [
        "Exit codes:",
        "1  the server answered",
        "3  cannot connect",
        "4  timed out",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// Whether `secret` opens `url`: `Some(true)` on a result, `Some(false)`
/// on an authentication failure.
fn opens(url: &str, secret: &str) -> bool {
    let out = wslink(&["call", url, "conformance.add", "1", "1", "--secret", secret]);
    match out.status.code() {
        Some(0) => true,
        Some(3) if stderr(&out).contains("authentication failed") => false,
        other => panic!("unexpected exit {other:?}: {}", stderr(&out)),
    }
}

#[test]
fn serve_takes_its_secret_from_a_file_the_environment_or_authkey() {
    let dir = std::env::temp_dir().join(format!("wslink-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "from-the-file\nignored second line\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = file.to_str().unwrap();

    let server = serve_with(
        &["--authKey-file", path],
        &[("WSLINK_AUTH_KEY", "from-env")],
    );
    assert!(opens(&server.url, "from-the-file"));
    assert!(
        !opens(&server.url, "from-env"),
        "the file wins over the environment"
    );
    assert!(!opens(&server.url, SECRET));
    drop(server);

    let server = serve_with(&[], &[("WSLINK_AUTH_KEY", "from-env")]);
    assert!(opens(&server.url, "from-env"));
    assert!(!opens(&server.url, SECRET));
    drop(server);

    // Python's spelling of the flag.
    let server = serve_with(&["--authKey", "pythonic"], &[]);
    assert!(opens(&server.url, "pythonic"));
    drop(server);

    // Nothing given: wslink's default.
    let server = serve_with(&[], &[]);
    assert!(opens(&server.url, "wslink-secret"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_names_a_secret_file_it_cannot_use() {
    let missing = wslink(&["serve", "--port", "0", "--authKey-file", "/no/such/secret"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("--authKey-file /no/such/secret"),
        "{}",
        stderr(&missing)
    );

    let dir = std::env::temp_dir().join(format!("wslink-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let out = wslink(&[
        "serve",
        "--port",
        "0",
        "--authKey-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the first line is empty"),
        "{}",
        stderr(&out)
    );

    let both = wslink(&[
        "serve",
        "--secret",
        "a",
        "--authKey-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "a secret twice is a usage error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_warns_or_refuses_the_default_secret_beyond_loopback() {
    let refused = wslink(&[
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--refuse-default-secret",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("with the default secret"),
        "{}",
        stderr(&refused)
    );

    // Without the flag it starts, and says why that is risky (it stops
    // itself after a second without clients).
    let warned = wslink(&[
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--timeout",
        "1",
    ]);
    assert!(warned.status.success(), "{}", stderr(&warned));
    let err = stderr(&warned);
    assert!(
        err.contains("default secret") && err.contains("--authKey-file"),
        "{err}"
    );

    // Loopback with the default secret: no warning.
    let quiet = wslink(&[
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--timeout",
        "1",
    ]);
    assert!(
        !stderr(&quiet).contains("default secret"),
        "{}",
        stderr(&quiet)
    );
}

#[test]
fn serve_never_logs_the_secret() {
    let dir = std::env::temp_dir().join(format!("wslink-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "do-not-print-me\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wslink"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--conformance",
            "--timeout",
            "2",
        ])
        .args(["--authKey-file", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let url = first
        .trim()
        .strip_prefix("wslink server on ")
        .unwrap()
        .to_owned();
    assert!(opens(&url, "do-not-print-me"));
    assert!(!opens(&url, "a-wrong-guess"));
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("hello refused"),
        "the failure is logged: {log}"
    );
    assert!(
        !log.contains("do-not-print-me") && !log.contains("a-wrong-guess"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_checks_allowed_origins() {
    let out = wslink(&["serve", "--port", "0", "--allowed-origins", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid origin \"ftp://x\""),
        "{}",
        stderr(&out)
    );
}
