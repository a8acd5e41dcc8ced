//! Why a session request failed, and the HTTP status it answers with.

/// Why a session could not be started. The message is what the client
/// reads in `{"error": ...}`; where Kitware's launcher has a message for
/// the same case, it is the same text.
///
/// ```
/// use wslink_launcher::LaunchError;
///
/// assert_eq!(LaunchError::NoResources.status(), 503);
/// assert_eq!(LaunchError::NoResources.to_string(), "All the resources are currently taken");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// The body is not a JSON object.
    #[error("The request is not a JSON object: {0}")]
    Malformed(String),
    /// The body is larger than `max_request_bytes`.
    #[error("The request is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The object has no `application`.
    #[error("The request is not complete")]
    MissingApplication,
    /// `application` names no app of the configuration.
    #[error("Unknown application: {0}")]
    UnknownApplication(String),
    /// `max_concurrent_launches` sessions are already starting.
    #[error("Too many sessions are starting at once; try again")]
    TooManyLaunches,
    /// Every port of every resource is in use.
    #[error("All the resources are currently taken")]
    NoResources,
    /// The launcher is stopping.
    #[error("The launcher is stopping")]
    ShuttingDown,
    /// The process could not be started (no such program, ...).
    #[error("The process did not properly start: {0}")]
    Spawn(String),
    /// The ready line did not come within `timeout`; the process was
    /// stopped and its port freed.
    #[error("Session did not start before timeout expired. Check session logs.")]
    Timeout,
    /// The process ended before it was ready.
    #[error("The process exited ({0}) before it was ready. Check session logs.")]
    ExitedEarly(String),
}

impl LaunchError {
    /// The HTTP status of the answer: 400 for a request that can never
    /// succeed as sent, 413 for one too large, 503 for one that may
    /// succeed later (npm wslink's `launcherRetry` retries on 503).
    pub fn status(&self) -> u16 {
        match self {
            LaunchError::Malformed(_)
            | LaunchError::MissingApplication
            | LaunchError::UnknownApplication(_) => 400,
            LaunchError::TooLarge { .. } => 413,
            LaunchError::TooManyLaunches
            | LaunchError::NoResources
            | LaunchError::ShuttingDown
            | LaunchError::Spawn(_)
            | LaunchError::Timeout
            | LaunchError::ExitedEarly(_) => 503,
        }
    }
}
