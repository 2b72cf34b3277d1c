//! Profile operations: partial upsert, field delete, batches, iteration,
//! reopen, and a model-based random test.

mod common;

use std::collections::BTreeMap;

use common::*;
use lethedb::{
    Error, FieldClass, Options, ProfileBatch, ProfileId, Schema, Timestamp, Update, Value,
    ValueKind,
};
use rand::{Rng, SeedableRng};

#[test]
fn partial_upsert_keeps_other_fields_and_delete_removes_only_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let id = db
        .create(
            Update::new()
                .set("email", "a@example.com")
                .set("age", 41)
                .set("score", 0.5)
                .set("vip", true)
                .set("seen", Timestamp(1_700_000_000_000_000))
                .set("tags", Value::List(vec![Value::from("x"), Value::Int(2)]))
                .set(
                    "prefs",
                    Value::Json(serde_json::json!({"lang": "en", "n": [1, 2]})),
                ),
        )
        .unwrap();
    db.upsert(&id, Update::new().set("age", 42)).unwrap();
    let p = db.get(&id).unwrap();
    assert_eq!(p.fields.len(), 7);
    assert_eq!(p.fields["age"], Value::Int(42));
    assert_eq!(p.fields["email"], Value::from("a@example.com"));
    assert_eq!(
        p.fields["seen"],
        Value::Timestamp(Timestamp(1_700_000_000_000_000))
    );
    assert!(p.updated_at >= p.created_at);

    db.delete_field(&id, "score").unwrap();
    let p = db.get(&id).unwrap();
    assert_eq!(p.fields.len(), 6);
    assert!(!p.fields.contains_key("score"));
    assert_eq!(p.fields["vip"], Value::Bool(true));
    // Deleting an absent field is a no-op; deleting on a missing profile is an error.
    db.delete_field(&id, "score").unwrap();
    let ghost = ProfileId::from_bytes([9; 16]);
    assert!(matches!(db.delete_field(&ghost, "x"), Err(Error::ProfileNotFound(g)) if g == ghost));
    assert!(matches!(db.get(&ghost), Err(Error::ProfileNotFound(_))));

    let named = db.get_fields(&id, &["email", "nope", "vip"]).unwrap();
    assert_eq!(named.fields.keys().collect::<Vec<_>>(), ["email", "vip"]);

    drop(db);
    let db = reopen(dir.path(), &key(1));
    let p2 = db.get(&id).unwrap();
    assert_eq!(p2.fields, p.fields);
    assert_eq!(p2.created_at, p.created_at);
}

#[test]
fn batch_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new().field("age", FieldClass::Personal, Some(ValueKind::Int));
    let db = lethedb::Db::open(
        dir.path(),
        &key(1),
        Options::new().create_if_missing(true).schema(schema),
    )
    .unwrap();
    let existing = db.create(Update::new().set("age", 30)).unwrap();

    let mut batch = ProfileBatch::new();
    let new_id = batch
        .create(Update::new().set("email", "n@example.com"))
        .unwrap();
    batch.upsert(existing, Update::new().set("age", 31));
    batch.upsert(
        ProfileId::from_bytes([1; 16]),
        Update::new().set("age", "not a number"),
    );
    let err = db.apply(batch).unwrap_err();
    assert!(
        matches!(err, Error::InvalidValue { ref field, .. } if field == "age"),
        "{err:?}"
    );
    assert!(
        !db.exists(&new_id).unwrap(),
        "nothing of a failed batch is written"
    );
    assert_eq!(db.get(&existing).unwrap().fields["age"], Value::Int(30));

    // A batch failing late (profile must exist) also writes nothing.
    let mut batch = ProfileBatch::new();
    let new_id = batch
        .create(Update::new().set("email", "m@example.com"))
        .unwrap();
    batch.delete_field(ProfileId::from_bytes([2; 16]), "age");
    assert!(matches!(db.apply(batch), Err(Error::ProfileNotFound(_))));
    assert!(!db.exists(&new_id).unwrap());

    let mut batch = ProfileBatch::new();
    let ids: Vec<_> = (0..50)
        .map(|i| batch.create(Update::new().set("age", i)).unwrap())
        .collect();
    batch.upsert(ids[0], Update::new().set("email", "first@example.com"));
    db.apply(batch).unwrap();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(db.get(id).unwrap().fields["age"], Value::Int(i as i64));
    }
    assert_eq!(db.get(&ids[0]).unwrap().fields.len(), 2);
}

#[test]
fn bad_input_is_typed_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let id = db
        .create(Update::new().set("email", "a@example.com"))
        .unwrap();
    assert!(matches!(
        db.upsert(&id, Update::new().set("", "x")),
        Err(Error::InvalidFieldName { .. })
    ));
    assert!(matches!(
        db.upsert(
            &id,
            Update::new().set("big", "x".repeat(lethedb::MAX_VALUE_BYTES + 1))
        ),
        Err(Error::InvalidValue { .. })
    ));
    let mut deep = Value::Int(0);
    for _ in 0..40 {
        deep = Value::List(vec![deep]);
    }
    assert!(matches!(
        db.upsert(&id, Update::new().set("deep", deep)),
        Err(Error::InvalidValue { .. })
    ));
    assert!(matches!(
        Update::from_json(&Schema::new(), "{not json"),
        Err(Error::InvalidInput(msg)) if msg.contains("bad JSON")
    ));
    assert!(Update::from_json(&Schema::new(), "[1,2]").is_err());
    assert_eq!(db.get(&id).unwrap().fields.len(), 1);
    assert!(matches!(
        "xyz".parse::<ProfileId>(),
        Err(Error::InvalidProfileId { .. })
    ));
}

#[test]
fn iterates_all_profile_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let mut ids: Vec<ProfileId> = (0..200)
        .map(|i| db.create(Update::new().set("n", i)).unwrap())
        .collect();
    ids.sort();
    let listed: Vec<ProfileId> = db.profile_ids().unwrap().map(Result::unwrap).collect();
    assert_eq!(listed, ids);
}

#[test]
fn schema_persists_and_non_personal_fields_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new()
        .field("plan", FieldClass::NonPersonal, Some(ValueKind::String))
        .field("born", FieldClass::Personal, Some(ValueKind::Timestamp));
    let db = lethedb::Db::open(
        dir.path(),
        &key(1),
        Options::new()
            .create_if_missing(true)
            .schema(schema.clone()),
    )
    .unwrap();
    let u = Update::from_json(
        &db.schema(),
        r#"{"plan":"pro","born":"1990-01-02T03:04:05Z","x":null}"#,
    )
    .unwrap();
    let id = db.create(u).unwrap();
    drop(db);
    let db = reopen(dir.path(), &key(1));
    assert_eq!(db.schema(), schema);
    let p = db.get(&id).unwrap();
    assert_eq!(p.fields["plan"], Value::from("pro"));
    assert_eq!(
        p.fields["born"],
        Value::Timestamp(Timestamp::parse_rfc3339("1990-01-02T03:04:05Z").unwrap())
    );
    assert_eq!(p.to_json()["fields"]["born"], "1990-01-02T03:04:05.000000Z");
}

/// Random operations against the engine and an in-memory model, compared
/// after every step, with reopens in between.
#[test]
fn model_based_random_operations() {
    for seed in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let k = key(7);
        let mut db = create(dir.path(), &k);
        let mut model: BTreeMap<ProfileId, BTreeMap<String, Value>> = BTreeMap::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let names = ["email", "phone", "age", "city", "tags"];
        let value = |rng: &mut rand::rngs::StdRng| -> Value {
            match rng.gen_range(0..4) {
                0 => Value::String(format!("s{}", rng.gen::<u32>())),
                1 => Value::Int(rng.gen()),
                2 => Value::Bool(rng.gen()),
                _ => Value::List(vec![Value::Int(rng.gen_range(0..9))]),
            }
        };
        for step in 0..300 {
            let ids: Vec<ProfileId> = model.keys().copied().collect();
            let pick = |rng: &mut rand::rngs::StdRng| ids[rng.gen_range(0..ids.len())];
            match rng.gen_range(0..10) {
                0 | 1 => {
                    let mut u = Update::new();
                    let mut m = BTreeMap::new();
                    for n in names {
                        if rng.gen_bool(0.5) {
                            let v = value(&mut rng);
                            m.insert(n.to_string(), v.clone());
                            u = u.set(n, v);
                        }
                    }
                    let id = db.create(u).unwrap();
                    model.insert(id, m);
                }
                2..=5 if !ids.is_empty() => {
                    let id = pick(&mut rng);
                    let mut u = Update::new();
                    for n in names {
                        match rng.gen_range(0..4) {
                            0 => {
                                let v = value(&mut rng);
                                model.get_mut(&id).unwrap().insert(n.to_string(), v.clone());
                                u = u.set(n, v);
                            }
                            1 => {
                                model.get_mut(&id).unwrap().remove(n);
                                u = u.remove(n);
                            }
                            _ => {}
                        }
                    }
                    db.upsert(&id, u).unwrap();
                }
                6 if !ids.is_empty() => {
                    let id = pick(&mut rng);
                    let n = names[rng.gen_range(0..names.len())];
                    model.get_mut(&id).unwrap().remove(n);
                    db.delete_field(&id, n).unwrap();
                }
                7 if ids.len() >= 2 => {
                    let (a, b) = (pick(&mut rng), pick(&mut rng));
                    let mut batch = ProfileBatch::new();
                    let va = value(&mut rng);
                    let vb = value(&mut rng);
                    batch.upsert(a, Update::new().set("city", va.clone()));
                    batch.upsert(b, Update::new().set("age", vb.clone()));
                    db.apply(batch).unwrap();
                    model.get_mut(&a).unwrap().insert("city".into(), va);
                    model.get_mut(&b).unwrap().insert("age".into(), vb);
                }
                8 => {
                    drop(db);
                    db = reopen(dir.path(), &k);
                }
                _ => {}
            }
            for (id, fields) in &model {
                assert_eq!(
                    &db.get(id).unwrap().fields,
                    fields,
                    "seed {seed} step {step} profile {id}"
                );
            }
            let listed: Vec<ProfileId> = db.profile_ids().unwrap().map(Result::unwrap).collect();
            assert_eq!(listed, model.keys().copied().collect::<Vec<_>>());
        }
    }
}
