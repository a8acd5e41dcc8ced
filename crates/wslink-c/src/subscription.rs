//! Subscriptions: one library thread per subscription takes the topic's
//! messages from the client's bounded queue and calls the C callback.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::Notify;
use wslink_client::{Client, Subscription};

use crate::error::wslink_status::{WSLINK_ERR_CLOSED, WSLINK_ERR_INTERNAL};
use crate::error::{set_last_error, Failure};
use crate::payload::{wslink_payload, OwnedPayload};
use crate::runtime::runtime;

/// The name of every subscription's callback thread.
pub const CALLBACK_THREAD_NAME: &str = "wslink-callback";

/// Called with each message published on a subscribed topic, on the
/// subscription's own library thread (named `wslink-callback`), one
/// message at a time and in the order they arrived.
///
/// `message` is lent for the call only: copy the JSON and the buffers you
/// keep. When the subscription ends for good (the connection closed or was
/// lost, or the server refused the topic), the callback is called one last
/// time with `message == NULL`; `wslink_last_error_message()`, called
/// from the callback, says why. It is not called after
/// `wslink_unsubscribe()` has returned.
pub type wslink_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, message: *const wslink_payload)>;

/// A subscription's handle. Freed by `wslink_unsubscribe()`.
pub struct wslink_subscription {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    wake: Notify,
    dropped: AtomicU64,
}

/// The user's pointer, handed to the callback thread as it was given.
struct UserData(*mut c_void);

// SAFETY: the library never dereferences it; the caller promises, by
// subscribing, that its callback may use it from the callback thread.
unsafe impl Send for UserData {}

impl wslink_subscription {
    pub(crate) fn start(
        client: &Client,
        topic: &str,
        callback: unsafe extern "C" fn(*mut c_void, *const wslink_payload),
        user_data: *mut c_void,
    ) -> Result<Box<wslink_subscription>, Failure> {
        let rt = runtime()?;
        let subscription = {
            let _context = rt.enter();
            client.subscribe(topic)?
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
        });
        let for_thread = shared.clone();
        let user_data = UserData(user_data);
        let thread = std::thread::Builder::new()
            .name(CALLBACK_THREAD_NAME.into())
            .spawn(move || {
                let user_data = user_data;
                deliver(subscription, &for_thread, callback, user_data.0);
            })
            .map_err(|e| Failure::internal(format!("cannot start the callback thread: {e}")))?;
        Ok(Box::new(wslink_subscription {
            shared,
            thread: Some(thread),
        }))
    }

    /// Messages this subscriber lost because its callback fell behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Stops delivery; waits for a callback in progress unless called from
    /// it.
    pub(crate) fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                // The thread body catches its panics: nothing to report.
                let _ = thread.join();
            }
            // From inside the callback: the thread ends by itself once the
            // callback returns, and calls nothing more.
        }
    }
}

/// The callback thread's loop.
fn deliver(
    mut subscription: Subscription,
    shared: &Shared,
    callback: unsafe extern "C" fn(*mut c_void, *const wslink_payload),
    user_data: *mut c_void,
) {
    let Ok(rt) = runtime() else { return };
    loop {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let next = rt.block_on(async {
            tokio::select! {
                biased;
                _ = shared.wake.notified() => None,
                message = subscription.recv() => Some(message),
            }
        });
        shared
            .dropped
            .store(subscription.dropped(), Ordering::Relaxed);
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        match next {
            None => break,
            Some(Some(value)) => {
                let payload = catch_unwind(AssertUnwindSafe(|| OwnedPayload::new(&value)));
                drop(value);
                match payload {
                    // SAFETY: the caller gave this function and pointer for
                    // exactly this; the payload outlives the call.
                    Ok(payload) => unsafe { callback(user_data, payload.view()) },
                    Err(_) => {
                        set_last_error(Failure::new(
                            WSLINK_ERR_INTERNAL,
                            "a published message could not be converted (a bug in wslink-c)",
                        ));
                    }
                }
            }
            Some(None) => {
                let why = match (subscription.refused(), subscription.client().close_reason()) {
                    (Some(refused), _) => Failure::new(
                        WSLINK_ERR_CLOSED,
                        format!("the server refused the subscription: {refused}"),
                    ),
                    (None, Some(error)) => Failure::from(error),
                    (None, None) => Failure::new(WSLINK_ERR_CLOSED, "the subscription ended"),
                };
                set_last_error(why);
                // SAFETY: as above; NULL marks the end, as documented.
                unsafe { callback(user_data, std::ptr::null()) };
                break;
            }
        }
    }
    // Dropping the subscription may queue a `wslink.unsubscribe`, which
    // needs the runtime's context.
    let _context = rt.enter();
    drop(subscription);
}
