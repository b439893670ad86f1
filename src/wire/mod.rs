//! The wire types, from the `hodi-wire` crate (generated from `proto/hodi/wire/*.proto`).
//!
//! Re-exported here so server code keeps writing `crate::wire::…`; business rules live with the
//! command that uses them.

pub use hodi_wire::*;

/// A wire enum value as the SDKs spell it: its proto name without the type's prefix, lower case
/// (`MESSAGE_DELIVERY_STATUS_SENT` → `sent`); "other" for a value the schema does not name.
pub fn label(name: Option<&str>, prefix: &str) -> String {
    name.map_or("other".into(), |n| n.strip_prefix(prefix).unwrap_or(n).to_ascii_lowercase())
}
