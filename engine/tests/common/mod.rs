//! Helpers shared by the engine's integration tests. Include with `mod common;`.
//!
//! Not every test binary uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod conformance;
