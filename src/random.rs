//! The operating system's random number generator (a leaf module: keys,
//! ids and nonces all come from here).

use crate::error::{Error, Result};

/// Fills `buf` from the OS random number generator.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::Random(e.to_string()))
}
