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
        let (_, fa) = parse_record(&raw_get(&raw, "profiles", &profile_key(&a)));
        let (hb, mut fb) = parse_record(&raw_get(&raw, "profiles", &profile_key(&b)));
        assert_eq!(fa[0].id, fb[0].id, "same field in both profiles");
        fb[0].payload = fa[0].payload.clone();
        raw_put(&raw, "profiles", &profile_key(&b), &encode_record(&hb, &fb));
    }
    let db = reopen(dir.path(), &key(1));
    match db.get(&b) {
        Err(Error::Decrypt { profile, what }) => {
            assert_eq!(profile, b);
            assert!(what.contains("email"), "{what}");
        }
        other => panic!("expected Decrypt error, got {other:?}"),
    }
    // The other field of b and all of a are untouched.
    assert_eq!(
        db.get_fields(&b, &["phone"]).unwrap().fields["phone"],
        Value::from("+15550002222")
    );
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
        let (h, mut f) = parse_record(&raw_get(&raw, "profiles", &profile_key(&a)));
        let email = f[0].payload.clone();
        f[1].payload = email;
        raw_put(&raw, "profiles", &profile_key(&a), &encode_record(&h, &f));
    }
    let db = reopen(dir.path(), &key(1));
    assert!(matches!(db.get(&a), Err(Error::Decrypt { .. })));
    assert!(matches!(
        db.get_fields(&a, &["phone"]),
        Err(Error::Decrypt { .. })
    ));
    assert_eq!(
        db.get_fields(&a, &["email"]).unwrap().fields["email"],
        Value::from("alice@example.com")
    );
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
        let kr = raw_get(&raw, "keys", &keyring_key(&a));
        raw_put(&raw, "keys", &keyring_key(&b), &kr);
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
    let (h, f) = {
        let raw = raw(dir.path());
        parse_record(&raw_get(&raw, "profiles", &profile_key(&a)))
    };
    for pos in 0..f[0].payload.len() {
        let mut t = f.clone();
        t[0].payload[pos] ^= 0x01;
        {
            let raw = raw(dir.path());
            raw_put(&raw, "profiles", &profile_key(&a), &encode_record(&h, &t));
        }
        let db = reopen(dir.path(), &key(1));
        assert!(
            matches!(db.get(&a), Err(Error::Decrypt { .. })),
            "flip at payload byte {pos} must fail authentication"
        );
    }
}

#[test]
fn bit_flips_in_keyrings_and_tree_nodes_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_profiles(dir.path());
    let kr = {
        let raw = raw(dir.path());
        raw_get(&raw, "keys", &keyring_key(&a))
    };
    for pos in [1, 5, 9, 20, 40, kr.len() - 1] {
        let mut bytes = kr.clone();
        bytes[pos] ^= 0x04;
        {
            let raw = raw(dir.path());
            raw_put(&raw, "keys", &keyring_key(&a), &bytes);
        }
        let db = reopen(dir.path(), &key(1));
        assert!(
            matches!(db.get(&a), Err(Error::Decrypt { .. })),
            "keyring flip at {pos}"
        );
    }
    // Restore the keyring, then corrupt every node of the key tree.
    let raw = raw(dir.path());
    raw_put(&raw, "keys", &keyring_key(&a), &kr);
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
