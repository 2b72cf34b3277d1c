//! Striped per-profile locks: read-modify-write of a profile record holds
//! its stripe, so concurrent writers to one profile never lose an update.
//! Multi-profile batches take their stripes in ascending order (no deadlock).

use parking_lot::{Mutex, MutexGuard};

use crate::types::ProfileId;

const STRIPES: usize = 1024;

pub(crate) struct StripedLocks {
    stripes: Box<[Mutex<()>]>,
}

impl StripedLocks {
    pub(crate) fn new() -> Self {
        StripedLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(id: &ProfileId) -> usize {
        let b = id.as_bytes();
        let x = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            ^ u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        // STRIPES is a power of two.
        usize::try_from(x % STRIPES as u64).unwrap_or(0)
    }

    /// Locks the stripes of all `ids`, in ascending stripe order.
    pub(crate) fn lock<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a ProfileId>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = ids.into_iter().map(Self::stripe).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| self.stripes[i].lock()).collect()
    }
}
