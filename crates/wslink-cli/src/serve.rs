//! `wslink serve`: the project's server from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wslink_server::{conformance, AuthThrottle, Server, TrustedProxies};

/// The options of `wslink serve`: every flag of Kitware's `python -m
/// wslink.server` 2.6.0 (`wslink.server.add_arguments`), same spelling and
/// meaning, plus ours.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// The port to listen on (0 picks a free one).
    #[arg(long, short = 'p', default_value_t = 8080)]
    pub port: u16,
    /// A directory of static files to serve over HTTP beside the WebSocket
    /// (`/` redirects to index.html). Empty: none.
    #[arg(long, value_name = "DIR", value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from))]
    pub content: Option<PathBuf>,
    /// More directories under URL prefixes, as Python's server:
    /// "data=/srv/data|images=/srv/img" serves /srv/data/a.txt as
    /// /data/a.txt. The longest prefix wins over shorter ones and --content.
    #[arg(long = "fs-endpoints", value_name = "NAME=DIR|...")]
    pub fs_endpoints: Option<String>,
    /// Expose the conformance service (conformance.* methods) used by the
    /// cross-language tests.
    #[arg(long)]
    pub conformance: bool,
    /// The secret clients must send in their hello (default: the
    /// WSLINK_AUTH_KEY environment variable, else wslink-secret). On a
    /// command line it shows in `ps`: prefer --authKey-file or the variable.
    #[arg(
        long,
        visible_alias = "authKey",
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
    /// Failed hellos from one client address within --auth-window that get
    /// it refused (HTTP 429) for --auth-ban; 0: no per-address limit.
    #[arg(long, value_name = "N", default_value_t = AuthThrottle::default().max_failures)]
    pub auth_max_failures: u32,
    /// The window, in seconds, failed hellos are counted in (from an
    /// address's first failure).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = AuthThrottle::default().window.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=MAX_THROTTLE_SECS)
    )]
    pub auth_window: u64,
    /// How long, in seconds, a banned address is refused.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = AuthThrottle::default().ban.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=MAX_THROTTLE_SECS)
    )]
    pub auth_ban: u64,
    /// A reverse proxy in front of this server (an IP address or a CIDR
    /// network; repeat the flag or separate with commas). From it, the
    /// client is the right-most X-Forwarded-For address that is not itself
    /// a trusted proxy: that address is what --auth-max-failures counts and
    /// what logs show. From any other peer the header is ignored. None by
    /// default.
    #[arg(long = "trusted-proxy", value_name = "ADDR[,ADDR...]")]
    pub trusted_proxy: Vec<wslink_server::TrustedProxies>,
    /// Stop after this many seconds without any WebSocket client (0 or
    /// less: never).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300,
        allow_negative_numbers = true
    )]
    pub timeout: i64,
    /// The WebSocket endpoint's path (e.g. foo/bar/ws; a leading / is
    /// optional).
    #[arg(long, value_name = "PATH", default_value = "ws")]
    pub ws_endpoint: String,
    /// No WebSocket endpoint: serve HTTP only (--content, --fs-endpoints).
    #[arg(long = "no-ws-endpoint")]
    pub no_ws_endpoint: bool,
    /// Do not negotiate permessage-deflate with clients (overrides
    /// WSLINK_WS_COMPRESS).
    #[arg(long = "no-ws-compress")]
    pub no_ws_compress: bool,
    /// Log debugging messages (to stderr).
    #[arg(long)]
    pub debug: bool,
    /// Install no SIGINT/SIGTERM handlers: the signals then end the process
    /// at once, without closing connections (as Python's server, whose flag
    /// this is). Without it, either signal closes every connection with
    /// 1001 and stops cleanly.
    #[arg(long)]
    pub nosignalhandlers: bool,
    /// Serve wss:// and https:// only: "CERT.pem,KEY.pem" (PEM files), or
    /// "adhoc" for a self-signed certificate made at start and kept in
    /// memory (its SHA-256 fingerprints are printed on stderr).
    #[arg(long, value_name = "CERT,KEY|adhoc")]
    pub ssl: Option<crate::ssl::SslArg>,
    /// With --ssl adhoc: write the certificate (not the key) to this PEM
    /// file, for clients to trust (`wslink call --ca FILE`).
    #[arg(long, value_name = "FILE", requires = "ssl")]
    pub ssl_adhoc_cert: Option<PathBuf>,
    /// Connect out to a relay (`wslink relay --mode relay`, or Kitware's)
    /// at this ws:// URL and serve there instead of listening, as Kitware's
    /// `--reverse-url`; browsers connect to the same URL on the relay. Exits
    /// when the relay closes the connection.
    #[arg(long, value_name = "URL")]
    pub reverse_url: Option<String>,
    /// Act as one of several servers sharing a NATS broker at this URL
    /// (`nats://HOST:PORT`, or several comma-separated): a publish on any
    /// of them (`conformance.publish` too) reaches the subscribers of all,
    /// and calls for methods this server lacks go to broker workers. Put
    /// the servers behind a load balancer, or give clients the list of
    /// their URLs (the TypeScript client fails over along it).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// With --broker: the first tokens of every NATS subject, so that
    /// deployments sharing a NATS server do not see each other's messages
    /// (dot-separated words of letters, digits, `_` or `-`).
    #[arg(
        long = "broker-prefix",
        value_name = "PREFIX",
        default_value = "wslink",
        requires = "broker"
    )]
    pub broker_prefix: String,
}

/// The longest --auth-window and --auth-ban: a year.
const MAX_THROTTLE_SECS: u64 = 365 * 24 * 3600;

/// How long `wslink serve --broker` waits for the broker before it says it
/// is ready anyway (the link keeps trying in the background).
const BROKER_WAIT: Duration = Duration::from_secs(10);

/// Parses `--fs-endpoints "name=/dir|other=/dir2"` into (name, dir) pairs.
fn parse_fs_endpoints(spec: &str) -> Result<Vec<(String, PathBuf)>, String> {
    spec.split('|')
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((name, dir)) if !dir.is_empty() => Ok((name.to_owned(), PathBuf::from(dir))),
            _ => Err(format!(
                "--fs-endpoints: {entry:?} is not NAME=DIR (entries are separated by |)"
            )),
        })
        .collect()
}

/// `wslink serve --help`'s epilogue.
pub const SERVE_HELP: &str = "\
Environment (as Kitware's Python server reads it; a bad value is an error):
  WSLINK_AUTH_KEY         the secret, when neither --authKey nor --authKey-file is given
  WSLINK_MAX_MSG_SIZE     largest frame a client may send, announced as maxMsgSize (4194304)
  WSLINK_MSG_OVERHEAD     bytes a frame may exceed it by before the close (4096)
  WSLINK_AUTH_MSG_SIZE    largest message before a successful hello (512)
  WSLINK_HEART_BEAT       seconds between pings; a peer silent for two is dropped; <1: off (30)
  WSLINK_WS_COMPRESS      0: no permessage-deflate (1)
  WSLINK_HTTP_HEADERS     a JSON file {\"Header\": \"value\"} added to HTTP responses
  WSLINK_FOLLOW_SYMLINKS  1: serve links out of --content / --fs-endpoints directories (0)
  WSLINK_READY_MSG        the ready line (\"wslink: Starting factory\"; empty: none)

Output: the first line is \"wslink server on ws://HOST:PORT/ENDPOINT\"; the ready
line follows once connections are taken.

Exit codes:
  0  stopped (SIGINT, SIGTERM, --timeout)
  2  usage error (bad flag, directory, secret file or environment variable)
  3  cannot listen on the address
  5  the server failed while running";

/// The line printed once the server takes connections, for launchers'
/// `ready_line`: Python's, or `WSLINK_READY_MSG` (empty: none).
pub const READY_MSG_ENV: &str = "WSLINK_READY_MSG";
const DEFAULT_READY_MSG: &str = "wslink: Starting factory";

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

/// Runs the server until it stops (SIGINT or SIGTERM, or `--timeout`
/// seconds without a client); returns the process exit code.
pub async fn run(args: ServeArgs) -> ExitCode {
    let level = if args.debug {
        tracing_subscriber::filter::LevelFilter::DEBUG
    } else {
        tracing_subscriber::filter::LevelFilter::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
    let mut builder = if args.conformance {
        conformance::builder()
    } else {
        Server::builder()
    };
    builder = match builder.apply_env() {
        Ok(builder) => builder,
        Err(e) => {
            eprintln!("wslink: {e}");
            return ExitCode::from(2);
        }
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
        .auth_throttle(AuthThrottle {
            max_failures: args.auth_max_failures,
            window: Duration::from_secs(args.auth_window),
            ban: Duration::from_secs(args.auth_ban),
        })
        .trusted_proxies({
            let mut all = TrustedProxies::none();
            all.extend(args.trusted_proxy);
            all
        })
        .refuse_public_default_secret(args.refuse_default_secret)
        .ws_endpoint(args.ws_endpoint)
        .websocket(!args.no_ws_endpoint)
        .idle_timeout((args.timeout > 0).then(|| Duration::from_secs(args.timeout as u64)));
    // As Python: the flag only turns compression off; WSLINK_WS_COMPRESS
    // decides otherwise.
    if args.no_ws_compress {
        builder = builder.compression(false);
    }
    // An empty --content (a launcher's unset variable) means none, as in Python.
    if let Some(dir) = args.content.filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            eprintln!("wslink: --content {}: not a directory", dir.display());
            return ExitCode::from(2);
        }
        builder = builder.content(dir);
    }
    let fs_endpoints = match parse_fs_endpoints(args.fs_endpoints.as_deref().unwrap_or("")) {
        Ok(list) => list,
        Err(message) => {
            eprintln!("wslink: {message}");
            return ExitCode::from(2);
        }
    };
    for (name, dir) in fs_endpoints {
        if !dir.is_dir() {
            eprintln!(
                "wslink: --fs-endpoints {name}={}: not a directory",
                dir.display()
            );
            return ExitCode::from(2);
        }
        builder = builder.fs_endpoint(&name, dir);
    }
    if let Some(ssl) = &args.ssl {
        match crate::ssl::tls_config(ssl, &args.host, args.ssl_adhoc_cert.as_deref()) {
            Ok(tls) => builder = builder.tls(tls),
            Err(message) => {
                eprintln!("wslink: {message}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(url) = &args.broker {
        let config = wslink_server::broker::BrokerConfig::nats(url.as_str())
            .prefix(args.broker_prefix.as_str());
        if let Err(e) = config.check_prefix() {
            eprintln!("wslink: --broker-prefix: {e}");
            return ExitCode::from(2);
        }
        builder = builder.broker(config);
    }
    let server = builder.build();
    if let Some(url) = &args.broker {
        // Ready means shared: publishes of the other servers reach this
        // one's clients from the first connection on.
        if tokio::time::timeout(BROKER_WAIT, server.broker_ready())
            .await
            .is_err()
        {
            eprintln!(
                "wslink: broker {url} not reached within {}s; going on, publishes are not shared until it is",
                BROKER_WAIT.as_secs()
            );
        }
    }
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
    // Scripts wait for the first line to learn the port when they pass
    // `--port 0`; launchers wait for the ready line. Write errors are
    // ignored: whoever started us may have stopped reading.
    let mut out = std::io::stdout().lock();
    let (ws, http) = if server.is_tls() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    if server.config().websocket {
        let endpoint = server.config().ws_endpoint.trim_start_matches('/');
        let _ = writeln!(
            out,
            "wslink server on {ws}://{}/{endpoint}",
            listener.local_addr()
        );
    } else {
        let _ = writeln!(
            out,
            "wslink server on {http}://{}/ (no WebSocket endpoint)",
            listener.local_addr()
        );
    }
    if args.conformance {
        let methods = server.method_names().len();
        let _ = writeln!(out, "conformance service: {methods} methods");
    }
    // The handlers go in before the ready line: a launcher may send SIGTERM
    // as soon as it reads that line, and before then the default action
    // would kill the process instead of stopping it cleanly.
    let stop = (!args.nosignalhandlers).then(crate::signals::StopSignal::install);
    let ready = std::env::var(READY_MSG_ENV).unwrap_or_else(|_| DEFAULT_READY_MSG.to_owned());
    if !ready.is_empty() {
        // Python writes it with no newline; a line is what line readers want
        // and still contains the text a ready_line looks for.
        let _ = writeln!(out, "{ready}");
    }
    let _ = out.flush();
    drop(out);
    if let Some(stop) = stop {
        let stopper = server.clone();
        tokio::spawn(async move {
            stop.recv().await;
            stopper.shutdown();
        });
    }
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
    let stop = crate::signals::StopSignal::install();
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
        stop.recv().await;
        stopper.shutdown();
    });
    connection.run().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_endpoints_parse_as_pythons() {
        assert_eq!(
            parse_fs_endpoints("data=/srv/data|img=rel/dir").unwrap(),
            [
                ("data".to_owned(), PathBuf::from("/srv/data")),
                ("img".to_owned(), PathBuf::from("rel/dir"))
            ]
        );
        // A directory may hold '=' (Python would cut it there).
        assert_eq!(
            parse_fs_endpoints("a=/x=y|").unwrap(),
            [("a".to_owned(), PathBuf::from("/x=y"))]
        );
        assert!(parse_fs_endpoints("").unwrap().is_empty());
        for bad in ["data", "data=", "a=/x|b"] {
            assert!(parse_fs_endpoints(bad).is_err(), "{bad}");
        }
    }
}
