//! Encode time of a rendered-looking frame, as BENCHMARKS.md records it:
//! JPEG at the qualities RemoteView asks for (60 while dragging, 100 for
//! the still frame) and PNG, at 640x360 and 1280x720.
//!
//! ```text
//! cargo run --release -p wslink-viewport --example encode_bench
//! ```

use std::time::{Duration, Instant};

use wslink_viewport::{encode, ImageFormat, PixelLayout};

/// A gradient sky, a checker floor and shaded discs: smooth areas, edges
/// and texture, as a rendered scene has (noise or a flat colour would
/// flatter or punish the encoder).
fn frame(w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut c = if fy < 0.6 {
                [40.0 + 80.0 * fy, 60.0 + 90.0 * fy, 120.0 + 100.0 * fy]
            } else {
                let z = 1.0 / (fy - 0.55);
                let check = ((fx - 0.5) * z * 4.0).floor() as i32 + (z * 2.0).floor() as i32;
                if check % 2 == 0 {
                    [200.0, 200.0, 190.0]
                } else {
                    [70.0, 70.0, 80.0]
                }
            };
            for (i, (cx, cy, r)) in [(0.3, 0.5, 0.15), (0.6, 0.45, 0.2), (0.8, 0.6, 0.1)]
                .iter()
                .enumerate()
            {
                let (dx, dy) = ((fx - cx) * w as f32 / h as f32, fy - cy);
                let d2 = dx * dx + dy * dy;
                if d2 < r * r {
                    let shade = (1.0 - d2 / (r * r)).sqrt();
                    let base = [
                        [220.0, 60.0, 50.0],
                        [60.0, 180.0, 90.0],
                        [70.0, 90.0, 230.0],
                    ][i];
                    c = base.map(|b| b * (0.3 + 0.7 * shade));
                }
            }
            rgb.extend(c.map(|v| v as u8));
        }
    }
    rgb
}

fn measure(
    pixels: &[u8],
    w: u32,
    h: u32,
    format: ImageFormat,
    quality: u8,
) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for i in 0..60 {
        let t = Instant::now();
        let out = encode(pixels, w, h, PixelLayout::Rgb8, format, quality).expect("encodes");
        if i >= 10 {
            times.push(t.elapsed());
        }
        bytes = out.len();
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 95 / 100], bytes)
}

fn main() {
    println!("| format | size | quality | median ms | p95 ms | bytes |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (w, h) in [(640, 360), (1280, 720)] {
        let pixels = frame(w, h);
        for (format, quality) in [
            (ImageFormat::Jpeg, 60),
            (ImageFormat::Jpeg, 100),
            (ImageFormat::Png, 100),
        ] {
            let (median, p95, bytes) = measure(&pixels, w, h, format, quality);
            let q = if format == ImageFormat::Png {
                "-".to_owned()
            } else {
                quality.to_string()
            };
            println!(
                "| {} | {w}x{h} | {q} | {:.2} | {:.2} | {bytes} |",
                format.name(),
                median.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3
            );
        }
    }
}
