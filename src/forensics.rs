//! Forensic scan: searches every byte of every file under a directory for
//! given plaintext strings. The demo and the tests use it to show that no
//! personal data reaches disk; operators can point it at a store, a backup
//! or a disk image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Shortest needle accepted. Shorter strings occur by chance in megabytes of
/// ciphertext (a 4-byte string about once per 4 GiB per needle, a 3-byte one
/// every 16 MiB), so they would prove nothing.
pub const MIN_NEEDLE_BYTES: usize = 8;

/// One occurrence of a needle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanHit {
    /// File it was found in.
    pub file: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// Index of the needle in the list given to [`scan_dir`].
    pub needle: usize,
}

/// What a scan looked at and found.
#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    /// Files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Needles searched for.
    pub needles: usize,
    /// Every occurrence found.
    pub hits: Vec<ScanHit>,
}

const BITS: u32 = 24;

fn fingerprint(x: u64) -> usize {
    // Multiplicative hashing into a 2^24-bit prefilter.
    usize::try_from(x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITS)).unwrap_or(0)
}

fn window(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Searches every regular file under `dir` (recursively) for every needle.
/// Exact: each candidate found through the 8-byte prefilter is compared in full.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("f"), b"xx secret-marker yy")?;
/// let r = lethedb::forensics::scan_dir(dir.path(), &["secret-marker", "absent-marker"])?;
/// assert_eq!(r.hits.len(), 1);
/// assert_eq!(r.hits[0].offset, 3);
/// Ok::<_, lethedb::Error>(())
/// ```
pub fn scan_dir<N: AsRef<[u8]>>(dir: &Path, needles: &[N]) -> Result<ScanReport> {
    let mut filter = vec![0u64; (1usize << BITS) / 64];
    let mut by_prefix: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, n) in needles.iter().enumerate() {
        let n = n.as_ref();
        if n.len() < MIN_NEEDLE_BYTES {
            return Err(Error::InvalidInput(format!(
                "scan needle {i} is {} bytes; at least {MIN_NEEDLE_BYTES} are needed",
                n.len()
            )));
        }
        let w = window(n);
        let f = fingerprint(w);
        filter[f / 64] |= 1 << (f % 64);
        by_prefix.entry(w).or_default().push(i);
    }
    let mut report = ScanReport {
        needles: needles.len(),
        ..ScanReport::default()
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io_at(&d, e))? {
            let path = entry.map_err(|e| Error::io_at(&d, e))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io_at(&path, e))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let data = std::fs::read(&path).map_err(|e| Error::io_at(&path, e))?;
            report.files += 1;
            report.bytes += data.len() as u64;
            for (off, win) in data.windows(8).enumerate() {
                let w = window(win);
                let f = fingerprint(w);
                if filter[f / 64] & (1 << (f % 64)) == 0 {
                    continue;
                }
                for &i in by_prefix.get(&w).into_iter().flatten() {
                    if data[off..].starts_with(needles[i].as_ref()) {
                        report.hits.push(ScanHit {
                            file: path.clone(),
                            offset: off as u64,
                            needle: i,
                        });
                    }
                }
            }
        }
    }
    Ok(report)
}
