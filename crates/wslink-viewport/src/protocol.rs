//! The RPC methods of the image-delivery protocol, as vtk.js's
//! `DefaultProtocol` and `RemoteView` call them.
//!
//! Every handler only reads its arguments and changes the view's state
//! under a short lock, then wakes the render thread; none waits for a
//! render. They finish at their first poll, so the server answers them in
//! the order they arrived (a release, then `quality(100)`, then `push`
//! keep their order, and the still frame is the last one).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wslink_core::params::RawArgs;
use wslink_server::{CallContext, HandlerError, LinkProtocol, Methods};

use crate::error::{InputError, ViewportError};
use crate::event::{number, vec3, CameraUpdate, Interaction, MouseEvent, WheelEvent};
use crate::state::Slot;
use crate::{Shared, Value, Viewport};

/// The highest animation rate a client may set.
pub(crate) const MAX_FPS: f64 = 240.0;

type Handler = fn(&Shared, &CallContext, &[Value]) -> Result<Value, ViewportError>;

fn success() -> Value {
    Value::map([("result", Value::from("success"))])
}

fn arg<'a>(args: &'a [Value], i: usize, name: &'static str) -> Result<&'a Value, InputError> {
    args.get(i)
        .filter(|v| !v.is_nil())
        .ok_or_else(|| InputError::new(name, "is missing"))
}

impl Shared {
    /// The view a call names: a string or a number; -1 is the default.
    fn view(&self, id: &Value) -> Result<&Arc<Slot>, ViewportError> {
        let text = match id {
            Value::Str(s) => s.clone(),
            other => match other.as_f64() {
                Some(n) if n.is_finite() && n.fract() == 0.0 => format!("{}", n as i64),
                _ => {
                    return Err(InputError::new(
                        "view",
                        format!("must be a view id (string or integer), got {}", id.kind()),
                    )
                    .into())
                }
            },
        };
        if text == "-1" {
            return Ok(&self.views[self.default_view]);
        }
        self.by_id
            .get(&text)
            .map(|&i| &self.views[i])
            .ok_or_else(|| ViewportError::UnknownView {
                id: text,
                known: self
                    .views
                    .iter()
                    .map(|s| &*s.id)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn size(&self, w: &Value, h: &Value) -> Result<(u32, u32), InputError> {
        let max = self.config.max_dimension;
        let one = |v: &Value, name: &'static str| -> Result<u32, InputError> {
            let n = number(v, name)?.round();
            if n < 1.0 {
                return Err(InputError::new(
                    name,
                    format!("must be at least 1 pixel, got {n}"),
                ));
            }
            if n > f64::from(max) {
                return Err(InputError::new(
                    name,
                    format!("must be at most {max} pixels, got {n}"),
                ));
            }
            Ok(n as u32)
        };
        let (w, h) = (one(w, "width")?, one(h, "height")?);
        let pixels = u64::from(w) * u64::from(h);
        if pixels > self.config.max_pixels {
            return Err(InputError::new(
                "size",
                format!(
                    "{w}x{h} is {pixels} pixels, over the bound of {}",
                    self.config.max_pixels
                ),
            ));
        }
        Ok((w, h))
    }
}

fn observer_add(s: &Shared, ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "viewId")?)?;
    slot.update(|st| {
        *st.observers.entry(ctx.client_id().into()).or_insert(0) += 1;
        // The newcomer needs a picture now, not at the next change.
        st.force = true;
    });
    Ok(Value::map([
        ("success", Value::from(true)),
        ("viewId", Value::from(&*slot.id)),
    ]))
}

fn observer_remove(s: &Shared, ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "viewId")?)?;
    slot.update(|st| {
        if let Some(n) = st.observers.get_mut(ctx.client_id()) {
            *n -= 1;
            if *n == 0 {
                st.observers.remove(ctx.client_id());
            }
        }
    });
    Ok(success())
}

fn push(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let options = arg(args, 0, "options")?;
    if options.as_map().is_none() {
        return Err(InputError::new(
            "options",
            format!("must be an object {{view, size}}, got {}", options.kind()),
        )
        .into());
    }
    let slot = s.view(options.get("view").unwrap_or(&Value::from(-1)))?;
    let size = match options.get("size").filter(|v| !v.is_nil()) {
        None => None,
        Some(size) => match size.as_array() {
            Some([w, h]) => Some(s.size(w, h)?),
            _ => {
                return Err(InputError::new("size", "must be an array [width, height]").into());
            }
        },
    };
    slot.update(|st| {
        if let Some(size) = size {
            st.size = size;
        }
        st.force = true;
    });
    Ok(success())
}

fn original_size(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "view")?)?;
    let size = s.size(arg(args, 1, "width")?, arg(args, 2, "height")?)?;
    slot.update(|st| {
        if st.size != size {
            st.size = size;
            st.force = true;
        }
    });
    Ok(success())
}

fn quality(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "view")?)?;
    let q = number(arg(args, 1, "quality")?, "quality")?;
    if !(0.0..=100.0).contains(&q) {
        return Err(
            InputError::new("quality", format!("must be between 0 and 100, got {q}")).into(),
        );
    }
    let ratio = match args.get(2).filter(|v| !v.is_nil()) {
        None => 1.0,
        Some(r) => {
            let r = number(r, "ratio")?;
            if !(r > 0.0 && r <= 4.0) {
                return Err(InputError::new("ratio", format!("must be in (0, 4], got {r}")).into());
            }
            r
        }
    };
    // No render here: RemoteView follows a quality change with the call
    // that needs a frame (`push`) or with the drag's own events.
    slot.update(|st| {
        st.quality = q.round() as u8;
        st.ratio = ratio;
    });
    Ok(success())
}

fn invalidate_cache(
    s: &Shared,
    _ctx: &CallContext,
    args: &[Value],
) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "view")?)?;
    slot.update(|st| st.force = true);
    Ok(success())
}

fn enabled(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "view")?)?;
    let on = match arg(args, 1, "enabled")? {
        Value::Bool(b) => *b,
        v => number(v, "enabled")? != 0.0,
    };
    slot.update(|st| {
        if on && !st.enabled {
            st.force = true;
        }
        st.enabled = on;
    });
    Ok(success())
}

fn fps_max(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let fps = match args.first().filter(|v| !v.is_nil()) {
        None => 30.0,
        Some(v) => number(v, "fps")?,
    };
    if !(fps > 0.0 && fps <= MAX_FPS) {
        return Err(InputError::new("fps", format!("must be in (0, {MAX_FPS}], got {fps}")).into());
    }
    s.fps_max.store(fps.to_bits(), Ordering::Relaxed);
    for slot in &s.views {
        slot.update(|_| {});
    }
    Ok(success())
}

fn fps_get(s: &Shared, _ctx: &CallContext, _args: &[Value]) -> Result<Value, ViewportError> {
    Ok(Value::from(f64::from_bits(
        s.fps_max.load(Ordering::Relaxed),
    )))
}

fn animation(
    s: &Shared,
    ctx: &CallContext,
    args: &[Value],
    start: bool,
) -> Result<Value, ViewportError> {
    let slot = s.view(
        args.first()
            .filter(|v| !v.is_nil())
            .unwrap_or(&Value::from(-1)),
    )?;
    slot.update(|st| {
        if start {
            st.animating.insert(ctx.client_id().into());
        } else {
            st.animating.remove(ctx.client_id());
        }
    });
    Ok(success())
}

fn animation_start(s: &Shared, ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    animation(s, ctx, args, true)
}

fn animation_stop(s: &Shared, ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    animation(s, ctx, args, false)
}

fn interact(slot: &Slot, event: Interaction, force: bool) {
    slot.update(|st| {
        st.push_event(event);
        st.force |= force;
    });
}

fn camera_reset(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(
        args.first()
            .filter(|v| !v.is_nil())
            .unwrap_or(&Value::from(-1)),
    )?;
    interact(slot, Interaction::ResetCamera, true);
    Ok(success())
}

fn force_flag(args: &[Value], i: usize) -> bool {
    match args.get(i) {
        None | Some(Value::Nil) => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => v.as_f64().is_some_and(|n| n != 0.0),
    }
}

fn camera_update(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "view")?)?;
    let camera = CameraUpdate {
        focal_point: Some(vec3(arg(args, 1, "focalPoint")?, "focalPoint")?),
        view_up: Some(vec3(arg(args, 2, "viewUp")?, "viewUp")?),
        position: Some(vec3(arg(args, 3, "position")?, "position")?),
        ..CameraUpdate::default()
    };
    interact(slot, Interaction::Camera(camera), force_flag(args, 4));
    Ok(success())
}

fn camera_params(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let slot = s.view(arg(args, 0, "view")?)?;
    let camera = CameraUpdate::from_params(arg(args, 1, "parameters")?)?;
    interact(slot, Interaction::Camera(camera), force_flag(args, 2));
    Ok(success())
}

/// The view an event names in its `view` field (the default view when it
/// has none, as for a client that never set `remoteEventAddOn`).
fn event_view<'a>(s: &'a Shared, event: &Value) -> Result<&'a Arc<Slot>, ViewportError> {
    s.view(
        event
            .get("view")
            .filter(|v| !v.is_nil())
            .unwrap_or(&Value::from(-1)),
    )
}

fn mouse(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let event = arg(args, 0, "event")?;
    let parsed = MouseEvent::from_value(event)?;
    interact(event_view(s, event)?, Interaction::Mouse(parsed), false);
    Ok(success())
}

fn wheel(s: &Shared, _ctx: &CallContext, args: &[Value]) -> Result<Value, ViewportError> {
    let event = arg(args, 0, "event")?;
    let parsed = WheelEvent::from_value(event)?;
    interact(event_view(s, event)?, Interaction::Wheel(parsed), false);
    Ok(success())
}

const METHODS: &[(&str, Handler)] = &[
    ("viewport.image.push.observer.add", observer_add),
    ("viewport.image.push.observer.remove", observer_remove),
    ("viewport.image.push", push),
    ("viewport.image.push.original.size", original_size),
    ("viewport.image.push.quality", quality),
    ("viewport.image.push.invalidate.cache", invalidate_cache),
    ("viewport.image.push.enabled", enabled),
    ("viewport.image.animation.fps.max", fps_max),
    ("viewport.image.animation.fps.get", fps_get),
    ("viewport.image.animation.start", animation_start),
    ("viewport.image.animation.stop", animation_stop),
    ("viewport.camera.reset", camera_reset),
    ("viewport.camera.update", camera_update),
    ("viewport.camera.update.params", camera_params),
    ("viewport.mouse.interaction", mouse),
    ("viewport.mouse.zoom.wheel", wheel),
];

impl LinkProtocol for Viewport {
    fn register(self: Arc<Self>, methods: &mut Methods) {
        for &(name, handler) in METHODS {
            methods.add_with(
                self.clone(),
                name,
                move |me, ctx: CallContext, raw: RawArgs| {
                    let shared = &me.shared;
                    // The render threads publish through the server's publisher,
                    // which only a call can hand over.
                    shared.publisher.get_or_init(|| ctx.publisher().clone());
                    let result = handler(shared, &ctx, &raw.args).map_err(HandlerError::msg);
                    std::future::ready(result)
                },
            );
        }
    }

    fn on_close(&self, client_id: &str) {
        // A closed page's observers and animations go with it, so a view
        // nobody watches any more stops rendering.
        for slot in &self.shared.views {
            slot.update(|st| st.forget_client(client_id));
        }
    }
}
