//! Root custody and key rotation at scale: two stores of N synthetic
//! people, one with its roots in a root key file, one in a PKCS#11 token
//! (SoftHSM2, set up here in a directory of its own); purges of 1 and of
//! 1 000 erasures in interleaved rounds (file, token, file, token, …) with
//! the token/file ratio per round (median and range); then the
//! blind-index rotation rate and the master-key rotation time.
//!
//! ```text
//! cargo run --release --example key_custody -- [PROFILES] [ROUNDS] [DIR]
//! cargo run --release --example key_custody -- 1000000 5 /tmp/lethedb-custody
//! ```
//! Needs SoftHSM2 (`scripts/prereqs.sh --softhsm`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lethedb::{Db, MemoryKeyProvider, Options, Pkcs11RootKeyStore, ProfileId, RootKeyDevice};

const PIN: &str = "bench-pin-1";

fn softhsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("SoftHSM2 (scripts/prereqs.sh --softhsm)")
}

/// A SoftHSM2 configuration and token under `dir`; returns the URI.
fn token(dir: &Path) -> String {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("conf");
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let ok = std::process::Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--so-pin",
            "so-pin-1",
            "--pin",
            PIN,
        ])
        .output()
        .expect("softhsm2-util")
        .status
        .success();
    assert!(ok, "softhsm2-util --init-token");
    let pin = dir.join("pin");
    std::fs::write(&pin, PIN).expect("pin file");
    format!(
        "pkcs11:token=bench;object=crm?module-path={}&pin-source=file:{}",
        softhsm_module().display(),
        pin.display()
    )
}

fn median_range(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    };
    serde_json::json!({ "median": m, "min": v.first(), "max": v.last(), "rounds": v.len() })
}

struct Side {
    name: &'static str,
    path: PathBuf,
    db: Option<Arc<Db>>,
    ids: Vec<ProfileId>,
    next: usize,
    options: Options,
}

impl Side {
    /// Forgets `k` people and purges; (purge seconds, rotation seconds).
    fn purge_round(&mut self, k: usize) -> lethedb::Result<(f64, f64)> {
        let db = self.db.as_ref().expect("open");
        for _ in 0..k {
            db.forget(&self.ids[self.next])?;
            self.next += 1;
        }
        let r = db.purge()?;
        Ok((r.duration.as_secs_f64(), r.rotation.as_secs_f64()))
    }
}

fn main() -> lethedb::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = PathBuf::from(
        args.get(3)
            .cloned()
            .unwrap_or_else(|| "/tmp/lethedb-custody".into()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let t = Instant::now();
    let uri = token(&dir.join("hsm"));
    let device: Arc<dyn RootKeyDevice> = Arc::new(Pkcs11RootKeyStore::from_uri(&uri)?);
    let token_setup = t.elapsed();
    let keys = MemoryKeyProvider::generate()?;
    let base = Options::new()
        .schema(lethedb::synth::schema())
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(24 * 3600));
    let mut sides = vec![
        Side {
            name: "file",
            path: dir.join("file"),
            db: None,
            ids: Vec::new(),
            next: 0,
            options: base.clone(),
        },
        Side {
            name: "pkcs11",
            path: dir.join("pkcs11"),
            db: None,
            ids: Vec::new(),
            next: 0,
            options: base.clone().root_key_device(Arc::clone(&device)),
        },
    ];
    let mut loads = serde_json::Map::new();
    for s in &mut sides {
        let t = Instant::now();
        let db = Arc::new(Db::open(
            &s.path,
            &keys,
            s.options.clone().create_if_missing(true),
        )?);
        let mut ids = lethedb::bench_support::load_people(&db, n, 2)?;
        db.compact()?;
        // Victims in a deterministic shuffled order.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in (1..ids.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ids.swap(i, (x % (i as u64 + 1)) as usize);
        }
        s.ids = ids;
        s.db = Some(db);
        loads.insert(s.name.into(), serde_json::json!(t.elapsed().as_secs_f64()));
        eprintln!(
            "{}: {} people loaded in {:.0} s",
            s.name,
            s.ids.len(),
            t.elapsed().as_secs_f64()
        );
    }

    let mut purges = serde_json::Map::new();
    for (k, rounds) in [(1usize, rounds), (1000usize, rounds.min(3))] {
        let (mut purge_ratio, mut rotation_ratio) = (Vec::new(), Vec::new());
        let mut raw = Vec::new();
        for r in 0..rounds {
            let (fp, fr) = sides[0].purge_round(k)?;
            let (tp, tr) = sides[1].purge_round(k)?;
            eprintln!("{k} erasures, round {r}: purge file {fp:.3}s token {tp:.3}s; rotation file {fr:.4}s token {tr:.4}s");
            purge_ratio.push(tp / fp);
            rotation_ratio.push(tr / fr);
            raw.push(serde_json::json!({"file_purge_s": fp, "pkcs11_purge_s": tp, "file_rotation_s": fr, "pkcs11_rotation_s": tr}));
        }
        purges.insert(
            format!("{k}_erasures"),
            serde_json::json!({
                "purge_pkcs11_over_file": median_range(purge_ratio),
                "rotation_pkcs11_over_file": median_range(rotation_ratio),
                "rounds": raw,
            }),
        );
    }

    // Blind-index rotation, online, on the file store.
    let db = sides[0].db.take().expect("open");
    let t = Instant::now();
    let blind = db.rotate_blind_index(|_| {})?;
    let blind_s = t.elapsed().as_secs_f64();
    drop(db);
    // Master-key rotation (offline), each custody.
    let mut master = serde_json::Map::new();
    for s in &mut sides {
        s.db = None;
        let new = MemoryKeyProvider::generate()?;
        let t = Instant::now();
        let r = Db::rotate_master(&s.path, &keys, &new, s.options.clone())?;
        master.insert(
            s.name.into(),
            serde_json::json!({ "seconds": t.elapsed().as_secs_f64(), "root_epochs_destroyed": r.root_epochs_destroyed }),
        );
    }
    let out = serde_json::json!({
        "profiles": n,
        "softhsm_token_setup_seconds": token_setup.as_secs_f64(),
        "load_seconds": loads,
        "purges": purges,
        "blind_index_rotation": {
            "profiles": blind.profiles,
            "entries_moved": blind.entries_moved,
            "seconds": blind_s,
            "profiles_per_second": blind.profiles as f64 / blind_s,
        },
        "master_rotation": master,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}
