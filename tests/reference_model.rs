//! An independent reference model of profiles, identifiers, merges and
//! unmerges, consent and erasure, written from docs/design.md's semantics —
//! never by asking the engine what the answer should be (issue 17).
//!
//! Random sequences (seeded, replayable) of create / upsert / consent /
//! alias (merge) / unmerge / forget / purge / reopen run against a store
//! and the model; after every step every live person's fields, lookups,
//! consent states, `consented_profiles` and export must equal the model's,
//! no answer may carry a value, identifier or consent proof of a forgotten
//! person, and after every purge no file under the store's parent
//! directory holds a forgotten person's key material, or their profile id
//! in any text form.
//!
//! `cargo test --release --test reference_model` runs a fixed budget of
//! seeds; `LETHEDB_MODEL_SEEDS=N` runs N; `LETHEDB_MODEL_SEED=S` replays one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use lethedb::{
    forensics::scan_dir, ConsentRecord, ConsentStatus, Db, Error, Identifier, MergeId, Options,
    ProfileId, Update, Value,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PURPOSES: [&str; 3] = ["analytics", "ads_targeting", "email_marketing"];
const FIELDS: [&str; 3] = ["name", "city", "plan"];

/// One consent event on a profile, as docs/design.md ("Consent") orders
/// them: an own record replaces the current state (its timestamp is the
/// newest); a record a merge copied in replaces it (it won).
#[derive(Clone, Debug)]
enum ConsentEvent {
    Own {
        purpose: &'static str,
        granted: bool,
        proof: String,
    },
    Copied {
        merge: MergeId,
        purpose: &'static str,
        granted: bool,
        proof: String,
    },
}

/// A field value: the value, the profile it is attributed to, and when it
/// was written.
type FieldValue = (String, usize, u64);

/// A profile as the model sees it.
#[derive(Clone, Debug, Default)]
struct MProfile {
    /// The profile's record (docs/design.md, "Merge", "Unmerge"): per
    /// field the value, the profile it is attributed to, and when it was
    /// written. Frozen while the profile is merged away.
    rec: BTreeMap<&'static str, FieldValue>,
    /// Its origins table: every profile merged into it, transitively.
    origins: BTreeSet<usize>,
    /// Values each of its merges displaced, by merge.
    displaced: BTreeMap<MergeId, Vec<(&'static str, FieldValue)>>,
    /// Its device id (one per profile, never reused; the merge rules allow
    /// five device ids per person, so the model merges at most five).
    user_id: String,
    created: u64,
    consent: Vec<ConsentEvent>,
    /// Profiles merged into this one (by merge), in merge order.
    absorbed: Vec<(MergeId, usize)>,
    /// The profile this one is merged into.
    merged_into: Option<usize>,
    forgotten: bool,
}

struct Model {
    ps: Vec<MProfile>,
    ids: Vec<ProfileId>,
    clock: u64,
}

/// The current consent states a profile's events give (docs/design.md:
/// the replay rule of unmerge is the rule the states were built by).
fn states(events: &[ConsentEvent]) -> BTreeMap<&'static str, (bool, String)> {
    let mut cur = BTreeMap::new();
    for e in events {
        match e {
            ConsentEvent::Own {
                purpose,
                granted,
                proof,
            }
            | ConsentEvent::Copied {
                purpose,
                granted,
                proof,
                ..
            } => {
                cur.insert(*purpose, (*granted, proof.clone()));
            }
        }
    }
    cur
}

impl Model {
    /// Every profile of the person `p` belongs to now: the root and all it
    /// absorbed (transitively), root first.
    fn side(&self, root: usize) -> Vec<usize> {
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            for (_, q) in &self.ps[out[i]].absorbed {
                out.push(*q);
            }
            i += 1;
        }
        out
    }

    fn root(&self, mut p: usize) -> usize {
        while let Some(s) = self.ps[p].merged_into {
            p = s;
        }
        p
    }

    /// Fields of the person whose root is `root`: its record.
    fn fields(&self, root: usize) -> BTreeMap<&'static str, String> {
        self.ps[root]
            .rec
            .iter()
            .map(|(f, (v, _, _))| (*f, v.clone()))
            .collect()
    }

    fn live_roots(&self) -> Vec<usize> {
        (0..self.ps.len())
            .filter(|p| self.ps[*p].merged_into.is_none() && !self.ps[*p].forgotten)
            .collect()
    }
}

fn opts() -> Options {
    Options::new()
        .create_if_missing(true)
        .compression(false)
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(3600))
}

fn marker(kind: &str, p: usize, n: u64) -> String {
    format!("{kind}-P{p:03}-{n:05}-ZQX")
}

struct Run {
    db: Option<Db>,
    model: Model,
    /// Needles of forgotten people: key material (raw) and profile ids (text forms).
    needles: Vec<Vec<u8>>,
    /// Strings of forgotten people that no answer may contain.
    gone: BTreeSet<String>,
    steps: u64,
}

impl Run {
    fn db(&self) -> &Db {
        self.db.as_ref().expect("open")
    }

    fn step(&mut self, rng: &mut StdRng, dir: &Path, k: &lethedb::MemoryKeyProvider) {
        self.steps += 1;
        self.model.clock += 1;
        let now = self.model.clock;
        let live = self.model.live_roots();
        let op = if live.len() < 2 {
            0
        } else {
            rng.gen_range(0..100)
        };
        if std::env::var("LETHEDB_MODEL_TRACE").is_ok() {
            eprintln!("step {} op {op} live {live:?}", self.steps);
        }
        match op {
            0..=14 => {
                // create
                let p = self.model.ps.len();
                let user_id = marker("U", p, now);
                let name = marker("V", p, now);
                let out = self
                    .db()
                    .resolve(
                        &[Identifier::device_id(&user_id)],
                        Update::new().set("name", name.as_str()),
                    )
                    .unwrap();
                assert!(out.created, "create {p}");
                let mut m = MProfile {
                    user_id,
                    created: now,
                    ..MProfile::default()
                };
                m.rec.insert("name", (name, p, now));
                self.model.ps.push(m);
                self.model.ids.push(out.profile.unwrap());
            }
            15..=39 => {
                // upsert through the profile's own id (a merged-away id
                // writes to its root, attributed to itself)
                let p = rng.gen_range(0..self.model.ps.len());
                if self.model.ps[p].forgotten {
                    return;
                }
                let f = FIELDS[rng.gen_range(0..FIELDS.len())];
                let v = marker("V", p, now);
                if std::env::var("LETHEDB_MODEL_TRACE").is_ok() {
                    eprintln!("  upsert {p}.{f}");
                }
                self.db()
                    .upsert(&self.model.ids[p], Update::new().set(f, v.as_str()))
                    .unwrap();
                // Written to the root, attributed to `p`.
                let root = self.model.root(p);
                self.model.ps[root].rec.insert(f, (v, p, now));
            }
            40..=59 => {
                // consent, recorded through the profile's own id
                let p = rng.gen_range(0..self.model.ps.len());
                if self.model.ps[p].forgotten {
                    return;
                }
                let purpose = PURPOSES[rng.gen_range(0..PURPOSES.len())];
                let granted = rng.gen_bool(0.6);
                let proof = marker("C", p, now);
                let status = if granted {
                    ConsentStatus::Granted
                } else {
                    ConsentStatus::Denied
                };
                self.db()
                    .record_consent(
                        &self.model.ids[p],
                        ConsentRecord::new(purpose, status).proof(proof.as_str()),
                    )
                    .unwrap();
                // The record lands on the root, attributed to `p`: every
                // profile on the way up holds it in its view, and an unmerge
                // hands it back with `p`'s side.
                let event = ConsentEvent::Own {
                    purpose,
                    granted,
                    proof,
                };
                let mut x = Some(p);
                while let Some(at) = x {
                    self.model.ps[at].consent.push(event.clone());
                    x = self.model.ps[at].merged_into;
                }
            }
            60..=74 => {
                // alias: two people become one; the older profile survives
                let a = live[rng.gen_range(0..live.len())];
                let b = live[rng.gen_range(0..live.len())];
                if a == b || self.model.side(a).len() + self.model.side(b).len() > 5 {
                    return;
                }
                let (s, q) = if (self.model.ps[a].created, a) <= (self.model.ps[b].created, b) {
                    (a, b)
                } else {
                    (b, a)
                };
                let out = self
                    .db()
                    .resolve(
                        &[
                            Identifier::device_id(&self.model.ps[a].user_id),
                            Identifier::device_id(&self.model.ps[b].user_id),
                        ],
                        Update::new(),
                    )
                    .unwrap();
                assert_eq!(out.profile, Some(self.model.ids[s]), "survivor");
                assert_eq!(out.merges.len(), 1);
                let m = out.merges[0];
                // Consent: per purpose the more restrictive state wins (not
                // granted < granted); a purpose only q has comes over.
                let s_states = states(&self.model.ps[s].consent);
                let q_states = states(&self.model.ps[q].consent);
                for (purpose, (granted, proof)) in q_states {
                    let wins = match s_states.get(purpose) {
                        None => true,
                        Some((s_granted, _)) => *s_granted && !granted,
                    };
                    if wins {
                        self.model.ps[s].consent.push(ConsentEvent::Copied {
                            merge: m,
                            purpose,
                            granted,
                            proof,
                        });
                    }
                }
                if std::env::var("LETHEDB_MODEL_TRACE").is_ok() {
                    eprintln!("  merge {q} (side {:?}) into {s}", self.model.side(q));
                }
                // Fields: the most recent write wins, ties go to the
                // survivor; a survivor value that loses is displaced.
                let q_rec = self.model.ps[q].rec.clone();
                let mut displaced = Vec::new();
                for (f, qv) in q_rec {
                    if let Some(cur) = self.model.ps[s].rec.get(f) {
                        if cur.2 >= qv.2 {
                            continue;
                        }
                        displaced.push((f, cur.clone()));
                    }
                    self.model.ps[s].rec.insert(f, qv);
                }
                let mut side: BTreeSet<usize> = self.model.ps[q].origins.clone();
                side.insert(q);
                self.model.ps[s].origins.extend(side);
                self.model.ps[s].displaced.insert(m, displaced);
                self.model.ps[s].absorbed.push((m, q));
                self.model.ps[q].merged_into = Some(s);
            }
            75..=84 => {
                // unmerge the most recent merge of a live root
                let Some(&s) = live
                    .iter()
                    .find(|s| !self.model.ps[**s].absorbed.is_empty())
                else {
                    return;
                };
                let (m, q) = self.model.ps[s].absorbed.pop().unwrap();
                if std::env::var("LETHEDB_MODEL_TRACE").is_ok() {
                    eprintln!("  unmerge {q} from {s}; side {:?}", self.model.side(q));
                }
                if std::env::var("LETHEDB_MODEL_TRACE").is_ok() {
                    eprintln!(
                        "  before: {:?}",
                        self.db().get(&self.model.ids[s]).unwrap().fields
                    );
                }
                self.db().unmerge(&m).unwrap();
                if std::env::var("LETHEDB_MODEL_TRACE").is_ok() {
                    eprintln!(
                        "  after: {:?}",
                        self.db().get(&self.model.ids[s]).unwrap().fields
                    );
                    eprintln!(
                        "  q after: {:?}",
                        self.db().get(&self.model.ids[q]).unwrap().fields
                    );
                }
                self.model.ps[q].merged_into = None;
                let side: BTreeSet<usize> = self.model.side(q).into_iter().collect();
                // Fields attributed to q's side go back to q where at least
                // as new as q's frozen value; the survivor gets back what
                // the merge displaced where that was taken and its origin
                // is still the survivor's.
                let mut taken = BTreeSet::new();
                let s_rec = std::mem::take(&mut self.model.ps[s].rec);
                for (f, v) in s_rec {
                    if side.contains(&v.1) {
                        if self.model.ps[q].rec.get(f).is_none_or(|b| b.2 <= v.2) {
                            self.model.ps[q].rec.insert(f, v);
                        }
                        taken.insert(f);
                    } else {
                        self.model.ps[s].rec.insert(f, v);
                    }
                }
                let displaced = self.model.ps[s].displaced.remove(&m).unwrap_or_default();
                for (f, d) in displaced {
                    let still_here = d.1 == s
                        || (self.model.ps[s].origins.contains(&d.1) && !side.contains(&d.1));
                    if still_here && taken.contains(f) && !self.model.ps[s].rec.contains_key(f) {
                        self.model.ps[s].rec.insert(f, d);
                    }
                }
                let s_origins = &mut self.model.ps[s].origins;
                s_origins.retain(|o| !side.contains(o));
                // The survivor loses M's copies and what q's side recorded
                // since (the side keeps its own copy of those events).
                let side_proofs: BTreeSet<String> = side
                    .iter()
                    .flat_map(|p| self.model.ps[*p].consent.iter())
                    .filter_map(|e| match e {
                        ConsentEvent::Own { proof, .. } => Some(proof.clone()),
                        ConsentEvent::Copied { .. } => None,
                    })
                    .collect();
                self.model.ps[s].consent.retain(|e| match e {
                    ConsentEvent::Copied { merge, .. } => *merge != m,
                    ConsentEvent::Own { proof, .. } => !side_proofs.contains(proof),
                });
            }
            85..=91 => {
                // forget a person
                let p = live[rng.gen_range(0..live.len())];
                for q in self.model.side(p) {
                    self.model.ps[q].forgotten = true;
                    let id = self.model.ids[q];
                    for enc in common::encodings(id.as_bytes()) {
                        if enc.as_slice() != id.as_bytes() {
                            self.needles.push(enc);
                        }
                    }
                    self.gone.insert(self.model.ps[q].user_id.clone());
                    for (v, _, _) in self.model.ps[q].rec.values() {
                        self.gone.insert(v.clone());
                    }
                    for e in &self.model.ps[q].consent {
                        if let ConsentEvent::Own { proof, .. } = e {
                            self.gone.insert(proof.clone());
                        }
                    }
                }
                for m in self.db().debug_key_material(&self.model.ids[p]).unwrap() {
                    self.needles
                        .push(if m.len() == 17 { m[5..].to_vec() } else { m });
                }
                self.db().forget(&self.model.ids[p]).unwrap();
            }
            92..=96 => {
                self.db().purge().unwrap();
                if !self.needles.is_empty() {
                    let r = scan_dir(dir, &self.needles).unwrap();
                    assert!(
                        r.hits.is_empty(),
                        "after purge: {:?}",
                        &r.hits[..r.hits.len().min(3)]
                    );
                }
            }
            _ => {
                drop(self.db.take());
                self.db = Some(Db::open(dir.join("store"), k, opts()).unwrap());
            }
        }
        self.check();
    }

    /// Every answer about every profile equals the model's.
    fn check(&self) {
        let db = self.db();
        let m = &self.model;
        for (p, mp) in m.ps.iter().enumerate() {
            let id = m.ids[p];
            if mp.forgotten {
                assert!(
                    matches!(db.get(&id), Err(Error::ProfileErased { .. })),
                    "forgotten {p} still reads"
                );
                assert_eq!(
                    db.lookup(&Identifier::device_id(&mp.user_id)).unwrap(),
                    None
                );
                continue;
            }
            let root = m.root(p);
            assert_eq!(
                db.lookup(&Identifier::device_id(&mp.user_id)).unwrap(),
                Some(m.ids[root]),
                "lookup of {p}"
            );
            if root != p {
                continue;
            }
            let got = db.get(&id).unwrap();
            let want = m.fields(p);
            let got_fields: BTreeMap<&str, String> = got
                .fields
                .iter()
                .map(|(f, v)| match v {
                    Value::String(s) => (f.as_str(), s.clone()),
                    other => panic!("{f}: {other:?}"),
                })
                .collect();
            let want_fields: BTreeMap<&str, String> =
                want.iter().map(|(f, v)| (*f, v.clone())).collect();
            assert_eq!(got_fields, want_fields, "fields of {p}");
            let want_consent = states(&mp.consent);
            let got_consent: BTreeMap<String, (bool, String)> = db
                .consents(&id)
                .unwrap()
                .into_iter()
                .map(|r| {
                    (
                        r.purpose.clone(),
                        (
                            r.status == ConsentStatus::Granted,
                            r.proof.unwrap_or_default(),
                        ),
                    )
                })
                .collect();
            let want_consent: BTreeMap<String, (bool, String)> = want_consent
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(got_consent, want_consent, "consent of {p}");
            let export = db.export(&id).unwrap().to_string();
            for g in &self.gone {
                assert!(!export.contains(g.as_str()), "{g} in the export of {p}");
            }
        }
        for purpose in PURPOSES {
            let want: BTreeSet<ProfileId> = m
                .live_roots()
                .into_iter()
                .filter(|r| states(&m.ps[*r].consent).get(purpose).is_some_and(|s| s.0))
                .map(|r| m.ids[r])
                .collect();
            let got: BTreeSet<ProfileId> = db
                .consented_profiles(purpose)
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(got, want, "who has {purpose}");
        }
    }
}

fn run_seed(seed: u64, steps: u64) {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key((seed % 251) as u8);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut run = Run {
        db: Some(Db::open(dir.path().join("store"), &k, opts()).unwrap()),
        model: Model {
            ps: Vec::new(),
            ids: Vec::new(),
            clock: 0,
        },
        needles: Vec::new(),
        gone: BTreeSet::new(),
        steps: 0,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..steps {
            run.step(&mut rng, dir.path(), &k);
        }
        run.db().purge().unwrap();
        let r = scan_dir(dir.path(), &run.needles).unwrap();
        assert!(r.hits.is_empty(), "final scan: {:?}", r.hits.first());
    }));
    if let Err(e) = result {
        eprintln!(
            "seed {seed} failed at step {}: replay with LETHEDB_MODEL_SEED={seed} cargo test --release --test reference_model",
            run.steps
        );
        std::panic::resume_unwind(e);
    }
}

#[test]
fn the_engine_answers_as_the_reference_model() {
    let steps = 120;
    if let Ok(seed) = std::env::var("LETHEDB_MODEL_SEED") {
        run_seed(seed.parse().expect("seed"), steps);
        return;
    }
    let seeds: u64 = std::env::var("LETHEDB_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    for seed in 0..seeds {
        run_seed(seed, steps);
    }
    println!("{seeds} seeds x {steps} steps: 0 failures");
}
