//! What the benchmark driver (`wslink-bench`) and the raw WebSocket server
//! (`raw-ws-server`) share: the payload pattern and the raw server's
//! commands.
//!
//! The raw server speaks plain WebSocket, no wslink framing:
//!
//! | client sends | server answers |
//! | --- | --- |
//! | a binary frame | the same bytes, echoed (zero-copy) |
//! | text `push COUNT SIZE` | COUNT binary frames of SIZE bytes to *every* connected client, then text `done COUNT` to the sender |
//! | text `blob SIZE` | one binary frame of SIZE bytes |
//!
//! The payloads are the conformance service's `bytes(size, seed)`, made the
//! same way our conformance service makes them, so both servers do the same
//! work apart from wslink's framing.

use bytes::Bytes;

/// The conformance pattern repeats every 251 bytes.
pub const PERIOD: usize = 251;

/// `bytes(size, seed)` of the conformance service: byte `i` is
/// `(i * 31 + seed) mod 251`.
pub fn pattern(size: usize, seed: u64) -> Bytes {
    let seed = (seed % PERIOD as u64) as usize;
    let period: Vec<u8> = (0..PERIOD)
        .map(|i| ((i * 31 + seed) % PERIOD) as u8)
        .collect();
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let n = (size - out.len()).min(PERIOD);
        out.extend_from_slice(&period[..n]);
    }
    Bytes::from(out)
}

/// Makes `bytes(size, seed)` for many seeds from one buffer: since
/// `bytes(size, seed)` is `bytes(size + 251, 0)` from offset
/// `seed * 81 mod 251` (81 is the inverse of 31 mod 251), each is a
/// zero-copy slice.
pub struct Patterns {
    base: Bytes,
    size: usize,
}

impl Patterns {
    /// Patterns of `size` bytes.
    pub fn new(size: usize) -> Self {
        Patterns {
            base: pattern(size + PERIOD, 0),
            size,
        }
    }

    /// `bytes(size, seed)`.
    pub fn get(&self, seed: u64) -> Bytes {
        let start = (seed % PERIOD as u64) as usize * 81 % PERIOD;
        self.base.slice(start..start + self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_the_seeded_patterns() {
        let p = Patterns::new(1000);
        for seed in [0u64, 1, 7, 250, 251, 1000] {
            let got = p.get(seed);
            for (i, b) in got.iter().enumerate() {
                assert_eq!(*b as usize, (i * 31 + (seed % 251) as usize) % 251);
            }
            assert_eq!(got, pattern(1000, seed));
        }
    }
}
