//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod softhsm;

use std::path::Path;

use lethedb::{Db, MemoryKeyProvider, Options, ProfileId};

/// Copies the directory `from` (recursively) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Copies the store directory `from` to `to` with its default root key
/// file (`<from>.rootkeys` → `<to>.rootkeys`), so the copy opens.
pub fn copy_store(from: &Path, to: &Path) {
    copy_dir(from, to);
    let roots = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".rootkeys");
        std::path::PathBuf::from(s)
    };
    if roots(from).exists() {
        std::fs::copy(roots(from), roots(to)).unwrap();
    }
}

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
    pub id: u64,
    pub flag: u8,
    pub origin: u64,
    pub age: u64,
    pub payload: Vec<u8>,
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Parses a v1 profile record into its header (version through origins)
/// and fields, checking nothing but lengths.
pub fn parse_record(b: &[u8]) -> (Vec<u8>, Vec<RawField>) {
    let mut pos = 21;
    pos += if b[pos] == 1 { 33 } else { 1 };
    let origins = varint(b, &mut pos) as usize;
    pos += 16 * origins;
    let header = b[..pos].to_vec();
    let count = u16::from_be_bytes([b[pos], b[pos + 1]]);
    pos += 2;
    let mut fields = Vec::new();
    for _ in 0..count {
        let id = varint(b, &mut pos);
        let flag = b[pos];
        pos += 1;
        let origin = varint(b, &mut pos);
        let age = varint(b, &mut pos);
        let len = varint(b, &mut pos) as usize;
        let payload = b[pos..pos + len].to_vec();
        pos += len;
        fields.push(RawField {
            id,
            flag,
            origin,
            age,
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
        put_varint(&mut out, f.id);
        out.push(f.flag);
        put_varint(&mut out, f.origin);
        put_varint(&mut out, f.age);
        put_varint(&mut out, f.payload.len() as u64);
        out.extend_from_slice(&f.payload);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[allow(unused_imports)]
pub use lethedb::forensics::encodings;
