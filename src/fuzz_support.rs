//! Fuzz target bodies, shared by `fuzz/` (cargo-fuzz) and `tests/fuzz_corpus.rs`
//! (which replays the checked-in corpus on stable). Each body must never
//! panic, whatever the bytes.

use crate::storage::format::{
    self, AuditEntry, AuditHead, BackupRecord, Blob, ErasureRecord, GrantEntry, IdentityEntry,
    MergeRecord, PendingPurge, ProfileRecord, SealedConsent, SigningKeyRecord, StoreHeader,
    SuppressionEntry, ValueCodec, WrappedKey,
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
    if let Ok(r) = ProfileRecord::decode(data) {
        assert_eq!(r.encode(), data, "profile record re-encodes differently");
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
    if let Ok(b) = Blob::decode(data) {
        let _ = format::decode_field_names(&b.0);
    }
    if let Ok(v) = format::decode_value(data) {
        let mut out = Vec::new();
        format::encode_value(&v, &mut out);
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
