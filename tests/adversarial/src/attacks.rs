//! The attacks. Each runs against the live server while the healthy clients
//! keep calling, and returns how the server answered (`Ok`) or what it did
//! wrong (`Err`). The runner adds the memory and healthy-client checks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as Ws;
use wslink_client::Client;
use wslink_core::codec::v2;
use wslink_core::{msgpack, Generation, Message, Value};

use crate::healthy::INTRUSION_TOPIC;
use crate::raw::{chunk, expect_close, expect_error, is_publish, result, Ending, Raw, SECRET};
use crate::server::{RssSampler, ServerProcess};

const WAIT: Duration = Duration::from_secs(10);
const MIB: usize = 1024 * 1024;

/// What every attack may use.
pub struct Ctx {
    pub url: String,
    pub server: Arc<ServerProcess>,
    pub rss: Arc<RssSampler>,
    /// The server's `hello_deadline`, as started by the runner.
    pub hello_deadline: Duration,
    /// The server's `max_connections`, as started by the runner.
    pub max_connections: usize,
    /// Its `max_pending_connections` and `http_header_timeout`.
    pub max_pending_connections: usize,
    pub http_header_timeout: Duration,
}

/// One attack: its name, what it does, the server memory growth it may
/// cause (MiB over the RSS when it starts) and how long it may take.
pub struct Attack {
    pub name: &'static str,
    pub growth_bound_mib: f64,
    pub time_limit: Duration,
}

macro_rules! attacks {
    ($($name:literal => $f:ident, $bound:expr, $secs:expr;)*) => {
        pub const ALL: &[Attack] = &[
            $(Attack { name: $name, growth_bound_mib: $bound, time_limit: Duration::from_secs($secs) },)*
        ];

        pub async fn run(name: &str, ctx: &Ctx) -> Result<String, String> {
            match name {
                $($name => $f(ctx).await,)*
                other => Err(format!("no attack named {other}")),
            }
        }
    };
}

attacks! {
    // Malformed messages, both generations.
    "v2.msgpack.invalid-byte" => msgpack_invalid_byte, 16.0, 30;
    "v2.msgpack.truncated" => msgpack_truncated, 16.0, 30;
    "v2.msgpack.trailing-bytes" => msgpack_trailing, 16.0, 30;
    "v2.msgpack.not-a-map" => msgpack_not_a_map, 16.0, 30;
    "v2.args-not-an-array" => v2_args_not_array, 16.0, 30;
    "v2.nesting-100000.after-hello" => v2_deep_after_hello, 16.0, 30;
    "v2.nesting-100000.before-hello" => v2_deep_before_hello, 16.0, 30;
    "v1.json.malformed" => json_malformed, 16.0, 30;
    "v1.json.not-an-object" => json_not_object, 16.0, 30;
    "v1.nesting-100000.after-hello" => v1_deep_after_hello, 16.0, 30;
    "v1.nesting-100000.before-hello" => v1_deep_before_hello, 16.0, 30;
    // Chunk headers that lie.
    "v2.chunk.total-4GiB.before-hello" => total_4gib_before_hello, 16.0, 30;
    "v2.chunk.total-4GiB.after-hello" => total_4gib_after_hello, 16.0, 30;
    "v2.chunk.total-128MiB.x200-connections" => declared_totals_many, 48.0, 60;
    "v2.chunk.offset-past-end" => offset_past_end, 16.0, 30;
    "v2.chunk.overlapping" => overlapping, 16.0, 30;
    "v2.chunk.duplicate" => duplicate, 16.0, 30;
    "v2.chunk.100000-pending-ids" => pending_ids, 16.0, 60;
    "v2.chunk.never-completes" => never_completes, 16.0, 30;
    "v2.chunk.pending-bytes-flood" => pending_bytes_flood, 176.0, 60;
    // Frames of the wrong kind, attachments that do not pair.
    "v2.text-frame" => text_on_v2, 16.0, 30;
    "v1.binary-garbage" => v1_binary_garbage, 16.0, 30;
    "v1.binary-before-hello" => v1_binary_before_hello, 16.0, 30;
    "v1.header-without-binary" => v1_header_without_binary, 16.0, 30;
    "v1.unannounced-key" => v1_unannounced_key, 16.0, 30;
    "v1.unclaimed-attachments-flood" => v1_attachment_flood, 176.0, 60;
    // Before hello.
    "before-hello.calls.v2" => pre_hello_calls_v2, 16.0, 30;
    "before-hello.calls.v1" => pre_hello_calls_v1, 16.0, 30;
    "before-hello.publish-call" => pre_hello_publish_call, 16.0, 30;
    "before-hello.publish-messages" => pre_hello_publish_messages, 16.0, 30;
    "before-hello.16MiB-binary-frame" => pre_hello_huge_binary, 8.0, 30;
    "before-hello.128MiB-frame-header" => pre_hello_frame_header, 8.0, 30;
    "before-hello.16MiB-text-frame" => pre_hello_huge_text, 8.0, 30;
    "before-hello.wrong-secrets" => wrong_secrets, 16.0, 60;
    "before-hello.guessing-from-one-address" => guessing_from_one_address, 16.0, 60;
    "before-hello.silent-connections" => silent_connections, 24.0, 60;
    "connections.over-the-limit" => connection_limit, 48.0, 60;
    "before-upgrade.silent-sockets" => silent_sockets, 24.0, 60;
    // Floods.
    "flood.100000-calls" => flood_calls, 48.0, 180;
    "flood.calls-never-read" => calls_never_read, 160.0, 90;
    "flood.1000-connections" => connection_churn, 32.0, 120;
    // Faults.
    "fault.reset-mid-chunked-message" => reset_mid_message, 32.0, 30;
    "fault.reset-mid-reply" => reset_mid_reply, 112.0, 30;
    "fault.slow-reader.large-replies-and-publishes" => slow_download, 128.0, 60;
    "fault.stalled-reader.1MiB-at-60fps-10s" => stalled_reader, 112.0, 60;
}

async fn v2(ctx: &Ctx) -> Result<Raw, String> {
    Raw::authenticated(&ctx.url, Generation::V2).await
}

async fn v1(ctx: &Ctx) -> Result<Raw, String> {
    Raw::authenticated(&ctx.url, Generation::V1).await
}

fn encode(value: &Value) -> Vec<u8> {
    msgpack::encode(value).expect("encodable").to_vec()
}

fn whole(body: &[u8]) -> Bytes {
    chunk(0x5eed, 0, body.len() as u32, body)
}

/// A call whose single argument is nested `depth` arrays deep, as msgpack.
fn deep_msgpack_call(depth: usize) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, text: &str) {
        out.push(0xa0 | text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }
    let mut out = vec![0x84];
    s(&mut out, "id");
    s(&mut out, "rpc:c0:1");
    s(&mut out, "method");
    s(&mut out, "conformance.echo");
    s(&mut out, "args");
    out.push(0x91);
    out.extend(std::iter::repeat_n(0x91, depth));
    out.push(0xc0);
    s(&mut out, "kwargs");
    out.push(0x80);
    out
}

/// The same as JSON text.
fn deep_json_call(depth: usize) -> String {
    format!(
        r#"{{"wslink":"1.0","id":"rpc:c0:1","method":"conformance.echo","args":[{}{}],"kwargs":{{}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// Checks that the connection still answers correctly.
async fn still_answers(raw: &mut Raw) -> Result<(), String> {
    let m = raw
        .call("conformance.add", vec![Value::from(20), Value::from(22)])
        .await?;
    match result(m)?.as_u64() {
        Some(42) => Ok(()),
        other => Err(format!("add(20, 22) returned {other:?}")),
    }
}

// ---------------------------------------------------------------- malformed

async fn msgpack_invalid_byte(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_binary(whole(&[0xc1])).await?;
    expect_close(&a.ending(WAIT).await, 1008, "invalid msgpack")
}

async fn msgpack_truncated(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    let req = a.request("conformance.add", vec![Value::from(1), Value::from(2)]);
    let body = encode(&req.to_value());
    a.send_binary(whole(&body[..body.len() - 4])).await?;
    expect_close(&a.ending(WAIT).await, 1008, "truncated")
}

async fn msgpack_trailing(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    let req = a.request("conformance.add", vec![Value::from(1), Value::from(2)]);
    let mut body = encode(&req.to_value());
    body.extend_from_slice(&[0, 0, 0]);
    a.send_binary(whole(&body)).await?;
    expect_close(&a.ending(WAIT).await, 1008, "trailing bytes")
}

async fn msgpack_not_a_map(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    let body = encode(&Value::from(vec![
        Value::from(1),
        Value::from(2),
        Value::from(3),
    ]));
    a.send_binary(whole(&body)).await?;
    expect_close(&a.ending(WAIT).await, 1008, "must be a map")
}

async fn v2_args_not_array(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    let body = encode(&Value::map([
        ("wslink", Value::from("1.0")),
        ("id", Value::from("rpc:c0:77")),
        ("method", Value::from("conformance.add")),
        ("args", Value::map([("a", Value::from(1))])),
    ]));
    a.send_binary(whole(&body)).await?;
    let reply = a
        .recv_reply(WAIT)
        .await
        .map_err(|e| format!("no reply: {e}"))?;
    let outcome = expect_error(&reply, -32001, "args")?;
    still_answers(&mut a).await?;
    Ok(format!("{outcome}; the connection goes on"))
}

async fn v2_deep_after_hello(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_binary(whole(&deep_msgpack_call(100_000))).await?;
    expect_close(&a.ending(WAIT).await, 1008, "nesting deeper than 128")
}

async fn v2_deep_before_hello(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V2).await?;
    a.send_binary(whole(&deep_msgpack_call(100_000))).await?;
    expect_close(&a.ending(WAIT).await, 1009, "before")
}

async fn json_malformed(ctx: &Ctx) -> Result<String, String> {
    let mut a = v1(ctx).await?;
    a.send_text(r#"{"wslink":"1.0","id":"rpc:c0:1","method":"#)
        .await?;
    expect_close(&a.ending(WAIT).await, 1008, "invalid JSON")
}

async fn json_not_object(ctx: &Ctx) -> Result<String, String> {
    let mut outcomes = Vec::new();
    for text in ["[1,2,3]", r#""text""#, "42", "null"] {
        let mut a = v1(ctx).await?;
        a.send_text(text).await?;
        let ending = a.ending(WAIT).await;
        expect_close(&ending, 1008, "must be a map").map_err(|e| format!("{text}: {e}"))?;
        outcomes.push(format!("{text}: {ending}"));
    }
    Ok(outcomes.join("; "))
}

async fn v1_deep_after_hello(ctx: &Ctx) -> Result<String, String> {
    let mut a = v1(ctx).await?;
    a.send_text(deep_json_call(100_000)).await?;
    expect_close(&a.ending(WAIT).await, 1008, "JSON nesting deeper than 127")
}

async fn v1_deep_before_hello(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V1).await?;
    a.send_text(deep_json_call(100_000)).await?;
    expect_close(&a.ending(WAIT).await, 1009, "before wslink.hello")
}

// ----------------------------------------------------------- lying chunks

async fn total_4gib_before_hello(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V2).await?;
    a.send_binary(chunk(7, 0, u32::MAX, b"x")).await?;
    expect_close(&a.ending(WAIT).await, 1009, "before authentication")
}

async fn total_4gib_after_hello(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_binary(chunk(7, 0, u32::MAX, b"x")).await?;
    expect_close(&a.ending(WAIT).await, 1009, "over the limit")
}

async fn declared_totals_many(ctx: &Ctx) -> Result<String, String> {
    // Every connection declares the largest message allowed and sends
    // 1 KiB of it: memory must follow what arrived, not what was declared.
    const N: usize = 200;
    let mut conns = Vec::with_capacity(N);
    for i in 0..N {
        let mut a = v2(ctx).await?;
        a.send_binary(chunk(9, 0, 128 * MIB as u32, &[i as u8; 1024]))
            .await?;
        conns.push(a);
    }
    for a in conns.iter_mut() {
        still_answers(a).await?;
    }
    let held = ctx.rss.now();
    for a in conns {
        a.reset();
    }
    Ok(format!(
        "{N} connections declared 128 MiB each ({} GiB in all) and sent 1 KiB: all still answered, server RSS {:.1} MiB",
        N * 128 / 1024,
        crate::server::mib(held)
    ))
}

async fn offset_past_end(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_binary(chunk(9, 100, 50, b"abc")).await?;
    expect_close(&a.ending(WAIT).await, 1008, "past the declared total")
}

async fn overlapping(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_binary(chunk(9, 0, 20, &[1; 10])).await?;
    a.send_binary(chunk(9, 5, 20, &[2; 10])).await?;
    expect_close(&a.ending(WAIT).await, 1008, "overlaps")
}

async fn duplicate(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_binary(chunk(9, 0, 20, &[1; 10])).await?;
    a.send_binary(chunk(9, 0, 20, &[1; 10])).await?;
    expect_close(&a.ending(WAIT).await, 1008, "already received")
}

async fn pending_ids(ctx: &Ctx) -> Result<String, String> {
    let a = v2(ctx).await?;
    let (mut sink, mut stream) = a.ws.split();
    let reader = tokio::spawn(async move {
        let mut r = Raw::ending_of(&mut stream, WAIT * 3).await;
        if let Ending::Dropped(_) = r {
            r = Ending::Dropped("reset before the close frame was read".into());
        }
        r
    });
    let mut sent = 0u32;
    for id in 0..100_000u32 {
        if sink
            .feed(Ws::Binary(chunk(id, 0, 100, b"x")))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
        if id % 256 == 255 && sink.flush().await.is_err() {
            break;
        }
    }
    let _ = sink.flush().await;
    let ending = reader.await.map_err(|e| e.to_string())?;
    let outcome = expect_close(&ending, 1008, "partial messages")?;
    Ok(format!("{outcome} (the client got {sent} frames out)"))
}

async fn never_completes(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_binary(chunk(77, 0, 2 * MIB as u32, &vec![5u8; MIB]))
        .await?;
    still_answers(&mut a).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_answers(&mut a).await?;
    let _ = a.ws.close(None).await;
    let ending = a.ending(WAIT).await;
    Ok(format!(
        "half of a 2 MiB message then silence: the server held it and kept answering; closed by the client ({ending})"
    ))
}

async fn pending_bytes_flood(ctx: &Ctx) -> Result<String, String> {
    // Distinct messages, each 8 MiB declared and half sent, until the
    // per-connection budget for partial messages runs out.
    let a = v2(ctx).await?;
    let (mut sink, mut stream) = a.ws.split();
    let reader = tokio::spawn(async move { Raw::ending_of(&mut stream, WAIT * 3).await });
    let content = vec![3u8; 4 * MIB - 12];
    let mut sent = 0;
    for id in 0..64u32 {
        if sink
            .send(Ws::Binary(chunk(id, 0, 8 * MIB as u32, &content)))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let ending = reader.await.map_err(|e| e.to_string())?;
    let outcome = expect_close(&ending, 1009, "partial messages")?;
    Ok(format!("{outcome} after {sent} x 4 MiB"))
}

// ---------------------------------------------------- wrong kinds, attachments

async fn text_on_v2(ctx: &Ctx) -> Result<String, String> {
    let mut a = v2(ctx).await?;
    a.send_text(r#"{"id":"rpc:c0:1","method":"conformance.add","args":[1,2]}"#)
        .await?;
    expect_close(&a.ending(WAIT).await, 1003, "text frame")
}

async fn v1_binary_garbage(ctx: &Ctx) -> Result<String, String> {
    let mut a = v1(ctx).await?;
    let garbage: Vec<u8> = (0..MIB as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    a.send_binary(garbage).await?;
    expect_close(&a.ending(WAIT).await, 1008, "without an attachment header")
}

async fn v1_binary_before_hello(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V1).await?;
    let req = a.request("conformance.add", vec![Value::from(1), Value::from(2)]);
    a.send(&req).await?;
    let reply = a
        .recv_reply(WAIT)
        .await
        .map_err(|e| format!("no reply: {e}"))?;
    let first = expect_error(&reply, -32000, "Unauthorized")?;
    a.send_binary(vec![0u8; 100]).await?;
    let second = expect_close(&a.ending(WAIT).await, 1008, "before wslink.hello")?;
    Ok(format!("call: {first}; then binary: {second}"))
}

fn header(key: &str) -> String {
    format!(r#"{{"wslink":"1.0","method":"wslink.binary.attachment","args":["{key}"]}}"#)
}

async fn v1_header_without_binary(ctx: &Ctx) -> Result<String, String> {
    let mut a = v1(ctx).await?;
    a.send_text(header("wslink_bin7")).await?;
    let m = a
        .call("conformance.echo", vec![Value::from("wslink_bin7")])
        .await?;
    let echoed = result(m)?;
    if echoed.as_str() != Some("wslink_bin7") {
        return Err(format!("echo of an undelivered key returned {echoed:?}"));
    }
    // Then headers alone, many more than may wait for their bytes.
    for i in 0..2000 {
        if a.send_text(header(&format!("wslink_bin{}", 1000 + i)))
            .await
            .is_err()
        {
            break;
        }
    }
    let closed = expect_close(&a.ending(WAIT).await, 1008, "announced")?;
    Ok(format!(
        "an undelivered key stays a string (echo answered \"wslink_bin7\"); 2000 headers: {closed}"
    ))
}

async fn v1_unannounced_key(ctx: &Ctx) -> Result<String, String> {
    let mut a = v1(ctx).await?;
    let m = a
        .call("conformance.echo", vec![Value::from("wslink_bin99")])
        .await?;
    let echoed = result(m)?;
    if echoed.as_str() != Some("wslink_bin99") {
        return Err(format!("echo of an unannounced key returned {echoed:?}"));
    }
    still_answers(&mut a).await?;
    Ok("answered: the key stays a plain string, as in wslink".into())
}

async fn v1_attachment_flood(ctx: &Ctx) -> Result<String, String> {
    // Headers and their bytes, never claimed by any message.
    let a = v1(ctx).await?;
    let (mut sink, mut stream) = a.ws.split();
    let reader = tokio::spawn(async move { Raw::ending_of(&mut stream, WAIT * 3).await });
    let blob = Bytes::from(vec![9u8; MIB]);
    let mut sent = 0;
    for i in 0..256 {
        let h = Ws::Text(header(&format!("wslink_bin{i}")).into());
        if sink.send(h).await.is_err() || sink.send(Ws::Binary(blob.clone())).await.is_err() {
            break;
        }
        sent += 1;
    }
    let ending = reader.await.map_err(|e| e.to_string())?;
    let outcome = expect_close(&ending, 1009, "attachments")?;
    Ok(format!("{outcome} after {sent} x 1 MiB"))
}

// ------------------------------------------------------------ before hello

async fn pre_hello_calls(ctx: &Ctx, generation: Generation) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, generation).await?;
    for _ in 0..20 {
        let req = a.request("conformance.add", vec![Value::from(1), Value::from(2)]);
        if a.send(&req).await.is_err() {
            break;
        }
    }
    let mut refused = 0;
    loop {
        match a.next_event(WAIT).await {
            crate::raw::Event::Message(m) => {
                expect_error(&m, -32000, "Unauthorized")?;
                refused += 1;
            }
            crate::raw::Event::End(e) => {
                let closed = expect_close(&e, 1008, "too many messages before wslink.hello")?;
                return Ok(format!(
                    "{refused} x error -32000 \"Unauthorized\", then {closed}"
                ));
            }
        }
    }
}

async fn pre_hello_calls_v2(ctx: &Ctx) -> Result<String, String> {
    pre_hello_calls(ctx, Generation::V2).await
}

async fn pre_hello_calls_v1(ctx: &Ctx) -> Result<String, String> {
    pre_hello_calls(ctx, Generation::V1).await
}

async fn pre_hello_publish_call(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V2).await?;
    let m = a
        .call(
            "conformance.publish",
            vec![
                Value::from(INTRUSION_TOPIC),
                Value::from(1),
                Value::from(16),
            ],
        )
        .await?;
    let outcome = expect_error(&m, -32000, "Unauthorized")?;
    // Give a leaked publish time to reach the healthy clients.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(format!("{outcome}; nothing reached the healthy clients"))
}

async fn pre_hello_publish_messages(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V2).await?;
    for i in 0..100 {
        let m = Message::Result {
            id: format!("publish:{INTRUSION_TOPIC}:{i}"),
            result: Value::from("intrusion"),
        };
        if a.send(&m).await.is_err() {
            break;
        }
    }
    expect_close(&a.ending(WAIT).await, 1008, "before wslink.hello")
}

async fn pre_hello_huge_binary(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V2).await?;
    let mut frame = chunk(1, 0, 16 * MIB as u32, &[]).to_vec();
    frame.resize(16 * MIB, 0);
    let _ = a.send_binary(frame).await;
    expect_close(&a.ending(WAIT).await, 1009, "before")
}

async fn pre_hello_frame_header(ctx: &Ctx) -> Result<String, String> {
    // A masked binary frame header declaring 128 MiB, then 8 MiB of it.
    let mut a = Raw::connect(&ctx.url, Generation::V2).await?;
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(128u64 * MIB as u64).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    a.send_raw_bytes(&header).await?;
    let zeros = vec![0u8; 64 * 1024];
    let stream_part = async {
        for _ in 0..128 {
            if a.ws.get_mut().write_all(&zeros).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(WAIT, stream_part).await;
    expect_close(&a.ending(WAIT).await, 1009, "before wslink.hello")
}

async fn pre_hello_huge_text(ctx: &Ctx) -> Result<String, String> {
    let mut a = Raw::connect(&ctx.url, Generation::V1).await?;
    let _ = a.send_text("a".repeat(16 * MIB)).await;
    expect_close(&a.ending(WAIT).await, 1009, "before wslink.hello")
}

async fn wrong_secrets_once(url: String, from: std::net::IpAddr) -> Result<String, String> {
    let mut a = Raw::connect_from(&url, Generation::V2, Some(from)).await?;
    let mut refused = 0;
    for _ in 0..5 {
        let m = a.hello("not-the-secret").await?;
        expect_error(&m, -32000, "Authentication failed")?;
        refused += 1;
    }
    let closed = expect_close(&a.ending(WAIT).await, 1008, "failed wslink.hello")?;
    Ok(format!(
        "{refused} x error -32000 \"Authentication failed\", then {closed}"
    ))
}

async fn wrong_secrets(ctx: &Ctx) -> Result<String, String> {
    // 50 connections, 5 wrong secrets each, 10 at a time, each from an
    // address of its own (127.0.0.10-59): the per-connection bound, with
    // every address below the per-address one.
    let mut first = String::new();
    for batch in 0..5u8 {
        let tasks: Vec<_> = (0..10u8)
            .map(|i| {
                let from = std::net::Ipv4Addr::new(127, 0, 0, 10 + batch * 10 + i).into();
                tokio::spawn(wrong_secrets_once(ctx.url.clone(), from))
            })
            .collect();
        for t in tasks {
            let outcome = t.await.map_err(|e| e.to_string())??;
            if batch == 0 && first.is_empty() {
                first = outcome;
            }
        }
    }
    // The right secret still works afterwards.
    v2(ctx).await?;
    Ok(format!("50 connections x 5 wrong secrets, each: {first}"))
}

async fn guessing_from_one_address(ctx: &Ctx) -> Result<String, String> {
    // 1,000 reconnections from one address, one wrong secret each: the
    // address is banned after the server's per-address bound (30 by
    // default) and its upgrades refused; the healthy clients (127.0.0.1)
    // go on. A second round finds the address still banned.
    let from: std::net::IpAddr = std::net::Ipv4Addr::new(127, 0, 0, 200).into();
    let (mut hellos, mut banned) = (0u32, 0u32);
    for _ in 0..1000 {
        match Raw::connect_from(&ctx.url, Generation::V2, Some(from)).await {
            Ok(mut a) => {
                let m = a.hello("not-the-secret").await?;
                expect_error(&m, -32000, "Authentication failed")?;
                hellos += 1;
            }
            Err(e) if e.contains("429") => banned += 1,
            Err(e) => return Err(e),
        }
    }
    if hellos > 30 || banned < 970 {
        return Err(format!(
            "{hellos} wrong secrets answered and {banned} upgrades refused: the ban did not hold"
        ));
    }
    v2(ctx).await?;
    Ok(format!(
        "{hellos} wrong secrets answered, then {banned} upgrades refused with 429"
    ))
}

async fn silent_connections(ctx: &Ctx) -> Result<String, String> {
    const N: usize = 100;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..N {
        let mut a = Raw::connect(&ctx.url, Generation::V2).await?;
        tasks.push(tokio::spawn(async move {
            (a.ending(Duration::from_secs(30)).await, Instant::now())
        }));
    }
    let mut last = started;
    let mut ending = None;
    for t in tasks {
        let (e, at) = t.await.map_err(|e| e.to_string())?;
        expect_close(&e, 1008, "no successful wslink.hello")?;
        last = last.max(at);
        ending = Some(e);
    }
    let took = last - started;
    if took > ctx.hello_deadline + Duration::from_secs(3) {
        return Err(format!("closing took {took:?}"));
    }
    Ok(format!(
        "{N} connections that never spoke, each: {} (all within {:.1} s)",
        ending.unwrap(),
        took.as_secs_f64()
    ))
}

/// Whether the server ends this socket (EOF or reset) within `within`.
async fn ended_by_server(tcp: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 before the close
        }
    }
}

/// Sockets that connect and never send a request: twice the pending cap.
/// Those past it are closed at once, the rest when the header timeout
/// runs out; the healthy clients go on meanwhile.
async fn silent_sockets(ctx: &Ctx) -> Result<String, String> {
    let addr = ctx
        .url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let n = ctx.max_pending_connections * 2;
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let ends: Vec<_> = sockets
        .into_iter()
        .map(|mut tcp| {
            let within = ctx.http_header_timeout + Duration::from_secs(5);
            tokio::spawn(async move {
                let ended = ended_by_server(&mut tcp, within).await;
                (ended, started.elapsed())
            })
        })
        .collect();
    let (mut at_once, mut timed_out, mut kept) = (0, 0, 0);
    for end in ends {
        match end.await.map_err(|e| e.to_string())? {
            (false, _) => kept += 1,
            (true, t) if t < ctx.http_header_timeout => at_once += 1,
            (true, _) => timed_out += 1,
        }
    }
    if kept > 0 {
        return Err(format!(
            "{kept} of {n} silent sockets still open {:?} after the header timeout",
            Duration::from_secs(5)
        ));
    }
    if at_once < n - ctx.max_pending_connections {
        return Err(format!(
            "only {at_once} of {n} silent sockets closed at once (cap {})",
            ctx.max_pending_connections
        ));
    }
    v2(ctx).await?;
    Ok(format!(
        "{n} silent sockets: {at_once} closed at once (cap {}), {timed_out} after the {:?} header timeout",
        ctx.max_pending_connections, ctx.http_header_timeout
    ))
}

async fn connection_limit(ctx: &Ctx) -> Result<String, String> {
    let mut open = Vec::new();
    let refusal = loop {
        if open.len() > ctx.max_connections + 10 {
            return Err(format!(
                "{} connections accepted with max_connections = {}",
                open.len(),
                ctx.max_connections
            ));
        }
        match Raw::connect(&ctx.url, Generation::V2).await {
            Ok(a) => open.push(a),
            Err(e) => break e,
        }
    };
    if !refusal.contains("503") {
        return Err(format!("connection refused, but not with 503: {refusal}"));
    }
    let accepted = open.len();
    for a in open {
        a.reset();
    }
    // The slots come back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Raw::authenticated(&ctx.url, Generation::V2).await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "no connection accepted after the attackers left: {e}"
                ))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok(format!(
        "{accepted} more accepted (limit {} with the healthy clients), then {refusal}; slots freed when they left",
        ctx.max_connections
    ))
}

// ------------------------------------------------------------------ floods

async fn flood_calls(ctx: &Ctx) -> Result<String, String> {
    const N: u64 = 100_000;
    let a = v2(ctx).await?;
    let client = a.client_id.clone();
    let frames: Vec<Bytes> = (0..N)
        .map(|i| {
            let req = Message::Request(wslink_core::Request {
                id: format!("rpc:{client}:{i}"),
                method: "conformance.add".into(),
                args: vec![Value::from(i), Value::from(1)],
                kwargs: vec![],
            });
            match a.encode(&req).pop() {
                Some(wslink_core::Frame::Binary(b)) => b,
                _ => unreachable!(),
            }
        })
        .collect();
    let (mut sink, mut stream) = a.ws.split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for f in frames {
            sink.feed(Ws::Binary(f)).await.map_err(|e| e.to_string())?;
        }
        sink.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(sink)
    });
    let mut decoder = v2::Decoder::new(Default::default());
    decoder.set_authenticated(true);
    let mut seen = HashSet::new();
    let mut wrong = 0u64;
    while (seen.len() as u64) < N {
        let frame = match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(Ws::Binary(b)))) => b,
            Ok(Some(Ok(_))) => continue,
            other => {
                return Err(format!(
                    "{} of {N} replies, then {:?}",
                    seen.len(),
                    other.map(|o| o.map(|r| r.map(|m| m.to_string())))
                ))
            }
        };
        let Some(m) = decoder.push(frame).map_err(|e| e.to_string())? else {
            continue;
        };
        if is_publish(&m) {
            continue;
        }
        let id = m.id().unwrap_or_default().to_owned();
        let i: u64 = id
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("reply with id {id:?}"))?;
        let ok = matches!(&m, Message::Result { result, .. } if result.as_u64() == Some(i + 1));
        if !ok {
            wrong += 1;
        }
        if !seen.insert(i) {
            return Err(format!("reply {id} came twice"));
        }
    }
    let took = started.elapsed();
    let _sink = writer.await.map_err(|e| e.to_string())??;
    if wrong > 0 {
        return Err(format!("{wrong} wrong replies"));
    }
    Ok(format!(
        "{N} calls in one burst: {N} correct replies in {:.1} s ({:.0} calls/s)",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    ))
}

async fn calls_never_read(ctx: &Ctx) -> Result<String, String> {
    // 2000 calls asking for 256 KiB each (500 MiB of replies) from a client
    // that reads nothing for three seconds: the server must stop reading
    // it instead of queueing every reply.
    const N: usize = 2000;
    const SIZE: usize = 256 * 1024;
    let mut a = v2(ctx).await?;
    let base = ctx.rss.now();
    let mut ids = Vec::new();
    for seed in 0..N {
        let req = a.request(
            "conformance.blob",
            vec![Value::from(SIZE as u64), Value::from(seed as u64)],
        );
        ids.push(req.id().unwrap().to_owned());
        for f in a.encode(&req) {
            if let wslink_core::Frame::Binary(b) = f {
                a.ws.feed(Ws::Binary(b)).await.map_err(|e| e.to_string())?;
            }
        }
    }
    a.ws.flush().await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = ctx.rss.window_peak().saturating_sub(base);
    // The replies queued for it are bounded (outbound_queue_bytes, 64 MiB
    // by default), whatever it asked for.
    if held > 80 * MIB as u64 {
        return Err(format!(
            "the server grew {:.1} MiB for a client that reads nothing",
            crate::server::mib(held)
        ));
    }
    // Now read everything: nothing may be missing.
    let mut got = 0;
    while got < N {
        let m = a
            .recv_reply(Duration::from_secs(30))
            .await
            .map_err(|e| format!("{got} of {N} replies, then {e}"))?;
        let blob = result(m)?;
        let len = blob.get("blob").and_then(Value::as_bytes).map(|b| b.len());
        if len != Some(SIZE) {
            return Err(format!("reply {got}: blob of {len:?} bytes"));
        }
        got += 1;
    }
    Ok(format!(
        "{N} x 256 KiB asked, nothing read for 3 s: server grew {:.1} MiB meanwhile, then all {got} replies arrived",
        crate::server::mib(held)
    ))
}

async fn churn_one(url: String, i: usize) -> Result<(), String> {
    match i % 4 {
        // Hello, a call, a clean close.
        0 => {
            let mut a = Raw::authenticated(&url, Generation::V2).await?;
            still_answers(&mut a).await?;
            let _ = a.ws.close(None).await;
            let _ = a.ending(WAIT).await;
        }
        // Close without a word.
        1 => {
            let mut a = Raw::connect(&url, Generation::V1).await?;
            let _ = a.ws.close(None).await;
            let _ = a.ending(WAIT).await;
        }
        // Hello, then a reset.
        2 => Raw::authenticated(&url, Generation::V1).await?.reset(),
        // Half an HTTP upgrade, then a reset.
        _ => {
            let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
            let mut tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
                .await
                .map_err(|e| e.to_string())?;
            #[allow(deprecated)]
            let _ = tcp.set_linger(Some(Duration::ZERO));
        }
    }
    Ok(())
}

async fn connection_churn(ctx: &Ctx) -> Result<String, String> {
    const N: usize = 1000;
    const WORKERS: usize = 8;
    let fds_before = ctx.server.fds();
    let started = Instant::now();
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            let url = ctx.url.clone();
            tokio::spawn(async move {
                for i in (w..N).step_by(WORKERS) {
                    churn_one(url.clone(), i).await?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let took = started.elapsed();
    // Everything the server held for them must go.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut fds_after = ctx.server.fds();
    while fds_after > fds_before + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fds_after = ctx.server.fds();
    }
    if fds_after > fds_before + 2 {
        return Err(format!(
            "server file descriptors {fds_before} before, {fds_after} after"
        ));
    }
    v2(ctx).await?;
    Ok(format!(
        "{N} connections (clean close, silent close, reset after hello, reset mid-upgrade) in {:.1} s; server fds {fds_before} -> {fds_after}",
        took.as_secs_f64()
    ))
}

// ------------------------------------------------------------------ faults

async fn wait_fds(ctx: &Ctx, target: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fds = ctx.server.fds();
        if fds <= target || Instant::now() > deadline {
            return fds;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reset_mid_message(ctx: &Ctx) -> Result<String, String> {
    let fds_before = ctx.server.fds();
    let mut a = v2(ctx).await?;
    let total = 16 * MIB as u32;
    let part = vec![1u8; 4 * MIB - 12];
    a.send_binary(chunk(5, 0, total, &part)).await?;
    a.send_binary(chunk(5, part.len() as u32, total, &part))
        .await?;
    still_answers(&mut a).await?;
    a.reset();
    let fds_after = wait_fds(ctx, fds_before).await;
    if fds_after > fds_before {
        return Err(format!("server fds {fds_before} before, {fds_after} after"));
    }
    Ok(format!(
        "reset after 8 of 16 MiB: connection and partial message released (fds {fds_before} -> {fds_after})"
    ))
}

async fn reset_mid_reply(ctx: &Ctx) -> Result<String, String> {
    let fds_before = ctx.server.fds();
    let mut a = v2(ctx).await?;
    let req = a.request(
        "conformance.blob",
        vec![Value::from(32 * MIB as u64), Value::from(1)],
    );
    a.send(&req).await?;
    // Read the first frame of the reply, then vanish.
    loop {
        match tokio::time::timeout(WAIT, a.ws.next()).await {
            Ok(Some(Ok(Ws::Binary(b)))) if b.len() > 1024 => break,
            Ok(Some(Ok(_))) => continue,
            other => return Err(format!("no reply frame: {other:?}")),
        }
    }
    a.reset();
    let fds_after = wait_fds(ctx, fds_before).await;
    if fds_after > fds_before {
        return Err(format!("server fds {fds_before} before, {fds_after} after"));
    }
    Ok(format!(
        "reset after the first 4 MiB of a 32 MiB reply: connection and queue released (fds {fds_before} -> {fds_after})"
    ))
}

async fn slow_download(ctx: &Ctx) -> Result<String, String> {
    // A client that asks for 16 x 8 MiB and reads nothing for 2 s, while
    // the healthy clients' heartbeats are published to it: its replies
    // wait (the queue fills to its bound), it is not disconnected, and
    // nothing is lost.
    const N: usize = 16;
    const SIZE: usize = 8 * MIB;
    let mut a = v2(ctx).await?;
    for seed in 0..N {
        let req = a.request(
            "conformance.blob",
            vec![Value::from(SIZE as u64), Value::from(seed as u64)],
        );
        a.send(&req).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = 0;
    let mut publishes = 0;
    while got < N {
        match a.next_event(Duration::from_secs(30)).await {
            crate::raw::Event::Message(m) if is_publish(&m) => publishes += 1,
            crate::raw::Event::Message(m) => {
                let blob = result(m)?;
                let len = blob.get("blob").and_then(Value::as_bytes).map(|b| b.len());
                if len != Some(SIZE) {
                    return Err(format!("reply {got}: blob of {len:?} bytes"));
                }
                got += 1;
            }
            crate::raw::Event::End(e) => return Err(format!("{got} of {N} replies, then {e}")),
        }
    }
    still_answers(&mut a).await?;
    Ok(format!(
        "{N} x 8 MiB asked, nothing read for 2 s: all {got} replies and {publishes} publishes arrived, no disconnection"
    ))
}

async fn stalled_reader(ctx: &Ctx) -> Result<String, String> {
    const FPS: u32 = 60;
    const SECONDS: u32 = 10;
    const TOPIC: &str = "adversarial.frames";
    let frames = FPS * SECONDS;
    // The stalled client says hello, then never reads again.
    let mut stalled = v2(ctx).await?;
    // A viewer that keeps up, and the client that makes the server publish.
    let viewer = Client::builder(&ctx.url)
        .subscription_buffer(1024)
        .subscription_buffer_bytes(1 << 30)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut sub = viewer.subscribe(TOPIC).map_err(|e| e.to_string())?;
    let driver = Client::connect(&ctx.url, SECRET)
        .await
        .map_err(|e| e.to_string())?;
    let counter = tokio::spawn(async move {
        let mut got = 0u32;
        let mut bad = 0u32;
        while got + bad < frames {
            match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
                Ok(Some(m)) => {
                    let len = m.get("blob").and_then(Value::as_bytes).map(|b| b.len());
                    if len == Some(MIB) {
                        got += 1;
                    } else {
                        bad += 1;
                    }
                }
                _ => break,
            }
        }
        (got, bad, sub.dropped())
    });
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / FPS);
    let mut published = 0u32;
    let mut late = Duration::ZERO;
    for _ in 0..frames {
        tick.tick().await;
        let t = Instant::now();
        let args = vec![Value::from(TOPIC), Value::from(1), Value::from(MIB as u64)];
        match driver.call("conformance.publish", args, vec![]).await {
            Ok(v) if v.as_u64() == Some(1) => published += 1,
            other => return Err(format!("publish call: {other:?}")),
        }
        late = late.max(t.elapsed());
    }
    let took = started.elapsed();
    let (got, bad, dropped) = counter.await.map_err(|e| e.to_string())?;
    if got != frames || bad > 0 {
        return Err(format!(
            "viewer got {got} of {frames} frames ({bad} wrong, {dropped} dropped)"
        ));
    }
    // Only now does the stalled client look.
    let ending = stalled.ending(WAIT).await;
    let verdict = match &ending {
        Ending::Close(1008, reason) if reason.contains("too slow") => ending.to_string(),
        // Its socket buffers were full: the close frame could not reach it.
        Ending::Dropped(_) => ending.to_string(),
        other => return Err(format!("stalled client: {other}")),
    };
    viewer.close().await;
    driver.close().await;
    Ok(format!(
        "{published} x 1 MiB in {:.1} s (slowest publish call {} ms); viewer got all {got}; stalled client: {verdict}",
        took.as_secs_f64(),
        late.as_millis()
    ))
}

// ---------------------------------------------------------------- shutdown

/// Graceful shutdown with calls in flight on several connections. Runs
/// last: the server is gone afterwards.
pub async fn shutdown_under_load(ctx: &Ctx) -> Result<String, String> {
    // Slow calls in flight on both generations.
    let mut clients = Vec::new();
    for generation in [Generation::V2, Generation::V1] {
        clients.push(
            Client::builder(&ctx.url)
                .generation(generation)
                .connect()
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let mut sleeps = Vec::new();
    for c in &clients {
        for _ in 0..24 {
            let c = c.clone();
            sleeps.push(tokio::spawn(async move {
                c.call("conformance.sleep", vec![Value::from(700)], vec![])
                    .await
            }));
        }
    }
    // A raw client flooding quick calls and reading every reply.
    let flood = v2(ctx).await?;
    let client_id = flood.client_id.clone();
    let (mut sink, mut stream) = flood.ws.split();
    let flooder = tokio::spawn(async move {
        let mut i = 0u64;
        loop {
            let req = Message::Request(wslink_core::Request {
                id: format!("rpc:{client_id}:{i}"),
                method: "conformance.add".into(),
                args: vec![Value::from(i), Value::from(1)],
                kwargs: vec![],
            });
            let frame = match v2::encode_frames(&req, 4 << 20).unwrap().pop() {
                Some(wslink_core::Frame::Binary(b)) => b,
                _ => unreachable!(),
            };
            if sink.send(Ws::Binary(frame)).await.is_err() {
                return i;
            }
            i += 1;
            if i.is_multiple_of(64) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let reader = tokio::spawn(async move {
        let mut decoder = v2::Decoder::new(Default::default());
        decoder.set_authenticated(true);
        let mut answered = Vec::new();
        let mut wrong = 0u64;
        let ending = loop {
            match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
                Ok(Some(Ok(Ws::Binary(b)))) => {
                    if let Ok(Some(m)) = decoder.push(b) {
                        if is_publish(&m) {
                            continue;
                        }
                        let i: u64 = m
                            .id()
                            .and_then(|id| id.rsplit(':').next())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(u64::MAX);
                        if !matches!(&m, Message::Result { result, .. } if result.as_u64() == Some(i + 1))
                        {
                            wrong += 1;
                        }
                        answered.push(i);
                    }
                }
                Ok(Some(Ok(Ws::Close(Some(c))))) => {
                    break Ending::Close(u16::from(c.code), c.reason.to_string())
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => break Ending::Dropped(e.to_string()),
                Ok(None) => break Ending::Dropped("end of stream".into()),
                Err(_) => break Ending::TimedOut,
            }
        };
        (answered, wrong, ending)
    });
    // Make sure every slow call was read by the server: a quick call sent
    // after them on the same connection is answered only after they were.
    for c in &clients {
        c.call(
            "conformance.add",
            vec![Value::from(1), Value::from(1)],
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    ctx.server.terminate();
    let mut answered_sleeps = 0;
    for s in sleeps {
        match s.await.map_err(|e| e.to_string())? {
            Ok(v) if v.as_u64() == Some(700) => answered_sleeps += 1,
            other => return Err(format!("a slow call in flight got {other:?}")),
        }
    }
    let (answered, wrong, ending) = reader.await.map_err(|e| e.to_string())?;
    let sent = flooder.await.map_err(|e| e.to_string())?;
    let status = ctx
        .server
        .wait(Duration::from_secs(10))
        .ok_or("the server did not exit within 10 s")?;
    let exited = started.elapsed();
    expect_close(&ending, 1001, "shutting down")?;
    // Replies come in order; every call the server read must be answered:
    // the answered ids are exactly 0..n.
    let n = answered.len() as u64;
    let prefix = answered.iter().enumerate().all(|(k, &i)| k as u64 == i);
    if !prefix || wrong > 0 {
        return Err(format!(
            "flood: {n} replies, in order and complete: {prefix}, wrong: {wrong}"
        ));
    }
    if !status.success() {
        return Err(format!("server exit status {status}"));
    }
    Ok(format!(
        "SIGTERM with {answered_sleeps} slow calls in flight and a flood: all {answered_sleeps} answered; flood got replies 0..{n} of {sent} sent, none missing; {ending}; server exited ({status}) after {:.1} s",
        exited.as_secs_f64()
    ))
}

impl Raw {
    /// Reads a split stream until the connection ends.
    pub async fn ending_of<S>(stream: &mut S, limit: Duration) -> Ending
    where
        S: futures_util::Stream<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => return Ending::TimedOut,
                Ok(None) => return Ending::Dropped("end of stream".into()),
                Ok(Some(Err(e))) => return Ending::Dropped(e.to_string()),
                Ok(Some(Ok(Ws::Close(Some(c))))) => {
                    return Ending::Close(u16::from(c.code), c.reason.to_string())
                }
                Ok(Some(Ok(Ws::Close(None)))) => return Ending::Close(1005, String::new()),
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}
