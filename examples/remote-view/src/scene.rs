//! A small CPU rasteriser for the remote-view demo: no GPU is assumed, so
//! every frame is drawn here and then compressed and streamed to the browser.
//!
//! # The scene
//!
//! A Python peer renders the same scene, so this is the definition both sides
//! follow; change it in both places or not at all.
//!
//! * **Torus** centred at the origin, axis along +Z (world up is +Z), major
//!   radius `R = 1.0`, minor radius `r = 0.35`. A surface point is
//!   `((R + r cos v) cos u, (R + r cos v) sin u, r sin v)`. It is tessellated
//!   into 64 segments in `u` (around the major circle) and 32 in `v` (around
//!   the tube): 2048 quads, quad `(i, j)` spanning
//!   `u ∈ [2πi/64, 2π(i+1)/64]`, `v ∈ [2πj/32, 2π(j+1)/32]`. Each quad is drawn
//!   as the two triangles `(i,j) (i+1,j) (i+1,j+1)` and `(i,j) (i+1,j+1) (i,j+1)`.
//! * **Colour** is per quad, from the `u` at the quad's centre,
//!   `u_c = 2π(i + 0.5)/64`: HSV with hue `u_c / 2π`, saturation 0.65,
//!   value 1.0.
//! * **Shading** is flat (per face): the quad's normal is the torus's exact
//!   normal at the quad centre `(u_c, v_c)`, `v_c = 2π(j + 0.5)/32`, i.e.
//!   `(cos v_c cos u_c, cos v_c sin u_c, sin v_c)`. A directional headlight
//!   shines from the camera towards the origin, so with `l` the unit vector
//!   from the origin to the eye the colour is
//!   `colour * (0.25 + 0.75 * max(0, n·l))`, each channel then
//!   `round(255 * c)`. Rounding here is half away from zero, i.e.
//!   `floor(x + 0.5)` for these non-negative values (Python's `round()`
//!   rounds halves to even). Arithmetic is `f32`, so a peer using doubles
//!   may differ by one level on a few pixels.
//! * **Background**: a vertical gradient, row `y` of `h` being
//!   `round(top + (bottom - top) * y / (h - 1))` per channel (row 0 when
//!   `h == 1`), top `rgb(20, 24, 38)`, bottom `rgb(70, 80, 110)`.
//! * **Camera**: orbits the origin; `eye = distance * (cos(el) cos(az),
//!   cos(el) sin(az), sin(el))`, looking at the origin with +Z up; perspective
//!   with a 40° vertical field of view and aspect `width / height`. Pixel
//!   `(x, y)` (y down) samples the image plane at its centre `(x + 0.5, y + 0.5)`.
//!
//! # How it draws
//!
//! Vertices are projected once per frame and snapped to a fixed-point grid
//! (1/256 pixel) so that triangles sharing an edge agree exactly on which
//! pixels they cover: with a top-left style ownership rule there are no
//! cracks and no pixel is drawn twice by neighbouring triangles. Each
//! triangle's covered span on a scanline is solved for directly from its
//! three edge functions, so the inner loop only does the depth test and the
//! store. Depth is `1/z`, which (unlike `z`) is linear in screen space.
//! Back faces are culled by their screen-space winding; any triangle with a
//! vertex closer than a near plane (or behind the camera) is dropped whole
//! rather than clipped: with the camera distance clamped to at least 1.5 the
//! torus (radius at most 1.35) never reaches it.

use std::f32::consts::TAU;
use std::sync::{Mutex, TryLockError};

const MAJOR_RADIUS: f32 = 1.0;
const MINOR_RADIUS: f32 = 0.35;
const U_SEGMENTS: usize = 64;
const V_SEGMENTS: usize = 32;
const SATURATION: f32 = 0.65;
const AMBIENT: f32 = 0.25;
const DIFFUSE: f32 = 0.75;
const BACKGROUND_TOP: [f32; 3] = [20.0, 24.0, 38.0];
const BACKGROUND_BOTTOM: [f32; 3] = [70.0, 80.0, 110.0];
const FIELD_OF_VIEW_Y_DEGREES: f32 = 40.0;

const ELEVATION_LIMIT: f32 = 89.0;
const MIN_DISTANCE: f32 = 1.5;
const MAX_DISTANCE: f32 = 20.0;

/// Anything nearer than this along the view axis is treated as behind the
/// camera; it also bounds how far off-screen a kept vertex can project.
const NEAR: f32 = 0.05;
/// Sub-pixel bits of the snapped screen coordinates.
const SUB_BITS: u32 = 8;
const SUB: i64 = 1 << SUB_BITS;
const HALF: i64 = SUB / 2;
/// Vertices projecting further than this from the origin (in pixels) are
/// rejected. It keeps every edge-function product below 2^62 so the i64
/// arithmetic cannot overflow; real frames never come close.
const GUARD_PIXELS: f32 = (1u32 << 21) as f32;

/// A camera orbiting the origin; angles in degrees.
///
/// [`Camera::orbit`] and [`Camera::zoom`] keep the fields in range. Values
/// stored directly are not checked here; [`Scene::render`] draws non-finite
/// fields as their defaults and out-of-range ones as the nearest limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// Degrees around +Z, measured from +X towards +Y. Not wrapped.
    pub azimuth: f32,
    /// Degrees above the XY plane, in [-89, 89] so the view direction never
    /// lines up with the up vector.
    pub elevation: f32,
    /// From the origin, in [1.5, 20]: the lower bound keeps the eye outside
    /// the torus.
    pub distance: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Camera {
            azimuth: 30.0,
            elevation: 20.0,
            distance: 3.5,
        }
    }
}

impl Camera {
    /// Orbit by a drag of (dx, dy) in normalised view units (1.0 = the view's
    /// width/height). y grows upward (VTK's convention, as vtk.js sends it).
    ///
    /// A drag across the whole view turns the camera by 180°. Non-finite
    /// input (or a result that would not be finite) leaves the camera as it
    /// was, so one bad message from a client cannot wedge the view.
    pub fn orbit(&mut self, dx: f32, dy: f32) {
        if !(dx.is_finite() && dy.is_finite()) {
            return;
        }
        let azimuth = self.azimuth - dx * 180.0;
        let elevation = (self.elevation - dy * 180.0).clamp(-ELEVATION_LIMIT, ELEVATION_LIMIT);
        if azimuth.is_finite() && elevation.is_finite() {
            self.azimuth = azimuth;
            self.elevation = elevation;
        }
    }

    /// Zoom: factor > 1 moves away.
    ///
    /// Non-finite or non-positive factors are ignored rather than slamming
    /// the camera to a limit.
    pub fn zoom(&mut self, factor: f32) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        let distance = (self.distance * factor).clamp(MIN_DISTANCE, MAX_DISTANCE);
        if distance.is_finite() {
            self.distance = distance;
        }
    }

    /// The fields are public, so a caller may have stored anything in them;
    /// the renderer draws the nearest sensible view instead of garbage.
    fn sanitized(&self) -> Camera {
        let default = Camera::default();
        let pick = |value: f32, fallback: f32| if value.is_finite() { value } else { fallback };
        Camera {
            azimuth: pick(self.azimuth, default.azimuth),
            elevation: pick(self.elevation, default.elevation)
                .clamp(-ELEVATION_LIMIT, ELEVATION_LIMIT),
            distance: pick(self.distance, default.distance).clamp(MIN_DISTANCE, MAX_DISTANCE),
        }
    }

    fn view(&self) -> View {
        let camera = self.sanitized();
        // Reducing in degrees (exact for floats) before converting keeps the
        // angle precise after long orbits.
        let azimuth = camera.azimuth.rem_euclid(360.0).to_radians();
        let elevation = camera.elevation.to_radians();
        let towards_eye = [
            elevation.cos() * azimuth.cos(),
            elevation.cos() * azimuth.sin(),
            elevation.sin(),
        ];
        let forward = scale(towards_eye, -1.0);
        // forward × +Z, normalised; written out because it cannot degenerate
        // (|cos(el)| > 0 within the clamp) and is exact at every azimuth.
        let right = [-azimuth.sin(), azimuth.cos(), 0.0];
        let up = cross(right, forward);
        View {
            eye: scale(towards_eye, camera.distance),
            right,
            up,
            forward,
            light: towards_eye,
        }
    }
}

/// Orthonormal camera frame plus the headlight direction.
struct View {
    eye: [f32; 3],
    right: [f32; 3],
    up: [f32; 3],
    forward: [f32; 3],
    light: [f32; 3],
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn scale(a: [f32; 3], s: f32) -> [f32; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// `h`, `s`, `v` in [0, 1]; returns linear 0..1 channels.
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let sector = h6.floor();
    let f = h6 - sector;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match sector as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

fn to_u8(channel: f32) -> u8 {
    // `as` saturates, so out-of-range values cannot wrap.
    (channel * 255.0).round() as u8
}

struct Quad {
    /// Vertex indices in drawing order: (i,j), (i+1,j), (i+1,j+1), (i,j+1).
    corners: [u32; 4],
    normal: [f32; 3],
    colour: [f32; 3],
}

/// A vertex after projection, for one frame.
#[derive(Clone, Copy, Default)]
struct ScreenVertex {
    /// Snapped pixel coordinates, in 1/SUB pixel units, y down.
    x: i64,
    y: i64,
    /// 1/z, the value the depth buffer holds (larger is nearer).
    inv_z: f32,
    /// False when behind the near plane or outside the guard band.
    usable: bool,
}

/// Per-frame working memory, kept between frames to avoid reallocating a
/// full-size depth buffer every time.
#[derive(Default)]
struct Scratch {
    depth: Vec<f32>,
    screen: Vec<ScreenVertex>,
}

/// The tessellated torus plus reusable render buffers.
///
/// `Scene` is `Send + Sync`: one instance can be shared (e.g. in an `Arc`)
/// by every session.
pub struct Scene {
    vertices: Vec<[f32; 3]>,
    quads: Vec<Quad>,
    /// Only one render at a time gets the cached buffers; a concurrent render
    /// allocates its own instead of waiting (see [`Scene::render`]).
    scratch: Mutex<Scratch>,
}

impl Default for Scene {
    fn default() -> Self {
        Scene::new()
    }
}

impl Scene {
    /// Tessellates the torus. Cheap (a few thousand vertices); do it once.
    pub fn new() -> Self {
        let vertex_index =
            |i: usize, j: usize| ((i % U_SEGMENTS) * V_SEGMENTS + j % V_SEGMENTS) as u32;
        let mut vertices = Vec::with_capacity(U_SEGMENTS * V_SEGMENTS);
        for i in 0..U_SEGMENTS {
            let u = TAU * i as f32 / U_SEGMENTS as f32;
            for j in 0..V_SEGMENTS {
                let v = TAU * j as f32 / V_SEGMENTS as f32;
                let ring = MAJOR_RADIUS + MINOR_RADIUS * v.cos();
                vertices.push([ring * u.cos(), ring * u.sin(), MINOR_RADIUS * v.sin()]);
            }
        }
        let mut quads = Vec::with_capacity(U_SEGMENTS * V_SEGMENTS);
        for i in 0..U_SEGMENTS {
            let u_centre = TAU * (i as f32 + 0.5) / U_SEGMENTS as f32;
            let colour = hsv_to_rgb(u_centre / TAU, SATURATION, 1.0);
            for j in 0..V_SEGMENTS {
                let v_centre = TAU * (j as f32 + 0.5) / V_SEGMENTS as f32;
                quads.push(Quad {
                    corners: [
                        vertex_index(i, j),
                        vertex_index(i + 1, j),
                        vertex_index(i + 1, j + 1),
                        vertex_index(i, j + 1),
                    ],
                    normal: [
                        v_centre.cos() * u_centre.cos(),
                        v_centre.cos() * u_centre.sin(),
                        v_centre.sin(),
                    ],
                    colour,
                });
            }
        }
        Scene {
            vertices,
            quads,
            scratch: Mutex::new(Scratch::default()),
        }
    }

    /// Renders into `rgb` (resized to width*height*3, rows top to bottom, RGB8).
    ///
    /// Takes `&self` so a shared `Scene` can serve several sessions. The
    /// depth buffer is cached inside the scene and reused; it grows to the
    /// largest frame ever rendered and is not shrunk. If another thread is
    /// rendering at the same moment this call allocates a temporary buffer
    /// rather than blocking. Passing the same `rgb` every frame avoids
    /// reallocating it too.
    ///
    /// A zero width or height, or a frame too large to allocate, leaves
    /// `rgb` empty instead of panicking or aborting.
    pub fn render(&self, camera: &Camera, width: u32, height: u32, rgb: &mut Vec<u8>) {
        match self.scratch.try_lock() {
            Ok(mut scratch) => self.render_with(&mut scratch, camera, width, height, rgb),
            // The scratch holds no invariants across calls, so a panic
            // elsewhere while it was held does not make it unusable.
            Err(TryLockError::Poisoned(poisoned)) => {
                self.render_with(&mut poisoned.into_inner(), camera, width, height, rgb)
            }
            Err(TryLockError::WouldBlock) => {
                self.render_with(&mut Scratch::default(), camera, width, height, rgb)
            }
        }
    }

    fn render_with(
        &self,
        scratch: &mut Scratch,
        camera: &Camera,
        width: u32,
        height: u32,
        rgb: &mut Vec<u8>,
    ) {
        let (w, h) = (width as usize, height as usize);
        let Some(pixels) = w.checked_mul(h).filter(|&n| n > 0) else {
            rgb.clear();
            return;
        };
        let Some(bytes) = pixels.checked_mul(3) else {
            rgb.clear();
            return;
        };
        if !resize_fallibly(rgb, bytes, 0) || !resize_fallibly(&mut scratch.depth, pixels, 0.0) {
            rgb.clear();
            return;
        }
        fill_background(rgb, w, h);
        // 0 is 1/z at infinity: everything drawn is nearer.
        scratch.depth.fill(0.0);

        let view = camera.view();
        self.project(&view, w, h, &mut scratch.screen);

        let mut target = Target {
            rgb,
            depth: &mut scratch.depth,
            width: w,
            height: h,
        };
        let screen = &scratch.screen;
        for quad in &self.quads {
            let [a, b, c, d] = quad.corners.map(|k| screen[k as usize]);
            let lambert = dot(quad.normal, view.light);
            let shade = AMBIENT + DIFFUSE * lambert.max(0.0);
            let colour = quad.colour.map(|c| to_u8(c * shade));
            target.triangle(&a, &b, &c, colour);
            target.triangle(&a, &c, &d, colour);
        }
    }

    fn project(&self, view: &View, w: usize, h: usize, out: &mut Vec<ScreenVertex>) {
        let focal = 1.0 / (FIELD_OF_VIEW_Y_DEGREES.to_radians() * 0.5).tan();
        // Pixels per unit of x/z or y/z: the vertical half-extent spans
        // h/2 pixels, and the same scale horizontally keeps pixels square.
        let pixels_per_unit = focal * h as f32 * 0.5;
        let (centre_x, centre_y) = (w as f32 * 0.5, h as f32 * 0.5);
        out.clear();
        out.extend(self.vertices.iter().map(|&p| {
            let d = sub(p, view.eye);
            let z = dot(d, view.forward);
            if z.is_nan() || z < NEAR {
                return ScreenVertex::default();
            }
            let inv_z = 1.0 / z;
            let sx = centre_x + dot(d, view.right) * inv_z * pixels_per_unit;
            let sy = centre_y - dot(d, view.up) * inv_z * pixels_per_unit;
            if !(sx.abs() <= GUARD_PIXELS && sy.abs() <= GUARD_PIXELS) {
                return ScreenVertex::default();
            }
            ScreenVertex {
                x: (sx * SUB as f32).round() as i64,
                y: (sy * SUB as f32).round() as i64,
                inv_z,
                usable: true,
            }
        }));
    }
}

/// Grows or shrinks `v` to `len` without aborting when memory runs out.
fn resize_fallibly<T: Copy>(v: &mut Vec<T>, len: usize, value: T) -> bool {
    if len > v.len() && v.try_reserve(len - v.len()).is_err() {
        return false;
    }
    v.resize(len, value);
    true
}

fn fill_background(rgb: &mut [u8], w: usize, h: usize) {
    let denominator = h.saturating_sub(1).max(1) as f32;
    for (y, row) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let t = y as f32 / denominator;
        let colour: [u8; 3] = std::array::from_fn(|c| {
            (BACKGROUND_TOP[c] + (BACKGROUND_BOTTOM[c] - BACKGROUND_TOP[c]) * t).round() as u8
        });
        // Doubling copies run at memcpy speed; a per-pixel loop over a
        // 3-byte pattern does not vectorise.
        row[..3].copy_from_slice(&colour);
        let mut filled = 3;
        while filled < row.len() {
            let n = filled.min(row.len() - filled);
            row.copy_within(..n, filled);
            filled += n;
        }
    }
}

/// Twice the signed area of (a, b, c) in snapped units; negative when the
/// triangle winds counter-clockwise as seen on screen (y down).
fn orient(a: &ScreenVertex, b: &ScreenVertex, c: &ScreenVertex) -> i64 {
    (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
}

/// One edge function `dx * (py - ay) - dy * (px - ax) - bias`, which is
/// >= 0 on the inside of a positively oriented triangle.
struct Edge {
    ax: i64,
    ay: i64,
    dx: i64,
    dy: i64,
    bias: i64,
}

impl Edge {
    fn new(a: &ScreenVertex, b: &ScreenVertex) -> Edge {
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        // A pixel centre exactly on an edge shared by two triangles must go
        // to exactly one of them. The neighbour walks this edge in the
        // opposite direction, and this test is true for exactly one of a
        // direction and its reverse, so the other one gets the bias.
        let owned = dy > 0 || (dy == 0 && dx < 0);
        Edge {
            ax: a.x,
            ay: a.y,
            dx,
            dy,
            bias: i64::from(!owned),
        }
    }
}

struct Target<'a> {
    rgb: &'a mut [u8],
    depth: &'a mut [f32],
    width: usize,
    height: usize,
}

impl Target<'_> {
    fn triangle(&mut self, a: &ScreenVertex, b: &ScreenVertex, c: &ScreenVertex, colour: [u8; 3]) {
        if !(a.usable && b.usable && c.usable) {
            return;
        }
        // The mesh winds counter-clockwise seen from outside, which on a
        // y-down screen is a negative area; zero area covers nothing.
        if orient(a, b, c) >= 0 {
            return;
        }
        // Swapping makes the area positive so every edge function is
        // non-negative inside.
        let (v0, v1, v2) = (a, c, b);

        let min_x = v0.x.min(v1.x).min(v2.x);
        let max_x = v0.x.max(v1.x).max(v2.x);
        let min_y = v0.y.min(v1.y).min(v2.y);
        let max_y = v0.y.max(v1.y).max(v2.y);
        // Pixel k's centre is at k*SUB + HALF; keep the pixels whose centres
        // fall inside the bounding box and on screen.
        let x_lo = ((min_x - HALF + SUB - 1) >> SUB_BITS).max(0);
        let x_hi = ((max_x - HALF) >> SUB_BITS).min(self.width as i64 - 1);
        let y_lo = ((min_y - HALF + SUB - 1) >> SUB_BITS).max(0);
        let y_hi = ((max_y - HALF) >> SUB_BITS).min(self.height as i64 - 1);
        if x_lo > x_hi || y_lo > y_hi {
            return;
        }

        // Plane of 1/z over the screen, in pixel units, from the snapped
        // positions so it agrees with the coverage test.
        let to_px = |v: i64| v as f32 / SUB as f32;
        let (x0, y0) = (to_px(v0.x), to_px(v0.y));
        let (e1x, e1y) = (to_px(v1.x) - x0, to_px(v1.y) - y0);
        let (e2x, e2y) = (to_px(v2.x) - x0, to_px(v2.y) - y0);
        let det = e1x * e2y - e1y * e2x;
        if det.is_nan() || det <= 0.0 {
            return;
        }
        let (dz1, dz2) = (v1.inv_z - v0.inv_z, v2.inv_z - v0.inv_z);
        let dzdx = (dz1 * e2y - dz2 * e1y) / det;
        let dzdy = (dz2 * e1x - dz1 * e2x) / det;

        let edges = [Edge::new(v1, v2), Edge::new(v2, v0), Edge::new(v0, v1)];
        let span_px = x_lo * SUB + HALF;
        let last = x_hi - x_lo;
        for y in y_lo..=y_hi {
            let py = y * SUB + HALF;
            let (mut k_lo, mut k_hi) = (0, last);
            for e in &edges {
                let value = e.dx * (py - e.ay) - e.dy * (span_px - e.ax) - e.bias;
                let step = -e.dy * SUB;
                // Solve value + step * k >= 0 for the pixel offset k.
                if step > 0 {
                    if value < 0 {
                        k_lo = k_lo.max((-value + step - 1) / step);
                    }
                } else if value < 0 {
                    k_hi = -1;
                    break;
                } else if step < 0 {
                    k_hi = k_hi.min(value / -step);
                }
            }
            if k_lo > k_hi {
                continue;
            }
            let first = (x_lo + k_lo) as usize;
            let start = y as usize * self.width + first;
            let len = (k_hi - k_lo + 1) as usize;
            let inv_z = v0.inv_z + dzdx * (first as f32 + 0.5 - x0) + dzdy * (y as f32 + 0.5 - y0);
            let depth = &mut self.depth[start..start + len];
            let rgb = &mut self.rgb[start * 3..(start + len) * 3];
            for (k, (stored, pixel)) in depth.iter_mut().zip(rgb.chunks_exact_mut(3)).enumerate() {
                // Multiplying rather than accumulating keeps long spans exact
                // enough to not flicker against their neighbours.
                let z = inv_z + dzdx * k as f32;
                if z > *stored {
                    *stored = z;
                    pixel.copy_from_slice(&colour);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKGROUND_TOP_U8: [u8; 3] = [20, 24, 38];
    const BACKGROUND_BOTTOM_U8: [u8; 3] = [70, 80, 110];

    fn pixel(rgb: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * width as usize + x as usize) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    /// Where a world point lands, in whole pixels, computed independently of
    /// the renderer's own projection code.
    fn project_point(camera: &Camera, p: [f32; 3], width: u32, height: u32) -> (u32, u32) {
        let (az, el) = (camera.azimuth.to_radians(), camera.elevation.to_radians());
        let eye = [
            camera.distance * el.cos() * az.cos(),
            camera.distance * el.cos() * az.sin(),
            camera.distance * el.sin(),
        ];
        let len = dot(eye, eye).sqrt();
        let forward = scale(eye, -1.0 / len);
        let right = cross(forward, [0.0, 0.0, 1.0]);
        let right = scale(right, 1.0 / dot(right, right).sqrt());
        let up = cross(right, forward);
        let d = sub(p, eye);
        let z = dot(d, forward);
        let f = 1.0 / 20f32.to_radians().tan();
        let half_h = height as f32 / 2.0;
        let x = width as f32 / 2.0 + dot(d, right) / z * f * half_h;
        let y = half_h - dot(d, up) / z * f * half_h;
        (x.floor() as u32, y.floor() as u32)
    }

    #[test]
    fn output_is_width_times_height_times_three() {
        let scene = Scene::new();
        let mut rgb = vec![7; 10];
        scene.render(&Camera::default(), 64, 48, &mut rgb);
        assert_eq!(rgb.len(), 64 * 48 * 3);
        // Shrinking reuses the buffer but must still report the exact size.
        scene.render(&Camera::default(), 5, 4, &mut rgb);
        assert_eq!(rgb.len(), 5 * 4 * 3);
    }

    #[test]
    fn background_gradient_runs_top_to_bottom() {
        let scene = Scene::new();
        let mut rgb = Vec::new();
        let (w, h) = (160, 90);
        scene.render(&Camera::default(), w, h, &mut rgb);
        // The torus stays well clear of the corners at the default view.
        assert_eq!(pixel(&rgb, w, 0, 0), BACKGROUND_TOP_U8);
        assert_eq!(pixel(&rgb, w, w - 1, 0), BACKGROUND_TOP_U8);
        assert_eq!(pixel(&rgb, w, 0, h - 1), BACKGROUND_BOTTOM_U8);
        assert_eq!(pixel(&rgb, w, w - 1, h - 1), BACKGROUND_BOTTOM_U8);
    }

    #[test]
    fn point_facing_the_camera_is_lit_torus() {
        let scene = Scene::new();
        let camera = Camera::default();
        let (w, h) = (640, 360);
        let mut rgb = Vec::new();
        scene.render(&camera, w, h, &mut rgb);
        // The outer equator at the camera's azimuth faces the eye and nothing
        // is in front of it.
        let az = camera.azimuth.to_radians();
        let outer = MAJOR_RADIUS + MINOR_RADIUS;
        let (x, y) = project_point(&camera, [outer * az.cos(), outer * az.sin(), 0.0], w, h);
        let got = pixel(&rgb, w, x, y);
        let bg_row = {
            let t = y as f32 / (h - 1) as f32;
            let c = |i: usize| {
                (BACKGROUND_TOP[i] + (BACKGROUND_BOTTOM[i] - BACKGROUND_TOP[i]) * t).round() as u8
            };
            [c(0), c(1), c(2)]
        };
        assert_ne!(got, bg_row, "pixel ({x}, {y}) is background");
        // Quad 5 (u_c ≈ 30.9°): hue ≈ 0.086 → (1, 0.69, 0.35); a face this
        // square-on to the headlight is shaded at more than 0.9.
        assert!(
            got[0] > 225 && got[0] > got[1] && got[1] > got[2],
            "{got:?}"
        );
        assert!(got[1] > 140 && got[2] > 65, "{got:?}");
    }

    #[test]
    fn back_faces_are_culled() {
        // If culling kept the wrong side, the visible surface would be the
        // far inside of the tube, lit at the 0.25 ambient floor at most
        // places; the near side facing the eye must be brighter than that.
        let scene = Scene::new();
        let camera = Camera {
            azimuth: 0.0,
            elevation: 0.0,
            distance: 3.5,
        };
        let (w, h) = (200, 200);
        let mut rgb = Vec::new();
        scene.render(&camera, w, h, &mut rgb);
        let (x, y) = project_point(&camera, [1.0, 0.0, MINOR_RADIUS * 0.6], w, h);
        let got = pixel(&rgb, w, x, y);
        let brightest = *got.iter().max().unwrap();
        assert!(brightest > 200, "{got:?}");
    }

    #[test]
    fn orbiting_changes_the_image() {
        let scene = Scene::new();
        let mut camera = Camera::default();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        scene.render(&camera, 120, 80, &mut before);
        camera.orbit(0.05, 0.0);
        scene.render(&camera, 120, 80, &mut after);
        assert_ne!(before, after);
        let mut again = Vec::new();
        camera.orbit(-0.05, 0.0);
        scene.render(&camera, 120, 80, &mut again);
        assert_eq!(before, again, "rendering must be deterministic");
    }

    #[test]
    fn tiny_and_odd_sizes_do_not_panic() {
        let scene = Scene::new();
        let mut rgb = Vec::new();
        for (w, h) in [(1, 1), (3, 2), (2, 3), (1, 500), (500, 1), (7, 5)] {
            scene.render(&Camera::default(), w, h, &mut rgb);
            assert_eq!(rgb.len(), (w * h * 3) as usize);
        }
        scene.render(&Camera::default(), 0, 10, &mut rgb);
        assert!(rgb.is_empty());
        // Cannot even be sized; must not panic.
        scene.render(&Camera::default(), u32::MAX, u32::MAX, &mut rgb);
        assert!(rgb.is_empty());
    }

    #[test]
    fn large_frame_renders() {
        let scene = Scene::new();
        let mut rgb = Vec::new();
        scene.render(&Camera::default(), 3840, 2160, &mut rgb);
        assert_eq!(rgb.len(), 3840 * 2160 * 3);
        let (x, y) = project_point(
            &Camera::default(),
            [1.35 * 0.866, 1.35 * 0.5, 0.0],
            3840,
            2160,
        );
        assert!(pixel(&rgb, 3840, x, y)[0] > 200);
    }

    #[test]
    fn any_camera_values_render() {
        let scene = Scene::new();
        let mut rgb = Vec::new();
        let odd = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e30,
            -1e30,
            90.0,
            -90.0,
            1e-30,
        ];
        for &a in &odd {
            for &e in &odd {
                for &d in &odd {
                    let camera = Camera {
                        azimuth: a,
                        elevation: e,
                        distance: d,
                    };
                    scene.render(&camera, 16, 9, &mut rgb);
                    assert_eq!(rgb.len(), 16 * 9 * 3);
                }
            }
        }
        // Stored out-of-range values draw as their clamped equivalents.
        let mut clamped = Vec::new();
        let too_close = Camera {
            distance: 0.1,
            ..Camera::default()
        };
        scene.render(&too_close, 64, 36, &mut rgb);
        let at_limit = Camera {
            distance: 1.5,
            ..Camera::default()
        };
        scene.render(&at_limit, 64, 36, &mut clamped);
        assert_eq!(rgb, clamped);
    }

    #[test]
    fn orbit_and_zoom_clamp() {
        let mut camera = Camera::default();
        camera.orbit(0.5, 0.0);
        assert_eq!(camera.azimuth, 30.0 - 90.0);
        camera.orbit(0.0, -10.0);
        assert_eq!(camera.elevation, 89.0);
        camera.orbit(0.0, 10.0);
        assert_eq!(camera.elevation, -89.0);
        camera.zoom(1000.0);
        assert_eq!(camera.distance, 20.0);
        camera.zoom(0.0001);
        assert_eq!(camera.distance, 1.5);
        camera.zoom(2.0);
        assert_eq!(camera.distance, 3.0);
    }

    #[test]
    fn orbit_and_zoom_ignore_nan() {
        let mut camera = Camera::default();
        let before = camera;
        camera.orbit(f32::NAN, 0.1);
        camera.orbit(0.1, f32::NAN);
        camera.orbit(f32::INFINITY, 0.0);
        camera.orbit(f32::MAX, 0.0);
        camera.zoom(f32::NAN);
        camera.zoom(f32::INFINITY);
        camera.zoom(0.0);
        camera.zoom(-2.0);
        assert_eq!(camera, before);
    }

    #[test]
    fn scene_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scene>();
        let scene = std::sync::Arc::new(Scene::new());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let scene = scene.clone();
                std::thread::spawn(move || {
                    let mut rgb = Vec::new();
                    for _ in 0..5 {
                        scene.render(&Camera::default(), 64, 36, &mut rgb);
                    }
                    rgb
                })
            })
            .collect();
        let frames: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(frames[0], frames[1]);
    }
}
