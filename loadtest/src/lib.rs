//! smtp-blaster: an SMTP/LMTP load generator and sink that can measure any mail server.
//!
//! It does not depend on hermod's engine, so the same numbers can be taken from any
//! server: point `send` at it, and let it relay into `sink`.
//!
//! # Layout
//!
//! - [`sink`]: a fast SMTP/LMTP server that accepts (or, on request, fails) every
//!   message, counts it and measures end-to-end latency from the `X-Blaster-Sent` header.
//! - [`send`]: a closed- or open-loop client that sends generated messages and reports
//!   rates, latency percentiles and every reply code.
//! - [`catcher`]: the sink's web view, a local mail catcher with MailHog's JSON API.
//! - [`inject`]: a load generator for HTTP injection APIs (many recipients per request).
//! - [`reply`]: one SMTP reply as read from the wire (client side) and written by the sink.
//! - [`tls`]: rustls configurations for both sides, including a self-made certificate.
//! - [`latency`]: latency histograms and the percentiles every report carries.
//! - [`plot`]: a hand-written SVG chart of latency and rate over time.
//! - [`rng`]: rand's seedable SmallRng for failure odds, size spreads and classes.

pub mod catcher;
pub mod inject;
pub mod latency;
pub mod plot;
pub mod reply;
pub mod rng;
pub mod send;
pub mod sink;
pub mod tls;
