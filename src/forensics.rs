//! Forensic scan: searches every byte of every file under a directory for
//! given plaintext strings. The demo and the tests use it to show that no
//! personal data reaches disk; operators can point it at a store, a backup
//! or a disk image. A file deleted while the scan runs (a live store
//! deletes obsolete files) is skipped: its bytes are no longer in a file.

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
    let max_len = needles.iter().map(|n| n.as_ref().len()).max().unwrap_or(0);
    let mut report = ScanReport {
        needles: needles.len(),
        ..ScanReport::default()
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io_at(&d, e))? {
            let path = entry.map_err(|e| Error::io_at(&d, e))?.path();
            // A live store deletes obsolete files while it is scanned: a
            // file gone between listing and reading holds nothing any more.
            let meta = match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                other => other.map_err(|e| Error::io_at(&path, e))?,
            };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            report.files += 1;
            scan_file(&path, &filter, &by_prefix, needles, max_len, &mut report)?;
        }
    }
    Ok(report)
}

/// Chunk size for reading files; a needle straddling two chunks is found
/// because each chunk keeps the previous chunk's last `max_len - 1` bytes.
const CHUNK: usize = 8 << 20;

fn scan_file<N: AsRef<[u8]>>(
    path: &Path,
    filter: &[u64],
    by_prefix: &HashMap<u64, Vec<usize>>,
    needles: &[N],
    max_len: usize,
    report: &mut ScanReport,
) -> Result<()> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| Error::io_at(path, e))?,
    };
    let keep = max_len.saturating_sub(1);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + keep);
    // File offset of buf[0].
    let mut base = 0u64;
    loop {
        let old = buf.len();
        buf.resize(old + CHUNK, 0);
        let n = file
            .read(&mut buf[old..])
            .map_err(|e| Error::io_at(path, e))?;
        buf.truncate(old + n);
        report.bytes += n as u64;
        let eof = n == 0;
        // Test only positions whose longest needle fits, unless at EOF.
        let limit = if eof {
            buf.len()
        } else {
            buf.len().saturating_sub(keep)
        };
        for off in 0..limit {
            let Some(win) = buf.get(off..off + 8) else {
                break;
            };
            let w = window(win);
            let f = fingerprint(w);
            if filter[f / 64] & (1 << (f % 64)) == 0 {
                continue;
            }
            for &i in by_prefix.get(&w).into_iter().flatten() {
                if buf[off..].starts_with(needles[i].as_ref()) {
                    report.hits.push(ScanHit {
                        file: path.to_path_buf(),
                        offset: base + off as u64,
                        needle: i,
                    });
                }
            }
        }
        if eof {
            return Ok(());
        }
        let drop_n = limit.min(buf.len());
        buf.drain(..drop_n);
        base += drop_n as u64;
    }
}

/// Every form an attacker scanning files might find `bytes` in: raw, hex
/// (lower and upper case), and base64 (standard and URL-safe alphabets, at
/// each of the three alignments inside a longer base64 text — only the
/// characters that depend on `bytes` alone). Forms shorter than the
/// scanner's minimum needle are left out. Give them all to [`scan_dir`] to
/// search a copy of a store for a value in any of these forms.
///
/// ```
/// let forms = lethedb::forensics::encodings(b"ada@example.com");
/// assert!(forms.contains(&b"ada@example.com".to_vec()));
/// assert!(forms.contains(&b"616461406578616d706c652e636f6d".to_vec()));
/// assert!(forms.contains(&b"YWRhQGV4YW1wbGUuY29t".to_vec()));
/// ```
pub fn encodings(bytes: &[u8]) -> Vec<Vec<u8>> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    fn b64(data: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(3) {
            let n = chunk.len();
            let v = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..=n {
                out.push(alphabet[((v >> (18 - 6 * i)) & 63) as usize]);
            }
        }
        out
    }
    let mut out = vec![
        bytes.to_vec(),
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
            .into_bytes(),
    ];
    for alphabet in [STD, URL] {
        for pad in 0..3 {
            // `pad` unknown bytes before `bytes`: the characters that mix
            // them in (the first group) and the trailing partial group are
            // dropped.
            let mut data = vec![0u8; pad];
            data.extend_from_slice(bytes);
            let enc = b64(&data, alphabet);
            let skip = if pad == 0 { 0 } else { 4 };
            let whole = (data.len() / 3) * 4;
            if whole > skip {
                out.push(enc[skip..whole].to_vec());
            }
        }
    }
    out.retain(|e| e.len() >= MIN_NEEDLE_BYTES);
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_needles_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = vec![b'.'; super::CHUNK * 2 + 100];
        let needle = b"ACROSS-THE-BOUNDARY";
        let at = super::CHUNK - 7;
        data[at..at + needle.len()].copy_from_slice(needle);
        let end = data.len() - needle.len();
        data[end..].copy_from_slice(needle);
        std::fs::write(dir.path().join("f"), &data).unwrap();
        let r = super::scan_dir(dir.path(), &[&needle[..]]).unwrap();
        let offsets: Vec<u64> = r.hits.iter().map(|h| h.offset).collect();
        assert_eq!(offsets, vec![at as u64, end as u64]);
        assert_eq!(r.bytes, data.len() as u64);
    }
}
