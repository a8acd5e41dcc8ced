//! Message ids: `rpc:CLIENT:N`, `publish:TOPIC:N`, `system:c0:0`.
//!
//! The npm client routes every reply with the pattern
//! `^(rpc|publish|system):(\w+(?:\.\w+)*):(?:\d+)$`, where `\w` is ASCII
//! letters, digits and `_`. A message whose id does not match is dropped by
//! that client without a word, so a topic or client id outside the grammar is
//! refused here, where the mistake can still be reported.

use std::fmt;
use std::str::FromStr;

/// The id of the `wslink.hello` exchange, always the same.
pub const HELLO_ID: &str = "system:c0:0";

/// Why an id or a name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A topic or client id outside `\w+(\.\w+)*`.
    #[error("{what} {name:?} is not valid: wslink clients only route names made of ASCII letters, digits and '_', in dot-separated parts (\\w+(\\.\\w+)*)")]
    InvalidName {
        /// "topic" or "client id".
        what: &'static str,
        /// The offending name.
        name: String,
    },
    /// The id does not follow `KIND:NAME:NUMBER`.
    #[error("message id {id:?} does not match KIND:NAME:NUMBER with KIND rpc, publish or system")]
    Malformed {
        /// The offending id.
        id: String,
    },
}

/// `true` if `name` matches `\w+(\.\w+)*` with ASCII `\w`.
///
/// ```
/// use wslink_core::ids::is_valid_name;
/// assert!(is_valid_name("viewport.image_stream.2"));
/// assert!(!is_valid_name("has space"));
/// assert!(!is_valid_name("trailing."));
/// assert!(!is_valid_name("topic-with-dash"));
/// ```
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// Checks a topic before anything is published on it.
///
/// ```
/// use wslink_core::ids::validate_topic;
/// assert!(validate_topic("image.frames").is_ok());
/// assert!(validate_topic("image/frames").is_err());
/// ```
pub fn validate_topic(topic: &str) -> Result<(), IdError> {
    if is_valid_name(topic) {
        Ok(())
    } else {
        Err(IdError::InvalidName {
            what: "topic",
            name: topic.to_owned(),
        })
    }
}

/// Checks a client id before it is handed to a client.
pub fn validate_client_id(client_id: &str) -> Result<(), IdError> {
    if is_valid_name(client_id) {
        Ok(())
    } else {
        Err(IdError::InvalidName {
            what: "client id",
            name: client_id.to_owned(),
        })
    }
}

/// What a message id addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A call and its reply.
    Rpc,
    /// A message published on a topic.
    Publish,
    /// The handshake.
    System,
}

impl IdKind {
    fn as_str(self) -> &'static str {
        match self {
            IdKind::Rpc => "rpc",
            IdKind::Publish => "publish",
            IdKind::System => "system",
        }
    }
}

/// A parsed message id.
///
/// Parsing accepts `KIND:NAME:SEQ` with `SEQ` a `u64` in decimal without
/// leading zeros, so that every id that parses formats back to the same
/// string.
///
/// ```
/// use wslink_core::ids::{IdKind, MessageId};
/// let id: MessageId = "publish:image.frames:42".parse().unwrap();
/// assert_eq!(id.kind, IdKind::Publish);
/// assert_eq!(id.name, "image.frames");
/// assert_eq!(id.seq, 42);
/// assert_eq!(id.to_string(), "publish:image.frames:42");
/// assert_eq!(MessageId::rpc("c7", 3).unwrap().to_string(), "rpc:c7:3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId {
    /// rpc, publish or system.
    pub kind: IdKind,
    /// The client id (rpc, system) or the topic (publish).
    pub name: String,
    /// The sequence number.
    pub seq: u64,
}

impl MessageId {
    /// `rpc:CLIENT:SEQ`, checking the client id.
    pub fn rpc(client_id: &str, seq: u64) -> Result<Self, IdError> {
        validate_client_id(client_id)?;
        Ok(MessageId {
            kind: IdKind::Rpc,
            name: client_id.to_owned(),
            seq,
        })
    }

    /// `publish:TOPIC:SEQ`, checking the topic.
    pub fn publish(topic: &str, seq: u64) -> Result<Self, IdError> {
        validate_topic(topic)?;
        Ok(MessageId {
            kind: IdKind::Publish,
            name: topic.to_owned(),
            seq,
        })
    }

    /// The hello id, `system:c0:0`.
    pub fn hello() -> Self {
        MessageId {
            kind: IdKind::System,
            name: "c0".to_owned(),
            seq: 0,
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind.as_str(), self.name, self.seq)
    }
}

impl FromStr for MessageId {
    type Err = IdError;

    fn from_str(id: &str) -> Result<Self, IdError> {
        let malformed = || IdError::Malformed { id: id.to_owned() };
        let (kind, rest) = id.split_once(':').ok_or_else(malformed)?;
        let (name, seq) = rest.rsplit_once(':').ok_or_else(malformed)?;
        let kind = match kind {
            "rpc" => IdKind::Rpc,
            "publish" => IdKind::Publish,
            "system" => IdKind::System,
            _ => return Err(malformed()),
        };
        // Digits without leading zeros: one string per id, so that a parsed
        // id formats back to the string it came from (the npm client matches
        // a reply to its call by the exact id string).
        let canonical = seq == "0" || !seq.starts_with('0');
        if !is_valid_name(name)
            || seq.is_empty()
            || !seq.bytes().all(|b| b.is_ascii_digit())
            || !canonical
        {
            return Err(malformed());
        }
        let seq = seq.parse().map_err(|_| malformed())?;
        Ok(MessageId {
            kind,
            name: name.to_owned(),
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_wslink_uses() {
        assert_eq!(HELLO_ID.parse::<MessageId>().unwrap(), MessageId::hello());
        let id: MessageId = "rpc:c1a2b3_x:0".parse().unwrap();
        assert_eq!(
            (id.kind, id.name.as_str(), id.seq),
            (IdKind::Rpc, "c1a2b3_x", 0)
        );
    }

    #[test]
    fn refuses_what_the_npm_client_would_drop() {
        for bad in [
            "rpc:c1:",
            "rpc::1",
            "rpc:c1:x",
            "event:c1:1",
            "publish:a..b:1",
            "publish:a b:1",
            "publish:é:1",
            "rpc:c1:99999999999999999999999",
            "rpc",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad}");
        }
        assert!(MessageId::publish("a-b", 0).is_err());
        let msg = validate_topic("a/b").unwrap_err().to_string();
        assert!(msg.contains("\"a/b\""), "{msg}");
    }
}
