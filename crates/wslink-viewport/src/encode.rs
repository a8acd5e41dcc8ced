//! Pixels to JPEG or PNG bytes.

use bytes::Bytes;

use crate::view::{ImageFormat, PixelLayout};

/// Why pixels could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The buffer does not hold `width * height` pixels of its layout.
    #[error("the view rendered {got} bytes; {width}x{height} {layout:?} needs {expected}")]
    WrongLength {
        /// Bytes rendered.
        got: usize,
        /// Bytes needed.
        expected: usize,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// The layout the view chose.
        layout: PixelLayout,
    },
    /// The encoder refused the image.
    #[error("{format:?} encoding failed: {message}")]
    Codec {
        /// The format.
        format: ImageFormat,
        /// The encoder's message.
        message: String,
    },
}

/// Encodes `pixels` (`width * height` pixels laid out as `layout`, rows top
/// to bottom) as `format`; `quality` (0–100) applies to JPEG only.
///
/// ```
/// use wslink_viewport::{encode, ImageFormat, PixelLayout};
///
/// let grey = vec![128u8; 64 * 32 * 3];
/// let jpeg = encode(&grey, 64, 32, PixelLayout::Rgb8, ImageFormat::Jpeg, 80).unwrap();
/// assert_eq!(&jpeg[..2], &[0xFF, 0xD8]); // JPEG's start-of-image marker
///
/// let short = encode(&grey[..10], 64, 32, PixelLayout::Rgb8, ImageFormat::Png, 100);
/// assert!(short.is_err());
/// ```
pub fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    layout: PixelLayout,
    format: ImageFormat,
    quality: u8,
) -> Result<Bytes, EncodeError> {
    let expected = width as usize * height as usize * layout.bytes_per_pixel();
    if pixels.len() != expected || width == 0 || height == 0 {
        return Err(EncodeError::WrongLength {
            got: pixels.len(),
            expected,
            width,
            height,
            layout,
        });
    }
    let codec = |message: String| EncodeError::Codec { format, message };
    // A JPEG is typically well under a byte a pixel at these qualities; the
    // guess only saves regrowing the buffer.
    let mut out = Vec::with_capacity(expected / 4 + 1024);
    match format {
        ImageFormat::Jpeg => {
            // JPEG dimensions are 16-bit; the viewport's size bound keeps
            // frames far below, this only guards a custom caller.
            let (w, h) = (
                u16::try_from(width).map_err(|_| codec(format!("width {width} over 65535")))?,
                u16::try_from(height).map_err(|_| codec(format!("height {height} over 65535")))?,
            );
            let color = match layout {
                PixelLayout::Rgb8 => jpeg_encoder::ColorType::Rgb,
                PixelLayout::Rgba8 => jpeg_encoder::ColorType::Rgba,
            };
            // The encoder's scale starts at 1; 0 means "as low as it goes".
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
            // 4:2:0 with averaged chroma at every quality, as libjpeg-turbo
            // (Pillow, ParaView) does: jpeg-encoder switches to 4:4:4 from
            // quality 90, which made still frames (quality 100) 45% larger
            // and 70% slower for a difference the eye does not see in a
            // rendered scene (BENCHMARKS.md, "JPEG encoders").
            encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
            encoder
                .encode(pixels, w, h, color)
                .map_err(|e| codec(e.to_string()))?;
        }
        ImageFormat::Png => {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(match layout {
                PixelLayout::Rgb8 => png::ColorType::Rgb,
                PixelLayout::Rgba8 => png::ColorType::Rgba,
            });
            encoder.set_depth(png::BitDepth::Eight);
            // fdeflate's fast mode: a frame stream cannot wait for the
            // default level's extra few percent.
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header().map_err(|e| codec(e.to_string()))?;
            writer
                .write_image_data(pixels)
                .map_err(|e| codec(e.to_string()))?;
            writer.finish().map_err(|e| codec(e.to_string()))?;
        }
    }
    Ok(Bytes::from(out))
}
