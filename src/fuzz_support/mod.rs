//! Fuzz target bodies, shared by `fuzz/` (cargo-fuzz) and `tests/fuzz_corpus.rs`
//! (which replays the checked-in corpus on stable). Each body must never
//! panic, whatever the bytes; the assertions inside them are the properties
//! each target checks.

mod model;

pub use model::model;

use crate::storage::records::{
    self, AuditEntry, AuditHead, AuditSeal, BackupRecord, Blob, ErasureRecord, GrantEntry,
    IdentityEntry, MergeRecord, PendingPurge, ProfileRecord, SealedConsent, SigningKeyRecord,
    StoreHeader, StoredProfile, SuppressionEntry, Tombstone, ValueCodec, WrappedKey,
};

/// Decodes `data` as `T`; what decodes must re-encode to the same bytes.
fn round_trip<T: ValueCodec>(data: &[u8]) {
    if let Ok(r) = T::decode(data) {
        assert_eq!(r.encode(), data, "{} re-encodes differently", T::WHAT);
    }
}

/// Feeds `data` to every on-disk record decoder. Whatever decodes must
/// re-encode to the same bytes (decoders accept one encoding only).
pub fn decode_records(data: &[u8]) {
    if let Ok(r) = StoredProfile::decode(data) {
        assert_eq!(r.encode(), data, "profile record re-encodes differently");
    }
    if let Ok(r) = ProfileRecord::decode_clear(data) {
        assert_eq!(
            r.encode_clear(),
            data,
            "plaintext record re-encodes differently"
        );
    }
    if let Ok(h) = StoreHeader::decode(data) {
        assert_eq!(h.encode(), data, "store header re-encodes differently");
    }
    if let Ok(w) = WrappedKey::decode(data) {
        assert_eq!(w.encode(), data, "wrapped key re-encodes differently");
    }
    round_trip::<IdentityEntry>(data);
    round_trip::<MergeRecord>(data);
    round_trip::<SealedConsent>(data);
    round_trip::<GrantEntry>(data);
    round_trip::<ErasureRecord>(data);
    round_trip::<PendingPurge>(data);
    round_trip::<SuppressionEntry>(data);
    round_trip::<SigningKeyRecord>(data);
    round_trip::<BackupRecord>(data);
    round_trip::<AuditEntry>(data);
    round_trip::<AuditHead>(data);
    round_trip::<AuditSeal>(data);
    round_trip::<Tombstone>(data);
    if let Ok(b) = Blob::decode(data) {
        let _ = records::decode_field_names(&b.0);
    }
    if let Ok(v) = records::decode_value(data) {
        let mut out = Vec::new();
        records::encode_value(&v, &mut out);
        // JSON text may be re-serialised differently; other values round-trip exactly.
        if !matches!(v, crate::Value::Json(_)) && !contains_json(&v) {
            assert_eq!(out, data, "value re-encodes differently");
        }
    }
}

fn contains_json(v: &crate::Value) -> bool {
    match v {
        crate::Value::Json(_) => true,
        crate::Value::List(items) => items.iter().any(contains_json),
        _ => false,
    }
}

/// The NDJSON / Segment ingest parser: any line either parses or gets a
/// typed error, never a panic. A parsed event parses again to the same
/// identifiers and traits (consent timestamps default to the time of
/// parsing, so they may differ).
pub fn ingest_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let schema = crate::Schema::new();
    let stable = |e: crate::ingest::Event| match e {
        crate::ingest::Event::Identify {
            identifiers,
            traits,
            ..
        } => format!("{identifiers:?} {traits:?}"),
        crate::ingest::Event::Alias {
            previous_id,
            user_id,
            ..
        } => format!("{previous_id:?} {user_id:?}"),
    };
    if let Ok(event) = crate::ingest::parse_event(&schema, line) {
        let again = crate::ingest::parse_event(&schema, line).map(stable);
        assert_eq!(
            Ok(stable(event)),
            again.map_err(|e| e.to_string()),
            "ingest parse is not deterministic"
        );
    }
}

/// The IAB TCF v2 TC string decoder. What decodes maps to exactly one
/// consent record per TCF purpose 1-11.
pub fn tc_string(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tc) = crate::domain::consent::tcf::decode(text) {
        assert_eq!(tc.version, 2, "decoded a TC string that is not version 2");
        let records = crate::domain::consent::records_from_tcf(&tc, text);
        let purposes: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.purpose.as_str()).collect();
        assert_eq!(purposes.len(), 11, "TCF purposes are not 1-11 once each");
        // The vendor query's reader answers as the decoder does.
        let mut vendors = vec![1, 2, tc.max_vendor_id, tc.max_vendor_id.saturating_add(1)];
        vendors.extend(tc.vendor_consents.iter().take(4));
        vendors.extend(tc.vendor_legitimate_interests.iter().take(4));
        for v in vendors {
            for p in 1..=11u8 {
                let fast = crate::domain::consent::tcf::vendor_signals(text, v, p)
                    .expect("the vendor reader refuses a string the decoder reads");
                assert_eq!(
                    fast.basis(p),
                    tc.vendor_basis(v, p),
                    "vendor {v} purpose {p}"
                );
            }
        }
    }
}

/// IAB GPP strings: a string decodes to one section per header id and to
/// at most one consent record per purpose, each a built-in purpose; a bad
/// one is `InvalidGppString` and its reason does not echo the input.
pub fn gpp_string(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::domain::consent::gpp::decode(text) {
        Ok(g) => {
            assert_eq!(g.sections.len(), g.header.section_ids.len());
            let records =
                crate::domain::consent::gpp::records_from_gpp(&g, text, crate::Timestamp(0));
            let mut seen = std::collections::BTreeSet::new();
            for r in &records {
                assert!(seen.insert(r.purpose.clone()), "{} twice", r.purpose);
                assert!(
                    crate::BUILTIN_PURPOSES.contains(&r.purpose.as_str()),
                    "{} is not built in",
                    r.purpose
                );
            }
        }
        Err(crate::Error::InvalidGppString(why)) => {
            // Reasons are built from field names and numbers only: bounded
            // whatever the input, and never holding a `~` (which no
            // reason's own text has, so an input with one cannot be a
            // piece of the fixed wording).
            assert!(why.len() <= 256, "a {}-byte reason", why.len());
            if text.contains('~') && text.trim().len() >= 16 {
                assert!(!why.contains(text.trim()), "the error echoes the input");
            }
        }
        Err(e) => panic!("a GPP string failed with {e}"),
    }
}

/// Identifier normalisation for every built-in type: normalising is
/// idempotent (a normalised value normalises to itself), so a value stored
/// once is found again by the same blind-index key.
pub fn normalize_identifier(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let id_type = match selector % 6 {
        0 => crate::IdType::Email,
        1 => crate::IdType::Phone,
        2 => crate::IdType::UserId,
        3 => crate::IdType::AnonymousId,
        4 => crate::IdType::DeviceId,
        _ => crate::IdType::Custom("loyalty_id".into()),
    };
    let norm = crate::Normalization {
        gmail_folding: selector & 0x80 != 0,
        default_region: if selector & 0x40 != 0 { "GB" } else { "US" }.into(),
        phone_validation: if selector & 0x20 != 0 {
            crate::PhoneValidation::Lenient
        } else {
            crate::PhoneValidation::Strict
        },
    };
    if let Ok(once) = norm.normalize(&crate::Identifier::new(id_type.clone(), value)) {
        let twice = norm.normalize(&crate::Identifier::new(id_type.clone(), once.as_str()));
        assert_eq!(
            twice.as_ref().ok(),
            Some(&once),
            "{} normalisation is not idempotent",
            id_type.name()
        );
        let found =
            norm.normalize_for_lookup(&crate::Identifier::new(id_type.clone(), once.as_str()));
        assert_eq!(
            found.as_ref().ok(),
            Some(&once),
            "{} lookup form differs from the stored form",
            id_type.name()
        );
    }
}

/// Secret of the key that signed the `verify_certificate` corpus seeds.
pub const CERTIFICATE_FUZZ_SECRET: [u8; 32] = [7; 32];

/// The certificate verifier: any text is verified or refused with a typed
/// error, never a panic. What verifies also verifies after a JSON
/// re-serialisation (pretty-printed), as the same certificate.
pub fn verify_certificate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pk = ed25519_dalek::SigningKey::from_bytes(&CERTIFICATE_FUZZ_SECRET)
        .verifying_key()
        .to_bytes();
    if let Ok(check) = crate::verify_certificate(text, &pk) {
        let v: serde_json::Value =
            serde_json::from_str(text).expect("a verified certificate is JSON");
        let pretty = serde_json::to_string_pretty(&v).expect("JSON value serialises");
        let again = crate::verify_certificate(&pretty, &pk).map(|c| c.certificate);
        assert_eq!(
            again.ok().as_ref(),
            Some(&check.certificate),
            "a verified certificate fails after re-serialisation"
        );
    }
}
