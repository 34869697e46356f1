//! Decisions about a transaction, one policy per file: who may relay where, which relay
//! domains would loop back to hermod, and the policy actors the Sessions ask at each
//! stage ([`set`]): rate limits, greylisting and DNS blocklists.

pub mod actor;
pub mod backend;
pub mod content;
pub mod dkim_record;
pub mod dkim_sign;
pub mod dnsbl;
pub mod greylist;
pub mod mail_auth;
pub mod mail_loop;
pub mod rate_limiter;
pub mod set;
