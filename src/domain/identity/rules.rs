//! Merge rules: per-type identifier limits, priority, blocklist, and the
//! largest number of profiles merged into one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::IdType;
use crate::error::{Error, Result};

/// Rules applied by `Db::resolve`. Defaults follow Segment Unify:
/// `user_id` at most 1 per profile, every other type at most 5;
/// priority `user_id > email > phone > device_id > anonymous_id`
/// (custom types rank below the built-in ones, in declaration order);
/// a blocklist of junk values; at most 20 profiles merged into one.
///
/// ```
/// use lethedb::{IdType, MergeRules};
/// let rules = MergeRules::default().limit(IdType::Email, 2).block("test@example.com");
/// assert_eq!(rules.limit_for(&IdType::Email), 2);
/// assert!(rules.is_blocked("TEST@example.com"));
/// assert!(rules.is_blocked("undefined"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRules {
    /// Most identifiers of a type one profile may hold.
    pub limits: BTreeMap<String, usize>,
    /// Limit for types not in `limits`.
    pub default_limit: usize,
    /// Type names, highest priority first. Types not listed rank lowest.
    pub priority: Vec<String>,
    /// Normalised values that are never indexed (compared case-insensitively).
    pub blocklist: Vec<String>,
    /// Glob patterns (`*` any run of characters, `?` one character), matched
    /// case-insensitively against the normalised value.
    pub block_patterns: Vec<String>,
    /// Most profiles one profile may absorb through merges, itself included.
    pub max_merged_profiles: usize,
}

/// Values that identify nobody, blocked by default.
pub const DEFAULT_BLOCKLIST: &[&str] = &[
    "",
    "null",
    "nil",
    "none",
    "undefined",
    "anonymous",
    "guest",
    "unknown",
    "0",
    "-1",
    "[object object]",
    "n/a",
    "na",
    "test",
    "noemail@example.com",
];

impl Default for MergeRules {
    fn default() -> Self {
        MergeRules {
            limits: BTreeMap::from([("user_id".to_string(), 1)]),
            default_limit: 5,
            priority: ["user_id", "email", "phone", "device_id", "anonymous_id"]
                .map(String::from)
                .to_vec(),
            blocklist: DEFAULT_BLOCKLIST.iter().map(|s| s.to_string()).collect(),
            block_patterns: Vec::new(),
            max_merged_profiles: 20,
        }
    }
}

impl MergeRules {
    /// Sets the limit for a type.
    pub fn limit(mut self, t: IdType, n: usize) -> Self {
        self.limits.insert(t.name().to_string(), n);
        self
    }

    /// Adds a value to the blocklist.
    pub fn block(mut self, value: impl Into<String>) -> Self {
        self.blocklist.push(value.into());
        self
    }

    /// Adds a glob pattern to the blocklist.
    pub fn block_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.block_patterns.push(pattern.into());
        self
    }

    /// Sets the largest number of profiles merged into one.
    pub fn max_merged_profiles(mut self, n: usize) -> Self {
        self.max_merged_profiles = n;
        self
    }

    /// The limit for a type.
    pub fn limit_for(&self, t: &IdType) -> usize {
        self.limits
            .get(t.name())
            .copied()
            .unwrap_or(self.default_limit)
    }

    /// True when any type occurs in `types` more often than its limit.
    pub(crate) fn over_limit<'a>(&self, types: impl Iterator<Item = &'a IdType> + Clone) -> bool {
        types
            .clone()
            .any(|t| types.clone().filter(|u| *u == t).count() > self.limit_for(t))
    }

    /// Rank of a type: 0 is the highest priority.
    pub fn rank(&self, t: &IdType) -> usize {
        self.priority
            .iter()
            .position(|p| p == t.name())
            .unwrap_or(self.priority.len())
    }

    /// Whether a normalised value is blocked.
    pub fn is_blocked(&self, normalized: &str) -> bool {
        let v = normalized.trim().to_lowercase();
        self.blocklist.iter().any(|b| b.trim().to_lowercase() == v)
            || self
                .block_patterns
                .iter()
                .any(|p| glob_match(&p.to_lowercase(), &v))
    }

    /// Checks the rules themselves.
    pub fn validate(&self) -> Result<()> {
        if self.max_merged_profiles == 0 {
            return Err(Error::InvalidInput(
                "max_merged_profiles must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Glob match with `*` and `?`, iterative with backtracking to the last star.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*@example.com", "a@example.com"));
        assert!(!glob_match("*@example.com", "a@example.org"));
        assert!(glob_match("test?", "test1"));
        assert!(!glob_match("test?", "test"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }

    #[test]
    fn defaults() {
        let r = MergeRules::default();
        assert_eq!(r.limit_for(&IdType::UserId), 1);
        assert_eq!(r.limit_for(&IdType::Email), 5);
        assert!(r.rank(&IdType::UserId) < r.rank(&IdType::Email));
        assert!(r.rank(&IdType::DeviceId) < r.rank(&IdType::AnonymousId));
        assert!(r.rank(&IdType::AnonymousId) < r.rank(&IdType::Custom("crm".into())));
        for junk in ["NULL", "Undefined", "[object Object]", "-1", "guest"] {
            assert!(r.is_blocked(junk), "{junk}");
        }
        assert!(!r.is_blocked("ada@example.com"));
        let r = r.block_pattern("*@mailinator.com");
        assert!(r.is_blocked("x@MAILINATOR.com"));
    }
}
