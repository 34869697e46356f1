//! hermod's engine: the actors that move mail, the sans-IO SMTP protocol they share, and
//! the sled spool that makes an acknowledged message durable.
//!
//! # Layout
//!
//! - [`smtp`]: the SMTP protocol without I/O or clock — command parsing, DATA/BDAT
//!   receivers, reply texts, the server state machine one Session drives.
//! - [`config`]: one settings section per actor, with the defaults an operator expects.
//! - [`listener`]: the Listener actor — accepts connections, enforces connection limits,
//!   starts one Session per connection on one of the session arbiters.
//! - [`disk_space`]: the spool's free-space reserve, watched off the session path.
//! - [`deadline`]: session timeouts as whole-phase deadlines (pure, injected time).
//! - [`session`]: the Session actor — owns one client socket, drives the protocol, sends
//!   `Enqueue` to the Queue and writes the reply the Queue gives.
//! - [`queue`]: the Queue actor — owns the spool and the schedule; acknowledges an
//!   `Enqueue` only after group commit, sends `Deliver` to Delivery actors, takes their
//!   `DeliveryReport`, retries, bounces.
//! - [`body_file`]: large bodies as files beside sled, written while they arrive.
//! - [`spool`]: the storage trait and its sled implementation, plus the committer thread
//!   that turns many writes into one flush.
//! - [`hop_health`]: whether a next hop answers; the waiting list of a hop that is down
//!   (pure, unix seconds in).
//! - [`delivery`]: the Delivery actor — one per next hop: connection pool, rate limit,
//!   back-off; reports one result per recipient.
//! - [`connection_budget`]: one budget of outbound connections (file descriptors) for
//!   all Delivery actors; idle connections make room first.
//! - [`smtp_client`]: the SMTP/LMTP client a Delivery actor speaks to the next hop.
//! - [`relay`]: the relay policy — relay domains and trusted client networks.
//! - [`routing`]: the transport map and smarthost that choose a next hop for a domain.
//! - [`mx`]: MX / A / AAAA resolution with hickory-resolver (RFC 5321 §5, RFC 7505).
//! - [`message_data`]: a queued message's bytes, in memory or as a body file read in
//!   pieces while it is sent.
//! - [`dsn`]: delivery status notifications (RFC 3464) for bounces.
//! - [`datetime`]: RFC 5322 dates for Received: and Date: headers.
//!
//! # Who sends what to whom
//!
//! ```text
//! Listener --start--> Session --Enqueue--> Queue --Deliver--> Delivery[next hop]
//!    ^                   |                   ^                      |
//!    +---SessionEnded----+                   +----DeliveryReport----+
//! ```
//!
//! On SIGHUP the binary sends `listener::Reconfigure` to every Listener (settings for new
//! sessions) and `queue::Reconfigure` to the Queue (retry settings and routes).

pub mod body_file;
pub mod config;
pub mod connection_budget;
pub mod datetime;
pub mod deadline;
pub mod delivery;
pub mod disk_space;
pub mod dsn;
pub mod hop_health;
pub mod listener;
pub mod message_data;
pub mod mx;
pub mod queue;
pub mod queue_id;
pub mod relay;
pub mod routing;
pub mod session;
pub mod smtp;
pub mod smtp_client;
pub mod spool;
