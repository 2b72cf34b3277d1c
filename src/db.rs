//! The public database handle: a thin facade over the engine.
//!
//! Longer than 600 lines: this is the public API, one method per
//! operation, each with its documentation and an example; the bodies are
//! one call into the domain modules.

use std::path::Path;
use std::sync::Arc;

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::crypto::KeyProvider;
use crate::domain::audit::{self, AuditRecord, AuditReport};
use crate::domain::consent::{self, ConsentRecord, ProcessingFlags, PurposeRead};
use crate::domain::erasure::{
    self, BackupInfo, ErasureReceipt, PurgeReport, RestoreReport, RetentionReport,
};
use crate::domain::identity::{self, Identifier, IdentityConfig, MergeInfo, ResolveOutcome};
use crate::domain::profiles::{self, Profile, ProfileBatch, Update};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::storage::columns::{Erasures, Profiles, StoreHeaders};
use crate::storage::records;
use crate::storage::{ColumnStats, MemoryUsage, StorageConfig, Store};
use crate::types::{MergeId, ProfileId, Schema, Timestamp};

/// An open lethedb store. `Send + Sync`: share it across threads in an `Arc`.
///
/// ```
/// use lethedb::{Db, MemoryKeyProvider, Options, Update, Value};
/// let dir = tempfile::tempdir()?;
/// let key = MemoryKeyProvider::generate()?;
/// let db = Db::open(dir.path(), &key, Options::new().create_if_missing(true))?;
/// let id = db.create(Update::new().set("email", "ada@example.com").set("age", 36))?;
/// db.upsert(&id, Update::new().set("city", "London"))?;
/// let p = db.get(&id)?;
/// assert_eq!(p.fields["email"], Value::from("ada@example.com"));
/// assert_eq!(p.fields.len(), 3);
/// Ok::<_, lethedb::Error>(())
/// ```
pub struct Db {
    pub(crate) engine: Arc<Engine>,
}

/// Figures for operators: per column family and for the whole directory.
#[derive(Clone, Debug)]
pub struct StoreStats {
    /// Per column family.
    pub columns: Vec<ColumnStats>,
    /// Bytes of every file under the store directory.
    pub disk_bytes: u64,
    /// Memory RocksDB holds for the store (block cache, table readers,
    /// memtables).
    pub memory: MemoryUsage,
}

fn dir_bytes(path: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(|e| Error::io_at(path, e))? {
        let entry = entry.map_err(|e| Error::io_at(path, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::io_at(entry.path(), e))?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

impl Db {
    /// Opens the store at `path`, or creates it when `options` say so.
    ///
    /// Fails with [`Error::StoreNotFound`] when there is no store and creation
    /// was not requested, [`Error::NotAStore`] for a foreign RocksDB
    /// directory, [`Error::UnsupportedFormat`] for a newer format, and
    /// [`Error::WrongKey`] when the master key does not match.
    pub fn open(path: impl AsRef<Path>, keys: &dyn KeyProvider, options: Options) -> Result<Db> {
        let restoring = options.restoring;
        let engine = Engine::open(path, keys, options)?;
        if !restoring {
            // Erasures left pending past their deadline (e.g. by a crash)
            // are purged now.
            erasure::auto_purge(&engine);
        }
        Ok(Db {
            engine: Arc::new(engine),
        })
    }

    /// Whether `path` holds a store's RocksDB instance (a `CURRENT` file):
    /// the check the CLI makes before opening or creating.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// assert!(!lethedb::Db::store_exists(dir.path()));
    /// Ok::<_, std::io::Error>(())
    /// ```
    pub fn store_exists(path: impl AsRef<Path>) -> bool {
        crate::storage::is_store_dir(path.as_ref())
    }

    /// Directory of the store.
    pub fn path(&self) -> &Path {
        self.engine.path()
    }

    /// Random id of this store, fixed at creation (hex).
    pub fn store_id(&self) -> String {
        self.engine.store_id()
    }

    /// The current schema.
    pub fn schema(&self) -> Schema {
        self.engine.schema()
    }

    /// Replaces and persists the schema. Applies to later writes; values
    /// already stored keep the protection they were written with.
    pub fn set_schema(&self, schema: Schema) -> Result<()> {
        self.engine.set_schema(schema)
    }

    /// The identity settings (normalisation and merge rules).
    pub fn identity_config(&self) -> IdentityConfig {
        self.engine.identity_config()
    }

    /// Replaces and persists the identity settings. Changing normalisation
    /// does not re-index identifiers already stored.
    pub fn set_identity_config(&self, config: IdentityConfig) -> Result<()> {
        self.engine.set_identity_config(config)
    }

    /// Finds or creates the profile of a set of identifiers and applies
    /// `update` to it, in one atomic write:
    /// * no identifier known: a new profile with all of them;
    /// * all known and on one profile: the unknown ones are attached;
    /// * known on several profiles: they are merged into the oldest
    ///   (fields: latest write wins), and the others redirect to it.
    ///
    /// Invalid, blocked and limit-breaking identifiers are reported in
    /// [`ResolveOutcome::rejected`]; when a limit would be exceeded the
    /// lowest-priority identifier of the request is dropped and resolution
    /// retried (see [`MergeRules`](crate::MergeRules)).
    ///
    /// ```
    /// use lethedb::{Db, Identifier, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let a = db.resolve(&[Identifier::email("ada@example.com")], Update::new().set("name", "Ada"))?;
    /// let b = db.resolve(&[Identifier::phone("+44 20 7183 8750")], Update::new())?;
    /// // A later event links both identifiers: the two profiles merge.
    /// let c = db.resolve(&[Identifier::email("ADA@example.com"), Identifier::phone("+442071838750")], Update::new())?;
    /// assert_eq!(c.merges.len(), 1);
    /// assert_eq!(db.lookup(&Identifier::phone("+442071838750"))?, a.profile);
    /// db.unmerge(&c.merges[0])?;
    /// assert_eq!(db.lookup(&Identifier::phone("+442071838750"))?, b.profile);
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn resolve(&self, identifiers: &[Identifier], update: Update) -> Result<ResolveOutcome> {
        let _tree = self.engine.keys.shared();
        identity::resolve(&self.engine, identifiers, update, &[], "shared_identifier")
    }

    /// [`Db::resolve`] that also records consent records for the resolved
    /// profile, in the same atomic write (used by Segment ingest).
    pub fn resolve_with_consents(
        &self,
        identifiers: &[Identifier],
        update: Update,
        consents: &[ConsentRecord],
    ) -> Result<ResolveOutcome> {
        let _tree = self.engine.keys.shared();
        identity::resolve(
            &self.engine,
            identifiers,
            update,
            consents,
            "shared_identifier",
        )
    }

    /// Segment-style `alias`: links `previous_id` (a user id or an anonymous
    /// id already seen, else taken as an anonymous id) to `user_id`, merging
    /// their profiles if both exist.
    pub fn alias(&self, previous_id: &str, user_id: &str) -> Result<ResolveOutcome> {
        let _tree = self.engine.keys.shared();
        self.alias_with_consents(previous_id, user_id, &[])
    }

    /// [`Db::alias`] that also records consent records, in the same atomic write.
    pub fn alias_with_consents(
        &self,
        previous_id: &str,
        user_id: &str,
        consents: &[ConsentRecord],
    ) -> Result<ResolveOutcome> {
        let _tree = self.engine.keys.shared();
        let previous = if self
            .lookup(&Identifier::user_id(previous_id))
            .ok()
            .flatten()
            .is_some()
        {
            Identifier::user_id(previous_id)
        } else {
            Identifier::anonymous_id(previous_id)
        };
        identity::resolve(
            &self.engine,
            &[Identifier::user_id(user_id), previous],
            Update::new(),
            consents,
            "alias",
        )
    }

    /// The profile an identifier belongs to (following merges), if any.
    /// One keyed hash and one index read.
    pub fn lookup(&self, identifier: &Identifier) -> Result<Option<ProfileId>> {
        let _tree = self.engine.keys.shared();
        identity::lookup(&self.engine, identifier)
    }

    /// Undoes a merge: both profiles are restored with their own
    /// identifiers and the values each contributed (see docs/design.md,
    /// "Unmerge"). Returns (survivor, restored profile).
    pub fn unmerge(&self, merge_id: &MergeId) -> Result<(ProfileId, ProfileId)> {
        let _tree = self.engine.keys.shared();
        identity::unmerge(&self.engine, merge_id)
    }

    /// Merges a profile took part in, oldest first.
    pub fn merges(&self, id: &ProfileId) -> Result<Vec<MergeInfo>> {
        let _tree = self.engine.keys.shared();
        identity::merges_of(&self.engine, id)
    }

    /// The identifiers attached to a profile (raw values, decrypted).
    pub fn identifiers(&self, id: &ProfileId) -> Result<Vec<Identifier>> {
        let _tree = self.engine.keys.shared();
        identity::identifiers_of(&self.engine, id)
    }

    /// Appends a consent record (history is append-only) and updates the
    /// current state of its purpose when the record is at least as new as it.
    ///
    /// ```
    /// use lethedb::{ConsentRecord, ConsentStatus, Db, FieldClass, MemoryKeyProvider, Options, Schema, Update, Value};
    /// let dir = tempfile::tempdir()?;
    /// let schema = Schema::new().allow("email", "email_marketing");
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true).schema(schema))?;
    /// let id = db.create(Update::new().set("email", "ada@example.com").set("ssn", "123"))?;
    /// assert!(db.get_for_purpose(&id, "email_marketing")?.fields.is_empty());
    /// db.record_consent(&id, ConsentRecord::new("email_marketing", ConsentStatus::Granted))?;
    /// let read = db.get_for_purpose(&id, "email_marketing")?;
    /// assert_eq!(read.fields["email"], Value::from("ada@example.com"));
    /// assert!(read.withheld.contains_key("ssn"));
    /// assert_eq!(db.consented_profiles("email_marketing")?, vec![id]);
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn record_consent(&self, id: &ProfileId, record: ConsentRecord) -> Result<()> {
        let _tree = self.engine.keys.shared();
        consent::record(&self.engine, id, &[record]).map(drop)
    }

    /// Appends several consent records in one atomic write.
    pub fn record_consents(&self, id: &ProfileId, records: &[ConsentRecord]) -> Result<()> {
        let _tree = self.engine.keys.shared();
        consent::record(&self.engine, id, records).map(drop)
    }

    /// Current state of one purpose (one point read), if any was recorded.
    /// Check [`ConsentRecord::allows_at`]: an expired grant does not allow processing.
    pub fn consent(&self, id: &ProfileId, purpose: &str) -> Result<Option<ConsentRecord>> {
        let _tree = self.engine.keys.shared();
        consent::current_one(&self.engine, id, purpose)
    }

    /// Current states of every purpose recorded for the profile.
    pub fn consents(&self, id: &ProfileId) -> Result<Vec<ConsentRecord>> {
        let _tree = self.engine.keys.shared();
        consent::current(&self.engine, id)
    }

    /// The state of a purpose at time `at`, from the profile's history.
    pub fn consent_at(
        &self,
        id: &ProfileId,
        purpose: &str,
        at: Timestamp,
    ) -> Result<Option<ConsentRecord>> {
        let _tree = self.engine.keys.shared();
        consent::at(&self.engine, id, purpose, at)
    }

    /// Full consent history, including that of profiles merged into this
    /// one, oldest recording first; each entry names the profile it was recorded for.
    pub fn consent_history(&self, id: &ProfileId) -> Result<Vec<(ProfileId, ConsentRecord)>> {
        let _tree = self.engine.keys.shared();
        consent::history(&self.engine, id)
    }

    /// Profiles with `purpose` currently granted (and not expired), from the
    /// consent index: no scan of all profiles.
    pub fn consented_profiles(&self, purpose: &str) -> Result<Vec<ProfileId>> {
        let _tree = self.engine.keys.shared();
        consent::who(&self.engine, purpose)
    }

    /// Restriction (Art. 18) and objection (Art. 21) flags.
    pub fn processing_flags(&self, id: &ProfileId) -> Result<ProcessingFlags> {
        let _tree = self.engine.keys.shared();
        consent::flags(&self.engine, id)
    }

    /// Sets the restriction and objection flags.
    pub fn set_processing_flags(&self, id: &ProfileId, flags: ProcessingFlags) -> Result<()> {
        let _tree = self.engine.keys.shared();
        consent::set_flags(&self.engine, id, flags)
    }

    /// Reads the fields `purpose` may use now: fields declared for the
    /// purpose (`Schema::allow`) under a granted, unexpired state (sensitive
    /// fields only with legal basis `consent`), plus non-personal fields;
    /// nothing when processing is restricted or objected to. The result
    /// names every withheld field and why.
    pub fn get_for_purpose(&self, id: &ProfileId, purpose: &str) -> Result<PurposeRead> {
        let _tree = self.engine.keys.shared();
        consent::read_for_purpose(&self.engine, id, purpose)
    }

    /// Decodes a TC string and records its purposes (`tcf:1`…`tcf:11`) for the
    /// profile with the string as proof; returns the records as stored
    /// (`recorded_at` set), in purpose order.
    pub fn import_tcf(&self, id: &ProfileId, tc_string: &str) -> Result<Vec<ConsentRecord>> {
        let _tree = self.engine.keys.shared();
        let tc = consent::tcf::decode(tc_string)?;
        let records = consent::records_from_tcf(&tc, tc_string);
        consent::record(&self.engine, id, &records)
    }

    /// Creates a profile with a fresh random id and returns the id.
    pub fn create(&self, update: Update) -> Result<ProfileId> {
        let _tree = self.engine.keys.shared();
        let mut batch = ProfileBatch::new();
        let id = batch.create(update)?;
        self.apply(batch)?;
        Ok(id)
    }

    /// Sets and removes fields of `id` (only the named fields change),
    /// creating the profile when it does not exist.
    pub fn upsert(&self, id: &ProfileId, update: Update) -> Result<()> {
        let _tree = self.engine.keys.shared();
        let mut batch = ProfileBatch::new();
        batch.upsert(*id, update);
        self.apply(batch)
    }

    /// Removes one field of an existing profile (no error if the field is absent).
    ///
    /// This is a logical delete: older copies of the ciphertext stay
    /// decryptable until their key is destroyed by erasure (`forget_field`).
    pub fn delete_field(&self, id: &ProfileId, name: &str) -> Result<()> {
        let _tree = self.engine.keys.shared();
        let mut batch = ProfileBatch::new();
        batch.delete_field(*id, name);
        self.apply(batch)
    }

    /// Applies a multi-profile batch as one atomic write.
    pub fn apply(&self, batch: ProfileBatch) -> Result<()> {
        let _tree = self.engine.keys.shared();
        profiles::apply(&self.engine, batch)
    }

    /// Reads every field of a profile.
    pub fn get(&self, id: &ProfileId) -> Result<Profile> {
        let _tree = self.engine.keys.shared();
        profiles::read(&self.engine, id, None)
    }

    /// Reads the named fields of a profile; names it does not have are skipped.
    pub fn get_fields(&self, id: &ProfileId, names: &[&str]) -> Result<Profile> {
        let _tree = self.engine.keys.shared();
        profiles::read(&self.engine, id, Some(names))
    }

    /// Whether the profile exists (an erased profile does not; a merged-away
    /// id does, it redirects).
    pub fn exists(&self, id: &ProfileId) -> Result<bool> {
        let _tree = self.engine.keys.shared();
        Ok(self
            .engine
            .store
            .get::<Profiles>(id)?
            .is_some_and(|r| !matches!(r.record.status, records::RecordStatus::Erased { .. })))
    }

    /// Iterates the ids of every active profile in key order (ids merged
    /// into another profile are skipped; they still resolve through `get`).
    pub fn profile_ids(&self) -> Result<impl Iterator<Item = Result<ProfileId>> + '_> {
        Ok(self
            .engine
            .store
            .entries_raw::<Profiles>(&[])?
            .filter_map(|item| match item {
                Ok((id, bytes)) => match records::record_is_active(&bytes) {
                    Ok(true) => Some(Ok(id)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                },
                Err(e) => Some(Err(e)),
            }))
    }

    /// Flushes memtables to SST files and syncs the WAL.
    pub fn flush(&self) -> Result<()> {
        self.engine.store.flush()
    }

    /// Flushes and compacts every column family to the bottommost level.
    pub fn compact(&self) -> Result<()> {
        self.engine.store.compact()
    }

    /// Erases a person: the profile `id` resolves to and every profile
    /// merged into it. One atomic batch destroys their keyrings, replaces
    /// their records by tombstones, removes their blind-index entries,
    /// consent and merge records, suppresses their identifiers and appends
    /// the audit entry. From then on reads fail with
    /// [`Error::ProfileErased`], lookups find nothing and the ids are never
    /// provisioned again. Idempotent: forgetting again returns the first
    /// receipt with `already_erased` set.
    ///
    /// Old copies of the destroyed keys stay in SST files until
    /// [`Db::purge`] (run automatically by count and deadline, see
    /// [`Options::purge_deadline`]), which then issues the certificate.
    ///
    /// ```
    /// use lethedb::{Db, Error, Identifier, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.resolve(&[Identifier::email("ada@example.com")], Update::new().set("name", "Ada"))?.profile.unwrap();
    /// let receipt = db.forget(&id)?;
    /// assert!(matches!(db.get(&id), Err(Error::ProfileErased { .. })));
    /// assert_eq!(db.lookup(&Identifier::email("ada@example.com"))?, None);
    /// let purged = db.purge()?;
    /// assert_eq!(purged.erasures, vec![receipt.erasure_id.unwrap()]);
    /// lethedb::verify_certificate(&purged.certificates[0], &db.public_key()?)?;
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn forget(&self, id: &ProfileId) -> Result<ErasureReceipt> {
        erasure::forget(&self.engine, id)
    }

    /// Erases one field of a person (see [`Db::forget_fields`]).
    pub fn forget_field(&self, id: &ProfileId, field: &str) -> Result<ErasureReceipt> {
        erasure::forget_fields(&self.engine, &[*id], &[field], None)
    }

    /// Erases fields of a person by re-keying: each of the person's profiles
    /// holding one of the fields gets a new keyring, every other field and
    /// consent record is re-sealed under it, and the old keyring — the only
    /// key the erased values were sealed under — is destroyed. A field named
    /// like an identifier type (`email`, `phone`, ...) also removes that
    /// type's identifiers from the profile and the blind index.
    ///
    /// ```
    /// use lethedb::{Db, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new().set("name", "Ada").set("last_ip", "192.0.2.7"))?;
    /// db.forget_fields(&id, &["last_ip"])?;
    /// let p = db.get(&id)?;
    /// assert!(p.fields.contains_key("name") && !p.fields.contains_key("last_ip"));
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn forget_fields(&self, id: &ProfileId, fields: &[&str]) -> Result<ErasureReceipt> {
        erasure::forget_fields(&self.engine, &[*id], fields, None)
    }

    /// Makes erased key material physically absent from the store's live
    /// files (flush, WAL roll, targeted forced bottommost compaction of the
    /// touched key ranges, MANIFEST rewrite, wait for obsolete files) and
    /// issues one signed certificate per pending erasure.
    pub fn purge(&self) -> Result<PurgeReport> {
        erasure::purge(&self.engine)
    }

    /// Shape and state of the key tree: fan-out, depth, root epoch, root
    /// versions held, nodes per level, key cache, pending purges, backups.
    ///
    /// ```
    /// use lethedb::{Db, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path().join("db"), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new().set("name", "Ada"))?;
    /// assert_eq!(db.key_tree_status()?.root_epoch, 1);
    /// db.forget(&id)?;
    /// db.purge()?;
    /// let s = db.key_tree_status()?;
    /// assert_eq!((s.fanout, s.depth, s.root_epoch), (1024, 2, 2));
    /// assert_eq!(s.root_epochs_held, vec![2]);
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn key_tree_status(&self) -> Result<crate::KeyTreeStatus> {
        let _tree = self.engine.keys.shared();
        let mut s = self.engine.keys.status(&self.engine.store)?;
        s.pending_purges = self.engine.pending.lock().count;
        for item in self
            .engine
            .store
            .entries::<crate::storage::columns::Backups>(&[])?
        {
            let (_, b) = item?;
            s.backups.push((b.path, b.root_epoch));
        }
        s.root_co_located = self.engine.root_co_located;
        let ids = self.engine.ids.state();
        s.blind_index_generation = ids.generation;
        s.blind_index_rotating = ids.previous.is_some();
        Ok(s)
    }

    /// What opening the store found that its operator should know: where
    /// the roots live and whether that layout weakens erasure.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let keys = lethedb::MemoryKeyProvider::generate()?;
    /// let db = lethedb::Db::open(dir.path().join("db"), &keys, lethedb::Options::new().create_if_missing(true))?;
    /// let report = db.open_report();
    /// // The default root file `<DIR>.rootkeys` sits beside the store.
    /// assert!(report.root_co_located);
    /// assert_eq!(report.warnings.len(), 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_report(&self) -> OpenReport {
        let location = self.engine.keys.roots().location();
        let mut warnings = Vec::new();
        if self.engine.root_co_located {
            warnings.push(format!(
                "the root key file ({}) is on the store directory's file system: a snapshot or file-level backup of that volume keeps the roots a purge destroys, so erasure holds only against a copy of the store directory; put the roots on another device that is not backed up, or in an HSM (pkcs11:…)",
                self.engine.keys.roots().describe()
            ));
        }
        OpenReport {
            root_location: location,
            root_co_located: self.engine.root_co_located,
            warnings,
        }
    }

    /// Test hook: the next purge stops at `step` of the key-tree rotation
    /// with an error, leaving the store as a crash there would.
    #[doc(hidden)]
    #[cfg(feature = "testkit")]
    pub fn stop_rotation_at(&self, step: Option<crate::RotationStep>) {
        self.engine.keys.stop_rotation_at(step);
    }

    /// Number of items waiting for purge — erasures, and the re-keys of
    /// unmerge and `unsuppress` whose old versions purge retires — and when
    /// the oldest was requested.
    pub fn pending_erasures(&self) -> Result<(usize, Option<Timestamp>)> {
        erasure::pending_count(&self.engine)
    }

    /// Every registered backup (re-keyed by purges while registered).
    pub fn backups(&self) -> Result<Vec<erasure::RegisteredBackup>> {
        erasure::registered_backups(&self.engine)
    }

    /// Unregisters backup `number` (see [`Db::backups`]). Purges stop
    /// re-keying it, so its roots are destroyed first: the copy can no
    /// longer be decrypted or restored. For a backup that is gone, or one
    /// that has been taken out of reach for good.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let keys = lethedb::MemoryKeyProvider::generate()?;
    /// let db = lethedb::Db::open(dir.path().join("s"), &keys, lethedb::Options::new().create_if_missing(true))?;
    /// db.backup(dir.path().join("b"))?;
    /// let n = db.backups()?[0].number;
    /// assert_eq!(db.unregister_backup(n)?.root_epoch.is_some(), true);
    /// assert!(db.backups()?.is_empty());
    /// # Ok::<_, lethedb::Error>(())
    /// ```
    pub fn unregister_backup(&self, number: u64) -> Result<erasure::RegisteredBackup> {
        erasure::unregister_backup(&self.engine, number)
    }

    /// Why the last purge failed, until one succeeds. Automatic purges (at
    /// open, after `forget`, from the scheduler) never fail the call that
    /// ran them — the erasures stay pending and the next purge retries —
    /// so this is where their failure shows.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let keys = lethedb::MemoryKeyProvider::generate()?;
    /// let db = lethedb::Db::open(dir.path(), &keys, lethedb::Options::new().create_if_missing(true))?;
    /// assert_eq!(db.last_purge_error(), None);
    /// # Ok::<_, lethedb::Error>(())
    /// ```
    pub fn last_purge_error(&self) -> Option<String> {
        self.engine.purge_error.lock().clone()
    }

    /// Starts a thread that purges whenever the oldest pending erasure
    /// reaches [`Options::purge_deadline`]. It holds only a weak reference
    /// and ends when the last `Arc<Db>` is dropped.
    pub fn start_purge_scheduler(db: &Arc<Db>) -> std::thread::JoinHandle<()> {
        // A weak reference to the Db itself (not the engine), so that
        // `Arc::try_unwrap` on the caller's `Arc<Db>` refuses while a purge
        // of this thread runs, as before the engine existed.
        let weak = Arc::downgrade(db);
        let tick = (db.engine.purge_deadline / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        std::thread::spawn(move || loop {
            std::thread::sleep(tick);
            let Some(db) = weak.upgrade() else { return };
            // A failure is kept for `last_purge_error`; the thread keeps going.
            erasure::auto_purge(&db.engine);
        })
    }

    /// Every certificate issued so far, in erasure order (one-line JSON each).
    pub fn certificates(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for item in self.engine.store.entries::<Erasures>(&[])? {
            let (_, rec) = item?;
            if let Some(c) = rec.certificate {
                out.push(
                    String::from_utf8(c).map_err(|_| {
                        Error::corrupt("erasure record", "certificate is not UTF-8")
                    })?,
                );
            }
        }
        Ok(out)
    }

    /// The store's Ed25519 certificate public key (32 bytes).
    pub fn public_key(&self) -> Result<[u8; 32]> {
        self.engine
            .signer
            .as_ref()
            .map(|s| s.public_key())
            .ok_or_else(|| Error::Internal("store has no signing key".into()))
    }

    /// The pseudonymous subject reference (hex) the audit log and
    /// certificates use for the person holding `id`.
    pub fn subject_reference(&self, id: &ProfileId) -> Result<String> {
        Ok(crate::hex::encode(&self.engine.subject_ref(id)?))
    }

    /// Lifts the suppression of one identifier of a forgotten person;
    /// `false` when it was not suppressed.
    pub fn unsuppress(&self, identifier: &Identifier) -> Result<bool> {
        erasure::unsuppress(&self.engine, identifier)
    }

    /// Resolve requests rejected by suppression since this handle was opened.
    pub fn suppression_hits(&self) -> u64 {
        self.engine.suppression_hits.load(Ordering::Relaxed)
    }

    /// Verifies the audit log's hash chain and the keyed seal of its head,
    /// so a tail cut with the head rewritten fails with
    /// [`Error::AuditChain`] (the keyless [`verify_audit_log`] cannot see
    /// that; it reports `head_sealed: false`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let keys = lethedb::MemoryKeyProvider::generate()?;
    /// let db = lethedb::Db::open(dir.path(), &keys, lethedb::Options::new().create_if_missing(true))?;
    /// let report = db.verify_audit()?;
    /// assert!(report.head_sealed && report.entries >= 1);
    /// # Ok::<_, lethedb::Error>(())
    /// ```
    pub fn verify_audit(&self) -> Result<AuditReport> {
        audit::verify(&self.engine.store, Some(&self.engine.audit))
    }

    /// A signed checkpoint of the audit log as it is now: keep it outside
    /// the store; [`verify_audit_log_with_checkpoint`] later shows whether
    /// entries up to it were removed or rewritten (a cut tail with a
    /// rewritten head, which the chain alone cannot show).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let keys = lethedb::MemoryKeyProvider::generate()?;
    /// let db = lethedb::Db::open(dir.path(), &keys, lethedb::Options::new().create_if_missing(true))?;
    /// let checkpoint = db.audit_checkpoint()?;
    /// drop(db);
    /// let c = lethedb::verify_audit_log_with_checkpoint(dir.path(), &checkpoint, None)?;
    /// assert_eq!(c.format, "lethedb-audit-checkpoint/1");
    /// # Ok::<_, lethedb::Error>(())
    /// ```
    pub fn audit_checkpoint(&self) -> Result<String> {
        let signer = self
            .engine
            .signer
            .as_ref()
            .ok_or_else(|| Error::Internal("store opened without its signing key".into()))?;
        erasure::take_checkpoint(&self.engine.store, &self.engine.store_id(), signer)
    }

    /// Every audit entry, in order.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        audit::all(&self.engine.store)
    }

    /// One JSON bundle of everything held about the person `id` belongs to
    /// (GDPR Art. 15/20): fields, identifiers, consents and their history,
    /// merge lineage, audit entries about the subject.
    pub fn export(&self, id: &ProfileId) -> Result<serde_json::Value> {
        let _tree = self.engine.keys.shared();
        erasure::export(&self.engine, id)
    }

    /// Applies the schema's retention rules as of `now` (per-field
    /// `retention_days`, `inactive_profile_days`) through the erasure path,
    /// then purges; the report carries the certificates.
    pub fn run_retention(&self, now: Timestamp) -> Result<RetentionReport> {
        erasure::run_retention(&self.engine, now)
    }

    /// Writes a backup into the empty or new directory `dir` and registers
    /// it: later purges append their erasures to its ledger.
    pub fn backup(&self, dir: impl AsRef<Path>) -> Result<BackupInfo> {
        // The purge lock comes before the key-tree lock (docs/design.md,
        // "Concurrency"): `backup` takes both, in that order.
        erasure::backup(&self.engine, dir.as_ref())
    }

    /// Restores the backup in `from` into the new directory `to`, replays
    /// every erasure made after the backup was taken (from the backup's
    /// ledger) and purges, then returns the open store.
    pub fn restore(
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
        keys: &dyn KeyProvider,
        options: Options,
    ) -> Result<(Db, RestoreReport)> {
        let (engine, report) = erasure::restore(from.as_ref(), to.as_ref(), keys, options)?;
        Ok((
            Db {
                engine: Arc::new(engine),
            },
            report,
        ))
    }

    /// Rotates the identifier-index (blind-index) key, online: starts a
    /// rotation (or resumes one) and runs it to the end, calling
    /// `progress` after each step of 1 000 profiles. Every entry is
    /// re-keyed under a new random key; lookups, resolves, merges and
    /// erasures go on meanwhile (both keys are consulted until the end).
    /// Crash-safe and audited (`blind_index_rotation_started`,
    /// `…_finished`); see docs/design.md, "Blind-index rotation".
    ///
    /// ```
    /// use lethedb::{Db, Identifier, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let keys = MemoryKeyProvider::generate()?;
    /// let db = Db::open(dir.path().join("db"), &keys, Options::new().create_if_missing(true))?;
    /// let id = db.resolve(&[Identifier::email("ada@example.com")], Update::new())?.profile;
    /// let done = db.rotate_blind_index(|_| {})?;
    /// assert!(done.finished && done.generation == 2 && done.entries_moved == 1);
    /// assert_eq!(db.lookup(&Identifier::email("ada@example.com"))?, id);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate_blind_index(
        &self,
        mut progress: impl FnMut(&crate::BlindIndexRotation),
    ) -> Result<crate::BlindIndexRotation> {
        let mut total = crate::BlindIndexRotation::default();
        loop {
            let s = self.rotate_blind_index_step(1000)?;
            total.generation = s.generation;
            total.profiles += s.profiles;
            total.entries_moved += s.entries_moved;
            total.finished = s.finished;
            progress(&total);
            if s.finished {
                return Ok(total);
            }
        }
    }

    /// One step of a blind-index rotation (started if none runs): the
    /// next `max_profiles` profiles re-indexed, for embedders that drive
    /// it from their own scheduler. Returns `finished` once the old key is
    /// gone.
    pub fn rotate_blind_index_step(
        &self,
        max_profiles: usize,
    ) -> Result<crate::BlindIndexRotation> {
        identity::rotation::start(&self.engine)?;
        let s = identity::rotation::step(&self.engine, max_profiles)?;
        if s.finished {
            identity::rotation::compact_after(&self.engine)?;
        }
        Ok(s)
    }

    /// Rewrites what the store still holds in record format v1 as format
    /// v2 (docs/design.md, "Upgrading to format v2"), online, calling
    /// `progress` after each step of 256 profiles. Writes are v2 already,
    /// so a store in use upgrades lazily; this finishes the job. Crash-safe
    /// (each step is one atomic batch; a rerun skips what is done).
    ///
    /// ```
    /// use lethedb::{Db, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let keys = MemoryKeyProvider::generate()?;
    /// let db = Db::open(dir.path().join("db"), &keys, Options::new().create_if_missing(true))?;
    /// db.create(Update::new().set("email", "ada@example.com"))?;
    /// let done = db.upgrade(|_| {})?;
    /// assert!(done.finished && done.profiles == 1 && done.profiles_rewritten == 0);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn upgrade(
        &self,
        mut progress: impl FnMut(&crate::UpgradeProgress),
    ) -> Result<crate::UpgradeProgress> {
        let mut total = crate::UpgradeProgress::default();
        let mut from = None;
        loop {
            let s = self.upgrade_step(from, crate::domain::upgrade::STEP)?;
            total.profiles += s.profiles;
            total.profiles_rewritten += s.profiles_rewritten;
            total.index_entries_rewritten += s.index_entries_rewritten;
            total.next = s.next;
            total.finished = s.finished;
            progress(&total);
            if s.finished {
                // A whole pass from the start: nothing of format v1 is
                // left, and from now on nothing of format v1 is read.
                crate::domain::upgrade::mark_v2_only(&self.engine)?;
                return Ok(total);
            }
            from = s.next;
        }
    }

    /// One step of [`Db::upgrade`]: up to `max_profiles` profiles from
    /// `from` (the first when `None`); pass the returned `next` to the next
    /// step. The identity index is upgraded by the last step.
    pub fn upgrade_step(
        &self,
        from: Option<ProfileId>,
        max_profiles: usize,
    ) -> Result<crate::UpgradeProgress> {
        crate::domain::upgrade::step(&self.engine, from, max_profiles)
    }

    /// Rotates the master key of the (closed) store at `path` from `old`
    /// to `new`, re-wrapping everything the master key protects — key
    /// check, roots (moved to a new epoch; the old ones destroyed),
    /// signing key, key set, audit seal, and every registered backup's
    /// copy and ledger — without rewriting a profile. Store `new` durably
    /// before calling: once step A commits, only `new` opens the store. A
    /// crash anywhere is finished by calling again with the same two keys
    /// (until then the store refuses to open). Audited
    /// (`master_key_rotated`, `master_key_rotation_finished`).
    ///
    /// ```
    /// use lethedb::{Db, MemoryKeyProvider, Options};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("db");
    /// let old = MemoryKeyProvider::generate()?;
    /// let db = Db::open(&path, &old, Options::new().create_if_missing(true))?;
    /// let id = db.create(lethedb::Update::new().set("name", "Ada"))?;
    /// drop(db);
    /// let new = MemoryKeyProvider::generate()?;
    /// let report = Db::rotate_master(&path, &old, &new, Options::new())?;
    /// assert_eq!(report.root_epochs_destroyed, vec![report.old_root_epoch]);
    /// assert!(matches!(Db::open(&path, &old, Options::new()), Err(lethedb::Error::WrongKey)));
    /// let db = Db::open(&path, &new, Options::new())?;
    /// assert_eq!(db.get(&id)?.fields["name"], lethedb::Value::from("Ada"));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate_master(
        path: impl AsRef<Path>,
        old: &dyn KeyProvider,
        new: &dyn KeyProvider,
        options: Options,
    ) -> Result<crate::MasterRotationReport> {
        erasure::master_key::rotate_master(path.as_ref(), old, new, options)
    }

    #[doc(hidden)]
    #[cfg(feature = "testkit")]
    /// Test hook (feature `testkit` only): how many batches were written
    /// with a synced WAL (rotations, erasures) since open.
    pub fn debug_synced_writes(&self) -> u64 {
        self.engine
            .store
            .synced_writes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[cfg(feature = "testkit")]
    /// Test hook (feature `testkit` only): rewrites profile `id` and what
    /// belongs to it as record format v1 did, to build stores of mixed
    /// formats (what a store written by an older build holds).
    pub fn debug_downgrade_to_v1(&self, id: &ProfileId) -> Result<()> {
        crate::domain::upgrade::downgrade(&self.engine, id)
    }

    #[cfg(feature = "testkit")]
    /// Test hook (feature `testkit` only): the on-disk key material of a profile — its stored
    /// keyring value, its raw keyring seed, and the blind-index keys of its
    /// identifiers — so remanence tests can scan files for them.
    pub fn debug_key_material(&self, id: &ProfileId) -> Result<Vec<Vec<u8>>> {
        let _tree = self.engine.keys.shared();
        let mut out = Vec::new();
        if let Some(raw) = self
            .engine
            .store
            .get_raw::<crate::storage::columns::Keyrings>(id)?
        {
            out.push(raw);
        }
        let w = profiles::load_active(&self.engine, id)?;
        // Format v2: the wrapped keyring inside the record.
        out.push(w.wrapped.sealed.to_vec());
        out.push(w.keyring.seed_bytes().to_vec());
        for i in identity::stored::decode_ids(&self.engine, &w)? {
            for key in self.engine.ids.keys(i.id_type.name(), &i.normalized)? {
                out.push(
                    <crate::storage::columns::IdentityIndex as crate::storage::columns::Keyspace>::key(
                        &key,
                    ),
                );
            }
        }
        Ok(out)
    }

    /// Counts and bytes per column family, and bytes on disk.
    pub fn stats(&self) -> Result<StoreStats> {
        Ok(StoreStats {
            columns: self.engine.store.column_stats()?,
            disk_bytes: dir_bytes(self.path())?,
            memory: self.engine.store.memory_usage()?,
        })
    }
}

/// Verifies the audit log of the store at `path` without its master key
/// (the log is plaintext and PII-free). Opens the store read-only. Without
/// the key the head's seal cannot be checked (`head_sealed: false`): use
/// [`Db::verify_audit`] or a checkpoint
/// ([`verify_audit_log_with_checkpoint`]) to detect a cut tail.
pub fn verify_audit_log(path: impl AsRef<Path>) -> Result<AuditReport> {
    let store = open_keyless(path.as_ref())?;
    audit::verify(&store, None)
}

/// Verifies the audit log of the store at `path` (read-only, no master key)
/// against a checkpoint from [`Db::audit_checkpoint`]: the checkpoint's
/// signature (by `public_key` when given, else by the key it names), its
/// store id, and that the log still holds the checkpointed entry with its
/// hash and chains on from it. A tail cut below the checkpoint fails with
/// [`Error::AuditChain`].
pub fn verify_audit_log_with_checkpoint(
    path: impl AsRef<Path>,
    checkpoint: &str,
    public_key: Option<&[u8; 32]>,
) -> Result<erasure::AuditCheckpoint> {
    let (store, store_id) = open_keyless_with_id(path.as_ref())?;
    erasure::verify_checkpoint(&store, &store_id, checkpoint, public_key)
}

/// Verifies a certificate against `public_key` and its position in the
/// audit log of the store at `path` (opened read-only, no master key): the
/// chain verifies, the certified entry has the certified hash, and the
/// store id matches.
pub fn verify_certificate_in_store(
    path: impl AsRef<Path>,
    certificate: &str,
    public_key: &[u8; 32],
) -> Result<erasure::CertificateCheck> {
    let check = erasure::verify_certificate(certificate, public_key)?;
    let (store, store_id) = open_keyless_with_id(path.as_ref())?;
    if store_id != check.certificate.store_id {
        return Err(Error::InvalidCertificate("issued by another store".into()));
    }
    erasure::check_chain_position(&store, &check.certificate)?;
    Ok(check)
}

/// `open_keyless`, and the store's id (hex) from its header.
fn open_keyless_with_id(path: &Path) -> Result<(Store, String)> {
    let store = open_keyless(path)?;
    let header = store
        .get::<StoreHeaders>(&())?
        .ok_or_else(|| Error::NotAStore {
            path: path.to_path_buf(),
        })?;
    let id = crate::hex::encode(&header.store_id);
    Ok((store, id))
}

fn open_keyless(path: &Path) -> Result<Store> {
    if !crate::storage::is_store_dir(path) {
        return Err(Error::StoreNotFound {
            path: path.to_path_buf(),
        });
    }
    Store::open_read_only(path, &StorageConfig::new(8 << 20, 1 << 20))
}

/// For unit tests inside the crate: a new store in a temporary directory
/// (random master key) holding one profile, `{"plan": "pro"}`.
#[cfg(test)]
pub(crate) fn scratch_store() -> (tempfile::TempDir, Db, ProfileId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = crate::MemoryKeyProvider::generate().expect("key");
    let db = Db::open(dir.path(), &keys, Options::new().create_if_missing(true)).expect("open");
    let id = db.create(Update::new().set("plan", "pro")).expect("create");
    (dir, db, id)
}

/// What opening a store found ([`Db::open_report`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// Where the key tree's roots live.
    pub root_location: crate::RootLocation,
    /// The root key file shares the store directory's file system.
    pub root_co_located: bool,
    /// Messages for the operator (the CLI prints them on stderr).
    pub warnings: Vec<String>,
}
