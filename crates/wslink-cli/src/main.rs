//! `wslink`: call methods on a wslink server, follow its topics, or serve.
//!
//! ```text
//! wslink call ws://127.0.0.1:8080/ws conformance.add 2 3          # prints 5
//! wslink call ws://127.0.0.1:8080/ws conformance.blob 1000 --save-binary out/
//! wslink subscribe ws://127.0.0.1:8080/ws viewport.image --count 10
//! wslink serve --port 8080 --content www/
//! wslink launch launcher.json      # a server process per browser session
//! wslink relay --mode relay --port 9000   # servers behind a firewall connect out to it
//! ```
//!
//! Run `wslink --help` for the exit codes.

mod relay;
mod render;
mod serve;
mod signals;
mod ssl;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wslink_client::{Client, Error, Generation, Map, Value};
use wslink_core::protocol::codes;

use render::Renderer;

/// Exit codes, one per kind of failure.
mod exit {
    /// The server answered with an error (exception, unknown method, ...).
    pub const RPC_ERROR: u8 = 1;
    /// The command line is wrong (bad option, argument that is not JSON, ...).
    pub const USAGE: u8 = 2;
    /// Could not connect, or the server refused the secret.
    pub const CONNECT: u8 = 3;
    /// No reply in time.
    pub const TIMEOUT: u8 = 4;
    /// The connection was lost, or the server broke the protocol.
    pub const CONNECTION_LOST: u8 = 5;
    /// A local file could not be written (--save-binary).
    pub const LOCAL_IO: u8 = 6;
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the server answered with an error (exception, method not found, ...)
  2  usage error (unknown option, an argument that is not JSON, a bad URL)
  3  cannot connect, or authentication failed (wrong --secret)
  4  timed out (see --timeout)
  5  the connection was lost, or the server broke the protocol
  6  a local file could not be written (--save-binary)

Binary values print as {\"$binary\": {\"len\": N, \"sha256\": \"<hex>\"}}; with
--save-binary DIR they are also written to DIR/binary-N.bin and the object
gets a \"file\" entry. Integers print exactly (the full i64/u64 range).";

/// Talk to a wslink server (RPC and pub/sub over WebSocket) from a shell.
#[derive(Debug, Parser)]
#[command(name = "wslink", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Call a method and print its result as one line of JSON.
    #[command(after_help = EXIT_CODES, allow_negative_numbers = true)]
    Call(CallArgs),
    /// Print the messages published on a topic, one JSON line each.
    #[command(after_help = EXIT_CODES)]
    Subscribe(SubscribeArgs),
    /// Run a wslink server; takes the flags of Kitware's `python -m
    /// wslink.server` (unique prefixes of long flags too, as argparse).
    #[command(infer_long_args = true, after_help = serve::SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Start a server process per browser session, from a configuration
    /// file in the format of Kitware's `python -m wslink.launcher`.
    #[cfg(unix)]
    #[command(after_help = LAUNCH_HELP)]
    Launch(LaunchArgs),
    /// Relay WebSockets: servers behind a firewall connect out to it and
    /// browsers reach them through it (Kitware's `python -m wslink.relay`).
    #[command(after_help = relay::RELAY_HELP)]
    Relay(relay::RelayArgs),
}

#[cfg(unix)]
const LAUNCH_HELP: &str = "\
Sessions: POST /ENDPOINT/ with {\"application\": NAME}; GET and DELETE
/ENDPOINT/ID when WSLINK_LAUNCHER_GET=1 / WSLINK_LAUNCHER_DELETE=1.
SIGINT or SIGTERM stops every session, then the launcher. The README's
\"Launcher\" section describes the configuration and its extensions
(proxy, ${secretFile}, env, limits).

Exit codes:
  0  stopped by SIGINT or SIGTERM
  2  the configuration file is unreadable or invalid
  3  cannot listen on the configured address";

#[cfg(unix)]
#[derive(Debug, Args)]
struct LaunchArgs {
    /// The configuration file (Kitware's launcher format, comments allowed).
    config: PathBuf,
    /// Listen on this address instead of configuration.host.
    #[arg(long)]
    host: Option<String>,
    /// Listen on this port instead of configuration.port (0 picks a free
    /// one; the first line printed says which).
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// Log debugging messages too.
    #[arg(long, short = 'd')]
    debug: bool,
    /// Accepted for compatibility with Kitware's launcher, which has one
    /// backend (aiohttp) too.
    #[arg(long, hide = true)]
    backend: Option<String>,
}

/// How to connect.
#[derive(Debug, Clone, Args)]
struct ConnectArgs {
    /// The secret for the hello.
    #[arg(long, default_value = wslink_core::protocol::DEFAULT_SECRET)]
    secret: String,
    /// Speak wslink 1.x (JSON text frames with binary attachments) instead
    /// of 2.x (msgpack).
    #[arg(long)]
    legacy: bool,
    /// For wss:// URLs: also trust the certificates of this PEM file (a
    /// private CA, or a server's self-signed certificate) besides the
    /// public CAs.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// For wss:// URLs: accept any certificate, for any name (e.g. a Python
    /// server started with --ssl adhoc). The traffic is then open to
    /// anyone on the path; prefer --ca.
    #[arg(long, short = 'k', conflicts_with = "ca")]
    insecure: bool,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// The server's WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
    url: String,
    /// The method, e.g. viewport.image.render.
    method: String,
    /// Positional arguments, each one JSON value: 2, 0.5, true, null,
    /// '"text"' (quotes included), '[1,2]', '{"a":1}'.
    #[arg(value_name = "ARG")]
    args: Vec<String>,
    /// Keyword arguments, as one JSON object.
    #[arg(long, value_name = "JSON")]
    kwargs: Option<String>,
    /// Write each binary value of the result to a file in DIR (created if
    /// needed).
    #[arg(long, value_name = "DIR")]
    save_binary: Option<PathBuf>,
    /// Give up after this many seconds (connecting, then the call).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    timeout: f64,
    /// On an exception, also print the server's traceback.
    #[arg(long)]
    show_trace: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
struct SubscribeArgs {
    /// The server's WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
    url: String,
    /// The topic, e.g. viewport.image.
    topic: String,
    /// Exit after this many messages (default: run until the connection ends).
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Write each binary value to a file in DIR (created if needed).
    #[arg(long, value_name = "DIR")]
    save_binary: Option<PathBuf>,
    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// A failure, ready to be reported.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Call(args) => call(args).await,
        Command::Subscribe(args) => subscribe(args).await,
        Command::Serve(args) => return serve::run(args).await,
        #[cfg(unix)]
        Command::Launch(args) => return launch(args).await,
        Command::Relay(args) => return relay::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("wslink: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Log lines go to stderr and, when the configuration has a `log_dir`, to
/// `launcherLog.log` there (as Kitware's launcher names it).
#[cfg(unix)]
#[derive(Clone)]
struct LogTee(Option<std::sync::Arc<std::sync::Mutex<std::fs::File>>>);

#[cfg(unix)]
struct LogTeeWriter<'a>(&'a LogTee);

#[cfg(unix)]
impl Write for LogTeeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        if let Some(file) = &self.0 .0 {
            let _ = file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogTee {
    type Writer = LogTeeWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogTeeWriter(self)
    }
}

/// `wslink launch`: runs until SIGINT or SIGTERM, then stops every session.
#[cfg(unix)]
async fn launch(args: LaunchArgs) -> ExitCode {
    let _ = &args.backend;
    let mut config = match wslink_launcher::Config::from_file(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wslink: {}: {e}", args.config.display());
            return ExitCode::from(exit::USAGE);
        }
    };
    if let Some(host) = args.host {
        config.configuration.host = host;
    }
    if let Some(port) = args.port {
        config.configuration.port = port;
    }
    let log_file = config.configuration.log_dir.as_ref().and_then(|dir| {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::File::create(dir.join("launcherLog.log")))
            .map_err(|e| {
                eprintln!(
                    "wslink: cannot write {}/launcherLog.log: {e}",
                    dir.display()
                )
            })
            .ok()
    });
    let level = if args.debug {
        tracing_subscriber::filter::LevelFilter::DEBUG
    } else {
        tracing_subscriber::filter::LevelFilter::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(LogTee(
            log_file.map(|f| std::sync::Arc::new(std::sync::Mutex::new(f))),
        ))
        .try_init();
    let endpoint = config.configuration.endpoint.clone();
    let launcher =
        match wslink_launcher::Launcher::new(config, wslink_launcher::ApiOptions::from_env()) {
            Ok(launcher) => launcher,
            Err(e) => {
                eprintln!("wslink: {e}");
                return ExitCode::from(exit::USAGE);
            }
        };
    let bound = match launcher.bind_configured().await {
        Ok(bound) => bound,
        Err(e) => {
            let s = &launcher.sessions().config().configuration;
            eprintln!("wslink: cannot listen on {}:{}: {e}", s.host, s.port);
            return ExitCode::from(exit::CONNECT);
        }
    };
    let stop = wslink_launcher::terminate_signal();
    // Scripts wait for this line to learn the port when they pass `--port 0`.
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "wslink launcher on http://{}/{endpoint}/",
        bound.local_addr()
    );
    let _ = out.flush();
    drop(out);
    bound.run_until(stop).await;
    ExitCode::SUCCESS
}

fn seconds(secs: f64, option: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!("{option} must be a positive number of seconds, not {secs}"),
            )
        })
}

fn parse_json(text: &str, what: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        let looks_like_text = !text.trim_start().starts_with(['{', '[', '"']);
        let hint = if looks_like_text {
            format!(
                "; to pass a string, quote it as JSON, e.g. '{}'",
                serde_json::to_string(text).unwrap_or_default()
            )
        } else {
            String::new()
        };
        Failure::new(
            exit::USAGE,
            format!("{what} {text:?} is not valid JSON ({e}){hint}"),
        )
    })
}

fn prepare_dir(dir: &Option<PathBuf>) -> Result<(), Failure> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::new(
                exit::LOCAL_IO,
                format!("cannot create directory {}: {e}", dir.display()),
            )
        })?;
    }
    Ok(())
}

async fn connect(url: &str, args: &ConnectArgs, timeout: Duration) -> Result<Client, Failure> {
    let mut builder = Client::builder(url);
    if let Some(ca) = &args.ca {
        builder = builder.ca_file(ca);
    }
    if args.insecure {
        eprintln!("wslink: warning: --insecure: the server's certificate is not checked");
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .secret(&args.secret)
        .generation(if args.legacy {
            Generation::V1
        } else {
            Generation::V2
        })
        .connect_timeout(timeout)
        .call_timeout(timeout)
        .subscription_buffer(4096)
        .connect()
        .await
        .map_err(|e| describe(&e, url, false))
}

async fn call(args: CallArgs) -> Result<(), Failure> {
    let timeout = seconds(args.timeout, "--timeout")?;
    let positional = args
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| parse_json(a, &format!("argument {}", i + 1)))
        .collect::<Result<Vec<Value>, _>>()?;
    let kwargs: Map = match &args.kwargs {
        None => Vec::new(),
        Some(text) => match parse_json(text, "--kwargs")? {
            Value::Map(entries) => entries,
            other => {
                return Err(Failure::new(
                    exit::USAGE,
                    format!(
                        "--kwargs must be a JSON object, like '{{\"name\": 1}}', not {}",
                        other.kind()
                    ),
                ))
            }
        },
    };
    prepare_dir(&args.save_binary)?;

    let client = connect(&args.url, &args.connect, timeout).await?;
    let result = client
        .call_with_timeout(&args.method, positional, kwargs, timeout)
        .await;
    client.close().await;
    let value = result.map_err(|e| describe(&e, &args.url, args.show_trace))?;
    let line = Renderer::new(args.save_binary)
        .render(&value)
        .map_err(|e| Failure::new(exit::LOCAL_IO, e.to_string()))?;
    print_line(&line)
}

async fn subscribe(args: SubscribeArgs) -> Result<(), Failure> {
    let timeout = seconds(args.timeout, "--timeout")?;
    prepare_dir(&args.save_binary)?;
    let client = connect(&args.url, &args.connect, timeout).await?;
    let mut sub = client
        .subscribe(&args.topic)
        .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
    let mut renderer = Renderer::new(args.save_binary);
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        let Some(message) = sub.recv().await else {
            let reason = client
                .close_reason()
                .map_or_else(|| "connection closed".to_owned(), |e| e.to_string());
            return Err(Failure::new(
                exit::CONNECTION_LOST,
                format!("{reason} (after {seen} messages)"),
            ));
        };
        seen += 1;
        let line = renderer
            .render(&message)
            .map_err(|e| Failure::new(exit::LOCAL_IO, e.to_string()))?;
        print_line(&line)?;
    }
    if sub.dropped() > 0 {
        eprintln!(
            "wslink: {} messages were dropped because the output was too slow",
            sub.dropped()
        );
    }
    drop(sub);
    client.close().await;
    Ok(())
}

fn print_line(line: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // `wslink ... | head -1`: the reader is gone, which is no failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Failure::new(
            exit::LOCAL_IO,
            format!("cannot write to stdout: {e}"),
        )),
    }
}

/// A person-readable message and an exit code for a client error.
fn describe(err: &Error, url: &str, show_trace: bool) -> Failure {
    match err {
        Error::InvalidUrl { reason, .. } => Failure::new(
            exit::USAGE,
            format!(
                "{url:?} is not a usable WebSocket URL ({reason}); expected ws://HOST:PORT/PATH or wss://"
            ),
        ),
        e @ Error::Connect { .. } if e.is_connection_refused() => Failure::new(
            exit::CONNECT,
            format!(
                "cannot connect to {url}: connection refused (is a wslink server listening there?)"
            ),
        ),
        e @ Error::Connect { .. } if e.to_string().contains("certificate") => Failure::new(
            exit::CONNECT,
            format!("{e} (a private CA or self-signed server? trust its certificate with --ca FILE)"),
        ),
        e @ Error::Connect { .. } => Failure::new(exit::CONNECT, e.to_string()),
        e @ Error::CaFile { .. } => Failure::new(exit::USAGE, format!("--ca: {e}")),
        Error::Auth { code, message, .. } => Failure::new(
            exit::CONNECT,
            format!(
                "authentication failed at {url}: the server refused the secret \
                 (error {code}: {message}); pass the right one with --secret"
            ),
        ),
        Error::Rpc {
            method,
            code,
            message,
            data,
        } => {
            let text = match *code {
                codes::METHOD_NOT_FOUND => format!(
                    "method not found: {method} (the server has no method registered under that name; error {code}: {message})"
                ),
                codes::EXCEPTION_ERROR => {
                    let mut text = format!(
                        "{method} raised an exception on the server: {}",
                        err.exception().unwrap_or(message)
                    );
                    let trace = data
                        .as_ref()
                        .and_then(|d| d.get("trace"))
                        .and_then(Value::as_str);
                    if let Some(trace) = trace.filter(|_| show_trace) {
                        text.push_str("\nserver traceback:\n");
                        text.push_str(trace.trim_end());
                    }
                    text
                }
                codes::AUTHENTICATION_ERROR => format!(
                    "{method}: the server refused the call as unauthenticated (error {code}: {message})"
                ),
                _ => {
                    let detail = data.as_ref().map_or_else(String::new, |d| {
                        Renderer::new(None)
                            .render(d)
                            .map(|s| format!(", data {s}"))
                            .unwrap_or_default()
                    });
                    format!("{method} failed: error {code}: {message}{detail}")
                }
            };
            Failure::new(exit::RPC_ERROR, text)
        }
        Error::Timeout { method, after } if method == wslink_core::protocol::HELLO_METHOD => {
            Failure::new(
                exit::TIMEOUT,
                format!(
                    "timed out: {url} did not complete the connection and hello within {} s",
                    after.as_secs_f64()
                ),
            )
        }
        Error::Timeout { method, after } => Failure::new(
            exit::TIMEOUT,
            format!(
                "timed out: no reply to {method} within {} s (raise it with --timeout)",
                after.as_secs_f64()
            ),
        ),
        e @ (Error::InvalidArgs { .. } | Error::InvalidTopic(_)) => {
            Failure::new(exit::USAGE, e.to_string())
        }
        e => Failure::new(exit::CONNECTION_LOST, e.to_string()),
    }
}
