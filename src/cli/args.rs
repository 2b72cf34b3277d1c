//! The command line's shape: every command, sub-command and argument (clap).
//!
//! Longer than 600 lines: it is one declaration per command and argument,
//! each with the help text clap prints; split, the command tree would be
//! harder to read as a whole.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use lethedb::{Db, Identifier, ProfileId};

use super::output::Failure;

#[derive(Parser)]
#[command(
    name = "lethedb",
    version,
    about = "Encrypted profile store with provable erasure"
)]
pub(super) struct Cli {
    /// Store directory.
    #[arg(long, global = true, env = "LETHEDB_DB")]
    pub(super) db: Option<PathBuf>,
    /// Master key file (default: `<DIR>.key` beside the store directory).
    #[arg(long, global = true, env = "LETHEDB_KEY_FILE")]
    pub(super) key_file: Option<PathBuf>,
    /// Where the key tree's roots live: a root key file (default:
    /// `<DIR>.rootkeys` beside the store directory; keep it on another
    /// device, out of backups) or an RFC 7512 PKCS#11 URI
    /// (`pkcs11:token=T;object=O?module-path=LIB&pin-source=file:PATH`;
    /// never a PIN on the command line).
    #[arg(long, global = true, env = "LETHEDB_ROOT_KEYS")]
    pub(super) root_keys: Option<String>,
    /// Refuse a root key file on the store directory's file system.
    #[arg(long, global = true, env = "LETHEDB_REFUSE_CO_LOCATED_ROOTS")]
    pub(super) refuse_co_located_roots: bool,
    /// Largest encoded field value a write may carry, in bytes.
    #[arg(long, global = true, default_value_t = lethedb::Limits::default().max_value_bytes)]
    pub(super) max_value_bytes: usize,
    /// Largest total of a profile's field payloads after a write, in bytes.
    #[arg(long, global = true, default_value_t = lethedb::Limits::default().max_profile_bytes)]
    pub(super) max_profile_bytes: usize,
    #[command(subcommand)]
    pub(super) cmd: Cmd,
}

#[derive(Subcommand)]
pub(super) enum Cmd {
    /// Create a new store and its key file (mode 0600).
    Init {
        /// Region for phone numbers without a country code (ISO 3166-1 alpha-2).
        #[arg(long, default_value = "US")]
        default_region: String,
        /// Phone numbers indexed: `strict` (libphonenumber must call them
        /// valid) or `lenient` (every number that parses).
        #[arg(long, default_value = "strict", value_parser = ["strict", "lenient"])]
        phone_validation: String,
    },
    /// Ingest Segment-spec NDJSON (identify, alias, track) from FILE or `-` (stdin).
    Ingest {
        /// NDJSON file, or `-` for stdin.
        file: String,
        /// Abort on the first malformed line instead of skipping it.
        #[arg(long)]
        strict: bool,
        /// Region for phone numbers without a country code (default: the store's).
        #[arg(long)]
        default_region: Option<String>,
        /// Longest line accepted, in bytes; longer lines are malformed.
        #[arg(long, default_value_t = 1 << 20)]
        max_line_bytes: usize,
    },
    /// Find a profile by one identifier and print it.
    Lookup {
        #[command(flatten)]
        id: LookupArgs,
        /// Region for phone numbers without a country code (default: the store's).
        #[arg(long)]
        default_region: Option<String>,
    },
    /// List the merges a profile took part in.
    Merges {
        /// Profile id.
        #[arg(long)]
        id: String,
    },
    /// Undo a merge.
    Unmerge {
        /// Merge id (32 hex characters, from `lethedb merges`).
        merge_id: String,
    },
    /// Upsert fields from a JSON object (`-` reads stdin); `null` removes a field.
    Put {
        /// Profile id (32 hex characters); omitted: create a new profile.
        #[arg(long)]
        id: Option<String>,
        /// JSON object of fields.
        json: String,
    },
    /// Print a profile as `{"profile_id":..,"fields":{..}}`.
    Get {
        /// Profile id (32 hex characters).
        #[arg(long)]
        id: String,
        /// Comma-separated field names (default: all).
        #[arg(long, value_delimiter = ',')]
        fields: Option<Vec<String>>,
        /// Purpose-bound read: only the fields this purpose may use now.
        #[arg(long, conflicts_with = "fields")]
        purpose: Option<String>,
    },
    /// Consent records: set, get, history, TCF and GPP import, vendors,
    /// Consent Mode, who has consented.
    Consent {
        #[command(subcommand)]
        cmd: ConsentCmd,
    },
    /// Data-subject requests: open, list, show, verify, extend, complete, reject.
    Request {
        #[command(subcommand)]
        cmd: RequestCmd,
    },
    /// Legal holds: place, release, list.
    Hold {
        #[command(subcommand)]
        cmd: HoldCmd,
    },
    /// Remove one field of a profile.
    DeleteField {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// Field name.
        #[arg(long)]
        field: String,
    },
    /// Print counts and bytes per column family.
    Stats {
        /// Count profiles exactly by scanning (default: RocksDB's estimate).
        #[arg(long)]
        exact: bool,
    },
    /// Show or set the schema (field classes and types).
    Schema {
        #[command(subcommand)]
        cmd: SchemaCmd,
    },
    /// Erase a person (or some of their fields); prints the receipt.
    Forget {
        #[command(flatten)]
        subject: SubjectArgs,
        /// Erase only these fields (comma-separated) by re-keying the profile.
        #[arg(long, value_delimiter = ',')]
        field: Option<Vec<String>>,
    },
    /// Purge pending erasures now; prints one signed certificate per line.
    Purge,
    /// The key tree: `keys status` prints its shape, root epoch, root
    /// versions held, nodes per level and pending purges.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Erasure certificates: verify one, or print the store's public key.
    Certificate {
        #[command(subcommand)]
        cmd: CertCmd,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Everything held about a person, as one JSON bundle (GDPR Art. 15/20).
    Export {
        #[command(flatten)]
        subject: SubjectArgs,
    },
    /// Write a backup to a new directory and register it for ledger
    /// mirroring and re-keying (`backup --to DIR`); list or unregister
    /// registered backups.
    Backup {
        /// Backup directory (new or empty).
        #[arg(long)]
        to: Option<PathBuf>,
        #[command(subcommand)]
        cmd: Option<BackupCmd>,
    },
    /// Restore a backup into the new directory given by --db, replaying later erasures.
    Restore {
        /// Backup directory written by `lethedb backup`.
        #[arg(long)]
        from: PathBuf,
        /// Root key file or pkcs11: URI holding the backup's root (default:
        /// the file its BACKUP.json names, the source store's). The restored store's own
        /// roots go to --root-keys (default `<DIR>.rootkeys`), which must not exist yet.
        #[arg(long)]
        backup_root_keys: Option<String>,
    },
    /// Retention: erase expired fields and inactive profiles per the schema.
    Retention {
        #[command(subcommand)]
        cmd: RetentionCmd,
    },
    /// Rewrite what the store holds in record format v1 as format v2
    /// (online, resumable; new writes are v2 already).
    Upgrade,
    /// Lift the suppression of one identifier of a forgotten person.
    Unsuppress {
        #[command(flatten)]
        id: LookupArgs,
    },
    /// Write N synthetic profiles, read a sample back, scan the files for plaintext.
    Demo {
        /// Number of profiles.
        #[arg(long, default_value_t = 100_000)]
        profiles: u64,
        /// Seed for the synthetic data (default: random).
        #[arg(long)]
        seed: Option<u64>,
        /// Profiles per atomic batch.
        #[arg(long, default_value_t = 500)]
        batch: u64,
    },
}

#[derive(Subcommand)]
pub(super) enum ConsentCmd {
    /// Append a consent record.
    Set {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// Purpose id (e.g. email_marketing, tcf:1).
        #[arg(long)]
        purpose: String,
        /// granted, denied or withdrawn.
        #[arg(long)]
        status: String,
        /// consent, contract, legal_obligation, vital_interests, public_task, legitimate_interests.
        #[arg(long, default_value = "consent")]
        legal_basis: String,
        /// Source / collection method.
        #[arg(long, default_value = "cli")]
        source: String,
        /// Notice or policy version.
        #[arg(long)]
        policy_version: Option<String>,
        /// Expiry, RFC 3339.
        #[arg(long)]
        expires: Option<String>,
        /// When it was given, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Jurisdiction (e.g. EU, US-CA).
        #[arg(long)]
        jurisdiction: Option<String>,
        /// Proof (receipt hash, reference).
        #[arg(long)]
        proof: Option<String>,
        /// Who recorded it.
        #[arg(long)]
        recorded_by: Option<String>,
    },
    /// Print current states (or the state at --at) as a JSON array.
    Get {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// Only this purpose.
        #[arg(long)]
        purpose: Option<String>,
        /// State at this time (RFC 3339), from the history.
        #[arg(long)]
        at: Option<String>,
    },
    /// Print the full history (including merged profiles') as a JSON array.
    History {
        /// Profile id.
        #[arg(long)]
        id: String,
    },
    /// Decode a TC string and record its purposes.
    ImportTcf {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// The TC string.
        tc_string: String,
    },
    /// Decode a GPP string (and/or record a GPC signal) and record the
    /// consent it implies; prints the records stored.
    ImportGpp {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// A Global Privacy Control signal was seen (opt-out of sale and sharing).
        #[arg(long)]
        gpc: bool,
        /// When it was collected, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        /// The GPP string (or give it with --gpp).
        #[arg(required_unless_present_any = ["gpc", "gpp"])]
        gpp_string: Option<String>,
        /// The GPP string, as an option.
        #[arg(long, conflicts_with = "gpp_string")]
        gpp: Option<String>,
    },
    /// May TCF vendor V process the profile for purpose P? One JSON
    /// decision per vendor and purpose.
    Vendors {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// Comma-separated GVL vendor ids.
        #[arg(long, value_delimiter = ',', required = true)]
        vendor: Vec<u16>,
        /// Comma-separated TCF purposes, `3` or `tcf:3` (default: 1 to 11).
        #[arg(long, value_delimiter = ',')]
        purpose: Vec<String>,
    },
    /// Google Consent Mode v2 signals of the profile's current consent.
    Mode {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// A purpose mapping as JSON (default: docs/design.md, "Consent Mode v2").
        #[arg(long)]
        mapping: Option<std::path::PathBuf>,
    },
    /// Print the ids of profiles with the purpose currently granted.
    Who {
        /// Purpose id.
        #[arg(long)]
        purpose: String,
    },
    /// Show or set restriction (Art. 18) and objection (Art. 21) flags.
    Flags {
        /// Profile id.
        #[arg(long)]
        id: String,
        /// Set restriction of processing.
        #[arg(long)]
        restricted: Option<bool>,
        /// Set objection to processing.
        #[arg(long)]
        objected: Option<bool>,
    },
}

#[derive(Subcommand)]
pub(super) enum RequestCmd {
    /// Open a request for a person (by id or one identifier); prints it.
    Open {
        #[command(flatten)]
        subject: SubjectArgs,
        /// access, erasure, rectification, restriction, objection, opt_out_of_sale.
        #[arg(long)]
        kind: String,
        /// Jurisdiction whose deadline applies (EU, UK, DE, US-CA, …).
        #[arg(long)]
        jurisdiction: String,
        /// When it was received, RFC 3339 (default: now).
        #[arg(long)]
        received: Option<String>,
        /// Comma-separated fields, for a request about some fields only.
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        /// Who opened it.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// List requests as a JSON array (id order; due order with --overdue or --due-within).
    List {
        /// Only open requests past their due time.
        #[arg(long, conflicts_with = "due_within")]
        overdue: bool,
        /// Only open requests due within this long (`7d`, `36h`), overdue included.
        #[arg(long)]
        due_within: Option<String>,
        /// Only this status (open, on_hold, completed, rejected).
        #[arg(long)]
        status: Option<String>,
        /// Only this person's (profile id).
        #[arg(long)]
        id: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print one request with its history.
    Show {
        /// Request id.
        request: u64,
    },
    /// Record the requester's identity verification.
    Verify {
        /// Request id.
        request: u64,
        /// Verification failed (default: verified).
        #[arg(long)]
        failed: bool,
        /// Who verified.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Extend the deadline once, with a reason.
    Extend {
        /// Request id.
        request: u64,
        /// Why (GDPR Art. 12(3): complexity, number of requests).
        #[arg(long)]
        reason: String,
        /// Who extended.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Complete a request with its evidence (exactly one of the options).
    Complete {
        /// Request id.
        request: u64,
        /// The export bundle given to the person: its SHA-256 is recorded.
        #[arg(long, group = "evidence")]
        export_file: Option<PathBuf>,
        /// The export bundle's SHA-256 (hex).
        #[arg(long, group = "evidence")]
        export_digest: Option<String>,
        /// The erasure whose certificate fulfils it (purged).
        #[arg(long, group = "evidence")]
        erasure: Option<u64>,
        /// What was done, in words (no personal data).
        #[arg(long, group = "evidence")]
        statement: Option<String>,
        /// Who completed it.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Reject a request with a reason.
    Reject {
        /// Request id.
        request: u64,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who rejected it.
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(super) enum HoldCmd {
    /// Place a legal hold on a person (by id or one identifier), or on some of their fields.
    Place {
        #[command(flatten)]
        subject: SubjectArgs,
        /// Why (matter reference; no personal data).
        #[arg(long)]
        reason: String,
        /// Who answers for the hold.
        #[arg(long)]
        owner: String,
        /// Comma-separated fields (default: the whole person).
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        /// When it lapses by itself, RFC 3339.
        #[arg(long)]
        until: Option<String>,
    },
    /// Release a hold.
    Release {
        /// Hold id.
        hold: u64,
        /// Who released it.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// List holds (of one person with --id).
    List {
        /// Profile id.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(clap::Args)]
#[group(multiple = false)]
pub(super) struct LookupArgs {
    /// E-mail address.
    #[arg(long)]
    pub(super) email: Option<String>,
    /// Phone number.
    #[arg(long)]
    pub(super) phone: Option<String>,
    /// User id.
    #[arg(long)]
    pub(super) user_id: Option<String>,
    /// Anonymous id.
    #[arg(long)]
    pub(super) anonymous_id: Option<String>,
    /// Device id.
    #[arg(long)]
    pub(super) device_id: Option<String>,
}

impl LookupArgs {
    pub(super) fn identifier(&self) -> Option<Identifier> {
        let a = self;
        a.email
            .as_ref()
            .map(Identifier::email)
            .or_else(|| a.phone.as_ref().map(Identifier::phone))
            .or_else(|| a.user_id.as_ref().map(Identifier::user_id))
            .or_else(|| a.anonymous_id.as_ref().map(Identifier::anonymous_id))
            .or_else(|| a.device_id.as_ref().map(Identifier::device_id))
    }
}

#[derive(clap::Args)]
pub(super) struct SubjectArgs {
    /// Profile id (32 hex characters).
    #[arg(long, conflicts_with = "LookupArgs")]
    pub(super) id: Option<String>,
    #[command(flatten)]
    pub(super) ident: LookupArgs,
}

impl SubjectArgs {
    /// The profile named by id, or found by identifier.
    pub(super) fn profile(&self, db: &Db) -> std::result::Result<ProfileId, Failure> {
        if let Some(id) = &self.id {
            return Ok(id.parse()?);
        }
        let ident = self.ident.identifier().ok_or_else(|| Failure {
            code: 2,
            message: "give --id or one identifier".into(),
        })?;
        db.lookup(&ident)?.ok_or_else(|| Failure {
            code: 3,
            message: format!("no profile has that {}", ident.id_type.name()),
        })
    }
}

#[derive(Subcommand)]
pub(super) enum CertCmd {
    /// Verify a certificate (file or `-`) with a public key, without the
    /// master key; with --db, also its position in that store's audit log.
    Verify {
        /// File holding the public key (64 hex characters).
        #[arg(long)]
        public_key: PathBuf,
        /// Certificate file (its JSON, in any formatting), or `-` for stdin.
        cert: String,
    },
    /// Print the store's certificate public key (64 hex characters).
    PublicKey,
}

#[derive(Subcommand)]
pub(super) enum KeysCmd {
    /// Tree shape, root epoch, root versions held, where the roots live,
    /// nodes per level, key cache, pending purges and backups, as JSON.
    Status,
    /// Generate a new master key and re-wrap everything the old one
    /// protects (key check, roots, signing key, key set, audit seal,
    /// backups) without rewriting a profile; the store must not be open
    /// elsewhere. The new key is written to `<KEY>.next` first and
    /// replaces the key file at the end; after a crash, run it again.
    RotateMaster,
    /// Rotate the identifier-index (blind-index) key online: every entry
    /// re-keyed under a new random key, in steps (resumable: run it again
    /// after a crash); lookups keep answering meanwhile.
    RotateBlindIndex,
}

#[derive(Subcommand)]
pub(super) enum AuditCmd {
    /// Verify the hash chain, and, when the key file is present, the keyed
    /// seal of its head (a cut tail with a rewritten head fails); without
    /// the key the chain alone is checked ("head_sealed": false). With
    /// --checkpoint, also that no entry up to a saved checkpoint was
    /// removed or rewritten.
    Verify {
        /// A checkpoint written by `audit checkpoint` (kept outside the store).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Public-key file (`certificate public-key`) the checkpoint must be signed
        /// by (default: the key the checkpoint names).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Print a signed checkpoint of the log's head (one JSON line): keep it
    /// outside the store, check it later with `audit verify --checkpoint`.
    Checkpoint,
    /// Print every entry as JSON lines.
    List,
}

#[derive(Subcommand)]
pub(super) enum RetentionCmd {
    /// Apply the schema's retention rules now (or as of --as-of), then purge.
    Run {
        /// Evaluate as of this RFC 3339 time instead of now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Subcommand)]
pub(super) enum SchemaCmd {
    /// Print the schema as JSON.
    Show,
    /// Replace the schema with a JSON file (`-` reads stdin).
    Set {
        /// `{"fields":{"name":{"class":"personal|sensitive|non_personal","kind":"string"}}}`
        file: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum BackupCmd {
    /// Registered backups: number, path, root epoch (null: invalidated).
    List,
    /// Stop re-keying a backup: its roots are destroyed first, so the copy
    /// can no longer be decrypted or restored.
    Unregister {
        /// Its number, from `backup list`.
        #[arg(long)]
        number: u64,
    },
}
