//! The HTTP API, answer by answer, as Kitware's launcher gives them.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use wslink_launcher::ApiOptions;

const BOTH: ApiOptions = ApiOptions {
    enable_get: true,
    enable_delete: true,
};

fn stay_app() -> Value {
    json!({ "app": { "cmd": ["sh", "-c", STAY, "app", "--port", "${port}"], "ready_line": "ready" } })
}

#[tokio::test]
async fn a_session_answers_its_public_fields_and_lands_in_the_proxy_file() {
    let ports = free_ports(1);
    let t = TestLauncher::start(
        |dir| {
            let mut c = config(dir, &ports, stay_app());
            c["configuration"]["fields"] = json!(["host", "port", "extra", "file"]);
            c["sessionData"] = json!({ "extra": "x-${port}", "hidden": "not listed", "n": 3 });
            c
        },
        ApiOptions::default(),
    )
    .await;
    let answer = t
        .post(&json!({"application": "app", "sessionManagerURL": "http://x/launch/", "other": "o", "file": "f"}))
        .await;
    assert_eq!(
        answer.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = answer.json();
    let id = v["id"].as_str().unwrap().to_owned();
    let port = ports[0];
    assert_eq!(
        v,
        json!({
            "id": id,
            "host": "127.0.0.1",
            "port": port,
            "sessionURL": format!("ws://127.0.0.1:{port}/ws"),
            "sessionManagerURL": "http://x/launch/",
            "extra": format!("x-{port}"),
            "file": "f",
        }),
        "fields, id, sessionURL, sessionManagerURL; no secret (the process did not get it), no cmd"
    );
    assert_eq!(t.proxy_file(), format!("{id} 127.0.0.1:{port}\n"));
    let log = std::fs::read_to_string(t.log_dir().join(format!("{id}.txt"))).unwrap();
    assert_eq!(log, "ready\n", "the process's output is its session log");
    t.stop().await;
}

#[tokio::test]
async fn the_secret_is_returned_when_the_command_line_has_it() {
    let ports = free_ports(1);
    let t = TestLauncher::start(
        |dir| {
            config(
                dir,
                &ports,
                json!({ "app": { "cmd": ["sh", "-c", STAY, "app", "--authKey", "${secret}"], "ready_line": "ready" } }),
            )
        },
        ApiOptions::default(),
    )
    .await;
    let answer = t.post(&json!({"application": "app"})).await;
    assert_eq!(answer.status, 200);
    let secret = answer.json()["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32);
    assert_eq!(
        cmdline(t.pid(&answer)),
        ["sh", "-c", STAY, "app", "--authKey", &secret]
    );
    t.stop().await;
}

#[tokio::test]
async fn errors_are_json_with_the_status_codes_of_kitwares_launcher() {
    let ports = free_ports(1);
    let t = TestLauncher::start(|dir| config(dir, &ports, stay_app()), ApiOptions::default()).await;
    let error = |a: &Answer| a.json()["error"].as_str().unwrap().to_owned();

    let a = http(t.addr, "POST", "/launch/", "", b"{\"application\": ").await;
    assert_eq!(a.status, 400);
    assert!(
        error(&a).starts_with("The request is not a JSON object"),
        "{}",
        error(&a)
    );
    let a = http(t.addr, "POST", "/launch/", "", b"[\"app\"]").await;
    assert_eq!(
        (a.status, error(&a)),
        (400, "The request is not a JSON object: got an array".into())
    );
    let a = t.post(&json!({"app": "app"})).await;
    assert_eq!(
        (a.status, error(&a)),
        (400, "The request is not complete".into())
    );
    let a = t.post(&json!({"application": "nope"})).await;
    assert_eq!(
        (a.status, error(&a)),
        (400, "Unknown application: nope".into())
    );
    let a = t.post(&json!({"application": ["app"]})).await;
    assert_eq!(a.status, 400);

    let ok = t.post(&json!({"application": "app"})).await;
    assert_eq!(ok.status, 200);
    let a = t.post(&json!({"application": "app"})).await;
    assert_eq!(
        (a.status, error(&a)),
        (503, "All the resources are currently taken".into())
    );
    assert_eq!(
        t.launcher.sessions().list().len(),
        1,
        "a refused request leaks no session"
    );

    let a = http(t.addr, "PUT", "/launch/", "", b"{}").await;
    assert_eq!(a.status, 405);
    t.stop().await;
}

#[tokio::test]
async fn the_endpoint_answers_with_or_without_its_trailing_slash() {
    let ports = free_ports(2);
    let t = TestLauncher::start(|dir| config(dir, &ports, stay_app()), ApiOptions::default()).await;
    let body = json!({"application": "app"}).to_string();
    assert_eq!(
        http(t.addr, "POST", "/launch", "", body.as_bytes())
            .await
            .status,
        200
    );
    // npm wslink sends its JSON as text/plain.
    let a = http(
        t.addr,
        "POST",
        "/launch/",
        "Content-Type: text/plain;charset=UTF-8\r\n",
        body.as_bytes(),
    )
    .await;
    assert_eq!(a.status, 200);
    t.stop().await;
}

#[tokio::test]
async fn get_and_delete_exist_only_when_enabled() {
    let ports = free_ports(1);
    let t = TestLauncher::start(|dir| config(dir, &ports, stay_app()), ApiOptions::default()).await;
    let a = t.post(&json!({"application": "app"})).await;
    let id = a.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        http(t.addr, "GET", &format!("/launch/{id}"), "", b"")
            .await
            .status,
        404
    );
    assert_eq!(
        http(t.addr, "DELETE", &format!("/launch/{id}"), "", b"")
            .await
            .status,
        405
    );
    assert!(t.session(&id).is_some(), "still running");
    t.stop().await;

    let t = TestLauncher::start(|dir| config(dir, &ports, stay_app()), BOTH).await;
    let a = t.post(&json!({"application": "app"})).await;
    let posted = a.json();
    let id = posted["id"].as_str().unwrap().to_owned();
    let pid = t.pid(&a);

    let got = http(t.addr, "GET", &format!("/launch/{id}"), "", b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json(),
        posted,
        "the same fields as the POST (no secret in either here)"
    );
    let unknown = http(t.addr, "GET", "/launch/no-such-id", "", b"").await;
    assert_eq!(
        unknown.status, 400,
        "as Kitware's: 400 for an unknown id on GET"
    );
    assert_eq!(unknown.json()["error"], "No session with id: no-such-id");

    let deleted = http(t.addr, "DELETE", &format!("/launch/{id}"), "", b"").await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.json(),
        posted,
        "public fields only (Kitware's also returns cmd and secret)"
    );
    assert!(!alive(pid), "DELETE answers once the process is gone");
    assert!(t.session(&id).is_none());
    assert_eq!(t.proxy_file(), "");
    let again = http(t.addr, "DELETE", &format!("/launch/{id}"), "", b"").await;
    assert_eq!(
        again.status, 404,
        "as Kitware's: 404 for an unknown id on DELETE"
    );
    assert_eq!(
        t.post(&json!({"application": "app"})).await.status,
        200,
        "the port is free again"
    );
    t.stop().await;
}

#[tokio::test]
async fn static_content_is_served_and_stays_inside_its_directory() {
    let ports = free_ports(1);
    let t = TestLauncher::start(
        |dir| {
            let www = dir.join("www");
            std::fs::create_dir_all(www.join("sub")).unwrap();
            std::fs::write(www.join("index.html"), "<p>hello</p>").unwrap();
            std::fs::write(www.join("sub/app.js"), "1;").unwrap();
            std::fs::write(dir.join("private.txt"), "secret").unwrap();
            std::os::unix::fs::symlink(dir.join("private.txt"), www.join("link.txt")).unwrap();
            let mut c = config(dir, &ports, stay_app());
            c["configuration"]["content"] = json!(www);
            c
        },
        ApiOptions::default(),
    )
    .await;
    let root = http(t.addr, "GET", "/?x=1", "", b"").await;
    assert_eq!(
        (root.status, root.header("location")),
        (302, Some("index.html?x=1"))
    );
    let index = http(t.addr, "GET", "/index.html", "", b"").await;
    assert_eq!(
        (index.status, index.body.as_slice()),
        (200, b"<p>hello</p>".as_slice())
    );
    assert!(index
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let js = http(t.addr, "GET", "/sub/app.js", "", b"").await;
    assert_eq!(js.status, 200);
    for path in [
        "/../private.txt",
        "/%2e%2e/private.txt",
        "/sub/..%2f..%2fprivate.txt",
        "/link.txt",
        "/nope",
    ] {
        let a = http(t.addr, "GET", path, "", b"").await;
        assert_eq!(a.status, 404, "{path}");
        assert!(
            !String::from_utf8_lossy(&a.body).contains("secret"),
            "{path}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn requests_over_the_size_limit_are_refused_unread() {
    let ports = free_ports(1);
    let t = TestLauncher::start(
        |dir| {
            let mut c = config(dir, &ports, stay_app());
            c["configuration"]["max_request_bytes"] = json!(1024);
            c
        },
        ApiOptions::default(),
    )
    .await;
    // Declared too large: refused from the header, before any body.
    let start = std::time::Instant::now();
    let a = http(
        t.addr,
        "POST",
        "/launch/",
        "Content-Length: 1000000000000\r\n",
        b"{",
    )
    .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json()["error"], "The request is larger than 1024 bytes");
    assert!(start.elapsed() < Duration::from_secs(5));
    // Chunked, no length given: refused once past the limit.
    let big = format!(
        "{{\"application\": \"app\", \"x\": \"{}\"}}",
        "a".repeat(4000)
    );
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let a = http(
        t.addr,
        "POST",
        "/launch/",
        "Transfer-Encoding: chunked\r\n",
        chunked.as_bytes(),
    )
    .await;
    assert_eq!(a.status, 413);
    let a = http(t.addr, "POST", "/launch/", "", big.as_bytes()).await;
    assert_eq!(a.status, 413);
    assert!(t.launcher.sessions().list().is_empty());
    t.stop().await;
}
