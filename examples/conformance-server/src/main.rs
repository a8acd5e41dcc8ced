//! The conformance service (shared/conformance-service.md) on our server,
//! taking the Python wslink server's flags so test harnesses start either
//! the same way:
//!
//! ```text
//! conformance-server --host 127.0.0.1 --port 8080 --authKey wslink-secret [--timeout 0] [--content DIR] [--ws-endpoint ws] [--legacy|--current]
//! ```

use std::time::Duration;

use wslink_server::{conformance, Generation};

fn main() {
    let mut host = "127.0.0.1".to_string();
    let mut port = 8080u16;
    let mut builder = conformance::builder();
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
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2)
            }
        };
    }
    let server = builder.build();
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
            let _ = tokio::signal::ctrl_c().await;
            stopper.shutdown();
        });
        if let Err(e) = listener.run().await {
            eprintln!("{e}");
            std::process::exit(1)
        }
    });
}
