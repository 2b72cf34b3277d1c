//! Where a store's roots live ([`RootLocation`]), and the names of root
//! objects in a device.

use std::path::PathBuf;

/// Where a store's roots live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootLocation {
    /// A [`FileRootKeyStore`]'s file.
    File(PathBuf),
    /// A [`MemoryRootKeyStore`] (gone with the process).
    Memory,
    /// Objects in a PKCS#11 token ([`crate::Pkcs11RootKeyStore`]).
    Pkcs11 {
        /// The token's label.
        token: String,
        /// The token's serial number.
        serial: String,
        /// Label prefix of the root objects: epoch *e* is `<object>.<e>`.
        object: String,
    },
    /// Another store; its own description.
    Other(String),
}

impl RootLocation {
    /// The object or file that held root `epoch` of store `store_id`, for
    /// certificates (an auditor matches it against the device's own log).
    pub fn name_of(&self, store_id: &[u8; 16], epoch: u32) -> String {
        match self {
            RootLocation::File(p) => format!("file {} epoch {epoch}", p.display()),
            RootLocation::Memory => format!("memory epoch {epoch}"),
            RootLocation::Pkcs11 {
                token,
                serial,
                object,
            } => format!(
                "pkcs11 token {token:?} serial {serial:?} object {:?} id {}",
                device_label(object, epoch),
                crate::hex::encode(&device_id(store_id, epoch))
            ),
            RootLocation::Other(d) => format!("{d} epoch {epoch}"),
        }
    }

    /// As JSON (`keys status`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            RootLocation::File(p) => serde_json::json!({"kind": "file", "path": p}),
            RootLocation::Memory => serde_json::json!({"kind": "memory"}),
            RootLocation::Pkcs11 {
                token,
                serial,
                object,
            } => {
                serde_json::json!({"kind": "pkcs11", "token": token, "serial": serial, "object": object})
            }
            RootLocation::Other(d) => serde_json::json!({"kind": "other", "description": d}),
        }
    }
}

/// Label of the device object holding root `epoch`: `<object>.<epoch>`.
pub(crate) fn device_label(object: &str, epoch: u32) -> String {
    format!("{object}.{epoch}")
}

/// `CKA_ID` of the device object holding root `epoch` of a store: store id
/// (16 bytes) ‖ epoch (big-endian u32), so one token and prefix can serve
/// several stores without one store ever touching another's roots.
pub(crate) fn device_id(store_id: &[u8; 16], epoch: u32) -> [u8; 20] {
    let mut id = [0u8; 20];
    id[..16].copy_from_slice(store_id);
    id[16..].copy_from_slice(&epoch.to_be_bytes());
    id
}
