//! remote-view: a CPU-rendered 3D scene driven by Kitware's unmodified
//! vtk.js `RemoteView` in the browser. Drag to orbit, wheel (or right-drag)
//! to zoom; frames arrive as JPEG over wslink.
//!
//! ```text
//! bash examples/remote-view/run.sh          # builds the page, then runs this
//! # open http://127.0.0.1:8080/
//! remote-view [--host 127.0.0.1] [--port 8080] [--authKey-file FILE] [--www DIR]
//! ```
//!
//! The secret comes from `--authKey-file` (its first line), `--secret`,
//! `WSLINK_AUTH_KEY` or wslink's default, in that order, as with `wslink
//! serve`.
//!
//! Views `1` (the default, what RemoteView's `-1` names) and `2` show the
//! same torus from their own cameras. The page (`web/`, bundled with
//! esbuild) takes `?view=2` and `?client=wslink2|wslink1|rs`.
//! `remote_view.stats()` reports each view's frames, observers and events.

mod scene;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wslink_server::{CallContext, HandlerError, Server, TrustedProxies};
use wslink_viewport::{
    Frame, Interaction, MouseAction, RenderError, View, Viewport, ViewportHandle,
};

use crate::scene::{Camera, Scene};

#[derive(Parser, Debug)]
#[command(
    name = "remote-view",
    about = "A CPU-rendered scene for vtk.js RemoteView over wslink",
    version
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The wslink hello secret the page must present (default: the
    /// WSLINK_AUTH_KEY environment variable, else wslink-secret). On a
    /// command line it shows in `ps`: prefer --authKey-file or the variable.
    #[arg(
        long,
        visible_alias = "authKey",
        value_name = "SECRET",
        conflicts_with = "secret_file"
    )]
    secret: Option<String>,
    /// Read the secret from this file's first line (a launcher's
    /// `${secretFile}`), so it never shows on a command line.
    #[arg(long = "authKey-file", value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Reverse proxies (addresses or CIDR networks, comma-separated or
    /// repeated) whose X-Forwarded-For names the browser, e.g. 127.0.0.1
    /// behind `wslink launch`'s proxy: failed hellos are then counted per
    /// browser, not for all of them at the proxy's address.
    #[arg(long = "trusted-proxy", value_name = "ADDR[,ADDR...]")]
    trusted_proxy: Vec<TrustedProxies>,
    /// The bundled page (built by `npm run build` in examples/remote-view/web).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist"))]
    www: PathBuf,
}

/// The torus seen through one orbiting camera.
struct TorusView {
    scene: Arc<Scene>,
    camera: Camera,
    /// Where the held button was at the previous event of a drag.
    last: Option<(f64, f64)>,
}

/// Degrees a second the scene turns while a client runs the animation.
const SPIN_DEG_PER_S: f32 = 45.0;

impl View for TorusView {
    fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError> {
        let (w, h) = (frame.width(), frame.height());
        self.scene.render(&self.camera, w, h, frame.rgb_mut());
        Ok(())
    }

    fn interact(&mut self, event: &Interaction) -> bool {
        let before = self.camera;
        match event {
            Interaction::Mouse(m) if m.action == MouseAction::Down => {
                if let Some((px, py)) = self.last {
                    let (dx, dy) = ((m.x - px) as f32, (m.y - py) as f32);
                    if m.buttons.right || (m.buttons.left && m.modifiers.ctrl) {
                        self.camera.zoom(1.0 + dy * 2.0);
                    } else if m.buttons.left {
                        self.camera.orbit(dx, dy);
                    }
                }
                self.last = Some((m.x, m.y));
            }
            Interaction::Mouse(_) => self.last = None,
            Interaction::Wheel(w) => self.camera.zoom(1.1f32.powf(w.spin_y as f32)),
            Interaction::ResetCamera => self.camera = Camera::default(),
            _ => {}
        }
        self.camera != before
    }

    fn animate(&mut self, elapsed: Duration) -> bool {
        self.camera
            .orbit(-SPIN_DEG_PER_S * elapsed.as_secs_f32() / 180.0, 0.0);
        true
    }
}

fn stats(handle: &ViewportHandle) -> serde_json::Value {
    let views = handle
        .view_ids()
        .into_iter()
        .map(|id| {
            let s = handle.stats(id).unwrap_or_default();
            let value = serde_json::json!({
                "frames": s.frames,
                "observers": handle.observers(id).unwrap_or(0),
                "events": s.events,
                "eventsCoalesced": s.events_coalesced,
                "eventsDropped": s.events_dropped,
                "failures": s.failures,
                "lastWorkMs": s.last_work.as_secs_f64() * 1000.0,
                "lastSize": [s.last_size.0, s.last_size.1],
            });
            (id.to_owned(), value)
        })
        .collect::<serde_json::Map<_, _>>();
    serde_json::json!({ "views": views })
}

/// The environment variable a secret can come from (as `wslink serve`).
const SECRET_ENV: &str = "WSLINK_AUTH_KEY";

/// The secret from `--authKey-file`, `--secret`, the environment, or
/// wslink's default, in that order.
fn resolve_secret(flag: Option<String>, file: Option<&Path>) -> Result<String, String> {
    let Some(path) = file else {
        return Ok(flag
            .or_else(|| std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "wslink-secret".to_owned()));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--authKey-file {}: {e}", path.display()))?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(format!(
            "--authKey-file {}: the first line is empty; put the secret there",
            path.display()
        ));
    }
    // Anyone who can read the file can connect: say so.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
            eprintln!(
                "remote-view: warning: {} is readable by every user of this machine (chmod 600 it)",
                path.display()
            );
        }
    }
    Ok(first.to_owned())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .init();
    let secret = match resolve_secret(args.secret, args.secret_file.as_deref()) {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("remote-view: {message}");
            return ExitCode::from(2);
        }
    };
    let mut trusted_proxies = TrustedProxies::none();
    trusted_proxies.extend(args.trusted_proxy);
    if !args.www.join("index.html").is_file() {
        eprintln!(
            "remote-view: no page at {} (build it: cd examples/remote-view/web && npm ci && npm run build, \
             or run bash examples/remote-view/run.sh)",
            args.www.display()
        );
        return ExitCode::FAILURE;
    }
    let scene = Arc::new(Scene::new());
    let view = |camera| TorusView {
        scene: scene.clone(),
        camera,
        last: None,
    };
    let second = Camera {
        azimuth: -60.0,
        elevation: 45.0,
        ..Camera::default()
    };
    let viewport = match Viewport::builder()
        .view("1", view(Camera::default()))
        .view("2", view(second))
        .build()
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("remote-view: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = viewport.handle();
    let server = Server::builder()
        .secret(secret)
        .trusted_proxies(trusted_proxies)
        .content(args.www)
        .protocol(viewport)
        .method("remote_view.stats", move |_ctx: CallContext, (): ()| {
            let stats = stats(&handle);
            async move { Ok::<_, HandlerError>(stats) }
        })
        .build();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remote-view: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match server.bind((args.host.as_str(), args.port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "remote-view: cannot listen on {}:{}: {e}",
                    args.host, args.port
                );
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr();
        println!("remote-view: open http://{addr}/ (WebSocket ws://{addr}/ws)");
        let shutdown = server.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.shutdown();
        });
        match listener.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("remote-view: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
