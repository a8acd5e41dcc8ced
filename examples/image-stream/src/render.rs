//! The picture: a "plasma" (a sum of moving sine waves) drawn as 8-bit
//! palette indices, encoded as an indexed-colour PNG.
//!
//! Indexed colour keeps both halves cheap: the renderer writes one byte per
//! pixel from lookup tables, the encoder compresses a third of what RGB
//! would be, and changing palette is just a different `PLTE` chunk. Shifting
//! the indices over time also cycles the palette, which is what makes the
//! picture shimmer.

use std::f32::consts::TAU;

/// The palettes, by name. Each is a closed loop of colour stops, so that
/// cycling through it has no seam.
pub const PALETTES: &[(&str, &[[u8; 3]])] = &[
    (
        "rainbow",
        &[
            [255, 40, 40],
            [255, 200, 0],
            [60, 220, 60],
            [0, 200, 255],
            [80, 60, 255],
            [230, 40, 220],
        ],
    ),
    (
        "fire",
        &[
            [20, 0, 0],
            [140, 10, 0],
            [240, 90, 0],
            [255, 210, 40],
            [255, 255, 200],
            [255, 160, 20],
            [120, 10, 0],
        ],
    ),
    (
        "ocean",
        &[
            [0, 20, 60],
            [0, 90, 160],
            [0, 190, 210],
            [200, 250, 255],
            [0, 150, 190],
            [0, 50, 110],
        ],
    ),
    (
        "neon",
        &[
            [255, 0, 150],
            [20, 0, 40],
            [0, 255, 200],
            [10, 10, 60],
            [255, 240, 0],
            [40, 0, 30],
        ],
    ),
    ("grayscale", &[[16, 16, 16], [240, 240, 240]]),
];

/// The names of [`PALETTES`], in order.
pub fn palette_names() -> Vec<&'static str> {
    PALETTES.iter().map(|(name, _)| *name).collect()
}

/// The 256-entry RGB table (768 bytes, a PNG `PLTE` chunk) of a palette.
pub fn palette_table(name: &str) -> Option<Vec<u8>> {
    let (_, stops) = PALETTES.iter().find(|(n, _)| *n == name)?;
    let n = stops.len();
    let mut table = Vec::with_capacity(256 * 3);
    for i in 0..256 {
        // Position along the closed loop of stops.
        let pos = i as f32 / 256.0 * n as f32;
        let k = pos as usize % n;
        let f = pos.fract();
        // Smoothstep between neighbouring stops: no visible banding at joins.
        let f = f * f * (3.0 - 2.0 * f);
        let (a, b) = (stops[k], stops[(k + 1) % n]);
        for c in 0..3 {
            let v = a[c] as f32 + (b[c] as f32 - a[c] as f32) * f;
            table.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    Some(table)
}

const LUT_BITS: u32 = 10;
const LUT_SIZE: usize = 1 << LUT_BITS;
const LUT_MASK: usize = LUT_SIZE - 1;
/// Lookup-table steps per radian.
const LUT_SCALE: f32 = LUT_SIZE as f32 / TAU;

/// Draws frames of the plasma. Keeps its tables between frames; only the
/// per-row and per-column terms are recomputed each frame, so a pixel costs
/// a square root and a few table lookups.
pub struct Plasma {
    sin: Vec<i16>,
    cols: Vec<i16>,
    rows: Vec<i16>,
    diag: Vec<i16>,
    dx2: Vec<f32>,
    dy2: Vec<f32>,
}

impl Default for Plasma {
    fn default() -> Self {
        Self::new()
    }
}

impl Plasma {
    /// A renderer.
    pub fn new() -> Self {
        Plasma {
            // Each wave contributes -63..=63: four of them and an offset of
            // 128 stay within a byte.
            sin: (0..LUT_SIZE)
                .map(|i| ((i as f32 / LUT_SIZE as f32 * TAU).sin() * 63.0).round() as i16)
                .collect(),
            cols: Vec::new(),
            rows: Vec::new(),
            diag: Vec::new(),
            dx2: Vec::new(),
            dy2: Vec::new(),
        }
    }

    fn wave(&self, radians: f32) -> i16 {
        self.sin[(radians * LUT_SCALE) as i32 as usize & LUT_MASK]
    }

    /// Renders the frame at time `t` (seconds) into `out` (`width * height`
    /// palette indices, row by row). The picture is scaled to the height,
    /// so every resolution shows the same scene.
    pub fn render(&mut self, width: usize, height: usize, t: f32, out: &mut Vec<u8>) {
        out.clear();
        out.resize(width * height, 0);
        if width == 0 || height == 0 {
            return;
        }
        let unit = 1.0 / height as f32;
        // Horizontal, vertical and diagonal waves, each drifting on its own.
        self.cols = (0..width)
            .map(|x| self.wave(x as f32 * unit * 9.0 + t * 1.3))
            .collect();
        self.rows = (0..height)
            .map(|y| self.wave(y as f32 * unit * 7.0 - t * 0.9))
            .collect();
        self.diag = (0..width + height)
            .map(|d| self.wave(d as f32 * unit * 5.0 + t * 0.6))
            .collect();
        // Rings around a centre that wanders along a Lissajous curve.
        let aspect = width as f32 * unit;
        let cx = aspect * (0.5 + 0.35 * (t * 0.37).sin());
        let cy = 0.5 + 0.35 * (t * 0.53).cos();
        self.dx2 = (0..width)
            .map(|x| {
                let d = x as f32 * unit - cx;
                d * d
            })
            .collect();
        self.dy2 = (0..height)
            .map(|y| {
                let d = y as f32 * unit - cy;
                d * d
            })
            .collect();
        let ring_freq = 22.0 * LUT_SCALE;
        let ring_phase = (-t * 2.5 * LUT_SCALE) as i32;
        // Palette cycling: the whole picture slides through the colours.
        let cycle = (t * 40.0) as i32;
        for (y, row) in out.chunks_exact_mut(width).enumerate() {
            let base = self.rows[y] as i32 + cycle + 128;
            let dy2 = self.dy2[y];
            let diag = &self.diag[y..y + width];
            for (((px, &col), &dg), &dx2) in row.iter_mut().zip(&self.cols).zip(diag).zip(&self.dx2)
            {
                let ring_idx = ((dx2 + dy2).sqrt() * ring_freq) as i32 + ring_phase;
                let ring = self.sin[ring_idx as usize & LUT_MASK] as i32;
                let v = base + col as i32 + dg as i32 + ring;
                *px = v as u8;
            }
        }
    }
}

/// Encodes palette indices as an 8-bit indexed-colour PNG.
pub fn encode_png(
    width: u32,
    height: u32,
    indices: &[u8],
    palette: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(indices.len() / 2 + 1024);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(palette);
    // fdeflate, with the per-row adaptive filter: on 2 cores in release,
    // render + encode take about 1 ms at 640x360 (~90 kB) and 8 ms at
    // 1920x1080 (~640 kB); `render_and_encode_speed` below measures it.
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::Adaptive);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(indices)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_palette_has_256_colours() {
        for name in palette_names() {
            let table = palette_table(name).unwrap();
            assert_eq!(table.len(), 768, "{name}");
        }
        assert!(palette_table("no-such-palette").is_none());
    }

    #[test]
    fn frames_are_varied_and_move() {
        let mut plasma = Plasma::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        plasma.render(160, 90, 0.0, &mut a);
        plasma.render(160, 90, 0.5, &mut b);
        assert_eq!(a.len(), 160 * 90);
        let mut seen = [false; 256];
        for &v in &a {
            seen[v as usize] = true;
        }
        let distinct = seen.iter().filter(|s| **s).count();
        assert!(distinct > 100, "only {distinct} distinct values");
        let changed = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(changed > a.len() / 2, "only {changed} pixels changed");
    }

    #[test]
    fn png_decodes_to_the_palette_colours() {
        let mut plasma = Plasma::new();
        let mut indices = Vec::new();
        plasma.render(33, 17, 1.0, &mut indices);
        let palette = palette_table("ocean").unwrap();
        let data = encode_png(33, 17, &indices, &palette).unwrap();
        assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(data));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (33, 17));
        assert_eq!(info.color_type, png::ColorType::Indexed);
        assert_eq!(&buf[..info.buffer_size()], &indices[..]);
    }

    /// `cargo test --release -p image-stream -- --ignored --nocapture`
    #[test]
    #[ignore = "a timing report, meaningful in release only"]
    fn render_and_encode_speed() {
        let palette = palette_table("rainbow").unwrap();
        let mut plasma = Plasma::new();
        let mut indices = Vec::new();
        for (w, h) in [(640, 360), (1280, 720), (1920, 1080), (3840, 2160)] {
            let n = 20;
            let (mut render, mut encode, mut bytes) = (0.0, 0.0, 0);
            for i in 0..n {
                let t0 = std::time::Instant::now();
                plasma.render(w, h, i as f32 / 30.0, &mut indices);
                let t1 = std::time::Instant::now();
                bytes += encode_png(w as u32, h as u32, &indices, &palette)
                    .unwrap()
                    .len();
                render += (t1 - t0).as_secs_f64();
                encode += t1.elapsed().as_secs_f64();
            }
            println!(
                "{w}x{h}: render {:.2} ms, encode {:.2} ms, {} kB per frame",
                render * 1e3 / n as f64,
                encode * 1e3 / n as f64,
                bytes / n / 1000
            );
        }
    }
}
