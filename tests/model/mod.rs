//! The body of the independent reference model (issue 17), shared by
//! `tests/reference_model.rs` (seeded runs), `tests/fuzz_corpus.rs` (the
//! checked-in corpus) and the cargo-fuzz target `fuzz/fuzz_targets/model.rs`
//! (which includes this file by path).
//!
//! An in-memory model of profiles, identifiers, merges and unmerges,
//! consent, field and person erasure, backups and restores, written from
//! docs/design.md's semantics — never by asking the engine what the answer
//! should be. After every step every live person's fields, purpose-bound
//! reads, lookups, consent states, consent history, merges,
//! `consented_profiles` and export must equal (or, for history, stay
//! within) the model's; no answer may carry a value, identifier or consent
//! proof of a forgotten person or field; and after every purge no file
//! under the store's parent directory (stores, LOG files, backups, root
//! key files) holds a forgotten person's key material, or their profile id
//! in any text form.
//!
//! Legal holds and erasure requests (issue 20, docs/design.md "Legal
//! holds", "Data-subject requests"): a hold placed on a person covers every
//! profile of the person's lineage at the time of an erasure; `forget` of a
//! held person (and `forget_fields` of a held field) answers
//! `LegalHold` naming one of the covering holds and erases nothing; the
//! person's open erasure requests then wait `on_hold` naming the holds; a
//! release takes the hold out of every request that waited for it (open
//! again when none is left); a `forget` links the person's open erasure
//! requests, and the purge after it completes them.
//!
//! Depends only on the public API (feature `testkit`), `rand` and
//! `tempfile`, so the fuzz crate can compile it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lethedb::{
    forensics::{encodings, scan_dir},
    ConsentRecord, ConsentStatus, Db, Error, Identifier, MemoryKeyProvider, MergeId, NewHold,
    NewRequest, Options, ProfileId, RequestKind, RequestStatus, Schema, Update, Value,
};

const PURPOSES: [&str; 3] = ["analytics", "ads_targeting", "email_marketing"];
const FIELDS: [&str; 3] = ["name", "city", "plan"];
/// The published TC string of the golden fixture: purpose consents {1, 3,
/// 9, 10}, legitimate interests {3, 4, 5, 8, 9, 10} — by docs/design.md's
/// mapping tcf:1, 3, 9, 10 granted on consent, 4, 5, 8 on legitimate
/// interests, the rest denied.
const TC: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
const TCF_GRANTED: [u8; 7] = [1, 3, 4, 5, 8, 9, 10];
/// The TCF purposes whose `consented_profiles` are checked each step.
const TCF_CHECKED: [&str; 3] = ["tcf:1", "tcf:2", "tcf:4"];

/// Where the model's choices come from: a seeded generator or fuzz bytes.
pub trait Choices {
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize;
    /// No choices left (fuzz input used up).
    fn done(&self) -> bool {
        false
    }
}

impl Choices for rand::rngs::StdRng {
    fn below(&mut self, n: usize) -> usize {
        rand::Rng::gen_range(self, 0..n)
    }
}

/// Choices read from fuzz input, one byte each; 0 once it is used up.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }
}

impl Choices for Bytes<'_> {
    fn below(&mut self, n: usize) -> usize {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        usize::from(b) % n
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// One consent event on a profile, as docs/design.md ("Consent") orders
/// them: an own record replaces the current state (its timestamp is the
/// newest, or — TCF — equal to every other record of its purpose); a record
/// a merge copied in replaces it (it won).
#[derive(Clone, Debug)]
enum ConsentEvent {
    Own {
        /// Unique per recorded event (a TCF string is the proof of many).
        serial: u64,
        purpose: String,
        granted: bool,
        proof: String,
    },
    Copied {
        merge: MergeId,
        purpose: String,
        granted: bool,
        proof: String,
    },
}

impl ConsentEvent {
    fn proof(&self) -> &str {
        match self {
            ConsentEvent::Own { proof, .. } | ConsentEvent::Copied { proof, .. } => proof,
        }
    }
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
    /// Merges it took part in, either side, with whether each was undone.
    merges: BTreeMap<MergeId, bool>,
    forgotten: bool,
}

/// An erasure as the ledger records it: the profiles named, and the field
/// for a field erasure.
#[derive(Clone, Debug)]
struct Erased {
    profiles: Vec<usize>,
    field: Option<&'static str>,
}

#[derive(Clone, Debug, Default)]
struct Model {
    ps: Vec<MProfile>,
    ids: Vec<ProfileId>,
    clock: u64,
    /// Merge records deleted by an erasure (docs/design.md, "forget").
    deleted_merges: BTreeSet<MergeId>,
    /// Every erasure, in order (what the ledger holds).
    erasures: Vec<Erased>,
    /// Serial of the next own consent event.
    serial: u64,
    /// Legal holds, in placement order.
    holds: Vec<MHold>,
    /// Erasure requests, in opening order.
    requests: Vec<MRequest>,
}

/// A legal hold: on the person whose root `on` was when it was placed,
/// the whole person or one field.
#[derive(Clone, Debug)]
struct MHold {
    id: u64,
    on: usize,
    field: Option<&'static str>,
    released: bool,
}

/// An erasure request for the person whose root `on` was when it opened.
#[derive(Clone, Debug)]
struct MRequest {
    id: u64,
    on: usize,
    /// Holds it waits for.
    holds: BTreeSet<u64>,
    /// Erased (linked to an erasure), waiting for the certificate.
    linked: bool,
    completed: bool,
}

/// The current consent states a profile's events give (docs/design.md:
/// the replay rule of unmerge is the rule the states were built by).
fn states(events: &[ConsentEvent]) -> BTreeMap<String, (bool, String)> {
    let mut cur = BTreeMap::new();
    for e in events {
        match e {
            ConsentEvent::Own {
                purpose,
                granted,
                proof,
                ..
            }
            | ConsentEvent::Copied {
                purpose,
                granted,
                proof,
                ..
            } => {
                cur.insert(purpose.clone(), (*granted, proof.clone()));
            }
        }
    }
    cur
}

/// The schema the model runs under: which field each purpose may read.
fn schema() -> Schema {
    Schema::new()
        .allow("name", "analytics")
        .allow("plan", "analytics")
        .allow("city", "ads_targeting")
        .allow("plan", "email_marketing")
}

fn allowed(field: &str, purpose: &str) -> bool {
    matches!(
        (field, purpose),
        ("name" | "plan", "analytics") | ("city", "ads_targeting") | ("plan", "email_marketing")
    )
}

impl Model {
    /// Every profile of the person whose root is `root`: the root and all
    /// it absorbed (transitively), root first.
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

    /// Forgets the person whose root is `root` (docs/design.md, "forget"):
    /// every profile of it, and every merge record one of them took part in.
    /// Returns the profiles.
    fn forget(&mut self, root: usize) -> Vec<usize> {
        let side = self.side(root);
        for q in &side {
            self.ps[*q].forgotten = true;
            let merges: Vec<MergeId> = self.ps[*q].merges.keys().copied().collect();
            self.deleted_merges.extend(merges);
        }
        side
    }

    /// Erases `field` of the person whose root is `root` (docs/design.md,
    /// "forget_field"): from every record of the lineage, frozen ones
    /// included, and from the values its merges displaced. Returns the
    /// values erased.
    fn forget_field(&mut self, root: usize, field: &'static str) -> Vec<String> {
        let mut gone = Vec::new();
        for q in self.side(root) {
            let p = &mut self.ps[q];
            gone.extend(p.rec.remove(field).map(|v| v.0));
            for d in p.displaced.values_mut() {
                d.retain(|(f, v)| {
                    if *f == field {
                        gone.push(v.0.clone());
                    }
                    *f != field
                });
            }
        }
        gone
    }

    /// Active holds covering an erasure of `field` (`None`: the whole
    /// person) of the person whose root is `root`: holds on any profile of
    /// the lineage, of the whole person or of that field.
    fn covering(&self, root: usize, field: Option<&str>) -> BTreeSet<u64> {
        let side = self.side(root);
        self.holds
            .iter()
            .filter(|h| !h.released && side.contains(&h.on))
            .filter(|h| field.is_none() || h.field.is_none() || h.field == field)
            .map(|h| h.id)
            .collect()
    }

    /// The person's open erasure requests (not linked, not completed).
    fn open_requests(&self, root: usize) -> Vec<usize> {
        let side = self.side(root);
        (0..self.requests.len())
            .filter(|i| {
                let r = &self.requests[*i];
                !r.linked && !r.completed && side.contains(&r.on)
            })
            .collect()
    }

    /// Whether profile `q` holds `field` in its record, or as a value one
    /// of its merges displaced (docs/design.md: then a field erasure
    /// re-keys it).
    fn holds(&self, q: usize, field: &str) -> bool {
        let p = &self.ps[q];
        p.rec.contains_key(field) || p.displaced.values().flatten().any(|(f, _)| *f == field)
    }
}

fn options() -> Options {
    Options::new()
        .create_if_missing(true)
        .compression(false)
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(3600))
        .schema(schema())
}

fn marker(kind: &str, p: usize, n: u64) -> String {
    format!("{kind}-P{p:03}-{n:05}-ZQX")
}

fn trace() -> bool {
    std::env::var("LETHEDB_MODEL_TRACE").is_ok()
}

/// A backup as the model knows it: where, and the model (and the number
/// of erasures) when it was taken.
struct Backup {
    dir: PathBuf,
    model: Model,
    erasures: usize,
}

pub struct Run {
    parent: PathBuf,
    store: PathBuf,
    key: MemoryKeyProvider,
    db: Option<Db>,
    model: Model,
    backups: Vec<Backup>,
    /// Stores made so far (restores make new ones).
    generation: u32,
    /// Needles of forgotten people: key material (raw) and profile ids (text forms).
    needles: Vec<Vec<u8>>,
    /// What each needle is (for the failure message).
    needle_from: Vec<String>,
    /// Strings of forgotten people and fields that no answer may contain.
    gone: BTreeSet<String>,
    pub steps: u64,
}

impl Run {
    /// A new store in `parent` (which should be empty), master key `key`.
    pub fn new(parent: &Path, key: [u8; 32]) -> Self {
        let store = parent.join("store-0");
        let key = MemoryKeyProvider::from_bytes(key);
        let db = Db::open(&store, &key, options()).expect("create the store");
        Run {
            parent: parent.to_path_buf(),
            store,
            key,
            db: Some(db),
            model: Model::default(),
            backups: Vec::new(),
            generation: 0,
            needles: Vec::new(),
            needle_from: Vec::new(),
            gone: BTreeSet::new(),
            steps: 0,
        }
    }

    fn db(&self) -> &Db {
        self.db.as_ref().expect("open")
    }

    /// Runs one random step and checks every answer.
    pub fn step(&mut self, rng: &mut impl Choices) {
        self.steps += 1;
        self.model.clock += 1;
        let now = self.model.clock;
        let live = self.model.live_roots();
        let op = if live.len() < 2 { 0 } else { rng.below(110) };
        if trace() {
            eprintln!("step {} op {op} live {live:?}", self.steps);
        }
        match op {
            0..=11 => self.create(now),
            12..=32 => self.upsert(rng, now),
            33..=46 => self.consent(rng, now),
            47..=49 => {
                let p = rng.below(self.model.ps.len());
                self.import_tcf(p);
            }
            50..=61 => {
                let a = live[rng.below(live.len())];
                let b = live[rng.below(live.len())];
                self.alias(a, b);
            }
            62..=70 => self.unmerge(&live),
            71..=76 => {
                let p = live[rng.below(live.len())];
                self.forget(p);
            }
            77..=81 => {
                let p = rng.below(self.model.ps.len());
                let f = FIELDS[rng.below(FIELDS.len())];
                self.forget_field(p, f);
            }
            82..=87 => self.purge(),
            88..=90 => self.backup(),
            91..=92 => self.restore(),
            // Rotations change no answer (docs/design.md, "Master-key
            // rotation", "Blind-index rotation"): the checks after the
            // step are the model's, unchanged.
            93..=95 => {
                let k = 1 + rng.below(8);
                if trace() {
                    eprintln!("  blind-index rotation step of {k}");
                }
                self.db()
                    .rotate_blind_index_step(k)
                    .expect("blind-index rotation step");
            }
            96 => {
                let mut key = [0u8; 32];
                for b in key.iter_mut() {
                    *b = rng.below(256) as u8;
                }
                if trace() {
                    eprintln!("  master-key rotation");
                }
                drop(self.db.take());
                let new = MemoryKeyProvider::from_bytes(key);
                Db::rotate_master(&self.store, &self.key, &new, options())
                    .expect("master-key rotation");
                assert!(
                    matches!(
                        Db::open(&self.store, &self.key, options()),
                        Err(Error::WrongKey)
                    ),
                    "the old master key still opens the store"
                );
                self.key = new;
                self.db = Some(Db::open(&self.store, &self.key, options()).expect("reopen"));
            }
            // Record formats change no answer either (docs/design.md,
            // "Upgrading to format v2"): a profile rewritten as format v1
            // (what an older build wrote), then the store upgraded.
            97 => {
                let p = rng.below(self.model.ps.len());
                let id = self.model.ids[p];
                if trace() {
                    eprintln!("  profile {p} rewritten as format v1");
                }
                match self.db().debug_downgrade_to_v1(&id) {
                    Ok(()) | Err(Error::ProfileErased { .. }) => {}
                    Err(e) => panic!("downgrade of {p}: {e}"),
                }
            }
            98 => {
                if trace() {
                    eprintln!("  upgrade");
                }
                assert!(self.db().upgrade(|_| {}).expect("upgrade").finished);
            }
            100..=103 => {
                let p = rng.below(self.model.ps.len());
                let field = [None, Some("city")][rng.below(2)];
                self.place_hold(p, field);
            }
            104..=105 => {
                let open: Vec<usize> = (0..self.model.holds.len())
                    .filter(|h| !self.model.holds[*h].released)
                    .collect();
                if !open.is_empty() {
                    self.release_hold(open[rng.below(open.len())]);
                }
            }
            106..=109 => {
                let p = rng.below(self.model.ps.len());
                self.open_erasure_request(p);
            }
            _ => {
                drop(self.db.take());
                self.db = Some(Db::open(&self.store, &self.key, options()).expect("reopen"));
            }
        }
        if std::env::var("LETHEDB_MODEL_SCAN_EACH_STEP").is_ok() {
            // Debugging aid: shows the step that wrote a needle again.
            // Only meaningful right after purges and restores.
            if let Ok(r) = scan_dir(&self.parent, &self.needles) {
                for h in r.hits.iter().take(3) {
                    eprintln!(
                        "  scan: {} holds {}",
                        h.file.display(),
                        self.needle_from[h.needle]
                    );
                }
            }
        }
        self.check();
    }

    fn place_hold(&mut self, p: usize, field: Option<&'static str>) {
        let hold = NewHold::new("matter 7", "legal").fields(field);
        let r = self.db().place_hold(&self.model.ids[p], hold);
        if self.model.ps[p].forgotten {
            assert!(
                matches!(r, Err(Error::ProfileErased { .. })),
                "hold on forgotten {p}: {r:?}"
            );
            return;
        }
        let id = r.expect("place hold").id;
        if trace() {
            eprintln!("  hold {id} on {p} ({field:?})");
        }
        let root = self.model.root(p);
        // Whole-person erasure requests wait for any hold on the person.
        for i in self.model.open_requests(root) {
            self.model.requests[i].holds.insert(id);
        }
        self.model.holds.push(MHold {
            id,
            on: root,
            field,
            released: false,
        });
    }

    fn release_hold(&mut self, h: usize) {
        let id = self.model.holds[h].id;
        if trace() {
            eprintln!("  release hold {id}");
        }
        self.db().release_hold(id, "legal").expect("release hold");
        self.model.holds[h].released = true;
        for r in &mut self.model.requests {
            r.holds.remove(&id);
        }
    }

    fn open_erasure_request(&mut self, p: usize) {
        let r = self.db().open_request(
            &self.model.ids[p],
            NewRequest::new(RequestKind::Erasure, "EU"),
        );
        if self.model.ps[p].forgotten {
            assert!(
                matches!(r, Err(Error::ProfileErased { .. })),
                "request for forgotten {p}: {r:?}"
            );
            return;
        }
        let id = r.expect("open request").id;
        let root = self.model.root(p);
        let holds = self.model.covering(root, None);
        if trace() {
            eprintln!("  erasure request {id} for {p} (holds {holds:?})");
        }
        self.model.requests.push(MRequest {
            id,
            on: root,
            holds,
            linked: false,
            completed: false,
        });
    }

    fn create(&mut self, now: u64) {
        let p = self.model.ps.len();
        let user_id = marker("U", p, now);
        let name = marker("V", p, now);
        let out = self
            .db()
            .resolve(
                &[Identifier::device_id(&user_id)],
                Update::new().set("name", name.as_str()),
            )
            .expect("create");
        assert!(out.created, "create {p}");
        let mut m = MProfile {
            user_id,
            created: now,
            ..MProfile::default()
        };
        m.rec.insert("name", (name, p, now));
        self.model.ps.push(m);
        self.model.ids.push(out.profile.expect("created profile"));
    }

    /// Upsert through the profile's own id (a merged-away id writes to its
    /// root, attributed to itself).
    fn upsert(&mut self, rng: &mut impl Choices, now: u64) {
        let p = rng.below(self.model.ps.len());
        let f = FIELDS[rng.below(FIELDS.len())];
        let v = marker("V", p, now);
        let r = self
            .db()
            .upsert(&self.model.ids[p], Update::new().set(f, v.as_str()));
        if self.model.ps[p].forgotten {
            assert!(
                matches!(r, Err(Error::ProfileErased { .. })),
                "write to forgotten {p}: {r:?}"
            );
            return;
        }
        r.expect("upsert");
        if trace() {
            eprintln!("  upsert {p}.{f}");
        }
        let root = self.model.root(p);
        self.model.ps[root].rec.insert(f, (v, p, now));
    }

    /// Records one event through `p`'s id: it lands on the root, attributed
    /// to `p`; every profile on the way up holds it in its view, and an
    /// unmerge hands it back with `p`'s side.
    fn push_event(&mut self, p: usize, purpose: String, granted: bool, proof: String) {
        self.model.serial += 1;
        let event = ConsentEvent::Own {
            serial: self.model.serial,
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

    fn consent(&mut self, rng: &mut impl Choices, now: u64) {
        let p = rng.below(self.model.ps.len());
        let purpose = PURPOSES[rng.below(PURPOSES.len())];
        let granted = rng.below(10) < 6;
        let proof = marker("C", p, now);
        let status = if granted {
            ConsentStatus::Granted
        } else {
            ConsentStatus::Denied
        };
        let r = self.db().record_consent(
            &self.model.ids[p],
            ConsentRecord::new(purpose, status).proof(proof.as_str()),
        );
        if self.model.ps[p].forgotten {
            assert!(r.is_err(), "consent for forgotten {p}");
            return;
        }
        r.expect("record consent");
        self.push_event(p, purpose.to_string(), granted, proof);
    }

    /// TCF import through `p`'s id: tcf:1…tcf:11 with the string as proof.
    fn import_tcf(&mut self, p: usize) {
        let r = self.db().import_tcf(&self.model.ids[p], TC);
        if self.model.ps[p].forgotten {
            assert!(r.is_err(), "TCF import for forgotten {p}");
            return;
        }
        assert_eq!(r.expect("import TCF").len(), 11);
        for n in 1u8..=11 {
            self.push_event(
                p,
                format!("tcf:{n}"),
                TCF_GRANTED.contains(&n),
                TC.to_string(),
            );
        }
    }

    /// Alias: two people become one; the older profile survives.
    fn alias(&mut self, a: usize, b: usize) {
        let m = &mut self.model;
        if a == b || m.side(a).len() + m.side(b).len() > 5 {
            return;
        }
        let (s, q) = if (m.ps[a].created, a) <= (m.ps[b].created, b) {
            (a, b)
        } else {
            (b, a)
        };
        let out = self
            .db
            .as_ref()
            .expect("open")
            .resolve(
                &[
                    Identifier::device_id(&m.ps[a].user_id),
                    Identifier::device_id(&m.ps[b].user_id),
                ],
                Update::new(),
            )
            .expect("alias");
        assert_eq!(out.profile, Some(m.ids[s]), "survivor");
        assert_eq!(out.merges.len(), 1);
        let merge = out.merges[0];
        // Consent: per purpose the more restrictive state wins (not granted
        // < granted); a purpose only q has comes over.
        let s_states = states(&m.ps[s].consent);
        for (purpose, (granted, proof)) in states(&m.ps[q].consent) {
            let wins = match s_states.get(&purpose) {
                None => true,
                Some((s_granted, _)) => *s_granted && !granted,
            };
            if wins {
                m.ps[s].consent.push(ConsentEvent::Copied {
                    merge,
                    purpose,
                    granted,
                    proof,
                });
            }
        }
        if trace() {
            eprintln!("  merge {q} (side {:?}) into {s}", m.side(q));
        }
        // Fields: the most recent write wins, ties go to the survivor; a
        // survivor value that loses is displaced.
        let mut displaced = Vec::new();
        for (f, qv) in m.ps[q].rec.clone() {
            if let Some(cur) = m.ps[s].rec.get(f) {
                if cur.2 >= qv.2 {
                    continue;
                }
                displaced.push((f, cur.clone()));
            }
            m.ps[s].rec.insert(f, qv);
        }
        let mut side: BTreeSet<usize> = m.ps[q].origins.clone();
        side.insert(q);
        m.ps[s].origins.extend(side);
        m.ps[s].displaced.insert(merge, displaced);
        m.ps[s].absorbed.push((merge, q));
        m.ps[s].merges.insert(merge, false);
        m.ps[q].merges.insert(merge, false);
        m.ps[q].merged_into = Some(s);
    }

    /// Unmerges the most recent merge of the first live root that has one.
    fn unmerge(&mut self, live: &[usize]) {
        let m = &mut self.model;
        let Some(&s) = live.iter().find(|s| !m.ps[**s].absorbed.is_empty()) else {
            return;
        };
        let (merge, q) = m.ps[s].absorbed.pop().expect("a merge");
        if trace() {
            eprintln!("  unmerge {q} from {s}; side {:?}", m.side(q));
        }
        self.db
            .as_ref()
            .expect("open")
            .unmerge(&merge)
            .expect("unmerge");
        m.ps[q].merged_into = None;
        m.ps[s].merges.insert(merge, true);
        m.ps[q].merges.insert(merge, true);
        let side: BTreeSet<usize> = m.side(q).into_iter().collect();
        // Fields attributed to q's side go back to q where at least as new
        // as q's frozen value; the survivor gets back what the merge
        // displaced where that was taken and its origin is still the
        // survivor's.
        let mut taken = BTreeSet::new();
        for (f, v) in std::mem::take(&mut m.ps[s].rec) {
            if side.contains(&v.1) {
                if m.ps[q].rec.get(f).is_none_or(|b| b.2 <= v.2) {
                    m.ps[q].rec.insert(f, v);
                }
                taken.insert(f);
            } else {
                m.ps[s].rec.insert(f, v);
            }
        }
        for (f, d) in m.ps[s].displaced.remove(&merge).unwrap_or_default() {
            let still_here = d.1 == s || (m.ps[s].origins.contains(&d.1) && !side.contains(&d.1));
            if still_here && taken.contains(f) && !m.ps[s].rec.contains_key(f) {
                m.ps[s].rec.insert(f, d);
            }
        }
        m.ps[s].origins.retain(|o| !side.contains(o));
        // The survivor loses M's copies and what q's side recorded since
        // (the side keeps its own copy of those events).
        let side_events: BTreeSet<u64> = side
            .iter()
            .flat_map(|p| m.ps[*p].consent.iter())
            .filter_map(|e| match e {
                ConsentEvent::Own { serial, .. } => Some(*serial),
                ConsentEvent::Copied { .. } => None,
            })
            .collect();
        m.ps[s].consent.retain(|e| match e {
            ConsentEvent::Copied { merge: x, .. } => *x != merge,
            ConsentEvent::Own { serial, .. } => !side_events.contains(serial),
        });
    }

    fn forget(&mut self, p: usize) {
        let root = self.model.root(p);
        let covering = self.model.covering(root, None);
        if !covering.is_empty() {
            match self.db().forget(&self.model.ids[p]) {
                Err(Error::LegalHold { hold_id, .. }) => assert!(
                    covering.contains(&hold_id),
                    "forget of {p} names hold {hold_id}, not one of {covering:?}"
                ),
                other => panic!("forget of held {p} (holds {covering:?}): {other:?}"),
            }
            for i in self.model.open_requests(root) {
                self.model.requests[i]
                    .holds
                    .extend(covering.iter().copied());
            }
            return;
        }
        for i in self.model.open_requests(root) {
            let r = &mut self.model.requests[i];
            r.linked = true;
            r.holds.clear();
        }
        let key_material = self.db().debug_key_material(&self.model.ids[root]);
        for (i, m) in key_material.expect("key material").into_iter().enumerate() {
            self.needles
                .push(if m.len() == 17 { m[5..].to_vec() } else { m });
            self.needle_from
                .push(format!("step {}: key material {i} of {root}", self.steps));
        }
        let side = self.model.forget(root);
        for q in &side {
            let id = self.model.ids[*q];
            for enc in encodings(id.as_bytes()) {
                self.needles.push(enc);
                self.needle_from
                    .push(format!("step {}: profile id of {q}", self.steps));
            }
            let mp = &self.model.ps[*q];
            self.gone.insert(mp.user_id.clone());
            for (v, _, _) in mp.rec.values() {
                self.gone.insert(v.clone());
            }
            for e in &mp.consent {
                if e.proof() != TC {
                    self.gone.insert(e.proof().to_string());
                }
            }
        }
        self.db().forget(&self.model.ids[p]).expect("forget");
        self.model.erasures.push(Erased {
            profiles: side,
            field: None,
        });
    }

    fn forget_field(&mut self, p: usize, f: &'static str) {
        if self.model.ps[p].forgotten {
            // docs/design.md ("forget_field"): an erased id answers
            // `ProfileErased`.
            let r = self.db().forget_fields(&self.model.ids[p], &[f]);
            assert!(
                matches!(r, Err(Error::ProfileErased { .. })),
                "field erasure of forgotten {p}: {r:?}"
            );
            return;
        }
        let root = self.model.root(p);
        let covering = self.model.covering(root, Some(f));
        if !covering.is_empty() {
            // Whole-person requests are not what a field erasure fulfils:
            // they do not wait on it.
            match self.db().forget_fields(&self.model.ids[p], &[f]) {
                Err(Error::LegalHold { hold_id, .. }) => assert!(covering.contains(&hold_id)),
                other => panic!("erasure of held {f} of {p}: {other:?}"),
            }
            return;
        }
        if self.model.holds(root, f) {
            // The root's keyring is replaced: its stored form and seed go.
            let km = self
                .db()
                .debug_key_material(&self.model.ids[root])
                .expect("key material");
            for (i, m) in km.into_iter().take(2).enumerate() {
                self.needles.push(m);
                self.needle_from.push(format!(
                    "step {}: replaced key material {i} of {root}",
                    self.steps
                ));
            }
        }
        if trace() {
            eprintln!("  forget field {f} of {p} (root {root})");
        }
        let receipt = self
            .db()
            .forget_fields(&self.model.ids[p], &[f])
            .expect("forget field");
        // docs/design.md ("forget_field"): the erasure re-keys (and the
        // ledger names) the profiles of the person that hold the field, or
        // a value of it a merge displaced; with none, nothing is erased.
        let holders: Vec<usize> = self
            .model
            .side(root)
            .into_iter()
            .filter(|q| self.model.holds(*q, f))
            .collect();
        let held = !holders.is_empty();
        assert_eq!(
            receipt.erasure_id.is_some(),
            held,
            "erasure of {f} of {p}: {receipt:?}"
        );
        self.gone.extend(self.model.forget_field(root, f));
        if held {
            self.model.erasures.push(Erased {
                profiles: holders,
                field: Some(f),
            });
        }
    }

    fn purge(&mut self) {
        self.db().purge().expect("purge");
        for r in &mut self.model.requests {
            if r.linked {
                r.completed = true;
            }
        }
        self.scan("after purge");
    }

    fn scan(&self, when: &str) {
        if self.needles.is_empty() {
            return;
        }
        let r = scan_dir(&self.parent, &self.needles).expect("scan");
        assert!(
            r.hits.is_empty(),
            "{when}: {:?} ({:?})",
            &r.hits[..r.hits.len().min(3)],
            r.hits
                .iter()
                .take(3)
                .map(|h| &self.needle_from[h.needle])
                .collect::<Vec<_>>()
        );
    }

    fn backup(&mut self) {
        let dir = self
            .parent
            .join(format!("backup-{}-{}", self.generation, self.backups.len()));
        if trace() {
            eprintln!("  backup to {}", dir.display());
        }
        self.db().backup(&dir).expect("backup");
        self.backups.push(Backup {
            dir,
            model: self.model.clone(),
            erasures: self.model.erasures.len(),
        });
    }

    /// Restores the latest backup into a new store and continues there: the
    /// model is the one at backup time with every later erasure replayed
    /// (docs/design.md, "Backups and restore": each erasure names profile
    /// ids; replaying one erases, in the copy, the person each id belongs to
    /// there, or the field from that person). The old store and its backups
    /// are then deleted, as an operator who restored would.
    fn restore(&mut self) {
        let Some(b) = self.backups.pop() else {
            return;
        };
        let mut model = b.model;
        for e in &self.model.erasures[b.erasures..] {
            for &p in &e.profiles {
                if p >= model.ps.len() || model.ps[p].forgotten {
                    continue;
                }
                let root = model.root(p);
                match e.field {
                    None => {
                        // A replayed erasure links the person's open
                        // erasure requests, as the erasure did.
                        for i in model.open_requests(root) {
                            model.requests[i].linked = true;
                            model.requests[i].holds.clear();
                        }
                        model.forget(root);
                    }
                    Some(f) => {
                        model.forget_field(root, f);
                    }
                }
            }
        }
        model.erasures = self.model.erasures.clone();
        model.clock = self.model.clock;
        self.generation += 1;
        let to = self.parent.join(format!("store-{}", self.generation));
        if trace() {
            eprintln!("  restore {} to {}", b.dir.display(), to.display());
        }
        drop(self.db.take());
        let (db, _) = Db::restore(&b.dir, &to, &self.key, options()).expect("restore the backup");
        let mut old_roots = self.store.as_os_str().to_owned();
        old_roots.push(".rootkeys");
        std::fs::remove_dir_all(&self.store).expect("remove the old store");
        let _ = std::fs::remove_file(PathBuf::from(old_roots));
        for other in self.backups.drain(..).chain(std::iter::once(Backup {
            dir: b.dir,
            model: Model::default(),
            erasures: 0,
        })) {
            std::fs::remove_dir_all(&other.dir).expect("remove a backup");
        }
        self.db = Some(db);
        self.store = to;
        // Restore ends with a purge: the requests the backup held linked
        // to an erasure complete there.
        for r in &mut model.requests {
            if r.linked {
                r.completed = true;
            }
        }
        self.model = model;
        self.scan("after restore");
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
                    db.lookup(&Identifier::device_id(&mp.user_id))
                        .expect("lookup"),
                    None
                );
                continue;
            }
            let root = m.root(p);
            assert_eq!(
                db.lookup(&Identifier::device_id(&mp.user_id))
                    .expect("lookup"),
                Some(m.ids[root]),
                "lookup of {p}"
            );
            if root != p {
                continue;
            }
            self.check_person(p);
        }
        for r in &m.requests {
            let got = db.request(r.id).expect("request");
            let want = if r.completed {
                RequestStatus::Completed
            } else if !r.linked && !r.holds.is_empty() {
                RequestStatus::OnHold
            } else {
                RequestStatus::Open
            };
            assert_eq!(got.status, want, "status of request {}: {got:?}", r.id);
            assert_eq!(
                got.erasure_id.is_some(),
                r.linked || r.completed,
                "request {} linked",
                r.id
            );
            if want == RequestStatus::OnHold {
                let holds: BTreeSet<u64> = got.holds.iter().copied().collect();
                assert_eq!(holds, r.holds, "holds request {} waits for", r.id);
            }
        }
        let engine_holds = db.holds(None).expect("holds");
        assert_eq!(engine_holds.len(), m.holds.len(), "holds");
        for (h, mh) in engine_holds.iter().zip(&m.holds) {
            assert_eq!(
                (h.id, h.released.is_none()),
                (mh.id, !mh.released),
                "hold {}",
                mh.id
            );
        }
        let mut purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
        purposes.extend(TCF_CHECKED.iter().map(|p| p.to_string()));
        for purpose in purposes {
            let want: BTreeSet<ProfileId> = m
                .live_roots()
                .into_iter()
                .filter(|r| states(&m.ps[*r].consent).get(&purpose).is_some_and(|s| s.0))
                .map(|r| m.ids[r])
                .collect();
            let got: BTreeSet<ProfileId> = db
                .consented_profiles(&purpose)
                .expect("who")
                .into_iter()
                .collect();
            assert_eq!(got, want, "who has {purpose}");
        }
    }

    /// The person whose root is `p`: fields, purpose-bound reads, consent
    /// states and history, merges, export.
    fn check_person(&self, p: usize) {
        let (db, m) = (self.db(), &self.model);
        let id = m.ids[p];
        let got = db.get(&id).expect("get");
        let want = m.fields(p);
        let got_fields = strings(&got.fields);
        let want_fields: BTreeMap<String, String> = want
            .iter()
            .map(|(f, v)| (f.to_string(), v.clone()))
            .collect();
        assert_eq!(got_fields, want_fields, "fields of {p}");
        let want_consent = states(&m.ps[p].consent);
        let got_consent: BTreeMap<String, (bool, String)> = db
            .consents(&id)
            .expect("consents")
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
        assert_eq!(got_consent, want_consent, "consent of {p}");
        // Purpose-bound reads: a field declared for the purpose, under a
        // granted state (docs/design.md, "Purpose-bound read").
        for purpose in PURPOSES {
            let granted = want_consent.get(purpose).is_some_and(|s| s.0);
            let want: BTreeMap<String, String> = want_fields
                .iter()
                .filter(|(f, _)| granted && allowed(f, purpose))
                .map(|(f, v)| (f.clone(), v.clone()))
                .collect();
            let read = db.get_for_purpose(&id, purpose).expect("purpose read");
            assert_eq!(strings(&read.fields), want, "{purpose} read of {p}");
        }
        // History: every record shown was given to this person (by one of
        // its profiles, or copied by a merge still in force), every
        // current state is in it, nothing of a forgotten person.
        let given: BTreeSet<String> = m
            .side(p)
            .iter()
            .flat_map(|q| m.ps[*q].consent.iter().map(|e| e.proof().to_string()))
            .collect();
        let history: BTreeSet<String> = db
            .consent_history(&id)
            .expect("history")
            .into_iter()
            .map(|(_, r)| r.proof.unwrap_or_default())
            .collect();
        for proof in &history {
            assert!(given.contains(proof), "history of {p} shows {proof}");
        }
        for (purpose, (_, proof)) in &want_consent {
            assert!(
                history.contains(proof),
                "history of {p} lacks the current {purpose}"
            );
        }
        // Merges: those it took part in whose records no erasure deleted.
        let want_merges: BTreeMap<MergeId, bool> = m.ps[p]
            .merges
            .iter()
            .filter(|(x, _)| !m.deleted_merges.contains(x))
            .map(|(x, undone)| (*x, *undone))
            .collect();
        let got_merges: BTreeMap<MergeId, bool> = db
            .merges(&id)
            .expect("merges")
            .into_iter()
            .map(|i| (i.merge_id, i.undone_at.is_some()))
            .collect();
        assert_eq!(got_merges, want_merges, "merges of {p}");
        let export = db.export(&id).expect("export").to_string();
        for g in &self.gone {
            assert!(!export.contains(g.as_str()), "{g} in the export of {p}");
            assert!(!history.contains(g), "{g} in the history of {p}");
        }
    }

    /// The end of a run: purge, and scan everything once more.
    pub fn finish(&mut self) {
        self.purge();
    }
}

fn strings(fields: &BTreeMap<String, Value>) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(f, v)| match v {
            Value::String(s) => (f.clone(), s.clone()),
            other => panic!("{f}: {other:?}"),
        })
        .collect()
}

/// One seeded run of `steps` steps (a failing run says how to replay it).
pub fn run_seed(seed: u64, steps: u64) {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut run = Run::new(dir.path(), [(seed % 251) as u8 + 1; 32]);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..steps {
            run.step(&mut rng);
        }
        run.finish();
    }));
    if let Err(e) = result {
        eprintln!(
            "seed {seed} failed at step {}: replay with LETHEDB_MODEL_SEED={seed} LETHEDB_MODEL_TRACE=1 cargo test --release --test reference_model",
            run.steps
        );
        std::panic::resume_unwind(e);
    }
}

/// One run driven by fuzz input: one step per choice until the input is
/// used up (at most 64 steps).
pub fn run_bytes(data: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Bytes::new(data);
    let mut run = Run::new(dir.path(), [7; 32]);
    while !c.done() && run.steps < 64 {
        run.step(&mut c);
    }
    run.finish();
}
