//! SoftHSM2 for tests: a temporary configuration and token directory per
//! test process (SoftHSM reads `SOFTHSM2_CONF` once, at `C_Initialize`),
//! and a fresh token per test, so no test shares a token or an object.
//! CLI tests, which run the binary in a child process, get a configuration
//! and token directory of their own each (`child_token`).
//!
//! `scripts/prereqs.sh --softhsm` installs SoftHSM2; without it these
//! tests fail, naming what is missing — they never pass by skipping.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use lethedb::Pkcs11RootKeyStore;

pub const USER_PIN: &str = "4711-user";
const SO_PIN: &str = "0000-so";

/// The SoftHSM2 module: `LETHEDB_SOFTHSM_MODULE`, or where Debian and
/// other distributions put it.
pub fn module() -> PathBuf {
    if let Ok(p) = std::env::var("LETHEDB_SOFTHSM_MODULE") {
        return PathBuf::from(p);
    }
    let candidates = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "SoftHSM2 is not installed (looked for {candidates:?}); run scripts/prereqs.sh --softhsm or set LETHEDB_SOFTHSM_MODULE"
            )
        })
}

/// Writes a SoftHSM2 configuration with its own token directory under
/// `dir`; returns the configuration file.
pub fn write_conf(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    conf
}

struct Process {
    dir: PathBuf,
    ctx: Pkcs11,
    lock: Mutex<()>,
}

/// This process's SoftHSM: configuration set before the first
/// `C_Initialize`, context kept for the life of the process.
fn process() -> &'static Process {
    static P: OnceLock<Process> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "lethedb-softhsm-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let conf = write_conf(&dir);
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let ctx = Pkcs11::new(module()).unwrap();
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        Process {
            dir,
            ctx,
            lock: Mutex::new(()),
        }
    })
}

/// A token of this process's SoftHSM, made for one test.
#[derive(Clone)]
pub struct Token {
    pub label: String,
    pub pin_file: PathBuf,
}

impl Token {
    /// A fresh, initialised token with a user PIN (in a file).
    pub fn new(name: &str) -> Token {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = process();
        let label = format!("{name}-{}", N.fetch_add(1, Ordering::SeqCst));
        assert!(label.len() <= 32, "token label too long: {label}");
        let _g = p.lock.lock().unwrap_or_else(|e| e.into_inner());
        let free = p
            .ctx
            .get_all_slots()
            .unwrap()
            .into_iter()
            .find(|s| {
                p.ctx
                    .get_token_info(*s)
                    .map(|t| !t.token_initialized())
                    .unwrap_or(false)
            })
            .expect("SoftHSM offers a free slot");
        p.ctx
            .init_token(free, &AuthPin::from(SO_PIN.to_string()), &label)
            .unwrap();
        let slot = p
            .ctx
            .get_slots_with_initialized_token()
            .unwrap()
            .into_iter()
            .find(|s| p.ctx.get_token_info(*s).unwrap().label().trim_end() == label)
            .expect("the new token");
        let session = p.ctx.open_rw_session(slot).unwrap();
        session
            .login(UserType::So, Some(&AuthPin::from(SO_PIN.to_string())))
            .unwrap();
        session
            .init_pin(&AuthPin::from(USER_PIN.to_string()))
            .unwrap();
        session.logout().unwrap();
        drop(session);
        let pin_file = p.dir.join(format!("{label}.pin"));
        std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
        Token { label, pin_file }
    }

    /// The RFC 7512 URI of this token with root objects `object`.
    pub fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={};object={object}?module-path={}&pin-source=file:{}",
            self.label,
            module().display(),
            self.pin_file.display()
        )
    }

    /// A root key store on this token with root objects `object`.
    pub fn store(&self, object: &str) -> Arc<Pkcs11RootKeyStore> {
        Arc::new(Pkcs11RootKeyStore::from_uri(&self.uri(object)).unwrap())
    }
}

/// For a child process (the CLI): a SoftHSM2 configuration and token
/// directory of its own under `dir`, one token initialised with
/// `softhsm2-util`. Returns (SOFTHSM2_CONF, token label, PIN file).
pub fn child_token(dir: &Path, label: &str) -> (PathBuf, String, PathBuf) {
    let conf = write_conf(dir);
    let out = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ])
        .output()
        .expect("softhsm2-util (install SoftHSM2: scripts/prereqs.sh --softhsm)");
    assert!(
        out.status.success(),
        "softhsm2-util: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
    (conf, label.to_string(), pin_file)
}
