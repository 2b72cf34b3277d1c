//! The `lethedb` binary: init, put, get, stats, and its errors.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn lethedb(args: &[&str], env_dir: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lethedb"));
    c.args(args)
        .env_remove("LETHEDB_DB")
        .env_remove("LETHEDB_KEY_FILE")
        .env_remove("LETHEDB_ROOT_KEYS");
    if let Some(d) = env_dir {
        c.env("LETHEDB_DB", d);
    }
    c.output().expect("run lethedb")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs a Python snippet with `input` on stdin; `None` when there is no python3.
fn python_json(script: &str, input: &str) -> Option<String> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "python3 failed");
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

/// A valid TCF v2 TC string (core segment).
const TC_STRING: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";

fn consent_set(d: &str, id: &str, purpose: &str, status: &str) -> Output {
    lethedb(
        &[
            "consent",
            "set",
            "--db",
            d,
            "--id",
            id,
            "--purpose",
            purpose,
            "--status",
            status,
        ],
        None,
    )
}

fn import_tcf(d: &str, id: &str) -> Output {
    lethedb(
        &["consent", "import-tcf", "--db", d, "--id", id, TC_STRING],
        None,
    )
}

#[test]
fn init_put_get_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();

    let o = lethedb(&["init", "--db", d], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = tmp.path().join("store.key");
    assert!(key.exists(), "key file beside the directory");
    assert!(!dir.join("store.key").exists());
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // init refuses to overwrite the store or the key.
    let o = lethedb(&["init", "--db", d], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    let o = lethedb(
        &[
            "put",
            "--db",
            d,
            r#"{"email":"ada@example.com","age":36,"tags":["a"],"addr":{"city":"London"}}"#,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o);
    assert_eq!(id.len(), 32, "prints the new id: {id}");

    let o = lethedb(
        &[
            "put",
            "--db",
            d,
            "--id",
            &id,
            r#"{"age":37,"phone":"+15550100"}"#,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let o = lethedb(&["get", "--id", &id], Some(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["profile_id"], id.as_str());
    assert_eq!(v["fields"]["email"], "ada@example.com");
    assert_eq!(v["fields"]["age"], 37);
    assert_eq!(v["fields"]["tags"], serde_json::json!(["a"]));
    assert_eq!(v["fields"]["addr"]["city"], "London");

    let o = lethedb(
        &["get", "--db", d, "--id", &id, "--fields", "age,phone"],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["fields"],
        serde_json::json!({"age": 37, "phone": "+15550100"})
    );

    // null removes a field.
    let o = lethedb(&["put", "--db", d, "--id", &id, r#"{"phone":null}"#], None);
    assert!(o.status.success());
    let o = lethedb(&["get", "--db", d, "--id", &id], None);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["fields"].get("phone").is_none());

    let o = lethedb(&["stats", "--db", d, "--exact"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("profiles") && s.contains("keys") && s.contains("profiles (exact): 1"),
        "{s}"
    );
}

#[test]
fn errors_are_reported_with_nonzero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();

    let o = lethedb(
        &["get", "--db", d, "--id", "00000000000000000000000000000000"],
        None,
    );
    assert_eq!(o.status.code(), Some(3), "missing store: {}", stderr(&o));
    assert!(stderr(&o).contains("no lethedb store"));

    assert!(lethedb(&["init", "--db", d], None).status.success());

    let o = lethedb(&["put", "--db", d, "{not json"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad JSON"), "{}", stderr(&o));

    let o = lethedb(
        &["get", "--db", d, "--id", "00000000000000000000000000000000"],
        None,
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("not found"));

    let o = lethedb(&["get", "--db", d, "--id", "xyz"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid profile id"));

    // A different key file: wrong key.
    let other = tmp.path().join("other");
    assert!(lethedb(&["init", "--db", other.to_str().unwrap()], None)
        .status
        .success());
    let o = lethedb(
        &[
            "get",
            "--db",
            d,
            "--key-file",
            tmp.path().join("other.key").to_str().unwrap(),
            "--id",
            "00000000000000000000000000000000",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong master key"));

    let o = lethedb(&["get", "--id", "00000000000000000000000000000000"], None);
    assert_eq!(o.status.code(), Some(2), "no --db: usage error");
}

#[test]
fn demo_runs_small_and_finds_no_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = lethedb(
        &[
            "demo",
            "--db",
            dir.to_str().unwrap(),
            "--profiles",
            "2000",
            "--seed",
            "7",
        ],
        None,
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("found    0 plaintext occurrences"), "{out}");
    assert!(out.contains("0 mismatches"), "{out}");
}

#[test]
fn junk_phones_do_not_merge_strangers_and_errors_do_not_echo_them() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            // Two strangers who both typed a junk number.
            r#"{"type":"identify","anonymousId":"stranger-1","traits":{"phone":"12345"}}"#,
            r#"{"type":"identify","anonymousId":"stranger-2","traits":{"phone":"12345"}}"#,
            // A US number under --default-region GB: invalid in GB, so
            // rejected, never re-read as a US number.
            r#"{"type":"identify","userId":"u-3","traits":{"phone":"212 555 0100"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let ev = events.to_str().unwrap();

    // Strict (the default): the junk number is no identifier.
    let strict = tmp.path().join("strict");
    let d = strict.to_str().unwrap();
    assert!(lethedb(&["init", "--db", d], None).status.success());
    let o = lethedb(&["ingest", "--db", d, ev, "--default-region", "GB"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["profiles_created"], 3, "{summary}");
    assert_eq!(summary["merges"], 0, "{summary}");
    assert_eq!(summary["identifiers_rejected"], 3, "{summary}");
    let err = stderr(&o);
    assert!(err.contains("line 3: rejected phone identifier"), "{err}");
    for secret in ["12345", "212 555", "2125550100"] {
        assert!(
            !err.contains(secret),
            "an identifier reached the log: {err}"
        );
    }
    let o = lethedb(&["lookup", "--db", d, "--phone", "+1 212 555 0100"], None);
    assert_eq!(
        o.status.code(),
        Some(3),
        "indexed as a US number: {}",
        stdout(&o)
    );
    // A refused lookup names the problem, not the value.
    let o = lethedb(&["lookup", "--db", d, "--phone", "call 0"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid phone identifier"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("call 0"), "{}", stderr(&o));

    let profile_of = |d: &str, anon: &str| -> serde_json::Value {
        let o = lethedb(&["lookup", "--db", d, "--anonymous-id", anon], None);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["profile_id"].clone()
    };
    assert_ne!(profile_of(d, "stranger-1"), profile_of(d, "stranger-2"));

    // Lenient: the junk number is kept, so the two strangers become one
    // profile — the reason strict is the default.
    let lenient = tmp.path().join("lenient");
    let d = lenient.to_str().unwrap();
    let o = lethedb(&["init", "--db", d, "--phone-validation", "lenient"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lethedb(&["ingest", "--db", d, ev], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["profiles_created"], 2, "{summary}");
    assert_eq!(profile_of(d, "stranger-1"), profile_of(d, "stranger-2"));
    // Found again by the same junk spelling.
    let o = lethedb(&["lookup", "--db", d, "--phone", "12345"], None);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn ingest_lookup_merges_unmerge() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    assert!(
        lethedb(&["init", "--db", d, "--default-region", "GB"], None)
            .status
            .success()
    );
    let events = tmp.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            r#"{"type":"identify","anonymousId":"anon-1","traits":{"email":"Ada@Example.com","plan":"free"},"messageId":"m1"}"#,
            r#"{"type":"identify","userId":"user-1","traits":{"phone":"020 7183 8750","name":"Ada"},"context":{"device":{"id":"dev-1"}}}"#,
            "",
            r#"{"type":"identify" this is not json"#,
            r#"{"type":"track","anonymousId":"anon-2","event":"Viewed"}"#,
            r#"{"type":"alias","previousId":"anon-1","userId":"user-1"}"#,
            r#"{"type":"identify","userId":"undefined"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let o = lethedb(&["ingest", "--db", d, events.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["records"], 5, "{summary}");
    assert_eq!(summary["malformed_lines"], 1);
    assert_eq!(summary["profiles_created"], 3);
    assert_eq!(summary["merges"], 1);
    assert_eq!(summary["identifiers_rejected"], 1);
    let err = stderr(&o);
    assert!(
        err.contains("line 4: skipped") && err.contains("bad JSON"),
        "{err}"
    );
    assert!(
        err.contains("line 7: rejected user_id identifier: blocked"),
        "{err}"
    );
    assert!(
        !err.contains("Ada@Example.com"),
        "identifier values never go to logs"
    );

    // --strict stops at the malformed line.
    let o = lethedb(
        &["ingest", "--db", d, "--strict", events.to_str().unwrap()],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 4"));

    // Lookup by any spelling; GB numbers without country code.
    let o = lethedb(&["lookup", "--db", d, "--email", " ADA@example.com"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["fields"]["name"], "Ada");
    assert_eq!(p["fields"]["plan"], "free");
    let id = p["profile_id"].as_str().unwrap().to_string();
    let o = lethedb(&["lookup", "--db", d, "--phone", "+44 20 7183 8750"], None);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["profile_id"],
        id.as_str()
    );
    let o = lethedb(
        &[
            "lookup",
            "--db",
            d,
            "--phone",
            "(020) 7183-8750",
            "--default-region",
            "GB",
        ],
        None,
    );
    assert!(o.status.success());
    let o = lethedb(&["lookup", "--db", d, "--user-id", "nobody"], None);
    assert_eq!(o.status.code(), Some(3));

    let o = lethedb(&["merges", "--db", d, "--id", &id], None);
    let merges: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(merges.as_array().unwrap().len(), 1);
    assert_eq!(merges[0]["reason"], "alias");
    let merge_id = merges[0]["merge_id"].as_str().unwrap().to_string();
    let merged = merges[0]["merged"].as_str().unwrap().to_string();

    let o = lethedb(&["unmerge", "--db", d, &merge_id], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lethedb(&["lookup", "--db", d, "--user-id", "user-1"], None);
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["profile_id"], merged.as_str());
    assert_eq!(p["fields"]["name"], "Ada");
    assert!(p["fields"].get("plan").is_none());
    let o = lethedb(&["unmerge", "--db", d, &merge_id], None);
    assert_eq!(o.status.code(), Some(1), "second unmerge refused");
}

#[test]
fn consent_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    assert!(lethedb(&["init", "--db", d], None).status.success());
    let schema = tmp.path().join("schema.json");
    std::fs::write(&schema, r#"{"fields":{"email":{"class":"personal","purposes":["email_marketing"]},"plan":{"class":"non_personal"}}}"#).unwrap();
    assert!(lethedb(
        &["schema", "set", "--db", d, schema.to_str().unwrap()],
        None
    )
    .status
    .success());
    let o = lethedb(
        &[
            "put",
            "--db",
            d,
            r#"{"email":"ada@example.com","plan":"pro","phone":"+15550100"}"#,
        ],
        None,
    );
    let id = stdout(&o);

    let read = |purpose: &str| -> serde_json::Value {
        let o = lethedb(&["get", "--db", d, "--id", &id, "--purpose", purpose], None);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let r = read("email_marketing");
    assert_eq!(r["fields"], serde_json::json!({"plan": "pro"}));
    assert!(r["withheld"]["email"]
        .as_str()
        .unwrap()
        .contains("no consent"));

    let o = lethedb(
        &[
            "consent",
            "set",
            "--db",
            d,
            "--id",
            &id,
            "--purpose",
            "email_marketing",
            "--status",
            "granted",
            "--source",
            "signup-form",
            "--policy-version",
            "v2",
            "--at",
            "2024-01-01T00:00:00Z",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read("email_marketing")["fields"]["email"],
        "ada@example.com"
    );

    let o = lethedb(
        &[
            "consent",
            "set",
            "--db",
            d,
            "--id",
            &id,
            "--purpose",
            "email_marketing",
            "--status",
            "withdrawn",
            "--at",
            "2024-06-01T00:00:00Z",
        ],
        None,
    );
    assert!(o.status.success());
    let o = lethedb(&["consent", "get", "--db", d, "--id", &id], None);
    let states: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(states[0]["purpose"], "email_marketing");
    assert_eq!(states[0]["status"], "withdrawn");
    assert_eq!(states[0]["legal_basis"], "consent");
    assert!(states[0]["timestamp"]
        .as_str()
        .unwrap()
        .starts_with("2024-06-01"));
    let o = lethedb(
        &[
            "consent",
            "get",
            "--db",
            d,
            "--id",
            &id,
            "--purpose",
            "email_marketing",
            "--at",
            "2024-03-01T00:00:00Z",
        ],
        None,
    );
    let at: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(at[0]["status"], "granted");
    let o = lethedb(&["consent", "history", "--db", d, "--id", &id], None);
    let h: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2);

    let o = import_tcf(d, &id);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lethedb(&["consent", "who", "--db", d, "--purpose", "tcf:3"], None);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(),
        serde_json::json!([id])
    );
    let o = lethedb(
        &["consent", "who", "--db", d, "--purpose", "email_marketing"],
        None,
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(),
        serde_json::json!([])
    );

    let o = lethedb(
        &[
            "consent",
            "import-tcf",
            "--db",
            d,
            "--id",
            &id,
            "not*a*tc*string",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid TC string"));
    let o = lethedb(
        &[
            "consent",
            "set",
            "--db",
            d,
            "--id",
            &id,
            "--purpose",
            "email_marketing",
            "--status",
            "maybe",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown consent status"));

    let o = lethedb(
        &[
            "consent",
            "flags",
            "--db",
            d,
            "--id",
            &id,
            "--restricted",
            "true",
        ],
        None,
    );
    assert!(o.status.success());
    assert!(read("tcf:3")["fields"].as_object().unwrap().is_empty());
}

#[test]
fn import_tcf_prints_stored_records_and_purposes_sort_by_number() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    assert!(lethedb(&["init", "--db", d], None).status.success());
    let id = stdout(&lethedb(&["put", "--db", d, r#"{"plan":"pro"}"#], None));
    let o = consent_set(d, &id, "analytics", "granted");
    assert!(o.status.success(), "{}", stderr(&o));
    let before = lethedb::Timestamp::now();
    let o = import_tcf(d, &id);
    let after = lethedb::Timestamp::now();
    assert!(o.status.success(), "{}", stderr(&o));
    let imported: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let tcf: Vec<String> = (1..=11).map(|p| format!("tcf:{p}")).collect();
    let purposes = |v: &[serde_json::Value]| -> Vec<String> {
        v.iter()
            .map(|r| r["purpose"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(purposes(&imported), tcf);
    let when = |r: &serde_json::Value| -> lethedb::Timestamp {
        lethedb::Timestamp::parse_rfc3339(r["recorded_at"].as_str().expect("recorded_at")).unwrap()
    };
    for r in &imported {
        let t = when(r);
        assert!(
            t >= before && t <= after,
            "recorded_at {t} not within the call"
        );
    }

    // `consent get` shows the same records, TCF purposes by number.
    let o = lethedb(&["consent", "get", "--db", d, "--id", &id], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let current: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let mut want = vec!["analytics".to_string()];
    want.extend(tcf.iter().cloned());
    assert_eq!(purposes(&current), want);
    for r in &imported {
        let shown = current
            .iter()
            .find(|c| c["purpose"] == r["purpose"])
            .unwrap();
        assert_eq!(
            shown, r,
            "import-tcf printed something else than was stored"
        );
    }
    // The same order at a point in time.
    let o = lethedb(
        &[
            "consent",
            "get",
            "--db",
            d,
            "--id",
            &id,
            "--at",
            &after.to_string(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let at: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(purposes(&at), want);
    // History: oldest recording first, one call's records in the order given.
    let o = lethedb(&["consent", "history", "--db", d, "--id", &id], None);
    let h: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(purposes(&h), want);
    let times: Vec<lethedb::Timestamp> = h.iter().map(when).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
}

#[test]
fn forget_purge_certificate_audit_export_backup_restore_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    assert!(lethedb(&["init", "--db", d], None).status.success());
    let events = tmp.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            r#"{"type":"identify","userId":"u-1","traits":{"email":"ada@example.com","name":"Ada"}}"#,
            r#"{"type":"identify","userId":"u-2","traits":{"email":"bob@example.com","name":"Bob","city":"Oslo"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    assert!(
        lethedb(&["ingest", "--db", d, events.to_str().unwrap()], None)
            .status
            .success()
    );

    // Export by identifier.
    let o = lethedb(&["export", "--db", d, "--email", "ada@example.com"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let bundle: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(bundle["fields"]["name"], "Ada");
    let ada = bundle["profile_id"].as_str().unwrap().to_string();

    // Backup before the erasure.
    let backup = tmp.path().join("backup");
    let o = lethedb(
        &["backup", "--db", d, "--to", backup.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Forget by e-mail: the receipt.
    let o = lethedb(&["forget", "--db", d, "--email", "ada@example.com"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let receipt: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(receipt["status"], "pending_purge");
    assert_eq!(receipt["profiles"][0], ada.as_str());
    let o = lethedb(&["get", "--db", d, "--id", &ada], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("erased"));
    // Field erasure of the other person.
    let o = lethedb(
        &[
            "forget",
            "--db",
            d,
            "--email",
            "bob@example.com",
            "--field",
            "city",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Purge prints one certificate per line.
    let status = |d: &str| -> serde_json::Value {
        let o = lethedb(&["keys", "status", "--db", d], None);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let before = status(d);
    assert_eq!(before["root_epoch"], 1);
    assert_eq!(before["pending_purges"], 2);
    assert_eq!(
        (before["fanout"].as_u64(), before["depth"].as_u64()),
        (Some(1024), Some(2))
    );
    assert!(
        tmp.path().join("store.rootkeys").exists(),
        "root file beside the directory"
    );
    let o = lethedb(&["purge", "--db", d], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let certs: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(certs.len(), 2);
    let after = status(d);
    assert_eq!(after["pending_purges"], 0);
    let epoch = after["root_epoch"].as_u64().unwrap();
    assert!(epoch > 1);
    let cert_json: serde_json::Value = serde_json::from_str(&certs[0]).unwrap();
    assert_eq!(cert_json["certificate"]["root_epoch_destroyed"], 1);
    assert_eq!(cert_json["certificate"]["root_epoch"], epoch);
    assert_eq!(cert_json["certificate"]["backups_rekeyed"], 1);
    // Held: the live root and the re-keyed backup's root, nothing older.
    assert_eq!(
        after["root_epochs_held"].as_array().unwrap().len(),
        2,
        "{after}"
    );
    let backup_epoch = after["backups"][0]["root_epoch"].as_u64().unwrap();
    assert_ne!(backup_epoch, epoch);
    assert!(after["root_epochs_held"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(backup_epoch)));
    let cert = tmp.path().join("cert.json");
    std::fs::write(&cert, &certs[0]).unwrap();
    let o = lethedb(&["certificate", "public-key", "--db", d], None);
    assert!(o.status.success());
    let pk = tmp.path().join("pub.hex");
    std::fs::write(&pk, stdout(&o)).unwrap();
    let (pk_s, cert_s) = (pk.to_str().unwrap(), cert.to_str().unwrap());
    let o = lethedb(
        &["certificate", "verify", "--public-key", pk_s, cert_s],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lethedb(
        &[
            "certificate",
            "verify",
            "--db",
            d,
            "--public-key",
            pk_s,
            cert_s,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"chain_checked\":true"));
    // Written back by Python's json module (spaces after ':' and ',', then
    // pretty-printed with keys sorted in reverse): still verifies, and a
    // value changed by the same tool fails.
    for (script, must_verify) in [
        ("json.dump(json.load(sys.stdin), sys.stdout)", true),
        (
            "d=json.load(sys.stdin); r=lambda o: {k: r(o[k]) for k in sorted(o, reverse=True)} if isinstance(o, dict) else o; json.dump(r(d), sys.stdout, indent=4)",
            true,
        ),
        (
            "d=json.load(sys.stdin); d['certificate']['profiles_erased'] += 1; json.dump(d, sys.stdout)",
            false,
        ),
    ] {
        let Some(rewritten) = python_json(&format!("import json,sys; {script}"), &certs[0]) else {
            eprintln!("python3 not found: skipping the json.dump round trip");
            break;
        };
        assert_ne!(rewritten.trim(), certs[0]);
        let path = tmp.path().join("cert-python.json");
        std::fs::write(&path, &rewritten).unwrap();
        let o = lethedb(
            &["certificate", "verify", "--public-key", pk_s, path.to_str().unwrap()],
            None,
        );
        assert_eq!(o.status.success(), must_verify, "{script}: {}", stderr(&o));
    }
    let tampered = certs[0].replacen("\"erasure_id\":1", "\"erasure_id\":7", 1);
    assert_ne!(tampered, certs[0]);
    std::fs::write(&cert, tampered).unwrap();
    let o = lethedb(
        &["certificate", "verify", "--public-key", pk_s, cert_s],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("certificate rejected"));

    // Audit verify needs no key file.
    let o = Command::new(env!("CARGO_BIN_EXE_lethedb"))
        .args(["audit", "verify", "--db", d, "--key-file", "/nonexistent"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"valid\":true"));
    assert!(stdout(&o).contains("\"head_sealed\":false"));
    let o = lethedb(&["audit", "list", "--db", d], None);
    assert!(stdout(&o)
        .lines()
        .any(|l| l.contains("\"kind\":\"forget\"")));

    // Re-ingest of the forgotten e-mail is suppressed; unsuppress lifts it.
    let again = tmp.path().join("again.ndjson");
    std::fs::write(
        &again,
        r#"{"type":"identify","anonymousId":"a-9","traits":{"email":"ada@example.com"}}"#,
    )
    .unwrap();
    let o = lethedb(&["ingest", "--db", d, again.to_str().unwrap()], None);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["identifiers_suppressed"], 1, "{summary}");
    let o = lethedb(
        &["unsuppress", "--db", d, "--email", "ada@example.com"],
        None,
    );
    assert!(stdout(&o).contains("true"));

    // Restore of the pre-erasure backup does not bring Ada back.
    let restored = tmp.path().join("restored");
    let key = tmp.path().join("store.key");
    let o = lethedb(
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--db",
            restored.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = restored.to_str().unwrap();
    let k = key.to_str().unwrap();
    let o = lethedb(&["get", "--db", r, "--key-file", k, "--id", &ada], None);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let o = lethedb(
        &[
            "lookup",
            "--db",
            r,
            "--key-file",
            k,
            "--email",
            "bob@example.com",
        ],
        None,
    );
    assert!(o.status.success());
    assert!(!stdout(&o).contains("Oslo"));

    // Retention run with nothing configured erases nothing.
    let o = lethedb(&["retention", "run", "--db", d], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"fields_erased\":0"));
}

/// Issue 17, item 10: `init` refuses a key file inside the store directory
/// however the paths are spelled (relative, `.`/`..`, a symbolic link),
/// not only when one is a textual prefix of the other.
#[test]
fn init_refuses_a_key_file_inside_the_store_however_spelled() {
    let dir = tempfile::tempdir().unwrap();
    // An empty directory made in advance (as an operator would mount one).
    std::fs::create_dir_all(dir.path().join("store/sub")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("store"), dir.path().join("alias")).unwrap();
    // `sublink/..` is the store itself on disk, the temp dir as text.
    std::os::unix::fs::symlink(dir.path().join("store/sub"), dir.path().join("sublink")).unwrap();
    for (db, key) in [
        ("./store", "store/k"),
        ("store", "./store/sub/../k"),
        ("store/../store", "store/k"),
        ("store", "alias/k"),
        ("store", "sublink/../k"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_lethedb"))
            .current_dir(dir.path())
            .args(["init", "--db", db, "--key-file", key])
            .env_remove("LETHEDB_DB")
            .env_remove("LETHEDB_KEY_FILE")
            .env_remove("LETHEDB_ROOT_KEYS")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{db} {key}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("must not be inside the store directory"),
            "{db} {key}: {}",
            stderr(&out)
        );
        assert!(!dir.path().join("store/k").exists());
    }
    // Beside the store it is accepted.
    let out = Command::new(env!("CARGO_BIN_EXE_lethedb"))
        .current_dir(dir.path())
        .args(["init", "--db", "./store", "--key-file", "./store.key"])
        .env_remove("LETHEDB_DB")
        .env_remove("LETHEDB_KEY_FILE")
        .env_remove("LETHEDB_ROOT_KEYS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `backup list` and `backup unregister` (issue 17, item 4).
#[test]
fn backups_are_listed_and_unregistered() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let d = db.to_str().unwrap();
    assert!(lethedb(&["init", "--db", d], None).status.success());
    let b = tmp.path().join("b1");
    let o = lethedb(&["backup", "--db", d, "--to", b.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lethedb(&["backup", "--db", d, "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(listed["path"], b.canonicalize().unwrap().to_str().unwrap());
    assert!(listed["root_epoch"].is_u64());
    let n = listed["number"].as_u64().unwrap().to_string();
    let o = lethedb(&["backup", "--db", d, "unregister", "--number", &n], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("unregistered"));
    let o = lethedb(&["backup", "--db", d, "list"], None);
    assert_eq!(stdout(&o), "");
    // Neither --to nor a subcommand: a usage error.
    assert_eq!(lethedb(&["backup", "--db", d], None).status.code(), Some(2));
}

/// `audit checkpoint` and `audit verify --checkpoint` (issue 17, item 8).
#[test]
fn audit_checkpoints_are_written_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let d = db.to_str().unwrap();
    assert!(lethedb(&["init", "--db", d], None).status.success());
    let o = lethedb(&["audit", "checkpoint", "--db", d], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = tmp.path().join("checkpoint.json");
    std::fs::write(&file, stdout(&o)).unwrap();
    let o = lethedb(&["certificate", "public-key", "--db", d], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let pk = tmp.path().join("store.pub");
    std::fs::write(&pk, stdout(&o)).unwrap();
    let f = file.to_str().unwrap().to_string();
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--db", d, "--checkpoint", f.as_str()];
        args.extend_from_slice(extra);
        lethedb(&args, None)
    };
    let o = verify(&["--public-key", pk.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["valid"], true);
    // The key file is beside the store: the head's seal was checked too.
    assert_eq!(v["head_sealed"], true);
    assert!(v["checkpoint_seq"].as_u64().unwrap() >= 1);
    std::fs::write(&file, "{\"checkpoint\":{}}").unwrap();
    let o = verify(&[]);
    assert!(!o.status.success());
}
