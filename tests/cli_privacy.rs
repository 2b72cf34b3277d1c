//! Issue 20 through the `lethedb` binary: `request …`, `hold …`,
//! `consent import-gpp`, `consent vendors`, `consent mode`; JSON out.

use std::process::{Command, Output};

fn run(d: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lethedb"))
        .args(args)
        .env("LETHEDB_DB", d)
        .env_remove("LETHEDB_KEY_FILE")
        .env_remove("LETHEDB_ROOT_KEYS")
        .output()
        .expect("run lethedb")
}

fn json(d: &str, args: &[&str]) -> serde_json::Value {
    let o = run(d, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// `request open` for profile `id`, with more arguments.
fn open_request(
    d: &str,
    id: &str,
    kind: &str,
    jurisdiction: &str,
    more: &[&str],
) -> serde_json::Value {
    let mut args = vec![
        "request",
        "open",
        "--id",
        id,
        "--kind",
        kind,
        "--jurisdiction",
        jurisdiction,
    ];
    args.extend_from_slice(more);
    json(d, &args)
}

fn store() -> (tempfile::TempDir, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("store").to_str().unwrap().to_string();
    assert!(run(&d, &["init"]).status.success());
    let o = run(
        &d,
        &["put", r#"{"email":"cli.req@example.com","plan":"pro"}"#],
    );
    assert!(o.status.success());
    let id = String::from_utf8(o.stdout).unwrap().trim().to_string();
    (tmp, d, id)
}

#[test]
fn requests_and_holds_from_the_command_line() {
    let (_t, d, id) = store();
    // Received two months ago under GDPR: overdue.
    let received = "2020-01-31T10:00:00Z";
    let r = open_request(&d, &id, "erasure", "EU", &["--received", received]);
    assert_eq!(r["due_at"], "2020-02-29T10:00:00.000000Z");
    assert_eq!(
        (r["status"].as_str(), r["overdue"].as_bool()),
        (Some("open"), Some(true))
    );
    let rid = r["id"].as_u64().unwrap().to_string();
    let soon = open_request(&d, &id, "access", "US-CA", &[]);
    let overdue = json(&d, &["request", "list", "--overdue"]);
    assert_eq!(overdue.as_array().unwrap().len(), 1);
    assert_eq!(overdue[0]["id"].as_u64(), r["id"].as_u64());
    assert_eq!(
        json(&d, &["request", "list", "--due-within", "7d"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        json(&d, &["request", "list", "--due-within", "46d"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        json(&d, &["request", "list", "--id", &id])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The overdue one extends, marked late (2020-01-31 + 3 months); the
    // new one by 45 days.
    let late = json(
        &d,
        &[
            "request",
            "extend",
            &rid,
            "--reason",
            "many systems to search",
        ],
    );
    assert_eq!(late["due_at"], "2020-04-30T10:00:00.000000Z");
    assert_eq!(late["extension"]["late"], true);
    let sid = soon["id"].as_u64().unwrap().to_string();
    let e = json(
        &d,
        &[
            "request",
            "extend",
            &sid,
            "--reason",
            "many systems to search",
        ],
    );
    assert_ne!(e["due_at"], soon["due_at"]);
    json(&d, &["request", "verify", &rid, "--by", "desk"]);

    // A hold: the request waits, forget is refused naming the hold.
    let h = json(
        &d,
        &[
            "hold",
            "place",
            "--id",
            &id,
            "--reason",
            "matter 2024-017",
            "--owner",
            "legal",
        ],
    );
    let hid = h["id"].as_u64().unwrap().to_string();
    assert_eq!(json(&d, &["request", "show", &rid])["status"], "on_hold");
    let o = run(&d, &["forget", "--id", &id]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("legal hold {hid}")), "{err}");
    assert_eq!(
        json(&d, &["hold", "list", "--id", &id])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    json(&d, &["hold", "release", &hid]);
    assert_eq!(json(&d, &["request", "show", &rid])["status"], "open");

    // The erasure runs; its certificate completes the request.
    assert!(run(&d, &["forget", "--id", &id]).status.success());
    assert!(run(&d, &["purge"]).status.success());
    let done = json(&d, &["request", "show", &rid]);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["evidence"]["erasure_certificate"]["erasure_id"], 1);
    assert_eq!(
        json(&d, &["request", "list", "--overdue"]),
        serde_json::json!([])
    );

    // The access request: reject needs a reason; bad input is typed.
    let o = run(&d, &["request", "complete", &sid]);
    assert_eq!(o.status.code(), Some(2));
    let rej = json(
        &d,
        &[
            "request",
            "reject",
            &sid,
            "--reason",
            "the person was erased",
        ],
    );
    assert_eq!(rej["status"], "rejected");
    let o = run(&d, &["request", "show", "99"]);
    assert_eq!(o.status.code(), Some(3));
    for bad in ["soon", "7日", "d"] {
        let o = run(&d, &["request", "list", "--due-within", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
    }
}

#[test]
fn gpp_vendors_and_consent_mode_from_the_command_line() {
    let (_t, d, id) = store();
    let stored = json(
        &d,
        &[
            "consent",
            "import-gpp",
            "--id",
            &id,
            "--gpc",
            "DBABBg~BVqqqqpY",
        ],
    );
    let sale = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["purpose"] == "sale_or_share")
        .unwrap()
        .clone();
    assert_eq!(
        (sale["status"].as_str(), sale["source"].as_str()),
        (Some("denied"), Some("gpc"))
    );
    let mode = json(&d, &["consent", "mode", "--id", &id]);
    assert_eq!(mode["ad_user_data"], "denied");
    let o = run(&d, &["consent", "import-gpp", "--id", &id, "DBABBg~BV"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid GPP string"));
    let vendors = |vendor: &str, purpose: &str| {
        let args = [
            "consent",
            "vendors",
            "--id",
            &id,
            "--vendor",
            vendor,
            "--purpose",
            purpose,
        ];
        json(&d, &args)
    };
    let v = vendors("5,6", "1");
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["allowed"], false);
    assert_eq!(v[0]["purpose"], "tcf:1");
    let v2 = vendors("5", "tcf:1");
    assert_eq!(v2[0], v[0]);
    // The GPP string as an option.
    let by_flag = json(
        &d,
        &[
            "consent",
            "import-gpp",
            "--id",
            &id,
            "--gpp",
            "DBABBg~BVVVVVVY",
        ],
    );
    assert!(by_flag.as_array().unwrap().len() > 2);
}
