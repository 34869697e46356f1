//! hermod's engine: the actors that move mail, the sans-IO SMTP protocol they share, and
//! the sled spool that makes an acknowledged message durable.
//!
//! # Layout
//!
//! The modules follow the path of a message, stage by stage; each folder is a floor that
//! imports only the floors below it (top to bottom: inbound, policy, queue, outbound,
//! events, store, protocol, core; tests/layout.rs checks it), and each module is named here.
//!
//! - [`inbound`]: the Listener actor (`listener`: listeners of three kinds, smtp,
//!   submission and submissions, connection limits, one Session per connection on one of
//!   the session arbiters), the Session actor (`session`: owns one client socket, drives
//!   the protocol in clear and over TLS, hands each message to the queue's intake and
//!   answers 250 once the commit thread has it on disk), the accept stream that pauses
//!   when descriptors run out (`accept`), the server's TLS (`tls`: certificate, reload)
//!   and AUTH (`auth`: credentials checked off the arbiters, against the local store or
//!   Dovecot's auth service (`password_check`, `dovecot_auth`); the per-network lock-out and
//!   per-user pacing in `auth_failures`), and what a Session keeps of itself
//!   (`session_record`: its refusals for the log, its transcript; `session_trace`: the
//!   receiving spans of its messages' traces).
//! - [`policy`]: decisions about a transaction, as actors a Session asks (`set`: the
//!   policies of one transaction and their shared DNS budget; `actor`: the one actor
//!   each policy runs in): rate limits
//!   (`rate_limiter`), greylisting (`greylist`), DNSBL (`dnsbl`), SPF, DKIM and DMARC
//!   (`mail_auth`), DKIM signing (`dkim_sign`, keys and records in `dkim_record`), the
//!   relay domains that would loop back (`mail_loop`), the message content the checks
//!   read (`content`), and the shared state behind them (`backend`: local or Redis).
//! - [`queue`]: the intake Sessions store messages through (`enqueue`), and the Queue
//!   actor — owns the schedule (`schedule`, `resident`: which messages are in memory),
//!   keeps each message the intake stored (`handling`), sends `Deliver` to Delivery
//!   actors when a message is due (`dispatch`) and holds jobs for busy ones (`held_jobs`), takes their `DeliveryReport`,
//!   retries, bounces (`bounce`, RFC 3464 DSNs in `dsn`); next-hop health seen from the
//!   queue (`hops`), the operator's actions (`operate`, `admin`, `suspend`), recent
//!   outcomes (`recent`), what each attempt leaves (`outcomes`: log line, metrics, bounce
//!   class, delivery event; its trace's span in `attempt_trace`), reload (`reconfigure`), the drain at shutdown (`drain`), the TLS reports it sends the domains delivered to (`tls_reports`), and the `X-Hermod-Pool:` field the intake takes out of each message (`pool_header`).
//! - [`outbound`]: the Delivery actor (`delivery`, one per next hop: connection pool,
//!   rate limit, back-off; one job's conversation in `delivery_job`, what a job is and
//!   one result per recipient in `job`), the SMTP/LMTP client (`smtp_client`: STARTTLS, implicit TLS, AUTH to
//!   smarthosts), each hop's TLS policy (`tls`), routing (`routing`: transport map,
//!   relayhost, MX), MX resolution (`mx`), next-hop health and the index of mail parked
//!   for a down hop (`hop_health`), the outbound connection budget
//!   (`connection_budget`), the MTA-STS policies receiving domains publish
//!   (`mta_sts`: fetched, kept in the spool, enforced on a job's MX hosts and TLS), their
//!   DANE TLSA records (`dane`: a DNSSEC-validating resolver, the certificate check),
//!   which of the two a job is held to (`domain_policy`), and the TLS outcome of every
//!   session counted for the domains' TLS reports (`tls_report`); provider-aware
//!   shaping (`shaping`: destinations rolled up into sites with one budget each, and
//!   the automation rules that suspend a site or lower its limits on a provider's reply),
//!   and the egress sources and pools mail leaves from (`egress`).
//! - [`store`]: the storage trait and its sled implementation (`spool`) with the
//!   committer thread that turns many writes into one flush (`committer`); a queued
//!   message's envelope (`envelope`) and bytes (`message_data`); large bodies as files
//!   (`body_file`); removals a full disk kept from being durable (`finished`); the
//!   owner-only data directory (`private_dir`); the room Sessions claim in the spool and
//!   the ids they give (`room`); the greylist in sled (`greylist`); the AUTH users
//!   (`users`, Argon2id hashes in a sled tree); the delivery events kept until their
//!   destinations have them (`event_log`); the transcripts of listed peers' sessions and
//!   deliveries (`transcripts`).
//! - [`events`]: delivery events (`event`) and their senders (`sender`, one actor per
//!   destination behind the `destination` trait: `webhook`, `redis_stream`,
//!   `json_file`); the bounce rules that classify failures (`bounce_rules`) and the
//!   returned DSNs matched to the message they are about (`returned_dsn`).
//! - [`protocol`]: the SMTP protocol without I/O or clock — command and address parsing
//!   (`command`, `address`), DATA/BDAT receivers (`receiver`, `dot_stuffer`) and the
//!   body sink they are handed for a body that spills (`body_sink`), the spool's room
//!   and queue ids as the protocol asks for them (`spool_room`), reply
//!   texts and codes (`reply`, `status`), the server state machine one Session drives
//!   (`session`) and the checks it stops for (`check`), the relay decision (`relay`),
//!   SASL (`sasl`), what a connection's security allows (`security`), session deadlines
//!   (`deadline`), header dates (`datetime`), the reply reader the client uses
//!   (`reply_reader`), which characters a peer may not pass on (`text`), and a session's
//!   transcript (`transcript`).
//! - [`core`]: the bottom floor every stage may use: queue ids (`id`), the free-space
//!   reserve and its claims (`disk_space`), the process's TLS backend (`tls`), the
//!   greylist's stored state and store trait (`greylist_state`), the relay domains
//!   found to loop back (`looping_domains`), human durations (`duration`), the
//!   classes a failure can have (`bounce_class`), lists of peers as operators write
//!   them (`peer_list`), and the OpenTelemetry trace each message carries
//!   (`message_trace`).
//! - [`mailbox`]: how many messages wait in each kind of actor's mailbox
//!   (`actor_mailbox_messages`), which names the actor that falls behind.
//! - [`metric_series`]: the series registered at 0 when the recorder is installed, so
//!   an idle node serves them.
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

pub mod core;
pub mod events;
pub mod inbound;
pub mod mailbox;
mod metric_series;
pub mod outbound;
pub mod policy;
pub mod protocol;
pub mod queue;
pub mod store;

/// Gives every metric the engine records its help text (each file declares its own,
/// beside the code that records it), and registers at 0 the series an idle node should
/// serve ([`metric_series`]). Call once, after installing a recorder.
pub fn describe_metrics() {
    crate::inbound::listener::describe_metrics();
    crate::mailbox::describe_metrics();
    crate::inbound::session::describe_metrics();
    crate::outbound::connection_budget::describe_metrics();
    crate::outbound::delivery::describe_metrics();
    crate::outbound::tls::describe_metrics();
    crate::outbound::mta_sts::describe_metrics();
    crate::outbound::dane::describe_metrics();
    crate::outbound::tls_report::describe_metrics();
    crate::outbound::shaping::describe_metrics();
    crate::policy::set::describe_metrics();
    crate::policy::rate_limiter::describe_metrics();
    crate::policy::greylist::describe_metrics();
    crate::policy::dnsbl::describe_metrics();
    crate::policy::dkim_sign::describe_metrics();
    crate::policy::mail_auth::describe_metrics();
    crate::policy::backend::redis::describe_metrics();
    crate::queue::describe_metrics();
    crate::store::committer::describe_metrics();
    crate::core::disk_space::describe_metrics();
    crate::store::spool::describe_metrics();
    crate::store::event_log::describe_metrics();
    crate::events::describe_metrics();
    crate::metric_series::register_at_zero();
}
