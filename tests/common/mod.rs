//! Helpers shared by hermod's end-to-end tests; each test file includes them with
//! `mod common;`.

pub mod dns;
