//! What a renderer implements: [`View`], the [`Frame`] it fills, and the
//! [`Interaction`]s it is told about.

use bytes::Bytes;

use crate::event::Interaction;

/// A renderer the viewport drives.
///
/// Each registered view gets a thread of its own, and every method here is
/// called on that thread, one at a time: a view never renders on the async
/// runtime, and never twice at once. Calls from browsers (camera moves,
/// mouse events) are queued while a frame renders and handed over before
/// the next one, so a view needs no locking of its own.
///
/// ```
/// use wslink_viewport::{Frame, Interaction, RenderError, View};
///
/// /// A flat colour that turns redder with each click.
/// struct Flat { red: u8 }
///
/// impl View for Flat {
///     fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError> {
///         let pixels = [self.red, 40, 90].repeat(frame.width() as usize * frame.height() as usize);
///         frame.rgb_mut().extend_from_slice(&pixels);
///         Ok(())
///     }
///
///     fn interact(&mut self, event: &Interaction) -> bool {
///         match event {
///             Interaction::Mouse(m) if m.is_press() => {
///                 self.red = self.red.wrapping_add(16);
///                 true
///             }
///             _ => false,
///         }
///     }
/// }
/// # let _ = Flat { red: 0 };
/// ```
pub trait View: Send + 'static {
    /// Renders the current picture into `frame`, at `frame.width()` by
    /// `frame.height()` pixels: as RGB or RGBA pixels
    /// ([`Frame::rgb_mut`], [`Frame::rgba_mut`]), which the viewport
    /// encodes, or as an image already encoded ([`Frame::set_encoded`]).
    fn render(&mut self, frame: &mut Frame) -> Result<(), RenderError>;

    /// A browser moved the camera, clicked, dragged or scrolled. Returns
    /// whether the picture changed (and needs a new frame).
    ///
    /// Consecutive moves with the same buttons held may arrive coalesced
    /// into the latest one: positions are absolute, so a view that orbits
    /// by the distance from the previous position ends up where it would
    /// have with every event.
    fn interact(&mut self, _event: &Interaction) -> bool {
        false
    }

    /// Called at the animation rate while a browser runs the view's
    /// animation (`viewport.image.animation.start`), with the time since
    /// the previous call. Returns whether the picture changed.
    fn animate(&mut self, _elapsed: std::time::Duration) -> bool {
        false
    }
}

/// Why a view could not render; the frame is skipped and the error logged.
///
/// ```
/// use wslink_viewport::RenderError;
///
/// let err = RenderError::new("GPU context lost");
/// assert_eq!(err.to_string(), "GPU context lost");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(String);

impl RenderError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        RenderError(message.into())
    }
}

/// How a frame's pixels are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// 3 bytes a pixel, rows top to bottom.
    Rgb8,
    /// 4 bytes a pixel, rows top to bottom; alpha is dropped by JPEG.
    Rgba8,
}

impl PixelLayout {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelLayout::Rgb8 => 3,
            PixelLayout::Rgba8 => 4,
        }
    }
}

/// The image formats frames can be sent in.
///
/// ```
/// use wslink_viewport::ImageFormat;
///
/// assert_eq!(ImageFormat::Jpeg.name(), "jpeg");
/// assert_eq!(ImageFormat::Png.mime_type(), "image/png");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// JPEG at the view's current quality: what vtk.js expects by default.
    #[default]
    Jpeg,
    /// Lossless PNG; quality is ignored. vtk.js shows it too (browsers
    /// sniff the bytes), but it is larger and slower to encode.
    Png,
}

impl ImageFormat {
    /// The `format` field of a frame message.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
        }
    }

    /// The MIME type of the encoded bytes.
    pub fn mime_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
        }
    }
}

/// One frame to render: its size and quality, and the buffer the view
/// fills. The pixel buffer is kept between frames, so a steady stream
/// allocates nothing.
#[derive(Debug)]
pub struct Frame {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) quality: u8,
    pub(crate) interactive: bool,
    pub(crate) layout: PixelLayout,
    pub(crate) pixels: Vec<u8>,
    pub(crate) encoded: Option<(ImageFormat, Bytes)>,
}

impl Frame {
    pub(crate) fn new() -> Self {
        Frame {
            width: 0,
            height: 0,
            quality: 100,
            interactive: false,
            layout: PixelLayout::Rgb8,
            pixels: Vec::new(),
            encoded: None,
        }
    }

    pub(crate) fn reset(&mut self, width: u32, height: u32, quality: u8, interactive: bool) {
        self.width = width;
        self.height = height;
        self.quality = quality;
        self.interactive = interactive;
        self.layout = PixelLayout::Rgb8;
        self.pixels.clear();
        self.encoded = None;
    }

    /// Width in pixels (the requested size times the view's ratio).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The JPEG quality this frame will be encoded at (0–100): lower while
    /// a browser drags (RemoteView asks for 60), 100 for the still frame.
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// Whether a browser is interacting (the view's quality is below its
    /// still quality): a view may trade detail for speed.
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// An empty buffer for `width * height * 3` bytes of RGB.
    pub fn rgb_mut(&mut self) -> &mut Vec<u8> {
        self.layout = PixelLayout::Rgb8;
        self.pixels.clear();
        &mut self.pixels
    }

    /// An empty buffer for `width * height * 4` bytes of RGBA.
    pub fn rgba_mut(&mut self) -> &mut Vec<u8> {
        self.layout = PixelLayout::Rgba8;
        self.pixels.clear();
        &mut self.pixels
    }

    /// Hands over an image the view encoded itself (its size must be the
    /// frame's; it is sent as is).
    pub fn set_encoded(&mut self, format: ImageFormat, bytes: impl Into<Bytes>) {
        self.encoded = Some((format, bytes.into()));
    }
}
