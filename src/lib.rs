//! The `hermod` binary's library half: configuration loading, logging and the wiring of
//! a running server. The engine itself is the `hermod-actors` crate.
//!
//! # Layout
//!
//! - [`admin`]: the admin HTTP server: health, statistics, Prometheus metrics,
//!   maintenance mode.
//! - [`cli`]: the commands (`serve`, `route`, `queue`, `user`, `auth`, `maintenance`,
//!   `dkim`, `bounce`), one file each, and the client the operator's commands reach a running
//!   hermod through (`admin_client`: the admin socket, else its TCP port).
//! - [`escape`]: text a peer wrote, with its control characters escaped for logs and
//!   the terminal.
//! - [`config`]: one file per section: each setting declared once (key, default,
//!   environment name, checks), and the settings each actor is built from; loading,
//!   environment overrides and validation; which keys a reload applies and which wait
//!   for a restart (`config::reload`).
//! - [`inject`]: the HTTP injection API (`POST /api/inject/v1`): the request's shape and
//!   checks (`request`), each recipient's message (`build`), the tenants and their keys
//!   (`tenants`), and the handler that stores through the SMTP intake (`handler`).
//! - [`logging`]: text or JSON logs, and the OTLP exporter of messages' traces (`traces`).
//! - [`wiring`]: starts the spool, the actors and the arbiters; drains on shutdown and
//!   reloads on SIGHUP.

pub mod admin;
pub mod cli;
pub mod config;
pub mod escape;
pub mod inject;
pub mod logging;
pub mod wiring;
