//! # wslink-c
//!
//! A C ABI over [`wslink_client`], for C and C++ programs that call wslink
//! servers (this project's, or Kitware's Python server, wslink 2.x or 1.x)
//! with the Rust client's limits and without a Rust toolchain in their
//! build. The library is `libwslink_c.so` / `libwslink_c.a`; its header,
//! `include/wslink.h`, is generated from this crate by cbindgen and
//! committed (`bash tests/c/run.sh` fails when it is stale), and
//! `include/wslink.hpp` is a header-only C++17 layer over it.
//!
//! ```c
//! wslink_options options = {0};            /* zero means default, everywhere */
//! options.secret = "wslink-secret";
//! wslink_connection *conn = NULL;
//! if (wslink_connect("ws://127.0.0.1:8080/ws", &options, &conn) != WSLINK_OK) {
//!     fprintf(stderr, "%s\n", wslink_last_error_message());
//!     return 1;
//! }
//! uint8_t pixels[4] = {1, 2, 3, 4};
//! wslink_buffer in = {pixels, sizeof pixels};
//! wslink_payload *out = NULL;
//! if (wslink_call(conn, "conformance.echo", "[{\"$binary\": 0}]", &in, 1, &out) == WSLINK_OK) {
//!     /* out->json is {"$binary":0}; out->buffers[0] holds the 4 bytes */
//!     wslink_payload_free(out);
//! }
//! wslink_close(conn);
//! ```
//!
//! ## Values: JSON plus buffers
//!
//! Arguments go in as JSON text (an array, and for `wslink_call_ex` an
//! object of keyword arguments) plus any number of buffers. Wherever a
//! binary value belongs, the JSON holds `{"$binary": N}`: buffer N (from 0)
//! goes there, as msgpack `bin` in 2.x or an attachment in 1.x. Every
//! buffer given must be referred to at least once. Results and published
//! messages come back the same way (a [`wslink_payload`]): JSON in which
//! each binary value is `{"$binary": N}`, numbered in the order they occur,
//! and an array of buffers. A msgpack extension (2.x) reads
//! `{"$ext": TYPE, "$binary": N}` (and may be sent so). No base64 anywhere;
//! received binaries are not even copied: a payload's buffers point into the
//! message as it was received. A map whose only key is `$binary` cannot be
//! sent as such: it always means a buffer.
//!
//! Integers are exact over the whole msgpack range (`-2^63 .. 2^64-1`), map
//! keys keep their order, a non-string msgpack key becomes its JSON text
//! (`1` → `"1"`), and NaN and infinities read `null` (JSON has neither).
//!
//! ## Ownership
//!
//! - What the caller passes is only borrowed during the call: strings,
//!   options, buffers (copied before the call returns).
//! - What the library returns has exactly one free function:
//!   `wslink_connection *` → [`wslink_close`]; `wslink_subscription *` →
//!   [`wslink_unsubscribe`]; `wslink_payload *` from a call →
//!   [`wslink_payload_free`]; `char *` (the launcher's answer) →
//!   [`wslink_string_free`]. Each takes NULL as a no-op.
//! - Lent, never freed by the caller: the payload given to a subscription
//!   callback (for the callback's duration), the strings of
//!   `wslink_last_error_*` (until the next status-returning call on that
//!   thread), [`wslink_connection_client_id`] (until the connection is
//!   closed), and the static strings of [`wslink_version`] and
//!   [`wslink_status_name`].
//!
//! ## Threads
//!
//! - One tokio runtime for the whole library, multi-threaded with two
//!   workers named `wslink-runtime`, started by the first connection and
//!   kept for the life of the process. Sockets, timers and the protocol run
//!   there; no user code ever does. One shared runtime rather than one per
//!   connection: an application with many connections gets two threads,
//!   not two per connection, and a connection costs a task, not a runtime.
//! - Calls ([`wslink_connect`], [`wslink_launch`], [`wslink_call`],
//!   [`wslink_close`]) block the calling thread until they end or time out.
//!   Any number of threads may call on one connection at once: the calls
//!   share the socket and run concurrently. [`wslink_close`] must come last,
//!   after every other call on that handle has returned.
//! - Each subscription has a library thread of its own, named
//!   `wslink-callback`, which runs its callback: one message at a time, in
//!   order. A slow callback delays only its own topic; meanwhile its
//!   messages wait in a bounded queue (`subscription_buffer` messages,
//!   `subscription_buffer_bytes` bytes), which drops the oldest when full
//!   ([`wslink_subscription_dropped`] counts them).
//! - A callback may call the library: [`wslink_call`] on the same
//!   connection works (its own topic's messages queue up meanwhile), and so
//!   do [`wslink_unsubscribe`] of its own subscription and [`wslink_close`],
//!   which then return without waiting for the running callback. What
//!   deadlocks is the ordinary kind: [`wslink_unsubscribe`] waits for a
//!   callback in progress, so never call it while holding a lock that the
//!   callback takes.
//! - The callback must not unwind (a C++ exception, a Rust panic) into the
//!   library: that aborts the process. `wslink.hpp` catches for you.
//!
//! ## Errors
//!
//! Every function that can fail returns a [`wslink_status`]; the message,
//! and for an error reply the server's code and data, are read on the same
//! thread from `wslink_last_error_message()`, `wslink_last_error_code()` and
//! `wslink_last_error_data()`. NULL where a pointer is required and strings
//! that are not UTF-8 are `WSLINK_ERR_INVALID_ARGUMENT`, not crashes. Each
//! extern function runs its body under `catch_unwind`: a panic inside the
//! library (a bug) returns `WSLINK_ERR_INTERNAL` with the panic's message,
//! and the library stays usable (build it with the default
//! `panic = "unwind"`). The `test-hooks` feature adds
//! `wslink_debug_panic_next_call()` so a test can prove it.
//!
//! ## Limits
//!
//! Those of [`wslink_client`]: messages over `max_message_size`, more than
//! `max_pending_messages` partial 2.x messages, partial messages over
//! `max_pending_bytes`, nesting deeper than `max_depth` are protocol errors
//! (`WSLINK_ERR_PROTOCOL`, the connection closes); memory follows the bytes
//! that arrived, never a size a chunk header claims; subscriptions are
//! bounded queues. `crates/wslink-c/tests/hostile.rs` checks them through
//! this API.
//!
//! ## C++
//!
//! `include/wslink.hpp` wraps this API for C++17: move-only RAII handles
//! (`wslink::Connection`, `wslink::Subscription`, `wslink::Payload`),
//! `std::function` callbacks, and failures thrown as `wslink::Error`
//! (status, message, server code and data). Exceptions rather than
//! `std::expected`-style results: C++17 has no `std::expected`, a failed
//! connect must leave no half-made object (which only a throwing
//! constructor or factory gives), and calls fail for reasons callers
//! rarely handle where they call (a lost connection, a server exception, a
//! timeout). An exception thrown by a callback is caught in the wrapper,
//! before it could unwind into this library, and kept for
//! `Subscription::callback_error()`.
//!
//! ## Launching through a session manager
//!
//! [`wslink_launch`] speaks wslink's launcher protocol: it POSTs a JSON
//! object (`{"application": NAME, ...fields}`) to the session manager's
//! `http://` URL, reads `sessionURL` (and `secret`, when the launcher sends
//! it) from the JSON answer, replaces `USE_HOST` in it with the launcher's
//! host and port as npm wslink's `SmartConnect` does, then connects there.

#![warn(missing_docs)]
// The C names are the API: `wslink_connection`, `WSLINK_OK`.
#![allow(non_camel_case_types)]

mod error;
mod launch;
mod payload;
mod runtime;
mod subscription;

use std::ffi::{c_char, c_void, CStr, CString};
use std::time::Duration;

use bytes::Bytes;
use wslink_client::{Client, ClientBuilder, Generation, Map, Value};

pub use error::wslink_status;
pub use launch::MAX_RESPONSE_BYTES;
pub use payload::{wslink_buffer, wslink_payload};
pub use runtime::{WORKER_THREADS, WORKER_THREAD_NAME};
pub use subscription::{wslink_callback, wslink_subscription, CALLBACK_THREAD_NAME};

use error::wslink_status::*;
use error::{guard, guard_value, Failure};
use payload::OwnedPayload;
use runtime::block_on;

/// A timeout of this many milliseconds means no time limit.
pub const WSLINK_WAIT_FOREVER: u32 = 0xFFFF_FFFF;

/// How to connect. Zero (or NULL) in any field means its default, so
/// `wslink_options options = {0};` is a valid start, and a NULL options
/// pointer means every default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wslink_options {
    /// The secret of the hello. NULL: `wslink-secret`, wslink's default.
    /// With `wslink_launch`, a `secret` in the launcher's answer wins.
    pub secret: *const c_char,
    /// The wire generation: 2 (the default) for wslink 2.x servers
    /// (msgpack, chunked binary frames), 1 for wslink 1.x servers (JSON
    /// text frames with binary attachments).
    pub generation: u32,
    /// Connecting and saying hello, at most (default 10000 ms).
    pub connect_timeout_ms: u32,
    /// Each call's time limit unless `wslink_call_ex` gives one (default
    /// 60000 ms; `WSLINK_WAIT_FOREVER`: none).
    pub call_timeout_ms: u32,
    /// `wslink_launch`: the launcher's answer, at most (default 60000 ms;
    /// launchers answer once the session's process is ready).
    pub launch_timeout_ms: u32,
    /// The largest message accepted from the server, in bytes (default
    /// 256 MiB).
    pub max_message_size: u64,
    /// How many 2.x messages may be partly received at once (default 64).
    pub max_pending_messages: u32,
    /// The bytes all partly received 2.x messages may hold (default
    /// `max_message_size` plus 1 MiB).
    pub max_pending_bytes: u64,
    /// How deep arrays and maps may nest in a message from the server
    /// (default 128).
    pub max_depth: u32,
    /// Messages each subscription buffers while its callback runs, before
    /// it drops the oldest (default 256).
    pub subscription_buffer: u32,
    /// Bytes each subscription buffers, likewise (default 64 MiB).
    pub subscription_buffer_bytes: u64,
    /// For wss:// URLs: a PEM file whose certificates are trusted besides
    /// the public CAs built into the library (a private CA, or the
    /// server's self-signed certificate). NULL: the public CAs only. A
    /// file that cannot be read or holds no certificate fails the connect
    /// with `WSLINK_ERR_INVALID_ARGUMENT`, naming it; a server certificate
    /// that is not trusted fails it with `WSLINK_ERR_CONNECT`.
    pub ca_file: *const c_char,
    /// For wss:// URLs: nonzero accepts any server certificate, for any
    /// name, unchecked. Only for a test server whose certificate cannot be
    /// verified at all (Kitware's `--ssl adhoc`): anyone on the path can
    /// then read and change the traffic. Prefer `ca_file`.
    pub accept_invalid_certs: u32,
}

/// A connection to a wslink server. Made by `wslink_connect` or
/// `wslink_launch`; closed and freed by `wslink_close`.
pub struct wslink_connection {
    client: Client,
    client_id: CString,
}

/// The options as Rust values.
struct Settings {
    secret: Option<String>,
    generation: Generation,
    connect_timeout: Option<Duration>,
    call_timeout: Option<Duration>,
    launch_timeout: Duration,
    max_message_size: Option<usize>,
    max_pending_messages: Option<usize>,
    max_pending_bytes: Option<usize>,
    max_depth: Option<usize>,
    subscription_buffer: Option<usize>,
    subscription_buffer_bytes: Option<usize>,
    ca_file: Option<std::path::PathBuf>,
    accept_invalid_certs: bool,
}

/// `ms` as a duration: `None` for 0 (the default), no limit for
/// `WSLINK_WAIT_FOREVER`.
fn millis(ms: u32) -> Option<Duration> {
    match ms {
        0 => None,
        WSLINK_WAIT_FOREVER => Some(Duration::MAX),
        ms => Some(Duration::from_millis(u64::from(ms))),
    }
}

/// A size from C: `None` for 0 (the default), saturated to this platform.
fn size(n: u64) -> Option<usize> {
    (n != 0).then(|| usize::try_from(n).unwrap_or(usize::MAX))
}

impl Settings {
    /// # Safety
    ///
    /// `options` is NULL or points to a valid `wslink_options` whose
    /// `secret` and `ca_file` are NULL or NUL-terminated strings.
    unsafe fn read(options: *const wslink_options) -> Result<Settings, Failure> {
        let o = match options.as_ref() {
            Some(o) => *o,
            None => std::mem::zeroed(),
        };
        let generation = match o.generation {
            0 | 2 => Generation::V2,
            1 => Generation::V1,
            n => {
                return Err(Failure::invalid(format!(
                    "options.generation must be 1 or 2 (or 0 for the default, 2), not {n}"
                )))
            }
        };
        Ok(Settings {
            secret: opt_str(o.secret, "options.secret")?.map(str::to_owned),
            generation,
            connect_timeout: millis(o.connect_timeout_ms),
            call_timeout: millis(o.call_timeout_ms),
            launch_timeout: millis(o.launch_timeout_ms).unwrap_or(Duration::from_secs(60)),
            max_message_size: size(o.max_message_size),
            max_pending_messages: size(u64::from(o.max_pending_messages)),
            max_pending_bytes: size(o.max_pending_bytes),
            max_depth: size(u64::from(o.max_depth)),
            subscription_buffer: size(u64::from(o.subscription_buffer)),
            subscription_buffer_bytes: size(o.subscription_buffer_bytes),
            ca_file: opt_str(o.ca_file, "options.ca_file")?.map(std::path::PathBuf::from),
            accept_invalid_certs: o.accept_invalid_certs != 0,
        })
    }

    fn builder(&self, url: &str, secret: Option<&str>) -> ClientBuilder {
        let mut b = Client::builder(url).generation(self.generation);
        if let Some(secret) = secret.or(self.secret.as_deref()) {
            b = b.secret(secret);
        }
        if let Some(t) = self.connect_timeout {
            b = b.connect_timeout(t);
        }
        if let Some(t) = self.call_timeout {
            b = b.call_timeout(t);
        }
        if let Some(n) = self.max_message_size {
            b = b.max_message_size(n);
        }
        if let Some(n) = self.max_pending_messages {
            b = b.max_pending_messages(n);
        }
        if let Some(n) = self.max_pending_bytes {
            b = b.max_pending_bytes(n);
        }
        if let Some(n) = self.max_depth {
            b = b.max_depth(n);
        }
        if let Some(n) = self.subscription_buffer {
            b = b.subscription_buffer(n);
        }
        if let Some(n) = self.subscription_buffer_bytes {
            b = b.subscription_buffer_bytes(n);
        }
        if let Some(path) = &self.ca_file {
            b = b.ca_file(path);
        }
        b.danger_accept_invalid_certs(self.accept_invalid_certs)
    }
}

/// A required C string.
///
/// # Safety
///
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn req_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    opt_str(p, what)?.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// An optional C string (NULL: `None`).
///
/// # Safety
///
/// As [`req_str`].
unsafe fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    CStr::from_ptr(p).to_str().map(Some).map_err(|e| {
        Failure::invalid(format!(
            "{what} is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// The caller's buffers, copied.
///
/// # Safety
///
/// `buffers` is NULL or points to `count` valid `wslink_buffer`s, each
/// with `len` readable bytes at `data`.
unsafe fn read_buffers(buffers: *const wslink_buffer, count: usize) -> Result<Vec<Bytes>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if buffers.is_null() {
        return Err(Failure::invalid(format!(
            "buffers is NULL but buffer_count is {count}"
        )));
    }
    let list = std::slice::from_raw_parts(buffers, count);
    list.iter()
        .enumerate()
        .map(|(i, b)| match (b.data.is_null(), b.len) {
            (_, 0) => Ok(Bytes::new()),
            (true, len) => Err(Failure::invalid(format!(
                "buffers[{i}].data is NULL but its len is {len}"
            ))),
            (false, len) => Ok(Bytes::copy_from_slice(std::slice::from_raw_parts(
                b.data, len,
            ))),
        })
        .collect()
}

/// Sets `*out` to NULL, so that it is NULL whatever happens next.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
unsafe fn clear_out<T>(out: *mut *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    *out = std::ptr::null_mut();
    Ok(())
}

/// Connects and says hello.
fn open(builder: ClientBuilder) -> Result<*mut wslink_connection, Failure> {
    let client = block_on(builder.connect())??;
    let client_id = error::c_string(client.client_id());
    Ok(Box::into_raw(Box::new(wslink_connection {
        client,
        client_id,
    })))
}

/// Opens a connection to a wslink server at `url` (`ws://HOST:PORT/PATH`,
/// usually ending in `/ws`) and says hello with the options' secret.
/// Blocks until connected, refused or `connect_timeout_ms`.
///
/// On success `*connection` is the new connection, to be closed with
/// `wslink_close()`; on failure it is NULL. `options` may be NULL (all
/// defaults).
///
/// Fails with `WSLINK_ERR_INVALID_URL`, `WSLINK_ERR_CONNECT`,
/// `WSLINK_ERR_AUTH` (wrong secret), `WSLINK_ERR_TIMEOUT`,
/// `WSLINK_ERR_PROTOCOL` (not a wslink server of that generation, or one
/// that breaks a limit), `WSLINK_ERR_CLOSED`, `WSLINK_ERR_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `url` is NULL or a NUL-terminated string; `options` is NULL or a valid
/// `wslink_options`; `connection` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn wslink_connect(
    url: *const c_char,
    options: *const wslink_options,
    connection: *mut *mut wslink_connection,
) -> wslink_status {
    guard("wslink_connect", || {
        clear_out(connection, "connection")?;
        let url = req_str(url, "url")?;
        let settings = Settings::read(options)?;
        *connection = open(settings.builder(url, None))?;
        Ok(())
    })
}

/// Starts a session through a session manager (wslink's launcher) and
/// connects to it.
///
/// POSTs `request_json` — a JSON object with the `application` to start
/// and any fields the launcher's configuration uses, e.g.
/// `{"application": "visualizer", "file": "can.ex2"}` — to
/// `session_manager_url` (`http://HOST:PORT/ENDPOINT`), waits for the JSON
/// answer (at most `launch_timeout_ms`), then connects to its `sessionURL`
/// (with `USE_HOST` replaced by the launcher's host and port) with the
/// answer's `secret` if it has one, else the options'.
///
/// On success `*connection` is the connection and, if `answer_json` is not
/// NULL, `*answer_json` the launcher's answer as it came (the session's
/// `id`, `sessionURL` and configured fields), to be freed with
/// `wslink_string_free()`. On failure both are NULL.
///
/// Fails as `wslink_connect()`, and with `WSLINK_ERR_LAUNCH` when the
/// launcher cannot be reached or answers an error (its `error` text is the
/// message), `WSLINK_ERR_INVALID_URL` for a session manager URL that is not
/// `http://` (https is not supported), `WSLINK_ERR_TIMEOUT`.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `options` is NULL or valid;
/// `connection` and `answer_json` are NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn wslink_launch(
    session_manager_url: *const c_char,
    request_json: *const c_char,
    options: *const wslink_options,
    connection: *mut *mut wslink_connection,
    answer_json: *mut *mut c_char,
) -> wslink_status {
    guard("wslink_launch", || {
        if !answer_json.is_null() {
            *answer_json = std::ptr::null_mut();
        }
        clear_out(connection, "connection")?;
        let manager = req_str(session_manager_url, "session_manager_url")?;
        let request = req_str(request_json, "request_json")?;
        let settings = Settings::read(options)?;
        let session = block_on(launch::start_session(
            manager,
            request,
            settings.launch_timeout,
        ))??;
        let builder = settings.builder(&session.url, session.secret.as_deref());
        *connection = open(builder)?;
        if !answer_json.is_null() {
            *answer_json = error::c_string(session.answer).into_raw();
        }
        Ok(())
    })
}

/// Calls `method` with positional arguments and waits for its result, at
/// most the connection's `call_timeout_ms`. The same as `wslink_call_ex()`
/// with no keyword arguments and the connection's timeout.
///
/// # Safety
///
/// As `wslink_call_ex()`.
#[no_mangle]
pub unsafe extern "C" fn wslink_call(
    connection: *const wslink_connection,
    method: *const c_char,
    args_json: *const c_char,
    buffers: *const wslink_buffer,
    buffer_count: usize,
    result: *mut *mut wslink_payload,
) -> wslink_status {
    guard("wslink_call", || {
        call(
            connection,
            method,
            args_json,
            std::ptr::null(),
            buffers,
            buffer_count,
            0,
            result,
        )
    })
}

/// Calls `method(*args, **kwargs)` and waits for its result.
///
/// `args_json` is a JSON array (NULL: no arguments), `kwargs_json` a JSON
/// object (NULL: none). Binary arguments are `{"$binary": N}` in the JSON,
/// N indexing `buffers` (`buffer_count` of them; NULL when 0); every buffer
/// must be referred to. The buffers are copied: they may be freed as soon
/// as this returns.
///
/// `timeout_ms`: 0 for the connection's `call_timeout_ms`,
/// `WSLINK_WAIT_FOREVER` for none. A call that times out stops sending what
/// it had not sent yet of a large upload; wslink has no way to cancel a
/// call the server has received.
///
/// On success `*result` (if `result` is not NULL) is the result, to be
/// freed with `wslink_payload_free()`; on failure it is NULL.
///
/// Fails with `WSLINK_ERR_RPC` (the server answered an error:
/// `wslink_last_error_code()` is its code, -32601 for an unknown method,
/// -32001 for an exception, and `wslink_last_error_data()` its data),
/// `WSLINK_ERR_TIMEOUT`, `WSLINK_ERR_CLOSED`, `WSLINK_ERR_PROTOCOL` (the
/// server broke the protocol or a limit: the connection is closed),
/// `WSLINK_ERR_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `connection` is NULL or a connection not yet closed; strings are NULL or
/// NUL-terminated; `buffers` is NULL or `buffer_count` valid buffers;
/// `result` is NULL or valid for a write.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn wslink_call_ex(
    connection: *const wslink_connection,
    method: *const c_char,
    args_json: *const c_char,
    kwargs_json: *const c_char,
    buffers: *const wslink_buffer,
    buffer_count: usize,
    timeout_ms: u32,
    result: *mut *mut wslink_payload,
) -> wslink_status {
    guard("wslink_call_ex", || {
        call(
            connection,
            method,
            args_json,
            kwargs_json,
            buffers,
            buffer_count,
            timeout_ms,
            result,
        )
    })
}

#[allow(clippy::too_many_arguments)]
unsafe fn call(
    connection: *const wslink_connection,
    method: *const c_char,
    args_json: *const c_char,
    kwargs_json: *const c_char,
    buffers: *const wslink_buffer,
    buffer_count: usize,
    timeout_ms: u32,
    result: *mut *mut wslink_payload,
) -> Result<(), Failure> {
    if !result.is_null() {
        *result = std::ptr::null_mut();
    }
    let connection = connection
        .as_ref()
        .ok_or_else(|| Failure::invalid("connection is NULL"))?;
    let method = req_str(method, "method")?;
    let buffers = read_buffers(buffers, buffer_count)?;
    let mut inputs = payload::Inputs::new(&buffers);
    let args = match opt_str(args_json, "args_json")? {
        None => Vec::new(),
        Some(json) => match inputs.parse(json, "args_json")? {
            Value::Array(items) => items,
            other => {
                return Err(Failure::invalid(format!(
                    "args_json must be a JSON array, not {}",
                    other.kind()
                )))
            }
        },
    };
    let kwargs: Map = match opt_str(kwargs_json, "kwargs_json")? {
        None => Vec::new(),
        Some(json) => match inputs.parse(json, "kwargs_json")? {
            Value::Map(entries) => entries,
            other => {
                return Err(Failure::invalid(format!(
                    "kwargs_json must be a JSON object, not {}",
                    other.kind()
                )))
            }
        },
    };
    inputs.finish()?;
    #[cfg(feature = "test-hooks")]
    if debug::PANIC_NEXT_CALL.with(|armed| armed.replace(false)) {
        panic!("forced by wslink_debug_panic_next_call()");
    }
    let client = &connection.client;
    let value = match millis(timeout_ms) {
        None => block_on(client.call(method, args, kwargs))??,
        Some(t) => block_on(client.call_with_timeout(method, args, kwargs, t))??,
    };
    if !result.is_null() {
        *result = OwnedPayload::new(&value).into_raw();
    }
    Ok(())
}

/// Subscribes to `topic`: from now on `callback(user_data, message)` runs
/// on this subscription's own library thread (`wslink-callback`) for each
/// message published on it, one at a time, in order. `message` is lent for
/// the callback's duration; when the subscription ends for good (the
/// connection closed or was lost, or the server refused the topic) the
/// callback gets one last call with `message == NULL`, during which
/// `wslink_last_error_message()` says why.
///
/// Messages wait in a bounded queue while the callback runs (see
/// `wslink_options.subscription_buffer`); when it is full the oldest are
/// dropped and counted (`wslink_subscription_dropped()`).
///
/// On success `*subscription` is the handle, to be released with
/// `wslink_unsubscribe()` (also after the connection is closed, and before
/// `user_data` is freed); on failure it is NULL.
///
/// Fails with `WSLINK_ERR_INVALID_ARGUMENT` (a topic outside `\w+(\.\w+)*`,
/// NULL callback), `WSLINK_ERR_CLOSED`.
///
/// # Safety
///
/// `connection` is NULL or a connection not yet closed; `topic` is NULL or
/// NUL-terminated; `callback` may be called with `user_data` from another
/// thread until `wslink_unsubscribe()` returns; `subscription` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn wslink_subscribe(
    connection: *const wslink_connection,
    topic: *const c_char,
    callback: wslink_callback,
    user_data: *mut c_void,
    subscription: *mut *mut wslink_subscription,
) -> wslink_status {
    guard("wslink_subscribe", || {
        clear_out(subscription, "subscription")?;
        let connection = connection
            .as_ref()
            .ok_or_else(|| Failure::invalid("connection is NULL"))?;
        let topic = req_str(topic, "topic")?;
        let callback = callback.ok_or_else(|| Failure::invalid("callback is NULL"))?;
        let sub = wslink_subscription::start(&connection.client, topic, callback, user_data)?;
        *subscription = Box::into_raw(sub);
        Ok(())
    })
}

/// Ends a subscription and frees its handle. When this returns the
/// callback is not running and will not run again — except when called
/// from that very callback, which then finishes normally (this returns at
/// once). NULL is a no-op.
///
/// # Safety
///
/// `subscription` is NULL or a handle from `wslink_subscribe()` not yet
/// released.
#[no_mangle]
pub unsafe extern "C" fn wslink_unsubscribe(
    subscription: *mut wslink_subscription,
) -> wslink_status {
    guard("wslink_unsubscribe", || {
        if !subscription.is_null() {
            (*Box::from_raw(subscription)).stop();
        }
        Ok(())
    })
}

/// How many of this subscription's messages were dropped because its
/// callback fell behind (updated as each message is taken from the queue).
/// 0 for NULL.
///
/// # Safety
///
/// `subscription` is NULL or a handle not yet released.
#[no_mangle]
pub unsafe extern "C" fn wslink_subscription_dropped(
    subscription: *const wslink_subscription,
) -> u64 {
    guard_value("wslink_subscription_dropped", 0, || {
        subscription.as_ref().map_or(0, |s| s.dropped())
    })
}

/// Closes the connection and frees its handle: calls still waiting fail
/// with `WSLINK_ERR_CLOSED`, subscriptions end (their callbacks get their
/// final NULL message; their handles still need `wslink_unsubscribe()`).
/// Returns once the server acknowledged the close, or after a few seconds
/// of grace. NULL is a no-op. Always `WSLINK_OK` unless the library fails.
///
/// # Safety
///
/// `connection` is NULL or a connection not yet closed, on which no other
/// call is running or will be made.
#[no_mangle]
pub unsafe extern "C" fn wslink_close(connection: *mut wslink_connection) -> wslink_status {
    guard("wslink_close", || {
        if connection.is_null() {
            return Ok(());
        }
        let connection = Box::from_raw(connection);
        let outcome = block_on(connection.client.close());
        let rt = runtime::runtime();
        // Dropping the client may need the runtime's context.
        let _context = rt.as_ref().ok().map(|rt| rt.enter());
        drop(connection);
        outcome
    })
}

/// The client id the server gave this connection in its hello reply. Lent
/// until the connection is closed. NULL for a NULL connection.
///
/// # Safety
///
/// `connection` is NULL or a connection not yet closed.
#[no_mangle]
pub unsafe extern "C" fn wslink_connection_client_id(
    connection: *const wslink_connection,
) -> *const c_char {
    guard_value("wslink_connection_client_id", std::ptr::null(), || {
        connection
            .as_ref()
            .map_or(std::ptr::null(), |c| c.client_id.as_ptr())
    })
}

/// The connection's wire generation: 2 or 1 (0 for NULL).
///
/// # Safety
///
/// `connection` is NULL or a connection not yet closed.
#[no_mangle]
pub unsafe extern "C" fn wslink_connection_generation(connection: *const wslink_connection) -> u32 {
    guard_value("wslink_connection_generation", 0, || {
        connection
            .as_ref()
            .map_or(0, |c| match c.client.generation() {
                Generation::V1 => 1,
                _ => 2,
            })
    })
}

/// Whether the connection has ended (closed by either side, lost, or
/// closed after a protocol error). True for NULL.
///
/// # Safety
///
/// `connection` is NULL or a connection not yet closed.
#[no_mangle]
pub unsafe extern "C" fn wslink_connection_is_closed(connection: *const wslink_connection) -> bool {
    guard_value("wslink_connection_is_closed", true, || {
        connection.as_ref().is_none_or(|c| c.client.is_closed())
    })
}

/// Frees a result returned by `wslink_call()` / `wslink_call_ex()`, with
/// its JSON and buffers. NULL is a no-op. Never pass the message a
/// subscription callback is lent.
///
/// # Safety
///
/// `payload` is NULL or a result from a call, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn wslink_payload_free(payload: *mut wslink_payload) {
    guard_value("wslink_payload_free", (), || {
        if !payload.is_null() {
            drop(OwnedPayload::from_raw(payload));
        }
    })
}

/// Frees a string the library returned (the launcher's answer from
/// `wslink_launch()`). NULL is a no-op.
///
/// # Safety
///
/// `s` is NULL or a string the library returned, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn wslink_string_free(s: *mut c_char) {
    guard_value("wslink_string_free", (), || {
        if !s.is_null() {
            drop(CString::from_raw(s));
        }
    })
}

/// The message of the last failure on this thread: what the most recent
/// status-returning call made on this thread said when it failed, or ""
/// after a success. Lent until the next such call on this thread. Never
/// NULL.
#[no_mangle]
pub extern "C" fn wslink_last_error_message() -> *const c_char {
    guard_value(
        "wslink_last_error_message",
        c"".as_ptr(),
        error::last_message,
    )
}

/// The status of the last failure on this thread (`WSLINK_OK` after a
/// success).
#[no_mangle]
pub extern "C" fn wslink_last_error_status() -> wslink_status {
    guard_value(
        "wslink_last_error_status",
        WSLINK_ERR_INTERNAL,
        error::last_status,
    )
}

/// The server's error code of the last failure on this thread, for
/// `WSLINK_ERR_RPC` (-32601 unknown method, -32001 exception, ...) and
/// `WSLINK_ERR_AUTH` (-32000); 0 otherwise.
#[no_mangle]
pub extern "C" fn wslink_last_error_code() -> i64 {
    guard_value("wslink_last_error_code", 0, error::last_code)
}

/// The server's error data of the last failure on this thread, as JSON
/// (for an exception, `{"method": ..., "exception": ..., "trace": ...}`),
/// or NULL when there is none. Lent like `wslink_last_error_message()`.
#[no_mangle]
pub extern "C" fn wslink_last_error_data() -> *const c_char {
    guard_value("wslink_last_error_data", std::ptr::null(), error::last_data)
}

/// The name of a status, e.g. `"WSLINK_ERR_TIMEOUT"` (static), or
/// `"unknown status"` for a number that is none.
#[no_mangle]
pub extern "C" fn wslink_status_name(status: i32) -> *const c_char {
    guard_value(
        "wslink_status_name",
        c"unknown status".as_ptr(),
        || match wslink_status::from_int(status) {
            Some(s) => status_cstr(s).as_ptr(),
            None => c"unknown status".as_ptr(),
        },
    )
}

fn status_cstr(s: wslink_status) -> &'static CStr {
    match s {
        WSLINK_OK => c"WSLINK_OK",
        WSLINK_ERR_INVALID_ARGUMENT => c"WSLINK_ERR_INVALID_ARGUMENT",
        WSLINK_ERR_INVALID_URL => c"WSLINK_ERR_INVALID_URL",
        WSLINK_ERR_CONNECT => c"WSLINK_ERR_CONNECT",
        WSLINK_ERR_AUTH => c"WSLINK_ERR_AUTH",
        WSLINK_ERR_RPC => c"WSLINK_ERR_RPC",
        WSLINK_ERR_TIMEOUT => c"WSLINK_ERR_TIMEOUT",
        WSLINK_ERR_CLOSED => c"WSLINK_ERR_CLOSED",
        WSLINK_ERR_PROTOCOL => c"WSLINK_ERR_PROTOCOL",
        WSLINK_ERR_LAUNCH => c"WSLINK_ERR_LAUNCH",
        WSLINK_ERR_INTERNAL => c"WSLINK_ERR_INTERNAL",
    }
}

/// The library's version, e.g. `"0.1.0"` (static).
#[no_mangle]
pub extern "C" fn wslink_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

#[cfg(feature = "test-hooks")]
mod debug {
    use std::cell::Cell;

    thread_local! {
        pub(crate) static PANIC_NEXT_CALL: Cell<bool> = const { Cell::new(false) };
    }
}

/// Test hook (built with the `test-hooks` feature only): makes the next
/// `wslink_call()` / `wslink_call_ex()` made on the calling thread panic
/// inside the library, after checking its arguments and before sending
/// anything. The call returns `WSLINK_ERR_INTERNAL` with the panic's
/// message; the connection and the library stay usable.
#[cfg(feature = "test-hooks")]
#[no_mangle]
pub extern "C" fn wslink_debug_panic_next_call() {
    let _ = debug::PANIC_NEXT_CALL.try_with(|armed| armed.set(true));
}
