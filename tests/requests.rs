//! Issue 20: data-subject requests (deadlines, transitions, evidence,
//! completion by certificate) and legal holds (forget, forget_fields and
//! retention refuse held data; release lets the erasure proceed).
//! Expected deadlines are computed by hand from the laws' rules (GDPR Art.
//! 12(3) with Regulation 1182/71 for months; CCPA 45 calendar days), never
//! asked of the engine.

use lethedb::{
    Db, DeadlineRule, Error, Evidence, MemoryKeyProvider, NewHold, NewRequest, Options, Period,
    ProfileId, RequestFilter, RequestKind, RequestPolicy, RequestStatus, Schema, Timestamp, Update,
};
use sha2::{Digest, Sha256};

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new().retention("notes", 1);
    let db = Db::open(
        dir.path().join("store"),
        &MemoryKeyProvider::generate().unwrap(),
        Options::new().create_if_missing(true).schema(schema),
    )
    .unwrap();
    (dir, db)
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn person(db: &Db, email: &str) -> ProfileId {
    db.create(Update::new().set("email", email).set("notes", "vip"))
        .unwrap()
}

#[test]
fn deadlines_follow_each_law_across_months_leap_years_and_extensions() {
    let (_d, db) = open();
    let id = person(&db, "dl@example.com");
    // (jurisdiction, received, due, due once extended), by hand.
    let cases = [
        // GDPR: one month, a missing day is the month's last; +2 months
        // counted from receipt (31 Jan + 3 months = 30 April).
        (
            "EU",
            "2024-01-31T09:00:00Z",
            "2024-02-29T09:00:00Z",
            "2024-04-30T09:00:00Z",
        ),
        (
            "DE",
            "2023-01-31T09:00:00Z",
            "2023-02-28T09:00:00Z",
            "2023-04-30T09:00:00Z",
        ),
        (
            "FR",
            "2024-12-15T23:30:00Z",
            "2025-01-15T23:30:00Z",
            "2025-03-15T23:30:00Z",
        ),
        (
            "UK",
            "2024-03-31T00:00:00Z",
            "2024-04-30T00:00:00Z",
            "2024-06-30T00:00:00Z",
        ),
        (
            "EU",
            "2023-11-30T12:00:00Z",
            "2023-12-30T12:00:00Z",
            "2024-02-29T12:00:00Z",
        ),
        // CCPA: 45 calendar days, +45 (2024 is a leap year: Feb has 29).
        (
            "US-CA",
            "2024-02-01T10:00:00Z",
            "2024-03-17T10:00:00Z",
            "2024-05-01T10:00:00Z",
        ),
        (
            "US-CA",
            "2023-02-01T10:00:00Z",
            "2023-03-18T10:00:00Z",
            "2023-05-02T10:00:00Z",
        ),
        (
            "US-VA",
            "2024-12-01T00:00:00Z",
            "2025-01-15T00:00:00Z",
            "2025-03-01T00:00:00Z",
        ),
    ];
    for (j, received, due, extended) in cases {
        let r = db
            .open_request(
                &id,
                NewRequest::new(RequestKind::Access, j).received_at(t(received)),
            )
            .unwrap();
        assert_eq!(r.due_at, t(due), "{j} {received}");
        // Long past its due time: the extension is recorded, and marked
        // late (GDPR Art. 12(3) wants it told within the first period).
        let x = db
            .extend_request(r.id, "privacy-desk", "complex request")
            .unwrap();
        assert_eq!(x.due_at, t(extended), "{j} {received} extended");
        assert!(x.extension.unwrap().late);
        assert!(matches!(
            db.extend_request(r.id, "privacy-desk", "again"),
            Err(Error::RequestState { .. })
        ));
    }
    // Extended in time: received a day ago under GDPR, due one month and
    // then three months from receipt; once only.
    let received = Timestamp(Timestamp::now().0 - 86_400_000_000);
    let r = db
        .open_request(
            &id,
            NewRequest::new(RequestKind::Erasure, "EU").received_at(received),
        )
        .unwrap();
    assert_eq!(r.due_at, received.add_months(1));
    let r = db
        .extend_request(r.id, "privacy-desk", "complex request, many systems")
        .unwrap();
    assert_eq!(r.due_at, received.add_months(3));
    assert!(!r.extension.unwrap().late);
    assert!(matches!(
        db.extend_request(r.id, "privacy-desk", "again"),
        Err(Error::RequestState { .. })
    ));
    // California opt-outs: 15 business days (Friday 1 March 2024 → Friday
    // 22 March), no extension.
    let r = db
        .open_request(
            &id,
            NewRequest::new(RequestKind::OptOutOfSale, "US-CA")
                .received_at(t("2024-03-01T16:00:00Z")),
        )
        .unwrap();
    assert_eq!(r.due_at, t("2024-03-22T16:00:00Z"));
    let r = db
        .open_request(
            &id,
            NewRequest::new(RequestKind::OptOutOfSale, "US-CA").received_at(Timestamp::now()),
        )
        .unwrap();
    assert!(db.extend_request(r.id, "desk", "busy").is_err());
    // Periods beyond ten years are refused.
    let mut absurd = RequestPolicy::default();
    absurd.rules.insert(
        "XX".into(),
        DeadlineRule {
            respond_within: Period::Days(u32::MAX),
            extension: Period::Days(0),
        },
    );
    assert!(matches!(
        db.set_request_policy(&absurd),
        Err(Error::InvalidInput(_))
    ));
    // No rule, no silent default.
    let e = db
        .open_request(&id, NewRequest::new(RequestKind::Access, "BR"))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no deadline rule for jurisdiction BR"),
        "{e}"
    );
    // Configured: LGPD-like 15 days, no extension.
    let mut p = RequestPolicy::default();
    p.rules.insert(
        "BR".into(),
        DeadlineRule {
            respond_within: Period::Days(15),
            extension: Period::Days(0),
        },
    );
    db.set_request_policy(&p).unwrap();
    assert_eq!(db.request_policy().unwrap(), p);
    // A request extends by the rule it opened under, not a later policy.
    let opened_under_gdpr = db
        .open_request(
            &id,
            NewRequest::new(RequestKind::Access, "EU").received_at(received),
        )
        .unwrap();
    let mut stricter = p.clone();
    stricter.rules.insert(
        "EU".into(),
        DeadlineRule {
            respond_within: Period::Days(10),
            extension: Period::Days(0),
        },
    );
    db.set_request_policy(&stricter).unwrap();
    let extended = db
        .extend_request(opened_under_gdpr.id, "desk", "complex request")
        .unwrap();
    assert_eq!(extended.due_at, received.add_months(3));
    db.set_request_policy(&p).unwrap();
    let r = db
        .open_request(
            &id,
            NewRequest::new(RequestKind::Access, "BR").received_at(t("2024-02-20T00:00:00Z")),
        )
        .unwrap();
    assert_eq!(r.due_at, t("2024-03-06T00:00:00Z"));
    let r = db
        .open_request(&id, NewRequest::new(RequestKind::Access, "BR"))
        .unwrap();
    let e = db.extend_request(r.id, "desk", "busy").unwrap_err();
    assert!(e.to_string().contains("allows no extension"), "{e}");
}

#[test]
fn overdue_and_due_soon_listings_come_from_the_due_index() {
    let (_d, db) = open();
    let id = person(&db, "od@example.com");
    let now = Timestamp::now();
    let day = 86_400_000_000i64;
    // Received 50, 40, 10 and 1 days ago under CCPA (45 days): the first
    // is overdue; the second is due in 5 days; the others later.
    let ids: Vec<u64> = [50, 40, 10, 1]
        .iter()
        .map(|d| {
            db.open_request(
                &id,
                NewRequest::new(RequestKind::Access, "US-CA")
                    .received_at(Timestamp(now.0 - d * day)),
            )
            .unwrap()
            .id
        })
        .collect();
    let list = |due_before| {
        db.requests(&RequestFilter {
            due_before: Some(due_before),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(list(now), vec![ids[0]]);
    assert_eq!(list(Timestamp(now.0 + 7 * day)), vec![ids[0], ids[1]]);
    assert!(db.request(ids[0]).unwrap().overdue_at(now));
    // Completing takes it off the lists.
    db.verify_request(ids[0], "desk", true).unwrap();
    db.complete_request(
        ids[0],
        "desk",
        Evidence::Statement {
            text: "answered: copy of the data sent".into(),
        },
    )
    .unwrap();
    assert_eq!(list(now), Vec::<u64>::new());
    assert_eq!(list(Timestamp(now.0 + 7 * day)), vec![ids[1]]);
    // Extension moves it out of the week.
    db.extend_request(ids[1], "desk", "awaiting a processor's answer")
        .unwrap();
    assert_eq!(list(Timestamp(now.0 + 7 * day)), Vec::<u64>::new());
    let all = db.requests(&RequestFilter::default()).unwrap();
    assert_eq!(all.len(), 4);
    let open = db
        .requests(&RequestFilter {
            status: Some(RequestStatus::Open),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(open.len(), 3);
}

#[test]
fn transitions_are_checked_audited_and_pii_free() {
    let (_d, db) = open();
    let id = person(&db, "tr@example.com");
    let r = db
        .open_request(&id, NewRequest::new(RequestKind::Access, "EU").by("desk"))
        .unwrap();
    assert_eq!(r.subject_ref.to_vec(), {
        let hex = db.subject_reference(&id).unwrap();
        (0..16)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
    });
    let digest = "ab".repeat(32);
    let evidence = Evidence::ExportBundle {
        sha256: digest.clone(),
    };
    // Not before verification; not with an erasure certificate; not twice.
    assert!(matches!(
        db.complete_request(r.id, "desk", evidence.clone()),
        Err(Error::RequestState { .. })
    ));
    db.verify_request(r.id, "desk", true).unwrap();
    assert!(db
        .complete_request(
            r.id,
            "desk",
            Evidence::ErasureCertificate {
                erasure_id: 1,
                sha256: digest.clone()
            }
        )
        .is_err());
    assert!(db
        .complete_request(
            r.id,
            "desk",
            Evidence::ExportBundle {
                sha256: "xyz".into()
            }
        )
        .is_err());
    // The person's export lists their requests.
    let export = db.export(&id).unwrap();
    assert_eq!(export["requests"][0]["id"], r.id);
    let done = db.complete_request(r.id, "desk", evidence.clone()).unwrap();
    assert_eq!(done.status, RequestStatus::Completed);
    assert_eq!(done.evidence, Some(evidence.clone()));
    assert!(matches!(
        db.reject_request(r.id, "desk", "late"),
        Err(Error::RequestState { .. })
    ));
    let actions: Vec<_> = done.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, ["opened", "verified", "completed"]);
    // Reject with a reason.
    let r2 = db
        .open_request(&id, NewRequest::new(RequestKind::Objection, "EU"))
        .unwrap();
    let rej = db
        .reject_request(r2.id, "desk", "identity could not be verified")
        .unwrap();
    assert_eq!(rej.status, RequestStatus::Rejected);
    // Every transition has its audit entry, about the subject reference.
    let kinds: Vec<String> = db
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind.starts_with("request_"))
        .map(|a| a.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "request_opened",
            "request_verified",
            "request_completed",
            "request_opened",
            "request_rejected"
        ]
    );
    db.verify_audit().unwrap();
    // Free text that looks like personal data is refused.
    for text in [
        "call back on +44 20 7183 8750",
        "asked by tr@example.com",
        "phone 020-7183-8750",
    ] {
        assert!(
            matches!(
                db.reject_request(r2.id, text, "x"),
                Err(Error::InvalidInput(_))
            ),
            "{text}"
        );
        assert!(db
            .open_request(&id, NewRequest::new(RequestKind::Access, "EU").by(text))
            .is_err());
    }
    assert!(matches!(db.request(999), Err(Error::RequestNotFound(999))));
    // A request verified over and over keeps a bounded history (the audit
    // log keeps every transition).
    let r3 = db
        .open_request(&id, NewRequest::new(RequestKind::Access, "EU"))
        .unwrap();
    for i in 0..300 {
        db.verify_request(r3.id, "desk", i % 2 == 0).unwrap();
    }
    let h = db.request(r3.id).unwrap().history;
    assert_eq!((h.len(), h[0].action.as_str()), (256, "opened"));
    // Kinds read as written by other tools.
    for (text, kind) in [
        ("export", RequestKind::Access),
        ("Deletion", RequestKind::Erasure),
        ("opt-out-of-sale", RequestKind::OptOutOfSale),
        ("do_not_sell", RequestKind::OptOutOfSale),
    ] {
        assert_eq!(text.parse::<RequestKind>().unwrap(), kind, "{text}");
    }
    assert!("teleport".parse::<RequestKind>().is_err());
}

#[test]
fn an_erasure_request_completes_when_its_certificate_is_issued() {
    let (_d, db) = open();
    let id = person(&db, "er@example.com");
    let other = person(&db, "er2@example.com");
    let r = db
        .open_request(&id, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    let unrelated = db
        .open_request(&other, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    db.verify_request(r.id, "desk", true).unwrap();
    let receipt = db.forget(&id).unwrap();
    let linked = db.request(r.id).unwrap();
    assert_eq!(
        (linked.status, linked.erasure_id),
        (RequestStatus::Open, receipt.erasure_id)
    );
    let report = db.purge().unwrap();
    let cert = report
        .certificates
        .iter()
        .find(|c| c.contains(&format!("\"erasure_id\":{}", receipt.erasure_id.unwrap())))
        .expect("certificate");
    let done = db.request(r.id).unwrap();
    assert_eq!(done.status, RequestStatus::Completed);
    assert_eq!(
        done.evidence,
        Some(Evidence::ErasureCertificate {
            erasure_id: receipt.erasure_id.unwrap(),
            sha256: hex(&Sha256::digest(cert.as_bytes())),
        })
    );
    assert_eq!(
        db.request(unrelated.id).unwrap().status,
        RequestStatus::Open
    );
    // The completion is in the audit log, after the purge entry.
    let log = db.audit_log().unwrap();
    let purge = log.iter().position(|a| a.kind == "purge").unwrap();
    assert_eq!(log[purge + 1].kind, "request_completed");
}

#[test]
fn a_certificate_completes_only_its_own_request() {
    let (_d, db) = open();
    let a = person(&db, "cert.a@example.com");
    let b = person(&db, "cert.b@example.com");
    let ra = db
        .open_request(&a, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    let rb = db
        .open_request(&b, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    for r in [ra.id, rb.id] {
        db.verify_request(r, "desk", true).unwrap();
    }
    // B's erasure is certified; it completes B's request, not A's.
    let erasure = db.forget(&b).unwrap().erasure_id.unwrap();
    let cert = db.purge().unwrap().certificates.remove(0);
    let evidence = Evidence::ErasureCertificate {
        erasure_id: erasure,
        sha256: hex(&Sha256::digest(cert.as_bytes())),
    };
    assert_eq!(db.request(rb.id).unwrap().evidence, Some(evidence.clone()));
    let e = db.complete_request(ra.id, "desk", evidence).unwrap_err();
    assert!(e.to_string().contains("not this request's"), "{e}");
    assert_eq!(db.request(ra.id).unwrap().status, RequestStatus::Open);
}

#[test]
fn holds_and_requests_follow_the_person_through_merges() {
    use lethedb::Identifier;
    let (_d, db) = open();
    let resolve = |emails: &[&str]| {
        let ids: Vec<Identifier> = emails.iter().map(|e| Identifier::email(*e)).collect();
        db.resolve(&ids, Update::new()).unwrap().profile.unwrap()
    };
    let a = resolve(&["lineage.a@example.com"]);
    let q = resolve(&["lineage.q@example.com"]);
    // A request opened for q; then q merges into a (the older profile).
    let r = db
        .open_request(&q, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    let survivor = resolve(&["lineage.a@example.com", "lineage.q@example.com"]);
    assert_eq!(survivor, a);
    // A hold on the person (through its survivor) holds q's request too.
    let hold = db
        .place_hold(&a, NewHold::new("matter 9", "legal"))
        .unwrap();
    assert_eq!(db.request(r.id).unwrap().status, RequestStatus::OnHold);
    // Listings by person cover the whole lineage.
    assert_eq!(db.holds(Some(&q)).unwrap()[0].id, hold.id);
    assert_eq!(db.requests_about(&a).unwrap()[0].id, r.id);
    // A request opened afterwards, through the merged-away id, opens on hold.
    let r2 = db
        .open_request(&q, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    assert_eq!(
        (r2.status, r2.holds.clone()),
        (RequestStatus::OnHold, vec![hold.id])
    );
    assert!(matches!(db.forget(&q), Err(Error::LegalHold { .. })));
    db.release_hold(hold.id, "legal").unwrap();
    for id in [r.id, r2.id] {
        assert_eq!(
            db.request(id).unwrap().status,
            RequestStatus::Open,
            "request {id}"
        );
    }
    db.forget(&a).unwrap();
    db.purge().unwrap();
    for id in [r.id, r2.id] {
        assert_eq!(
            db.request(id).unwrap().status,
            RequestStatus::Completed,
            "request {id}"
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn holds_block_forget_field_erasure_and_retention_until_released() {
    let (_d, db) = open();
    let id = person(&db, "hold@example.com");
    let free = person(&db, "free@example.com");
    let r = db
        .open_request(&id, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    let hold = db
        .place_hold(
            &id,
            NewHold::new("litigation matter 2024-017", "legal-team"),
        )
        .unwrap();
    let waiting = db.request(r.id).unwrap();
    assert_eq!(
        (waiting.status, waiting.holds.clone()),
        (RequestStatus::OnHold, vec![hold.id])
    );
    match db.forget(&id) {
        Err(Error::LegalHold { hold_id, .. }) => assert_eq!(hold_id, hold.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        db.forget_fields(&id, &["notes"]),
        Err(Error::LegalHold { .. })
    ));
    assert!(db.get(&id).unwrap().fields.contains_key("notes"));
    // Retention (notes keep 1 day; the person is a day and more past)
    // skips the held person and reports the hold, erases the other.
    let report = db
        .run_retention(Timestamp(Timestamp::now().0 + 3 * 86_400_000_000))
        .unwrap();
    assert_eq!((report.held_back, report.holds.clone()), (1, vec![hold.id]));
    assert_eq!(report.fields_erased, 1);
    assert!(db.get(&id).unwrap().fields.contains_key("notes"));
    assert!(!db.get(&free).unwrap().fields.contains_key("notes"));
    // Release: audited, the request returns to open, the erasure runs.
    db.release_hold(hold.id, "legal-team").unwrap();
    assert_eq!(db.request(r.id).unwrap().status, RequestStatus::Open);
    assert!(db.release_hold(hold.id, "legal-team").is_err());
    db.forget(&id).unwrap();
    db.purge().unwrap();
    assert_eq!(db.request(r.id).unwrap().status, RequestStatus::Completed);
    let kinds: Vec<String> = db
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    for k in [
        "hold_placed",
        "request_on_hold",
        "hold_released",
        "request_released",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k}");
    }
}

#[test]
fn a_field_hold_keeps_its_fields_and_lets_the_rest_go() {
    let (_d, db) = open();
    let id = db
        .create(
            Update::new()
                .set("email", "fh@example.com")
                .set("notes", "n")
                .set("city", "Leeds"),
        )
        .unwrap();
    let hold = db
        .place_hold(
            &id,
            NewHold::new("tax audit 2023", "finance").fields(["notes"]),
        )
        .unwrap();
    assert!(matches!(
        db.forget_fields(&id, &["notes", "city"]),
        Err(Error::LegalHold { hold_id, .. }) if hold_id == hold.id
    ));
    db.forget_fields(&id, &["city"]).unwrap();
    assert!(matches!(db.forget(&id), Err(Error::LegalHold { .. })));
    let p = db.get(&id).unwrap();
    assert!(p.fields.contains_key("notes") && !p.fields.contains_key("city"));
    assert_eq!(db.holds(Some(&id)).unwrap().len(), 1);
    assert_eq!(db.holds(None).unwrap()[0].id, hold.id);
}

#[test]
fn retention_erases_what_the_holds_leave() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new()
        .retention("notes", 1)
        .retention("city", 1)
        .inactive_profile_days(10);
    let db = Db::open(
        dir.path().join("store"),
        &MemoryKeyProvider::generate().unwrap(),
        Options::new().create_if_missing(true).schema(schema),
    )
    .unwrap();
    let fields = || {
        Update::new()
            .set("notes", "n")
            .set("city", "Leeds")
            .set("plan", "pro")
    };
    let expiring = db.create(fields()).unwrap();
    let inactive = db.create(fields()).unwrap();
    let h1 = db
        .place_hold(
            &expiring,
            NewHold::new("tax audit 2023", "finance").fields(["notes"]),
        )
        .unwrap();
    let h2 = db
        .place_hold(
            &inactive,
            NewHold::new("tax audit 2023", "finance").fields(["plan"]),
        )
        .unwrap();
    // Three days on, notes and city have expired; thirty days on, the
    // second profile is inactive too (but only the first is asked then).
    let day = 86_400_000_000i64;
    let report = db
        .run_retention(Timestamp(Timestamp::now().0 + 3 * day))
        .unwrap();
    assert_eq!((report.held_back, report.holds.clone()), (1, vec![h1.id]));
    // city of the first, notes and city of the second.
    assert_eq!(report.fields_erased, 3);
    let p = db.get(&expiring).unwrap();
    assert!(p.fields.contains_key("notes") && !p.fields.contains_key("city"));
    let report = db
        .run_retention(Timestamp(Timestamp::now().0 + 30 * day))
        .unwrap();
    assert!(report.holds.contains(&h2.id), "{report:?}");
    // The inactive person is not forgotten (a hold keeps their plan), but
    // everything else of them expires.
    let p = db.get(&inactive).unwrap();
    assert_eq!(p.fields.keys().collect::<Vec<_>>(), ["plan"]);
}

#[test]
fn a_hold_with_an_end_lapses_by_itself() {
    let (_d, db) = open();
    let id = person(&db, "lapse@example.com");
    assert!(db
        .place_hold(&id, NewHold::new("m", "legal").until(Timestamp(0)))
        .is_err());
    let end = Timestamp(Timestamp::now().0 + 1_000_000);
    let r = db
        .open_request(&id, NewRequest::new(RequestKind::Erasure, "EU"))
        .unwrap();
    db.place_hold(&id, NewHold::new("short matter", "legal").until(end))
        .unwrap();
    assert!(matches!(db.forget(&id), Err(Error::LegalHold { .. })));
    assert_eq!(db.request(r.id).unwrap().status, RequestStatus::OnHold);
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    // The lapsed hold keeps nothing waiting, and says so.
    let now_open = db.request(r.id).unwrap();
    assert_eq!(now_open.status, RequestStatus::Open);
    assert_eq!(now_open.history.last().unwrap().action, "hold_lapsed");
    db.forget(&id).unwrap();
}

#[test]
fn requests_and_holds_leave_no_identifier_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let email = "needle.requests@example.com";
    {
        let db = Db::open(
            &store,
            &MemoryKeyProvider::generate().unwrap(),
            Options::new().create_if_missing(true),
        )
        .unwrap();
        let id = db.create(Update::new().set("email", email)).unwrap();
        let r = db
            .open_request(&id, NewRequest::new(RequestKind::Erasure, "US-CA"))
            .unwrap();
        let h = db
            .place_hold(&id, NewHold::new("matter 7", "legal"))
            .unwrap();
        db.verify_request(r.id, "desk", true).unwrap();
        db.release_hold(h.id, "legal").unwrap();
        db.forget(&id).unwrap();
        db.purge().unwrap();
        db.flush().unwrap();
    }
    let mut needles = lethedb::forensics::encodings(email.as_bytes());
    needles.push(email.as_bytes().to_vec());
    let report = lethedb::forensics::scan_dir(dir.path(), &needles).unwrap();
    assert!(report.files > 0);
    assert!(report.hits.is_empty(), "{:?}", report.hits);
}
