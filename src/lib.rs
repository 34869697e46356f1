//! The `hermod` binary's library half: configuration loading, logging and the wiring of
//! a running server. The engine itself is the `hermod-actors` crate.
//!
//! # Layout
//!
//! - [`settings`]: the TOML file, environment overrides and validation.
//! - [`logging`]: text or JSON logs.
//! - [`server`]: starts the spool, the actors and the arbiters; drains on shutdown and
//!   reloads on SIGHUP.
//! - [`reload`]: which keys a reload applies and which wait for a restart.
//! - [`route`]: `hermod route DOMAIN`, the next hop a domain takes and why.

pub mod logging;
pub mod reload;
pub mod route;
pub mod server;
pub mod settings;
