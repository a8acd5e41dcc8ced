//! The stream's state, its RPC methods and the render loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wslink_server::{CallContext, HandlerError, Server, ServerBuilder, TopicPolicy};

use crate::render::{encode_png, palette_names, palette_table, Plasma};

/// The topic frames are published on.
pub const FRAMES_TOPIC: &str = "image.frames";
/// The topic the settings are published on after every change, so that every
/// open page shows what the others set.
pub const STATE_TOPIC: &str = "image.state";

/// Accepted resolutions, inclusive.
pub const WIDTH_RANGE: (u32, u32) = (16, 3840);
/// Accepted heights, inclusive.
pub const HEIGHT_RANGE: (u32, u32) = (16, 2160);
/// Accepted frame rates, inclusive.
pub const FPS_RANGE: (f64, f64) = (1.0, 120.0);

/// One published frame. `data` is a `Bytes`, so it goes out as msgpack
/// `bin` and arrives in the browser as a `Uint8Array`; `shared_bytes` has
/// the server send it to every 2.x client without copying it into a msgpack
/// buffer.
#[derive(Serialize)]
pub struct Frame {
    /// Frame number, from 0, counting published frames.
    pub seq: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Always `"png"`.
    pub format: &'static str,
    /// Server wall clock (ms since the Unix epoch) when rendering began:
    /// `Date.now() - timestamp_ms` on the same machine is the end-to-end
    /// latency (render, encode, send, decode).
    pub timestamp_ms: u64,
    /// The encoded image.
    #[serde(with = "wslink_server::core::shared_bytes")]
    pub data: Bytes,
}

/// What the clients can change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Target frames per second.
    pub fps: f64,
    /// Palette name, one of [`palette_names`].
    pub palette: String,
}

impl Settings {
    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<(), String> {
        check_resolution(self.width as i64, self.height as i64)?;
        check_fps(self.fps)?;
        check_palette(&self.palette)?;
        Ok(())
    }
}

fn check_resolution(width: i64, height: i64) -> Result<(u32, u32), String> {
    let (w0, w1) = WIDTH_RANGE;
    let (h0, h1) = HEIGHT_RANGE;
    if !(w0 as i64..=w1 as i64).contains(&width) || !(h0 as i64..=h1 as i64).contains(&height) {
        return Err(format!(
            "resolution {width}x{height} is out of range: width must be {w0}..={w1} and height {h0}..={h1}"
        ));
    }
    Ok((width as u32, height as u32))
}

fn check_fps(fps: f64) -> Result<f64, String> {
    let (lo, hi) = FPS_RANGE;
    if !fps.is_finite() || !(lo..=hi).contains(&fps) {
        return Err(format!("fps {fps} is out of range: it must be {lo}..={hi}"));
    }
    Ok(fps)
}

fn check_palette(name: &str) -> Result<(), String> {
    if palette_table(name).is_none() {
        return Err(format!(
            "unknown palette {name:?}; the palettes are {}",
            palette_names().join(", ")
        ));
    }
    Ok(())
}

/// Timings of the last frame, for `image.state`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FrameStats {
    /// Encoded size of the last frame, bytes.
    pub last_frame_bytes: usize,
    /// Time to render the last frame, ms.
    pub last_render_ms: f64,
    /// Time to encode the last frame, ms.
    pub last_encode_ms: f64,
}

/// The reply of `image.state` and of every setter, and the message of
/// [`STATE_TOPIC`].
#[derive(Debug, Clone, Serialize)]
pub struct StateReply {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Target frames per second.
    pub fps: f64,
    /// Current palette.
    pub palette: String,
    /// Every palette name.
    pub palettes: Vec<&'static str>,
    /// Image format of the frames.
    pub format: &'static str,
    /// Frames published so far.
    pub frames_published: u64,
    /// Timings of the last frame.
    #[serde(flatten)]
    pub stats: FrameStats,
}

/// The state shared by the methods and the render thread.
pub struct App {
    settings: Mutex<Settings>,
    stats: Mutex<FrameStats>,
    published: AtomicU64,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    /// New state with these (already validated) settings.
    pub fn new(settings: Settings) -> Arc<Self> {
        Arc::new(App {
            settings: Mutex::new(settings),
            stats: Mutex::new(FrameStats::default()),
            published: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Everything `image.state` reports.
    pub fn state(&self) -> StateReply {
        let s = self.settings();
        StateReply {
            width: s.width,
            height: s.height,
            fps: s.fps,
            palette: s.palette,
            palettes: palette_names(),
            format: "png",
            frames_published: self.published.load(Ordering::Relaxed),
            stats: *lock(&self.stats),
        }
    }

    /// Asks the render thread to end.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn change(&self, ctx: &CallContext, f: impl FnOnce(&mut Settings)) -> StateReply {
        f(&mut lock(&self.settings));
        let state = self.state();
        if let Err(e) = ctx.publisher().publish(STATE_TOPIC, &state) {
            tracing::warn!(error = %e, "cannot publish the state");
        }
        state
    }
}

#[derive(Deserialize)]
struct ResolutionParams {
    width: i64,
    height: i64,
}

#[derive(Deserialize)]
struct FpsParams {
    fps: f64,
}

#[derive(Deserialize)]
struct PaletteParams {
    name: String,
}

/// Adds the `image.*` methods and the frame topic's policy to `builder`.
///
/// Parameters bind positionally or by name: `image.set_resolution(640, 360)`
/// and `image.set_resolution(width=640, height=360)` are the same call.
pub fn register(builder: ServerBuilder, app: &Arc<App>) -> ServerBuilder {
    let (a1, a2, a3, a4) = (app.clone(), app.clone(), app.clone(), app.clone());
    builder
        // A client that cannot keep up gets the newest frame, not a backlog.
        .topic_policy(FRAMES_TOPIC, TopicPolicy::KeepLatest)
        .method(
            "image.set_resolution",
            move |ctx: CallContext, p: ResolutionParams| {
                let app = a1.clone();
                async move {
                    let (width, height) =
                        check_resolution(p.width, p.height).map_err(HandlerError::msg)?;
                    Ok::<_, HandlerError>(app.change(&ctx, |s| {
                        s.width = width;
                        s.height = height;
                    }))
                }
            },
        )
        .method("image.set_fps", move |ctx: CallContext, p: FpsParams| {
            let app = a2.clone();
            async move {
                let fps = check_fps(p.fps).map_err(HandlerError::msg)?;
                Ok::<_, HandlerError>(app.change(&ctx, |s| s.fps = fps))
            }
        })
        .method(
            "image.set_palette",
            move |ctx: CallContext, p: PaletteParams| {
                let app = a3.clone();
                async move {
                    check_palette(&p.name).map_err(HandlerError::msg)?;
                    Ok::<_, HandlerError>(app.change(&ctx, |s| s.palette = p.name))
                }
            },
        )
        .method("image.palettes", |_: CallContext, (): ()| async move {
            Ok::<_, HandlerError>(palette_names())
        })
        .method("image.state", move |_: CallContext, (): ()| {
            let app = a4.clone();
            async move { Ok::<_, HandlerError>(app.state()) }
        })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Renders, encodes and publishes frames at the target rate until
/// [`App::stop`]. Runs on a thread of its own, off the async runtime.
/// Renders nothing while no client is connected.
pub fn render_loop(app: Arc<App>, server: Server) {
    let publisher = server.publisher();
    let start = Instant::now();
    let mut plasma = Plasma::new();
    let mut indices = Vec::new();
    let mut palette_name = String::new();
    let mut palette = Vec::new();
    let mut last: Option<Instant> = None;
    while !app.stop.load(Ordering::Relaxed) {
        let settings = app.settings();
        let period = Duration::from_secs_f64(1.0 / settings.fps);
        let now = Instant::now();
        if let Some(due) = last.map(|l| l + period) {
            if now < due {
                // Short naps: a new frame rate or a stop takes effect at once.
                std::thread::sleep((due - now).min(Duration::from_millis(20)));
                continue;
            }
            // On schedule, keep the cadence; more than a frame late, restart it.
            last = Some(if now - due < period { due } else { now });
        } else {
            last = Some(now);
        }
        if server.client_ids().is_empty() {
            continue;
        }
        if settings.palette != palette_name {
            palette = palette_table(&settings.palette).unwrap_or_default();
            palette_name = settings.palette.clone();
        }
        let timestamp_ms = now_ms();
        // Wrapped so that f32 keeps its precision on a long run.
        let t = (start.elapsed().as_secs_f64() % 3600.0) as f32;
        let (w, h) = (settings.width, settings.height);
        let t0 = Instant::now();
        plasma.render(w as usize, h as usize, t, &mut indices);
        let t1 = Instant::now();
        let data = match encode_png(w, h, &indices, &palette) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "PNG encoding failed");
                continue;
            }
        };
        let t2 = Instant::now();
        *lock(&app.stats) = FrameStats {
            last_frame_bytes: data.len(),
            last_render_ms: (t1 - t0).as_secs_f64() * 1e3,
            last_encode_ms: (t2 - t1).as_secs_f64() * 1e3,
        };
        let frame = Frame {
            seq: app.published.fetch_add(1, Ordering::Relaxed),
            width: w,
            height: h,
            format: "png",
            timestamp_ms,
            data: Bytes::from(data),
        };
        if let Err(e) = publisher.publish(FRAMES_TOPIC, &frame) {
            tracing::error!(error = %e, "cannot publish a frame");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced_with_clear_messages() {
        assert_eq!(check_resolution(640, 360), Ok((640, 360)));
        assert_eq!(check_resolution(3840, 2160), Ok((3840, 2160)));
        let e = check_resolution(15, 360).unwrap_err();
        assert!(e.contains("15x360") && e.contains("16..=3840"), "{e}");
        assert!(check_resolution(640, 2161).is_err());
        assert!(check_resolution(-1, 10).is_err());
        assert_eq!(check_fps(30.0), Ok(30.0));
        assert!(check_fps(0.5).is_err());
        assert!(check_fps(121.0).is_err());
        assert!(check_fps(f64::NAN).is_err());
        assert!(check_palette("fire").is_ok());
        let e = check_palette("mauve").unwrap_err();
        assert!(e.contains("rainbow"), "{e}");
    }
}
