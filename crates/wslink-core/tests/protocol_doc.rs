//! PROTOCOL.md's hex examples are produced by this crate: this test encodes
//! each example message and checks its hex dump is in the document, so the
//! document cannot drift from the code. `PRINT_PROTOCOL_EXAMPLES=1` prints
//! them, for updating the document after a deliberate change.

use bytes::Bytes;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::chunking::{ChunkHeader, HEADER_LEN};
use wslink_core::codec::{v1, Frame};
use wslink_core::protocol::{hello_request, HelloReply};
use wslink_core::{msgpack, Message, Request, RpcError, Value};

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A single-chunk 2.x frame with a fixed chunk id, so the dump is stable.
fn frame(message: &Message) -> Vec<u8> {
    let body = msgpack::encode(message).unwrap();
    let header = ChunkHeader {
        id: 0x0403_0201,
        offset: 0,
        total: body.len() as u32,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&body);
    out
}

fn examples() -> Vec<(&'static str, String)> {
    let mut out = vec![
        (
            "hello",
            hex(&frame(&Message::Request(hello_request("wslink-secret")))),
        ),
        (
            "hello-reply",
            hex(&frame(&Message::Result {
                id: "system:c0:0".into(),
                result: HelloReply {
                    client_id: "c7".into(),
                    max_msg_size: Some(4194304),
                    capabilities: vec!["subscriptions".into()],
                }
                .to_value(),
            })),
        ),
        (
            "call",
            hex(&frame(&Message::Request(Request {
                id: "rpc:c7:0".into(),
                method: "math.add".into(),
                args: vec![Value::from(2), Value::from(3)],
                kwargs: vec![],
            }))),
        ),
        (
            "result",
            hex(&frame(&Message::Result {
                id: "rpc:c7:0".into(),
                result: Value::from(5),
            })),
        ),
        (
            "error",
            hex(&frame(&Message::Error {
                id: "rpc:c7:1".into(),
                error: RpcError::method_not_found("nope"),
            })),
        ),
        (
            "publish",
            hex(&frame(&Message::Result {
                id: "publish:img:0".into(),
                result: Value::from(Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef])),
            })),
        ),
    ];
    // The subscription extension: a declaration and its answer.
    out.push((
        "subscribe",
        hex(&frame(&Message::Request(Request {
            id: "system:c7:3".into(),
            method: "wslink.subscribe".into(),
            args: vec![Value::from("img")],
            kwargs: vec![],
        }))),
    ));
    out.push((
        "subscribe-reply",
        hex(&frame(&Message::Result {
            id: "system:c7:3".into(),
            result: Value::from(true),
        })),
    ));
    // A chunked message: the result above cut into frames of 20 bytes.
    let body = msgpack::encode(&Message::Result {
        id: "rpc:c7:0".into(),
        result: Value::from("chunked!"),
    })
    .unwrap();
    let mut chunked = Vec::new();
    for (i, part) in body.chunks(20 - HEADER_LEN).enumerate() {
        let header = ChunkHeader {
            id: 0x0403_0201,
            offset: (i * (20 - HEADER_LEN)) as u32,
            total: body.len() as u32,
        };
        let mut f = header.encode().to_vec();
        f.extend_from_slice(part);
        chunked.push(hex(&f));
    }
    out.push(("chunked", chunked.join("\n--\n")));
    // 1.x: a result carrying binary.
    let frames = v1::encode(
        &Message::Result {
            id: "rpc:c7:2".into(),
            result: Value::map([("img", Value::from(Bytes::from_static(&[1, 2, 3])))]),
        },
        &AttachmentKeys::new(),
    )
    .unwrap();
    let shown: Vec<String> = frames
        .iter()
        .map(|f| match f {
            Frame::Text(t) => format!("text   {}", std::str::from_utf8(t).unwrap()),
            Frame::Binary(b) => format!("binary {}", hex(b)),
        })
        .collect();
    out.push(("attachment", shown.join("\n")));
    out
}

#[test]
fn protocol_md_shows_what_the_codec_writes() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../PROTOCOL.md")).unwrap();
    let print = std::env::var_os("PRINT_PROTOCOL_EXAMPLES").is_some();
    for (name, dump) in examples() {
        if print {
            println!("=== {name}\n{dump}\n");
        } else {
            assert!(
                doc.contains(&dump),
                "PROTOCOL.md lacks the {name} example:\n{dump}"
            );
        }
    }
}
