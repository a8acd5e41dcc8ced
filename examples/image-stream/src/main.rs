//! image-stream: a Rust backend renders an animation procedurally, encodes
//! each frame as PNG and publishes it on `image.frames`; the same server
//! serves a page that draws the frames on a canvas, shows fps, latency and
//! bandwidth, and changes resolution, frame rate and palette over RPC.
//!
//! ```text
//! bash examples/image-stream/run.sh        # builds js-client, then runs this
//! # open http://127.0.0.1:8080/
//! image-stream [--host 127.0.0.1] [--port 8080] [--secret wslink-secret]
//!              [--fps 30] [--width 640] [--height 360] [--palette rainbow]
//!              [--www DIR] [--js-client DIR]
//! ```
//!
//! Methods: `image.set_resolution(width, height)`, `image.set_fps(fps)`,
//! `image.set_palette(name)`, `image.palettes()`, `image.state()`.
//! Topics: `image.frames` (keep-latest), `image.state` (after each change).

mod app;
mod render;
mod site;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wslink_server::Server;

use crate::app::{App, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "image-stream",
    about = "Streams a procedural animation as PNG frames over wslink",
    version
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The wslink hello secret the page must present.
    #[arg(long, default_value = "wslink-secret")]
    secret: String,
    /// Target frames per second (1..=120).
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Frame width in pixels (16..=3840).
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Frame height in pixels (16..=2160).
    #[arg(long, default_value_t = 360)]
    height: u32,
    /// Palette: rainbow, fire, ocean, neon or grayscale.
    #[arg(long, default_value = "rainbow")]
    palette: String,
    /// The page's directory.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/www"))]
    www: PathBuf,
    /// The TypeScript client's package directory (its dist/ and node_modules/
    /// are served to the page).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../js-client"))]
    js_client: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings {
        width: args.width,
        height: args.height,
        fps: args.fps,
        palette: args.palette.clone(),
    };
    if let Err(e) = settings.validate() {
        eprintln!("image-stream: {e}");
        return ExitCode::from(2);
    }
    let site = match site::assemble(&args.www, &args.js_client) {
        Ok(site) => site,
        Err(e) => {
            eprintln!("image-stream: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !site.missing.is_empty() {
        eprintln!(
            "image-stream: WARNING: the page cannot load the wslink client; missing: {}\n\
             image-stream: build it first: (cd js-client && npm ci && npm run build), \
             or run examples/image-stream/run.sh, which does",
            site.missing.join(", ")
        );
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("image-stream: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(args, settings, &site));
    drop(site);
    code
}

async fn serve(args: Args, settings: Settings, site: &site::Site) -> ExitCode {
    let app = App::new(settings);
    let builder = Server::builder()
        .secret(args.secret.clone())
        .content(site.dir.clone());
    let server = app::register(builder, &app).build();
    let listener = match server.bind((args.host.as_str(), args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("image-stream: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr();
    let s = app.settings();
    // The page takes a secret other than the default from its URL.
    let query = if args.secret == "wslink-secret" {
        String::new()
    } else {
        format!("?secret={}", url_encode(&args.secret))
    };
    println!(
        "image-stream: {}x{} at {} fps, palette {}; open http://{addr}/{query} (WebSocket ws://{addr}/ws)",
        s.width, s.height, s.fps, s.palette
    );

    let renderer = {
        let (app, server) = (app.clone(), server.clone());
        std::thread::Builder::new()
            .name("render".into())
            .spawn(move || app::render_loop(app, server))
    };
    let renderer = match renderer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("image-stream: cannot start the render thread: {e}");
            return ExitCode::FAILURE;
        }
    };

    {
        let server = server.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            println!("image-stream: shutting down");
            server.shutdown();
        });
    }
    let result = listener.run().await;
    app.stop();
    let _ = tokio::task::spawn_blocking(move || renderer.join()).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image-stream: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
