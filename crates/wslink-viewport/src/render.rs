//! A view's render thread: waits for work, hands the view its input,
//! renders, encodes and publishes. One thread per view is what makes "at
//! most one render in flight, latest request wins" hold without a queue of
//! render jobs: whatever arrives during a render is folded into the state
//! the next loop reads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wslink_core::SharedBytes;

use crate::encode::encode;
use crate::state::Slot;
use crate::view::{Frame, View};
use crate::{Shared, FRAME_TOPIC};

/// A frame as vtk.js's `ViewStream` reads it (`image`, `id`, `size`,
/// `memsize`, `workTime`), plus what ParaView also sends and what tests
/// and benchmarks use (`quality`, `eventCount`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FrameMessage<'a> {
    image: SharedBytes,
    id: &'a str,
    size: [u32; 2],
    format: &'static str,
    quality: u8,
    memsize: usize,
    mtime: u64,
    work_time: f64,
    stale: bool,
    event_count: u64,
}

struct Job {
    events: Vec<crate::Interaction>,
    tick: Option<Duration>,
    force: bool,
    size: (u32, u32),
    quality: u8,
    interactive: bool,
    event_count: u64,
    /// Who gets the frame: the view's observers, nobody else.
    observers: Vec<Arc<str>>,
}

/// The size to render: the requested size times the ratio, at least a
/// pixel, and scaled down to fit the pixel bound (a ratio above 1 could
/// otherwise pass it).
pub(crate) fn render_size(size: (u32, u32), ratio: f64, max_pixels: u64) -> (u32, u32) {
    let mut w = (size.0 as f64 * ratio).round().max(1.0);
    let mut h = (size.1 as f64 * ratio).round().max(1.0);
    let pixels = w * h;
    if pixels > max_pixels as f64 {
        let shrink = (max_pixels as f64 / pixels).sqrt();
        w = (w * shrink).floor().max(1.0);
        h = (h * shrink).floor().max(1.0);
    }
    (w as u32, h as u32)
}

fn next_job(slot: &Slot, shared: &Shared) -> Option<Job> {
    let mut st = slot.lock();
    loop {
        if st.shutdown {
            return None;
        }
        let observed = st.observed();
        let mut tick = None;
        if observed && !st.animating.is_empty() {
            let period = shared.animation_period();
            let since = st.last_tick.elapsed();
            if since >= period {
                st.last_tick = Instant::now();
                tick = Some(since);
            } else if !(st.dirty || st.force) {
                let wait = period - since;
                st = slot.wait(st, Some(wait));
                continue;
            }
        }
        if observed && (st.dirty || st.force || tick.is_some()) {
            let job = Job {
                events: st.events.drain(..).collect(),
                tick,
                force: std::mem::take(&mut st.force),
                size: render_size(st.size, st.ratio, shared.config.max_pixels),
                quality: st.quality,
                interactive: st.interactive(),
                event_count: st.stats.events,
                observers: st.observers.keys().cloned().collect(),
            };
            st.dirty = false;
            st.back_is_press = false;
            return Some(job);
        }
        st = slot.wait(st, None);
    }
}

pub(crate) fn run(slot: Arc<Slot>, mut view: Box<dyn View>, shared: Arc<Shared>) {
    let mut frame = Frame::new();
    let mut mtime = 0u64;
    while let Some(job) = next_job(&slot, &shared) {
        // A view is the application's code: if it panics, this frame is
        // lost and logged, but the view keeps its thread and its clients.
        let changed = catch_unwind(AssertUnwindSafe(|| {
            let mut changed = false;
            for event in &job.events {
                changed |= view.interact(event);
            }
            if let Some(elapsed) = job.tick {
                changed |= view.animate(elapsed);
            }
            changed
        }));
        let changed = match changed {
            Ok(c) => c,
            Err(_) => {
                tracing::error!(view = %slot.id, "view panicked handling input");
                slot.lock().stats.failures += 1;
                continue;
            }
        };
        if !(changed || job.force) {
            continue;
        }
        let started = Instant::now();
        frame.reset(job.size.0, job.size.1, job.quality, job.interactive);
        let rendered = catch_unwind(AssertUnwindSafe(|| view.render(&mut frame)));
        let image = match rendered {
            Ok(Ok(())) => match frame.encoded.take() {
                Some((format, bytes)) => Ok((format, bytes)),
                None => encode(
                    &frame.pixels,
                    frame.width,
                    frame.height,
                    frame.layout,
                    shared.config.format,
                    frame.quality,
                )
                .map(|b| (shared.config.format, b))
                .map_err(|e| e.to_string()),
            },
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the view panicked while rendering".to_owned()),
        };
        let (format, bytes) = match image {
            Ok(image) => image,
            Err(e) => {
                tracing::error!(view = %slot.id, error = %e, "frame not sent");
                slot.lock().stats.failures += 1;
                continue;
            }
        };
        let work = started.elapsed();
        mtime += 1;
        let message = FrameMessage {
            memsize: bytes.len(),
            image: SharedBytes::from(bytes),
            id: &slot.id,
            size: [frame.width, frame.height],
            format: format.name(),
            quality: frame.quality,
            mtime,
            work_time: work.as_secs_f64() * 1000.0,
            stale: false,
            event_count: job.event_count,
        };
        if let Some(publisher) = shared.publisher.get() {
            // To the view's observers only (vtk.js would drop another
            // view's frames anyway), keep-latest per view: a slow browser
            // gets each view's newest frame, and one view's frames never
            // push out another's.
            let to: Vec<&str> = job.observers.iter().map(|c| &**c).collect();
            let sent = if shared.config.broadcast {
                publisher.publish_latest(FRAME_TOPIC, &slot.id, &message)
            } else {
                publisher.publish_latest_to(&to, FRAME_TOPIC, &slot.id, &message)
            };
            if let Err(e) = sent {
                tracing::error!(view = %slot.id, error = %e, "frame not published");
            }
        }
        let mut st = slot.lock();
        st.stats.frames += 1;
        st.stats.last_work = work;
        st.stats.last_size = (frame.width, frame.height);
    }
}

#[cfg(test)]
mod tests {
    use super::render_size;

    #[test]
    fn render_size_applies_the_ratio_and_the_bound() {
        assert_eq!(render_size((1280, 720), 1.0, u64::MAX), (1280, 720));
        assert_eq!(render_size((1280, 720), 0.5, u64::MAX), (640, 360));
        assert_eq!(render_size((3, 3), 0.01, u64::MAX), (1, 1));
        let (w, h) = render_size((4000, 4000), 4.0, 1_000_000);
        assert!(w as u64 * h as u64 <= 1_000_000, "{w}x{h}");
        assert_eq!(w, h);
    }
}
