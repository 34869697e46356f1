//! Decisions about a transaction, one policy per file: who may relay where, and which
//! relay domains would loop back to hermod; rate limits, greylisting, DNSBL and mail
//! authentication join them as actors.

pub mod mail_loop;
pub mod relay;
