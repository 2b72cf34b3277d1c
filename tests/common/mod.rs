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

pub fn raw_get(db: &rocksdb::DB, cf: &str, key: &[u8]) -> Vec<u8> {
    db.get_cf(db.cf_handle(cf).expect("cf"), key)
        .expect("get")
        .expect("present")
}

pub fn raw_put(db: &rocksdb::DB, cf: &str, key: &[u8], value: &[u8]) {
    db.put_cf(db.cf_handle(cf).expect("cf"), key, value)
        .expect("put");
}

/// One field entry of a profile record (see docs/design.md).
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

/// A v2 profile record split the way an attacker with the format in hand
/// would: the header (version through nonce), the field entries, and the
/// tail (tag and keyring slot); the CRC is recomputed on encoding.
#[derive(Clone, Debug)]
pub struct RawRecord {
    pub header: Vec<u8>,
    pub fields: Vec<RawField>,
    pub tail: Vec<u8>,
}

/// Bytes of the tag and keyring slot at the end of a v2 record (before its CRC).
pub const RECORD_TAIL: usize = 16 + 4 + 60;

/// Parses a v2 profile record (docs/design.md, "Profile record format
/// v2"), checking nothing but lengths.
pub fn parse_record(b: &[u8]) -> RawRecord {
    assert_eq!(b[0], 2, "a v2 profile record");
    let mut pos = 5;
    varint(b, &mut pos); // write version
    pos += 16; // created, updated
    pos += if b[pos] == 1 { 33 } else { 1 };
    let origins = varint(b, &mut pos) as usize;
    pos += 16 * origins;
    let anchors = varint(b, &mut pos) as usize;
    for _ in 0..anchors {
        pos += 8;
        varint(b, &mut pos);
    }
    pos += 16; // nonce
    let header = b[..pos].to_vec();
    let count = varint(b, &mut pos);
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
    assert_eq!(pos + RECORD_TAIL + 4, b.len(), "record layout");
    RawRecord {
        header,
        fields,
        tail: b[pos..pos + RECORD_TAIL].to_vec(),
    }
}

/// Re-encodes a v2 record with a correct CRC, as an attacker with disk access could.
pub fn encode_record(r: &RawRecord) -> Vec<u8> {
    let mut out = r.header.clone();
    put_varint(&mut out, r.fields.len() as u64);
    for f in &r.fields {
        put_varint(&mut out, f.id);
        out.push(f.flag);
        put_varint(&mut out, f.origin);
        put_varint(&mut out, f.age);
        put_varint(&mut out, f.payload.len() as u64);
        out.extend_from_slice(&f.payload);
    }
    out.extend_from_slice(&r.tail);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The keyring slot (bucket key version and wrapped seed) of a v2 record.
pub fn record_keyring(b: &[u8]) -> Vec<u8> {
    b[b.len() - 4 - 64..b.len() - 4].to_vec()
}

#[allow(unused_imports)]
pub use lethedb::forensics::encodings;
