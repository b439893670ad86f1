//! The wire types, from the `hodi-wire` crate (generated from `proto/hodi/wire/*.proto`).
//!
//! Re-exported here so server code keeps writing `crate::wire::…`; business rules live with the
//! command that uses them.

pub use hodi_wire::*;
