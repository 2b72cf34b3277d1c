//! Minimal embedding: open a store, write a profile, read it back.
//!
//! Run: `cargo run --release --example quickstart`

use lethedb::{Db, FieldClass, MemoryKeyProvider, Options, Schema, Update};

fn main() -> lethedb::Result<()> {
    let dir = std::env::temp_dir().join(format!("lethedb-quickstart-{}", std::process::id()));
    // In production the key comes from FileKeyProvider (`lethedb init`) or a KMS.
    let keys = MemoryKeyProvider::generate()?;
    let schema = Schema::new().field("plan", FieldClass::NonPersonal, None);
    let db = Db::open(
        &dir,
        &keys,
        Options::new().create_if_missing(true).schema(schema),
    )?;

    let id = db.create(
        Update::new()
            .set("email", "grace@example.com")
            .set("name", "Grace Hopper")
            .set("plan", "pro"),
    )?;
    db.upsert(&id, Update::new().set("phone", "+12025550143"))?;
    println!("{}", db.get(&id)?.to_json());

    drop(db);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
