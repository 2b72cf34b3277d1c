//! The `lethedb` binary: init, put, get, stats, and its errors.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn lethedb(args: &[&str], env_dir: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lethedb"));
    c.args(args)
        .env_remove("LETHEDB_DB")
        .env_remove("LETHEDB_KEY_FILE");
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
