//! The wire types: Rust structs generated from `proto/hodi/wire/*.proto` by `build.rs`.
//!
//! Owns nothing but the generated code and tiny conveniences on it; business rules live with the
//! command that uses them.

#![allow(clippy::large_enum_variant, clippy::enum_variant_names, clippy::doc_lazy_continuation)]

include!(concat!(env!("OUT_DIR"), "/hodi.wire.rs"));
