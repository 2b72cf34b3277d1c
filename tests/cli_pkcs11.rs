//! The CLI with roots in a PKCS#11 token (SoftHSM2, a configuration and
//! token directory of this test's own), and the co-location warning and
//! refusal for root files beside the store.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn lethedb(args: &[&str], conf: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lethedb"));
    c.args(args)
        .env_remove("LETHEDB_DB")
        .env_remove("LETHEDB_KEY_FILE")
        .env_remove("LETHEDB_ROOT_KEYS")
        .env_remove("LETHEDB_REFUSE_CO_LOCATED_ROOTS");
    if let Some(conf) = conf {
        c.env("SOFTHSM2_CONF", conf);
    }
    c.output().expect("run lethedb")
}

fn ok(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.lines().next().unwrap_or("")).unwrap_or(serde_json::Value::Null)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn roots_in_a_token_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (conf, label, pin) = common::softhsm::child_token(&tmp.path().join("hsm"), "cli");
    let uri = format!(
        "pkcs11:token={label};object=crm?module-path={}&pin-source=file:{}",
        common::softhsm::module().display(),
        pin.display()
    );
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--db", d, "--root-keys", &uri]);
        lethedb(&all, Some(&conf))
    };
    let o = run(&["init"]);
    ok(&o);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(
        !tmp.path().join("store.rootkeys").exists(),
        "no root file on disk"
    );
    let o = run(&["put", r#"{"name":"Ada"}"#]);
    let id = ok(&o)["profile_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let o = run(&["get", "--id", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    ok(&run(&["forget", "--id", &id]));
    let o = run(&["purge"]);
    let cert = ok(&o);
    let place = cert["certificate"]["root_destroyed_in"].as_str().unwrap();
    assert!(
        place.starts_with(&format!("pkcs11 token \"{label}\"")) && place.contains("\"crm.1\""),
        "{place}"
    );
    let status = ok(&run(&["keys", "status"]));
    assert_eq!(status["root_location"]["kind"], "pkcs11");
    assert_eq!(status["root_location"]["token"], label.as_str());
    assert_eq!(status["root_co_located"], false);
    assert_eq!(status["root_epochs_held"], serde_json::json!([2]));
    assert!(status["root_object"]
        .as_str()
        .unwrap()
        .contains("\"crm.2\""));
    // Without the token the store does not open.
    let o = lethedb(&["get", "--db", d, "--id", &id], Some(&conf));
    assert!(!o.status.success());
    // A PIN on the command line is refused before anything is opened.
    let with_pin = uri.replace(
        &format!("pin-source=file:{}", pin.display()),
        "pin-value=4711",
    );
    let o = lethedb(
        &["keys", "status", "--db", d, "--root-keys", &with_pin],
        Some(&conf),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("pin-value is refused"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("4711"), "{}", stderr(&o));
}

#[test]
fn a_root_file_beside_the_store_warns_and_can_be_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    let o = lethedb(&["init", "--db", d, "--refuse-co-located-roots"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("file system"), "{}", stderr(&o));
    assert!(!dir.join("CURRENT").exists(), "nothing created");
    let o = lethedb(&["init", "--db", d], None);
    ok(&o);
    assert!(
        stderr(&o).contains("warning: the root key file"),
        "{}",
        stderr(&o)
    );
    let o = lethedb(&["keys", "status", "--db", d], None);
    assert_eq!(ok(&o)["root_co_located"], true);
    assert!(stderr(&o).contains("warning:"), "{}", stderr(&o));
}
