//! Roots inside a PKCS#11 token: an HSM, a cloud HSM, or SoftHSM2 in tests.
//!
//! Each root epoch is an AES-256 secret-key object generated in the token
//! (`CKA_TOKEN`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`), labelled
//! `<object>.<epoch>` with `CKA_ID` = store id ‖ epoch. Level-1 nodes are
//! wrapped and unwrapped by the token (`C_Encrypt`/`C_Decrypt`,
//! `CKM_AES_GCM`, a 96-bit IV from the OS, the node's associated data as
//! GCM AAD), so the root never enters process memory. Destroying a root is
//! `C_DestroyObject`: the deletion the device's own audit log records.
//!
//! The token is named by an RFC 7512 URI:
//!
//! ```text
//! pkcs11:token=lethedb;object=crm?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/lethedb/pin
//! ```
//!
//! `pin-value` is refused: a PIN never goes into a URI or onto a command
//! line. `pin-source` is `file:<path>` (the first line of the file) or, as
//! an extension, `env:<VAR>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
#[cfg(feature = "testkit")]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use parking_lot::Mutex;
use zeroize::Zeroizing;

use super::custody::{RootKeyDevice, RootKeys};
use super::location::{device_id, device_label, RootLocation};
pub use super::pkcs11_uri::{PinSource, Pkcs11Config};
use super::root::FileRootKeyStore;
use crate::error::{Error, Result};
use crate::random::os_random;

/// Prefix of the reason of an error whose cause is a stale object handle.
const STALE_HANDLE: &str = "stale object handle: ";

/// One initialised context per module per process: `C_Initialize` may be
/// called once, and every store on the module shares it.
fn context(module: &Path) -> Result<Pkcs11> {
    static CONTEXTS: OnceLock<Mutex<BTreeMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS.get_or_init(|| Mutex::new(BTreeMap::new())).lock();
    let key = std::fs::canonicalize(module).map_err(|e| Error::io_at(module, e))?;
    if let Some(c) = map.get(&key) {
        return Ok(c.clone());
    }
    let dev = |reason: String| Error::RootKeyDevice {
        device: key.display().to_string(),
        reason,
    };
    let ctx = Pkcs11::new(&key).map_err(|e| dev(format!("loading the module: {e}")))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(dev(format!("C_Initialize: {e}"))),
    }
    map.insert(key, ctx.clone());
    Ok(ctx)
}

/// Roots as non-extractable AES-256 keys in a PKCS#11 token.
///
/// ```no_run
/// use std::sync::Arc;
/// use lethedb::{Db, FileKeyProvider, Options, Pkcs11RootKeyStore};
/// let roots = Pkcs11RootKeyStore::from_uri(
///     "pkcs11:token=lethedb;object=crm?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/lethedb/pin",
/// )?;
/// let keys = FileKeyProvider::new("/var/lib/crm.key");
/// let db = Db::open("/var/lib/crm", &keys, Options::new().root_key_device(Arc::new(roots)))?;
/// # Ok::<_, lethedb::Error>(())
/// ```
pub struct Pkcs11RootKeyStore {
    config: Pkcs11Config,
    serial: String,
    session: Mutex<Session>,
    /// Object handles by (store id, epoch); dropped on destroy.
    handles: Mutex<BTreeMap<([u8; 16], u32), ObjectHandle>>,
    #[cfg(feature = "testkit")]
    crash_before_step: AtomicUsize,
    #[cfg(feature = "testkit")]
    steps: AtomicUsize,
}

impl std::fmt::Debug for Pkcs11RootKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pkcs11RootKeyStore({:?})", self.location())
    }
}

impl Pkcs11RootKeyStore {
    /// Opens the token an RFC 7512 URI names and logs in (see
    /// [`Pkcs11Config::from_uri`]).
    pub fn from_uri(uri: &str) -> Result<Self> {
        Self::open(Pkcs11Config::from_uri(uri)?)
    }

    /// Opens the token `config` names and logs in as its user.
    pub fn open(config: Pkcs11Config) -> Result<Self> {
        let ctx = context(&config.module)?;
        let dev = |reason: String| Error::RootKeyDevice {
            device: format!("token {:?}", config.token),
            reason,
        };
        let mut found: Option<(Slot, String)> = None;
        for slot in ctx
            .get_slots_with_initialized_token()
            .map_err(|e| dev(format!("listing slots: {e}")))?
        {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| dev(format!("token info: {e}")))?;
            if info.label().trim_end() != config.token {
                continue;
            }
            let serial = info.serial_number().trim_end().to_string();
            if config.serial.as_ref().is_some_and(|s| *s != serial) {
                continue;
            }
            if found.is_some() {
                return Err(dev(
                    "several tokens carry this label; add serial=… to the URI".into(),
                ));
            }
            found = Some((slot, serial));
        }
        let (slot, serial) = found.ok_or_else(|| dev("no such token".into()))?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| dev(format!("opening a session: {e}")))?;
        let pin = config.pin.read()?;
        match session.login(
            UserType::User,
            Some(&AuthPin::from(pin.as_str().to_string())),
        ) {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(dev("the PIN is incorrect".into()))
            }
            Err(e) => return Err(dev(format!("C_Login: {e}"))),
        }
        Ok(Pkcs11RootKeyStore {
            config,
            serial,
            session: Mutex::new(session),
            handles: Mutex::new(BTreeMap::new()),
            #[cfg(feature = "testkit")]
            crash_before_step: AtomicUsize::new(usize::MAX),
            #[cfg(feature = "testkit")]
            steps: AtomicUsize::new(0),
        })
    }

    /// Test hook: every later token step numbered `n` or above fails, as a
    /// crash at that point would. Steps: `generate` is one step (before
    /// `C_GenerateKey`); `destroy` one per object (before each
    /// `C_DestroyObject`).
    #[doc(hidden)]
    #[cfg(feature = "testkit")]
    pub fn crash_before_step(&self, n: usize) {
        self.steps.store(0, Ordering::SeqCst);
        self.crash_before_step.store(n, Ordering::SeqCst);
    }

    #[cfg(feature = "testkit")]
    fn step(&self) -> Result<()> {
        let n = self.steps.fetch_add(1, Ordering::SeqCst);
        if n >= self.crash_before_step.load(Ordering::SeqCst) {
            return Err(self.error(format!("injected crash before step {n}")));
        }
        Ok(())
    }

    #[cfg(not(feature = "testkit"))]
    #[inline(always)]
    fn step(&self) -> Result<()> {
        Ok(())
    }

    /// A failed PKCS#11 call; a handle the token no longer knows
    /// (`CKR_OBJECT_HANDLE_INVALID`, `CKR_KEY_HANDLE_INVALID`) is marked,
    /// from the typed code, for `with_handle` to look up again.
    fn p11(&self, call: &str, e: cryptoki::error::Error) -> Error {
        let stale = matches!(
            e,
            cryptoki::error::Error::Pkcs11(
                RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid,
                _
            )
        );
        self.error(format!(
            "{}{call}: {e}",
            if stale { STALE_HANDLE } else { "" }
        ))
    }

    fn error(&self, reason: String) -> Error {
        Error::RootKeyDevice {
            device: format!("token {:?} (serial {:?})", self.config.token, self.serial),
            reason,
        }
    }

    /// The object of root `epoch`, if the token holds it.
    fn find(
        &self,
        session: &Session,
        store_id: &[u8; 16],
        epoch: u32,
    ) -> Result<Option<ObjectHandle>> {
        if let Some(h) = self.handles.lock().get(&(*store_id, epoch)) {
            return Ok(Some(*h));
        }
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(device_label(&self.config.object, epoch).into_bytes()),
                Attribute::Id(device_id(store_id, epoch).to_vec()),
            ])
            .map_err(|e| self.error(format!("C_FindObjects: {e}")))?;
        match found.as_slice() {
            [] => Ok(None),
            [h] => {
                self.handles.lock().insert((*store_id, epoch), *h);
                Ok(Some(*h))
            }
            _ => Err(self.error(format!(
                "{} objects carry the label of root epoch {epoch}",
                found.len()
            ))),
        }
    }

    fn handle(&self, session: &Session, store_id: &[u8; 16], epoch: u32) -> Result<ObjectHandle> {
        self.find(session, store_id, epoch)?
            .ok_or_else(|| Error::RootKey {
                epoch,
                reason: format!(
                    "not held by {} (destroyed by a purge, or not this store's token)",
                    self.describe_token()
                ),
            })
    }

    fn describe_token(&self) -> String {
        format!(
            "pkcs11 token {:?} (serial {:?}) objects {:?}",
            self.config.token, self.serial, self.config.object
        )
    }

    /// Runs `f` on the handle of root `epoch`; a handle the token no
    /// longer knows (the object destroyed or re-created by another
    /// process) is looked up again once.
    fn with_handle<T>(
        &self,
        session: &Session,
        store_id: &[u8; 16],
        epoch: u32,
        f: impl Fn(ObjectHandle) -> Result<T>,
    ) -> Result<T> {
        let h = self.handle(session, store_id, epoch)?;
        match f(h) {
            Err(Error::RootKeyDevice { reason, .. }) if reason.starts_with(STALE_HANDLE) => {
                self.handles.lock().remove(&(*store_id, epoch));
                f(self.handle(session, store_id, epoch)?)
            }
            other => other,
        }
    }

    /// `C_Decrypt` of a wrapped key; `None` when it does not authenticate.
    /// SoftHSM2 reports a tag mismatch as `CKR_GENERAL_ERROR`, which a
    /// faulty device reports too: that answer counts as "does not
    /// authenticate" only when the device then wraps and unwraps a test
    /// key under the same root correctly.
    fn decrypt(
        &self,
        session: &Session,
        store_id: &[u8; 16],
        epoch: u32,
        ad: &[u8],
        sealed: &[u8; 60],
    ) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let attempt = |h: ObjectHandle, sealed: &[u8; 60], ad: &[u8]| {
            let mut iv = [0u8; 12];
            iv.copy_from_slice(&sealed[..12]);
            let params = GcmParams::new(&mut iv, ad, 128.into())
                .map_err(|e| self.error(format!("GCM parameters: {e}")))?;
            Ok::<_, Error>(session.decrypt(&Mechanism::AesGcm(params), h, &sealed[12..]))
        };
        self.with_handle(session, store_id, epoch, |h| match attempt(h, sealed, ad)? {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                let arr: [u8; 32] = plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| self.error(format!("unwrapped {} bytes, not 32", plain.len())))?;
                Ok(Some(Zeroizing::new(arr)))
            }
            Err(cryptoki::error::Error::Pkcs11(
                RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                _,
            )) => Ok(None),
            Err(cryptoki::error::Error::Pkcs11(RvError::GeneralError, _)) => {
                // Is the device sound? A fresh test key round trip says.
                let mut probe = [0u8; 32];
                os_random(&mut probe)?;
                let mut iv = [0u8; 12];
                os_random(&mut iv)?;
                let ct = {
                    let params = GcmParams::new(&mut iv, b"lethedb/probe", 128.into())
                        .map_err(|e| self.error(format!("GCM parameters: {e}")))?;
                    session
                        .encrypt(&Mechanism::AesGcm(params), h, &probe)
                        .map_err(|e| self.p11("C_Encrypt (probe)", e))?
                };
                let mut sealed_probe = [0u8; 60];
                if ct.len() != 48 {
                    return Err(self.error("C_Decrypt failed and the device's probe failed too".into()));
                }
                sealed_probe[..12].copy_from_slice(&iv);
                sealed_probe[12..].copy_from_slice(&ct);
                match attempt(h, &sealed_probe, b"lethedb/probe")? {
                    Ok(back) if back.as_slice() == probe => Ok(None),
                    _ => Err(self.error(
                        "C_Decrypt failed (CKR_GENERAL_ERROR) and a test key does not round-trip: the device is failing".into(),
                    )),
                }
            }
            Err(e) => Err(self.p11("C_Decrypt", e)),
        })
    }

    /// The attributes a test checks: (sensitive, extractable, token) of
    /// root `epoch`.
    #[doc(hidden)]
    pub fn key_attributes(&self, store_id: &[u8; 16], epoch: u32) -> Result<(bool, bool, bool)> {
        let session = self.session.lock();
        let h = self.handle(&session, store_id, epoch)?;
        let attrs = session
            .get_attributes(
                h,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Token,
                ],
            )
            .map_err(|e| self.error(format!("C_GetAttributeValue: {e}")))?;
        let (mut s, mut x, mut t) = (false, true, false);
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => s = v,
                Attribute::Extractable(v) => x = v,
                Attribute::Token(v) => t = v,
                _ => {}
            }
        }
        Ok((s, x, t))
    }
}

impl RootKeyDevice for Pkcs11RootKeyStore {
    fn epochs(&self, store_id: &[u8; 16]) -> Result<Vec<u32>> {
        let session = self.session.lock();
        let handles = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
            ])
            .map_err(|e| self.error(format!("C_FindObjects: {e}")))?;
        let prefix = format!("{}.", self.config.object);
        let mut out = Vec::new();
        for h in handles {
            let attrs = session
                .get_attributes(h, &[AttributeType::Label, AttributeType::Id])
                .map_err(|e| self.error(format!("C_GetAttributeValue: {e}")))?;
            let (mut label, mut id) = (Vec::new(), Vec::new());
            for a in attrs {
                match a {
                    Attribute::Label(l) => label = l,
                    Attribute::Id(i) => id = i,
                    _ => {}
                }
            }
            let Some(epoch) = std::str::from_utf8(&label)
                .ok()
                .and_then(|l| l.strip_prefix(&prefix))
                .and_then(|e| e.parse::<u32>().ok())
            else {
                continue;
            };
            if id == device_id(store_id, epoch) {
                out.push(epoch);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn generate(&self, store_id: &[u8; 16], epoch: u32) -> Result<()> {
        let session = self.session.lock();
        // Asked of the token, not the handle cache: another process may
        // have destroyed the object.
        self.handles.lock().remove(&(*store_id, epoch));
        if self.find(&session, store_id, epoch)?.is_some() {
            return Err(Error::RootKey {
                epoch,
                reason: format!(
                    "already held in {}; root versions are never overwritten",
                    self.describe_token()
                ),
            });
        }
        self.step()?;
        let h = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Derive(false),
                    Attribute::Modifiable(false),
                    Attribute::Label(device_label(&self.config.object, epoch).into_bytes()),
                    Attribute::Id(device_id(store_id, epoch).to_vec()),
                ],
            )
            .map_err(|e| self.error(format!("C_GenerateKey: {e}")))?;
        self.handles.lock().insert((*store_id, epoch), h);
        Ok(())
    }

    fn wrap(&self, store_id: &[u8; 16], epoch: u32, ad: &[u8], key: &[u8; 32]) -> Result<[u8; 60]> {
        let session = self.session.lock();
        let out = self.with_handle(&session, store_id, epoch, |h| {
            let mut iv = [0u8; 12];
            os_random(&mut iv)?;
            let ct = {
                // A token in FIPS mode may generate the IV itself and write
                // it back into this buffer: the IV stored is what the
                // buffer holds after the call.
                let params = GcmParams::new(&mut iv, ad, 128.into())
                    .map_err(|e| self.error(format!("GCM parameters: {e}")))?;
                session
                    .encrypt(&Mechanism::AesGcm(params), h, key)
                    .map_err(|e| self.p11("C_Encrypt", e))?
            };
            if ct.len() != 48 {
                return Err(self.error(format!("AES-GCM returned {} bytes, not 48", ct.len())));
            }
            let mut out = [0u8; 60];
            out[..12].copy_from_slice(&iv);
            out[12..].copy_from_slice(&ct);
            Ok(out)
        })?;
        // Checked before it is stored: a wrapped key that does not open is
        // caught here, not at the next open.
        match self.decrypt(&session, store_id, epoch, ad, &out)? {
            Some(back) if *back == *key => Ok(out),
            _ => Err(self.error(format!(
                "a key wrapped under root epoch {epoch} does not unwrap to itself"
            ))),
        }
    }

    fn unwrap(
        &self,
        store_id: &[u8; 16],
        epoch: u32,
        ad: &[u8],
        sealed: &[u8; 60],
    ) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let session = self.session.lock();
        self.decrypt(&session, store_id, epoch, ad, sealed)
    }

    fn destroy(&self, store_id: &[u8; 16], epochs: &[u32]) -> Result<()> {
        let session = self.session.lock();
        for &epoch in epochs {
            self.handles.lock().remove(&(*store_id, epoch));
            let Some(h) = self.find(&session, store_id, epoch)? else {
                continue;
            };
            self.step()?;
            session
                .destroy_object(h)
                .map_err(|e| self.error(format!("C_DestroyObject (epoch {epoch}): {e}")))?;
            self.handles.lock().remove(&(*store_id, epoch));
        }
        Ok(())
    }

    fn location(&self) -> RootLocation {
        RootLocation::Pkcs11 {
            token: self.config.token.clone(),
            serial: self.serial.clone(),
            object: self.config.object.clone(),
        }
    }
}

impl RootKeys {
    /// The roots a command-line argument names: an RFC 7512 `pkcs11:` URI
    /// (a [`crate::Pkcs11RootKeyStore`], opened and logged in now) or the
    /// path of a root key file.
    ///
    /// ```
    /// let r = lethedb::RootKeys::from_spec("/var/lib/crm.rootkeys")?;
    /// assert!(!r.is_device());
    /// assert!(lethedb::RootKeys::from_spec("pkcs11:token=t;object=o?module-path=/m.so&pin-value=1").is_err());
    /// # Ok::<_, lethedb::Error>(())
    /// ```
    pub fn from_spec(spec: &str) -> Result<RootKeys> {
        if spec.starts_with("pkcs11:") {
            Ok(RootKeys::Device(Arc::new(Pkcs11RootKeyStore::from_uri(
                spec,
            )?)))
        } else {
            Ok(RootKeys::Sealed(Arc::new(FileRootKeyStore::new(spec))))
        }
    }
}
