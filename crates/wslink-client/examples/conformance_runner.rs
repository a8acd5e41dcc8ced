//! Conformance runner on the Rust client: runs every case of
//! tests/conformance/CASES.md against a server exposing the conformance
//! service (shared/conformance-service.md), with the shared runner interface:
//!
//! ```text
//! cargo run -p wslink-client --example conformance_runner -- \
//!     --url ws://127.0.0.1:PORT/ws --secret S --generation 2|1 [--cases id,id] [--timeout MS]
//! ```
//!
//! One line per case on stdout (`ok <id>`, `fail <id>: <reason>`,
//! `skip <id>: <reason>`), then `N passed, M failed, K skipped`; exit code 0
//! iff nothing failed. Every case has a time limit (20 s by default).
//!
//! Only `hello.call-before` goes around the client (the client always says
//! hello first): it sends a correctly encoded call on a plain WebSocket.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Ws;
use wslink_client::{Client, Error, Generation, Value};
use wslink_core::attachments::AttachmentKeys;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::codes;
use wslink_core::{Message, Request};

const LARGE: usize = 6 * 1024 * 1024;
const TOPIC: &str = "conformance.topic";

struct Options {
    url: String,
    secret: String,
    generation: Generation,
    cases: Option<Vec<String>>,
    timeout: Duration,
}

fn usage(problem: &str) -> ! {
    eprintln!("conformance_runner: {problem}");
    eprintln!(
        "usage: conformance_runner --url ws://HOST:PORT/ws [--secret S] [--generation 2|1] \
         [--cases id,id] [--timeout MS]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut opts = Options {
        url: String::new(),
        secret: wslink_core::protocol::DEFAULT_SECRET.to_owned(),
        generation: Generation::V2,
        cases: None,
        timeout: Duration::from_secs(20),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--url" => opts.url = value(),
            "--secret" => opts.secret = value(),
            "--generation" => {
                opts.generation = match value().as_str() {
                    "2" => Generation::V2,
                    "1" => Generation::V1,
                    other => usage(&format!("--generation must be 2 or 1, not {other:?}")),
                }
            }
            "--cases" => {
                opts.cases = Some(
                    value()
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "--timeout" => {
                let ms: u64 = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--timeout takes milliseconds"));
                opts.timeout = Duration::from_millis(ms);
            }
            "-h" | "--help" => usage("help requested"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if opts.url.is_empty() {
        usage("--url is required");
    }
    opts
}

/// What a case gets: how to connect.
struct Ctx {
    url: String,
    secret: String,
    generation: Generation,
}

impl Ctx {
    async fn connect(&self) -> Result<Client, String> {
        self.connect_with(&self.secret)
            .await
            .map_err(|e| e.to_string())
    }

    async fn connect_with(&self, secret: &str) -> Result<Client, Error> {
        Client::builder(&self.url)
            .secret(secret)
            .generation(self.generation)
            .subscription_buffer(1024)
            .connect()
            .await
    }
}

type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;
type CaseFn = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

macro_rules! case {
    ($id:literal, $f:expr) => {
        ($id, (|ctx| Box::pin($f(ctx))) as CaseFn)
    };
}

fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        case!("hello.ok", hello_ok),
        case!("hello.wrong-secret", hello_wrong_secret),
        case!("hello.call-before", hello_call_before),
        case!("echo.null", |ctx| echo(ctx, Value::Nil)),
        case!("echo.bool", |ctx| echo(
            ctx,
            arr([Value::from(true), Value::from(false)])
        )),
        case!("echo.string", echo_string),
        case!("echo.unicode", |ctx| echo(
            ctx,
            Value::from("a\u{0}b \u{2603} \u{1F600} \u{65E5}\u{672C}\u{8A9E} e\u{301}")
        )),
        case!("echo.int-safe", |ctx| echo(ctx, int_safe())),
        case!("echo.int64", |ctx| echo(ctx, int64())),
        case!("echo.float", |ctx| echo(
            ctx,
            arr([0.5, -1.25, 1e300, -2.5e-300, std::f64::consts::PI].map(Value::from))
        )),
        case!("echo.nested", |ctx| echo(ctx, nested())),
        case!("echo.binary-empty", |ctx| echo(ctx, bin(0, 0))),
        case!("echo.binary-small", |ctx| echo(ctx, bin(1024, 5))),
        case!("echo.binary-nested", |ctx| echo(
            ctx,
            Value::map([
                ("x", arr([bin(10, 1), Value::map([("y", bin(20, 2))])])),
                ("z", bin(30, 3)),
            ])
        )),
        case!("echo.binary-large", |ctx| echo(ctx, bin(LARGE, 9))),
        case!("add.ints", |ctx| expect_call(
            ctx,
            "conformance.add",
            vec![Value::from(2), Value::from(3)],
            Value::from(5)
        )),
        case!("add.floats", |ctx| expect_call(
            ctx,
            "conformance.add",
            vec![Value::from(0.5), Value::from(0.25)],
            Value::from(0.75)
        )),
        case!("kwargs.mixed", kwargs_mixed),
        case!("blob.empty", |ctx| blob(ctx, 0, None)),
        case!("blob.small", |ctx| blob(ctx, 1000, Some(7))),
        case!("blob.large", |ctx| blob(ctx, LARGE, Some(3))),
        case!("digest.small", |ctx| digest(ctx, 1000, 4)),
        case!("digest.large", |ctx| digest(ctx, LARGE, 8)),
        case!("error.exception", error_exception),
        case!("error.unknown-method", error_unknown_method),
        case!("publish.order", publish_order),
        case!("sleep.concurrent", sleep_concurrent),
    ]
}

// --------------------------------------------------------------------------
// Values

fn pattern(size: usize, seed: u64) -> Bytes {
    (0..size as u64)
        .map(|i| ((i * 31 + seed) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn bin(size: usize, seed: u64) -> Value {
    Value::Bin(pattern(size, seed))
}

fn arr<const N: usize>(items: [Value; N]) -> Value {
    Value::Array(items.into())
}

fn int_safe() -> Value {
    let ints: [i64; 13] = [
        0,
        1,
        -1,
        127,
        128,
        -33,
        255,
        65535,
        2147483647,
        -2147483648,
        4294967295,
        9007199254740991,
        -9007199254740991,
    ];
    ints.into_iter().map(Value::from).collect()
}

fn int64() -> Value {
    arr([
        Value::from(9007199254740993i64),
        Value::from(-9007199254740993i64),
        Value::from(i64::MAX),
        Value::from(i64::MIN),
        Value::from(u64::MAX),
    ])
}

fn nested() -> Value {
    Value::map([
        (
            "a",
            arr([
                Value::from(1),
                Value::map([("b", arr([Value::from(true), Value::Nil, Value::from("x")]))]),
            ]),
        ),
        (
            "c",
            Value::map([(
                "d",
                Value::map([("e", Value::map([("f", arr([arr([]), Value::Map(vec![])]))]))]),
            )]),
        ),
    ])
}

/// A short description of a value for failure reasons.
fn describe(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 160 {
        let mut end = 160;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// The first difference between `want` and `got` (maps compared by key,
/// whatever their order), or `None`.
fn difference(want: &Value, got: &Value, path: &str) -> Option<String> {
    match (want, got) {
        (Value::Map(w), Value::Map(g)) => {
            if w.len() != g.len() {
                return Some(format!(
                    "{path}: expected a map of {} entries, got {}",
                    w.len(),
                    describe(got)
                ));
            }
            for (k, wv) in w {
                let name = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                match g.iter().find(|(gk, _)| gk == k) {
                    None => return Some(format!("{path}: key {name:?} missing")),
                    Some((_, gv)) => {
                        if let Some(d) = difference(wv, gv, &format!("{path}.{name}")) {
                            return Some(d);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                return Some(format!(
                    "{path}: expected {} elements, got {}",
                    w.len(),
                    g.len()
                ));
            }
            w.iter()
                .zip(g)
                .enumerate()
                .find_map(|(i, (wv, gv))| difference(wv, gv, &format!("{path}[{i}]")))
        }
        (Value::Bin(w), Value::Bin(g)) => {
            if w.len() != g.len() {
                return Some(format!(
                    "{path}: expected {} bytes, got {}",
                    w.len(),
                    g.len()
                ));
            }
            w.iter()
                .zip(g.iter())
                .position(|(a, b)| a != b)
                .map(|i| format!("{path}: bytes differ at offset {i}"))
        }
        (w, g) if w == g => None,
        (w, g) => Some(format!(
            "{path}: expected {}, got {}",
            describe(w),
            describe(g)
        )),
    }
}

fn check(want: &Value, got: &Value) -> Result<(), String> {
    match difference(want, got, "result") {
        None => Ok(()),
        Some(d) => Err(d),
    }
}

// --------------------------------------------------------------------------
// Cases

async fn hello_ok(ctx: &Ctx) -> Result<(), String> {
    let c = ctx.connect().await?;
    let id = c.client_id().to_owned();
    c.close().await;
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!("client id {id:?} does not match ^\\w+$"))
    }
}

async fn hello_wrong_secret(ctx: &Ctx) -> Result<(), String> {
    match ctx.connect_with(&format!("{}-but-wrong", ctx.secret)).await {
        Ok(c) => {
            c.close().await;
            Err("hello with a wrong secret succeeded".into())
        }
        Err(Error::Auth { code, .. }) if code == codes::AUTHENTICATION_ERROR => Ok(()),
        Err(e) => Err(format!("expected error -32000, got: {e}")),
    }
}

/// A correct call sent before any hello, on a plain WebSocket.
async fn hello_call_before(ctx: &Ctx) -> Result<(), String> {
    let id = "rpc:c0:0";
    let call = Message::Request(Request {
        id: id.into(),
        method: "conformance.add".into(),
        args: vec![Value::from(2), Value::from(3)],
        kwargs: vec![],
    });
    let frames = match ctx.generation {
        Generation::V2 => v2::encode_frames(&call, 512 * 1024),
        Generation::V1 => v1::encode(&call, &AttachmentKeys::new()),
    }
    .map_err(|e| e.to_string())?;
    let (mut ws, _) = tokio_tungstenite::connect_async(ctx.url.as_str())
        .await
        .map_err(|e| format!("could not open the WebSocket: {e}"))?;
    for f in frames {
        let m = match f {
            Frame::Binary(b) => Ws::Binary(b),
            Frame::Text(t) => Ws::Text(String::from_utf8_lossy(&t).into_owned().into()),
        };
        ws.send(m).await.map_err(|e| format!("send failed: {e}"))?;
    }
    let mut d2 = v2::Decoder::new(Default::default());
    d2.set_authenticated(true);
    let mut d1 = v1::Decoder::new(Default::default());
    let mut replies = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            None => ws.next().await,
            Some(d) => match tokio::time::timeout_at(d, ws.next()).await {
                Ok(n) => n,
                Err(_) => break,
            },
        };
        let decoded = match next {
            None | Some(Ok(Ws::Close(_))) => {
                if replies.is_empty() {
                    return Err("connection closed without a reply".into());
                }
                break;
            }
            Some(Err(e)) => return Err(format!("connection failed: {e}")),
            Some(Ok(Ws::Binary(b))) => match ctx.generation {
                Generation::V2 => d2.push(b),
                Generation::V1 => d1.push_binary(b).map(|()| None),
            },
            Some(Ok(Ws::Text(t))) => d1.push_text(t.as_str()),
            Some(Ok(_)) => continue,
        }
        .map_err(|e| format!("undecodable reply: {e}"))?;
        if let Some(m) = decoded {
            if m.id() == Some(id) {
                replies.push(m);
                // Give a (wrong) second reply time to arrive as well.
                deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + Duration::from_millis(300)
                });
            }
        }
    }
    let _ = ws.close(None).await;
    if replies.len() != 1 {
        return Err(format!(
            "expected one reply, got {}: {replies:?}",
            replies.len()
        ));
    }
    match &replies[0] {
        Message::Error { error, .. } if error.code == codes::AUTHENTICATION_ERROR => Ok(()),
        Message::Error { error, .. } => Err(format!(
            "expected error -32000, got {} ({})",
            error.code, error.message
        )),
        other => Err(format!("got a result: {other:?}")),
    }
}

async fn call(c: &Client, method: &str, args: Vec<Value>) -> Result<Value, String> {
    c.call(method, args, vec![])
        .await
        .map_err(|e| e.to_string())
}

async fn expect_call(ctx: &Ctx, method: &str, args: Vec<Value>, want: Value) -> Result<(), String> {
    let c = ctx.connect().await?;
    let got = call(&c, method, args).await;
    c.close().await;
    check(&want, &got?)
}

async fn echo(ctx: &Ctx, value: Value) -> Result<(), String> {
    expect_call(ctx, "conformance.echo", vec![value.clone()], value).await
}

async fn echo_string(ctx: &Ctx) -> Result<(), String> {
    echo(ctx, Value::from("hello")).await?;
    echo(ctx, Value::from("")).await
}

async fn kwargs_mixed(ctx: &Ctx) -> Result<(), String> {
    let c = ctx.connect().await?;
    let kwargs = vec![
        (Value::from("x"), Value::from(1)),
        (Value::from("y"), arr([Value::from(true)])),
    ];
    let got = c
        .call(
            "conformance.kwargs",
            vec![Value::from(1), Value::from("a")],
            kwargs.clone(),
        )
        .await
        .map_err(|e| e.to_string());
    c.close().await;
    let want = Value::map([
        ("args", arr([Value::from(1), Value::from("a")])),
        ("kwargs", Value::Map(kwargs)),
    ]);
    check(&want, &got?)
}

async fn blob(ctx: &Ctx, size: usize, seed: Option<u64>) -> Result<(), String> {
    let mut args = vec![Value::from(size)];
    args.extend(seed.map(Value::from));
    let want = Value::map([
        ("size", Value::from(size)),
        ("blob", bin(size, seed.unwrap_or(0))),
    ]);
    expect_call(ctx, "conformance.blob", args, want).await
}

async fn digest(ctx: &Ctx, size: usize, seed: u64) -> Result<(), String> {
    let data = pattern(size, seed);
    let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
    let want = Value::map([("len", Value::from(size)), ("sum", Value::from(sum))]);
    expect_call(ctx, "conformance.digest", vec![Value::Bin(data)], want).await
}

async fn expect_error(c: &Client, method: &str, args: Vec<Value>) -> Result<Error, String> {
    match c.call(method, args, vec![]).await {
        Ok(v) => Err(format!(
            "expected an error reply, got result {}",
            describe(&v)
        )),
        Err(e @ Error::Rpc { .. }) => Ok(e),
        Err(e) => Err(format!("expected an error reply, got: {e}")),
    }
}

async fn error_exception(ctx: &Ctx) -> Result<(), String> {
    let c = ctx.connect().await?;
    let err = expect_error(&c, "conformance.fail", vec![Value::from("boom-42")]).await;
    c.close().await;
    let err = err?;
    let Error::Rpc { code, message, .. } = &err else {
        unreachable!()
    };
    if *code != codes::EXCEPTION_ERROR {
        return Err(format!("expected code -32001, got {code} ({message})"));
    }
    if message != "Exception raised" {
        return Err(format!(
            "expected message \"Exception raised\", got {message:?}"
        ));
    }
    match err.exception() {
        Some(text) if text.contains("boom-42") => Ok(()),
        other => Err(format!("data.exception {other:?} does not contain boom-42")),
    }
}

async fn error_unknown_method(ctx: &Ctx) -> Result<(), String> {
    let c = ctx.connect().await?;
    let err = expect_error(&c, "conformance.nope", vec![]).await;
    c.close().await;
    match err?.code() {
        Some(codes::METHOD_NOT_FOUND) => Ok(()),
        other => Err(format!("expected code -32601, got {other:?}")),
    }
}

async fn publish_order(ctx: &Ctx) -> Result<(), String> {
    const COUNT: usize = 20;
    const SIZE: usize = 1024;
    let a = ctx.connect().await?;
    let b = ctx.connect().await?;
    let mut subs = [
        a.subscribe(TOPIC).map_err(|e| e.to_string())?,
        b.subscribe(TOPIC).map_err(|e| e.to_string())?,
    ];
    let count = call(
        &a,
        "conformance.publish",
        vec![Value::from(TOPIC), Value::from(COUNT), Value::from(SIZE)],
    )
    .await?;
    if count.as_u64() != Some(COUNT as u64) {
        return Err(format!(
            "publish returned {}, expected {COUNT}",
            describe(&count)
        ));
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < COUNT {
            match sub.recv().await {
                Some(v) => got.push(v),
                None => {
                    return Err(format!(
                        "connection {} closed after {} messages",
                        n + 1,
                        got.len()
                    ))
                }
            }
        }
        // Let extra messages show up.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if sub.queued() > 0 || sub.dropped() > 0 {
            return Err(format!(
                "connection {} got {} messages, expected {COUNT}",
                n + 1,
                COUNT + sub.queued() + sub.dropped() as usize
            ));
        }
        for (i, m) in got.iter().enumerate() {
            let want = Value::map([("seq", Value::from(i)), ("blob", bin(SIZE, i as u64))]);
            if let Some(d) = difference(&want, m, &format!("message {i}")) {
                let seqs: Vec<String> = got
                    .iter()
                    .map(|m| m.get("seq").map_or("?".into(), |s| format!("{s:?}")))
                    .collect();
                return Err(format!(
                    "connection {}: seq order [{}] ({d})",
                    n + 1,
                    seqs.join(",")
                ));
            }
        }
    }
    drop(subs);
    a.close().await;
    b.close().await;
    Ok(())
}

async fn sleep_concurrent(ctx: &Ctx) -> Result<(), String> {
    let c = ctx.connect().await?;
    let start = Instant::now();
    let calls = (0..4).map(|_| call(&c, "conformance.sleep", vec![Value::from(400)]));
    let results = futures_util::future::join_all(calls).await;
    let elapsed = start.elapsed().as_millis();
    c.close().await;
    let got: Vec<Value> = results.into_iter().collect::<Result<_, _>>()?;
    check(
        &arr([400, 400, 400, 400].map(Value::from)),
        &Value::Array(got),
    )?;
    if elapsed >= 1200 {
        return Err(format!(
            "four concurrent sleep(400) calls took {elapsed} ms (>= 1200 ms: they did not overlap)"
        ));
    }
    Ok(())
}

// --------------------------------------------------------------------------

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = parse_args();
    let all = cases();
    if let Some(wanted) = &opts.cases {
        for id in wanted {
            if !all.iter().any(|(c, _)| c == id) {
                usage(&format!("unknown case {id}"));
            }
        }
    }
    let ctx = Ctx {
        url: opts.url.clone(),
        secret: opts.secret.clone(),
        generation: opts.generation,
    };
    let (mut passed, mut failed, skipped) = (0, 0, 0);
    for (id, run) in all {
        if opts
            .cases
            .as_ref()
            .is_some_and(|w| !w.iter().any(|c| c == id))
        {
            continue;
        }
        let started = Instant::now();
        let outcome = match tokio::time::timeout(opts.timeout, run(&ctx)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} ms", opts.timeout.as_millis())),
        };
        eprintln!("{id}: {} ms", started.elapsed().as_millis());
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("ok {id}");
            }
            Err(reason) => {
                failed += 1;
                println!("fail {id}: {}", one_line(&reason));
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
