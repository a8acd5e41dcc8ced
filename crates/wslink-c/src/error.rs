//! Status codes, the per-thread last error, and the guard every extern
//! function runs its body in (so that no panic unwinds into C).

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a function of the library returns: `WSLINK_OK` (0), or the kind of
/// failure. The details of a failure (a message, and for
/// `WSLINK_ERR_RPC` / `WSLINK_ERR_AUTH` the server's error code and data)
/// are read on the same thread with `wslink_last_error_message()`,
/// `wslink_last_error_code()` and `wslink_last_error_data()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum wslink_status {
    /// Success.
    WSLINK_OK = 0,
    /// The caller passed something unusable: a NULL pointer where one is
    /// required, a string that is not UTF-8, arguments that are not JSON
    /// (or not an array / object), a `{"$binary": N}` with no buffer N, a
    /// buffer no placeholder refers to, a topic outside wslink's grammar.
    WSLINK_ERR_INVALID_ARGUMENT = 1,
    /// The URL is not a `ws://` URL (or, for `wslink_launch`, an `http://`
    /// URL) the library can use.
    WSLINK_ERR_INVALID_URL = 2,
    /// The TCP connection or the WebSocket upgrade failed (refused, DNS,
    /// an HTTP answer that is not an upgrade).
    WSLINK_ERR_CONNECT = 3,
    /// The server refused the hello (wrong secret): `wslink_last_error_code()`
    /// gives its code (-32000).
    WSLINK_ERR_AUTH = 4,
    /// The server answered the call with an error: `wslink_last_error_code()`
    /// gives its code (-32601 unknown method, -32001 exception...) and
    /// `wslink_last_error_data()` its data as JSON.
    WSLINK_ERR_RPC = 5,
    /// No answer in time (the connect timeout, or the call's).
    WSLINK_ERR_TIMEOUT = 6,
    /// The connection is closed, or was lost; every later call fails so too.
    WSLINK_ERR_CLOSED = 7,
    /// The server sent something that is not valid wslink or broke one of
    /// the client's limits (sizes, partial messages, nesting); the library
    /// closed the connection.
    WSLINK_ERR_PROTOCOL = 8,
    /// The session manager (launcher) failed: unreachable, an HTTP error,
    /// an `{"error": ...}` answer, or an answer without a `sessionURL`.
    WSLINK_ERR_LAUNCH = 9,
    /// A bug in the library (a panic, caught at the boundary), or a
    /// resource the library could not get (its runtime, a thread). The
    /// message says what; the library stays usable.
    WSLINK_ERR_INTERNAL = 10,
}

use wslink_status::*;

impl wslink_status {
    /// The status whose number is `n`, if there is one.
    pub(crate) fn from_int(n: i32) -> Option<wslink_status> {
        const ALL: [wslink_status; 11] = [
            WSLINK_OK,
            WSLINK_ERR_INVALID_ARGUMENT,
            WSLINK_ERR_INVALID_URL,
            WSLINK_ERR_CONNECT,
            WSLINK_ERR_AUTH,
            WSLINK_ERR_RPC,
            WSLINK_ERR_TIMEOUT,
            WSLINK_ERR_CLOSED,
            WSLINK_ERR_PROTOCOL,
            WSLINK_ERR_LAUNCH,
            WSLINK_ERR_INTERNAL,
        ];
        ALL.into_iter().find(|s| *s as i32 == n)
    }
}

/// A failed call, before it becomes the thread's last error.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: wslink_status,
    pub(crate) message: String,
    /// The server's error code (RPC errors and refused hellos).
    pub(crate) code: Option<i64>,
    /// The server's error data, as JSON (RPC errors).
    pub(crate) data: Option<String>,
}

impl Failure {
    pub(crate) fn new(status: wslink_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            code: None,
            data: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(WSLINK_ERR_INVALID_ARGUMENT, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure::new(WSLINK_ERR_INTERNAL, message)
    }
}

impl From<wslink_client::Error> for Failure {
    fn from(e: wslink_client::Error) -> Failure {
        use wslink_client::Error as E;
        let status = match &e {
            E::InvalidUrl { .. } => WSLINK_ERR_INVALID_URL,
            E::Connect { .. } => WSLINK_ERR_CONNECT,
            E::Auth { .. } => WSLINK_ERR_AUTH,
            E::Rpc { .. } => WSLINK_ERR_RPC,
            E::Closed { .. } => WSLINK_ERR_CLOSED,
            E::Protocol { .. } => WSLINK_ERR_PROTOCOL,
            E::Timeout { .. } => WSLINK_ERR_TIMEOUT,
            E::InvalidArgs { .. }
            | E::InvalidTopic(_)
            | E::CaFile { .. }
            | E::BadRootCertificate { .. } => WSLINK_ERR_INVALID_ARGUMENT,
            _ => WSLINK_ERR_INTERNAL,
        };
        let data = match &e {
            E::Rpc { data: Some(d), .. } => Some(crate::payload::to_json_lossy(d)),
            _ => None,
        };
        Failure {
            status,
            message: e.to_string(),
            code: e.code(),
            data,
        }
    }
}

/// The last failure on one thread, as C reads it.
struct LastError {
    status: wslink_status,
    message: CString,
    code: i64,
    data: Option<CString>,
}

impl LastError {
    fn none() -> LastError {
        LastError {
            status: WSLINK_OK,
            message: CString::default(),
            code: 0,
            data: None,
        }
    }
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError::none());
}

/// A C string of `s`, with any NUL byte (a server's message may hold one)
/// shown as `\0` instead of cutting the string short.
pub(crate) fn c_string(s: impl Into<String>) -> CString {
    let s = s.into();
    match CString::new(s) {
        Ok(c) => c,
        Err(e) => {
            let text = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\\0");
            CString::new(text).unwrap_or_default()
        }
    }
}

/// Makes `failure` this thread's last error; returns its status.
pub(crate) fn set_last_error(failure: Failure) -> wslink_status {
    let status = failure.status;
    let last = LastError {
        status,
        message: c_string(failure.message),
        code: failure.code.unwrap_or(0),
        data: failure.data.map(c_string),
    };
    // `try_with`: during thread teardown there is nowhere to keep it.
    let _ = LAST.try_with(|cell| *cell.borrow_mut() = last);
    status
}

fn clear_last_error() {
    let _ = LAST.try_with(|cell| *cell.borrow_mut() = LastError::none());
}

/// Calls `read` with this thread's last error.
fn with_last<T>(read: impl FnOnce(&LastError) -> T, default: T) -> T {
    LAST.try_with(|cell| read(&cell.borrow()))
        .unwrap_or(default)
}

pub(crate) fn last_message() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    with_last(|l| l.message.as_ptr(), EMPTY.as_ptr().cast())
}

pub(crate) fn last_code() -> i64 {
    with_last(|l| l.code, 0)
}

pub(crate) fn last_data() -> *const c_char {
    with_last(
        |l| l.data.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
        std::ptr::null(),
    )
}

pub(crate) fn last_status() -> wslink_status {
    with_last(|l| l.status, WSLINK_OK)
}

/// What a caught panic said.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with no message".to_owned()
    }
}

fn panicked(function: &str, payload: Box<dyn Any + Send>) -> Failure {
    let message = panic_message(payload.as_ref());
    // Dropping a payload can itself panic; never let that out either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    Failure::internal(format!(
        "internal error in {function}: {message} (a bug in wslink-c: please report it)"
    ))
}

/// Runs the body of an extern function that returns a status: clears the
/// thread's last error, runs `body`, and turns its failure, or a panic,
/// into the last error and its status.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> Result<(), Failure>) -> wslink_status {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => WSLINK_OK,
        Ok(Err(failure)) => set_last_error(failure),
        Err(payload) => set_last_error(panicked(function, payload)),
    }
}

/// Runs the body of an extern function that returns a value rather than a
/// status; a panic returns `fallback` and becomes the last error.
pub(crate) fn guard_value<T>(function: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            set_last_error(panicked(function, payload));
            fallback
        }
    }
}
