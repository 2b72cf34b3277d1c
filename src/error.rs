//! Typed errors. Every variant says what was wrong; none carries personal data.

use std::path::PathBuf;

use crate::id::{MergeId, ProfileId};

/// Longest accepted identifier value, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 512;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in lethedb.
///
/// Errors never contain field values or identifiers, only names of fields,
/// profile ids, paths and byte offsets, so they are safe to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No store at the given directory (and creation was not requested).
    #[error(
        "no lethedb store at {path}: run `lethedb init --db {path}` or open with create_if_missing"
    )]
    StoreNotFound {
        /// Directory that was opened.
        path: PathBuf,
    },

    /// The directory holds a RocksDB database that is not a lethedb store.
    #[error("{path} is not a lethedb store (no format marker in the meta column family)")]
    NotAStore {
        /// Directory that was opened.
        path: PathBuf,
    },

    /// A store already exists where a new one was to be created.
    #[error("a store already exists at {path}; refusing to overwrite it")]
    StoreExists {
        /// Directory that was given.
        path: PathBuf,
    },

    /// The master key does not match the key check value stored in the database.
    #[error("wrong master key: it does not match this store's key check value")]
    WrongKey,

    /// A key file could not be created or read.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// Path of the key file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A stored record or the store itself uses a format version this build does not know.
    #[error("unsupported format version {version} for {what}: this build reads version {supported}; upgrade lethedb")]
    UnsupportedFormat {
        /// Which record kind.
        what: &'static str,
        /// Version found on disk.
        version: u8,
        /// Highest version this build understands.
        supported: u8,
    },

    /// Stored bytes failed a structural or checksum check.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which record kind.
        what: &'static str,
        /// What check failed (offsets and lengths, never contents).
        detail: String,
    },

    /// An AEAD ciphertext failed authentication: tampered bytes, a ciphertext
    /// moved to another profile or field, or the wrong key.
    #[error("authentication failed for {what} of profile {profile}: ciphertext was altered, moved, or its key is gone")]
    Decrypt {
        /// Profile the ciphertext was read for.
        profile: ProfileId,
        /// Field name, or the key record kind.
        what: String,
    },

    /// A record is not the one the store wrote last: an older copy of it
    /// was put back, it was removed while its anchor says it exists, or an
    /// index entry does not authenticate (forged or re-pointed). Format v2
    /// integrity, docs/design.md "Record format v2".
    #[error("integrity check failed for {what} of profile {profile}: a record was altered, replaced by an older copy or removed")]
    Integrity {
        /// Profile the record belongs to (or names).
        profile: ProfileId,
        /// Record kind and what did not match (never contents).
        what: String,
    },

    /// The profile does not exist.
    #[error("profile {0} not found")]
    ProfileNotFound(ProfileId),

    /// No merge record has this id (`unmerge`).
    #[error("merge {0} not found")]
    MergeNotFound(MergeId),

    /// No data-subject request has this id.
    #[error("request {0} not found")]
    RequestNotFound(u64),

    /// No legal hold has this id.
    #[error("legal hold {0} not found")]
    HoldNotFound(u64),

    /// A request cannot make this transition in its current status.
    #[error("request {request} is {status}: cannot {action}")]
    RequestState {
        /// The request id.
        request: u64,
        /// Its status (`open`, `on_hold`, `completed`, `rejected`).
        status: String,
        /// What was asked.
        action: &'static str,
    },

    /// An active legal hold covers what an erasure would destroy; nothing
    /// was erased. Release the hold (`Db::release_hold`) to proceed.
    #[error("held by legal hold {hold_id}: {what} cannot be erased until the hold is released")]
    LegalHold {
        /// The (first) hold in the way.
        hold_id: u64,
        /// What it protects: the person, or the fields named.
        what: String,
    },

    /// The profile was erased (`forget`); its id is never provisioned again.
    #[error("profile {profile} was erased (erasure {erasure_id}); its data is gone and the id cannot be reused")]
    ProfileErased {
        /// The erased profile id.
        profile: ProfileId,
        /// Ledger id of the erasure.
        erasure_id: u64,
    },

    /// An erasure certificate failed verification.
    #[error("certificate rejected: {0}")]
    InvalidCertificate(String),

    /// The audit log's hash chain does not verify.
    #[error("audit log broken at entry {seq}: {reason}")]
    AuditChain {
        /// Sequence number of the first entry that fails.
        seq: u64,
        /// What did not match.
        reason: String,
    },

    /// A field name is not acceptable.
    #[error("invalid field name {name:?}: {reason}")]
    InvalidFieldName {
        /// The rejected name (field names are schema, not personal data).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A value does not fit the field's declared type.
    #[error("invalid value for field {field:?}: {reason}")]
    InvalidValue {
        /// Field name.
        field: String,
        /// Why it was rejected.
        reason: String,
    },

    /// An identifier could not be normalised.
    /// The message names the type and the problem, never the value: the
    /// value is personal data and errors end up in logs.
    #[error("invalid {id_type} identifier: {reason}")]
    InvalidIdentifier {
        /// Identifier type.
        id_type: String,
        /// Why it was rejected.
        reason: IdentifierProblem,
    },

    /// A TC string could not be decoded.
    #[error("invalid TC string: {0}")]
    InvalidTcString(String),

    /// A GPP string that cannot be decoded; the reason names what is wrong
    /// (never the string).
    #[error("invalid GPP string: {0}")]
    InvalidGppString(String),

    /// A purpose is not built in and not declared in the schema.
    #[error("unknown purpose {0:?}: declare it in the schema (purposes) or use a built-in one")]
    UnknownPurpose(String),

    /// A profile id could not be parsed.
    #[error("invalid profile id {input:?}: expected 32 hexadecimal characters")]
    InvalidProfileId {
        /// The rejected text.
        input: String,
    },

    /// A record would be larger than its format lets a reader decode; nothing
    /// was written.
    #[error("{what} would be {bytes} bytes, over the format's bound of {limit} bytes")]
    RecordTooLarge {
        /// Which record.
        what: &'static str,
        /// Its encoded size.
        bytes: u64,
        /// The bound its decoder enforces.
        limit: u64,
    },

    /// Input could not be parsed (JSON, schema, options).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The storage engine (RocksDB) reported an error. Its message is kept;
    /// RocksDB's own error type is not part of lethedb's API.
    #[error("storage error ({kind:?}): {message}")]
    Storage {
        /// What kind of failure.
        kind: StorageErrorKind,
        /// The storage engine's message (paths, no personal data).
        message: String,
    },

    /// An internal invariant failed (a key or output length a primitive
    /// refused, a missing signing key): a bug, not bad input.
    #[error("internal error: {0}")]
    Internal(String),

    /// Operating-system I/O error.
    #[error("I/O error{}: {source}", path.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default())]
    Io {
        /// Path involved, when known.
        path: Option<PathBuf>,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A root key version of the key tree is missing, destroyed, or not
    /// this store's (see [`crate::RootKeyStore`]).
    #[error("root key epoch {epoch}: {reason}")]
    RootKey {
        /// The epoch concerned.
        epoch: u32,
        /// What is wrong with it.
        reason: String,
    },

    /// The device holding the roots (a PKCS#11 token) failed or refused an
    /// operation; `device` names it (token label), never a PIN.
    #[error("root key device {device}: {reason}")]
    RootKeyDevice {
        /// The device (module, token).
        device: String,
        /// What failed.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("OS random number generator failed: {0}")]
    Random(String),
}

/// The kind of a storage-engine failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// Data read from disk is corrupt.
    Corruption,
    /// An I/O error (full disk, permissions, a failing device).
    Io,
    /// Another process (or another open handle in this one) holds the
    /// store's lock, or a resource is busy.
    Busy,
    /// Anything else the storage engine reported.
    Other,
}

impl Error {
    /// A RocksDB failure as lethedb's own error (RocksDB's error type is not
    /// part of the API: no `From` impl exposes it).
    pub(crate) fn storage(e: rocksdb::Error) -> Self {
        use rocksdb::ErrorKind as K;
        let kind = match e.kind() {
            K::Corruption => StorageErrorKind::Corruption,
            // RocksDB reports another holder of the store's LOCK file as an
            // I/O error ("While lock file", "lock hold by current process").
            K::IOError if e.to_string().to_ascii_lowercase().contains("lock") => {
                StorageErrorKind::Busy
            }
            K::IOError => StorageErrorKind::Io,
            K::Busy | K::TryAgain | K::TimedOut | K::Aborted => StorageErrorKind::Busy,
            _ => StorageErrorKind::Other,
        };
        Error::Storage {
            kind,
            message: e.into_string(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io { path: None, source }
    }
}

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn io_at(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }
}

/// Why an identifier was refused. Never carries the identifier itself:
/// errors travel to logs and callers, and identifiers are personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentifierProblem {
    /// Longer than [`MAX_IDENTIFIER_BYTES`](crate::MAX_IDENTIFIER_BYTES).
    TooLong,
    /// Contains a control character.
    ControlCharacter,
    /// Empty after trimming.
    Empty,
    /// An e-mail address without `@`.
    EmailNoAt,
    /// An e-mail address longer than 254 bytes (RFC 5321).
    EmailTooLong,
    /// The local part is not a dot-atom of at most 64 bytes.
    EmailLocalPart,
    /// The address holds an invisible character (a Unicode
    /// default-ignorable code point such as U+200B), which would make a
    /// second spelling of the same address.
    EmailInvisibleCharacter,
    /// The domain is not a host name of two or more labels.
    EmailDomain,
    /// Gmail folding left an empty local part.
    EmailEmptyAfterFolding,
    /// The phone parser refused it; the text is the parser's reason
    /// (for example `the number is too long`), never the input.
    PhoneUnparseable(String),
    /// Parsed, but libphonenumber's metadata does not call it a valid
    /// number for its region (strict mode).
    PhoneInvalid,
    /// Its E.164 form does not normalise to itself.
    PhoneUnstable,
}

impl std::fmt::Display for IdentifierProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentifierProblem::TooLong => {
                write!(f, "longer than {} bytes", MAX_IDENTIFIER_BYTES)
            }
            IdentifierProblem::ControlCharacter => f.write_str("contains a control character"),
            IdentifierProblem::Empty => f.write_str("empty"),
            IdentifierProblem::EmailNoAt => f.write_str("not an e-mail address: no @"),
            IdentifierProblem::EmailTooLong => {
                f.write_str("not an e-mail address: longer than 254 bytes")
            }
            IdentifierProblem::EmailLocalPart => f.write_str(
                "not an e-mail address: the part before @ is not a dot-atom of at most 64 bytes",
            ),
            IdentifierProblem::EmailInvisibleCharacter => {
                f.write_str("not an e-mail address: contains an invisible character")
            }
            IdentifierProblem::EmailDomain => f.write_str(
                "not an e-mail address: the part after @ is not a host name of two or more labels \
                 (IDNA 2008 / UTS 46)",
            ),
            IdentifierProblem::EmailEmptyAfterFolding => {
                f.write_str("empty local part after Gmail folding")
            }
            IdentifierProblem::PhoneUnparseable(why) => {
                write!(f, "not a phone number ({why})")
            }
            IdentifierProblem::PhoneInvalid => f.write_str(
                "not a valid phone number for its region (libphonenumber; \
                 PhoneValidation::Lenient keeps such numbers)",
            ),
            IdentifierProblem::PhoneUnstable => {
                f.write_str("not a phone number (no stable E.164 form)")
            }
        }
    }
}
