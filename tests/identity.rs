//! Identity: normalised lookups, blind index, resolution, merge rules,
//! merge and unmerge, concurrency.

mod common;

use std::sync::Arc;

use common::*;
use lethedb::{
    forensics, Db, IdType, Identifier, IdentityConfig, MergeRules, Options, RejectReason, Schema,
    Update, Value,
};
use sha2::{Digest, Sha256};

fn open_with(path: &std::path::Path, rules: MergeRules) -> Db {
    let cfg = IdentityConfig {
        rules,
        ..IdentityConfig::default()
    };
    Db::open(
        path,
        &key(1),
        Options::new().create_if_missing(true).identity(cfg),
    )
    .unwrap()
}

#[test]
fn lookup_finds_every_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let out = db
        .resolve(
            &[
                Identifier::email("Ada@Example.com"),
                Identifier::phone("+1 (415) 555-0100"),
            ],
            Update::new().set("name", "Ada"),
        )
        .unwrap();
    let id = out.profile.unwrap();
    assert!(out.created);
    assert_eq!(out.attached, 2);
    for e in ["ada@example.com", " ADA@EXAMPLE.COM ", "Ada@Example.com"] {
        assert_eq!(db.lookup(&Identifier::email(e)).unwrap(), Some(id), "{e:?}");
    }
    for p in ["+1 (415) 555-0100", "415-555-0100", "+14155550100"] {
        assert_eq!(db.lookup(&Identifier::phone(p)).unwrap(), Some(id), "{p:?}");
    }
    assert_eq!(
        db.lookup(&Identifier::email("other@example.com")).unwrap(),
        None
    );
    assert_eq!(
        db.lookup(&Identifier::user_id("ada@example.com")).unwrap(),
        None,
        "types are separate"
    );
    // Identifiers are kept raw (encrypted) in the profile.
    let ids = db.identifiers(&id).unwrap();
    assert!(ids.contains(&Identifier::email("Ada@Example.com")));
    // System fields never show up as profile fields.
    assert_eq!(
        db.get(&id).unwrap().fields.keys().collect::<Vec<_>>(),
        ["name"]
    );
    assert!(matches!(
        db.lookup(&Identifier::phone("not a number")),
        Err(lethedb::Error::InvalidIdentifier { .. })
    ));
}

#[test]
fn no_identifier_or_its_sha256_on_disk_after_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let db = create(&path, &key(1));
    let schema = db.schema();
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for i in 0..200 {
        let email = format!("person{i:04}.marker@example.org");
        let phone = format!("+1415555{:04}", 1000 + i);
        let user = format!("user-marker-{i:06}");
        let anon = format!("anon-marker-{i:06}");
        let device = format!("device-marker-{i:06}");
        let line = serde_json::json!({
            "type": "identify", "userId": user, "anonymousId": anon,
            "context": {"device": {"id": device}},
            "traits": {"email": email, "phone": phone},
        })
        .to_string();
        let event = lethedb::ingest::parse_event(&schema, &line).unwrap();
        lethedb::ingest::apply_event(&db, event).unwrap();
        if i % 2 == 0 {
            let alias = serde_json::json!({"type": "alias", "previousId": anon, "userId": user})
                .to_string();
            lethedb::ingest::apply_event(
                &db,
                lethedb::ingest::parse_event(&schema, &alias).unwrap(),
            )
            .unwrap();
        }
        for v in [email, phone, user, anon, device] {
            let digest = Sha256::digest(v.as_bytes());
            needles.push(digest.to_vec());
            needles.push(hex(&digest).into_bytes());
            needles.push(v.into_bytes());
        }
    }
    assert!(db
        .lookup(&Identifier::email("person0007.marker@example.org"))
        .unwrap()
        .is_some());
    db.compact().unwrap();
    drop(db);
    let report = forensics::scan_dir(&path, &needles).unwrap();
    assert!(report.bytes > 10_000);
    assert!(
        report.hits.is_empty(),
        "found on disk: {:?}",
        &report.hits[..report.hits.len().min(5)]
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn shared_identifier_merges_into_oldest_and_unmerge_restores_both() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let a = db
        .resolve(
            &[Identifier::email("a@example.com")],
            Update::new().set("city", "Oslo").set("plan", "free"),
        )
        .unwrap()
        .profile
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let b = db
        .resolve(
            &[Identifier::device_id("dev-1")],
            Update::new().set("plan", "pro").set("shoe", 42),
        )
        .unwrap()
        .profile
        .unwrap();
    let out = db
        .resolve(
            &[
                Identifier::email("a@example.com"),
                Identifier::device_id("dev-1"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.profile, Some(a), "survivor is the oldest profile");
    assert_eq!(out.merges.len(), 1);
    let merged = db.get(&a).unwrap();
    assert_eq!(merged.fields["city"], Value::from("Oslo"));
    assert_eq!(
        merged.fields["plan"],
        Value::from("pro"),
        "latest write wins"
    );
    assert_eq!(merged.fields["shoe"], Value::Int(42));
    // The merged-away id redirects.
    assert_eq!(db.get(&b).unwrap().id, a);
    assert_eq!(db.lookup(&Identifier::device_id("dev-1")).unwrap(), Some(a));
    let infos = db.merges(&b).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!((infos[0].survivor, infos[0].merged), (a, b));
    assert_eq!(infos[0].reason, "shared_identifier");

    // Writes after the merge: through b's id and through b's identifier.
    db.upsert(&b, Update::new().set("shoe", 43)).unwrap();
    db.resolve(
        &[Identifier::device_id("dev-1")],
        Update::new().set("color", "red"),
    )
    .unwrap();
    db.resolve(
        &[Identifier::email("a@example.com")],
        Update::new().set("city", "Bergen"),
    )
    .unwrap();

    let (s, r) = db.unmerge(&out.merges[0]).unwrap();
    assert_eq!((s, r), (a, b));
    let pa = db.get(&a).unwrap();
    let pb = db.get(&b).unwrap();
    assert_eq!(pb.id, b);
    assert_eq!(pa.fields.get("city"), Some(&Value::from("Bergen")));
    assert_eq!(
        pa.fields.get("plan"),
        Some(&Value::from("free")),
        "survivor gets its displaced value back"
    );
    assert!(!pa.fields.contains_key("shoe") && !pa.fields.contains_key("color"));
    assert_eq!(pb.fields.get("plan"), Some(&Value::from("pro")));
    assert_eq!(
        pb.fields.get("shoe"),
        Some(&Value::Int(43)),
        "post-merge write through b's id"
    );
    assert_eq!(
        pb.fields.get("color"),
        Some(&Value::from("red")),
        "post-merge write through b's identifier"
    );
    assert!(!pb.fields.contains_key("city"));
    assert_eq!(db.lookup(&Identifier::device_id("dev-1")).unwrap(), Some(b));
    assert_eq!(
        db.lookup(&Identifier::email("a@example.com")).unwrap(),
        Some(a)
    );
    assert_eq!(
        db.identifiers(&b).unwrap(),
        vec![Identifier::device_id("dev-1")]
    );
    assert!(db.merges(&a).unwrap()[0].undone_at.is_some());
    assert!(
        db.unmerge(&out.merges[0]).is_err(),
        "undoing twice is refused"
    );

    // Survives reopen.
    drop(db);
    let db = reopen(dir.path(), &key(1));
    assert_eq!(db.lookup(&Identifier::device_id("dev-1")).unwrap(), Some(b));
    assert_eq!(db.get(&b).unwrap().fields["shoe"], Value::Int(43));
}

#[test]
fn alias_merges_anonymous_history_into_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let anon = db
        .resolve(
            &[Identifier::anonymous_id("anon-7")],
            Update::new().set("viewed", 3),
        )
        .unwrap()
        .profile
        .unwrap();
    let user = db
        .resolve(
            &[Identifier::user_id("u-7")],
            Update::new().set("name", "Grace"),
        )
        .unwrap()
        .profile
        .unwrap();
    let out = db.alias("anon-7", "u-7").unwrap();
    assert_eq!(out.merges.len(), 1);
    let p = db.get(&user).unwrap();
    assert_eq!(p.id, anon, "the anonymous profile is older and survives");
    assert_eq!(p.fields["name"], Value::from("Grace"));
    assert_eq!(p.fields["viewed"], Value::Int(3));
    assert_eq!(db.lookup(&Identifier::user_id("u-7")).unwrap(), Some(anon));
    assert_eq!(db.merges(&anon).unwrap()[0].reason, "alias");
    db.unmerge(&out.merges[0]).unwrap();
    assert_eq!(db.lookup(&Identifier::user_id("u-7")).unwrap(), Some(user));
    assert_eq!(
        db.lookup(&Identifier::anonymous_id("anon-7")).unwrap(),
        Some(anon)
    );
}

#[test]
fn limits_priority_and_blocklist() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(
        dir.path(),
        MergeRules::default()
            .limit(IdType::Email, 2)
            .block_pattern("*@mailinator.com"),
    );
    // Blocklist: junk is rejected and reported, the rest resolves.
    let out = db
        .resolve(
            &[
                Identifier::user_id("undefined"),
                Identifier::anonymous_id("null"),
                Identifier::email("x@MAILINATOR.com"),
                Identifier::email("real@example.com"),
                Identifier::phone("12"),
            ],
            Update::new(),
        )
        .unwrap();
    let p = out.profile.unwrap();
    assert_eq!(out.attached, 1);
    let reasons: Vec<_> = out.rejected.iter().map(|r| r.reason.clone()).collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == RejectReason::Blocked)
            .count(),
        3,
        "{reasons:?}"
    );
    assert!(matches!(reasons.last(), Some(RejectReason::Invalid(_))));

    // user_id limit 1. The request would give the profile a second user id,
    // so the lowest-priority identifier of the request is dropped and
    // resolution retried: first the anonymous id, then the e-mail; what is
    // left (the new user id alone) matches nothing and gets a new profile.
    db.resolve(
        &[
            Identifier::email("real@example.com"),
            Identifier::user_id("u1"),
        ],
        Update::new(),
    )
    .unwrap();
    let out = db
        .resolve(
            &[
                Identifier::email("real@example.com"),
                Identifier::user_id("u2"),
                Identifier::anonymous_id("anon-1"),
            ],
            Update::new(),
        )
        .unwrap();
    let dropped: Vec<_> = out
        .rejected
        .iter()
        .map(|r| (r.identifier.id_type.clone(), r.reason.clone()))
        .collect();
    assert_eq!(
        dropped,
        vec![
            (IdType::AnonymousId, RejectReason::Limit),
            (IdType::Email, RejectReason::Limit)
        ]
    );
    assert!(out.created);
    assert_ne!(out.profile, Some(p));
    assert_eq!(db.lookup(&Identifier::user_id("u2")).unwrap(), out.profile);
    assert_eq!(db.lookup(&Identifier::user_id("u1")).unwrap(), Some(p));
    assert_eq!(
        db.lookup(&Identifier::anonymous_id("anon-1")).unwrap(),
        None
    );

    // Email limit 2: a third email is rejected.
    db.resolve(
        &[
            Identifier::user_id("u1"),
            Identifier::email("second@example.com"),
        ],
        Update::new(),
    )
    .unwrap();
    let out = db
        .resolve(
            &[
                Identifier::user_id("u1"),
                Identifier::email("third@example.com"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        out.rejected[0].identifier,
        Identifier::email("third@example.com")
    );
    assert_eq!(out.profile, Some(p));

    // A merge that would give a profile two user ids does not happen.
    let other = db
        .resolve(
            &[Identifier::user_id("u9"), Identifier::device_id("d9")],
            Update::new(),
        )
        .unwrap();
    let out = db
        .resolve(
            &[Identifier::user_id("u1"), Identifier::device_id("d9")],
            Update::new(),
        )
        .unwrap();
    assert!(out.merges.is_empty());
    assert_eq!(
        db.lookup(&Identifier::device_id("d9")).unwrap(),
        other.profile
    );

    // Custom types must be declared.
    let out = db
        .resolve(
            &[Identifier::new(IdType::Custom("crm".into()), "c-1")],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.rejected[0].reason, RejectReason::UndeclaredType);
    db.set_schema(Schema::new().identifier_type("crm")).unwrap();
    let out = db
        .resolve(
            &[Identifier::new(IdType::Custom("crm".into()), "c-1")],
            Update::new(),
        )
        .unwrap();
    assert!(out.rejected.is_empty() && out.created);
}

#[test]
fn merge_limit_caps_profiles_merged_into_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(dir.path(), MergeRules::default().max_merged_profiles(2));
    db.resolve(&[Identifier::device_id("d1")], Update::new())
        .unwrap();
    db.resolve(&[Identifier::device_id("d2")], Update::new())
        .unwrap();
    db.resolve(&[Identifier::device_id("d3")], Update::new())
        .unwrap();
    let out = db
        .resolve(
            &[
                Identifier::device_id("d1"),
                Identifier::device_id("d2"),
                Identifier::device_id("d3"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.merges.len(), 1, "{out:?}");
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].reason, RejectReason::MergeLimit);
}

#[test]
fn concurrent_resolves_never_duplicate_profiles() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(create(dir.path(), &key(1)));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let db = Arc::clone(&db);
                std::thread::spawn(move || {
                    for i in 0..40 {
                        // Every thread uses the same people, with varying identifier subsets.
                        let person = i % 10;
                        let mut ids = vec![Identifier::email(format!("p{person}@example.com"))];
                        if (t + i) % 2 == 0 {
                            ids.push(Identifier::device_id(format!("dev-{person}")));
                        }
                        if (t + i) % 3 == 0 {
                            ids.insert(0, Identifier::user_id(format!("user-{person}")));
                        }
                        db.resolve(&ids, Update::new().set(format!("t{t}"), i as i64))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut profiles = std::collections::HashSet::new();
        for person in 0..10 {
            let e = db
                .lookup(&Identifier::email(format!("p{person}@example.com")))
                .unwrap()
                .unwrap();
            let d = db
                .lookup(&Identifier::device_id(format!("dev-{person}")))
                .unwrap()
                .unwrap();
            let u = db
                .lookup(&Identifier::user_id(format!("user-{person}")))
                .unwrap()
                .unwrap();
            assert!(
                e == d && d == u,
                "round {round}: person {person} split across profiles"
            );
            profiles.insert(e);
        }
        assert_eq!(profiles.len(), 10);
        let active = db.profile_ids().unwrap().count();
        assert_eq!(
            active, 10,
            "round {round}: no duplicate profiles were created"
        );
    }
}

/// Found by the reference model (issue 17): unmerge re-keys the survivor,
/// and the values an earlier merge still in force displaced were sealed
/// under the old keys — a later unmerge of that merge could not restore
/// them. They are re-sealed with every re-key.
#[test]
fn a_value_displaced_by_a_merge_is_restored_after_another_unmerge_rekeyed_the_survivor() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(31));
    let dev = |s: &str| Identifier::device_id(s);
    let s = db
        .resolve(&[dev("d-s")], Update::new().set("plan", "s-plan"))
        .unwrap()
        .profile
        .unwrap();
    db.resolve(&[dev("d-b")], Update::new().set("plan", "b-plan"))
        .unwrap();
    let m1 = db
        .resolve(&[dev("d-s"), dev("d-b")], Update::new())
        .unwrap();
    assert_eq!(m1.profile, Some(s));
    assert_eq!(db.get(&s).unwrap().fields["plan"], Value::from("b-plan"));
    db.resolve(&[dev("d-c")], Update::new().set("city", "Oslo"))
        .unwrap();
    let m2 = db
        .resolve(&[dev("d-s"), dev("d-c")], Update::new())
        .unwrap();
    db.unmerge(&m2.merges[0]).unwrap();
    db.unmerge(&m1.merges[0]).unwrap();
    assert_eq!(db.get(&s).unwrap().fields["plan"], Value::from("s-plan"));
}

/// Review finding (issue 17): undoing M1 (B into S) while a later M2 is in
/// force must not leave B's value that M2 displaced in M2's record, re-sealed
/// under S's live keys — it would outlive `forget(B)`. Checked in the raw
/// merge record: M2 keeps only displaced values not attributed to B.
#[test]
fn unmerge_drops_the_leaving_sides_values_displaced_by_other_merges() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(32));
    let dev = |s: &str| Identifier::device_id(s);
    let s = db
        .resolve(&[dev("x-s")], Update::new().set("city", "s1"))
        .unwrap()
        .profile
        .unwrap();
    db.resolve(&[dev("x-b")], Update::new().set("city", "b1"))
        .unwrap();
    let m1 = db
        .resolve(&[dev("x-s"), dev("x-b")], Update::new())
        .unwrap()
        .merges[0];
    db.resolve(&[dev("x-c")], Update::new().set("city", "c1"))
        .unwrap();
    let m2 = db
        .resolve(&[dev("x-s"), dev("x-c")], Update::new())
        .unwrap()
        .merges[0];
    assert_eq!(db.get(&s).unwrap().fields["city"], Value::from("c1"));
    let displaced_in_m2 = |db: Db| -> usize {
        drop(db);
        let raw = raw(dir.path());
        let mut k = vec![b'm'];
        k.extend_from_slice(m2.as_bytes());
        let v = raw_get(&raw, "identities", &k);
        // version ‖ survivor 16 ‖ merged 16 ‖ reason (u64 len, bytes) ‖ at i64
        // ‖ identifiers (u64 n, each: u64 len, bytes, [u8; 16]) ‖ generation
        // u32 ‖ displaced (u64 n, …)
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap()) as usize;
        let mut i = 1 + 32;
        i += 8 + u64_at(i);
        i += 8;
        let n = u64_at(i);
        i += 8;
        for _ in 0..n {
            i += 8 + u64_at(i) + 16;
        }
        i += 4;
        u64_at(i)
    };
    assert_eq!(displaced_in_m2(db), 1, "b1 displaced by M2");
    let db = reopen(dir.path(), &key(32));
    db.unmerge(&m1).unwrap();
    assert_eq!(displaced_in_m2(db), 0, "b1 left with B's side");
}
