//! The conformance service (shared/conformance-service.md) on our server,
//! taking the Python wslink server's flags so test harnesses start either
//! the same way:
//!
//! ```text
//! conformance-server --host 127.0.0.1 --port 8080 --authKey wslink-secret [--timeout 0] [--content DIR] [--ws-endpoint ws] [--legacy|--current]
//!                    [--limit NAME=VALUE]... [--keepalive SECS] [--shutdown-grace SECS]
//!                    [--no-ws-compress]
//! ```
//!
//! `--port 0` picks a free port; the first line printed names it.
//! `--limit` sets one field of `wslink_server::Limits` (repeatable; see
//! PROTOCOL.md §5 for each default): sizes and counts as integers
//! (`max_pending_bytes=1048576`), `hello_deadline` in seconds (fractions
//! allowed). `--keepalive 0` turns pings off. Ctrl-C (SIGINT) or SIGTERM
//! starts a graceful shutdown.

use std::time::Duration;

use wslink_server::{conformance, Generation, Limits};

/// Sets the field `name` of `limits` from its text form.
fn set_limit(limits: &mut Limits, setting: &str) -> Result<(), String> {
    let (name, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("{setting:?}: expected NAME=VALUE"))?;
    if name == "hello_deadline" || name == "http_header_timeout" {
        let secs: f64 = value.parse().map_err(|e| format!("{name}={value}: {e}"))?;
        let secs = Duration::try_from_secs_f64(secs).map_err(|e| format!("{name}={value}: {e}"))?;
        match name {
            "hello_deadline" => limits.hello_deadline = secs,
            _ => limits.http_header_timeout = secs,
        }
        return Ok(());
    }
    let n: usize = value.parse().map_err(|e| format!("{name}={value}: {e}"))?;
    let field = match name {
        "pre_auth_max_message_size" => &mut limits.pre_auth_max_message_size,
        "max_message_size" => &mut limits.max_message_size,
        "max_text_size" => &mut limits.max_text_size,
        "max_frame_size" => &mut limits.max_frame_size,
        "max_pending_messages" => &mut limits.max_pending_messages,
        "max_pending_bytes" => &mut limits.max_pending_bytes,
        "max_depth" => &mut limits.max_depth,
        "max_in_flight_calls" => &mut limits.max_in_flight_calls,
        "outbound_queue_bytes" => &mut limits.outbound_queue_bytes,
        "outbound_queue_messages" => &mut limits.outbound_queue_messages,
        "max_pre_auth_messages" => &mut limits.max_pre_auth_messages,
        "max_auth_failures" => &mut limits.max_auth_failures,
        "max_connections" => &mut limits.max_connections,
        "max_pending_connections" => &mut limits.max_pending_connections,
        other => return Err(format!("unknown limit {other:?}")),
    };
    *field = n;
    Ok(())
}

fn seconds(flag: &str, value: &str) -> Duration {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or_else(|| {
            eprintln!("{flag}: not a number of seconds: {value}");
            std::process::exit(2)
        })
}

fn main() {
    let mut host = "127.0.0.1".to_string();
    let mut port = 8080u16;
    let mut builder = conformance::builder();
    let mut limits = Limits::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{flag} needs a value");
                std::process::exit(2)
            })
        };
        builder = match flag.as_str() {
            "--host" => {
                host = value();
                builder
            }
            "--port" => {
                port = value().parse().unwrap_or_else(|e| {
                    eprintln!("--port: {e}");
                    std::process::exit(2)
                });
                builder
            }
            "--authKey" | "--secret" => builder.secret(value()),
            "--content" => builder.content(value()),
            "--ws-endpoint" => builder.ws_endpoint(value()),
            "--timeout" => {
                let secs: u64 = value().parse().unwrap_or(0);
                builder.idle_timeout((secs > 0).then(|| Duration::from_secs(secs)))
            }
            "--legacy" => builder.generation(Generation::V1),
            "--current" => builder.generation(Generation::V2),
            "--limit" => {
                if let Err(e) = set_limit(&mut limits, &value()) {
                    eprintln!("--limit {e}");
                    std::process::exit(2)
                }
                builder
            }
            "--keepalive" => {
                let every = seconds(&flag, &value());
                builder.keepalive((!every.is_zero()).then_some(every))
            }
            "--shutdown-grace" => builder.shutdown_grace(seconds(&flag, &value())),
            "--no-ws-compress" => builder.compression(false),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2)
            }
        };
    }
    let server = builder.limits(limits).build();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match server.bind((host.as_str(), port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1)
            }
        };
        println!(
            "wslink conformance server on ws://{}/ws",
            listener.local_addr()
        );
        let stopper = server.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    },
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            stopper.shutdown();
        });
        if let Err(e) = listener.run().await {
            eprintln!("{e}");
            std::process::exit(1)
        }
    });
}
