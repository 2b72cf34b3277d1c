//! Synthetic but realistic profiles for the demo and the benchmarks.
//!
//! Profile `i` of seed `s` is a pure function of `(s, i)`, so a checker can
//! regenerate any profile instead of keeping them all in memory. Values have
//! real entropy: names from lists, random digits in emails and phones,
//! house numbers, postcodes, timestamps and amounts drawn at random.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::types::{FieldClass, Schema, Timestamp, Value, ValueKind};

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Amara",
    "Anil",
    "Astrid",
    "Beatriz",
    "Bilal",
    "Camille",
    "Chen",
    "Chiara",
    "Dmitri",
    "Elif",
    "Emeka",
    "Emma",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jana",
    "Javier",
    "Kaito",
    "Kofi",
    "Laila",
    "Lars",
    "Lucia",
    "Mateo",
    "Maya",
    "Mei",
    "Mohammed",
    "Nadia",
    "Niamh",
    "Noah",
    "Olga",
    "Omar",
    "Priya",
    "Quinn",
    "Rafael",
    "Rosa",
    "Sami",
    "Sofia",
    "Sven",
    "Tariq",
    "Thandiwe",
    "Uma",
    "Valentina",
    "Wei",
    "Yara",
    "Yusuf",
    "Zainab",
    "Zoe",
    "Oscar",
    "Leila",
    "Hiroshi",
    "Ingrid",
    "Diego",
    "Fatima",
    "Jonas",
];
const LAST: &[&str] = &[
    "Abara",
    "Andersson",
    "Bauer",
    "Bianchi",
    "Chowdhury",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fernandes",
    "Fischer",
    "Garcia",
    "Gupta",
    "Haddad",
    "Hansen",
    "Ibrahim",
    "Ivanova",
    "Jensen",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Lopez",
    "Mendes",
    "Moreau",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Papadopoulos",
    "Petrov",
    "Quispe",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Urban",
    "Vargas",
    "Wagner",
    "Wojcik",
    "Xu",
    "Yamamoto",
    "Yilmaz",
    "Zhang",
    "Zielinski",
    "O'Brien",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "proton.me",
    "icloud.com",
    "gmx.de",
    "orange.fr",
    "web.de",
    "fastmail.com",
    "example.org",
];
const STREETS: &[&str] = &[
    "Maple", "Oak", "Station", "High", "Church", "Mill", "Park", "Victoria", "Elm", "Bridge",
    "Garden", "King", "Queen", "River", "Lake", "Cedar", "Willow", "Harbour", "Market", "School",
];
const SUFFIX: &[&str] = &[
    "Street", "Road", "Avenue", "Lane", "Way", "Close", "Drive", "Terrace",
];
const CITIES: &[(&str, &str)] = &[
    ("London", "GB"),
    ("Manchester", "GB"),
    ("Berlin", "DE"),
    ("Munich", "DE"),
    ("Paris", "FR"),
    ("Lyon", "FR"),
    ("Madrid", "ES"),
    ("Lisbon", "PT"),
    ("Rome", "IT"),
    ("Milan", "IT"),
    ("Amsterdam", "NL"),
    ("Dublin", "IE"),
    ("Warsaw", "PL"),
    ("Stockholm", "SE"),
    ("Oslo", "NO"),
    ("Austin", "US"),
    ("Seattle", "US"),
    ("Toronto", "CA"),
];
const TAGS: &[&str] = &[
    "vip",
    "newsletter",
    "churn-risk",
    "mobile",
    "b2b",
    "outdoor",
    "books",
    "gaming",
    "travel",
    "beauty",
];
const PLANS: &[&str] = &["free", "basic", "pro", "enterprise"];

/// One generated profile.
#[derive(Clone, Debug)]
pub struct SynthProfile {
    /// Fields to write.
    pub fields: Vec<(String, Value)>,
    /// Distinctive plaintext strings (at least 8 bytes) of its personal
    /// fields, to search the disk for.
    pub needles: Vec<String>,
}

impl SynthProfile {
    /// Size of the profile as a compact JSON object: the plaintext a
    /// plain store would keep.
    pub fn plaintext_bytes(&self) -> usize {
        let map: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        serde_json::Value::Object(map).to_string().len()
    }
}

/// `index` mixed by a bijection of `u32`: unique for every index below 2^32.
fn scramble32(index: u64) -> u32 {
    (index as u32).wrapping_mul(0x9E37_79B1) ^ 0x5bd1_e995
}

/// US area codes that libphonenumber's metadata lists as fixed-line
/// ranges (any exchange 200-999 in them is a valid number), so synthetic
/// phones pass strict validation.
const AREA_CODES: [u64; 32] = [
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224, 225,
    228, 229, 231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260,
];

/// Ten digits of a valid US number (area code from [`AREA_CODES`],
/// exchange 200-999), a bijection of `index` below 256e6.
fn unique_phone_digits(index: u64) -> u64 {
    const PER_AREA: u64 = 8_000_000;
    const SPAN: u64 = 32 * PER_AREA;
    // 7_919 is prime and coprime to SPAN, so multiplication is a bijection.
    let m = (index % SPAN) * 7_919 % SPAN;
    AREA_CODES[(m / PER_AREA) as usize] * 10_000_000 + 2_000_000 + m % PER_AREA
}

/// Identifiers of synthetic person `index`: a user id, the profile's
/// e-mail and phone, and for about half of the people a device id — three
/// or four, all unique to the person.
pub fn identifiers(seed: u64, index: u64, profile: &SynthProfile) -> Vec<crate::Identifier> {
    let text = |name: &str| {
        profile.fields.iter().find_map(|(k, v)| match v {
            Value::String(s) if k == name => Some(s.clone()),
            _ => None,
        })
    };
    let mixed = (index ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = vec![crate::Identifier::user_id(format!("u{:016x}", mixed))];
    out.extend(text("email").map(crate::Identifier::email));
    out.extend(text("phone").map(crate::Identifier::phone));
    if mixed >> 63 == 1 {
        // Another bijection of `mixed`, printed whole: unique as well.
        let d = mixed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        out.push(crate::Identifier::device_id(format!(
            "{:08x}-{:04x}-{:04x}",
            d >> 32,
            (d >> 16) & 0xffff,
            d & 0xffff
        )));
    }
    out
}

/// The schema the synthetic profiles are written under: `plan` and
/// `signup_channel` are non-personal, everything else personal.
pub fn schema() -> Schema {
    Schema::new()
        .field("email", FieldClass::Personal, Some(ValueKind::String))
        .field("phone", FieldClass::Personal, Some(ValueKind::String))
        .field(
            "birth_date",
            FieldClass::Personal,
            Some(ValueKind::Timestamp),
        )
        .field(
            "health_notes",
            FieldClass::Sensitive,
            Some(ValueKind::String),
        )
        .field("plan", FieldClass::NonPersonal, Some(ValueKind::String))
        .field(
            "signup_channel",
            FieldClass::NonPersonal,
            Some(ValueKind::String),
        )
}

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list[rng.gen_range(0..list.len())]
}

/// Profile number `index` for `seed`.
pub fn profile(seed: u64, index: u64) -> SynthProfile {
    let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let first = pick(&mut rng, FIRST);
    let last = pick(&mut rng, LAST);
    // E-mail and phone are unique per index (a bijection of it), with
    // random names and domains around them, so no two synthetic people
    // share an identifier at any scale the benchmarks use.
    let email = format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase().replace('\'', ""),
        scramble32(index),
        pick(&mut rng, DOMAINS)
    );
    let phone = format!("+1{}", unique_phone_digits(index));
    let (city, country) = CITIES[rng.gen_range(0..CITIES.len())];
    let street = format!(
        "{} {} {}",
        rng.gen_range(1..2500),
        pick(&mut rng, STREETS),
        pick(&mut rng, SUFFIX)
    );
    let postcode = format!("{}{:05}", &country[..1], rng.gen_range(0..100_000));
    let full_name = format!("{first} {last}");
    let birth = Timestamp(rng.gen_range(-946_684_800i64..1_167_609_600) * 1_000_000);
    let birth = Timestamp(birth.0.max(0));
    let ntags = rng.gen_range(0..4);
    let tags: Vec<Value> = (0..ntags)
        .map(|_| Value::from(pick(&mut rng, TAGS)))
        .collect();
    let prefs = serde_json::json!({
        "channel": pick(&mut rng, &["email", "sms", "push", "none"]),
        "language": pick(&mut rng, &["en", "de", "fr", "es", "it", "pt", "nl", "sv"]),
        "sizes": {"shoe": rng.gen_range(35..48), "shirt": pick(&mut rng, &["S", "M", "L", "XL"])},
    });
    let address = format!("{street}, {postcode} {city}");
    let fields = vec![
        ("first_name".to_string(), Value::from(first)),
        ("last_name".to_string(), Value::from(last)),
        ("full_name".to_string(), Value::from(full_name.clone())),
        ("email".to_string(), Value::from(email.clone())),
        ("phone".to_string(), Value::from(phone.clone())),
        ("street_address".to_string(), Value::from(address.clone())),
        ("city".to_string(), Value::from(city)),
        ("country".to_string(), Value::from(country)),
        ("birth_date".to_string(), Value::Timestamp(birth)),
        (
            "loyalty_points".to_string(),
            Value::Int(rng.gen_range(0..250_000)),
        ),
        (
            "lifetime_value".to_string(),
            Value::Float(f64::from(rng.gen_range(0u32..5_000_000)) / 100.0),
        ),
        (
            "marketing_opt_in".to_string(),
            Value::Bool(rng.gen_bool(0.4)),
        ),
        ("tags".to_string(), Value::List(tags)),
        ("preferences".to_string(), Value::Json(prefs)),
        ("plan".to_string(), Value::from(pick(&mut rng, PLANS))),
        (
            "signup_channel".to_string(),
            Value::from(pick(&mut rng, &["web", "ios", "android", "store"])),
        ),
    ];
    let needles = [email, phone, address, full_name]
        .into_iter()
        .filter(|s| s.len() >= crate::forensics::MIN_NEEDLE_BYTES)
        .collect();
    SynthProfile { fields, needles }
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_varied() {
        let a = super::profile(1, 5);
        let b = super::profile(1, 5);
        assert_eq!(a.fields, b.fields);
        let emails: std::collections::HashSet<String> = (0..1000)
            .map(|i| super::profile(1, i).needles[0].clone())
            .collect();
        assert!(
            emails.len() > 990,
            "emails should rarely repeat: {}",
            emails.len()
        );
    }

    #[test]
    fn phones_are_unique_and_valid_when_strict() {
        let n = crate::Normalization::default();
        let mut seen = std::collections::HashSet::new();
        // The first indices, the top of the range, and a stride across it.
        let indices: std::collections::BTreeSet<u64> = (0..3_000u64)
            .chain(255_999_000..256_000_000)
            .chain((1..2_000u64).map(|i| i * 127_997))
            .collect();
        for i in indices {
            let text = format!("+1{}", super::unique_phone_digits(i));
            let e164 = n
                .normalize(&crate::Identifier::phone(text.as_str()))
                .unwrap_or_else(|e| panic!("index {i}: {text}: {e}"));
            assert_eq!(e164, text);
            assert!(seen.insert(text), "index {i} repeats a phone");
        }
    }
}
