//! The shape of the key tree: fan-out and depth, and which inner node and
//! bucket a profile id falls under.

use crate::error::{Error, Result};
use crate::types::ProfileId;

/// Accepted `fanout_bits` and `depth`; `fanout_bits × depth` ≤ 24.
pub(crate) const FANOUT_BITS_RANGE: std::ops::RangeInclusive<u8> = 1..=16;
pub(crate) const DEPTH_RANGE: std::ops::RangeInclusive<u8> = 1..=4;
pub(crate) const MAX_BUCKET_BITS: u8 = 24;

/// Fan-out and depth of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) fanout_bits: u8,
    pub(crate) depth: u8,
}

impl Shape {
    pub(crate) fn check(self) -> Result<Self> {
        if !FANOUT_BITS_RANGE.contains(&self.fanout_bits)
            || !DEPTH_RANGE.contains(&self.depth)
            || self.bucket_bits() > MAX_BUCKET_BITS
        {
            return Err(Error::InvalidInput(format!(
                "key tree fan-out 2^{} and depth {}: fanout_bits must be in {}..={}, depth in {}..={}, and fanout_bits x depth at most {MAX_BUCKET_BITS}",
                self.fanout_bits,
                self.depth,
                FANOUT_BITS_RANGE.start(),
                FANOUT_BITS_RANGE.end(),
                DEPTH_RANGE.start(),
                DEPTH_RANGE.end()
            )));
        }
        Ok(self)
    }

    pub(crate) fn bucket_bits(self) -> u8 {
        self.fanout_bits.saturating_mul(self.depth)
    }

    /// Index at `level` (1..=depth) of the node covering `id`.
    pub(super) fn index_of(self, id: &ProfileId, level: u8) -> u32 {
        let b = id.as_bytes();
        let top = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let bits = u32::from(level) * u32::from(self.fanout_bits);
        top >> (32 - bits)
    }

    pub(crate) fn bucket_of(self, id: &ProfileId) -> u32 {
        self.index_of(id, self.depth)
    }

    pub(super) fn parent_index(self, index: u32) -> u32 {
        index >> self.fanout_bits
    }

    /// `[first, end)` of the children of `(level, index)` on `level + 1`.
    pub(super) fn children(self, index: u32) -> (u32, u32) {
        (index << self.fanout_bits, (index + 1) << self.fanout_bits)
    }

    /// `[first, end)` of the profile ids in `bucket` (`None`: to the end).
    pub(super) fn keyring_range(self, bucket: u32) -> (ProfileId, Option<ProfileId>) {
        let shift = 32 - u32::from(self.bucket_bits());
        let id_at = |b: u32| {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&(b << shift).to_be_bytes());
            ProfileId::from_bytes(bytes)
        };
        let last = (1u32 << self.bucket_bits()) - 1;
        (id_at(bucket), (bucket < last).then(|| id_at(bucket + 1)))
    }
}
