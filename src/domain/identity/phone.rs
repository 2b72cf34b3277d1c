//! Phone numbers: regions and full-number validation against
//! libphonenumber's metadata (the `phonenumber` crate's own check accepts
//! a number when a prefix matches).

use crate::error::{Error, Result};

pub(crate) fn parse_region(region: &str) -> Result<phonenumber::country::Id> {
    region.trim().to_ascii_uppercase().parse().map_err(|_| {
        Error::InvalidInput(format!(
            "unknown region {region:?}: expected an ISO 3166-1 alpha-2 code such as US"
        ))
    })
}

/// libphonenumber's validity check, exactly: the `phonenumber` port's
/// `is_valid` only requires a type's pattern to match at the *start* of the
/// national number and the length to be one the region allows, so a valid
/// 9-digit Dutch mobile padded with two digits (11 is an allowed Dutch
/// length) passes it. libphonenumber requires the whole number to match
/// (`matchesEntirely`). This runs the same descriptors anchored at both
/// ends: the general description and one type description (premium rate,
/// toll free, shared cost, VoIP, personal, pager, UAN, voicemail, fixed
/// line, mobile) must match the whole national number at an allowed length,
/// in some region of the number's country code.
pub(super) fn valid_number(number: &phonenumber::PhoneNumber) -> bool {
    use phonenumber::metadata::{Descriptor, DATABASE};
    if !phonenumber::is_valid(number) {
        return false;
    }
    let national = number.national().to_string();
    let whole = |d: &Descriptor| {
        (d.possible_length().is_empty() || d.possible_length().contains(&(national.len() as u16)))
            && matches_entirely(d.national_number().as_str(), &national)
    };
    let Some(regions) = DATABASE.by_code(&number.code().value()) else {
        return false;
    };
    regions.into_iter().any(|meta| {
        let d = meta.descriptors();
        whole(d.general())
            && [
                d.premium_rate(),
                d.toll_free(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
                d.fixed_line(),
                d.mobile(),
            ]
            .into_iter()
            .flatten()
            .any(whole)
    })
}

/// Whether `pattern` (a libphonenumber metadata pattern, white space
/// insignificant) matches all of `text`. Compiled patterns are cached: the
/// metadata holds a bounded set of them.
fn matches_entirely(pattern: &str, text: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock};
    type Cache = parking_lot::RwLock<HashMap<String, Option<Arc<regex::Regex>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let cached = cache.read().get(pattern).cloned();
    let compiled = match cached {
        Some(c) => c,
        None => {
            let c = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .ignore_whitespace(true)
                .build()
                .ok()
                .map(Arc::new);
            cache.write().insert(pattern.to_string(), c.clone());
            c
        }
    };
    // A pattern that does not compile matches nothing (refuse, never guess).
    compiled.is_some_and(|re| re.is_match(text))
}
