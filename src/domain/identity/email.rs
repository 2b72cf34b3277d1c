//! The e-mail address grammar identifiers are checked against: RFC 5322
//! dot-atom local parts widened by RFC 6531, and domains in their UTS #46
//! (IDNA) ASCII form.

/// `atext` of RFC 5322 §3.2.3, widened by RFC 6531 to every non-ASCII
/// character that is not white space or a control character.
/// Not accepted even so: format characters that are not default-ignorable
/// (Arabic number signs, Egyptian hieroglyph controls, interlinear
/// annotation), private-use and non-characters, and look-alikes of `@`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii()
            && !c.is_whitespace()
            && !c.is_control()
            && !matches!(c as u32,
                0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x110BD
                | 0x110CD | 0x13430..=0x1343F | 0xFFF9..=0xFFFB
                | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFDD0..=0xFDEF
                | 0xFFFE..=0xFFFF | 0xFF20 | 0xFE6B))
}

/// A dot-atom local part (no quoted strings), 1 to 64 bytes; no atom
/// starts with a combining mark (it would combine with the character before
/// the dot once Gmail folding drops the dot).
pub(super) fn valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            atom.chars().all(is_atext)
                && atom
                    .chars()
                    .next()
                    .is_some_and(|c| !unicode_normalization::char::is_combining_mark(c))
        })
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties
/// 15.1): characters that render as nothing — zero-width spaces and
/// joiners, soft hyphen, bidi controls, variation selectors, tags.
pub(super) fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// The domain in its canonical ASCII form: UTS 46 processing (IDNA 2008,
/// STD3 rules, hyphen checks, DNS lengths) maps an internationalised name
/// to Punycode A-labels, so `bücher.de`, `BÜCHER.de` and `xn--bcher-kva.de`
/// are one domain. Then: two or more labels, the last not all digits (no
/// IP address). `None` when it is not a host name.
pub(super) fn canonical_domain(domain: &str) -> Option<String> {
    if domain.ends_with('.') {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let host = ascii.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    host.then_some(ascii)
}
