//! Per-view state shared between the RPC handlers and the view's render
//! thread: what to render next, who watches, and the input waiting.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::event::{Interaction, MouseAction, WheelPhase};

/// Input queued for a view while it renders. Moves coalesce, so a steady
/// drag never fills it; past the bound the oldest event goes (and is
/// counted), so a flood cannot grow memory.
pub(crate) const MAX_PENDING_EVENTS: usize = 64;

pub(crate) struct Slot {
    pub id: Arc<str>,
    state: Mutex<ViewState>,
    wake: Condvar,
}

pub(crate) struct ViewState {
    /// The size browsers asked for (`original.size`, `push`'s `size`).
    pub size: (u32, u32),
    pub quality: u8,
    pub ratio: f64,
    pub enabled: bool,
    /// Observers per client: vtk.js adds one per RemoteView.
    pub observers: HashMap<Arc<str>, u32>,
    /// Clients running the view's animation.
    pub animating: HashSet<Arc<str>>,
    pub events: VecDeque<Interaction>,
    /// Something happened that may change the picture.
    pub dirty: bool,
    /// A frame must go out even if the view reports no change (a new
    /// observer, a new size, `push`, `invalidate.cache`).
    pub force: bool,
    /// A button is held or a wheel gesture runs: frames are interactive.
    pub pressed: bool,
    pub wheeling: bool,
    /// The last queued event starts a gesture (vtk.js sends a press as
    /// "down", like the moves after it): nothing merges into it, or the
    /// view would never see where the drag began.
    pub back_is_press: bool,
    pub last_tick: Instant,
    pub shutdown: bool,
    pub stats: Stats,
}

/// Counters of one view, for tests, benchmarks and an app's own status.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Frames rendered and published.
    pub frames: u64,
    /// Input events accepted (mouse, wheel, camera).
    pub events: u64,
    /// Events merged into a later one of the same gesture.
    pub events_coalesced: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// Renders or encodes that failed.
    pub failures: u64,
    /// Time the last frame took to render and encode.
    pub last_work: Duration,
    /// The size of the last frame sent.
    pub last_size: (u32, u32),
}

impl ViewState {
    pub fn observed(&self) -> bool {
        self.enabled && !self.observers.is_empty()
    }

    pub fn interactive(&self) -> bool {
        self.pressed || self.wheeling
    }

    /// Queues an event, merging it into the last one queued when both are
    /// the same gesture moved on (see [`crate::View::interact`]).
    pub fn push_event(&mut self, event: Interaction) {
        self.stats.events += 1;
        let mut press = false;
        match &event {
            Interaction::Mouse(m) => {
                press = m.action == MouseAction::Down && !self.pressed;
                self.pressed = m.action == MouseAction::Down;
            }
            Interaction::Wheel(w) => self.wheeling = w.phase != WheelPhase::End,
            _ => {}
        }
        let back = if self.back_is_press {
            None
        } else {
            self.events.back_mut()
        };
        let merged = match (back, &event) {
            (Some(Interaction::Mouse(last)), Interaction::Mouse(new)) if last.same_gesture(new) => {
                *last = *new;
                true
            }
            (Some(Interaction::Wheel(last)), Interaction::Wheel(new))
                if last.phase == WheelPhase::Turn
                    && new.phase == WheelPhase::Turn
                    && last.modifiers == new.modifiers =>
            {
                // Zoom steps add up; the position is the latest.
                last.spin_y += new.spin_y;
                last.x = new.x;
                last.y = new.y;
                true
            }
            _ => false,
        };
        if merged {
            self.stats.events_coalesced += 1;
        } else {
            if self.events.len() == MAX_PENDING_EVENTS {
                self.events.pop_front();
                self.stats.events_dropped += 1;
            }
            self.events.push_back(event);
            self.back_is_press = press;
        }
        self.dirty = true;
    }

    /// Drops everything a client held on this view; whether it held any.
    pub fn forget_client(&mut self, client: &str) -> bool {
        let observed = self.observers.remove(client).is_some();
        let animated = self.animating.remove(client);
        observed || animated
    }
}

impl Slot {
    pub fn new(id: Arc<str>, size: (u32, u32), quality: u8) -> Self {
        Slot {
            id,
            state: Mutex::new(ViewState {
                size,
                quality,
                ratio: 1.0,
                enabled: true,
                observers: HashMap::new(),
                animating: HashSet::new(),
                events: VecDeque::new(),
                dirty: false,
                force: false,
                pressed: false,
                wheeling: false,
                back_is_press: false,
                last_tick: Instant::now(),
                shutdown: false,
                stats: Stats::default(),
            }),
            wake: Condvar::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, ViewState> {
        // Handlers and the render thread only assign fields under this
        // lock; a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and wakes the render thread.
    pub fn update<R>(&self, f: impl FnOnce(&mut ViewState) -> R) -> R {
        let r = f(&mut self.lock());
        self.wake.notify_one();
        r
    }

    /// Waits for a change, or until `timeout` when given.
    pub fn wait<'a>(
        &self,
        guard: MutexGuard<'a, ViewState>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, ViewState> {
        match timeout {
            None => self.wake.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(t) => {
                self.wake
                    .wait_timeout(guard, t)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Buttons, Modifiers, MouseEvent, WheelEvent};

    fn drag(x: f64) -> Interaction {
        Interaction::Mouse(MouseEvent {
            action: MouseAction::Down,
            x,
            y: 0.5,
            buttons: Buttons {
                left: true,
                ..Buttons::default()
            },
            modifiers: Modifiers::default(),
        })
    }

    fn release() -> Interaction {
        Interaction::Mouse(MouseEvent {
            action: MouseAction::Up,
            x: 0.0,
            y: 0.0,
            buttons: Buttons::default(),
            modifiers: Modifiers::default(),
        })
    }

    #[test]
    fn a_drag_coalesces_into_its_latest_position() {
        let slot = Slot::new("1".into(), (10, 10), 100);
        let mut st = slot.lock();
        for i in 0..10_000 {
            st.push_event(drag(i as f64));
        }
        // The press stays (the view must see where the drag began); the
        // moves merge into the latest.
        assert_eq!(st.events.len(), 2);
        assert_eq!(st.events[0], drag(0.0));
        assert_eq!(st.events[1], drag(9999.0));
        assert!(st.interactive());
        st.push_event(release());
        assert_eq!(st.events.len(), 3, "a release is a new gesture");
        assert!(!st.interactive());
        assert_eq!(st.stats.events, 10_001);
        assert_eq!(st.stats.events_coalesced, 9_998);
    }

    #[test]
    fn alternating_gestures_are_bounded() {
        let slot = Slot::new("1".into(), (10, 10), 100);
        let mut st = slot.lock();
        for i in 0..1_000 {
            st.push_event(if i % 2 == 0 { drag(1.0) } else { release() });
        }
        assert_eq!(st.events.len(), MAX_PENDING_EVENTS);
        assert_eq!(st.stats.events_dropped, 1_000 - MAX_PENDING_EVENTS as u64);
        // The newest survive: the last one queued is the last one sent.
        assert_eq!(st.events.back(), Some(&release()));
    }

    #[test]
    fn wheel_turns_add_up() {
        let slot = Slot::new("1".into(), (10, 10), 100);
        let mut st = slot.lock();
        let turn = |spin| {
            Interaction::Wheel(WheelEvent {
                phase: WheelPhase::Turn,
                spin_y: spin,
                x: 0.5,
                y: 0.5,
                modifiers: Modifiers::default(),
            })
        };
        st.push_event(turn(1.0));
        st.push_event(turn(2.0));
        st.push_event(turn(-0.5));
        assert_eq!(st.events.len(), 1);
        match &st.events[0] {
            Interaction::Wheel(w) => assert_eq!(w.spin_y, 2.5),
            other => panic!("{other:?}"),
        }
    }
}
