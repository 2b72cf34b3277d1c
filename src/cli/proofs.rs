//! Proof commands: certificates, the audit log, key-tree status.

use super::args::*;
use super::output::*;
use super::*;

/// `lethedb certificate public-key | verify`.
pub(super) fn certificate(cli: &Cli, cmd: &CertCmd) -> CliResult {
    match cmd {
        CertCmd::PublicKey => {
            let db = open(cli)?;
            println!("{}", hex(&db.public_key()?));
        }
        CertCmd::Verify { public_key, cert } => {
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
    }
    Ok(())
}

/// `lethedb audit verify | list`.
pub(super) fn audit(cli: &Cli, cmd: &AuditCmd) -> CliResult {
    match cmd {
        AuditCmd::Verify {
            checkpoint,
            public_key,
        } => {
            let dir = need_db(&cli.db)?;
            // With the master key at hand the head's seal is checked too;
            // an auditor holding only the store checks the chain.
            let r = if Db::store_exists(&dir) && key_path(cli, &dir).exists() {
                open(cli)?.verify_audit()?
            } else {
                lethedb::verify_audit_log(&dir)?
            };
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p)
                    .map_err(|e| Failure::new(format!("reading {}: {e}", p.display())))
            };
            let pk = match public_key {
                Some(p) => Some(lethedb::parse_public_key(&read(p)?)?),
                None => None,
            };
            let checked = match checkpoint {
                Some(c) => Some(lethedb::verify_audit_log_with_checkpoint(
                    &dir,
                    &read(c)?,
                    pk.as_ref(),
                )?),
                None => None,
            };
            print_json(&serde_json::json!({
                "valid": true,
                "entries": r.entries,
                "head_hash": r.head_hash,
                "head_sealed": r.head_sealed,
                "checkpoint_seq": checked.map(|c| c.seq),
            }));
        }
        AuditCmd::Checkpoint => {
            let db = open(cli)?;
            println!("{}", db.audit_checkpoint()?);
        }
        AuditCmd::List => {
            let db = open(cli)?;
            for e in db.audit_log()? {
                print_json(&e.to_json());
            }
        }
    }
    Ok(())
}

/// `lethedb keys status`.
pub(super) fn keys(cli: &Cli, cmd: &KeysCmd) -> CliResult {
    match cmd {
        KeysCmd::Status => {
            let db = open(cli)?;
            print_json(&db.key_tree_status()?.to_json());
        }
        KeysCmd::RotateMaster => rotate_master(cli)?,
        KeysCmd::RotateBlindIndex => {
            let db = open(cli)?;
            let bar = indicatif::ProgressBar::new_spinner();
            let started = std::time::Instant::now();
            let done = db.rotate_blind_index(|p| {
                bar.set_message(format!(
                    "re-indexing: {} profiles, {} entries",
                    p.profiles, p.entries_moved
                ));
                bar.tick();
            })?;
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            print_json(&serde_json::json!({
                "generation": done.generation,
                "profiles": done.profiles,
                "entries_moved": done.entries_moved,
                "seconds": secs,
                "profiles_per_second": if secs > 0.0 { done.profiles as f64 / secs } else { 0.0 },
            }));
        }
    }
    Ok(())
}

/// `lethedb upgrade`: format v1 → v2 with a progress line on stderr.
pub(super) fn upgrade(cli: &Cli) -> CliResult {
    let db = open(cli)?;
    let bar = indicatif::ProgressBar::new_spinner();
    let started = std::time::Instant::now();
    let done = db.upgrade(|p| {
        bar.set_message(format!(
            "upgrading: {} profiles visited, {} rewritten",
            p.profiles, p.profiles_rewritten
        ));
        bar.tick();
    })?;
    bar.finish_and_clear();
    print_json(&serde_json::json!({
        "profiles": done.profiles,
        "profiles_rewritten": done.profiles_rewritten,
        "index_entries_rewritten": done.index_entries_rewritten,
        "finished": done.finished,
        "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(())
}

/// `lethedb keys rotate-master`: the new key goes to `<KEY>.next` (kept
/// from an interrupted run), the store moves to it, then it replaces the
/// key file (rename, directory fsync).
fn rotate_master(cli: &Cli) -> CliResult {
    let dir = need_db(&cli.db)?;
    if !Db::store_exists(&dir) {
        return Err(Error::StoreNotFound { path: dir }.into());
    }
    let key = key_path(cli, &dir);
    let next = staged_key_path(&key);
    let old = FileKeyProvider::new(&key);
    let new = if next.exists() {
        FileKeyProvider::new(&next)
    } else {
        FileKeyProvider::create(&next)?
    };
    let report = Db::rotate_master(&dir, &old, &new, base_options(cli)?)?;
    std::fs::rename(&next, &key).map_err(|e| Failure::new(format!("{}: {e}", key.display())))?;
    let parent = match key.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| Failure::new(format!("{}: {e}", parent.display())))?;
    let mut out = report.to_json();
    out["key_file"] = serde_json::json!(key.display().to_string());
    print_json(&out);
    Ok(())
}
