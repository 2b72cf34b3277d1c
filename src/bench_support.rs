//! Thin wrappers over crate internals for `benches/` only. Not a stable API.

/// Seals `plain` under `key` with associated data `ad` (AES-256-GCM).
pub fn seal(key: &[u8; 32], ad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + crate::crypto::aead::OVERHEAD);
    // Sealing fails only for inputs far larger than any bench uses.
    if crate::crypto::aead::seal_into(key, ad, plain, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Opens what [`seal`] produced; `None` on authentication failure.
pub fn open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    crate::crypto::aead::open(key, ad, sealed).map(|p| p.to_vec())
}

/// Derives the field key for `field_id` from a keyring seed, as reads do.
pub fn derive_field_key(seed: [u8; 32], field_id: u32) -> Option<[u8; 32]> {
    let fk = crate::crypto::kdf::FieldKeys::new(&crate::crypto::SecretKey::new(seed), 1).ok()?;
    fk.key(field_id).ok().map(|k| *k)
}
