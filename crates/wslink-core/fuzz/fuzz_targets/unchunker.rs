//! Feeds arbitrary frames to an `Unchunker` with small limits and checks it
//! against a byte-by-byte model.
//!
//! Input layout (see `corpus/unchunker/` for valid examples):
//! - byte 0: bit 0 = authenticated from the start, bits 1..=3 = the maximum
//!   number of partial messages (0..=7);
//! - byte 1: the pending-bytes budget, in units of 64 bytes;
//! - then records `[n][n bytes]`, each one frame; `n = 0xff` instead toggles
//!   authentication (no frame). A record cut short by the end of the input
//!   is still pushed, so truncation is exercised too.

#![no_main]

use std::collections::HashMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wslink_core::chunking::{ChunkError, ChunkHeader, UnchunkLimits, Unchunker};

/// Per message: its total and which bytes arrived, with their values.
type Model = HashMap<u32, (u32, Vec<Option<u8>>)>;

fuzz_target!(|data: &[u8]| {
    let [flags, budget, ref records @ ..] = *data else {
        return;
    };
    let limits = UnchunkLimits {
        pre_auth_max_message_size: 64,
        max_message_size: 512,
        max_pending_messages: usize::from((flags >> 1) & 7),
        max_pending_bytes: usize::from(budget) * 64,
    };
    let mut unchunker = Unchunker::new(limits);
    let mut authenticated = flags & 1 == 1;
    unchunker.set_authenticated(authenticated);
    let mut model = Model::new();

    let mut rest = records;
    while let [n, ref tail @ ..] = *rest {
        if n == 0xff {
            authenticated = !authenticated;
            unchunker.set_authenticated(authenticated);
            rest = tail;
            continue;
        }
        let n = usize::from(n).min(tail.len());
        let (frame, tail) = tail.split_at(n);
        rest = tail;
        check(&mut unchunker, &mut model, &limits, authenticated, frame);
    }

    unchunker.clear();
    assert_eq!(unchunker.pending_messages(), 0);
    assert_eq!(unchunker.pending_bytes(), 0);
});

fn check(
    unchunker: &mut Unchunker,
    model: &mut Model,
    limits: &UnchunkLimits,
    authenticated: bool,
    frame: &[u8],
) {
    let result = unchunker.push(Bytes::copy_from_slice(frame));

    assert!(unchunker.pending_bytes() <= limits.max_pending_bytes);
    assert!(unchunker.pending_messages() <= limits.max_pending_messages);

    let Ok((h, content)) = ChunkHeader::parse(frame) else {
        assert!(matches!(result, Err(ChunkError::FrameTooShort { .. })));
        return;
    };
    let size_limit = if authenticated {
        limits.max_message_size
    } else {
        limits.pre_auth_max_message_size
    };
    match result {
        Err(e) => {
            assert_eq!(e.message_id(), Some(h.id));
            let known = model.get(&h.id);
            let end = u64::from(h.offset) + content.len() as u64;
            let received = |any: bool| {
                known.is_some_and(|(_, bytes)| {
                    let range = &bytes[h.offset as usize..end as usize];
                    if any {
                        range.iter().any(Option::is_some)
                    } else {
                        range.iter().all(Option::is_some)
                    }
                })
            };
            let justified = match &e {
                ChunkError::ZeroTotal { .. } => h.total == 0,
                ChunkError::EmptyChunk { .. } => content.is_empty(),
                ChunkError::TotalMismatch { expected, .. } => {
                    known.map(|m| m.0) == Some(*expected) && *expected != h.total
                }
                ChunkError::MessageTooLarge { limit, .. } => {
                    known.is_none() && *limit == size_limit && h.total as usize > size_limit
                }
                ChunkError::PastEnd { .. } => end > u64::from(h.total),
                ChunkError::DuplicateChunk { .. } => received(false),
                ChunkError::OverlappingChunk { .. } => received(true),
                ChunkError::TooManyPendingMessages { .. } => {
                    known.is_none() && model.len() >= limits.max_pending_messages
                }
                ChunkError::TooManyPendingBytes { needed, .. } => {
                    *needed > limits.max_pending_bytes
                }
                _ => false,
            };
            assert!(justified, "unjustified {e:?} for {h:?}");
            model.remove(&h.id);
        }
        Ok(done) => {
            assert!(h.total > 0 && !content.is_empty());
            let (total, bytes) = model
                .entry(h.id)
                .or_insert_with(|| (h.total, vec![None; h.total as usize]));
            assert_eq!(*total, h.total);
            let slots = &mut bytes[h.offset as usize..h.offset as usize + content.len()];
            assert!(slots.iter().all(Option::is_none), "a byte accepted twice");
            for (slot, byte) in slots.iter_mut().zip(content) {
                *slot = Some(*byte);
            }
            let complete = bytes.iter().all(Option::is_some);
            assert_eq!(done.is_some(), complete);
            if let Some(message) = done {
                assert!(message
                    .iter()
                    .zip(bytes.iter())
                    .all(|(a, b)| Some(*a) == *b));
                assert_eq!(message.len(), bytes.len());
                model.remove(&h.id);
            }
        }
    }
    assert_eq!(unchunker.pending_messages(), model.len());
    if model.is_empty() {
        assert_eq!(unchunker.pending_bytes(), 0);
    }
}
