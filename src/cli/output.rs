//! What a command prints, and how it fails: JSON to stdout, the message
//! to stderr, exit codes 1 general, 2 usage, 3 not found, 4 wrong key.

use lethedb::Error;

/// Failure of a CLI command: the message and exit code.
pub(crate) struct Failure {
    pub(super) code: i32,
    pub(super) message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::StoreNotFound { .. }
            | Error::ProfileNotFound(_)
            | Error::MergeNotFound(_)
            | Error::RequestNotFound(_)
            | Error::HoldNotFound(_)
            | Error::ProfileErased { .. } => 3,
            Error::WrongKey => 4,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

pub(super) type CliResult = std::result::Result<(), Failure>;

/// Prints one JSON value on one line.
pub(super) fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// Lowercase hex of bytes (public keys).
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
