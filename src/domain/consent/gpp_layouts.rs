//! The core-segment layouts of the GPP US sections (`usnat` versions 1
//! and 2, `usca`, `usva`, `usco`, `usut`, `usct`) and the `sensitive:`
//! purpose each sensitive-data category maps to, from the IAB
//! specifications ("US National Privacy Technical Specification", the
//! MSPA US National specification, and the state specifications).

/// How one field of a section is encoded.
#[derive(Clone, Copy)]
pub(super) enum Width {
    /// An unsigned integer of this many bits.
    Int(usize),
    /// This many 2-bit values.
    List(usize),
}

/// A US section's core segment: its fields in order (IAB GPP "US National
/// Privacy Technical Specification" and the state specifications).
pub(super) struct Layout {
    pub(super) name: &'static str,
    pub(super) id: u16,
    pub(super) jurisdiction: &'static str,
    pub(super) version: u64,
    pub(super) fields: &'static [(&'static str, Width)],
    /// `true`: sensitive data is opt-in (1 = no consent, 2 = consent);
    /// `false`: opt-out (1 = opted out, 2 = did not opt out).
    pub(super) sensitive_opt_in: bool,
    /// The `sensitive:` purpose each sensitive-data index maps to; an
    /// index standing for several categories maps to each.
    pub(super) sensitive: &'static [&'static [&'static str]],
    /// Whether the section defines the GPC sub-segment.
    pub(super) gpc: bool,
}

const N2: Width = Width::Int(2);
const VERSION: (&str, Width) = ("Version", Width::Int(6));
const MSPA: [(&str, Width); 3] = [
    ("MspaCoveredTransaction", N2),
    ("MspaOptOutOptionMode", N2),
    ("MspaServiceProviderMode", N2),
];

macro_rules! fields {
    ($($name:literal : $w:expr),* ; mspa) => {
        &[VERSION, $(($name, $w),)* MSPA[0], MSPA[1], MSPA[2]]
    };
}

/// usnat's core segment: 12 or 16 sensitive categories, 2 or 3
/// known-child consents (versions 1 and 2).
macro_rules! usnat_fields {
    ($sensitive:expr, $child:expr) => {
        fields!("SharingNotice": N2, "SaleOptOutNotice": N2, "SharingOptOutNotice": N2,
            "TargetedAdvertisingOptOutNotice": N2, "SensitiveDataProcessingOptOutNotice": N2,
            "SensitiveDataLimitUseNotice": N2, "SaleOptOut": N2, "SharingOptOut": N2,
            "TargetedAdvertisingOptOut": N2, "SensitiveDataProcessing": Width::List($sensitive),
            "KnownChildSensitiveDataConsents": Width::List($child), "PersonalDataConsents": N2; mspa)
    };
}

/// Virginia's core segment, which Colorado and Connecticut share with
/// other numbers of sensitive categories and known-child consents.
macro_rules! va_like_fields {
    ($sensitive:expr, $child:expr) => {
        fields!("SharingNotice": N2, "SaleOptOutNotice": N2,
            "TargetedAdvertisingOptOutNotice": N2, "SaleOptOut": N2,
            "TargetedAdvertisingOptOut": N2, "SensitiveDataProcessing": Width::List($sensitive),
            "KnownChildSensitiveDataConsents": $child; mspa)
    };
}

const RACE: &str = "sensitive:racial_or_ethnic_origin";
const RELIGION: &str = "sensitive:religious_beliefs";
const HEALTH: &str = "sensitive:health";
const SEX: &str = "sensitive:sex_life_or_orientation";
const CITIZENSHIP: &str = "sensitive:citizenship_or_immigration";
const GENETIC: &str = "sensitive:genetic";
const BIOMETRIC: &str = "sensitive:biometric";
const GEOLOCATION: &str = "sensitive:precise_geolocation";
const GOVERNMENT_ID: &str = "sensitive:government_id";
const FINANCIAL: &str = "sensitive:financial_account";
const UNION: &str = "sensitive:union_membership";
const COMMUNICATIONS: &str = "sensitive:communications_contents";
const CONSUMER_HEALTH: &str = "sensitive:consumer_health";
const CRIME_VICTIM: &str = "sensitive:crime_victim_status";
const NATIONAL_ORIGIN: &str = "sensitive:national_origin";
const TRANS: &str = "sensitive:transgender_or_nonbinary";

/// The `sensitive:` purposes GPP sections map to (also built-in purposes).
pub const SENSITIVE_PURPOSES: &[&str] = &[
    RACE,
    RELIGION,
    HEALTH,
    SEX,
    CITIZENSHIP,
    GENETIC,
    BIOMETRIC,
    GEOLOCATION,
    GOVERNMENT_ID,
    FINANCIAL,
    UNION,
    COMMUNICATIONS,
    CONSUMER_HEALTH,
    CRIME_VICTIM,
    NATIONAL_ORIGIN,
    TRANS,
];

const USNAT_SENSITIVE_V2: &[&[&str]] = &[
    &[RACE],
    &[RELIGION],
    &[HEALTH],
    &[SEX],
    &[CITIZENSHIP],
    &[GENETIC],
    &[BIOMETRIC],
    &[GEOLOCATION],
    &[GOVERNMENT_ID],
    &[FINANCIAL],
    &[UNION],
    &[COMMUNICATIONS],
    &[CONSUMER_HEALTH],
    &[CRIME_VICTIM],
    &[NATIONAL_ORIGIN],
    &[TRANS],
];
/// The first eight usnat categories are Virginia's (and Connecticut's),
/// the first seven Colorado's, the first twelve usnat version 1's.
const VA_SENSITIVE: &[&[&str]] = USNAT_SENSITIVE_V2.split_at(8).0;
const USNAT_SENSITIVE_V1: &[&[&str]] = USNAT_SENSITIVE_V2.split_at(12).0;

pub(super) const LAYOUTS: &[Layout] = &[
    Layout {
        name: "usnat",
        id: 7,
        jurisdiction: "US",
        version: 1,
        fields: usnat_fields!(12, 2),
        sensitive_opt_in: true,
        sensitive: USNAT_SENSITIVE_V1,
        gpc: true,
    },
    Layout {
        name: "usnat",
        id: 7,
        jurisdiction: "US",
        version: 2,
        fields: usnat_fields!(16, 3),
        sensitive_opt_in: true,
        sensitive: USNAT_SENSITIVE_V2,
        gpc: true,
    },
    Layout {
        name: "usca",
        id: 8,
        jurisdiction: "US-CA",
        version: 1,
        fields: fields!("SaleOptOutNotice": N2, "SharingOptOutNotice": N2,
            "SensitiveDataLimitUseNotice": N2, "SaleOptOut": N2, "SharingOptOut": N2,
            "SensitiveDataProcessing": Width::List(9),
            "KnownChildSensitiveDataConsents": Width::List(2), "PersonalDataConsents": N2; mspa),
        sensitive_opt_in: false,
        sensitive: &[
            &[GOVERNMENT_ID],
            &[FINANCIAL],
            &[GEOLOCATION],
            &[RACE, RELIGION, UNION],
            &[COMMUNICATIONS],
            &[GENETIC],
            &[BIOMETRIC],
            &[HEALTH],
            &[SEX],
        ],
        gpc: true,
    },
    Layout {
        name: "usva",
        id: 9,
        jurisdiction: "US-VA",
        version: 1,
        fields: va_like_fields!(8, N2),
        sensitive_opt_in: true,
        sensitive: VA_SENSITIVE,
        gpc: false,
    },
    Layout {
        name: "usco",
        id: 10,
        jurisdiction: "US-CO",
        version: 1,
        fields: va_like_fields!(7, N2),
        sensitive_opt_in: true,
        sensitive: USNAT_SENSITIVE_V2.split_at(7).0,
        gpc: true,
    },
    Layout {
        name: "usut",
        id: 11,
        jurisdiction: "US-UT",
        version: 1,
        fields: fields!("SharingNotice": N2, "SaleOptOutNotice": N2,
            "TargetedAdvertisingOptOutNotice": N2, "SensitiveDataProcessingOptOutNotice": N2,
            "SaleOptOut": N2, "TargetedAdvertisingOptOut": N2,
            "SensitiveDataProcessing": Width::List(8), "KnownChildSensitiveDataConsents": N2; mspa),
        sensitive_opt_in: false,
        sensitive: &[
            &[RACE],
            &[RELIGION],
            &[SEX],
            &[CITIZENSHIP],
            &[HEALTH],
            &[GENETIC],
            &[BIOMETRIC],
            &[GEOLOCATION],
        ],
        gpc: false,
    },
    Layout {
        name: "usct",
        id: 12,
        jurisdiction: "US-CT",
        version: 1,
        fields: va_like_fields!(8, Width::List(3)),
        sensitive_opt_in: true,
        sensitive: VA_SENSITIVE,
        gpc: true,
    },
];
