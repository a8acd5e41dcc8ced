//! Properties of 2.x chunking: whatever the sizes, the order and the
//! interleaving, chunks reassemble to exactly what was sent; and no
//! sequence of frames, however broken, makes the unchunker panic, accept
//! bytes inconsistently or hold more than its limits allow.
//!
//! Messages and permutations come from seeds rather than from proptest's
//! collection strategies: a 200 kB message drawn byte by byte would make
//! each case slow in debug builds, and shrinking a seed is good enough here.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use wslink_core::chunking::{
    chunk, chunk_reserved, ChunkError, ChunkHeader, UnchunkLimits, Unchunker, HEADER_LEN,
};

/// splitmix64: a tiny deterministic generator for seeded data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn message(len: usize, seed: u64) -> Bytes {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn message_len() -> impl Strategy<Value = usize> {
    prop_oneof![1..64usize, 1..4096usize, 1..200_000usize]
}

fn max_frame_size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), 13..64usize, 13..4096usize, 13..100_000usize]
}

fn authenticated() -> Unchunker {
    let mut u = Unchunker::new(UnchunkLimits::default());
    u.set_authenticated(true);
    u
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Two messages, each chunked, each chunk order shuffled, the two
    /// streams interleaved at random: both come out intact, each exactly
    /// when its last chunk goes in.
    #[test]
    fn reassembles_any_order_interleaved(
        len_a in message_len(),
        len_b in message_len(),
        max_a in max_frame_size(),
        max_b in max_frame_size(),
        seed in any::<u64>(),
    ) {
        let a = message(len_a, seed);
        let b = message(len_b, !seed);
        let mut rng = Rng(seed ^ 0x5555);
        let mut fa: Vec<Bytes> = chunk(a.clone(), 1, max_a).unwrap().collect();
        let mut fb: Vec<Bytes> = chunk(b.clone(), 2, max_b).unwrap().collect();
        rng.shuffle(&mut fa);
        rng.shuffle(&mut fb);
        let (na, nb) = (fa.len(), fb.len());

        let mut u = authenticated();
        let (mut ia, mut ib) = (fa.into_iter(), fb.into_iter());
        let (mut left_a, mut left_b) = (na, nb);
        let mut out_a = None;
        let mut out_b = None;
        while left_a + left_b > 0 {
            let take_a = left_b == 0 || (left_a > 0 && rng.below(left_a + left_b) < left_a);
            let (frame, left, out) = if take_a {
                (ia.next().unwrap(), &mut left_a, &mut out_a)
            } else {
                (ib.next().unwrap(), &mut left_b, &mut out_b)
            };
            *left -= 1;
            let got = u.push(frame).unwrap();
            prop_assert_eq!(got.is_some(), *left == 0);
            if got.is_some() {
                *out = got;
            }
            prop_assert!(u.pending_bytes() <= UnchunkLimits::default().max_pending_bytes);
        }
        prop_assert!(out_a.as_ref() == Some(&a), "message a differs");
        prop_assert!(out_b.as_ref() == Some(&b), "message b differs");
        prop_assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
    }

    /// Frames respect the size limit, carry consistent headers in offset
    /// order, and concatenate back to the message; `chunk_reserved` cuts
    /// exactly as `chunk` does.
    #[test]
    fn frames_fit_and_cover_the_message(
        len in message_len(),
        max in max_frame_size(),
        id in any::<u32>(),
        seed in any::<u64>(),
    ) {
        let msg = message(len, seed);
        let frames = chunk(msg.clone(), id, max).unwrap();
        let step = if max == 0 { len } else { max - HEADER_LEN };
        prop_assert_eq!(frames.len(), len.div_ceil(step));
        let frames: Vec<Bytes> = frames.collect();
        let mut joined = Vec::with_capacity(len);
        for f in &frames {
            if max != 0 {
                prop_assert!(f.len() <= max);
            }
            let (h, content) = ChunkHeader::parse(f).unwrap();
            prop_assert_eq!(h, ChunkHeader { id, offset: joined.len() as u32, total: len as u32 });
            prop_assert!(!content.is_empty());
            joined.extend_from_slice(content);
        }
        prop_assert!(joined == msg);

        let mut buf = BytesMut::with_capacity(HEADER_LEN + len);
        buf.resize(HEADER_LEN, 0);
        buf.put_slice(&msg);
        let reserved: Vec<Bytes> = chunk_reserved(buf, id, max).unwrap().collect();
        prop_assert!(reserved == frames);
    }
}

/// A frame made to land near real state: few ids, each mostly with its own
/// small total and chunks inside it, so that completions, duplicates,
/// overlaps and mismatches all happen; then wilder headers, and raw bytes.
fn garbage_frame() -> impl Strategy<Value = Vec<u8>> {
    fn build(id: u32, offset: u32, total: u32, len: usize, fill: u8) -> Vec<u8> {
        let mut f = ChunkHeader { id, offset, total }.encode().to_vec();
        f.extend((0..len).map(|i| fill.wrapping_add(i as u8)));
        f
    }
    let consistent = (
        0..4u32,
        any::<prop::sample::Index>(),
        1..12usize,
        any::<u8>(),
    )
        .prop_map(|(id, at, len, fill)| {
            let total = [8u32, 16, 24, 33][id as usize];
            // Offsets on a grid of 4 make exact resends likely.
            let offset = (at.index(total as usize) as u32) & !3;
            let len = len.min((total - offset) as usize);
            build(id, offset, total, len, fill)
        });
    let wild = (0..4u32, 0..48u32, 0..40u32, 0..24usize, any::<u8>())
        .prop_map(|(id, offset, total, len, fill)| build(id, offset, total, len, fill));
    prop_oneof![
        12 => consistent,
        3 => wild,
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

/// What the bytes of each partial message must be, kept alongside the
/// unchunker under test.
#[derive(Default)]
struct Model {
    messages: HashMap<u32, (u32, Vec<Option<u8>>)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random frames never panic, never push the unchunker past its limits,
    /// and whatever it accepts agrees with a byte-by-byte model: no byte is
    /// accepted twice or out of bounds, and completed messages hold exactly
    /// the bytes that were sent.
    #[test]
    fn garbage_never_breaks_limits(
        frames in proptest::collection::vec(garbage_frame(), 1..120),
        max_pending_messages in 0..5usize,
        max_pending_bytes in prop_oneof![0..400usize, 400..3000usize],
        authenticate_at in 0..120usize,
    ) {
        let limits = UnchunkLimits {
            pre_auth_max_message_size: 24,
            max_message_size: 36,
            max_pending_messages,
            max_pending_bytes,
        };
        let mut u = Unchunker::new(limits);
        let mut model = Model::default();
        for (i, f) in frames.into_iter().enumerate() {
            if i == authenticate_at {
                u.set_authenticated(true);
            }
            let parsed = ChunkHeader::parse(&f).ok().map(|(h, c)| (h, c.to_vec()));
            let result = u.push(Bytes::from(f));
            prop_assert!(u.pending_bytes() <= max_pending_bytes);
            prop_assert!(u.pending_messages() <= max_pending_messages);
            let Some((h, content)) = parsed else {
                let too_short = matches!(result, Err(ChunkError::FrameTooShort { .. }));
                prop_assert!(too_short, "expected FrameTooShort, got {:?}", result);
                continue;
            };
            match result {
                Err(e) => {
                    prop_assert_eq!(e.message_id(), Some(h.id));
                    // The reason must be real.
                    let known = model.messages.get(&h.id);
                    let end = h.offset as u64 + content.len() as u64;
                    let ok = match &e {
                        ChunkError::ZeroTotal { .. } => h.total == 0,
                        ChunkError::EmptyChunk { .. } => content.is_empty(),
                        ChunkError::TotalMismatch { expected, .. } => {
                            known.map(|m| m.0) == Some(*expected) && *expected != h.total
                        }
                        ChunkError::MessageTooLarge { limit, .. } => {
                            known.is_none() && h.total as usize > *limit
                        }
                        ChunkError::PastEnd { .. } => end > h.total as u64,
                        ChunkError::DuplicateChunk { .. } => known.is_some_and(|m| {
                            m.1[h.offset as usize..end as usize].iter().all(Option::is_some)
                        }),
                        ChunkError::OverlappingChunk { .. } => known.is_some_and(|m| {
                            m.1[h.offset as usize..end as usize].iter().any(Option::is_some)
                        }),
                        ChunkError::TooManyPendingMessages { limit, .. } => {
                            known.is_none() && model.messages.len() >= *limit
                        }
                        ChunkError::TooManyPendingBytes { .. } => true,
                        _ => false,
                    };
                    prop_assert!(ok, "unjustified {:?} for {:?}", e, h);
                    model.messages.remove(&h.id);
                }
                Ok(done) => {
                    prop_assert!(h.total > 0 && !content.is_empty());
                    let entry = model
                        .messages
                        .entry(h.id)
                        .or_insert_with(|| (h.total, vec![None; h.total as usize]));
                    prop_assert_eq!(entry.0, h.total);
                    let slots = &mut entry.1[h.offset as usize..h.offset as usize + content.len()];
                    prop_assert!(slots.iter().all(Option::is_none), "accepted bytes twice");
                    for (slot, byte) in slots.iter_mut().zip(&content) {
                        *slot = Some(*byte);
                    }
                    let complete = entry.1.iter().all(Option::is_some);
                    prop_assert_eq!(done.is_some(), complete);
                    if let Some(msg) = done {
                        let expected: Vec<u8> = entry.1.iter().map(|b| b.unwrap()).collect();
                        prop_assert_eq!(&msg[..], &expected[..]);
                        model.messages.remove(&h.id);
                    }
                }
            }
            prop_assert_eq!(u.pending_messages(), model.messages.len());
            if u.pending_messages() == 0 {
                prop_assert_eq!(u.pending_bytes(), 0);
            }
        }
        u.clear();
        prop_assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
    }
}

/// The limits hold with the defaults too, against a peer that opens as many
/// messages as it may and feeds them one-byte chunks out of order.
#[test]
fn scattered_one_byte_chunks_stay_within_default_budget() {
    let limits = UnchunkLimits {
        max_pending_bytes: 1 << 20,
        ..UnchunkLimits::default()
    };
    let mut u = Unchunker::new(limits);
    u.set_authenticated(true);
    let mut refused = None;
    'outer: for offset in (0..100_000u32).step_by(2) {
        for id in 0..limits.max_pending_messages as u32 {
            let mut f = ChunkHeader {
                id,
                offset,
                total: 100_000,
            }
            .encode()
            .to_vec();
            f.push(0);
            if let Err(e) = u.push(Bytes::from(f)) {
                refused = Some(e);
                break 'outer;
            }
            assert!(u.pending_bytes() <= limits.max_pending_bytes);
        }
    }
    let e = refused.expect("the budget must run out");
    assert!(matches!(e, ChunkError::TooManyPendingBytes { .. }));
    assert!(e.is_size_limit());
}
