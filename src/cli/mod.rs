//! Command-line interface. Output goes to stdout as JSON (or text for
//! `stats` and `demo`); errors go to stderr with a non-zero exit code:
//! 1 general, 2 usage, 3 not found (store or profile), 4 wrong key.

mod demo;
mod ingest;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use lethedb::{
    ConsentRecord, ConsentStatus, Db, Error, FileKeyProvider, FileRootKeyStore, IdType, Identifier,
    IdentityConfig, LegalBasis, MergeId, Normalization, Options, ProfileId, Schema, Timestamp,
    Update,
};

#[derive(Parser)]
#[command(
    name = "lethedb",
    version,
    about = "Encrypted profile store with provable erasure"
)]
struct Cli {
    /// Store directory.
    #[arg(long, global = true, env = "LETHEDB_DB")]
    db: Option<PathBuf>,
    /// Master key file (default: `<DIR>.key` beside the store directory).
    #[arg(long, global = true, env = "LETHEDB_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Root key file of the key tree (default: `<DIR>.rootkeys` beside the
    /// store directory). Keep it with the key file, out of file-level backups.
    #[arg(long, global = true, env = "LETHEDB_ROOT_KEYS")]
    root_keys: Option<PathBuf>,
    /// Largest encoded field value a write may carry, in bytes.
    #[arg(long, global = true, default_value_t = lethedb::Limits::default().max_value_bytes)]
    max_value_bytes: usize,
    /// Largest total of a profile's field payloads after a write, in bytes.
    #[arg(long, global = true, default_value_t = lethedb::Limits::default().max_profile_bytes)]
    max_profile_bytes: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
    /// Consent records: set, get, history, TCF import, who has consented.
    Consent {
        #[command(subcommand)]
        cmd: ConsentCmd,
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
    /// Write a backup to a new directory and register it for ledger mirroring.
    Backup {
        /// Backup directory (new or empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into the new directory given by --db, replaying later erasures.
    Restore {
        /// Backup directory written by `lethedb backup`.
        #[arg(long)]
        from: PathBuf,
        /// Root key file holding the backup's root (default: the one its
        /// BACKUP.json names, the source store's). The restored store's own
        /// roots go to --root-keys (default `<DIR>.rootkeys`), which must not exist yet.
        #[arg(long)]
        backup_root_keys: Option<PathBuf>,
    },
    /// Retention: erase expired fields and inactive profiles per the schema.
    Retention {
        #[command(subcommand)]
        cmd: RetentionCmd,
    },
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
enum ConsentCmd {
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

#[derive(clap::Args)]
#[group(multiple = false)]
struct LookupArgs {
    /// E-mail address.
    #[arg(long)]
    email: Option<String>,
    /// Phone number.
    #[arg(long)]
    phone: Option<String>,
    /// User id.
    #[arg(long)]
    user_id: Option<String>,
    /// Anonymous id.
    #[arg(long)]
    anonymous_id: Option<String>,
    /// Device id.
    #[arg(long)]
    device_id: Option<String>,
}

impl LookupArgs {
    fn identifier(&self) -> Option<Identifier> {
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
struct SubjectArgs {
    /// Profile id (32 hex characters).
    #[arg(long, conflicts_with = "LookupArgs")]
    id: Option<String>,
    #[command(flatten)]
    ident: LookupArgs,
}

impl SubjectArgs {
    /// The profile named by id, or found by identifier.
    fn profile(&self, db: &Db) -> std::result::Result<ProfileId, Failure> {
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
enum CertCmd {
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
enum KeysCmd {
    /// Tree shape, root epoch, root versions held, nodes per level, key
    /// cache, pending purges and backups, as JSON.
    Status,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify the hash chain (no master key needed).
    Verify,
    /// Print every entry as JSON lines.
    List,
}

#[derive(Subcommand)]
enum RetentionCmd {
    /// Apply the schema's retention rules now (or as of --as-of), then purge.
    Run {
        /// Evaluate as of this RFC 3339 time instead of now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

fn read_file_arg(path: &str) -> std::result::Result<String, Failure> {
    if path == "-" {
        return read_arg("-");
    }
    std::fs::read_to_string(path).map_err(|e| Failure::new(format!("reading {path}: {e}")))
}

fn erasure_cmd(cli: &Cli) -> CliResult {
    match &cli.cmd {
        Cmd::Forget { subject, field } => {
            let db = open(cli)?;
            let id = subject.profile(&db)?;
            let receipt = match field {
                Some(names) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    db.forget_fields(&id, &names)?
                }
                None => db.forget(&id)?,
            };
            print_json(&receipt.to_json());
        }
        Cmd::Purge => {
            let db = open(cli)?;
            let report = db.purge()?;
            for c in &report.certificates {
                println!("{c}");
            }
            eprintln!("{}", report.summary_json());
        }
        Cmd::Keys {
            cmd: KeysCmd::Status,
        } => {
            let db = open(cli)?;
            print_json(&db.key_tree_status()?.to_json());
        }
        Cmd::Certificate {
            cmd: CertCmd::PublicKey,
        } => {
            let db = open(cli)?;
            println!("{}", hex(&db.public_key()?));
        }
        Cmd::Certificate {
            cmd: CertCmd::Verify { public_key, cert },
        } => {
            let key_text = std::fs::read_to_string(public_key)
                .map_err(|e| Failure::new(format!("reading {}: {e}", public_key.display())))?;
            let pk = lethedb::parse_public_key(&key_text)?;
            let text = read_file_arg(cert)?;
            let check = match &cli.db {
                Some(dir) => lethedb::verify_certificate_in_store(dir, &text, &pk)?,
                None => lethedb::verify_certificate(&text, &pk)?,
            };
            let c = &check.certificate;
            print_json(&serde_json::json!({
                "valid": true,
                "erasure_id": c.erasure_id,
                "subject_ref": c.subject_ref,
                "purged_at": c.purged_at,
                "audit_seq": c.audit_seq,
                "chain_checked": cli.db.is_some(),
            }));
        }
        Cmd::Audit {
            cmd: AuditCmd::Verify,
        } => {
            let dir = need_db(&cli.db)?;
            let r = lethedb::verify_audit_log(&dir)?;
            print_json(&serde_json::json!({
                "valid": true,
                "entries": r.entries,
                "head_hash": r.head_hash,
            }));
        }
        Cmd::Audit {
            cmd: AuditCmd::List,
        } => {
            let db = open(cli)?;
            for e in db.audit_log()? {
                print_json(&e.to_json());
            }
        }
        Cmd::Export { subject } => {
            let db = open(cli)?;
            let id = subject.profile(&db)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&db.export(&id)?)
                    .map_err(|e| Failure::new(e.to_string()))?
            );
        }
        Cmd::Backup { to } => {
            let db = open(cli)?;
            let info = db.backup(to)?;
            print_json(&serde_json::json!({
                "backup": info.path.display().to_string(),
                "last_erasure": info.last_erasure,
                "taken_at": info.taken_at.to_string(),
            }));
        }
        Cmd::Restore {
            from,
            backup_root_keys,
        } => {
            let dir = need_db(&cli.db)?;
            let key = cli.key_file.clone().ok_or_else(|| Failure {
                code: 2,
                message: "--key-file (the backed-up store's master key) is required for restore"
                    .into(),
            })?;
            let keys = FileKeyProvider::new(key);
            let mut options = Options::new();
            if let Some(r) = backup_root_keys {
                options = options.backup_root_keys(Arc::new(FileRootKeyStore::new(r)));
            }
            if let Some(r) = &cli.root_keys {
                options = options.root_keys(Arc::new(FileRootKeyStore::new(r)));
            }
            let (_, report) = Db::restore(from, &dir, &keys, options)?;
            print_json(&serde_json::json!({
                "restored": dir.display().to_string(),
                "replayed_erasures": report.replayed,
                "already_present": report.already_present,
                "certificates": report.certificates.len(),
            }));
            for c in &report.certificates {
                println!("{c}");
            }
        }
        Cmd::Retention {
            cmd: RetentionCmd::Run { as_of },
        } => {
            let db = open(cli)?;
            let now = match as_of {
                Some(t) => Timestamp::parse_rfc3339(t)?,
                None => Timestamp::now(),
            };
            let r = db.run_retention(now)?;
            print_json(&serde_json::json!({
                "as_of": now.to_string(),
                "profiles_forgotten": r.profiles_forgotten,
                "profiles_with_fields_erased": r.profiles_with_fields_erased,
                "fields_erased": r.fields_erased,
                "certificates": r.certificates.len(),
            }));
            for c in &r.certificates {
                println!("{c}");
            }
        }
        Cmd::Unsuppress { id } => {
            let db = open(cli)?;
            let ident = id.identifier().ok_or_else(|| Failure {
                code: 2,
                message: "give one identifier".into(),
            })?;
            print_json(&serde_json::json!({ "unsuppressed": db.unsuppress(&ident)? }));
        }
        _ => return Err(Failure::new("not an erasure command")),
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Subcommand)]
enum SchemaCmd {
    /// Print the schema as JSON.
    Show,
    /// Replace the schema with a JSON file (`-` reads stdin).
    Set {
        /// `{"fields":{"name":{"class":"personal|sensitive|non_personal","kind":"string"}}}`
        file: String,
    },
}

/// Failure of a CLI command: the message and exit code.
pub(crate) struct Failure {
    code: i32,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::StoreNotFound { .. }
            | Error::ProfileNotFound(_)
            | Error::ProfileErased { .. } => 3,
            Error::WrongKey => 4,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

type CliResult = std::result::Result<(), Failure>;

pub(crate) fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(cli) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

/// `<DIR>.key`, beside the directory, never inside it.
pub(crate) fn default_key_file(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    while s.len() > 1 && s.to_string_lossy().ends_with('/') {
        let t = s.to_string_lossy().trim_end_matches('/').to_string();
        s = t.into();
    }
    s.push(".key");
    PathBuf::from(s)
}

fn need_db(cli_db: &Option<PathBuf>) -> std::result::Result<PathBuf, Failure> {
    cli_db.clone().ok_or_else(|| Failure {
        code: 2,
        message: "--db DIR (or LETHEDB_DB) is required".into(),
    })
}

fn key_path(cli: &Cli, dir: &Path) -> PathBuf {
    cli.key_file
        .clone()
        .unwrap_or_else(|| default_key_file(dir))
}

/// Options every command shares: limits and the root key file.
fn base_options(cli: &Cli) -> Options {
    let mut options = Options::new()
        .max_value_bytes(cli.max_value_bytes)
        .max_profile_bytes(cli.max_profile_bytes);
    if let Some(r) = &cli.root_keys {
        options = options.root_keys(Arc::new(FileRootKeyStore::new(r)));
    }
    options
}

fn open(cli: &Cli) -> std::result::Result<Db, Failure> {
    let dir = need_db(&cli.db)?;
    if !dir.join("CURRENT").exists() {
        return Err(Error::StoreNotFound { path: dir }.into());
    }
    let keys = FileKeyProvider::new(key_path(cli, &dir));
    Ok(Db::open(&dir, &keys, base_options(cli))?)
}

fn read_arg(text: &str) -> std::result::Result<String, Failure> {
    if text == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::new(format!("reading stdin: {e}")))?;
        Ok(s)
    } else {
        Ok(text.to_string())
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// Normalises a phone number with an explicit region (to E.164), so the
/// store's own region no longer matters for it. `lookup` uses the lookup
/// rules (any parseable number), so entries indexed leniently stay
/// reachable; ingest uses the store's validation mode.
pub(crate) fn with_region(
    db: &Db,
    id: Identifier,
    region: Option<&str>,
    lookup: bool,
) -> std::result::Result<Identifier, Failure> {
    match (region, &id.id_type) {
        (Some(r), IdType::Phone) => {
            let n = Normalization {
                default_region: r.to_string(),
                ..db.identity_config().normalization
            };
            let e164 = if lookup {
                n.normalize_for_lookup(&id)?
            } else {
                n.normalize(&id)?
            };
            Ok(Identifier::phone(e164))
        }
        _ => Ok(id),
    }
}

/// Creates a store and its key file; refuses to touch existing ones.
pub(crate) fn init_store(
    dir: &Path,
    key: &Path,
    root_keys: Option<&Path>,
    schema: Option<Schema>,
    identity: IdentityConfig,
) -> std::result::Result<Db, Failure> {
    if dir.join("CURRENT").exists() {
        return Err(Error::StoreExists {
            path: dir.to_path_buf(),
        }
        .into());
    }
    if key.starts_with(dir) {
        return Err(Failure::new(
            "the key file must not be inside the store directory",
        ));
    }
    let provider = FileKeyProvider::create(key)?;
    let mut opts = Options::new().create_if_missing(true).identity(identity);
    if let Some(r) = root_keys {
        opts = opts.root_keys(Arc::new(FileRootKeyStore::new(r)));
    }
    if let Some(s) = schema {
        opts = opts.schema(s);
    }
    match Db::open(dir, &provider, opts) {
        Ok(db) => Ok(db),
        Err(e) => {
            // Do not leave a key file behind for a store that was never
            // created; once the store exists, its key must stay.
            if !dir.join("CURRENT").exists() {
                let _ = std::fs::remove_file(key);
            }
            Err(e.into())
        }
    }
}

fn dispatch(cli: Cli) -> CliResult {
    match &cli.cmd {
        Cmd::Forget { .. }
        | Cmd::Purge
        | Cmd::Certificate { .. }
        | Cmd::Audit { .. }
        | Cmd::Export { .. }
        | Cmd::Backup { .. }
        | Cmd::Restore { .. }
        | Cmd::Retention { .. }
        | Cmd::Unsuppress { .. }
        | Cmd::Keys { .. } => erasure_cmd(&cli)?,
        Cmd::Init {
            default_region,
            phone_validation,
        } => {
            let dir = need_db(&cli.db)?;
            let key = key_path(&cli, &dir);
            let mut identity = IdentityConfig::default();
            identity.normalization.default_region = default_region.clone();
            if phone_validation == "lenient" {
                identity.normalization.phone_validation = lethedb::PhoneValidation::Lenient;
            }
            let db = init_store(&dir, &key, cli.root_keys.as_deref(), None, identity)?;
            print_json(&serde_json::json!({
                "store": dir.display().to_string(),
                "key_file": key.display().to_string(),
                "store_id": db.store_id(),
            }));
        }
        Cmd::Put { id, json } => {
            let db = open(&cli)?;
            let update = Update::from_json(&db.schema(), &read_arg(json)?)?;
            let id = match id {
                Some(text) => {
                    let id: ProfileId = text.parse()?;
                    db.upsert(&id, update)?;
                    id
                }
                None => db.create(update)?,
            };
            println!("{id}");
        }
        Cmd::Get {
            id,
            purpose: Some(purpose),
            ..
        } => {
            let db = open(&cli)?;
            print_json(&db.get_for_purpose(&id.parse()?, purpose)?.to_json());
        }
        Cmd::Consent { cmd } => consent_cmd(&open(&cli)?, cmd)?,
        Cmd::Get { id, fields, .. } => {
            let db = open(&cli)?;
            let id: ProfileId = id.parse()?;
            let p = match fields {
                Some(names) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    db.get_fields(&id, &names)?
                }
                None => db.get(&id)?,
            };
            print_json(&p.to_json());
        }
        Cmd::Ingest {
            file,
            strict,
            default_region,
            max_line_bytes,
        } => {
            let db = open(&cli)?;
            ingest::run(
                &db,
                file,
                *strict,
                default_region.as_deref(),
                *max_line_bytes,
            )?;
        }
        Cmd::Lookup { id, default_region } => {
            let db = open(&cli)?;
            let ident = id.identifier().ok_or_else(|| Failure {
                code: 2,
                message: "give one of --email, --phone, --user-id, --anonymous-id, --device-id"
                    .into(),
            })?;
            let ident = with_region(&db, ident, default_region.as_deref(), true)?;
            match db.lookup(&ident)? {
                Some(pid) => print_json(&db.get(&pid)?.to_json()),
                None => {
                    return Err(Failure {
                        code: 3,
                        message: format!("no profile has that {} identifier", ident.id_type),
                    })
                }
            }
        }
        Cmd::Merges { id } => {
            let db = open(&cli)?;
            let merges: Vec<serde_json::Value> = db
                .merges(&id.parse()?)?
                .iter()
                .map(|m| m.to_json())
                .collect();
            print_json(&serde_json::Value::Array(merges));
        }
        Cmd::Unmerge { merge_id } => {
            let db = open(&cli)?;
            let merge_id: MergeId = merge_id.parse()?;
            let (survivor, restored) = db.unmerge(&merge_id)?;
            print_json(&serde_json::json!({
                "merge_id": merge_id.to_string(),
                "survivor": survivor.to_string(),
                "restored": restored.to_string(),
            }));
        }
        Cmd::DeleteField { id, field } => {
            let db = open(&cli)?;
            db.delete_field(&id.parse()?, field)?;
        }
        Cmd::Stats { exact } => {
            let db = open(&cli)?;
            let stats = db.stats()?;
            println!(
                "{:<12} {:>14} {:>14} {:>14}",
                "column", "keys(est)", "sst_bytes", "memtable_bytes"
            );
            for c in &stats.columns {
                println!(
                    "{:<12} {:>14} {:>14} {:>14}",
                    c.name, c.estimated_keys, c.sst_bytes, c.memtable_bytes
                );
            }
            if *exact {
                let mut n = 0u64;
                for id in db.profile_ids()? {
                    id?;
                    n += 1;
                }
                println!("profiles (exact): {n}");
            }
            println!("disk bytes (all files): {}", stats.disk_bytes);
        }
        Cmd::Schema { cmd } => {
            let db = open(&cli)?;
            match cmd {
                SchemaCmd::Show => print_json(
                    &serde_json::to_value(db.schema()).map_err(|e| Failure::new(e.to_string()))?,
                ),
                SchemaCmd::Set { file } => {
                    let text = if file == "-" {
                        read_arg(file)?
                    } else {
                        std::fs::read_to_string(file)
                            .map_err(|e| Failure::new(format!("{file}: {e}")))?
                    };
                    db.set_schema(Schema::from_json(&text)?)?;
                }
            }
        }
        Cmd::Demo {
            profiles,
            seed,
            batch,
        } => {
            demo::run(&cli.db, &cli.key_file, *profiles, *seed, *batch)?;
        }
    }
    Ok(())
}

fn consent_cmd(db: &Db, cmd: &ConsentCmd) -> CliResult {
    let ts = |s: &Option<String>| -> std::result::Result<Option<Timestamp>, Failure> {
        Ok(match s {
            Some(t) => Some(Timestamp::parse_rfc3339(t)?),
            None => None,
        })
    };
    match cmd {
        ConsentCmd::Set {
            id,
            purpose,
            status,
            legal_basis,
            source,
            policy_version,
            expires,
            at,
            jurisdiction,
            proof,
            recorded_by,
        } => {
            let mut r = ConsentRecord::new(purpose, status.parse::<ConsentStatus>()?)
                .legal_basis(legal_basis.parse::<LegalBasis>()?)
                .source(source);
            r.policy_version = policy_version.clone();
            r.expires_at = ts(expires)?;
            r.jurisdiction = jurisdiction.clone();
            r.proof = proof.clone();
            r.recorded_by = recorded_by.clone();
            if let Some(t) = ts(at)? {
                r.timestamp = t;
            }
            db.record_consent(&id.parse()?, r)?;
        }
        ConsentCmd::Get { id, purpose, at } => {
            let id: ProfileId = id.parse()?;
            let when = ts(at)?.unwrap_or_else(Timestamp::now);
            let records: Vec<ConsentRecord> = match (purpose, ts(at)?) {
                (Some(p), Some(t)) => db.consent_at(&id, p, t)?.into_iter().collect(),
                (Some(p), None) => db.consent(&id, p)?.into_iter().collect(),
                (None, Some(t)) => {
                    let mut purposes: Vec<String> = db
                        .consent_history(&id)?
                        .into_iter()
                        .map(|(_, r)| r.purpose)
                        .collect();
                    purposes.sort_by(|a, b| lethedb::purpose_order(a, b));
                    purposes.dedup();
                    let mut out = Vec::new();
                    for p in purposes {
                        out.extend(db.consent_at(&id, &p, t)?);
                    }
                    out
                }
                (None, None) => db.consents(&id)?,
            };
            print_json(&serde_json::Value::Array(
                records.iter().map(|r| r.to_json_at(when)).collect(),
            ));
        }
        ConsentCmd::History { id } => {
            let items: Vec<serde_json::Value> = db
                .consent_history(&id.parse()?)?
                .into_iter()
                .map(|(pid, r)| {
                    let mut j = r.to_json();
                    j["profile_id"] = serde_json::Value::String(pid.to_string());
                    j
                })
                .collect();
            print_json(&serde_json::Value::Array(items));
        }
        ConsentCmd::ImportTcf { id, tc_string } => {
            let records = db.import_tcf(&id.parse()?, tc_string)?;
            print_json(&serde_json::Value::Array(
                records.iter().map(ConsentRecord::to_json).collect(),
            ));
        }
        ConsentCmd::Who { purpose } => {
            let ids: Vec<String> = db
                .consented_profiles(purpose)?
                .iter()
                .map(ToString::to_string)
                .collect();
            print_json(&serde_json::json!(ids));
        }
        ConsentCmd::Flags {
            id,
            restricted,
            objected,
        } => {
            let id: ProfileId = id.parse()?;
            let mut flags = db.processing_flags(&id)?;
            if restricted.is_some() || objected.is_some() {
                flags.restricted = restricted.unwrap_or(flags.restricted);
                flags.objected = objected.unwrap_or(flags.objected);
                db.set_processing_flags(&id, flags)?;
            }
            print_json(
                &serde_json::json!({"restricted": flags.restricted, "objected": flags.objected}),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_beside_the_directory() {
        assert_eq!(
            default_key_file(Path::new("/x/store")),
            PathBuf::from("/x/store.key")
        );
        assert_eq!(
            default_key_file(Path::new("/x/store/")),
            PathBuf::from("/x/store.key")
        );
        assert_eq!(default_key_file(Path::new("rel")), PathBuf::from("rel.key"));
    }
}
