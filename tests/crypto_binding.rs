//! Ciphertext binding, wrong keys and tampering: every case ends in a typed
//! error, never in wrong plaintext.

mod common;

use common::*;
use lethedb::{Db, Error, Options, Update, Value};

fn two_profiles(path: &std::path::Path) -> (lethedb::ProfileId, lethedb::ProfileId) {
    let db = create(path, &key(1));
    let a = db
        .create(
            Update::new()
                .set("email", "alice@example.com")
                .set("phone", "+15550001111"),
        )
        .unwrap();
    let b = db
        .create(
            Update::new()
                .set("email", "bob@example.com")
                .set("phone", "+15550002222"),
        )
        .unwrap();
    (a, b)
}

#[test]
fn field_ciphertext_moved_to_another_profile_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_profiles(dir.path());
    {
        let raw = raw(dir.path());
        let ra = parse_record(&raw_get(&raw, "profiles", &profile_key(&a)));
        let mut rb = parse_record(&raw_get(&raw, "profiles", &profile_key(&b)));
        assert_eq!(
            ra.fields[0].id, rb.fields[0].id,
            "same field in both profiles"
        );
        rb.fields[0].payload = ra.fields[0].payload.clone();
        raw_put(&raw, "profiles", &profile_key(&b), &encode_record(&rb));
    }
    let db = reopen(dir.path(), &key(1));
    match db.get(&b) {
        Err(Error::Integrity { profile, what }) => {
            assert_eq!(profile, b);
            assert!(what.contains("profile record"), "{what}");
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
    // One tag per record (format v2): no field of the altered record is
    // served, not even an untouched one; a is untouched.
    assert!(matches!(
        db.get_fields(&b, &["phone"]),
        Err(Error::Integrity { .. })
    ));
    assert_eq!(
        db.get(&a).unwrap().fields["email"],
        Value::from("alice@example.com")
    );
}

#[test]
fn field_ciphertext_moved_to_another_field_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_profiles(dir.path());
    {
        let raw = raw(dir.path());
        let mut r = parse_record(&raw_get(&raw, "profiles", &profile_key(&a)));
        let email = r.fields[0].payload.clone();
        r.fields[1].payload = email;
        raw_put(&raw, "profiles", &profile_key(&a), &encode_record(&r));
    }
    let db = reopen(dir.path(), &key(1));
    assert!(matches!(db.get(&a), Err(Error::Integrity { .. })));
    for f in ["phone", "email"] {
        assert!(matches!(
            db.get_fields(&a, &[f]),
            Err(Error::Integrity { .. })
        ));
    }
}

#[test]
fn whole_record_copied_to_another_profile_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_profiles(dir.path());
    {
        let raw = raw(dir.path());
        let rec = raw_get(&raw, "profiles", &profile_key(&a));
        raw_put(&raw, "profiles", &profile_key(&b), &rec);
    }
    let db = reopen(dir.path(), &key(1));
    assert!(matches!(db.get(&b), Err(Error::Decrypt { .. })));
}

#[test]
fn keyring_moved_to_another_profile_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_profiles(dir.path());
    {
        let raw = raw(dir.path());
        let ka = parse_record(&raw_get(&raw, "profiles", &profile_key(&a)));
        let mut rb = parse_record(&raw_get(&raw, "profiles", &profile_key(&b)));
        rb.tail[16..].copy_from_slice(&ka.tail[16..]);
        raw_put(&raw, "profiles", &profile_key(&b), &encode_record(&rb));
    }
    let db = reopen(dir.path(), &key(1));
    assert!(matches!(db.get(&b), Err(Error::Decrypt { .. })));
    assert!(db.get(&a).is_ok());
}

#[test]
fn wrong_key_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    two_profiles(dir.path());
    assert!(matches!(
        Db::open(dir.path(), &key(2), Options::new()),
        Err(Error::WrongKey)
    ));
    assert!(Db::open(dir.path(), &key(1), Options::new()).is_ok());
}

#[test]
fn bit_flips_in_profile_records_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_profiles(dir.path());
    let original = {
        let raw = raw(dir.path());
        raw_get(&raw, "profiles", &profile_key(&a))
    };
    // Positions across header, field headers, nonce, ciphertext, tag and CRC.
    let positions: Vec<usize> = (0..original.len())
        .step_by(7)
        .chain([original.len() - 1])
        .collect();
    for &pos in &positions {
        let mut bytes = original.clone();
        bytes[pos] ^= 0x10;
        {
            let raw = raw(dir.path());
            raw_put(&raw, "profiles", &profile_key(&a), &bytes);
        }
        let db = reopen(dir.path(), &key(1));
        match db.get(&a) {
            Err(Error::Corrupt { .. }) | Err(Error::UnsupportedFormat { .. }) => {}
            other => panic!("flip at {pos}: expected a typed corruption error, got {other:?}"),
        }
    }
}

#[test]
fn tampered_ciphertext_with_fixed_checksum_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_profiles(dir.path());
    let r = {
        let raw = raw(dir.path());
        parse_record(&raw_get(&raw, "profiles", &profile_key(&a)))
    };
    // Every byte of a field's ciphertext, of the header (nonce included)
    // and of the tag, each with the CRC fixed.
    let mut variants = Vec::new();
    for pos in 0..r.fields[0].payload.len() {
        let mut t = r.clone();
        t.fields[0].payload[pos] ^= 0x01;
        variants.push((format!("payload byte {pos}"), t));
    }
    for pos in 1..r.header.len() {
        let mut t = r.clone();
        t.header[pos] ^= 0x01;
        variants.push((format!("header byte {pos}"), t));
    }
    for pos in 0..16 {
        let mut t = r.clone();
        t.tail[pos] ^= 0x01;
        variants.push((format!("tag byte {pos}"), t));
    }
    for (what, t) in variants {
        {
            let raw = raw(dir.path());
            raw_put(&raw, "profiles", &profile_key(&a), &encode_record(&t));
        }
        let db = reopen(dir.path(), &key(1));
        assert!(
            // The generation is also in the keyring's associated data.
            matches!(
                db.get(&a),
                Err(Error::Integrity { .. } | Error::Corrupt { .. } | Error::Decrypt { .. })
            ),
            "flip at {what} must fail authentication"
        );
    }
}

#[test]
fn bit_flips_in_keyrings_and_tree_nodes_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_profiles(dir.path());
    let original = {
        let raw = raw(dir.path());
        raw_get(&raw, "profiles", &profile_key(&a))
    };
    let r = parse_record(&original);
    // The keyring slot: bucket key version, nonce, wrapped seed, tag.
    for pos in [16, 17, 19, 20, 25, 40, 60, RECORD_TAIL - 1] {
        let mut t = r.clone();
        t.tail[pos] ^= 0x04;
        {
            let raw = raw(dir.path());
            raw_put(&raw, "profiles", &profile_key(&a), &encode_record(&t));
        }
        let db = reopen(dir.path(), &key(1));
        assert!(
            matches!(db.get(&a), Err(Error::Decrypt { .. })),
            "keyring flip at {pos}"
        );
    }
    // Restore the keyring, then corrupt every node of the key tree.
    let raw = raw(dir.path());
    raw_put(&raw, "profiles", &profile_key(&a), &original);
    let cf = raw.cf_handle("keys").unwrap();
    let buckets: Vec<_> = raw
        .iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(Result::unwrap)
        .filter(|(k, _)| k[0] == b'n')
        .collect();
    assert!(!buckets.is_empty());
    for (k, v) in &buckets {
        let mut v = v.to_vec();
        v[30] ^= 0x01;
        raw.put_cf(cf, k, v).unwrap();
    }
    drop(raw);
    let db = reopen(dir.path(), &key(1));
    assert!(matches!(db.get(&a), Err(Error::Corrupt { .. })));
}
