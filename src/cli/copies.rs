//! Commands that copy a subject's data out: export, backup, restore.

use super::args::*;
use super::output::*;
use super::*;

/// `lethedb export`: everything about a person (Art. 15/20).
pub(super) fn export(cli: &Cli, subject: &SubjectArgs) -> CliResult {
    let db = open(cli)?;
    let id = subject.profile(&db)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&db.export(&id)?).map_err(|e| Failure::new(e.to_string()))?
    );
    Ok(())
}

/// `lethedb backup --to DIR`, `backup list`, `backup unregister`.
pub(super) fn backup(cli: &Cli, to: Option<&Path>, cmd: Option<&BackupCmd>) -> CliResult {
    let db = open(cli)?;
    let backup_json = |b: &lethedb::RegisteredBackup| {
        serde_json::json!({
            "number": b.number,
            "path": b.path.display().to_string(),
            "taken_at": b.taken_at.to_string(),
            "last_erasure": b.last_erasure,
            "purged_through": b.purged_through,
            "root_epoch": b.root_epoch,
        })
    };
    let to = match (to, cmd) {
        (Some(to), None) => to,
        (None, Some(BackupCmd::List)) => {
            for b in db.backups()? {
                print_json(&backup_json(&b));
            }
            return Ok(());
        }
        (None, Some(BackupCmd::Unregister { number })) => {
            let b = db.unregister_backup(*number)?;
            print_json(&serde_json::json!({ "unregistered": backup_json(&b) }));
            return Ok(());
        }
        _ => {
            return Err(Failure {
                code: 2,
                message: "backup needs --to DIR, or one of: list, unregister --number N".into(),
            })
        }
    };
    let info = db.backup(to)?;
    print_json(&serde_json::json!({
        "backup": info.path.display().to_string(),
        "last_erasure": info.last_erasure,
        "taken_at": info.taken_at.to_string(),
    }));
    Ok(())
}

/// `lethedb restore`: restore a backup and replay later erasures.
pub(super) fn restore(cli: &Cli, from: &Path, backup_root_keys: &Option<String>) -> CliResult {
    let dir = need_db(&cli.db)?;
    let key = cli.key_file.clone().ok_or_else(|| Failure {
        code: 2,
        message: "--key-file (the backed-up store's master key) is required for restore".into(),
    })?;
    let keys = FileKeyProvider::new(key);
    let mut options = Options::new().refuse_co_located_roots(cli.refuse_co_located_roots);
    if let Some(r) = backup_root_keys {
        options = options.backup_root_keys_in(RootKeys::from_spec(r)?);
    }
    if let Some(r) = &cli.root_keys {
        options = options.root_keys_in(RootKeys::from_spec(r)?);
    }
    let (db, report) = Db::restore(from, &dir, &keys, options)?;
    warn_on_open(&db);
    print_json(&serde_json::json!({
        "restored": dir.display().to_string(),
        "replayed_erasures": report.replayed,
        "already_present": report.already_present,
        "certificates": report.certificates.len(),
    }));
    for c in &report.certificates {
        println!("{c}");
    }
    Ok(())
}
