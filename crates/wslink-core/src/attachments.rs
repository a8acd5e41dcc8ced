//! 1.x binary attachments: the keys that stand in for binary values in JSON,
//! and the table that pairs incoming binary frames with the keys announced
//! before them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::value::Value;

/// Hands out `wslink_binN` keys, unique for the life of the allocator.
///
/// One allocator can serve every connection: a message published to many
/// 1.x clients is encoded once, with the same keys for all of them.
///
/// ```
/// use wslink_core::attachments::AttachmentKeys;
/// let keys = AttachmentKeys::new();
/// assert_eq!(keys.next_key(), "wslink_bin0");
/// assert_eq!(keys.next_key(), "wslink_bin1");
/// ```
#[derive(Debug, Default)]
pub struct AttachmentKeys {
    next: AtomicU64,
}

impl AttachmentKeys {
    /// Starts at `wslink_bin0`, as the Python server does.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next unused key.
    pub fn next_key(&self) -> String {
        format!("wslink_bin{}", self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// The most digits a key may have: enough for any `u64` counter (wslink's
/// keys are counters). Without a bound, 1024 announced keys of a peer's
/// largest text frame each would be held however small the attachments.
pub const MAX_KEY_DIGITS: usize = 20;

/// `true` for strings of the form `wslink_bin<digits>`, with 1 to
/// [`MAX_KEY_DIGITS`] digits.
///
/// ```
/// use wslink_core::attachments::is_attachment_key;
/// assert!(is_attachment_key("wslink_bin0"));
/// assert!(is_attachment_key("wslink_bin18446744073709551615"));
/// assert!(!is_attachment_key("wslink_bin"));
/// assert!(!is_attachment_key(&format!("wslink_bin{}", "1".repeat(21))));
/// ```
pub fn is_attachment_key(s: &str) -> bool {
    s.strip_prefix("wslink_bin").is_some_and(|n| {
        (1..=MAX_KEY_DIGITS).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Bounds on what an attachment table holds for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// Keys announced by headers and still waiting for their binary frame.
    pub max_announced: usize,
    /// Bytes received and not yet claimed by a message.
    pub max_held_bytes: usize,
}

/// Default for [`AttachmentLimits::max_announced`].
pub const DEFAULT_MAX_ANNOUNCED: usize = 1024;
/// Default for [`AttachmentLimits::max_held_bytes`]: 128 MiB.
pub const DEFAULT_MAX_HELD_BYTES: usize = 128 * 1024 * 1024;

impl Default for AttachmentLimits {
    fn default() -> Self {
        AttachmentLimits {
            max_announced: DEFAULT_MAX_ANNOUNCED,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }
}

/// Why an attachment frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// A binary frame arrived with no announced key waiting for it.
    #[error("binary frame of {len} bytes arrived without an attachment header announcing it")]
    UnannouncedBinary {
        /// The frame's size.
        len: usize,
    },
    /// A header announced a string that is not `wslink_binN` (with at most
    /// [`MAX_KEY_DIGITS`] digits).
    #[error("attachment header announced {key:?}, which is not a wslink_binN key")]
    BadKey {
        /// The offending key (its first 64 bytes and `...` when longer).
        key: String,
    },
    /// Too many keys announced and not yet delivered.
    #[error("more than {limit} attachment keys announced without their binary frames")]
    TooManyAnnounced {
        /// The limit.
        limit: usize,
    },
    /// Too many bytes received and not yet used by a message.
    #[error(
        "attachments waiting for their message would hold {held} bytes, over the limit of {limit}"
    )]
    TooManyBytes {
        /// What would be held.
        held: usize,
        /// The limit.
        limit: usize,
    },
}

/// Pairs incoming 1.x binary frames with the keys their headers announced,
/// then swaps keys for bytes in the message that follows.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::{attachments::{AttachmentTable, AttachmentLimits}, Value};
/// let mut table = AttachmentTable::new(AttachmentLimits::default());
/// table.on_header(["wslink_bin1".to_string()]).unwrap();
/// table.on_binary(Bytes::from_static(b"\x01\x02")).unwrap();
/// let mut args = Value::from(vec![Value::from("wslink_bin1"), Value::from("wslink_bin9")]);
/// table.claim(&mut args);
/// assert_eq!(args.index(0).unwrap().as_bytes().unwrap().as_ref(), b"\x01\x02");
/// assert_eq!(args.index(1).unwrap().as_str(), Some("wslink_bin9")); // no bytes: stays a string
/// ```
#[derive(Debug)]
pub struct AttachmentTable {
    limits: AttachmentLimits,
    announced: VecDeque<String>,
    received: HashMap<String, Bytes>,
    held_bytes: usize,
}

impl AttachmentTable {
    /// An empty table.
    pub fn new(limits: AttachmentLimits) -> Self {
        AttachmentTable {
            limits,
            announced: VecDeque::new(),
            received: HashMap::new(),
            held_bytes: 0,
        }
    }

    /// Records the keys of a `wslink.binary.attachment` header.
    pub fn on_header(
        &mut self,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<(), AttachmentError> {
        for key in keys {
            if !is_attachment_key(&key) {
                // A hostile key can be as long as a text frame: keep the
                // start only.
                let mut end = key.len().min(64);
                while !key.is_char_boundary(end) {
                    end -= 1;
                }
                let key = if end < key.len() {
                    format!("{}...", &key[..end])
                } else {
                    key
                };
                return Err(AttachmentError::BadKey { key });
            }
            if self.announced.len() >= self.limits.max_announced {
                return Err(AttachmentError::TooManyAnnounced {
                    limit: self.limits.max_announced,
                });
            }
            self.announced.push_back(key);
        }
        Ok(())
    }

    /// Stores a binary frame under the oldest announced key.
    pub fn on_binary(&mut self, data: Bytes) -> Result<(), AttachmentError> {
        let held = self.held_bytes + data.len();
        if held > self.limits.max_held_bytes {
            return Err(AttachmentError::TooManyBytes {
                held,
                limit: self.limits.max_held_bytes,
            });
        }
        let key = self
            .announced
            .pop_front()
            .ok_or(AttachmentError::UnannouncedBinary { len: data.len() })?;
        self.held_bytes = held;
        if let Some(old) = self.received.insert(key, data) {
            self.held_bytes -= old.len();
        }
        Ok(())
    }

    /// Replaces, anywhere inside `value`, each key whose bytes have arrived
    /// by those bytes. A key with no bytes stays a string, as in wslink.
    pub fn claim(&mut self, value: &mut Value) {
        if self.received.is_empty() {
            return;
        }
        match value {
            Value::Str(s) if is_attachment_key(s) => {
                if let Some(data) = self.received.remove(s.as_str()) {
                    self.held_bytes -= data.len();
                    *value = Value::Bin(data);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.claim(v)),
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| self.claim(v)),
            _ => {}
        }
    }

    /// Drops received bytes no message claimed. Keys announced but not yet
    /// delivered are kept: their frames are still on the way.
    pub fn discard_unclaimed(&mut self) {
        self.received.clear();
        self.held_bytes = 0;
    }

    /// Forgets everything, e.g. after an error reply (as the npm client does).
    pub fn clear(&mut self) {
        self.discard_unclaimed();
        self.announced.clear();
    }

    /// Bytes currently held.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Keys announced and still waiting for bytes.
    pub fn announced(&self) -> usize {
        self.announced.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_it_cannot_pair() {
        let mut t = AttachmentTable::new(AttachmentLimits {
            max_announced: 2,
            max_held_bytes: 10,
        });
        assert_eq!(
            t.on_binary(Bytes::from_static(b"x")),
            Err(AttachmentError::UnannouncedBinary { len: 1 })
        );
        assert!(matches!(
            t.on_header(["bogus".to_string()]),
            Err(AttachmentError::BadKey { .. })
        ));
        t.on_header(["wslink_bin1".into(), "wslink_bin2".into()])
            .unwrap();
        assert!(matches!(
            t.on_header(["wslink_bin3".into()]),
            Err(AttachmentError::TooManyAnnounced { limit: 2 })
        ));
        assert!(matches!(
            t.on_binary(Bytes::from(vec![0; 11])),
            Err(AttachmentError::TooManyBytes { .. })
        ));
        t.on_binary(Bytes::from(vec![0; 6])).unwrap();
        assert_eq!(t.held_bytes(), 6);
        t.discard_unclaimed();
        assert_eq!(t.held_bytes(), 0);
        assert_eq!(t.announced(), 1);
    }

    #[test]
    fn claims_nested_keys_once() {
        let mut t = AttachmentTable::new(AttachmentLimits::default());
        t.on_header(["wslink_bin0".into()]).unwrap();
        t.on_binary(Bytes::from_static(b"abc")).unwrap();
        let mut v = Value::map([(
            "a",
            Value::from(vec![Value::map([("b", Value::from("wslink_bin0"))])]),
        )]);
        t.claim(&mut v);
        let inner = v.get("a").unwrap().index(0).unwrap().get("b").unwrap();
        assert_eq!(inner.as_bytes().unwrap().as_ref(), b"abc");
        assert_eq!(t.held_bytes(), 0);
    }
}
