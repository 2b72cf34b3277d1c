//! Opaque 128-bit ids (profile ids, merge ids): representation and hex
//! display. Parsing them from text and drawing fresh ones can fail with a
//! typed error that names them, so those live in `types.rs`; this file
//! depends on nothing but `hex`, and `error.rs` can name the ids.

use std::fmt;

/// A 128-bit random id type shown as 32 lowercase hex characters.
macro_rules! id128 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(bytes)
            }

            /// The raw bytes (big-endian order is the key order on disk).
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&crate::hex::encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

id128!(
    /// A 128-bit profile identifier, shown as 32 lowercase hex characters.
    ///
    /// New ids come from the operating system's random number generator, so they
    /// reveal nothing about when or where a profile was created.
    ///
    /// ```
    /// use lethedb::ProfileId;
    /// let id: ProfileId = "00112233445566778899aabbccddeeff".parse()?;
    /// assert_eq!(id.to_string(), "00112233445566778899aabbccddeeff");
    /// assert!("not-an-id".parse::<ProfileId>().is_err());
    /// Ok::<_, lethedb::Error>(())
    /// ```
    ProfileId
);

id128!(
    /// Identifies one merge of two profiles (128 bits, random), shown as 32 hex characters.
    MergeId
);
