//! Command-line interface. Output goes to stdout as JSON (or text for
//! `stats` and `demo`); errors go to stderr with a non-zero exit code:
//! 1 general, 2 usage, 3 not found (store or profile), 4 wrong key.

mod args;
mod consent;
mod copies;
mod demo;
mod erasure;
mod ingest;
mod output;
mod proofs;
mod requests;

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Parser;
use lethedb::{
    ConsentRecord, ConsentStatus, Db, Error, FileKeyProvider, IdType, Identifier, IdentityConfig,
    LegalBasis, MergeId, Normalization, Options, ProfileId, RootKeys, Schema, Timestamp, Update,
};

use args::*;
pub(crate) use output::Failure;
use output::{print_json, CliResult};

pub(super) fn read_file_arg(path: &str) -> std::result::Result<String, Failure> {
    if path == "-" {
        return read_arg("-");
    }
    std::fs::read_to_string(path).map_err(|e| Failure::new(format!("reading {path}: {e}")))
}

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
/// `path` as the file system will resolve it: its longest existing
/// ancestor canonicalised (symbolic links and `..` resolved as the kernel
/// does), then the rest applied with `.` and `..` — so `./store`,
/// `store/../store/k` and `link/../k` compare as paths, not text.
fn resolved(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut base = abs.as_path();
    let mut out = loop {
        if let Ok(c) = base.canonicalize() {
            break c;
        }
        match (base.parent(), base.components().next_back()) {
            (Some(p), Some(last)) => {
                rest.push(last.as_os_str().to_os_string());
                base = p;
            }
            _ => break base.to_path_buf(),
        }
    };
    for part in rest.iter().rev() {
        if part == ".." {
            out.pop();
        } else if part != "." {
            out.push(part);
        }
    }
    out
}

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

/// Options every command shares: limits, the roots and their policy.
fn base_options(cli: &Cli) -> std::result::Result<Options, Failure> {
    let mut options = Options::new()
        .max_value_bytes(cli.max_value_bytes)
        .max_profile_bytes(cli.max_profile_bytes)
        .refuse_co_located_roots(cli.refuse_co_located_roots);
    if let Some(r) = &cli.root_keys {
        options = options.root_keys_in(RootKeys::from_spec(r)?);
    }
    Ok(options)
}

/// Prints what opening found (the root layout warning) on stderr.
pub(crate) fn warn_on_open(db: &Db) {
    for w in db.open_report().warnings {
        eprintln!("warning: {w}");
    }
}

/// Where `keys rotate-master` stages the new key: `<KEY>.next`.
pub(crate) fn staged_key_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

fn open(cli: &Cli) -> std::result::Result<Db, Failure> {
    let dir = need_db(&cli.db)?;
    if !Db::store_exists(&dir) {
        return Err(Error::StoreNotFound { path: dir }.into());
    }
    let key = key_path(cli, &dir);
    let keys = FileKeyProvider::new(&key);
    let db = match Db::open(&dir, &keys, base_options(cli)?) {
        Ok(db) => db,
        Err(e @ (Error::WrongKey | Error::InvalidInput(_)))
            if staged_key_path(&key).exists() =>
        {
            return Err(Failure::new(format!(
                "{e}; a master-key rotation was interrupted ({} exists): run `lethedb keys rotate-master` to finish it",
                staged_key_path(&key).display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    warn_on_open(&db);
    Ok(db)
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
    base: Options,
    schema: Option<Schema>,
    identity: IdentityConfig,
) -> std::result::Result<Db, Failure> {
    if Db::store_exists(dir) {
        return Err(Error::StoreExists {
            path: dir.to_path_buf(),
        }
        .into());
    }
    if resolved(key).starts_with(resolved(dir)) {
        return Err(Failure::new(
            "the key file must not be inside the store directory",
        ));
    }
    let provider = FileKeyProvider::create(key)?;
    let mut opts = base.create_if_missing(true).identity(identity);
    if let Some(s) = schema {
        opts = opts.schema(s);
    }
    match Db::open(dir, &provider, opts) {
        Ok(db) => {
            warn_on_open(&db);
            Ok(db)
        }
        Err(e) => {
            // Do not leave a key file behind for a store that was never
            // created; once the store exists, its key must stay.
            if !Db::store_exists(dir) {
                let _ = std::fs::remove_file(key);
            }
            Err(e.into())
        }
    }
}
fn dispatch(cli: Cli) -> CliResult {
    match &cli.cmd {
        Cmd::Forget { subject, field } => erasure::forget(&cli, subject, field)?,
        Cmd::Purge => erasure::purge(&cli)?,
        Cmd::Retention { cmd } => erasure::retention(&cli, cmd)?,
        Cmd::Unsuppress { id } => erasure::unsuppress(&cli, id)?,
        Cmd::Certificate { cmd } => proofs::certificate(&cli, cmd)?,
        Cmd::Audit { cmd } => proofs::audit(&cli, cmd)?,
        Cmd::Keys { cmd } => proofs::keys(&cli, cmd)?,
        Cmd::Upgrade => proofs::upgrade(&cli)?,
        Cmd::Export { subject } => copies::export(&cli, subject)?,
        Cmd::Backup { to, cmd } => copies::backup(&cli, to.as_deref(), cmd.as_ref())?,
        Cmd::Restore {
            from,
            backup_root_keys,
        } => copies::restore(&cli, from, backup_root_keys)?,
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
            let db = init_store(&dir, &key, base_options(&cli)?, None, identity)?;
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
        Cmd::Consent { cmd } => consent::consent_cmd(&open(&cli)?, cmd)?,
        Cmd::Request { cmd } => requests::request_cmd(&open(&cli)?, cmd)?,
        Cmd::Hold { cmd } => requests::hold_cmd(&open(&cli)?, cmd)?,
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
