//! hermod's engine: the actors that move mail, the sans-IO SMTP protocol they share, and
//! the sled spool that makes an acknowledged message durable.
//!
//! # Layout
//!
//! The modules follow the path of a message, stage by stage:
//!
//! - [`protocol`]: the SMTP protocol without I/O or clock — command and address
//!   parsing, DATA/BDAT receivers, reply texts, the server state machine one Session
//!   drives, session deadlines, header dates, the reply reader the client uses, and
//!   which characters a peer may not pass on (`text`).
//! - [`inbound`]: the Listener actor (accepts connections on listeners of three kinds,
//!   smtp, submission and submissions, enforces connection limits, starts one Session per
//!   connection on one of the session arbiters), the Session actor (owns one client
//!   socket, drives the protocol in clear and over TLS, hands each message to the queue's
//!   intake and answers 250 once the commit thread has it on disk), the accept stream
//!   that pauses when descriptors run out, the server's TLS (certificate, reload) and
//!   AUTH (credentials checked off the arbiters; the per-network lock-out and per-user
//!   pacing counted in `auth_failures`).
//! - [`policy`]: decisions about a transaction — the relay policy (relay domains and
//!   trusted client networks), the relay domains that would loop back to us, and the
//!   policy actors a Session asks (`set`: rate limits, greylist, DNSBL, SPF, DKIM, DMARC,
//!   DKIM signing), whose DNS waits share one budget per transaction.
//! - [`queue`]: the intake Sessions store messages through, and the Queue actor — owns
//!   the schedule; keeps each message the intake stored (`Stored`), sends `Deliver` to
//!   Delivery actors, takes their `DeliveryReport`, retries, bounces (with RFC 3464
//!   DSNs); queue ids.
//! - [`store`]: the storage trait and its sled implementation with the committer thread
//!   that turns many writes into one flush; large bodies as files; a queued message's
//!   bytes; the free-space reserve and the claims transactions make against it; the
//!   owner-only data directory; the AUTH users (Argon2id hashes in a sled tree).
//! - [`outbound`]: the Delivery actor (one per next hop: connection pool, rate limit,
//!   back-off; one result per recipient), the SMTP/LMTP client (STARTTLS, implicit TLS,
//!   AUTH to smarthosts), each hop's TLS policy, routing (transport map, relayhost, MX),
//!   MX resolution, next-hop health (and the index of mail parked for a down hop) and
//!   the outbound connection budget.
//!
//! # Who sends what to whom
//!
//! ```text
//! Listener --start--> Session --store (Intake)--> commit thread --on disk--> Session: 250
//!    ^                   |
//!    |                   +--Ask--> policy actors --Verdict--> Session
//!    |                   |
//!    |                   +--Stored--> Queue --Deliver--> Delivery[next hop]
//!    |                   |              ^  <--DeliveryIdle--     |   ^
//!    +---SessionEnded----+              |  --Retire-->           |   +--MakeRoom-- connection budget
//!                                       +----DeliveryReport------+
//! ```
//!
//! On SIGHUP the binary sends `listener::Reconfigure` to every Listener (settings for new
//! sessions) and `queue::Reconfigure` to the Queue (retry settings and routes).

pub mod inbound;
pub mod mailbox;
pub mod outbound;
pub mod policy;
pub mod protocol;
pub mod queue;
pub mod store;

/// Gives every metric the engine records its help text (each file declares its own,
/// beside the code that records it). Call once, after installing a recorder.
pub fn describe_metrics() {
    crate::inbound::listener::describe_metrics();
    crate::mailbox::describe_metrics();
    crate::inbound::session::describe_metrics();
    crate::outbound::connection_budget::describe_metrics();
    crate::outbound::delivery::describe_metrics();
    crate::outbound::tls::describe_metrics();
    crate::policy::set::describe_metrics();
    crate::policy::rate_limiter::describe_metrics();
    crate::policy::greylist::describe_metrics();
    crate::policy::dnsbl::describe_metrics();
    crate::policy::dkim_sign::describe_metrics();
    crate::policy::mail_auth::describe_metrics();
    crate::policy::backend::redis::describe_metrics();
    crate::queue::describe_metrics();
    crate::store::committer::describe_metrics();
    crate::store::disk_space::describe_metrics();
    crate::store::spool::describe_metrics();
}
