//! Selecting a PKCS#11 token and its root objects: [`Pkcs11Config`], from
//! an RFC 7512 URI, and where the user PIN comes from ([`PinSource`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Where the token's user PIN comes from. Never a command-line argument.
#[derive(Clone)]
pub enum PinSource {
    /// The first line of a file (RFC 7512 `pin-source=file:…`).
    File(PathBuf),
    /// An environment variable (`pin-source=env:NAME`, an extension).
    Env(String),
    /// The PIN itself, for embedders that fetch it from a vault.
    Value(Zeroizing<String>),
}

impl std::fmt::Debug for PinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinSource::File(p) => write!(f, "File({})", p.display()),
            PinSource::Env(v) => write!(f, "Env({v})"),
            PinSource::Value(_) => f.write_str("Value(..)"),
        }
    }
}

impl PinSource {
    pub(super) fn read(&self) -> Result<Zeroizing<String>> {
        let pin = match self {
            PinSource::File(p) => {
                let text =
                    Zeroizing::new(std::fs::read_to_string(p).map_err(|e| Error::io_at(p, e))?);
                Zeroizing::new(text.lines().next().unwrap_or("").to_string())
            }
            PinSource::Env(v) => Zeroizing::new(std::env::var(v).map_err(|_| {
                Error::InvalidInput(format!("PIN variable {v} is not set (or not UTF-8)"))
            })?),
            PinSource::Value(v) => v.clone(),
        };
        if pin.is_empty() {
            return Err(Error::InvalidInput(format!("{self:?} gives an empty PIN")));
        }
        Ok(pin)
    }
}

/// What selects a token and its root objects.
#[derive(Clone, Debug)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library).
    pub module: PathBuf,
    /// Label of the token.
    pub token: String,
    /// Serial number of the token, when several carry the label.
    pub serial: Option<String>,
    /// Label prefix of the root objects (`<object>.<epoch>`).
    pub object: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
}

impl Pkcs11Config {
    /// Parses an RFC 7512 URI: path attributes `token`, `serial`, `object`
    /// (and `type=secret-key`), query attributes `module-path` and
    /// `pin-source`. Unknown attributes and `pin-value` are refused, so a
    /// typo never selects another token and no PIN travels in the URI.
    ///
    /// ```
    /// use lethedb::{Pkcs11Config, PinSource};
    /// let c = Pkcs11Config::from_uri(
    ///     "pkcs11:token=lethedb;object=crm%20roots?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:HSM_PIN",
    /// )?;
    /// assert_eq!(c.token, "lethedb");
    /// assert_eq!(c.object, "crm roots");
    /// assert!(matches!(c.pin, PinSource::Env(ref v) if v == "HSM_PIN"));
    /// assert!(Pkcs11Config::from_uri("pkcs11:token=t;object=o?module-path=/m.so&pin-value=1234").is_err());
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn from_uri(uri: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidInput(format!("PKCS#11 URI: {why}"));
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("does not start with `pkcs11:`".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let decode = |v: &str| -> Result<String> {
            percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("an attribute is not UTF-8 after percent-decoding".into()))
        };
        let mut attrs: BTreeMap<String, String> = BTreeMap::new();
        let path_parts = path.split(';').filter(|p| !p.is_empty());
        let query_parts = query.split('&').filter(|p| !p.is_empty());
        for (part, in_query) in path_parts
            .map(|p| (p, false))
            .chain(query_parts.map(|p| (p, true)))
        {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                bad("an attribute has no `=` and value (not echoed: it may be a PIN)".into())
            })?;
            let allowed: &[&str] = if in_query {
                &["module-path", "pin-source"]
            } else {
                &["token", "serial", "object", "type"]
            };
            if k == "pin-value" {
                return Err(bad(
                    "pin-value is refused: give the PIN through pin-source=file:<path> or env:<VAR>"
                        .into(),
                ));
            }
            if !allowed.contains(&k) {
                return Err(bad(format!(
                    "attribute `{k}` is not supported {} (supported: {})",
                    if in_query {
                        "in the query"
                    } else {
                        "in the path"
                    },
                    allowed.join(", ")
                )));
            }
            if attrs.insert(k.to_string(), decode(v)?).is_some() {
                return Err(bad(format!("attribute `{k}` given twice")));
            }
        }
        if let Some(t) = attrs.get("type") {
            if t != "secret-key" {
                return Err(bad(format!("type `{t}`: roots are secret keys")));
            }
        }
        let need = |k: &str| {
            attrs
                .get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| bad(format!("`{k}` is required")))
        };
        let pin = match need("pin-source")? {
            s if s.starts_with("env:") => PinSource::Env(s["env:".len()..].to_string()),
            s if s.starts_with("file:") => PinSource::File(PathBuf::from(&s["file:".len()..])),
            s if s.starts_with('/') => PinSource::File(PathBuf::from(s)),
            _ => return Err(bad("pin-source must be file:<path> or env:<VAR>".into())),
        };
        Ok(Pkcs11Config {
            module: PathBuf::from(need("module-path")?),
            token: need("token")?,
            serial: attrs.get("serial").cloned(),
            object: need("object")?,
            pin,
        })
    }
}
