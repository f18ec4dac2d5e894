//! Repository checks that run as tests: the crate dependency rules of the design (see
//! `tests/dependency_rules.rs`). Dev-only; nothing depends on this crate.
#![forbid(unsafe_code)]
