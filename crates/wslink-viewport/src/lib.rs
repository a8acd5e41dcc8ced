//! # wslink-viewport
//!
//! Remote rendering for Kitware's vtk.js `RemoteView` on a
//! [`wslink_server`]: a Rust renderer implements [`View`], registers it
//! under a view id, and an unmodified vtk.js `RemoteView` (connected with
//! npm wslink's `SmartConnect`, 2.x or 1.x) shows its frames and sends it
//! the user's drags and wheel turns. This crate speaks the VTK Web
//! image-delivery protocol that ParaView Web and trame use, and owns the
//! rest: per-view size, quality and ratio, observers, render threads,
//! JPEG/PNG encoding, pacing.
//!
//! ```no_run
//! use wslink_server::Server;
//! use wslink_viewport::{Frame, Interaction, RenderError, View, Viewport};
//!
//! /// A gradient whose hue follows the last click.
//! struct Gradient { hue: u8 }
//!
//! impl View for Gradient {
//!     fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError> {
//!         let (w, h) = (frame.width(), frame.height());
//!         let rgb = frame.rgb_mut();
//!         for y in 0..h {
//!             for x in 0..w {
//!                 rgb.extend_from_slice(&[self.hue, (x * 255 / w) as u8, (y * 255 / h) as u8]);
//!             }
//!         }
//!         Ok(())
//!     }
//!     fn interact(&mut self, event: &Interaction) -> bool {
//!         if let Interaction::Mouse(m) = event {
//!             self.hue = (m.x * 255.0) as u8;
//!             return true;
//!         }
//!         false
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let viewport = Viewport::builder().view("1", Gradient { hue: 0 }).build()?;
//!     Server::builder()
//!         .secret("wslink-secret")
//!         .protocol(viewport)
//!         .build()
//!         .serve("127.0.0.1:8080")
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! ## The protocol
//!
//! Frames go out on `viewport.image.push.subscription` as
//! `{image, id, size: [w, h], format, quality, memsize, mtime, workTime,
//! stale, eventCount}`; vtk.js filters them on `id`. The methods are
//! `viewport.image.push.observer.add` / `.remove`, `viewport.image.push`,
//! `.push.original.size`, `.push.quality`, `.push.invalidate.cache`,
//! `.push.enabled`, `viewport.image.animation.fps.max` / `.fps.get` /
//! `.start` / `.stop`, `viewport.camera.reset`, `viewport.camera.update`,
//! `viewport.camera.update.params`, `viewport.mouse.interaction` and
//! `viewport.mouse.zoom.wheel`. View id `-1` (or `"-1"`) names the
//! default view. PROTOCOL.md §7 has each call's arguments and reply.
//!
//! ## What it guarantees
//!
//! - Renders run on the view's own thread, never on the async runtime:
//!   calls and other clients keep flowing while a frame renders.
//! - At most one render in flight per view; requests that arrive during
//!   it are folded into the next (latest wins), and a drag's moves
//!   coalesce, so a flood of mouse events keeps memory flat.
//! - Frames are keep-latest per view: a slow browser gets fresh frames,
//!   not a growing delay.
//! - Nothing is rendered for a view without observers; an observer is
//!   dropped when its connection closes.
//! - Malformed calls (unknown view, a size of 0 or past the bound, a
//!   quality outside 0–100, a mouse event with a field missing or of the
//!   wrong type) get an error reply naming the problem and change nothing.

#![warn(missing_docs)]

mod encode;
mod error;
mod event;
mod protocol;
mod render;
mod state;
mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wslink_server::Publisher;

pub use encode::{encode, EncodeError};
pub use error::{InputError, ViewportError};
pub use event::{
    Buttons, CameraUpdate, Interaction, Modifiers, MouseAction, MouseEvent, WheelEvent, WheelPhase,
};
pub use state::Stats;
pub use view::{Frame, ImageFormat, PixelLayout, RenderError, View};
pub use wslink_core::Value;

use crate::state::Slot;

/// The topic vtk.js's `ImageStream` subscribes to.
pub const FRAME_TOPIC: &str = "viewport.image.push.subscription";

/// Limits and defaults of a viewport.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub format: ImageFormat,
    pub max_dimension: u32,
    pub max_pixels: u64,
    pub initial_size: (u32, u32),
    pub broadcast: bool,
}

pub(crate) struct Shared {
    pub views: Vec<Arc<Slot>>,
    pub by_id: HashMap<String, usize>,
    pub default_view: usize,
    pub publisher: OnceLock<Publisher>,
    /// The animation rate, as f64 bits (`viewport.image.animation.fps.max`).
    pub fps_max: AtomicU64,
    pub config: Config,
}

impl Shared {
    pub fn animation_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from_bits(self.fps_max.load(Ordering::Relaxed)))
    }
}

/// The image-delivery protocol over a set of views: give it to
/// [`ServerBuilder::protocol`](wslink_server::ServerBuilder::protocol).
///
/// Each view's render thread starts with [`ViewportBuilder::build`] and
/// ends when the server that holds the viewport is dropped.
///
/// ```
/// use wslink_server::Server;
/// use wslink_viewport::{Frame, RenderError, View, Viewport};
///
/// struct Black;
/// impl View for Black {
///     fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError> {
///         let n = frame.width() as usize * frame.height() as usize * 3;
///         frame.rgb_mut().resize(n, 0);
///         Ok(())
///     }
/// }
///
/// let viewport = Viewport::builder().view("1", Black).view("2", Black).build().unwrap();
/// let stats = viewport.handle();
/// let server = Server::builder().protocol(viewport).build();
/// assert!(server.method_names().contains(&"viewport.image.push".to_string()));
/// assert_eq!(stats.view_ids(), ["1", "2"]);
/// ```
pub struct Viewport {
    shared: Arc<Shared>,
}

impl Viewport {
    /// Starts a viewport.
    pub fn builder() -> ViewportBuilder {
        ViewportBuilder::default()
    }

    /// A handle to read the views' state after the viewport has gone to
    /// the server.
    pub fn handle(&self) -> ViewportHandle {
        ViewportHandle {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Viewport {
    fn drop(&mut self) {
        for slot in &self.shared.views {
            slot.update(|st| st.shutdown = true);
        }
    }
}

/// Reads a viewport's views from outside the server (tests, status pages).
///
/// ```
/// # use wslink_viewport::{Frame, RenderError, View, Viewport};
/// # struct Black;
/// # impl View for Black {
/// #     fn render(&mut self, _frame: &mut Frame) -> Result<(), RenderError> { Ok(()) }
/// # }
/// let viewport = Viewport::builder().view("main", Black).build().unwrap();
/// let handle = viewport.handle();
/// let stats = handle.stats("main").unwrap();
/// assert_eq!((stats.frames, handle.observers("main")), (0, Some(0)));
/// ```
#[derive(Clone)]
pub struct ViewportHandle {
    shared: Arc<Shared>,
}

impl ViewportHandle {
    /// The registered view ids, in registration order.
    pub fn view_ids(&self) -> Vec<&str> {
        self.shared.views.iter().map(|s| &*s.id).collect()
    }

    /// A view's counters (`None` for an unknown id; `-1` is the default view).
    pub fn stats(&self, view: &str) -> Option<Stats> {
        self.slot(view).map(|s| s.lock().stats)
    }

    /// How many observers a view has, across clients.
    pub fn observers(&self, view: &str) -> Option<u32> {
        self.slot(view)
            .map(|s| s.lock().observers.values().copied().sum())
    }

    fn slot(&self, view: &str) -> Option<&Arc<Slot>> {
        if view == "-1" {
            return self.shared.views.get(self.shared.default_view);
        }
        self.shared.by_id.get(view).map(|&i| &self.shared.views[i])
    }
}

/// Builds a [`Viewport`].
///
/// ```
/// use wslink_viewport::{Frame, ImageFormat, RenderError, View, Viewport};
///
/// struct Black;
/// impl View for Black {
///     fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError> {
///         let n = frame.width() as usize * frame.height() as usize * 3;
///         frame.rgb_mut().resize(n, 0);
///         Ok(())
///     }
/// }
///
/// let viewport = Viewport::builder()
///     .view("left", Black)
///     .view("right", Black)
///     .default_view("right")        // what RemoteView's -1 means
///     .format(ImageFormat::Png)
///     .max_pixels(1920 * 1080)
///     .build()
///     .unwrap();
/// # drop(viewport);
/// ```
pub struct ViewportBuilder {
    views: Vec<(String, Box<dyn View>)>,
    default_view: Option<String>,
    config: Config,
    fps_max: f64,
}

impl Default for ViewportBuilder {
    fn default() -> Self {
        ViewportBuilder {
            views: Vec::new(),
            default_view: None,
            config: Config {
                format: ImageFormat::Jpeg,
                max_dimension: 8192,
                max_pixels: 3840 * 2160,
                // vtk.js's ImageStream creates views at 400x400.
                initial_size: (400, 400),
                broadcast: false,
            },
            fps_max: 30.0,
        }
    }
}

impl ViewportBuilder {
    /// Registers `view` under `id` (vtk.js sends ids as strings or
    /// numbers; `2` and `"2"` both reach view `"2"`).
    pub fn view(mut self, id: impl Into<String>, view: impl View) -> Self {
        self.views.push((id.into(), Box::new(view)));
        self
    }

    /// The view that id `-1` (RemoteView's default) names; the first
    /// registered one unless set.
    pub fn default_view(mut self, id: impl Into<String>) -> Self {
        self.default_view = Some(id.into());
        self
    }

    /// The image format of frames (JPEG unless set).
    pub fn format(mut self, format: ImageFormat) -> Self {
        self.config.format = format;
        self
    }

    /// The largest width or height a client may ask for (8192 unless set).
    pub fn max_dimension(mut self, pixels: u32) -> Self {
        self.config.max_dimension = pixels.max(1);
        self
    }

    /// The most pixels a frame may have (3840×2160 unless set). A size
    /// over it is refused; a ratio that would pass it renders smaller.
    pub fn max_pixels(mut self, pixels: u64) -> Self {
        self.config.max_pixels = pixels.max(1);
        self
    }

    /// Sends every view's frames to every client, as ParaView does,
    /// instead of to the view's observers only (the default). Only for a
    /// client that shows frames of views it never observed; vtk.js
    /// filters them out, so for it this only costs bandwidth.
    pub fn broadcast_frames(mut self, broadcast: bool) -> Self {
        self.config.broadcast = broadcast;
        self
    }

    /// The initial animation rate (30 fps unless set; clients change it
    /// with `viewport.image.animation.fps.max`).
    pub fn animation_fps(mut self, fps: f64) -> Self {
        if fps.is_finite() && fps > 0.0 {
            self.fps_max = fps.min(protocol::MAX_FPS);
        }
        self
    }

    /// Starts each view's render thread.
    pub fn build(self) -> Result<Viewport, ViewportError> {
        if self.views.is_empty() {
            return Err(ViewportError::NoViews);
        }
        let mut by_id = HashMap::new();
        for (i, (id, _)) in self.views.iter().enumerate() {
            if by_id.insert(id.clone(), i).is_some() {
                return Err(ViewportError::DuplicateView(id.clone()));
            }
        }
        let default_view = match &self.default_view {
            None => 0,
            Some(id) => *by_id
                .get(id)
                .ok_or_else(|| ViewportError::UnknownDefault(id.clone()))?,
        };
        let slots: Vec<Arc<Slot>> = self
            .views
            .iter()
            .map(|(id, _)| Arc::new(Slot::new(id.as_str().into(), self.config.initial_size, 100)))
            .collect();
        let shared = Arc::new(Shared {
            views: slots.clone(),
            by_id,
            default_view,
            publisher: OnceLock::new(),
            fps_max: AtomicU64::new(self.fps_max.to_bits()),
            config: self.config,
        });
        let viewport = Viewport {
            shared: shared.clone(),
        };
        for (slot, (id, view)) in slots.into_iter().zip(self.views) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("wslink-view-{id}"))
                .spawn(move || render::run(slot, view, shared))
                .map_err(|source| ViewportError::Thread {
                    view: id.clone(),
                    source,
                })?;
        }
        Ok(viewport)
    }
}
