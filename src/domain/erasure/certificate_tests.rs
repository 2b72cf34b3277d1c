//! Tests of certificate signing, formats and verification (`certificate.rs`).

use super::*;
use serde_json::{json, Value};

fn sample() -> Certificate {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    Certificate {
        format: CERT_FORMAT.into(),
        store_id: "00112233445566778899aabbccddeeff".into(),
        erasure_id: 42,
        subject_ref: "ab".repeat(32),
        scope: "profile".into(),
        fields: vec!["email".into(), "naïve/field".into()],
        profiles_erased: 2,
        key_ids_destroyed: vec!["cd".repeat(16), "ef".repeat(16)],
        index_entries_removed: 3,
        consent_records_removed: 4,
        suppressed_identifiers: 1,
        requested_at: "2026-11-29T10:00:00.000000Z".into(),
        purged_at: "2026-11-29T10:00:01.500000Z".into(),
        root_epoch_destroyed: 5,
        root_epochs_destroyed: vec![4, 5],
        root_epoch: 6,
        root_destroyed_in: Some("file /var/lib/crm.rootkeys epoch 5".into()),
        backups_rekeyed: 1,
        backups_invalidated: 0,
        erasure_audit_seq: 17,
        audit_seq: 18,
        audit_head: "12".repeat(32),
        purge_bytes_rewritten: 1_234_567,
        public_key: crate::hex::encode(&key.verifying_key().to_bytes()),
    }
}

fn signer() -> (Signer, [u8; 32]) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let pk = key.verifying_key().to_bytes();
    (Signer { key }, pk)
}

/// Rewrites a JSON value with object members in reverse order.
fn reversed(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let members: Vec<String> = m
                .iter()
                .rev()
                .map(|(k, v)| format!("{} : {}", json!(k), reversed(v)))
                .collect();
            format!("{{ {} }}", members.join(" ,\n "))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(reversed).collect();
            format!("[ {} ]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// Every way of changing one value of the body (and the signature).
fn single_value_changes(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let Value::Object(doc) = v else {
        return out;
    };
    for (section, inner) in doc {
        match inner {
            Value::Object(body) => {
                for (k, leaf) in body {
                    let mut changed = Vec::new();
                    match leaf {
                        Value::String(s) => {
                            changed.push(json!(format!("{s}x")));
                            let mut t: Vec<char> = s.chars().collect();
                            if let Some(c) = t.first_mut() {
                                *c = if *c == '1' { '2' } else { '1' };
                            }
                            changed.push(json!(t.into_iter().collect::<String>()));
                        }
                        Value::Number(n) => {
                            let n = n.as_u64().unwrap_or(0);
                            changed.push(json!(n + 1));
                            changed.push(json!(n.saturating_sub(1).max(n ^ 1)));
                        }
                        Value::Array(a) => {
                            let mut longer = a.clone();
                            longer.push(a.first().cloned().unwrap_or(json!("x")));
                            changed.push(Value::Array(longer));
                            if !a.is_empty() {
                                changed.push(Value::Array(a[1..].to_vec()));
                                let mut rev = a.clone();
                                rev.reverse();
                                if rev != *a {
                                    changed.push(Value::Array(rev));
                                }
                            }
                        }
                        other => panic!("unexpected {other}"),
                    }
                    for c in changed {
                        let mut d = v.clone();
                        d[section][k] = c;
                        out.push(d);
                    }
                }
            }
            Value::String(sig) => {
                let mut d = v.clone();
                let flipped = if sig.starts_with('0') { "1" } else { "0" };
                d[section] = json!(format!("{flipped}{}", &sig[1..]));
                out.push(d);
            }
            other => panic!("unexpected {other}"),
        }
    }
    out
}

#[test]
fn issued_text_is_the_jcs_form_and_verifies() {
    let (s, pk) = signer();
    let text = s.sign(&sample()).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json_canonicalizer::to_string(&v).unwrap(), text);
    let check = verify_certificate(&text, &pk).unwrap();
    assert_eq!(check.certificate, sample());
}

/// The canonical form written out by hand from RFC 8785 (members sorted
/// by code unit, no white space, UTF-8 as is, `/` unescaped, integers
/// in shortest form), not from the canonicaliser under test.
#[test]
fn canonical_bytes_match_rfc_8785_by_hand() {
    let (s, pk) = signer();
    let c = sample();
    let body = format!(
        concat!(
            r#"{{"audit_head":"{head}","audit_seq":18,"backups_invalidated":0,"#,
            r#""backups_rekeyed":1,"consent_records_removed":4,"erasure_audit_seq":17,"#,
            r#""erasure_id":42,"fields":["email","naïve/field"],"#,
            r#""format":"lethedb-erasure-certificate/4","index_entries_removed":3,"#,
            r#""key_ids_destroyed":["{k1}","{k2}"],"profiles_erased":2,"#,
            r#""public_key":"{pk}","purge_bytes_rewritten":1234567,"#,
            r#""purged_at":"2026-11-29T10:00:01.500000Z","#,
            r#""requested_at":"2026-11-29T10:00:00.000000Z","#,
            r#""root_destroyed_in":"file /var/lib/crm.rootkeys epoch 5","root_epoch":6,"#,
            r#""root_epoch_destroyed":5,"root_epochs_destroyed":[4,5],"scope":"profile","#,
            r#""store_id":"00112233445566778899aabbccddeeff","subject_ref":"{subject}","#,
            r#""suppressed_identifiers":1}}"#
        ),
        head = "12".repeat(32),
        k1 = "cd".repeat(16),
        k2 = "ef".repeat(16),
        pk = crate::hex::encode(&pk),
        subject = "ab".repeat(32),
    );
    let text = s.sign(&c).unwrap();
    let sig_hex = text
        .rsplit_once(r#","signature":""#)
        .and_then(|(_, t)| t.strip_suffix(r#""}"#))
        .expect("signature member last");
    assert_eq!(
        text,
        format!(r#"{{"certificate":{body},"signature":"{sig_hex}"}}"#)
    );
    // The signature is Ed25519 over the context and those bytes.
    let mut msg = b"lethedb/certificate/v3".to_vec();
    msg.extend_from_slice(body.as_bytes());
    let sig: [u8; 64] = crate::hex::decode(sig_hex).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&pk)
        .unwrap()
        .verify_strict(&msg, &Signature::from_bytes(&sig))
        .unwrap();
}

#[test]
fn reserialised_certificates_still_verify() {
    let (s, pk) = signer();
    let text = s.sign(&sample()).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let forms = [
        serde_json::to_string_pretty(&v).unwrap(),
        // Python's json.dump default separators.
        text.replace("\",\"", "\", \"")
            .replace("\":", "\": ")
            .replace(",\"", ", \""),
        reversed(&v),
        // Other escapes of the same characters.
        text.replace("naïve\\/field", "na\\u00efve\\/field")
            .replace("naïve/field", "na\\u00efve\\/field")
            .replace("\"email\"", "\"\\u0065mail\""),
        format!("\n\t{text}\r\n "),
    ];
    for (i, form) in forms.iter().enumerate() {
        assert_ne!(form, &text, "form {i} is not a re-serialisation");
        verify_certificate(form, &pk).unwrap_or_else(|e| panic!("form {i} failed: {e}\n{form}"));
    }
}

#[test]
fn any_single_changed_value_fails() {
    let (s, pk) = signer();
    let text = s.sign(&sample()).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let changes = single_value_changes(&v);
    assert!(changes.len() > 40, "{}", changes.len());
    for d in changes {
        for form in [d.to_string(), serde_json::to_string_pretty(&d).unwrap()] {
            assert!(
                verify_certificate(&form, &pk).is_err(),
                "changed certificate verified: {form}"
            );
        }
    }
    // Added, removed and repeated members.
    let mut added = v.clone();
    added["certificate"]["note"] = json!("x");
    let mut removed = v.clone();
    removed["certificate"]
        .as_object_mut()
        .unwrap()
        .remove("fields");
    let repeated = text.replacen(
        "\"erasure_id\":42",
        "\"erasure_id\":42,\"erasure_id\":43",
        1,
    );
    assert_ne!(repeated, text);
    for form in [added.to_string(), removed.to_string(), repeated] {
        assert!(matches!(
            verify_certificate(&form, &pk),
            Err(Error::InvalidCertificate(_))
        ));
    }
}

#[test]
fn integers_beyond_two_to_the_53_are_not_signed() {
    let (s, pk) = signer();
    let mut c = sample();
    c.purge_bytes_rewritten = MAX_EXACT_INTEGER + 1;
    assert!(s.sign(&c).is_err());
    c.purge_bytes_rewritten = MAX_EXACT_INTEGER;
    let text = s.sign(&c).unwrap();
    verify_certificate(&text, &pk).unwrap();
    // A value one past the limit rounds to the same double as a signed
    // value would: refused, not verified.
    let past = text.replace("9007199254740991", "9007199254740993");
    assert_ne!(past, text);
    assert!(verify_certificate(&past, &pk).is_err());
}

#[test]
fn format_2_certificates_still_verify_and_fail_on_changes() {
    // A `/2` certificate as earlier builds issued it: compact JSON in
    // field order, signed over the v1 context.
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let pk = key.verifying_key().to_bytes();
    let mut c = sample();
    c.format = CERT_FORMAT_V2.into();
    c.root_destroyed_in = None;
    c.public_key = crate::hex::encode(&pk);
    let mut msg = b"lethedb/certificate/v1".to_vec();
    msg.extend_from_slice(&serde_json::to_vec(&c).unwrap());
    let sig = key.sign(&msg);
    let text = serde_json::to_string(&Signed {
        certificate: c.clone(),
        signature: crate::hex::encode(&sig.to_bytes()),
    })
    .unwrap();
    assert!(text.starts_with("{\"certificate\":{\"format\":\"lethedb-erasure-certificate/2\""));
    assert_eq!(verify_certificate(&text, &pk).unwrap().certificate, c);
    let v: Value = serde_json::from_str(&text).unwrap();
    verify_certificate(&serde_json::to_string_pretty(&v).unwrap(), &pk).unwrap();
    verify_certificate(&reversed(&v), &pk).unwrap();
    for d in single_value_changes(&v) {
        assert!(verify_certificate(&d.to_string(), &pk).is_err(), "{d}");
    }
    // A /2 body signed under the /3 rules does not pass as /2, nor the reverse.
    let (s3, pk3) = signer();
    let mut as3 = sample();
    as3.format = CERT_FORMAT_V2.into();
    as3.root_destroyed_in = None;
    let forged = s3.sign(&as3).unwrap();
    assert!(verify_certificate(&forged, &pk3).is_err());
}

/// The `verify_certificate` fuzz corpus holds certificates this module
/// signs with the fuzz key; `LETHEDB_WRITE_CORPUS=1` rewrites them.
#[test]
fn fuzz_corpus_seeds_are_current() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/verify_certificate");
    let key = SigningKey::from_bytes(&crate::fuzz_support::CERTIFICATE_FUZZ_SECRET);
    let mut c = sample();
    c.public_key = crate::hex::encode(&key.verifying_key().to_bytes());
    let v4 = Signer { key: key.clone() }.sign(&c).unwrap();
    let mut c3 = c.clone();
    c3.format = CERT_FORMAT_V3.into();
    c3.root_destroyed_in = None;
    let v3 = Signer { key: key.clone() }.sign(&c3).unwrap();
    let mut c2 = c3.clone();
    c2.format = CERT_FORMAT_V2.into();
    let mut msg = SIGN_CONTEXT_V2.to_vec();
    msg.extend_from_slice(&serde_json::to_vec(&c2).unwrap());
    let v2 = serde_json::to_string(&Signed {
        certificate: c2,
        signature: crate::hex::encode(&key.sign(&msg).to_bytes()),
    })
    .unwrap();
    for (name, text) in [("v4_signed", v4), ("v3_signed", v3), ("v2_signed", v2)] {
        let path = dir.join(name);
        if std::env::var_os("LETHEDB_WRITE_CORPUS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{name}");
        verify_certificate(&text, &key.verifying_key().to_bytes()).unwrap();
    }
}

#[test]
fn format_4_requires_the_root_location_and_earlier_formats_refuse_it() {
    let (s, pk) = signer();
    let mut c = sample();
    c.root_destroyed_in = None;
    assert!(verify_certificate(&s.sign(&c).unwrap(), &pk).is_err());
    c.format = CERT_FORMAT_V3.into();
    verify_certificate(&s.sign(&c).unwrap(), &pk).unwrap();
    c.root_destroyed_in = Some("file x epoch 1".into());
    assert!(verify_certificate(&s.sign(&c).unwrap(), &pk).is_err());
}
