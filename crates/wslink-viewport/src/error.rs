//! The viewport's errors. Each becomes a wslink error reply whose
//! `data.exception` is the message, so a browser's console says what was
//! wrong with its call.

/// A call's argument was missing, of the wrong type or out of range.
///
/// ```
/// use wslink_viewport::InputError;
///
/// let err = InputError::new("quality", "must be between 0 and 100, got 250");
/// assert_eq!(err.to_string(), "`quality` must be between 0 and 100, got 250");
/// assert_eq!(err.field(), "quality");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct InputError {
    field: &'static str,
    problem: String,
}

impl InputError {
    /// `field` (as the client names it) and what is wrong with it.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        InputError {
            field,
            problem: problem.into(),
        }
    }

    /// The offending field.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

/// Why a viewport call or the viewport's construction failed.
///
/// ```
/// use wslink_viewport::{Viewport, ViewportError};
///
/// // A viewport needs at least one view.
/// assert!(matches!(Viewport::builder().build(), Err(ViewportError::NoViews)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewportError {
    /// A call named a view that is not registered.
    #[error("unknown view id {id:?} (views: {known}; -1 is the default view)")]
    UnknownView {
        /// The id as sent.
        id: String,
        /// The registered ids, comma-separated.
        known: String,
    },
    /// A call's arguments were malformed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Two views were registered under one id.
    #[error("view id {0:?} registered twice")]
    DuplicateView(String),
    /// The default view named by the builder is not registered.
    #[error("default view {0:?} is not registered")]
    UnknownDefault(String),
    /// `build` was called without any view.
    #[error("a viewport needs at least one view")]
    NoViews,
    /// The operating system refused a render thread.
    #[error("cannot start the render thread of view {view:?}: {source}")]
    Thread {
        /// The view.
        view: String,
        /// The cause.
        source: std::io::Error,
    },
}
