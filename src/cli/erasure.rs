//! Erasure commands: forget, purge, retention, unsuppress.

use super::args::*;
use super::output::*;
use super::*;

/// `lethedb forget`: erase a person, or some of their fields.
pub(super) fn forget(cli: &Cli, subject: &SubjectArgs, field: &Option<Vec<String>>) -> CliResult {
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
    Ok(())
}

/// `lethedb purge`: purge now; one certificate per line on stdout.
pub(super) fn purge(cli: &Cli) -> CliResult {
    let db = open(cli)?;
    let report = db.purge()?;
    for c in &report.certificates {
        println!("{c}");
    }
    eprintln!("{}", report.summary_json());
    Ok(())
}

/// `lethedb retention run`.
pub(super) fn retention(cli: &Cli, cmd: &RetentionCmd) -> CliResult {
    match cmd {
        RetentionCmd::Run { as_of } => {
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
    }
    Ok(())
}

/// `lethedb unsuppress`.
pub(super) fn unsuppress(cli: &Cli, id: &LookupArgs) -> CliResult {
    let db = open(cli)?;
    let ident = id.identifier().ok_or_else(|| Failure {
        code: 2,
        message: "give one identifier".into(),
    })?;
    print_json(&serde_json::json!({ "unsuppressed": db.unsuppress(&ident)? }));
    Ok(())
}
