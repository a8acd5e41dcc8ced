//! `wslink serve`: the project's server from the command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wslink_server::{conformance, Server};

/// The options of `wslink serve` (named as in Kitware's Python launcher).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// The port to listen on (0 picks a free one).
    #[arg(long, short = 'p', default_value_t = 8080)]
    pub port: u16,
    /// A directory of static files to serve over HTTP beside the WebSocket.
    #[arg(long, value_name = "DIR")]
    pub content: Option<PathBuf>,
    /// Expose the conformance service (conformance.* methods) used by the
    /// cross-language tests.
    #[arg(long)]
    pub conformance: bool,
    /// The secret clients must send in their hello.
    #[arg(long, default_value = wslink_core::protocol::DEFAULT_SECRET)]
    pub secret: String,
    /// Stop after this many seconds without any client (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// The WebSocket endpoint's path.
    #[arg(long, value_name = "PATH", default_value = "ws")]
    pub ws_endpoint: String,
}

/// Runs the server until it stops (Ctrl-C, or `--timeout` seconds without
/// a client); returns the process exit code.
pub async fn run(args: ServeArgs) -> ExitCode {
    let mut builder = if args.conformance {
        conformance::builder()
    } else {
        Server::builder()
    };
    builder = builder
        .secret(args.secret)
        .ws_endpoint(args.ws_endpoint)
        .idle_timeout((args.timeout > 0).then(|| Duration::from_secs(args.timeout)));
    if let Some(dir) = args.content {
        if !dir.is_dir() {
            eprintln!("wslink: --content {}: not a directory", dir.display());
            return ExitCode::from(2);
        }
        builder = builder.content(dir);
    }
    let server = builder.build();
    let listener = match server.bind((args.host.as_str(), args.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("wslink: cannot listen on {}:{}: {e}", args.host, args.port);
            return ExitCode::from(3);
        }
    };
    let endpoint = server
        .config()
        .ws_endpoint
        .trim_start_matches('/')
        .to_string();
    // Scripts wait for this line to learn the port when they pass `--port 0`.
    // Write errors are ignored: whoever started us may have stopped reading.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "wslink server on ws://{}/{endpoint}",
        listener.local_addr()
    );
    if args.conformance {
        let methods = server.method_names().len();
        let _ = writeln!(out, "conformance service: {methods} methods");
    }
    let _ = out.flush();
    drop(out);
    let stopper = server.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stopper.shutdown();
        }
    });
    match listener.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wslink: server stopped: {e}");
            ExitCode::from(5)
        }
    }
}
