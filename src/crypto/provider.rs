//! Where the master key comes from. The master key is never written into the database.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::key::{random_key, SecretKey, KEY_LEN};
use crate::error::{Error, Result};

/// The root secret of a store: 32 bytes, wiped from memory on drop.
pub struct MasterKey(SecretKey);

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A new random key from the OS random number generator.
    pub fn generate() -> Result<Self> {
        Ok(MasterKey(random_key()?))
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Supplies the master key. Implement it to plug in a KMS or HSM.
pub trait KeyProvider: Send + Sync {
    /// Returns the master key.
    fn master_key(&self) -> Result<MasterKey>;
}

/// Holds the master key in memory. For tests and for callers that fetch the
/// key themselves.
///
/// ```
/// use lethedb::{KeyProvider, MemoryKeyProvider};
/// let p = MemoryKeyProvider::generate()?;
/// let _key = p.master_key()?;
/// Ok::<_, lethedb::Error>(())
/// ```
pub struct MemoryKeyProvider(SecretKey);

impl MemoryKeyProvider {
    /// A provider holding a fresh random key.
    pub fn generate() -> Result<Self> {
        Ok(MemoryKeyProvider(random_key()?))
    }

    /// A provider holding the given key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        MemoryKeyProvider(Zeroizing::new(bytes))
    }
}

impl MemoryKeyProvider {
    pub(crate) fn holding(master: &MasterKey) -> Self {
        MemoryKeyProvider(master.0.clone())
    }
}

impl KeyProvider for MemoryKeyProvider {
    fn master_key(&self) -> Result<MasterKey> {
        Ok(MasterKey(self.0.clone()))
    }
}

const FILE_HEADER: &str = "lethedb-master-key-v1";

/// Reads the master key from a file created by [`FileKeyProvider::create`]
/// (`lethedb init`). The file holds a header line and the key as 64 hex
/// characters; it must not be readable by group or others.
pub struct FileKeyProvider {
    path: PathBuf,
}

impl FileKeyProvider {
    /// A provider reading `path` each time the key is needed.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileKeyProvider { path: path.into() }
    }

    /// Path of the key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a new key file with a fresh random key and mode 0600.
    /// Refuses to overwrite an existing file.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let key = random_key()?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::KeyFile {
                path: path.clone(),
                reason: if e.kind() == std::io::ErrorKind::AlreadyExists {
                    "already exists; refusing to overwrite a key file".into()
                } else {
                    e.to_string()
                },
            })?;
        let text = Zeroizing::new(format!(
            "{FILE_HEADER}\n{}\n",
            crate::hex::encode(key.as_ref())
        ));
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io_at(&path, e))?;
        // The new directory entry is durable too: a crash after `init`
        // returns must not lose the key of a store that exists.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io_at(dir, e))?;
        Ok(FileKeyProvider { path })
    }
}

impl KeyProvider for FileKeyProvider {
    fn master_key(&self) -> Result<MasterKey> {
        let err = |reason: String| Error::KeyFile {
            path: self.path.clone(),
            reason,
        };
        let f = File::open(&self.path).map_err(|e| err(e.to_string()))?;
        let mode = f
            .metadata()
            .map_err(|e| err(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "permissions {:o} let others read it; run `chmod 600 {}`",
                mode & 0o777,
                self.path.display()
            )));
        }
        let mut text = Zeroizing::new(String::new());
        f.take(4096)
            .read_to_string(&mut text)
            .map_err(|e| err(e.to_string()))?;
        parse_key_text(&text).ok_or_else(|| {
            err("not a lethedb key file (expected header line and 64 hex characters)".into())
        })
    }
}

fn parse_key_text(text: &str) -> Option<MasterKey> {
    let mut lines = text.lines();
    if lines.next()? != FILE_HEADER {
        return None;
    }
    let bytes = Zeroizing::new(crate::hex::decode(lines.next()?.trim())?);
    let arr: [u8; KEY_LEN] = bytes.as_slice().try_into().ok()?;
    Some(MasterKey::from_bytes(arr))
}

/// Reads the master key as 64 hex characters from an environment variable
/// (default `LETHEDB_MASTER_KEY`).
pub struct EnvKeyProvider {
    var: String,
}

impl EnvKeyProvider {
    /// A provider reading the given variable.
    pub fn new(var: impl Into<String>) -> Self {
        EnvKeyProvider { var: var.into() }
    }
}

impl Default for EnvKeyProvider {
    fn default() -> Self {
        EnvKeyProvider::new("LETHEDB_MASTER_KEY")
    }
}

impl KeyProvider for EnvKeyProvider {
    fn master_key(&self) -> Result<MasterKey> {
        let bad = || {
            Error::InvalidInput(format!(
                "environment variable {} must hold 64 hex characters",
                self.var
            ))
        };
        let text = Zeroizing::new(std::env::var(&self.var).map_err(|_| bad())?);
        let bytes = Zeroizing::new(crate::hex::decode(text.trim()).ok_or_else(bad)?);
        let arr: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(MasterKey::from_bytes(arr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_provider_creates_0600_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let p = FileKeyProvider::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let k1 = p.master_key().unwrap();
        let k2 = FileKeyProvider::new(&path).master_key().unwrap();
        assert_eq!(k1.bytes(), k2.bytes());
        assert!(matches!(
            FileKeyProvider::create(&path),
            Err(Error::KeyFile { .. })
        ));
        // Same key after the refused overwrite.
        assert_eq!(
            FileKeyProvider::new(&path).master_key().unwrap().bytes(),
            k1.bytes()
        );
    }

    #[test]
    fn file_provider_rejects_open_permissions_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        FileKeyProvider::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            FileKeyProvider::new(&path).master_key(),
            Err(Error::KeyFile { .. })
        ));
        let junk = dir.path().join("junk.key");
        std::fs::write(&junk, "hello\n").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            FileKeyProvider::new(&junk).master_key(),
            Err(Error::KeyFile { .. })
        ));
    }
}
