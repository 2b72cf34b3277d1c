//! The root of the key tree, held outside the LSM tree by a [`RootKeyStore`].
//!
//! The engine generates each root version (a random 256-bit key), seals it
//! under a master-derived key bound to the store id and the epoch, and hands
//! the sealed bytes to the root key store. Neither the root file nor the
//! master key alone opens the tree; destroying a root version in the store
//! makes every copy of everything wrapped under it undecryptable, even with
//! the master key.
//!
//! [`FileRootKeyStore`] is the default; [`MemoryRootKeyStore`] serves tests
//! and embedders that keep the roots in a KMS or HSM of their own (implement
//! the trait against the service instead).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
#[cfg(feature = "testkit")]
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::location::RootLocation;
use crate::error::{Error, Result};

/// Holds the versions (epochs) of a store's root key, outside the store.
///
/// Contract, relied on by the engine's crash safety:
/// * `put` returns only once the new version is durable;
/// * `destroy` returns only once the versions are durably and irrevocably
///   gone, and never touches a version it was not asked to destroy;
/// * a crash at any point leaves every version either fully present or
///   (for `destroy`) fully gone.
///
/// The values are opaque sealed bytes (the engine seals each root under a
/// master-derived key), so a store need not be trusted with key material.
///
/// ```
/// use lethedb::{MemoryRootKeyStore, RootKeyStore};
/// let roots = MemoryRootKeyStore::new();
/// roots.put(1, b"sealed root")?;
/// assert_eq!(roots.epochs()?, vec![1]);
/// roots.destroy(&[1])?;
/// assert!(roots.get(1)?.is_none());
/// Ok::<_, lethedb::Error>(())
/// ```
pub trait RootKeyStore: Send + Sync {
    /// Epochs of every version held, ascending.
    fn epochs(&self) -> Result<Vec<u32>>;
    /// The sealed root of `epoch`, if held.
    fn get(&self, epoch: u32) -> Result<Option<Vec<u8>>>;
    /// Adds a version durably. Fails if `epoch` is already held.
    fn put(&self, epoch: u32, sealed: &[u8]) -> Result<()>;
    /// Destroys versions durably and irrevocably; unknown epochs are ignored.
    fn destroy(&self, epochs: &[u32]) -> Result<()>;
    /// Where the roots live, for messages and `keys status`.
    fn describe(&self) -> String;
    /// Where the roots live, for the co-location check, `keys status` and
    /// certificates.
    fn location(&self) -> RootLocation {
        RootLocation::Other(self.describe())
    }
}

/// Roots in memory (tests; embedders fetching roots themselves).
#[derive(Default)]
pub struct MemoryRootKeyStore {
    versions: Mutex<BTreeMap<u32, Vec<u8>>>,
}

impl MemoryRootKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RootKeyStore for MemoryRootKeyStore {
    fn epochs(&self) -> Result<Vec<u32>> {
        Ok(self.versions.lock().keys().copied().collect())
    }
    fn get(&self, epoch: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.versions.lock().get(&epoch).cloned())
    }
    fn put(&self, epoch: u32, sealed: &[u8]) -> Result<()> {
        let mut v = self.versions.lock();
        if v.contains_key(&epoch) {
            return Err(Error::RootKey {
                epoch,
                reason: "already held; root versions are never overwritten".into(),
            });
        }
        v.insert(epoch, sealed.to_vec());
        Ok(())
    }
    fn destroy(&self, epochs: &[u32]) -> Result<()> {
        let mut v = self.versions.lock();
        for e in epochs {
            if let Some(mut old) = v.remove(e) {
                zeroize::Zeroize::zeroize(&mut old);
            }
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "memory".into()
    }
    fn location(&self) -> RootLocation {
        RootLocation::Memory
    }
}

const FILE_MAGIC: &[u8; 8] = b"LETHROOT";
const FILE_VERSION: u8 = 1;
/// Largest sealed root accepted from a file (the engine writes 61 bytes).
const MAX_SEALED: usize = 1024;

/// Roots in one file, replaced atomically on every change.
///
/// Layout (big-endian): magic `LETHROOT` (8) ‖ format version (1) ‖ count
/// u32 ‖ count × (epoch u32 ‖ length u16 ‖ sealed bytes) ‖ CRC-32 of all
/// preceding bytes (4).
///
/// A change writes `FILE.tmp` and syncs it, hard-links the current file as
/// `FILE.prev`, renames the temporary file over `FILE` and syncs the
/// directory — the durable switch — then overwrites `FILE.prev` with zeros,
/// syncs and unlinks it. A crash leaves `FILE` either old or new, both
/// complete; leftovers are zeroed and removed by the next call. The file
/// must live outside the store directory (default: `<DIR>.rootkeys` beside
/// it) and must not be copied into file-level backups: a copy of it keeps
/// destroyed roots alive. Zero-overwrite does not reach blocks an SSD or a
/// copy-on-write file system keeps elsewhere; where that matters, put the
/// roots in a KMS or HSM through the trait.
///
/// ```
/// use lethedb::{FileRootKeyStore, RootKeyStore};
/// let dir = tempfile::tempdir().unwrap();
/// let roots = FileRootKeyStore::new(dir.path().join("db.rootkeys"));
/// roots.put(1, b"sealed")?;
/// roots.put(2, b"sealed too")?;
/// roots.destroy(&[1])?;
/// assert_eq!(roots.epochs()?, vec![2]);
/// Ok::<_, lethedb::Error>(())
/// ```
pub struct FileRootKeyStore {
    path: PathBuf,
    lock: Mutex<()>,
    /// Test hook: fail (as a crash would stop) before file-system step n.
    #[cfg(feature = "testkit")]
    crash_before_step: AtomicUsize,
    #[cfg(feature = "testkit")]
    steps: AtomicUsize,
}

impl FileRootKeyStore {
    /// A store in `path` (created on the first `put`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRootKeyStore {
            path: path.into(),
            lock: Mutex::new(()),
            #[cfg(feature = "testkit")]
            crash_before_step: AtomicUsize::new(usize::MAX),
            #[cfg(feature = "testkit")]
            steps: AtomicUsize::new(0),
        }
    }

    /// The default root file of the store in `dir`: `<dir>.rootkeys`,
    /// beside the directory, never inside it.
    pub fn beside(dir: &Path) -> Self {
        let text = dir.to_string_lossy();
        let trimmed = text.trim_end_matches('/');
        let base = if trimmed.is_empty() { "/" } else { trimmed };
        Self::new(PathBuf::from(format!("{base}.rootkeys")))
    }

    /// Path of the root file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Test hook: every later file-system step numbered `n` or above fails
    /// with an I/O error, leaving the files as a crash at that point would.
    /// Steps of one change: 0 write+sync tmp, 1 link prev, 2 rename,
    /// 3 sync dir, 4 zero prev, 5 unlink prev.
    #[doc(hidden)]
    #[cfg(feature = "testkit")]
    pub fn crash_before_step(&self, n: usize) {
        self.steps.store(0, Ordering::SeqCst);
        self.crash_before_step.store(n, Ordering::SeqCst);
    }

    /// A file-system step: fails when the test hook asks for it (feature
    /// `testkit`); compiled to nothing otherwise.
    #[cfg(not(feature = "testkit"))]
    #[inline(always)]
    fn step(&self) -> Result<()> {
        Ok(())
    }

    #[cfg(feature = "testkit")]
    fn step(&self) -> Result<()> {
        let n = self.steps.fetch_add(1, Ordering::SeqCst);
        if n >= self.crash_before_step.load(Ordering::SeqCst) {
            return Err(Error::io_at(
                &self.path,
                std::io::Error::other(format!("injected crash before step {n}")),
            ));
        }
        Ok(())
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn sync_dir(&self) -> Result<()> {
        let d = self.dir();
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io_at(&d, e))
    }

    /// Overwrites a leftover file with zeros, syncs and removes it. A
    /// leftover that is the current file (crash between link and rename)
    /// is only unlinked.
    fn scrub(&self, leftover: &Path) -> Result<()> {
        let meta = match std::fs::metadata(leftover) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io_at(leftover, e)),
        };
        let same_as_current = std::fs::metadata(&self.path)
            .map(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
            .unwrap_or(false);
        if !same_as_current {
            self.step()?;
            let mut f = OpenOptions::new()
                .write(true)
                .open(leftover)
                .map_err(|e| Error::io_at(leftover, e))?;
            let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0)];
            f.write_all(&zeros)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io_at(leftover, e))?;
        }
        self.step()?;
        std::fs::remove_file(leftover).map_err(|e| Error::io_at(leftover, e))?;
        self.sync_dir()
    }

    fn cleanup(&self) -> Result<()> {
        self.scrub(&self.sibling(".prev"))?;
        self.scrub(&self.sibling(".tmp"))
    }

    fn load(&self) -> Result<BTreeMap<u32, Vec<u8>>> {
        let mut bytes = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => f
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io_at(&self.path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(Error::io_at(&self.path, e)),
        };
        decode_file(&bytes).map_err(|detail| Error::Corrupt {
            what: "root key file",
            detail: format!("{}: {detail}", self.path.display()),
        })
    }

    fn save(&self, versions: &BTreeMap<u32, Vec<u8>>) -> Result<()> {
        let tmp = self.sibling(".tmp");
        let prev = self.sibling(".prev");
        self.step()?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io_at(&tmp, e))?;
        f.write_all(&encode_file(versions))
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io_at(&tmp, e))?;
        drop(f);
        let had_current = self.path.exists();
        self.step()?;
        if had_current {
            std::fs::hard_link(&self.path, &prev).map_err(|e| Error::io_at(&prev, e))?;
        }
        self.step()?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io_at(&self.path, e))?;
        self.step()?;
        self.sync_dir()?;
        if had_current {
            self.scrub(&prev)?;
        }
        Ok(())
    }
}

fn encode_file(versions: &BTreeMap<u32, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(FILE_MAGIC);
    out.push(FILE_VERSION);
    out.extend_from_slice(
        &u32::try_from(versions.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for (epoch, sealed) in versions {
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(
            &u16::try_from(sealed.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(sealed);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode_file(bytes: &[u8]) -> std::result::Result<BTreeMap<u32, Vec<u8>>, String> {
    if bytes.len() < 17 || &bytes[..8] != FILE_MAGIC {
        return Err("not a root key file (magic missing)".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_be_bytes(crc.try_into().map_err(|_| "short file")?);
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    if body[8] != FILE_VERSION {
        return Err(format!(
            "unsupported format version {} (this build reads {FILE_VERSION})",
            body[8]
        ));
    }
    let mut rest = &body[9..];
    let mut take = |n: usize| -> std::result::Result<Vec<u8>, String> {
        if rest.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a.to_vec())
    };
    let be32 = |b: Vec<u8>| b.try_into().map(u32::from_be_bytes).map_err(|_| "length");
    let count = be32(take(4)?)?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let epoch = be32(take(4)?)?;
        let len_bytes: [u8; 2] = take(2)?.try_into().map_err(|_| "length")?;
        let len = usize::from(u16::from_be_bytes(len_bytes));
        if len > MAX_SEALED {
            return Err(format!("sealed root of {len} bytes"));
        }
        if out.insert(epoch, take(len)?).is_some() {
            return Err(format!("epoch {epoch} twice"));
        }
    }
    if !rest.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(out)
}

impl RootKeyStore for FileRootKeyStore {
    fn epochs(&self) -> Result<Vec<u32>> {
        let _g = self.lock.lock();
        self.cleanup()?;
        Ok(self.load()?.keys().copied().collect())
    }

    fn get(&self, epoch: u32) -> Result<Option<Vec<u8>>> {
        let _g = self.lock.lock();
        Ok(self.load()?.remove(&epoch))
    }

    fn put(&self, epoch: u32, sealed: &[u8]) -> Result<()> {
        let _g = self.lock.lock();
        self.cleanup()?;
        let mut v = self.load()?;
        if v.contains_key(&epoch) {
            return Err(Error::RootKey {
                epoch,
                reason: format!(
                    "already held in {}; root versions are never overwritten",
                    self.path.display()
                ),
            });
        }
        if sealed.len() > MAX_SEALED {
            return Err(Error::Internal(format!(
                "sealed root of {} bytes",
                sealed.len()
            )));
        }
        v.insert(epoch, sealed.to_vec());
        self.save(&v)
    }

    fn destroy(&self, epochs: &[u32]) -> Result<()> {
        let _g = self.lock.lock();
        self.cleanup()?;
        let mut v = self.load()?;
        let before = v.len();
        for e in epochs {
            v.remove(e);
        }
        if v.len() == before {
            return Ok(());
        }
        self.save(&v)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn location(&self) -> RootLocation {
        RootLocation::File(self.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_rejections() {
        let mut v = BTreeMap::new();
        v.insert(3, vec![1, 2, 3]);
        v.insert(9, vec![]);
        let bytes = encode_file(&v);
        assert_eq!(decode_file(&bytes).unwrap(), v);
        for cut in 0..bytes.len() {
            assert!(decode_file(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[12] ^= 1;
        assert!(decode_file(&flipped).is_err());
    }

    #[test]
    fn every_crash_point_leaves_old_or_new_and_no_copy_of_a_destroyed_root() {
        for crash in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            let s = FileRootKeyStore::new(dir.path().join("r"));
            s.put(1, b"root-one").unwrap();
            s.put(2, b"root-two").unwrap();
            s.crash_before_step(crash);
            let result = s.destroy(&[1]);
            s.crash_before_step(usize::MAX);
            let epochs = s.epochs().unwrap();
            assert!(
                epochs == vec![1, 2] || epochs == vec![2],
                "crash {crash}: {epochs:?} ({result:?})"
            );
            // Whatever happened, the leftovers are gone after the next call.
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            assert_eq!(names, vec!["r".to_string()], "crash {crash}");
            if result.is_ok() {
                assert_eq!(epochs, vec![2]);
            }
            s.destroy(&[1]).unwrap();
            let raw = std::fs::read(dir.path().join("r")).unwrap();
            assert!(!raw.windows(8).any(|w| w == b"root-one"));
        }
    }
}
