//! Crash recovery: a child process runs random operations on a store opened
//! with synced writes and reports each one before it starts (`I ...`) and
//! once it is acknowledged (`A`); the parent kills it with SIGKILL at random
//! moments, reopens the store and checks:
//!
//! * no acknowledged write is lost (a field holds the last acknowledged
//!   value, or the value of the one operation in flight at the kill);
//! * no erased person is readable or resolvable again, and an erasure in
//!   flight is all or nothing;
//! * the identity index and the profiles agree (every identifier a profile
//!   holds looks up to it);
//! * the audit chain verifies.
//!
//! `LETHEDB_CRASH_CYCLES` sets the number of kills (default 20, what CI
//! runs); `LETHEDB_CRASH_SEED` the seed. Hundreds of cycles:
//!
//! ```text
//! LETHEDB_CRASH_CYCLES=300 cargo test --release --test crash_recovery -- --nocapture
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lethedb::{
    ConsentRecord, ConsentStatus, Db, Error, Identifier, MemoryKeyProvider, Options, ProfileId,
    Timestamp, Update, Value,
};
use rand::{Rng, SeedableRng};

fn user(i: u64) -> Identifier {
    Identifier::user_id(format!("person-{i}"))
}

fn email(i: u64) -> Identifier {
    Identifier::email(format!("person-{i}@example.com"))
}

fn key_from_hex(hex: &str) -> MemoryKeyProvider {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("key hex");
    }
    MemoryKeyProvider::from_bytes(k)
}

/// One operation the child runs, as it announces it.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    /// Create person `i` (user id and e-mail) with `v = value`.
    Create { i: u64, value: i64 },
    /// Set person `i`'s `v`.
    Write { i: u64, value: i64 },
    /// Record consent for `purpose` at a timestamp.
    Consent { i: u64, granted: bool, at: i64 },
    /// Forget person `i`.
    Forget { i: u64 },
    /// Purge pending erasures.
    Purge,
}

impl Op {
    fn line(&self) -> String {
        match self {
            Op::Create { i, value } => format!("I create {i} {value}"),
            Op::Write { i, value } => format!("I write {i} {value}"),
            Op::Consent { i, granted, at } => format!("I consent {i} {} {at}", u8::from(*granted)),
            Op::Forget { i } => format!("I forget {i}"),
            Op::Purge => "I purge".to_string(),
        }
    }

    fn parse(line: &str) -> Option<Op> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let num = |k: usize| w.get(k).and_then(|s| s.parse::<i64>().ok());
        let i = num(2).map(|i| i as u64);
        match (w.first(), w.get(1)) {
            (Some(&"I"), Some(&"create")) => Some(Op::Create {
                i: i?,
                value: num(3)?,
            }),
            (Some(&"I"), Some(&"write")) => Some(Op::Write {
                i: i?,
                value: num(3)?,
            }),
            (Some(&"I"), Some(&"consent")) => Some(Op::Consent {
                i: i?,
                granted: num(3)? == 1,
                at: num(4)?,
            }),
            (Some(&"I"), Some(&"forget")) => Some(Op::Forget { i: i? }),
            (Some(&"I"), Some(&"purge")) => Some(Op::Purge),
            _ => None,
        }
    }
}

fn options() -> Options {
    Options::new()
        .create_if_missing(true)
        .sync_writes(true)
        .key_tree(3, 2)
        .write_buffer_bytes(256 << 10)
        .purge_after_erasures(0)
}

/// The child: random operations until killed. Not a test of its own; the
/// parent runs it as `crash_recovery --ignored --exact crash_child`.
#[test]
#[ignore = "child process of crash_recovery_kill_cycles"]
fn crash_child() {
    let (Ok(dir), Ok(key), Ok(seed), Ok(next)) = (
        std::env::var("LETHEDB_CRASH_DIR"),
        std::env::var("LETHEDB_CRASH_KEY"),
        std::env::var("LETHEDB_CRASH_CHILD_SEED"),
        std::env::var("LETHEDB_CRASH_NEXT"),
    ) else {
        return;
    };
    let key = key_from_hex(&key);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.parse().expect("seed"));
    let mut next: u64 = next.parse().expect("next");
    let mut value: i64 = rng.gen_range(0..1 << 40);
    let db = Db::open(&dir, &key, options()).expect("child open");
    let out = std::io::stdout();
    let mut out = out.lock();
    // On a line of its own: libtest may have printed the test's name.
    writeln!(out, "\nready").expect("stdout");
    out.flush().expect("stdout");
    loop {
        value += 1;
        let op = match rng.gen_range(0..100) {
            0..=29 => Op::Create { i: next, value },
            30..=69 if next > 0 => Op::Write {
                i: rng.gen_range(0..next),
                value,
            },
            70..=84 if next > 0 => Op::Consent {
                i: rng.gen_range(0..next),
                granted: rng.gen(),
                at: 1_700_000_000_000_000 + value,
            },
            85..=95 if next > 0 => Op::Forget {
                i: rng.gen_range(0..next),
            },
            96..=99 => Op::Purge,
            _ => continue,
        };
        writeln!(out, "{}", op.line()).expect("stdout");
        out.flush().expect("stdout");
        let found = |i: u64| db.lookup(&user(i)).expect("lookup");
        match &op {
            Op::Create { i, value } => {
                next += 1;
                db.resolve(&[user(*i), email(*i)], Update::new().set("v", *value))
                    .expect("create");
            }
            Op::Write { i, value } => {
                if let Some(id) = found(*i) {
                    db.upsert(&id, Update::new().set("v", *value))
                        .expect("write");
                }
            }
            Op::Consent { i, granted, at } => {
                if let Some(id) = found(*i) {
                    let status = if *granted {
                        ConsentStatus::Granted
                    } else {
                        ConsentStatus::Denied
                    };
                    let rec = ConsentRecord::new("email_marketing", status).at(Timestamp(*at));
                    db.record_consent(&id, rec).expect("consent");
                }
            }
            Op::Forget { i } => {
                if let Some(id) = found(*i) {
                    db.forget(&id).expect("forget");
                }
            }
            Op::Purge => {
                db.purge().expect("purge");
            }
        }
        writeln!(out, "A").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// What the parent knows of one person.
#[derive(Clone, Debug, Default)]
struct Known {
    created: bool,
    /// The profile id, once a check has seen it.
    id: Option<ProfileId>,
    /// Acknowledged value of `v`.
    value: Option<i64>,
    /// Acknowledged consent (granted, timestamp) with the latest timestamp.
    consent: Option<(bool, i64)>,
    forgotten: bool,
}

#[derive(Default)]
struct Expect {
    people: BTreeMap<u64, Known>,
    next: u64,
}

impl Expect {
    fn acknowledge(&mut self, op: &Op) {
        match op {
            Op::Create { i, value } => {
                let k = self.people.entry(*i).or_default();
                k.created = true;
                k.value = Some(*value);
            }
            Op::Write { i, value } => {
                if let Some(k) = self.people.get_mut(i) {
                    if k.created && !k.forgotten {
                        k.value = Some(*value);
                    }
                }
            }
            Op::Consent { i, granted, at } => {
                if let Some(k) = self.people.get_mut(i) {
                    if k.created && !k.forgotten && k.consent.is_none_or(|c| c.1 < *at) {
                        k.consent = Some((*granted, *at));
                    }
                }
            }
            Op::Forget { i } => {
                if let Some(k) = self.people.get_mut(i) {
                    k.forgotten = k.created;
                }
            }
            Op::Purge => {}
        }
    }
}

/// Checks the reopened store against what was acknowledged; `pending` is
/// the operation in flight when the child died, which may or may not have
/// landed. Returns the violations found.
fn check(db: &Db, expect: &mut Expect, pending: Option<&Op>) -> Vec<String> {
    let mut bad = Vec::new();
    // An in-flight create or forget that landed becomes known.
    let landed = |i: u64| db.lookup(&user(i)).ok().flatten().is_some();
    match pending {
        Some(op @ Op::Create { i, .. }) if landed(*i) => expect.acknowledge(op),
        Some(op @ Op::Forget { i })
            if !landed(*i) && expect.people.get(i).is_some_and(|k| k.created) =>
        {
            expect.acknowledge(op)
        }
        _ => {}
    }
    for (&i, k) in &mut expect.people {
        if !k.created {
            continue;
        }
        let by_user = db.lookup(&user(i));
        let by_email = db.lookup(&email(i));
        if k.forgotten {
            if !matches!(by_user, Ok(None)) || !matches!(by_email, Ok(None)) {
                bad.push(format!(
                    "person {i} was erased but resolves: {by_user:?} {by_email:?}"
                ));
            }
            if let Some(id) = k.id {
                let got = db.get(&id);
                if !matches!(got, Err(Error::ProfileErased { .. })) {
                    bad.push(format!("person {i} was erased but reads: {got:?}"));
                }
            }
            match db.resolve(&[user(i)], Update::new()) {
                Ok(out) if out.profile.is_none() => {}
                other => bad.push(format!("person {i} was erased but re-resolves: {other:?}")),
            }
            continue;
        }
        let id: ProfileId = match (by_user, by_email) {
            (Ok(Some(a)), Ok(Some(b))) if a == b => a,
            other => {
                bad.push(format!("person {i}: lookups disagree or fail: {other:?}"));
                continue;
            }
        };
        k.id = Some(id);
        match db.get(&id) {
            Ok(p) => {
                let got = p.fields.get("v").cloned();
                let mut allowed = vec![k.value.map(Value::Int)];
                if let Some(Op::Write { i: pi, value }) = pending {
                    if *pi == i {
                        allowed.push(Some(Value::Int(*value)));
                    }
                }
                if !allowed.contains(&got) {
                    bad.push(format!(
                        "person {i}: v = {got:?}, acknowledged {:?}",
                        k.value
                    ));
                } else if let Some(Value::Int(v)) = got {
                    k.value = Some(v);
                }
            }
            Err(e) => bad.push(format!("person {i}: get failed: {e}")),
        }
        match db.consent(&id, "email_marketing") {
            Ok(got) => {
                let got =
                    got.map(|r| (r.status == ConsentStatus::Granted, r.timestamp.as_micros()));
                let mut allowed = vec![k.consent];
                if let Some(Op::Consent { i: pi, granted, at }) = pending {
                    if *pi == i && k.consent.is_none_or(|c| c.1 < *at) {
                        allowed.push(Some((*granted, *at)));
                    }
                }
                if !allowed.contains(&got) {
                    bad.push(format!(
                        "person {i}: consent {got:?}, acknowledged {:?}",
                        k.consent
                    ));
                } else {
                    k.consent = got;
                }
            }
            Err(e) => bad.push(format!("person {i}: consent read failed: {e}")),
        }
    }
    // Index and profiles agree, for every profile in the store.
    let ids: Vec<ProfileId> = match db.profile_ids() {
        Ok(it) => it.filter_map(|r| r.ok()).collect(),
        Err(e) => {
            bad.push(format!("profile_ids: {e}"));
            Vec::new()
        }
    };
    for id in ids {
        match db.identifiers(&id) {
            Ok(held) => {
                for h in held {
                    let found = db.lookup(&h);
                    if !matches!(found, Ok(Some(x)) if x == id) {
                        bad.push(format!("{id} holds {h:?} but it looks up to {found:?}"));
                    }
                }
            }
            Err(Error::ProfileErased { .. }) => {}
            Err(e) => bad.push(format!("identifiers of {id}: {e}")),
        }
    }
    if let Err(e) = db.verify_audit() {
        bad.push(format!("audit chain: {e}"));
    }
    bad
}

#[test]
fn crash_recovery_kill_cycles() {
    let cycles: u64 = std::env::var("LETHEDB_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("LETHEDB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("crash recovery: {cycles} cycles, LETHEDB_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let key_bytes: [u8; 32] = rng.gen();
    let key_hex: String = key_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = MemoryKeyProvider::from_bytes(key_bytes);
    drop(Db::open(&store, &key, options()).expect("create"));

    let mut expect = Expect::default();
    let mut acked_total = 0u64;
    let mut mid_operation = 0u64;
    let mut violations = Vec::new();
    for cycle in 0..cycles {
        let (pending, acked) = run_child(&store, &key_hex, &mut rng, &mut expect);
        acked_total += acked;
        mid_operation += u64::from(pending.is_some());
        let db = Db::open(&store, &key, Options::new()).unwrap_or_else(|e| {
            panic!("cycle {cycle}: store does not reopen after SIGKILL: {e} (seed {seed})")
        });
        for v in check(&db, &mut expect, pending.as_ref()) {
            violations.push(format!("cycle {cycle}: {v}"));
        }
    }
    let people = expect.people.values().filter(|k| k.created).count();
    let erased = expect.people.values().filter(|k| k.forgotten).count();
    eprintln!(
        "crash recovery: {cycles} kills, {acked_total} acknowledged operations, \
         {mid_operation} kills inside an operation, {people} people ({erased} erased), \
         {} violations",
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "seed {seed}: {} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(
        acked_total >= cycles,
        "the children acknowledged too little to test"
    );
}

/// Runs one child until a random kill point; returns the operation in
/// flight at the kill (announced, not acknowledged) and the number of
/// operations acknowledged.
fn run_child(
    store: &Path,
    key_hex: &str,
    rng: &mut rand::rngs::StdRng,
    expect: &mut Expect,
) -> (Option<Op>, u64) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LETHEDB_CRASH_DIR", store)
        .env("LETHEDB_CRASH_KEY", key_hex)
        .env("LETHEDB_CRASH_CHILD_SEED", rng.gen::<u64>().to_string())
        .env("LETHEDB_CRASH_NEXT", expect.next.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let kill_after: u64 = rng.gen_range(1..40);
    let delay = Duration::from_micros(rng.gen_range(0..3000));
    let mut lines = BufReader::new(stdout).lines();
    let mut pending: Option<Op> = None;
    let mut acked = 0;
    let mut ready = false;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if line == "ready" {
            ready = true;
        } else if line == "A" {
            if let Some(op) = pending.take() {
                expect.acknowledge(&op);
                acked += 1;
            }
            if acked >= kill_after {
                break;
            }
        } else if let Some(op) = Op::parse(&line) {
            if let Op::Create { i, .. } = op {
                expect.next = expect.next.max(i + 1);
            }
            pending = Some(op);
        }
    }
    assert!(ready, "the child did not start");
    // Land the kill inside the next operation most of the time.
    std::thread::sleep(delay);
    let _ = child.kill();
    // Lines written before the kill still count: an acknowledgement the
    // child printed is a promise.
    for line in lines.map_while(Result::ok) {
        if line == "A" {
            if let Some(op) = pending.take() {
                expect.acknowledge(&op);
                acked += 1;
            }
        } else if let Some(op) = Op::parse(&line) {
            if let Op::Create { i, .. } = op {
                expect.next = expect.next.max(i + 1);
            }
            pending = Some(op);
        }
    }
    let _ = child.wait();
    (pending, acked)
}
