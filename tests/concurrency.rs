//! Concurrent writers to the same profiles never lose an update.

mod common;

use std::sync::Arc;

use common::*;
use lethedb::{ProfileBatch, Update, Value};

#[test]
fn threads_upserting_different_fields_of_the_same_profiles_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(create(dir.path(), &key(1)));
    let ids: Arc<Vec<_>> = Arc::new((0..20).map(|_| db.create(Update::new()).unwrap()).collect());
    const THREADS: usize = 8;
    const ROUNDS: i64 = 60;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = Arc::clone(&db);
            let ids = Arc::clone(&ids);
            std::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    if round % 3 == 0 {
                        // Multi-profile batches interleave with single upserts.
                        let mut b = ProfileBatch::new();
                        for id in ids.iter() {
                            b.upsert(*id, Update::new().set(format!("f{t}"), round));
                        }
                        db.apply(b).unwrap();
                    } else {
                        for id in ids.iter() {
                            db.upsert(id, Update::new().set(format!("f{t}"), round))
                                .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for id in ids.iter() {
        let p = db.get(id).unwrap();
        assert_eq!(
            p.fields.len(),
            THREADS,
            "profile {id} lost a field: {:?}",
            p.fields.keys()
        );
        for t in 0..THREADS {
            assert_eq!(p.fields[&format!("f{t}")], Value::Int(ROUNDS));
        }
    }
}
