//! Segment-spec event ingest: `identify`, `alias` and `track` calls as NDJSON.
//!
//! * `identify`: `userId`, `anonymousId`, `context.device.id` and
//!   `traits.email` / `traits.phone` become identifiers; every trait becomes
//!   a field (`null` removes it). `timestamp` must be RFC 3339 when present
//!   and `messageId` a string; they are validated but not stored.
//! * `alias`: links `previousId` to `userId` ([`crate::Db::alias`]).
//! * `track`, `page`, `screen`, `group`: identifiers only (resolve and
//!   attach); event payloads are not stored.
//! * On any call, `context.consent.categoryPreferences` (`{"Advertising":
//!   true, ...}`) becomes consent records (granted / denied, basis consent,
//!   source `segment`, proof the `messageId`), written atomically with the
//!   call. Categories map to built-in purposes where one fits
//!   (`advertising` → `ads_targeting`, `analytics`, `personalization`,
//!   `email` → `email_marketing`, `sms` → `sms_marketing`, `sale_or_share`);
//!   others become `segment:<Category>`.
//! * On any call, `context.gpp` (an IAB GPP string, OpenRTB's name for it;
//!   also read at `context.consent.gpp` and `context.consent.gppString`)
//!   and `context.gpc` (`true` when the browser sent Global Privacy
//!   Control; also `context.consent.gpc`, `context.globalPrivacyControl`)
//!   become the records [`crate::Db::record_us_signals`] writes
//!   (`sale_or_share`, `ads_targeting`, `sensitive:*`, `tcf:*`), at the
//!   call's `timestamp`. Where they and the category preferences speak of
//!   one purpose, the refusal wins. A GPP string that does not decode
//!   fails the call; one with no section lethedb maps adds nothing.

use crate::domain::consent::{ConsentRecord, ConsentStatus};
use crate::domain::identity::Identifier;
use crate::domain::profiles::Update;
use crate::error::{Error, Result};
use crate::types::{Schema, Timestamp, Value};
use crate::{Db, ResolveOutcome};

/// One parsed Segment call.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `identify` (and `track`/`page`/`screen`/`group`, with no traits).
    Identify {
        /// Identifiers found in the call.
        identifiers: Vec<Identifier>,
        /// Traits as a field update.
        traits: Update,
        /// Consent records from `context.consent.categoryPreferences`.
        consents: Vec<ConsentRecord>,
    },
    /// `alias`.
    Alias {
        /// The earlier id.
        previous_id: String,
        /// The user id it becomes.
        user_id: String,
        /// Consent records from `context.consent.categoryPreferences`.
        consents: Vec<ConsentRecord>,
    },
}

fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidInput(reason.into())
}

fn opt_str<'a>(v: &'a serde_json::Value, key: &str) -> Result<Option<&'a str>> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("{key} must be a string"))),
    }
}

/// Parses one NDJSON line. Errors name what was wrong (never the values).
///
/// ```
/// use lethedb::ingest::{parse_event, Event};
/// let e = parse_event(&lethedb::Schema::new(), r#"{"type":"identify","userId":"u1","traits":{"email":"a@example.com","plan":"pro"}}"#)?;
/// let Event::Identify { identifiers, .. } = e else { unreachable!() };
/// assert_eq!(identifiers.len(), 2);
/// Ok::<_, lethedb::Error>(())
/// ```
pub fn parse_event(schema: &Schema, line: &str) -> Result<Event> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| bad(format!("bad JSON: {e}")))?;
    if !v.is_object() {
        return Err(bad("expected a JSON object"));
    }
    let kind = opt_str(&v, "type")?.ok_or_else(|| bad("missing \"type\""))?;
    let timestamp = match opt_str(&v, "timestamp")? {
        Some(ts) => {
            Some(Timestamp::parse_rfc3339(ts).map_err(|_| bad("timestamp is not RFC 3339"))?)
        }
        None => None,
    };
    let message_id = opt_str(&v, "messageId")?;
    let mut consents = category_preferences(&v, timestamp, message_id)?;
    us_signals(&v, timestamp, &mut consents)?;
    let user_id = opt_str(&v, "userId")?;
    let anonymous_id = opt_str(&v, "anonymousId")?;
    match kind {
        "alias" => {
            let previous_id =
                opt_str(&v, "previousId")?.ok_or_else(|| bad("alias without previousId"))?;
            let user_id = user_id.ok_or_else(|| bad("alias without userId"))?;
            Ok(Event::Alias {
                previous_id: previous_id.to_string(),
                user_id: user_id.to_string(),
                consents,
            })
        }
        "identify" | "track" | "page" | "screen" | "group" => {
            if user_id.is_none() && anonymous_id.is_none() {
                return Err(bad(format!("{kind} without userId or anonymousId")));
            }
            let mut identifiers = Vec::new();
            if let Some(u) = user_id {
                identifiers.push(Identifier::user_id(u));
            }
            if let Some(a) = anonymous_id {
                identifiers.push(Identifier::anonymous_id(a));
            }
            if let Some(device) = v.pointer("/context/device/id") {
                match device {
                    serde_json::Value::String(d) => identifiers.push(Identifier::device_id(d)),
                    serde_json::Value::Null => {}
                    _ => return Err(bad("context.device.id must be a string")),
                }
            }
            let mut traits = Update::new();
            if kind == "identify" {
                match v.get("traits") {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::Object(map)) => {
                        for (name, value) in map {
                            match (name.as_str(), value) {
                                ("email", serde_json::Value::String(s)) => {
                                    identifiers.push(Identifier::email(s))
                                }
                                ("phone", serde_json::Value::String(s)) => {
                                    identifiers.push(Identifier::phone(s))
                                }
                                _ => {}
                            }
                            if value.is_null() {
                                traits = traits.remove(name.clone());
                            } else {
                                let kind = schema.spec(name).kind;
                                let value = Value::from_json(name, value.clone(), kind)?;
                                traits = traits.set(name.clone(), value);
                            }
                        }
                    }
                    Some(_) => return Err(bad("traits must be an object")),
                }
            }
            Ok(Event::Identify {
                identifiers,
                traits,
                consents,
            })
        }
        other => Err(bad(format!(
            "unsupported type {:?}",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

/// Maps a Segment consent category to a purpose id.
pub fn category_purpose(category: &str) -> String {
    match category.to_lowercase().as_str() {
        "advertising" | "ads" | "ads_targeting" => "ads_targeting".into(),
        "analytics" => "analytics".into(),
        "personalization" | "personalisation" => "personalization".into(),
        "email" | "email_marketing" => "email_marketing".into(),
        "sms" | "sms_marketing" => "sms_marketing".into(),
        "sale_or_share" | "do_not_sell" | "do_not_sell_or_share" => "sale_or_share".into(),
        _ => format!("segment:{category}"),
    }
}

fn category_preferences(
    v: &serde_json::Value,
    timestamp: Option<Timestamp>,
    message_id: Option<&str>,
) -> Result<Vec<ConsentRecord>> {
    let prefs = match v.pointer("/context/consent/categoryPreferences") {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => return Err(bad("context.consent.categoryPreferences must be an object")),
    };
    let mut out = Vec::new();
    for (category, value) in prefs {
        let serde_json::Value::Bool(granted) = value else {
            return Err(bad("categoryPreferences values must be true or false"));
        };
        if category.is_empty() || category.len() > 128 {
            return Err(bad("consent category names must be 1 to 128 bytes"));
        }
        // An opt-out category says the opposite of a grant: `do_not_sell:
        // true` is a refusal of sale, never a grant of it.
        let lower = category.to_lowercase();
        let opt_out = lower == "do_not_sell" || lower == "do_not_sell_or_share";
        let status = if *granted != opt_out {
            ConsentStatus::Granted
        } else {
            ConsentStatus::Denied
        };
        let purpose = category_purpose(category);
        // Two categories of one call that map to the same purpose (say
        // `Advertising` and `ads`) give one record, the more restrictive:
        // a call never grants what it also refuses.
        if let Some(same) = out
            .iter_mut()
            .find(|r: &&mut ConsentRecord| r.purpose == purpose)
        {
            if status != ConsentStatus::Granted {
                same.status = status;
            }
            continue;
        }
        let mut r = ConsentRecord::new(purpose, status).source("segment");
        if let Some(t) = timestamp {
            r = r.at(t);
        }
        if let Some(m) = message_id {
            r = r.proof(format!("segment:messageId:{m}"));
        }
        out.push(r);
    }
    Ok(out)
}

/// `context.gpp` and `context.gpc` as records, merged into `out` (a
/// refusal replaces a grant of the same purpose, never the reverse).
fn us_signals(
    v: &serde_json::Value,
    timestamp: Option<Timestamp>,
    out: &mut Vec<ConsentRecord>,
) -> Result<()> {
    // The first of the places senders put them that is present.
    let first = |paths: &[&'static str]| -> Option<&serde_json::Value> {
        paths
            .iter()
            .find_map(|p| v.pointer(p).filter(|x| !x.is_null()))
    };
    let gpp = match first(&[
        "/context/gpp",
        "/context/consent/gpp",
        "/context/consent/gppString",
    ]) {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(bad("context.gpp must be a string")),
    };
    let gpc = match first(&[
        "/context/gpc",
        "/context/consent/gpc",
        "/context/globalPrivacyControl",
    ]) {
        None => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(bad("context.gpc must be true or false")),
    };
    let at = timestamp.unwrap_or_else(Timestamp::now);
    for r in crate::domain::consent::gpp::signal_records(gpp, gpc, at)? {
        match out.iter_mut().find(|o| o.purpose == r.purpose) {
            Some(o) if r.status != ConsentStatus::Granted => *o = r,
            Some(_) => {}
            None => out.push(r),
        }
    }
    Ok(())
}

/// Applies one event; each event is one atomic write.
pub fn apply_event(db: &Db, event: Event) -> Result<ResolveOutcome> {
    match event {
        Event::Identify {
            identifiers,
            traits,
            consents,
        } => db.resolve_with_consents(&identifiers, traits, &consents),
        Event::Alias {
            previous_id,
            user_id,
            consents,
        } => db.alias_with_consents(&previous_id, &user_id, &consents),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segment_calls() {
        let s = Schema::new();
        let e = parse_event(
            &s,
            r#"{"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m","timestamp":"2024-01-01T00:00:00Z",
               "context":{"device":{"id":"d1"}},"traits":{"email":"A@x.com","phone":"+14155550100","age":3,"gone":null}}"#,
        )
        .unwrap();
        let Event::Identify {
            identifiers,
            traits,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(identifiers.len(), 5);
        assert_eq!(traits.len(), 4);
        assert_eq!(
            parse_event(&s, r#"{"type":"alias","previousId":"a1","userId":"u1"}"#).unwrap(),
            Event::Alias {
                previous_id: "a1".into(),
                user_id: "u1".into(),
                consents: Vec::new(),
            }
        );
        let Event::Identify {
            identifiers,
            traits,
            ..
        } = parse_event(
            &s,
            r#"{"type":"track","anonymousId":"a9","event":"x","traits":{"email":"no@x.com"}}"#,
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (identifiers.len(), traits.len()),
            (1, 0),
            "track takes identifiers only"
        );
    }

    #[test]
    fn category_preferences_become_consents() {
        let e = parse_event(
            &Schema::new(),
            r#"{"type":"track","userId":"u","messageId":"m-1","timestamp":"2024-02-03T04:05:06Z",
               "context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false,"Functional":true}}}}"#,
        )
        .unwrap();
        let Event::Identify { consents, .. } = e else {
            panic!()
        };
        let got: Vec<(String, ConsentStatus)> = consents
            .iter()
            .map(|c| (c.purpose.clone(), c.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ads_targeting".to_string(), ConsentStatus::Granted),
                ("analytics".to_string(), ConsentStatus::Denied),
                ("segment:Functional".to_string(), ConsentStatus::Granted),
            ]
        );
        assert_eq!(consents[0].proof.as_deref(), Some("segment:messageId:m-1"));
        assert_eq!(
            consents[0].timestamp,
            Timestamp::parse_rfc3339("2024-02-03T04:05:06Z").unwrap()
        );
        assert!(parse_event(
            &Schema::new(),
            r#"{"type":"track","userId":"u","context":{"consent":{"categoryPreferences":{"A":"yes"}}}}"#
        )
        .is_err());
    }

    #[test]
    fn rejects_malformed_calls_with_reasons() {
        let s = Schema::new();
        for (line, want) in [
            ("{", "bad JSON"),
            ("[]", "object"),
            (r#"{"userId":"u"}"#, "type"),
            (r#"{"type":"identify"}"#, "without userId"),
            (r#"{"type":"alias","userId":"u"}"#, "previousId"),
            (r#"{"type":"identify","userId":5}"#, "string"),
            (
                r#"{"type":"identify","userId":"u","timestamp":"yesterday"}"#,
                "RFC 3339",
            ),
            (r#"{"type":"identify","userId":"u","traits":[]}"#, "traits"),
            (r#"{"type":"explode","userId":"u"}"#, "unsupported"),
        ] {
            match parse_event(&s, line) {
                Err(Error::InvalidInput(msg)) => assert!(msg.contains(want), "{line}: {msg}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn opt_out_categories_and_conflicts_never_grant() {
        let s = Schema::new();
        let consents = |prefs: &str| -> Vec<(String, ConsentStatus)> {
            let line = format!(
                r#"{{"type":"identify","userId":"u1","context":{{"consent":{{"categoryPreferences":{prefs}}}}}}}"#
            );
            let Event::Identify { consents, .. } = parse_event(&s, &line).unwrap() else {
                panic!("not an identify")
            };
            consents
                .into_iter()
                .map(|r| (r.purpose, r.status))
                .collect()
        };
        let sale = |st| vec![("sale_or_share".to_string(), st)];
        // do_not_sell: true refuses sale; false allows it.
        assert_eq!(
            consents(r#"{"do_not_sell":true}"#),
            sale(ConsentStatus::Denied)
        );
        assert_eq!(
            consents(r#"{"Do_Not_Sell":false}"#),
            sale(ConsentStatus::Granted)
        );
        assert_eq!(
            consents(r#"{"sale_or_share":true}"#),
            sale(ConsentStatus::Granted)
        );
        // Two categories, one purpose, opposite answers: refused, whatever
        // the order of the keys.
        for prefs in [
            r#"{"advertising":true,"ads":false}"#,
            r#"{"ads":false,"advertising":true}"#,
            r#"{"Advertising":false,"ads_targeting":true}"#,
        ] {
            assert_eq!(
                consents(prefs),
                vec![("ads_targeting".to_string(), ConsentStatus::Denied)],
                "{prefs}"
            );
        }
        assert_eq!(
            consents(r#"{"sale_or_share":true,"do_not_sell":true}"#),
            sale(ConsentStatus::Denied)
        );
    }
}
