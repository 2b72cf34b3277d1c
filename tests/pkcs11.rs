//! The PKCS#11 root key store against a real token (SoftHSM2): URIs,
//! wrapping inside the token, key attributes, durability of each step.

mod common;

use common::softhsm::Token;
use lethedb::{Error, PinSource, Pkcs11Config, RootKeyDevice, RootLocation};

const STORE: [u8; 16] = [7; 16];
const OTHER: [u8; 16] = [8; 16];

#[test]
fn uris_are_parsed_strictly_and_never_carry_a_pin() {
    let ok = Pkcs11Config::from_uri(
        "pkcs11:token=my%20token;serial=abc;object=crm;type=secret-key?module-path=/lib/p11.so&pin-source=file:/etc/pin",
    )
    .unwrap();
    assert_eq!(ok.token, "my token");
    assert_eq!(ok.serial.as_deref(), Some("abc"));
    assert!(matches!(ok.pin, PinSource::File(ref p) if p.to_str() == Some("/etc/pin")));
    for (uri, needle) in [
        (
            "token=t;object=o?module-path=/m&pin-source=env:P",
            "pkcs11:",
        ),
        ("pkcs11:object=o?module-path=/m&pin-source=env:P", "`token`"),
        ("pkcs11:token=t?module-path=/m&pin-source=env:P", "`object`"),
        ("pkcs11:token=t;object=o?pin-source=env:P", "`module-path`"),
        ("pkcs11:token=t;object=o?module-path=/m", "`pin-source`"),
        (
            "pkcs11:token=t;object=o?module-path=/m&pin-value=123456",
            "pin-value is refused",
        ),
        (
            "pkcs11:token=t;object=o;pin-value=123456?module-path=/m",
            "pin-value is refused",
        ),
        (
            "pkcs11:token=t;object=o;type=private?module-path=/m&pin-source=env:P",
            "secret keys",
        ),
        (
            "pkcs11:token=t;tokn=x;object=o?module-path=/m&pin-source=env:P",
            "`tokn`",
        ),
        (
            "pkcs11:token=t;token=u;object=o?module-path=/m&pin-source=env:P",
            "twice",
        ),
        (
            "pkcs11:token=t;object=o?module-path=/m&pin-source=123456",
            "pin-source must be",
        ),
    ] {
        match Pkcs11Config::from_uri(uri) {
            Err(Error::InvalidInput(m)) => {
                assert!(m.contains(needle), "{uri}: {m}");
                assert!(!m.contains("123456"), "a PIN echoed: {m}");
            }
            other => panic!("{uri}: {other:?}"),
        }
    }
}

#[test]
fn keys_are_generated_used_and_destroyed_inside_the_token() {
    let token = Token::new("unit");
    let s = token.store("roots");
    assert_eq!(s.epochs(&STORE).unwrap(), Vec::<u32>::new());
    s.generate(&STORE, 1).unwrap();
    s.generate(&STORE, 2).unwrap();
    s.generate(&OTHER, 1).unwrap();
    assert!(matches!(
        s.generate(&STORE, 2),
        Err(Error::RootKey { epoch: 2, .. })
    ));
    assert_eq!(s.epochs(&STORE).unwrap(), vec![1, 2]);
    assert_eq!(s.epochs(&OTHER).unwrap(), vec![1]);
    // Another prefix on the same token sees none of them.
    assert_eq!(
        token.store("else").epochs(&STORE).unwrap(),
        Vec::<u32>::new()
    );
    // Sensitive, non-extractable, on the token.
    assert_eq!(s.key_attributes(&STORE, 1).unwrap(), (true, false, true));

    let secret = [0x5au8; 32];
    let w = s.wrap(&STORE, 1, b"node (1, 3)", &secret).unwrap();
    assert!(!w.windows(32).any(|x| x == secret));
    assert_eq!(
        *s.unwrap(&STORE, 1, b"node (1, 3)", &w).unwrap().unwrap(),
        secret
    );
    // Two wraps of one key differ (fresh IV).
    assert_ne!(s.wrap(&STORE, 1, b"node (1, 3)", &secret).unwrap(), w);
    // Other associated data, another root, another store, altered bytes:
    // never the key.
    assert!(s.unwrap(&STORE, 1, b"node (1, 4)", &w).unwrap().is_none());
    assert!(s.unwrap(&STORE, 2, b"node (1, 3)", &w).unwrap().is_none());
    assert!(s.unwrap(&OTHER, 1, b"node (1, 3)", &w).unwrap().is_none());
    for i in [0, 12, 40, 59] {
        let mut bad = w;
        bad[i] ^= 1;
        assert!(
            s.unwrap(&STORE, 1, b"node (1, 3)", &bad).unwrap().is_none(),
            "flip at {i}"
        );
    }

    s.destroy(&STORE, &[1, 99]).unwrap();
    assert_eq!(s.epochs(&STORE).unwrap(), vec![2]);
    assert!(matches!(
        s.unwrap(&STORE, 1, b"node (1, 3)", &w),
        Err(Error::RootKey { epoch: 1, .. })
    ));
    // Destroyed for every session, not only this one's handle cache.
    assert_eq!(token.store("roots").epochs(&STORE).unwrap(), vec![2]);
    assert_eq!(s.epochs(&OTHER).unwrap(), vec![1], "other store untouched");
    match s.location() {
        RootLocation::Pkcs11 {
            token: t, object, ..
        } => {
            assert_eq!(
                (t.as_str(), object.as_str()),
                (token.label.as_str(), "roots")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_crash_point_of_destroy_leaves_each_root_present_or_gone() {
    for crash in 0..4 {
        let token = Token::new("dcrash");
        let s = token.store("r");
        for e in 1..=3 {
            s.generate(&STORE, e).unwrap();
        }
        s.crash_before_step(crash);
        let result = s.destroy(&STORE, &[1, 2]);
        s.crash_before_step(usize::MAX);
        // A fresh session sees what the token holds.
        let held = token.store("r").epochs(&STORE).unwrap();
        let expected: &[&[u32]] = &[&[1, 2, 3], &[2, 3], &[3]];
        assert_eq!(held, expected[crash.min(2)], "crash {crash} ({result:?})");
        assert_eq!(result.is_ok(), crash >= 2, "crash {crash}");
        // Finishing is idempotent.
        s.destroy(&STORE, &[1, 2]).unwrap();
        assert_eq!(s.epochs(&STORE).unwrap(), vec![3]);
    }
    // A crash before generation leaves nothing half-made.
    let token = Token::new("gcrash");
    let s = token.store("r");
    s.crash_before_step(0);
    assert!(s.generate(&STORE, 1).is_err());
    s.crash_before_step(usize::MAX);
    assert_eq!(s.epochs(&STORE).unwrap(), Vec::<u32>::new());
}

#[test]
fn a_missing_token_or_module_is_a_typed_error() {
    let token = Token::new("miss");
    let uri = token.uri("r").replace(&token.label, "no-such-token");
    assert!(matches!(
        lethedb::Pkcs11RootKeyStore::from_uri(&uri),
        Err(Error::RootKeyDevice { .. })
    ));
    let uri = token.uri("r").replace("libsofthsm2.so", "libnothing.so");
    assert!(lethedb::Pkcs11RootKeyStore::from_uri(&uri).is_err());
}
