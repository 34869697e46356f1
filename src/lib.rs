//! The `hermod` binary's library half: configuration loading, logging and the wiring of
//! a running server. The engine itself is the `hermod-actors` crate.
//!
//! # Layout
//!
//! - [`admin`]: the admin HTTP server: health, statistics, Prometheus metrics,
//!   maintenance mode.
//! - [`cli`]: the commands (`serve`, `route`, `queue`, `user`, `auth`, `maintenance`,
//!   `dkim`), one file each, and the client the operator's commands reach a running
//!   hermod through (`admin_client`: the admin socket, else its TCP port).
//! - [`escape`]: text a peer wrote, with its control characters escaped for logs and
//!   the terminal.
//! - [`config`]: one file per section: each setting declared once (key, default,
//!   environment name, checks), and the settings each actor is built from; loading,
//!   environment overrides and validation; which keys a reload applies and which wait
//!   for a restart (`config::reload`).
//! - [`logging`]: text or JSON logs.
//! - [`wiring`]: starts the spool, the actors and the arbiters; drains on shutdown and
//!   reloads on SIGHUP.

pub mod admin;
pub mod cli;
pub mod config;
pub mod escape;
pub mod logging;
pub mod wiring;
