//! Tests of identifier normalisation (`ids.rs`).

use super::*;

fn strict(region: &str) -> Normalization {
    Normalization {
        default_region: region.into(),
        ..Normalization::default()
    }
}

fn lenient(region: &str) -> Normalization {
    Normalization {
        phone_validation: PhoneValidation::Lenient,
        ..strict(region)
    }
}

fn problem(r: Result<String>) -> IdentifierProblem {
    match r {
        Err(Error::InvalidIdentifier { reason, .. }) => reason,
        other => panic!("expected InvalidIdentifier, got {other:?}"),
    }
}

/// (default region, input, E.164), written out by hand; most are
/// libphonenumber's example numbers for their region and type.
const VALID_PHONES: &[(&str, &str, &str)] = &[
    ("US", "(201) 555-0123", "+12015550123"),
    ("US", "+1 (415) 555-0100", "+14155550100"),
    ("US", "415-555-0100", "+14155550100"),
    ("US", " (415) 555 0100 ", "+14155550100"),
    ("US", "+44 20 7183 8750", "+442071838750"),
    ("GB", "020 7183 8750", "+442071838750"),
    ("GB", "07400 123456", "+447400123456"),
    ("DE", "030 123456", "+4930123456"),
    ("DE", "+49 1512 3456789", "+4915123456789"),
    ("FR", "01 23 45 67 89", "+33123456789"),
    ("FR", "06 12 34 56 78", "+33612345678"),
    ("IN", "081234 56789", "+918123456789"),
    ("JP", "03-1234-5678", "+81312345678"),
    ("BR", "(11) 96123-4567", "+5511961234567"),
    ("AU", "0412 345 678", "+61412345678"),
    ("NL", "06 12345678", "+31612345678"),
    ("NL", "+31 6 5043 6083", "+31650436083"),
];

/// Parse, but libphonenumber calls them invalid: strict refuses them,
/// lenient keeps them.
const PARSEABLE_INVALID_PHONES: &[(&str, &str)] = &[
    ("US", "12345"),
    ("US", "+1 415 555 01000000"),
    ("US", "(123) 456-7890"),
    ("US", "555-0100"),
    ("GB", "020 7183 875"),
    // The `phonenumber` port's own `is_valid` accepts these two: a
    // valid prefix padded to another allowed length (see valid_number).
    ("NL", "+31 6 5043 6083 07"),
    ("BR", "+55 46 7585 13893"),
];

/// Refused in both modes.
const UNPARSEABLE_PHONES: &[(&str, &str)] = &[
    ("US", "call me maybe"),
    ("US", "12"),
    ("US", "+"),
    ("GB", "+999 1234 5678"),
    ("US", "+1 415 555 0100 2222 3333 4444 5555"),
    // All zeros: no national number is left after the leading zeros.
    ("US", "0000000000"),
    ("DE", "+49 0000 000000"),
    ("AU", "0000 000 000"),
];

#[test]
fn valid_phones_normalise_in_both_modes() {
    for (region, input, e164) in VALID_PHONES {
        for n in [strict(region), lenient(region)] {
            assert_eq!(
                n.normalize(&Identifier::phone(*input)).ok().as_deref(),
                Some(*e164),
                "{region} {input} ({:?})",
                n.phone_validation
            );
        }
    }
}

#[test]
fn invalid_phones_are_refused_when_strict_and_kept_when_lenient() {
    for (region, input) in PARSEABLE_INVALID_PHONES {
        let r = strict(region).normalize(&Identifier::phone(*input));
        assert_eq!(
            problem(r),
            IdentifierProblem::PhoneInvalid,
            "{region} {input}"
        );
        let kept = lenient(region).normalize(&Identifier::phone(*input));
        let kept = kept.unwrap_or_else(|e| panic!("lenient {region} {input}: {e}"));
        assert!(kept.starts_with('+'), "{kept}");
    }
    for (region, input) in UNPARSEABLE_PHONES {
        for n in [strict(region), lenient(region)] {
            let r = n.normalize(&Identifier::phone(*input));
            assert!(
                matches!(problem(r), IdentifierProblem::PhoneUnparseable(_)),
                "{region} {input}"
            );
        }
    }
}

#[test]
fn errors_never_echo_the_value() {
    let n = Normalization::default();
    let inputs = [
        Identifier::phone("12345"),
        Identifier::phone("call me maybe"),
        Identifier::email("secret.person@@example.com"),
        Identifier::email("secret.person-at-example.com"),
        Identifier::user_id(format!("secretuser{}", "x".repeat(600))),
    ];
    for id in inputs {
        let err = n.normalize(&id).expect_err("must be refused");
        let text = format!("{err} {err:?}");
        for needle in ["12345", "call me", "secret"] {
            assert!(!text.contains(needle), "{text}");
        }
    }
}

#[test]
fn phone_without_a_stable_form_is_rejected() {
    // Found by the normalize_identifier fuzz target: this input used to
    // normalise to +40100909759, which itself normalises to +4000909759.
    // Strict mode refuses it earlier as invalid; lenient must still
    // refuse it as unstable.
    let r = lenient("US").normalize(&Identifier::phone("+4*0 1 1100909759"));
    assert_eq!(problem(r), IdentifierProblem::PhoneUnstable);
    let r = strict("US").normalize(&Identifier::phone("+4*0 1 1100909759"));
    assert!(r.is_err());
}

#[test]
fn email_grammar() {
    let n = Normalization::default();
    let valid = [
        ("ada@example.com", "ada@example.com"),
        (" Ada@Example.COM", "ada@example.com"),
        ("ADA@EXAMPLE.COM \t", "ada@example.com"),
        (
            "Ada.Lovelace+tag@Example.co.uk",
            "ada.lovelace+tag@example.co.uk",
        ),
        ("o'brien@example.ie", "o'brien@example.ie"),
        (
            "x_y-z{1}@sub-domain.example.com",
            "x_y-z{1}@sub-domain.example.com",
        ),
        ("José@Bücher.de", "josé@xn--bcher-kva.de"),
        ("jose\u{301}@BÜCHER.DE", "josé@xn--bcher-kva.de"),
        ("a@xn--bcher-kva.de", "a@xn--bcher-kva.de"),
        ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
        ("ada@ｅｘａｍｐｌｅ.com", "ada@example.com"),
        ("a@b.io", "a@b.io"),
    ];
    for (input, want) in valid {
        assert_eq!(
            n.normalize(&Identifier::email(input)).ok().as_deref(),
            Some(want),
            "{input}"
        );
    }
    use IdentifierProblem::*;
    let long_local = format!("{}@example.com", "a".repeat(65));
    let long_label = format!("a@{}.com", "b".repeat(64));
    let long_domain = format!("a@{}.com", vec!["c".repeat(60); 5].join("."));
    let long_total = format!(
        "{}@{}.com",
        "a".repeat(64),
        vec!["c".repeat(63); 3].join(".")
    );
    let invalid: Vec<(&str, IdentifierProblem)> = vec![
        ("no-at-sign", EmailNoAt),
        ("", Empty),
        ("@example.com", EmailLocalPart),
        ("ada@", EmailDomain),
        ("a..b@example.com", EmailLocalPart),
        (".ada@example.com", EmailLocalPart),
        ("ada.@example.com", EmailLocalPart),
        ("\"ada\"@example.com", EmailLocalPart),
        ("a b@example.com", EmailLocalPart),
        ("a(b)@example.com", EmailLocalPart),
        ("a@b@example.com", EmailDomain),
        ("ada@localhost", EmailDomain),
        ("ada@example..com", EmailDomain),
        ("ada@-example.com", EmailDomain),
        ("ada@example-.com", EmailDomain),
        ("ada@example.com.", EmailDomain),
        ("ada@[192.168.0.1]", EmailDomain),
        ("ada@1.2.3.4", EmailDomain),
        ("ada@exa mple.com", EmailDomain),
        ("ada@exa_mple.com", EmailDomain),
        (&long_local, EmailLocalPart),
        (&long_label, EmailDomain),
        (&long_domain, EmailDomain),
        (&long_total, EmailTooLong),
        ("ada\u{200b}@example.com", EmailInvisibleCharacter),
        ("a\u{ad}da@example.com", EmailInvisibleCharacter),
        ("ada@exa\u{202e}mple.com", EmailInvisibleCharacter),
        ("ada@ab--cd.com", EmailDomain),
        ("ada\u{ff20}x@example.com", EmailLocalPart),
        ("ada\u{e000}@example.com", EmailLocalPart),
        ("ada\u{600}@example.com", EmailLocalPart),
    ];
    for (input, want) in invalid {
        let r = n.normalize(&Identifier::email(input));
        assert_eq!(problem(r), want, "{input:?}");
    }
}

#[test]
fn gmail_folding() {
    let n = Normalization::default();
    assert_eq!(
        n.normalize(&Identifier::email("A.Da+x@gmail.com")).unwrap(),
        "a.da+x@gmail.com"
    );
    let g = Normalization {
        gmail_folding: true,
        ..Normalization::default()
    };
    assert_eq!(
        g.normalize(&Identifier::email("A.Da+x@googlemail.com"))
            .unwrap(),
        "ada@gmail.com"
    );
    assert_eq!(
        g.normalize(&Identifier::email("a.da+x@example.com"))
            .unwrap(),
        "a.da+x@example.com"
    );
    assert_eq!(
        problem(g.normalize(&Identifier::email("+x@gmail.com"))),
        IdentifierProblem::EmailEmptyAfterFolding
    );
}

#[test]
fn gmail_folding_stays_idempotent_when_dropping_a_dot_composes() {
    let g = Normalization {
        gmail_folding: true,
        ..Normalization::default()
    };
    // Two Hangul jamo separated by a dot compose once it is dropped.
    let once = g
        .normalize(&Identifier::email("\u{1100}.\u{1161}@gmail.com"))
        .unwrap();
    assert_eq!(once, "\u{AC00}@gmail.com");
    assert_eq!(
        g.normalize(&Identifier::email(once.as_str())).unwrap(),
        once
    );
    // An atom may not start with a combining mark.
    for input in ["e.\u{301}x@gmail.com", "\u{301}a@example.com"] {
        assert_eq!(
            problem(g.normalize(&Identifier::email(input))),
            IdentifierProblem::EmailLocalPart,
            "{input:?}"
        );
    }
}

#[test]
fn legacy_email_forms_where_today_differs() {
    let n = Normalization::default();
    let legacy = |s: &str| {
        let id = Identifier::email(s);
        let now = n.normalize(&id).ok();
        n.legacy_email_form(&id, now.as_deref())
    };
    assert_eq!(legacy(" Ada@Example.com"), None);
    assert_eq!(legacy("José@Bücher.de").as_deref(), Some("josé@bücher.de"));
    assert_eq!(legacy("ada@localhost").as_deref(), Some("ada@localhost"));
    assert_eq!(legacy("a b@example.com"), None, "refused then too");
    assert_eq!(legacy("no-at-sign"), None);
    assert_eq!(
        n.lookup_forms(&Identifier::email("ada@localhost")).unwrap(),
        ["ada@localhost"]
    );
    assert_eq!(
        n.lookup_forms(&Identifier::email("José@Bücher.de"))
            .unwrap(),
        ["josé@xn--bcher-kva.de", "josé@bücher.de"]
    );
    assert!(n.lookup_forms(&Identifier::email("no-at-sign")).is_err());
}

#[test]
fn ids_are_trimmed_and_non_empty() {
    let n = Normalization::default();
    assert_eq!(n.normalize(&Identifier::user_id("  u-1 ")).unwrap(), "u-1");
    assert_eq!(
        problem(n.normalize(&Identifier::device_id("   "))),
        IdentifierProblem::Empty
    );
    assert_eq!(
        problem(n.normalize(&Identifier::user_id("x".repeat(600)))),
        IdentifierProblem::TooLong
    );
}

#[test]
fn configs_written_before_phone_validation_existed_read_as_strict() {
    let old = r#"{"default_region":"GB","gmail_folding":false}"#;
    let n: Normalization = serde_json::from_str(old).unwrap();
    assert_eq!(n.phone_validation, PhoneValidation::Strict);
    let lenient: Normalization =
        serde_json::from_str(r#"{"default_region":"GB","phone_validation":"lenient"}"#).unwrap();
    assert_eq!(lenient.phone_validation, PhoneValidation::Lenient);
}

/// Normalisation is idempotent for random text drawn from the
/// characters that stress it: case pairs whose lower case differs in
/// length (`İ`, `ẞ`), combining marks (NFC), full-width and other
/// UTS 46 mappings, invisible characters, Punycode prefixes, dots, `@`,
/// `+`, digits and phone punctuation. Seeded, so a failure repeats.
#[test]
fn normalisation_is_idempotent_on_random_text() {
    use rand::{Rng, SeedableRng};
    const ALPHABET: &[&str] = &[
        "a",
        "B",
        "z",
        "é",
        "e\u{301}",
        "İ",
        "ẞ",
        "ß",
        "Σ",
        "ς",
        "\u{301}",
        "\u{308}",
        "ｅ",
        "Ａ",
        "１",
        "。",
        ".",
        "..",
        "@",
        "+",
        "-",
        "_",
        "xn--",
        "xn--bcher-kva",
        "例",
        "ü",
        "\u{200b}",
        "\u{ad}",
        " ",
        "0",
        "1",
        "4",
        "7",
        "9",
        "(",
        ")",
        "+1",
        "+44",
        "+49",
        "+31",
        "*",
        "#",
        "ext",
        "x",
        "gmail.com",
        "googlemail.com",
        ".com",
        ".de",
        "ǅ",
        "ﬁ",
        "\u{130}",
        "\u{1E9E}",
        "\u{212A}",
        "\u{FF0E}",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let types = [IdType::Email, IdType::Phone, IdType::UserId];
    let mut normalised = 0;
    for i in 0..60_000 {
        let n = Normalization {
            default_region: ["US", "GB", "DE", "NL"][i % 4].into(),
            gmail_folding: i % 3 == 0,
            phone_validation: if i % 5 == 0 {
                PhoneValidation::Lenient
            } else {
                PhoneValidation::Strict
            },
        };
        let len = rng.gen_range(1..12);
        let text: String = (0..len)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
            .collect();
        let id_type = types[i % types.len()].clone();
        let Ok(once) = n.normalize(&Identifier::new(id_type.clone(), text.as_str())) else {
            continue;
        };
        normalised += 1;
        let twice = n.normalize(&Identifier::new(id_type.clone(), once.as_str()));
        assert_eq!(twice.as_ref().ok(), Some(&once), "{id_type}: {text:?}");
        let found = n.normalize_for_lookup(&Identifier::new(id_type.clone(), once.as_str()));
        assert_eq!(
            found.as_ref().ok(),
            Some(&once),
            "lookup {id_type}: {text:?}"
        );
    }
    assert!(normalised > 5_000, "only {normalised} inputs normalised");
}

/// A number that normalises in strict mode normalises to the same
/// E.164 form in lenient mode and for lookup (valid numbers have one
/// form whatever the mode).
#[test]
fn valid_numbers_have_one_form_in_every_mode() {
    for (region, input, e164) in VALID_PHONES {
        let id = Identifier::phone(*input);
        assert_eq!(strict(region).normalize_for_lookup(&id).unwrap(), *e164);
        assert_eq!(lenient(region).normalize(&id).unwrap(), *e164);
    }
}
