//! Consent: history and as-of, expiry, purpose-bound reads, restriction and
//! objection, TCF decoding, the consent index, and the merge policy.

mod common;

use std::collections::BTreeSet;

use common::*;
use lethedb::{
    tcf, ConsentRecord, ConsentStatus, Db, Error, FieldClass, Identifier, LegalBasis, Options,
    ProcessingFlags, ProfileId, Schema, Timestamp, Update, Value,
};
use rand::{Rng, SeedableRng};

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

#[test]
fn history_is_append_only_and_as_of_matches_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let id = db
        .create(Update::new().set("email", "a@example.com"))
        .unwrap();
    let p = "email_marketing";
    db.record_consent(
        &id,
        ConsentRecord::new(p, ConsentStatus::Granted).at(t("2024-01-01T00:00:00Z")),
    )
    .unwrap();
    let first = db.consent_history(&id).unwrap();
    db.record_consent(
        &id,
        ConsentRecord::new(p, ConsentStatus::Withdrawn).at(t("2024-02-01T00:00:00Z")),
    )
    .unwrap();
    db.record_consent(
        &id,
        ConsentRecord::new(p, ConsentStatus::Granted)
            .at(t("2024-03-01T00:00:00Z"))
            .policy_version("v3")
            .expires(t("2999-01-01T00:00:00Z")),
    )
    .unwrap();
    // A late-arriving older record joins the history but does not change the current state.
    db.record_consent(
        &id,
        ConsentRecord::new(p, ConsentStatus::Denied).at(t("2023-06-01T00:00:00Z")),
    )
    .unwrap();

    let history = db.consent_history(&id).unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[0], first[0], "earlier entries are never rewritten");
    assert!(history.iter().all(|(pid, _)| *pid == id));

    let current = db.consent(&id, p).unwrap().unwrap();
    assert_eq!(current.status, ConsentStatus::Granted);
    assert_eq!(current.policy_version.as_deref(), Some("v3"));

    let at = |s: &str| db.consent_at(&id, p, t(s)).unwrap().map(|r| r.status);
    assert_eq!(at("2023-01-01T00:00:00Z"), None);
    assert_eq!(at("2023-07-01T00:00:00Z"), Some(ConsentStatus::Denied));
    assert_eq!(at("2024-01-15T00:00:00Z"), Some(ConsentStatus::Granted));
    assert_eq!(at("2024-02-01T00:00:00Z"), Some(ConsentStatus::Withdrawn));
    assert_eq!(at("2024-02-28T23:59:59Z"), Some(ConsentStatus::Withdrawn));
    assert_eq!(at("2025-01-01T00:00:00Z"), Some(ConsentStatus::Granted));

    drop(db);
    let db = reopen(dir.path(), &key(1));
    assert_eq!(db.consent_history(&id).unwrap(), history);
}

#[test]
fn expired_consent_reads_as_not_granted() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new().allow("email", "email_marketing");
    let db = Db::open(
        dir.path(),
        &key(1),
        Options::new().create_if_missing(true).schema(schema),
    )
    .unwrap();
    let id = db
        .create(Update::new().set("email", "a@example.com"))
        .unwrap();
    db.record_consent(
        &id,
        ConsentRecord::new("email_marketing", ConsentStatus::Granted)
            .expires(t("2020-01-01T00:00:00Z")),
    )
    .unwrap();
    let state = db.consent(&id, "email_marketing").unwrap().unwrap();
    assert_eq!(state.status, ConsentStatus::Granted);
    assert!(!state.allows_at(Timestamp::now()));
    assert!(state.allows_at(t("2019-12-31T00:00:00Z")));
    assert!(db.consented_profiles("email_marketing").unwrap().is_empty());
    let read = db.get_for_purpose(&id, "email_marketing").unwrap();
    assert!(read.fields.is_empty());
    assert_eq!(read.withheld["email"], "consent expired");
}

#[test]
fn purpose_bound_read_withholds_exactly_what_the_policy_says() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new()
        .allow("email", "email_marketing")
        .allow("name", "email_marketing")
        .allow("name", "personalization")
        .allow("phone", "sms_marketing")
        .field("diagnosis", FieldClass::Sensitive, None)
        .allow("diagnosis", "personalization")
        .field("plan", FieldClass::NonPersonal, None);
    let db = Db::open(
        dir.path(),
        &key(1),
        Options::new().create_if_missing(true).schema(schema),
    )
    .unwrap();
    let id = db
        .create(
            Update::new()
                .set("email", "a@example.com")
                .set("name", "Ada")
                .set("phone", "+15550100")
                .set("diagnosis", "private")
                .set("plan", "pro"),
        )
        .unwrap();
    let names =
        |m: &std::collections::BTreeMap<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    let withheld = |r: &lethedb::PurposeRead| r.withheld.keys().cloned().collect::<Vec<_>>();

    let r = db.get_for_purpose(&id, "email_marketing").unwrap();
    assert_eq!(names(&r.fields), ["plan"]);
    assert_eq!(withheld(&r), ["diagnosis", "email", "name", "phone"]);
    assert!(r.withheld["email"].contains("no consent"));
    assert!(r.withheld["phone"].contains("not declared"));

    db.record_consent(
        &id,
        ConsentRecord::new("email_marketing", ConsentStatus::Granted),
    )
    .unwrap();
    let r = db.get_for_purpose(&id, "email_marketing").unwrap();
    assert_eq!(names(&r.fields), ["email", "name", "plan"]);
    assert_eq!(r.fields["email"], Value::from("a@example.com"));
    assert_eq!(withheld(&r), ["diagnosis", "phone"]);

    // Legitimate interests cover ordinary fields but not special-category data.
    db.record_consent(
        &id,
        ConsentRecord::new("personalization", ConsentStatus::Granted)
            .legal_basis(LegalBasis::LegitimateInterests),
    )
    .unwrap();
    let r = db.get_for_purpose(&id, "personalization").unwrap();
    assert_eq!(names(&r.fields), ["name", "plan"]);
    assert!(r.withheld["diagnosis"].contains("explicit consent"));
    db.record_consent(
        &id,
        ConsentRecord::new("personalization", ConsentStatus::Granted),
    )
    .unwrap();
    assert_eq!(
        names(&db.get_for_purpose(&id, "personalization").unwrap().fields),
        ["diagnosis", "name", "plan"]
    );

    db.record_consent(
        &id,
        ConsentRecord::new("email_marketing", ConsentStatus::Withdrawn),
    )
    .unwrap();
    let r = db.get_for_purpose(&id, "email_marketing").unwrap();
    assert_eq!(names(&r.fields), ["plan"]);
    assert_eq!(r.withheld["email"], "consent withdrawn");

    // Restriction and objection withhold everything, whatever the consent.
    for flags in [
        ProcessingFlags {
            restricted: true,
            objected: false,
        },
        ProcessingFlags {
            restricted: false,
            objected: true,
        },
    ] {
        db.set_processing_flags(&id, flags).unwrap();
        assert_eq!(db.processing_flags(&id).unwrap(), flags);
        let r = db.get_for_purpose(&id, "personalization").unwrap();
        assert!(r.fields.is_empty(), "{flags:?}");
        assert_eq!(
            withheld(&r),
            ["diagnosis", "email", "name", "phone", "plan"]
        );
        assert!(r.withheld["plan"].contains(if flags.restricted {
            "Art. 18"
        } else {
            "Art. 21"
        }));
    }
    db.set_processing_flags(&id, ProcessingFlags::default())
        .unwrap();
    assert_eq!(
        names(&db.get_for_purpose(&id, "personalization").unwrap().fields),
        ["diagnosis", "name", "plan"]
    );
    // The flags are a system field: never returned by get.
    assert!(db
        .get(&id)
        .unwrap()
        .fields
        .keys()
        .all(|k| !k.starts_with('$')));

    assert!(matches!(
        db.get_for_purpose(&id, "mind_reading"),
        Err(Error::UnknownPurpose(_))
    ));
    assert!(matches!(
        db.record_consent(
            &id,
            ConsentRecord::new("mind_reading", ConsentStatus::Granted)
        ),
        Err(Error::UnknownPurpose(_))
    ));
}

/// Published example strings with their decodings (from the test suite of
/// the GDPR::IAB::TCFv2 parser, which mirrors the IAB's own examples).
#[test]
fn tcf_published_examples_decode() {
    let tc = tcf::decode(
        "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA",
    )
    .unwrap();
    assert_eq!(tc.version, 2);
    assert_eq!(tc.created, Timestamp(1_228_644_257_700_000));
    assert_eq!(tc.last_updated, Timestamp(1_326_215_413_400_000));
    assert_eq!((tc.cmp_id, tc.cmp_version, tc.consent_screen), (21, 7, 2));
    assert_eq!(tc.consent_language, "EN");
    assert_eq!((tc.vendor_list_version, tc.policy_version), (23, 2));
    assert!(tc.is_service_specific && !tc.use_non_standard_texts && !tc.purpose_one_treatment);
    assert_eq!(tc.publisher_country, "KM");
    assert_eq!(tc.purpose_consents, BTreeSet::from([1, 3, 9, 10]));
    assert_eq!(
        tc.purpose_legitimate_interests,
        BTreeSet::from([3, 4, 5, 8, 9, 10])
    );
    assert_eq!(tc.special_feature_opt_ins, BTreeSet::from([2]));
    assert_eq!(tc.max_vendor_id, 115);
    let vendors: BTreeSet<u16> = [
        2, 3, 6, 7, 8, 10, 12, 13, 14, 15, 16, 21, 25, 27, 30, 31, 34, 35, 37, 38, 39, 42, 43, 49,
        52, 54, 55, 56, 57, 59, 60, 63, 64, 65, 66, 67, 68, 69, 73, 74, 76, 78, 83, 86, 87, 89, 90,
        92, 96, 99, 100, 106, 109, 110, 114, 115,
    ]
    .into();
    assert_eq!(tc.vendor_consents, vendors);
    // Segments after the core one are ignored.
    let with_pub = tcf::decode(
        "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA.argAC0gAAAAAAAAAAAA",
    )
    .unwrap();
    assert_eq!(with_pub, tc);

    let range = tcf::decode(
        "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA",
    )
    .unwrap();
    assert_eq!(range.created, Timestamp(1_587_946_020_000_000));
    assert_eq!(
        (range.cmp_id, range.cmp_version, range.consent_screen),
        (3, 2, 7)
    );
    assert_eq!((range.vendor_list_version, range.policy_version), (48, 2));
    assert!(!range.is_service_specific);
    assert_eq!(range.publisher_country, "AA");
    assert!(range.purpose_consents.is_empty() && range.purpose_legitimate_interests.is_empty());
    assert_eq!(range.max_vendor_id, 626);
    assert_eq!(
        range.vendor_consents,
        BTreeSet::from([23, 42, 126, 127, 128, 587, 613, 626])
    );
}

#[test]
fn tcf_malformed_strings_give_typed_errors() {
    let good =
        "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA";
    for (s, want) in [
        ("", "empty"),
        ("CO$f", "base64url"),
        ("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "version 1"),
        (&good[..20], "truncated"),
        (&good[..45], "truncated"),
    ] {
        match tcf::decode(s) {
            Err(Error::InvalidTcString(msg)) => assert!(msg.contains(want), "{s:?}: {msg}"),
            other => panic!("{s:?}: {other:?}"),
        }
    }
}

#[test]
fn tcf_import_records_purposes_with_the_string_as_proof() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let id = db.create(Update::new()).unwrap();
    let s = "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
    let records = db.import_tcf(&id, s).unwrap();
    assert_eq!(records.len(), 11);
    let state = |p: &str| db.consent(&id, p).unwrap().unwrap();
    assert_eq!(
        (state("tcf:1").status, state("tcf:1").legal_basis),
        (ConsentStatus::Granted, LegalBasis::Consent)
    );
    assert_eq!(
        (state("tcf:4").status, state("tcf:4").legal_basis),
        (ConsentStatus::Granted, LegalBasis::LegitimateInterests)
    );
    assert_eq!(state("tcf:2").status, ConsentStatus::Denied);
    assert_eq!(state("tcf:1").proof.as_deref(), Some(s));
    assert_eq!(state("tcf:1").jurisdiction.as_deref(), Some("KM"));
    assert!(matches!(
        db.import_tcf(&id, "garbage!"),
        Err(Error::InvalidTcString(_))
    ));
}

#[test]
fn consent_index_matches_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut db = create(dir.path(), &k);
    let ids: Vec<ProfileId> = (0..30).map(|_| db.create(Update::new()).unwrap()).collect();
    let purposes = ["email_marketing", "analytics", "tcf:3"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for step in 0..400 {
        let id = ids[rng.gen_range(0..ids.len())];
        let p = purposes[rng.gen_range(0..purposes.len())];
        let status = [
            ConsentStatus::Granted,
            ConsentStatus::Denied,
            ConsentStatus::Withdrawn,
        ][rng.gen_range(0..3)];
        let mut r = ConsentRecord::new(p, status);
        if rng.gen_bool(0.2) {
            r = r.expires(if rng.gen_bool(0.5) {
                t("2001-01-01T00:00:00Z")
            } else {
                t("2999-01-01T00:00:00Z")
            });
        }
        db.record_consent(&id, r).unwrap();
        if step % 100 == 99 {
            drop(db);
            db = reopen(dir.path(), &k);
        }
    }
    let now = Timestamp::now();
    for p in purposes {
        let indexed: BTreeSet<ProfileId> = db.consented_profiles(p).unwrap().into_iter().collect();
        let scanned: BTreeSet<ProfileId> = db
            .profile_ids()
            .unwrap()
            .map(Result::unwrap)
            .filter(|id| db.consent(id, p).unwrap().is_some_and(|r| r.allows_at(now)))
            .collect();
        assert_eq!(indexed, scanned, "purpose {p}");
        assert!(!scanned.is_empty());
    }
}

#[test]
fn merge_keeps_the_most_restrictive_state_and_both_histories() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let a = db
        .resolve(&[Identifier::email("a@example.com")], Update::new())
        .unwrap()
        .profile
        .unwrap();
    let b = db
        .resolve(&[Identifier::device_id("d-1")], Update::new())
        .unwrap()
        .profile
        .unwrap();
    db.record_consent(
        &a,
        ConsentRecord::new("email_marketing", ConsentStatus::Granted),
    )
    .unwrap();
    db.record_consent(
        &b,
        ConsentRecord::new("email_marketing", ConsentStatus::Denied),
    )
    .unwrap();
    db.record_consent(&a, ConsentRecord::new("analytics", ConsentStatus::Granted))
        .unwrap();
    db.record_consent(
        &b,
        ConsentRecord::new("analytics", ConsentStatus::Granted).expires(t("2999-01-01T00:00:00Z")),
    )
    .unwrap();
    let out = db
        .resolve(
            &[
                Identifier::email("a@example.com"),
                Identifier::device_id("d-1"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.merges.len(), 1);
    let s = out.profile.unwrap();
    assert_eq!(s, a);
    assert_eq!(
        db.consent(&s, "email_marketing").unwrap().unwrap().status,
        ConsentStatus::Denied
    );
    let analytics = db.consent(&s, "analytics").unwrap().unwrap();
    assert_eq!(
        analytics.expires_at,
        Some(t("2999-01-01T00:00:00Z")),
        "the grant expiring sooner wins"
    );
    assert!(!db
        .consented_profiles("email_marketing")
        .unwrap()
        .contains(&s));
    assert_eq!(
        db.consented_profiles("analytics").unwrap(),
        vec![s],
        "b's index entries are gone"
    );
    let history = db.consent_history(&s).unwrap();
    assert!(
        history.iter().any(|(pid, _)| *pid == b),
        "b's history is kept"
    );
    assert!(history.iter().any(|(_, r)| r.source.starts_with("merge:")));
    // Reading through the merged-away id gives the survivor's states.
    assert_eq!(
        db.consent(&b, "email_marketing").unwrap().unwrap().status,
        ConsentStatus::Denied
    );

    db.unmerge(&out.merges[0]).unwrap();
    assert_eq!(
        db.consent(&b, "email_marketing").unwrap().unwrap().status,
        ConsentStatus::Denied
    );
    // Each side gets back what it had without the merge (issue 17: the
    // survivor no longer keeps the merged side's choices).
    assert_eq!(
        db.consent(&a, "email_marketing").unwrap().unwrap().status,
        ConsentStatus::Granted,
        "the survivor's own state comes back"
    );
    assert_eq!(
        db.consent(&a, "analytics").unwrap().unwrap().expires_at,
        None,
        "the survivor's own grant, not b's expiring one"
    );
    let analytics_who: BTreeSet<ProfileId> = db
        .consented_profiles("analytics")
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(analytics_who, BTreeSet::from([a, b]));
}

#[test]
fn one_resolve_merging_several_profiles_keeps_the_most_restrictive_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let s = db
        .resolve(&[Identifier::device_id("s")], Update::new())
        .unwrap()
        .profile
        .unwrap();
    let q1 = db
        .resolve(&[Identifier::device_id("q1")], Update::new())
        .unwrap()
        .profile
        .unwrap();
    let q2 = db
        .resolve(&[Identifier::device_id("q2")], Update::new())
        .unwrap()
        .profile
        .unwrap();
    db.record_consent(&q1, ConsentRecord::new("analytics", ConsentStatus::Denied))
        .unwrap();
    db.record_consent(&q2, ConsentRecord::new("analytics", ConsentStatus::Granted))
        .unwrap();
    let out = db
        .resolve(
            &[
                Identifier::device_id("s"),
                Identifier::device_id("q1"),
                Identifier::device_id("q2"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.merges.len(), 2);
    assert_eq!(out.profile, Some(s));
    assert_eq!(
        db.consent(&s, "analytics").unwrap().unwrap().status,
        ConsentStatus::Denied
    );
    assert!(db.consented_profiles("analytics").unwrap().is_empty());
}

#[test]
fn consent_through_a_merged_away_id_lands_on_the_survivor() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let a = db
        .resolve(&[Identifier::device_id("a")], Update::new())
        .unwrap()
        .profile
        .unwrap();
    let b = db
        .resolve(&[Identifier::device_id("b")], Update::new())
        .unwrap()
        .profile
        .unwrap();
    db.resolve(
        &[Identifier::device_id("a"), Identifier::device_id("b")],
        Update::new(),
    )
    .unwrap();
    db.record_consent(&b, ConsentRecord::new("analytics", ConsentStatus::Granted))
        .unwrap();
    assert_eq!(db.consented_profiles("analytics").unwrap(), vec![a]);
    assert_eq!(
        db.consent(&a, "analytics").unwrap().unwrap().status,
        ConsentStatus::Granted
    );
}

/// "Later recording wins ties" across calls and a reopen, and one call's
/// many records keep their order (docs/design.md, "Recording order"). The
/// clock-stepped-back case is the unit test
/// `recorded_at_floors_at_the_latest_history_entry`.
#[test]
fn later_recording_wins_ties_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(21);
    let when = t("2024-05-01T00:00:00Z");
    let p = "analytics";
    let id = {
        let db = create(dir.path(), &k);
        let id = db.create(Update::new().set("plan", "pro")).unwrap();
        let many: Vec<ConsentRecord> = (0..20_000)
            .map(|_| ConsentRecord::new(p, ConsentStatus::Granted).at(when))
            .collect();
        db.record_consents(&id, &many).unwrap();
        id
    };
    let db = reopen(dir.path(), &k);
    db.record_consent(&id, ConsentRecord::new(p, ConsentStatus::Denied).at(when))
        .unwrap();
    // Same timestamp: the later recording (the denial) decides.
    assert_eq!(
        db.consent_at(&id, p, when).unwrap().unwrap().status,
        ConsentStatus::Denied
    );
    assert_eq!(
        db.consent(&id, p).unwrap().unwrap().status,
        ConsentStatus::Denied
    );
    let h = db.consent_history(&id).unwrap();
    assert_eq!(h.len(), 20_001);
    assert_eq!(h.last().unwrap().1.status, ConsentStatus::Denied);
    assert!(
        h.windows(2)
            .all(|w| w[0].1.recorded_at < w[1].1.recorded_at),
        "recorded_at not strictly increasing"
    );
}

/// Issue 17, item 1 (found with the CLI): A (no consent) and B (grants
/// ads_targeting, denies analytics) are merged, then unmerged. Each side
/// ends with the consent it would have had without the merge, plus what
/// was recorded for it since: A never carries B's choices, B gets back its
/// own and what was recorded through its id while merged; after B is
/// forgotten and purged, nothing of B's remains in A's history or export.
#[test]
fn unmerge_gives_each_side_its_own_consent_and_nothing_of_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(21);
    let db = Db::open(
        dir.path(),
        &k,
        lethedb::Options::new().create_if_missing(true),
    )
    .unwrap();
    let a = db
        .resolve(&[Identifier::user_id("uA")], Update::new().set("plan", "a"))
        .unwrap()
        .profile
        .unwrap();
    let b = db
        .resolve_with_consents(
            &[Identifier::anonymous_id("anB")],
            Update::new(),
            &[
                ConsentRecord::new("ads_targeting", ConsentStatus::Granted)
                    .source("segment")
                    .proof("segment:messageId:m2"),
                ConsentRecord::new("analytics", ConsentStatus::Denied)
                    .source("segment")
                    .proof("segment:messageId:m2"),
            ],
        )
        .unwrap()
        .profile
        .unwrap();
    // alias anB -> uA: one person; the survivor is the older profile, A.
    let out = db
        .resolve(
            &[Identifier::anonymous_id("anB"), Identifier::user_id("uA")],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.profile, Some(a));
    let merge = out.merges[0];
    let status = |id: &ProfileId, p: &str| {
        db.consents(id)
            .unwrap()
            .into_iter()
            .find(|r| r.purpose == p)
            .map(|r| r.status)
    };
    // While merged, the person carries B's choices.
    assert_eq!(status(&a, "ads_targeting"), Some(ConsentStatus::Granted));
    // Recorded while merged: through B's id (B's), through A's id (A's).
    db.record_consent(
        &b,
        ConsentRecord::new("email_marketing", ConsentStatus::Granted).proof("via-b"),
    )
    .unwrap();
    db.record_consent(
        &a,
        ConsentRecord::new("personalization", ConsentStatus::Granted).proof("via-a"),
    )
    .unwrap();

    db.unmerge(&merge).unwrap();
    assert_eq!(status(&a, "ads_targeting"), None);
    assert_eq!(status(&a, "analytics"), None);
    assert_eq!(status(&a, "email_marketing"), None);
    assert_eq!(status(&a, "personalization"), Some(ConsentStatus::Granted));
    assert_eq!(status(&b, "ads_targeting"), Some(ConsentStatus::Granted));
    assert_eq!(status(&b, "analytics"), Some(ConsentStatus::Denied));
    assert_eq!(status(&b, "email_marketing"), Some(ConsentStatus::Granted));
    assert_eq!(status(&b, "personalization"), None);
    for (p, holder) in [
        ("ads_targeting", b),
        ("email_marketing", b),
        ("personalization", a),
    ] {
        assert_eq!(db.consented_profiles(p).unwrap(), vec![holder], "{p}");
    }
    let proofs = |id: &ProfileId| -> Vec<String> {
        db.consent_history(id)
            .unwrap()
            .into_iter()
            .filter_map(|(_, r)| r.proof)
            .collect()
    };
    assert_eq!(proofs(&a), vec!["via-a".to_string()]);
    assert!(proofs(&b).contains(&"via-b".to_string()));
    // B is forgotten: nothing of B's is left with A, in any answer.
    db.forget(&b).unwrap();
    db.purge().unwrap();
    assert_eq!(proofs(&a), vec!["via-a".to_string()]);
    let export = db.export(&a).unwrap().to_string();
    for needle in [
        "segment:messageId:m2",
        "via-b",
        "ads_targeting",
        "email_marketing",
    ] {
        assert!(!export.contains(needle), "{needle} in A's export: {export}");
    }
    // The state survives a reopen.
    drop(db);
    let db = Db::open(dir.path(), &k, lethedb::Options::new()).unwrap();
    assert_eq!(
        db.consents(&a)
            .unwrap()
            .iter()
            .map(|r| r.purpose.as_str())
            .collect::<Vec<_>>(),
        vec!["personalization"]
    );
}
