//! `wslink serve`: the project's server from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// The secret clients must send in their hello (default: the
    /// WSLINK_AUTH_KEY environment variable, else wslink-secret). On a
    /// command line it shows in `ps`: prefer --authKey-file or the variable.
    #[arg(
        long,
        alias = "authKey",
        value_name = "SECRET",
        conflicts_with = "secret_file"
    )]
    pub secret: Option<String>,
    /// Read the secret from this file (its first line; the file's other
    /// lines are ignored), so it never shows on a command line.
    #[arg(long = "authKey-file", alias = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Web pages allowed to open a WebSocket: "*" (the default, as the
    /// Python server), or a comma-separated list of origins
    /// (https://app.example.org) and "same-origin" (pages served by this
    /// server, see --content). Refused upgrades get HTTP 403.
    #[arg(long, value_name = "ORIGINS", default_value = "*")]
    pub allowed_origins: wslink_server::AllowedOrigins,
    /// Refuse to start on an address reachable from other machines while
    /// the secret is the well-known default (without this, only warn).
    #[arg(long)]
    pub refuse_default_secret: bool,
    /// Stop after this many seconds without any client (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// The WebSocket endpoint's path.
    #[arg(long, value_name = "PATH", default_value = "ws")]
    pub ws_endpoint: String,
    /// Connect out to a relay (`wslink relay --mode relay`, or Kitware's)
    /// at this ws:// URL and serve there instead of listening, as Kitware's
    /// `--reverse-url`; browsers connect to the same URL on the relay. Exits
    /// when the relay closes the connection.
    #[arg(long, value_name = "URL")]
    pub reverse_url: Option<String>,
}

/// The environment variable a secret can come from.
pub const SECRET_ENV: &str = "WSLINK_AUTH_KEY";

/// The secret from `--authKey-file`, `--secret`/`--authKey`, the
/// environment, or wslink's default, in that order.
fn resolve_secret(flag: Option<String>, file: Option<&Path>) -> Result<String, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--authKey-file {}: {e}", path.display()))?;
        let secret = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if secret.is_empty() {
            return Err(format!(
                "--authKey-file {}: the first line is empty; put the secret there",
                path.display()
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o004 != 0 {
                    eprintln!(
                        "wslink: warning: {} is readable by every user of this machine (chmod 600 it)",
                        path.display()
                    );
                }
            }
        }
        return Ok(secret.to_owned());
    }
    if let Some(secret) = flag {
        return Ok(secret);
    }
    match std::env::var(SECRET_ENV) {
        Ok(secret) if !secret.is_empty() => Ok(secret),
        _ => Ok(wslink_core::protocol::DEFAULT_SECRET.to_owned()),
    }
}

/// Runs the server until it stops (Ctrl-C, or `--timeout` seconds without
/// a client); returns the process exit code.
pub async fn run(args: ServeArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_writer(std::io::stderr)
        .try_init();
    let mut builder = if args.conformance {
        conformance::builder()
    } else {
        Server::builder()
    };
    let secret = match resolve_secret(args.secret, args.secret_file.as_deref()) {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("wslink: {message}");
            return ExitCode::from(2);
        }
    };
    builder = builder
        .secret(secret)
        .allowed_origins(args.allowed_origins)
        .refuse_public_default_secret(args.refuse_default_secret)
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
    if let Some(url) = args.reverse_url {
        return reverse(server, &url, args.conformance).await;
    }
    let listener = match server.bind((args.host.as_str(), args.port)).await {
        Ok(listener) => listener,
        Err(e @ wslink_server::ServerError::DefaultSecretOnPublicAddress { .. }) => {
            eprintln!("wslink: {e}");
            return ExitCode::from(2);
        }
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

/// `--reverse-url`: one connection out to a relay, served until it closes.
async fn reverse(server: Server, url: &str, conformance: bool) -> ExitCode {
    let connection = match server.connect_reverse(url).await {
        Ok(c) => c,
        Err(e @ wslink_server::ReverseError::Url { .. }) => {
            eprintln!("wslink: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("wslink: {e}");
            return ExitCode::from(3);
        }
    };
    // Scripts wait for this line: browsers can connect from now on.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "wslink server connected to the relay at {url}");
    if conformance {
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
    connection.run().await;
    ExitCode::SUCCESS
}
