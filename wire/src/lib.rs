//! The wire types shared by the server, `hodi-sdk` and `hodi-simulator`: Rust structs generated from
//! `proto/hodi/wire/*.proto` by `build.rs` (prost, parsed with protox so no system `protoc` is needed).
//!
//! Owns nothing but the generated code. A separate crate so that clients get the types without the
//! server's dependencies (SQLite, TLS certificates, the CLI).

#![allow(clippy::large_enum_variant, clippy::enum_variant_names, clippy::doc_lazy_continuation)]

include!(concat!(env!("OUT_DIR"), "/hodi.wire.rs"));
