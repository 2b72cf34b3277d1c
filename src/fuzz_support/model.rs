//! Model-based fuzz target: random sequences of operations run against a
//! real store and against a small in-memory model of what lethedb promises;
//! the two are compared after every step.
//!
//! The model is exact for writes, deletes, resolves (create, attach, merge
//! into the oldest profile with the latest write per field winning and the
//! most restrictive consent per purpose), consent records (latest timestamp
//! wins), erasure (the person and everything merged into them; their
//! identifiers suppressed), purge and reopen. For unmerge it checks that the
//! merged profile's identifiers are split between the two profiles and
//! that the restored profile gets back the consent states it had when it
//! was merged, then takes the engine's field values (the attribution rules
//! of unmerge are documented in docs/design.md and tested in
//! tests/identity.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    ConsentRecord, ConsentStatus, Db, Error, Identifier, IdentityConfig, MemoryKeyProvider,
    MergeId, MergeRules, Options, ProfileId, Timestamp, Update, Value,
};

/// Most operations one input runs (each run opens a fresh store).
const MAX_OPS: usize = 40;
const FIELDS: [&str; 3] = ["f0", "f1", "f2"];
const PURPOSES: [&str; 2] = ["analytics", "email_marketing"];
/// Identifier universe: 4 user ids and 4 e-mails, already normalised.
const IDS: usize = 8;
/// Consent timestamps: distinct for every (offset, step), out of order.
const T0: i64 = 1_700_000_000_000_000;

fn identifier(i: usize) -> Identifier {
    if i < IDS / 2 {
        Identifier::user_id(format!("u{i}"))
    } else {
        Identifier::email(format!("e{i}@example.com"))
    }
}

/// A field's value as the model knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    /// Values the engine may hold: one, except after a merge of two values
    /// whose write order the model does not know (see `Model::merge`).
    values: Vec<i64>,
    /// Write sequence, when known.
    seq: Option<u64>,
}

impl Field {
    fn written(v: i64, seq: u64) -> Field {
        Field {
            values: vec![v],
            seq: Some(seq),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Person {
    id: Option<ProfileId>,
    /// Creation order (the survivor of a merge is the oldest).
    born: u64,
    /// Merged into this slot.
    into: Option<usize>,
    erased: bool,
    fields: BTreeMap<String, Field>,
    ids: BTreeSet<usize>,
    /// Purpose -> (granted, timestamp).
    consents: BTreeMap<String, (bool, i64)>,
}

struct Merge {
    id: MergeId,
    merged: usize,
    /// The merged profile's consent states when it was merged.
    consents: BTreeMap<String, (bool, i64)>,
}

#[derive(Default)]
struct Model {
    people: Vec<Person>,
    merges: Vec<Merge>,
    suppressed: BTreeSet<usize>,
    seq: u64,
}

impl Model {
    /// The live slot `slot` redirects to.
    fn live(&self, mut slot: usize) -> usize {
        while let Some(next) = self.people[slot].into {
            slot = next;
        }
        slot
    }

    fn owner(&self, ident: usize) -> Option<usize> {
        self.people
            .iter()
            .position(|p| p.into.is_none() && !p.erased && p.ids.contains(&ident))
    }

    fn id(&self, slot: usize) -> ProfileId {
        self.people[slot]
            .id
            .unwrap_or_else(|| ProfileId::from_bytes([0; 16]))
    }

    /// `q` merged into `s` (both live): what `Db::resolve` promises.
    fn merge(&mut self, s: usize, q: usize, merge_id: MergeId) {
        let qp = self.people[q].clone();
        let sp = &mut self.people[s];
        for (name, qf) in &qp.fields {
            let merged = match sp.fields.get(name) {
                None => qf.clone(),
                // Latest write wins, the survivor on ties.
                Some(sf) => match (sf.seq, qf.seq) {
                    (Some(a), Some(b)) if a >= b => sf.clone(),
                    (Some(_), Some(_)) => qf.clone(),
                    // Write order unknown after an unmerge: either value.
                    _ => Field {
                        values: sf.values.iter().chain(&qf.values).copied().collect(),
                        seq: None,
                    },
                },
            };
            sp.fields.insert(name.clone(), merged);
        }
        sp.ids.extend(qp.ids.iter().copied());
        for (purpose, (granted, at)) in &qp.consents {
            match sp.consents.get(purpose) {
                // The survivor's state stands unless it grants and q's does not.
                Some((true, _)) if !granted => {
                    sp.consents.insert(purpose.clone(), (*granted, *at));
                }
                Some(_) => {}
                None => {
                    sp.consents.insert(purpose.clone(), (*granted, *at));
                }
            }
        }
        self.people[q].into = Some(s);
        self.people[q].ids.clear();
        self.merges.push(Merge {
            id: merge_id,
            merged: q,
            consents: qp.consents,
        });
    }
}

/// Reads bytes as choices; 0 once the input is used up.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn pick(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::from(self.byte().unwrap_or(0)) % n
    }
}

/// A fresh directory per run, removed when the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options() -> Options {
    let rules = MergeRules {
        limits: BTreeMap::new(),
        default_limit: 64,
        max_merged_profiles: 64,
        ..MergeRules::default()
    };
    Options::new()
        .create_if_missing(true)
        .key_tree(2, 2)
        .write_buffer_bytes(1 << 20)
        .block_cache_bytes(1 << 20)
        .purge_after_erasures(0)
        .identity(IdentityConfig {
            rules,
            ..IdentityConfig::default()
        })
}

/// Runs the operations `data` encodes against a new store and the model,
/// panicking at the first difference.
pub fn model(data: &[u8]) {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = Scratch(std::env::temp_dir().join(format!(
        "lethedb-model-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    )));
    let _ = std::fs::remove_dir_all(&dir.0);
    let key = MemoryKeyProvider::generate().expect("OS randomness");
    // Roots in memory: nothing is left beside the scratch directory.
    let roots: std::sync::Arc<dyn crate::RootKeyStore> =
        std::sync::Arc::new(crate::MemoryRootKeyStore::new());
    let opts = || options().root_keys(std::sync::Arc::clone(&roots));
    let mut db = Some(Db::open(&dir.0, &key, opts()).expect("open a new store"));
    let mut m = Model::default();
    let mut c = Choices(data);
    for step in 0..MAX_OPS {
        let Some(op) = c.byte() else { break };
        let Some(engine) = db.as_ref() else { break };
        let trace = apply(engine, &mut m, &mut c, op, step);
        if trace == Applied::Reopen {
            // Close before reopening: RocksDB holds a lock on the directory.
            drop(db.take());
            db = Some(Db::open(&dir.0, &key, opts()).expect("reopen the store"));
        }
        if let Some(engine) = db.as_ref() {
            check(engine, &mut m, step);
        }
    }
}

#[derive(PartialEq, Eq)]
enum Applied {
    Done,
    Reopen,
}

fn expect_erased<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    assert!(
        matches!(r, Err(Error::ProfileErased { .. })),
        "{what} on an erased profile gave {r:?}"
    );
}

fn apply(db: &Db, m: &mut Model, c: &mut Choices, op: u8, step: usize) -> Applied {
    let n = m.people.len();
    match op % 11 {
        // Create a profile without identifiers.
        0 => {
            let f = FIELDS[c.pick(FIELDS.len())];
            let v = i64::from(c.byte().unwrap_or(0));
            m.seq += 1;
            let id = db.create(Update::new().set(f, v)).expect("create");
            m.people.push(Person {
                id: Some(id),
                born: m.seq,
                fields: BTreeMap::from([(f.to_string(), Field::written(v, m.seq))]),
                ..Person::default()
            });
        }
        // Write one field.
        1 if n > 0 => {
            let slot = c.pick(n);
            let f = FIELDS[c.pick(FIELDS.len())];
            let v = i64::from(c.byte().unwrap_or(0));
            let r = db.upsert(&m.id(slot), Update::new().set(f, v));
            let live = m.live(slot);
            if m.people[live].erased {
                expect_erased(r, "upsert");
            } else {
                r.expect("upsert");
                m.seq += 1;
                let seq = m.seq;
                m.people[live]
                    .fields
                    .insert(f.to_string(), Field::written(v, seq));
            }
        }
        // Delete a field the profile has.
        2 if n > 0 => {
            let live = m.live(c.pick(n));
            let present: Vec<String> = m.people[live].fields.keys().cloned().collect();
            if m.people[live].erased {
                expect_erased(db.delete_field(&m.id(live), "f0"), "delete_field");
            } else if !present.is_empty() {
                let f = present[c.pick(present.len())].clone();
                db.delete_field(&m.id(live), &f).expect("delete_field");
                m.people[live].fields.remove(&f);
            }
        }
        // Resolve 1-3 identifiers with one field.
        3 | 4 => resolve(db, m, c),
        // Unmerge one of the merges made.
        5 if !m.merges.is_empty() => unmerge(db, m, c),
        // Record consent.
        6 if n > 0 => {
            let slot = c.pick(n);
            let purpose = PURPOSES[c.pick(PURPOSES.len())];
            let granted = c.byte().unwrap_or(0) & 1 == 1;
            let at = T0 + i64::from(c.byte().unwrap_or(0)) * 1000 + step as i64;
            let status = if granted {
                ConsentStatus::Granted
            } else {
                ConsentStatus::Denied
            };
            let rec = ConsentRecord::new(purpose, status).at(Timestamp(at));
            let r = db.record_consent(&m.id(slot), rec);
            let live = m.live(slot);
            if m.people[live].erased {
                expect_erased(r, "record_consent");
            } else {
                r.expect("record_consent");
                let cur = m.people[live].consents.get(purpose).map(|x| x.1);
                if cur.is_none_or(|t| t < at) {
                    m.people[live]
                        .consents
                        .insert(purpose.to_string(), (granted, at));
                }
            }
        }
        // Forget a person.
        7 if n > 0 => {
            let slot = c.pick(n);
            let live = m.live(slot);
            let receipt = db.forget(&m.id(slot)).expect("forget");
            assert_eq!(
                receipt.already_erased, m.people[live].erased,
                "forget's already_erased"
            );
            let ids = std::mem::take(&mut m.people[live].ids);
            m.suppressed.extend(ids);
            for s in 0..m.people.len() {
                if m.live(s) == live {
                    m.people[s].erased = true;
                }
            }
        }
        // Forget one field.
        8 if n > 0 => {
            let live = m.live(c.pick(n));
            let present: Vec<String> = m.people[live].fields.keys().cloned().collect();
            if m.people[live].erased {
                expect_erased(db.forget_field(&m.id(live), "f0"), "forget_field");
            } else if !present.is_empty() {
                let f = present[c.pick(present.len())].clone();
                db.forget_field(&m.id(live), &f).expect("forget_field");
                m.people[live].fields.remove(&f);
            }
        }
        9 => {
            db.purge().expect("purge");
        }
        10 => return Applied::Reopen,
        _ => {}
    }
    Applied::Done
}

fn resolve(db: &Db, m: &mut Model, c: &mut Choices) {
    let k = 1 + c.pick(3);
    let mut chosen = BTreeSet::new();
    for _ in 0..k {
        chosen.insert(c.pick(IDS));
    }
    let f = FIELDS[c.pick(FIELDS.len())];
    let v = i64::from(c.byte().unwrap_or(0));
    let request: Vec<Identifier> = chosen.iter().map(|&i| identifier(i)).collect();
    let out = db
        .resolve(&request, Update::new().set(f, v))
        .expect("resolve");
    // Identifiers of forgotten people that nobody holds are rejected.
    let kept: BTreeSet<usize> = chosen
        .iter()
        .copied()
        .filter(|i| !m.suppressed.contains(i) || m.owner(*i).is_some())
        .collect();
    assert_eq!(
        out.rejected.len(),
        chosen.len() - kept.len(),
        "resolve rejected {:?}",
        out.rejected
    );
    if kept.is_empty() {
        assert_eq!(out.profile, None, "resolve of suppressed identifiers wrote");
        return;
    }
    let mut owners: Vec<usize> = kept.iter().filter_map(|&i| m.owner(i)).collect();
    owners.sort_by_key(|&s| m.people[s].born);
    owners.dedup();
    m.seq += 1;
    let target = match owners.first() {
        None => {
            m.people.push(Person {
                id: out.profile,
                born: m.seq,
                ..Person::default()
            });
            assert!(out.created, "resolve of new identifiers did not create");
            m.people.len() - 1
        }
        Some(&s) => {
            assert!(
                !out.created,
                "resolve created a profile for known identifiers"
            );
            assert_eq!(out.profile, m.people[s].id, "resolve chose another profile");
            assert_eq!(
                out.merges.len(),
                owners.len() - 1,
                "resolve merged {} profiles",
                out.merges.len()
            );
            for (&q, merge_id) in owners[1..].iter().zip(&out.merges) {
                m.merge(s, q, *merge_id);
            }
            s
        }
    };
    m.seq += 1;
    let seq = m.seq;
    let p = &mut m.people[target];
    p.ids.extend(kept);
    p.fields.insert(f.to_string(), Field::written(v, seq));
}

fn unmerge(db: &Db, m: &mut Model, c: &mut Choices) {
    let k = c.pick(m.merges.len());
    let (merge_id, q) = (m.merges[k].id, m.merges[k].merged);
    let Some(s) = m.people[q].into else {
        // Already undone: refused.
        assert!(db.unmerge(&merge_id).is_err(), "unmerge twice succeeded");
        return;
    };
    let before: BTreeSet<usize> = m.people[s].ids.clone();
    match db.unmerge(&merge_id) {
        Ok((survivor, restored)) => {
            assert!(!m.people[s].erased, "unmerged an erased person");
            assert_eq!(Some(survivor), m.people[s].id, "unmerge survivor");
            assert_eq!(Some(restored), m.people[q].id, "unmerge restored");
            m.people[q].into = None;
            let consents = m.merges[k].consents.clone();
            m.people[q].consents = consents;
            for slot in [s, q] {
                let id = m.id(slot);
                let held = engine_ids(db, &id);
                let fields = db.get(&id).expect("get after unmerge").fields;
                let p = &mut m.people[slot];
                p.ids = held;
                // The engine orders later merges by write time, which the
                // model no longer knows for these values.
                p.fields = fields
                    .into_iter()
                    .map(|(name, v)| {
                        let field = Field {
                            values: vec![int(&v)],
                            seq: None,
                        };
                        (name, field)
                    })
                    .collect();
            }
            let after: BTreeSet<usize> = m.people[s].ids.union(&m.people[q].ids).copied().collect();
            assert!(
                m.people[s].ids.is_disjoint(&m.people[q].ids),
                "unmerge left an identifier on both profiles"
            );
            assert_eq!(after, before, "unmerge lost or invented identifiers");
        }
        // Refusals (a later merge or an erasure in the way) are typed and
        // change nothing; the check after this step verifies that.
        Err(e) => assert!(
            !matches!(e, Error::Corrupt { .. } | Error::Decrypt { .. }),
            "unmerge failed: {e}"
        ),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("field read back as {other:?}"),
    }
}

fn engine_ids(db: &Db, id: &ProfileId) -> BTreeSet<usize> {
    let held = db.identifiers(id).expect("identifiers");
    held.iter()
        .map(|h| {
            (0..IDS)
                .find(|&i| {
                    let want = identifier(i);
                    want.id_type == h.id_type && want.value == h.value
                })
                .unwrap_or_else(|| panic!("unknown identifier {h:?}"))
        })
        .collect()
}

/// Every profile, identifier and consent state reads as the model says.
/// A field the model holds several possible values for settles on the one
/// the engine returned.
fn check(db: &Db, m: &mut Model, step: usize) {
    for slot in 0..m.people.len() {
        let id = m.id(slot);
        let live = m.live(slot);
        if m.people[live].erased {
            expect_erased(db.get(&id), "get");
            continue;
        }
        let got = db
            .get(&id)
            .unwrap_or_else(|e| panic!("step {step}: get {slot}: {e}"));
        let names: BTreeSet<&String> = got.fields.keys().collect();
        let want: BTreeSet<&String> = m.people[live].fields.keys().collect();
        assert_eq!(names, want, "step {step}: field names of profile {slot}");
        for (name, field) in m.people[live].fields.iter_mut() {
            let v = int(&got.fields[name]);
            assert!(
                field.values.contains(&v),
                "step {step}: {name} of profile {slot} is {v}, expected one of {:?}",
                field.values
            );
            field.values = vec![v];
        }
        let p = &m.people[slot];
        if p.into.is_some() {
            continue;
        }
        assert_eq!(
            engine_ids(db, &id),
            p.ids,
            "step {step}: identifiers of {slot}"
        );
        for purpose in PURPOSES {
            let got = db
                .consent(&id, purpose)
                .unwrap_or_else(|e| panic!("step {step}: consent: {e}"))
                .map(|r| (r.status == ConsentStatus::Granted, r.timestamp.as_micros()));
            assert_eq!(
                got,
                p.consents.get(purpose).copied(),
                "step {step}: consent {purpose} of {slot}"
            );
        }
    }
    for i in 0..IDS {
        let want = m.owner(i).map(|s| m.id(s));
        let got = db.lookup(&identifier(i)).expect("lookup");
        assert_eq!(got, want, "step {step}: lookup of identifier {i}");
    }
}
