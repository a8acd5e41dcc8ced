//! Browser input as the view sees it, parsed from what vtk.js sends and
//! checked field by field, so a malformed event is refused with a message
//! naming the field and never reaches a view.

use wslink_core::Value;

use crate::error::InputError;

/// Something a browser did to a view.
///
/// ```
/// use wslink_viewport::{Interaction, MouseAction};
///
/// fn describe(event: &Interaction) -> String {
///     match event {
///         Interaction::Mouse(m) if m.action == MouseAction::Down && m.buttons.left => {
///             format!("dragging at ({:.2}, {:.2})", m.x, m.y)
///         }
///         Interaction::Wheel(w) => format!("wheel {}", w.spin_y),
///         _ => "other".into(),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Interaction {
    /// `viewport.mouse.interaction`: a press, a move with a button held, or
    /// a release.
    Mouse(MouseEvent),
    /// `viewport.mouse.zoom.wheel`.
    Wheel(WheelEvent),
    /// `viewport.camera.update` / `viewport.camera.update.params`: the
    /// browser's camera, for views that follow a client-side camera.
    Camera(CameraUpdate),
    /// `viewport.camera.reset`.
    ResetCamera,
}

/// What a mouse event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseAction {
    /// A button is down: vtk.js sends this for the press *and* for every
    /// move while a button is held.
    Down,
    /// All buttons released.
    Up,
    /// A move with no button held (only when the client sends moves).
    Move,
}

/// Which mouse buttons are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Buttons {
    /// Left button.
    pub left: bool,
    /// Middle button.
    pub middle: bool,
    /// Right button.
    pub right: bool,
}

/// Which modifier keys are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modifiers {
    /// Shift.
    pub shift: bool,
    /// Control.
    pub ctrl: bool,
    /// Alt.
    pub alt: bool,
    /// Meta (Command on macOS).
    pub meta: bool,
}

/// A mouse event, with the position normalised to the view: `x` from 0
/// (left) to 1 (right), `y` from 0 (bottom) to 1 (top), VTK's convention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MouseEvent {
    /// Press/drag, release or move.
    pub action: MouseAction,
    /// Horizontal position, 0 at the left edge.
    pub x: f64,
    /// Vertical position, 0 at the bottom edge.
    pub y: f64,
    /// Buttons held.
    pub buttons: Buttons,
    /// Modifier keys held.
    pub modifiers: Modifiers,
}

impl MouseEvent {
    /// Whether a button is held (a press or a drag).
    pub fn is_press(&self) -> bool {
        self.action == MouseAction::Down
    }

    /// Whether `other` is the same gesture moved on: merging the two
    /// keeps the later position only.
    pub(crate) fn same_gesture(&self, other: &MouseEvent) -> bool {
        self.action == other.action
            && self.buttons == other.buttons
            && self.modifiers == other.modifiers
    }
}

/// The phase of a wheel gesture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WheelPhase {
    /// The first wheel event of a gesture.
    Start,
    /// A further turn.
    Turn,
    /// The gesture ended (no spin).
    End,
}

/// A wheel event: `spin_y` > 0 scrolls down (zoom out, by convention).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WheelEvent {
    /// Where in the gesture.
    pub phase: WheelPhase,
    /// Vertical spin, in wheel steps (0 for [`WheelPhase::End`]).
    pub spin_y: f64,
    /// Pointer position, normalised as in [`MouseEvent`] (0.5 when absent).
    pub x: f64,
    /// Pointer position, normalised as in [`MouseEvent`] (0.5 when absent).
    pub y: f64,
    /// Modifier keys held.
    pub modifiers: Modifiers,
}

/// A camera sent by the browser. Fields it did not send are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CameraUpdate {
    /// The point looked at.
    pub focal_point: Option<[f64; 3]>,
    /// The up direction.
    pub view_up: Option<[f64; 3]>,
    /// The eye.
    pub position: Option<[f64; 3]>,
    /// Vertical view angle in degrees.
    pub view_angle: Option<f64>,
    /// Parallel (orthographic) projection.
    pub parallel_projection: Option<bool>,
    /// Half the view height in parallel projection.
    pub parallel_scale: Option<f64>,
}

fn field<'a>(event: &'a Value, name: &'static str) -> Option<&'a Value> {
    event.get(name).filter(|v| !v.is_nil())
}

pub(crate) fn number(value: &Value, what: &'static str) -> Result<f64, InputError> {
    match value.as_f64() {
        Some(n) if n.is_finite() => Ok(n),
        Some(_) => Err(InputError::new(what, "must be a finite number")),
        None => Err(InputError::new(
            what,
            format!("must be a number, got {}", value.kind()),
        )),
    }
}

fn required_number(event: &Value, name: &'static str) -> Result<f64, InputError> {
    match field(event, name) {
        Some(v) => number(v, name),
        None => Err(InputError::new(name, "is missing")),
    }
}

/// A flag vtk.js sends as 0/1; booleans are taken too. Absent means false.
fn flag(event: &Value, name: &'static str) -> Result<bool, InputError> {
    match field(event, name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => match v.as_f64() {
            Some(0.0) => Ok(false),
            Some(1.0) => Ok(true),
            _ => Err(InputError::new(name, "must be 0, 1, true or false")),
        },
    }
}

fn modifiers(event: &Value) -> Result<Modifiers, InputError> {
    Ok(Modifiers {
        shift: flag(event, "shiftKey")?,
        ctrl: flag(event, "ctrlKey")?,
        alt: flag(event, "altKey")?,
        meta: flag(event, "metaKey")?,
    })
}

fn expect_map(event: &Value, what: &'static str) -> Result<(), InputError> {
    if event.as_map().is_some() {
        Ok(())
    } else {
        Err(InputError::new(
            what,
            format!("must be an object, got {}", event.kind()),
        ))
    }
}

impl MouseEvent {
    /// Reads a `viewport.mouse.interaction` event.
    ///
    /// ```
    /// use wslink_viewport::{MouseAction, MouseEvent, Value};
    ///
    /// let sent = Value::map([
    ///     ("action", Value::from("down")),
    ///     ("x", Value::from(0.25)),
    ///     ("y", Value::from(0.5)),
    ///     ("buttonLeft", Value::from(1)),
    ///     ("view", Value::from("-1")),
    /// ]);
    /// let event = MouseEvent::from_value(&sent).unwrap();
    /// assert_eq!(event.action, MouseAction::Down);
    /// assert!(event.buttons.left && !event.buttons.right);
    ///
    /// let missing = Value::map([("action", Value::from("down"))]);
    /// assert!(MouseEvent::from_value(&missing).unwrap_err().to_string().contains("`x` is missing"));
    /// ```
    pub fn from_value(event: &Value) -> Result<Self, InputError> {
        expect_map(event, "event")?;
        let action = match field(event, "action") {
            None => return Err(InputError::new("action", "is missing")),
            Some(v) => match v.as_str() {
                Some("down") => MouseAction::Down,
                Some("up") => MouseAction::Up,
                Some("move") => MouseAction::Move,
                Some(other) => {
                    return Err(InputError::new(
                        "action",
                        format!("must be \"down\", \"up\" or \"move\", got {other:?}"),
                    ))
                }
                None => {
                    return Err(InputError::new(
                        "action",
                        format!("must be a string, got {}", v.kind()),
                    ))
                }
            },
        };
        Ok(MouseEvent {
            action,
            x: required_number(event, "x")?,
            y: required_number(event, "y")?,
            buttons: Buttons {
                left: flag(event, "buttonLeft")?,
                middle: flag(event, "buttonMiddle")?,
                right: flag(event, "buttonRight")?,
            },
            modifiers: modifiers(event)?,
        })
    }
}

impl WheelEvent {
    /// Reads a `viewport.mouse.zoom.wheel` event.
    ///
    /// ```
    /// use wslink_viewport::{Value, WheelEvent, WheelPhase};
    ///
    /// let sent = Value::map([
    ///     ("type", Value::from("MouseWheel")),
    ///     ("spinY", Value::from(1.0)),
    ///     ("x", Value::from(0.5)),
    ///     ("y", Value::from(0.5)),
    /// ]);
    /// let event = WheelEvent::from_value(&sent).unwrap();
    /// assert_eq!((event.phase, event.spin_y), (WheelPhase::Turn, 1.0));
    /// ```
    pub fn from_value(event: &Value) -> Result<Self, InputError> {
        expect_map(event, "event")?;
        let phase = match field(event, "type").map(|v| (v.as_str(), v)) {
            None => return Err(InputError::new("type", "is missing")),
            Some((Some("StartMouseWheel"), _)) => WheelPhase::Start,
            Some((Some("MouseWheel"), _)) => WheelPhase::Turn,
            Some((Some("EndMouseWheel"), _)) => WheelPhase::End,
            Some((Some(other), _)) => {
                return Err(InputError::new(
                    "type",
                    format!("must be StartMouseWheel, MouseWheel or EndMouseWheel, got {other:?}"),
                ))
            }
            Some((None, v)) => {
                return Err(InputError::new(
                    "type",
                    format!("must be a string, got {}", v.kind()),
                ))
            }
        };
        let optional = |name| field(event, name).map(|v| number(v, name)).transpose();
        let spin_y = match phase {
            WheelPhase::End => optional("spinY")?.unwrap_or(0.0),
            _ => required_number(event, "spinY")?,
        };
        Ok(WheelEvent {
            phase,
            spin_y,
            x: optional("x")?.unwrap_or(0.5),
            y: optional("y")?.unwrap_or(0.5),
            modifiers: modifiers(event)?,
        })
    }
}

pub(crate) fn vec3(value: &Value, what: &'static str) -> Result<[f64; 3], InputError> {
    let items = value
        .as_array()
        .filter(|a| a.len() == 3)
        .ok_or_else(|| InputError::new(what, "must be an array of 3 numbers"))?;
    Ok([
        number(&items[0], what)?,
        number(&items[1], what)?,
        number(&items[2], what)?,
    ])
}

impl CameraUpdate {
    /// Reads `viewport.camera.update.params`' parameter object
    /// (`focalPoint`, `viewUp`, `position`, `viewAngle`,
    /// `parallelProjection`, `parallelScale`; each optional).
    ///
    /// ```
    /// use wslink_viewport::{CameraUpdate, Value};
    ///
    /// let params = Value::map([("viewAngle", Value::from(30.0))]);
    /// assert_eq!(CameraUpdate::from_params(&params).unwrap().view_angle, Some(30.0));
    /// ```
    pub fn from_params(params: &Value) -> Result<Self, InputError> {
        expect_map(params, "parameters")?;
        let v3 = |name| field(params, name).map(|v| vec3(v, name)).transpose();
        Ok(CameraUpdate {
            focal_point: v3("focalPoint")?,
            view_up: v3("viewUp")?,
            position: v3("position")?,
            view_angle: field(params, "viewAngle")
                .map(|v| number(v, "viewAngle"))
                .transpose()?,
            parallel_projection: match field(params, "parallelProjection") {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(v) => Some(number(v, "parallelProjection")? != 0.0),
            },
            parallel_scale: field(params, "parallelScale")
                .map(|v| number(v, "parallelScale"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(entries: Vec<(&str, Value)>) -> Value {
        Value::map(entries)
    }

    #[test]
    fn mouse_fields_of_the_wrong_type_are_refused_by_name() {
        let base = || {
            vec![
                ("action", Value::from("down")),
                ("x", Value::from(0.5)),
                ("y", Value::from(0.5)),
            ]
        };
        assert!(MouseEvent::from_value(&ev(base())).is_ok());
        for (name, bad, expect) in [
            ("x", Value::from("left"), "`x` must be a number, got string"),
            ("y", Value::F64(f64::NAN), "`y` must be a finite number"),
            ("action", Value::from(3), "`action` must be a string"),
            ("action", Value::from("drag"), "got \"drag\""),
            ("buttonLeft", Value::from(7), "`buttonLeft` must be 0, 1"),
            ("shiftKey", Value::from("yes"), "`shiftKey` must be 0, 1"),
        ] {
            let mut fields = base();
            fields.retain(|(k, _)| *k != name);
            fields.push((name, bad));
            let err = MouseEvent::from_value(&ev(fields)).unwrap_err().to_string();
            assert!(err.contains(expect), "{name}: {err}");
        }
        let err = MouseEvent::from_value(&Value::from(1)).unwrap_err();
        assert!(err.to_string().contains("`event` must be an object"));
    }

    #[test]
    fn wheel_end_needs_no_spin_but_a_turn_does() {
        let end = ev(vec![("type", Value::from("EndMouseWheel"))]);
        assert_eq!(WheelEvent::from_value(&end).unwrap().phase, WheelPhase::End);
        let turn = ev(vec![("type", Value::from("MouseWheel"))]);
        assert!(WheelEvent::from_value(&turn)
            .unwrap_err()
            .to_string()
            .contains("`spinY` is missing"));
    }

    #[test]
    fn camera_vectors_must_have_three_numbers() {
        let bad = ev(vec![(
            "position",
            Value::Array(vec![Value::from(1.0), Value::from(2.0)]),
        )]);
        assert!(CameraUpdate::from_params(&bad).is_err());
    }
}
