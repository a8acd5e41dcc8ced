//! `wslink relay`: Kitware's `python -m wslink.relay` (same flags, both
//! modes), with the bounds it lacks. The relay itself is the
//! `wslink-relay` crate.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wslink_relay::{Mode, Relay, RelayConfig};

pub(crate) const RELAY_HELP: &str = "\
Modes:
  relay    servers connect out to ws://HOST:PORT/proxy/ID (wslink serve
           --reverse-url, or Kitware's --reverse-url) and a browser connects
           to the same URL; one browser at a time per server
  forward  (the default, as in Kitware's) a browser connects to the route
           and the relay connects to ws://{host=localhost}:{port}/{path=ws}

Close codes a browser may get: 4404 no server on this path, 4409 path
busy (one browser per server), 4408 dropped for not reading, 4502 forward
target unreachable, 1001 the server left or the relay stops.
WSLINK_MAX_MSG_SIZE and WSLINK_HEART_BEAT are read as Kitware's relay
reads them. SIGINT or SIGTERM stops the relay.

Exit codes:
  0  stopped by SIGINT or SIGTERM
  2  a bad option (--mode, --proxy-route, --www)
  3  cannot listen on the address";

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// The interface to listen on.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// The port to listen on (0 picks a free one; the first line printed
    /// says which).
    #[arg(long, short = 'p', default_value_t = 8080)]
    port: u16,
    /// forward or relay.
    #[arg(long, default_value = "forward")]
    mode: String,
    /// A directory to serve as static files (`/` redirects to index.html).
    #[arg(long = "www")]
    www_path: Option<PathBuf>,
    /// The WebSocket route, aiohttp style: `{name}` is one path segment,
    /// `{name:regex}` a regex. In forward mode `{host}`, `{port}` and
    /// `{path}` make the target URL.
    #[arg(long = "proxy-route", default_value = "/proxy/{port}")]
    proxy_route: String,
    /// Drop a side that does not take a message for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    stall_timeout: f64,
    /// WebSocket connections open at once; more get HTTP 503.
    #[arg(long, default_value_t = 1000)]
    max_connections: usize,
    /// Largest message either side may send, in bytes (default:
    /// WSLINK_MAX_MSG_SIZE, 4 MiB, plus 4096 for chunk headers).
    #[arg(long)]
    max_message_size: Option<usize>,
    /// Log debugging messages too.
    #[arg(long)]
    debug: bool,
}

pub(crate) async fn run(args: RelayArgs) -> ExitCode {
    let level = if args.debug {
        tracing_subscriber::filter::LevelFilter::DEBUG
    } else {
        tracing_subscriber::filter::LevelFilter::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let mode: Mode = match args.mode.parse() {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    let Some(stall) = Duration::try_from_secs_f64(args.stall_timeout)
        .ok()
        .filter(|d| !d.is_zero())
    else {
        return usage("--stall-timeout: a positive number of seconds");
    };
    let mut config = RelayConfig {
        mode,
        proxy_route: args.proxy_route,
        www: args.www_path,
        stall_timeout: stall,
        max_connections: args.max_connections.max(1),
        ..RelayConfig::from_env()
    };
    if let Some(size) = args.max_message_size {
        config.max_message_size = size.max(1024);
    }
    let route = config.proxy_route.clone();
    let relay = match Relay::new(config) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let bound = match relay.bind((args.host.as_str(), args.port)).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("wslink: {e}");
            return ExitCode::from(3);
        }
    };
    let stop = crate::signals::StopSignal::install();
    // Scripts wait for this line to learn the port when they pass `--port 0`.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "wslink relay on ws://{}{route} (mode {})",
        bound.local_addr(),
        args.mode
    );
    let _ = out.flush();
    drop(out);
    bound.run_until(stop.recv()).await;
    ExitCode::SUCCESS
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("wslink: {e}");
    ExitCode::from(2)
}
