//! Round trips and refusals of the record codecs.

use super::codec::*;
use super::value::*;
use super::*;
use crate::error::Error;
use crate::types::{MergeId, ProfileId, Timestamp, Value};

fn sample_record() -> ProfileRecord {
    ProfileRecord {
        generation: 3,
        write_version: 0,
        consents: Vec::new(),
        created_at: Timestamp(10),
        updated_at: Timestamp(20),
        status: RecordStatus::Active,
        origins: vec![ProfileId::from_bytes([4; 16])],
        fields: vec![
            FieldEntry {
                field_id: 0,
                sealed: true,
                origin: 1,
                written_at: Timestamp(11),
                payload: vec![1; 40],
            },
            FieldEntry {
                field_id: 5,
                sealed: false,
                origin: 0,
                written_at: Timestamp(12),
                payload: vec![2, 0, 0, 0, 0, 0, 0, 0, 7],
            },
        ],
    }
}

fn v1(rec: ProfileRecord) -> StoredProfile {
    StoredProfile {
        record: rec,
        seal: None,
    }
}

/// A v2 record with made-up nonce, tag and keyring (the codec does not
/// check them; `domain::profiles::sealing` does).
fn v2(mut rec: ProfileRecord) -> StoredProfile {
    rec.write_version = 300;
    rec.consents = vec![([1; 8], 5), ([2; 8], 299)];
    let nonce = [6; 16];
    let body = encode_v2_body(&rec, &nonce);
    StoredProfile {
        record: rec,
        seal: Some(RecordSeal {
            nonce,
            tag: [7; 16],
            keyring: KeyringSlot {
                parent_version: 9,
                sealed: [8; WRAPPED_LEN],
            },
            body,
        }),
    }
}

fn every_flip_and_cut_is_refused(bytes: &[u8]) {
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.to_vec();
            b[i] ^= bit;
            assert!(
                StoredProfile::decode(&b).is_err(),
                "flip {bit:#x} at {i} went undetected"
            );
        }
    }
    for cut in 0..bytes.len() {
        assert!(StoredProfile::decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn profile_record_v1_round_trip_and_every_flip_detected() {
    let rec = v1(sample_record());
    let bytes = rec.encode();
    assert_eq!(
        bytes.len(),
        1 + 4 + 8 + 8 + 1 + (1 + 16) + 2 + (5 + 40) + (5 + 9) + 4
    );
    assert_eq!(StoredProfile::decode(&bytes).unwrap(), rec);
    every_flip_and_cut_is_refused(&bytes);
}

#[test]
fn profile_record_v2_round_trip_layout_and_every_flip_detected() {
    let rec = v2(sample_record());
    let bytes = rec.encode();
    // version, generation, write version (varint 300: 2 bytes), times,
    // status, origins, 2 anchors (8 + varint), nonce, field count, two
    // fields (id, flag, origin, age, len + payload), tag, keyring, crc.
    assert_eq!(
        bytes.len(),
        1 + 4
            + 2
            + 8
            + 8
            + 1
            + (1 + 16)
            + (1 + 9 + 10)
            + 16
            + 1
            + (5 + 40)
            + (5 + 9)
            + 16
            + (4 + WRAPPED_LEN)
            + 4
    );
    let back = StoredProfile::decode(&bytes).unwrap();
    assert_eq!(back, rec);
    assert_eq!(back.format(), FormatVersion::V2);
    every_flip_and_cut_is_refused(&bytes);
    // The plaintext layout of the benches' baseline round-trips too.
    let clear = sample_record().encode_clear();
    assert_eq!(
        ProfileRecord::decode_clear(&clear).unwrap(),
        sample_record()
    );
}

#[test]
fn merged_status_round_trips() {
    for make in [v1 as fn(ProfileRecord) -> StoredProfile, v2] {
        let mut rec = sample_record();
        rec.status = RecordStatus::Merged {
            into: ProfileId::from_bytes([8; 16]),
            merge_id: MergeId::from_bytes([9; 16]),
        };
        let stored = make(rec.clone());
        assert_eq!(StoredProfile::decode(&stored.encode()).unwrap(), stored);
        rec.fields[0].origin = 2;
        assert!(
            StoredProfile::decode(&make(rec).encode()).is_err(),
            "origin beyond the table"
        );
    }
}

#[test]
fn unknown_version_is_typed() {
    let mut bytes = v2(sample_record()).encode();
    bytes[0] = 9;
    assert!(matches!(
        StoredProfile::decode(&bytes),
        Err(Error::UnsupportedFormat {
            version: 9,
            supported: 2,
            ..
        })
    ));
    // Kinds with one version refuse 2.
    let w = WrappedKey {
        parent_version: 1,
        version: 1,
        sealed: [0; WRAPPED_LEN],
    };
    let mut b = w.encode();
    assert_eq!(WrappedKey::decode(&b).unwrap(), w);
    b[0] = 2;
    assert!(matches!(
        WrappedKey::decode(&b),
        Err(Error::UnsupportedFormat {
            version: 2,
            supported: 1,
            ..
        })
    ));
    b[0] = 0;
    assert!(matches!(
        WrappedKey::decode(&b),
        Err(Error::UnsupportedFormat { version: 0, .. })
    ));
}

#[test]
fn key_tree_header_round_trip() {
    let h = KeyTreeHeader {
        fanout_bits: 8,
        depth: 3,
        root_epoch: 77,
    };
    let b = h.encode();
    assert_eq!(b.len(), 11);
    assert_eq!(KeyTreeHeader::decode(&b).unwrap(), h);
    for i in 0..b.len() {
        let mut c = b.clone();
        c[i] ^= 0x10;
        assert!(KeyTreeHeader::decode(&c).is_err(), "flip at {i}");
    }
}

#[test]
fn header_round_trip() {
    let h = StoreHeader {
        store_id: [5; 16],
        bucket_bits: 16,
        key_check: [6; 32],
        created_at: Timestamp(99),
    };
    let b = h.encode();
    assert_eq!(b.len(), 70);
    assert_eq!(StoreHeader::decode(&b).unwrap(), h);
    let mut v2 = b.clone();
    v2[0] = 2;
    assert!(matches!(
        StoreHeader::decode(&v2),
        Err(Error::UnsupportedFormat { .. })
    ));
    let mut nomagic = b;
    nomagic[3] = b'X';
    assert!(matches!(
        StoreHeader::decode(&nomagic),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn values_round_trip() {
    let v = Value::List(vec![
        Value::String("ä".into()),
        Value::Int(-5),
        Value::Float(1.5),
        Value::Bool(true),
        Value::Timestamp(Timestamp(123)),
        Value::Json(serde_json::json!({"a":[1,2]})),
        Value::List(vec![]),
    ]);
    let mut out = Vec::new();
    encode_value(&v, &mut out);
    assert_eq!(decode_value(&out).unwrap(), v);
    out.push(0);
    assert!(
        decode_value(&out).is_err(),
        "trailing byte must be rejected"
    );
}

#[test]
fn deep_nesting_is_rejected_not_overflowing() {
    let mut bytes = Vec::new();
    for _ in 0..10_000 {
        bytes.extend_from_slice(&[TAG_LIST, 1]);
    }
    assert!(decode_value(&bytes).is_err());
}

#[test]
fn varints_are_minimal_and_bounded() {
    for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        let mut r = Reader::new("t", &out);
        assert_eq!(r.varint().unwrap(), v);
        r.finish().unwrap();
    }
    assert!(
        Reader::new("t", &[0x80, 0x00]).varint().is_err(),
        "non-minimal"
    );
    assert!(Reader::new("t", &[0xff; 11]).varint().is_err(), "too long");
    assert!(Reader::new(
        "t",
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]
    )
    .varint()
    .is_err());
    for i in [0i64, -1, 1, i64::MIN, i64::MAX] {
        assert_eq!(unzigzag(zigzag(i)), i);
    }
    assert_eq!(zigzag(-1), 1);
}

#[test]
fn field_names_round_trip() {
    let names = vec!["email".to_string(), "x".to_string()];
    assert_eq!(
        decode_field_names(&encode_field_names(&names)).unwrap(),
        names
    );
    assert!(decode_field_names(&[0, 0, 0, 9]).is_err());
}

#[test]
fn v2_entries_and_consent_records_round_trip_and_refuse_other_versions() {
    let id = IdentityEntry {
        profile: ProfileId::from_bytes([3; 16]),
        mac: Some([4; 8]),
    };
    let b = id.encode();
    assert_eq!((b.len(), b[0]), (25, 2));
    assert_eq!(IdentityEntry::decode(&b).unwrap(), id);
    for cut in 0..b.len() {
        assert!(IdentityEntry::decode(&b[..cut]).is_err());
    }
    let v1 = IdentityEntry { mac: None, ..id };
    assert_eq!(IdentityEntry::decode(&v1.encode()).unwrap(), v1);
    let g = GrantEntry {
        expires_at: Some(Timestamp(77)),
        auth: Some(((9 << 16) | 1, [5; 8])),
    };
    let b = g.encode();
    assert_eq!(b[0], 2);
    assert_eq!(GrantEntry::decode(&b).unwrap(), g);
    for cut in 0..b.len() {
        assert!(GrantEntry::decode(&b[..cut]).is_err());
    }
    let c = SealedConsent {
        generation: 2,
        write_version: Some((9 << 16) | 2),
        sealed: vec![6; 40],
    };
    let b = c.encode();
    assert_eq!(b[0], 2);
    assert_eq!(SealedConsent::decode(&b).unwrap(), c);
    for mut bad in [id.encode(), g.encode(), c.encode()] {
        bad[0] = 3;
        assert!(matches!(
            IdentityEntry::decode(&bad)
                .map(|_| ())
                .and(GrantEntry::decode(&bad).map(|_| ()))
                .and(SealedConsent::decode(&bad).map(|_| ())),
            Err(Error::UnsupportedFormat { version: 3, .. })
        ));
    }
}
