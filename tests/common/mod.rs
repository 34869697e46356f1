//! Helpers shared by hermod's end-to-end tests; each test file includes them with
//! `mod common;`. Not every test file uses every helper.
#![allow(dead_code)]

pub mod client;
pub mod dns;
pub mod hermod;
pub mod sink;
