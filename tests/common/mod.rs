//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use lethedb::{Db, MemoryKeyProvider, Options, ProfileId};

pub const CFS: [&str; 6] = [
    "meta",
    "profiles",
    "keys",
    "identities",
    "consents",
    "audit",
];

pub fn key(byte: u8) -> MemoryKeyProvider {
    MemoryKeyProvider::from_bytes([byte; 32])
}

pub fn create(path: &Path, k: &MemoryKeyProvider) -> Db {
    Db::open(path, k, Options::new().create_if_missing(true)).expect("create store")
}

pub fn reopen(path: &Path, k: &MemoryKeyProvider) -> Db {
    Db::open(path, k, Options::new()).expect("reopen store")
}

/// Opens the store's RocksDB directly, bypassing lethedb (the Db must be closed).
pub fn raw(path: &Path) -> rocksdb::DB {
    rocksdb::DB::open_cf(&rocksdb::Options::default(), path, CFS).expect("raw open")
}

pub fn profile_key(id: &ProfileId) -> Vec<u8> {
    let mut k = vec![b'p'];
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn keyring_key(id: &ProfileId) -> Vec<u8> {
    let mut k = vec![b'k'];
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn raw_get(db: &rocksdb::DB, cf: &str, key: &[u8]) -> Vec<u8> {
    db.get_cf(db.cf_handle(cf).expect("cf"), key)
        .expect("get")
        .expect("present")
}

pub fn raw_put(db: &rocksdb::DB, cf: &str, key: &[u8], value: &[u8]) {
    db.put_cf(db.cf_handle(cf).expect("cf"), key, value)
        .expect("put");
}

/// One field entry of a v1 profile record (see docs/design.md).
#[derive(Clone, Debug)]
pub struct RawField {
    pub id: u32,
    pub flag: u8,
    pub written_at: [u8; 8],
    pub payload: Vec<u8>,
}

/// Parses a v1 profile record into its 21-byte header (version through
/// updated_at) and fields, checking nothing but lengths.
pub fn parse_record(b: &[u8]) -> (Vec<u8>, Vec<RawField>) {
    let header = b[..21].to_vec();
    let count = u16::from_be_bytes([b[21], b[22]]);
    let mut pos = 23;
    let mut fields = Vec::new();
    for _ in 0..count {
        let id = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap());
        let flag = b[pos + 4];
        let written_at = b[pos + 5..pos + 13].try_into().unwrap();
        let len = u32::from_be_bytes(b[pos + 13..pos + 17].try_into().unwrap()) as usize;
        let payload = b[pos + 17..pos + 17 + len].to_vec();
        pos += 17 + len;
        fields.push(RawField {
            id,
            flag,
            written_at,
            payload,
        });
    }
    assert_eq!(pos + 4, b.len(), "record layout");
    (header, fields)
}

/// Re-encodes a v1 record with a correct CRC, as an attacker with disk access could.
pub fn encode_record(header: &[u8], fields: &[RawField]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for f in fields {
        out.extend_from_slice(&f.id.to_be_bytes());
        out.push(f.flag);
        out.extend_from_slice(&f.written_at);
        out.extend_from_slice(&(f.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&f.payload);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}
