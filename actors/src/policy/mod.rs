//! Decisions about a transaction, one policy per file: who may relay where today;
//! rate limits, greylisting, DNSBL and mail authentication join it as actors.

pub mod relay;
