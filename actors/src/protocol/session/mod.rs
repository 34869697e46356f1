//! The server side of one SMTP connection as a state machine: the Session actor feeds it
//! the bytes it reads and `now`, and writes out the replies it produces. It stops at
//! each point where the outside world must act first (queue the message, start TLS,
//! close), so replies always go out in order, even to a pipelining client.

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, BytesMut};

use super::address::{Mailbox, ReversePath};
use super::check::{CheckStages, Facts, Finding};
use super::command::{self, Command, CommandError, MailFrom, MailOptions};
use super::receiver::{BdatReceiver, DataReceiver, Spill};
use super::reply::Reply;
use super::sasl::Credentials;
use super::security::{AuthenticatedUser, Endpoint, ListenerKind, Security, TlsInfo};
use crate::core::disk_space::{Claim, DEFAULT_CLAIM, cost_of};
use crate::core::id::QueueId;
use crate::core::looping_domains::LoopSnapshot;
use crate::protocol::body_sink::IncomingBody;
use crate::protocol::relay::RelayPolicy;
use crate::protocol::spool_room::SpoolRoom;

mod auth;
mod data;
mod hello;
mod mail;
mod policy;
mod rcpt;
mod starttls;

pub use auth::AuthVerdict;

/// Settings resolved once from configuration and shared by every session.
#[derive(Debug)]
pub struct ServerSettings {
    /// Our name in the greeting, EHLO and Received: headers.
    pub hostname: String,
    /// Largest message accepted, in octets.
    pub max_message_size: usize,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
    /// Longest command or data line, in octets without CRLF.
    pub max_line_length: usize,
    /// Protocol errors tolerated before the connection is closed.
    pub max_errors: u32,
    /// Received: headers above which a message is refused as a mail loop.
    pub max_received_headers: usize,
    /// Who may send where.
    pub relay: RelayPolicy,
    /// TLS and AUTH: what is offered and what is required.
    pub security: Security,
    /// Where `RCPT TO:<postmaster>` (and `postmaster@` our hostname) goes: accepted from
    /// anyone as RFC 5321 §4.5.1 requires, whatever the relay policy. `None`: it is an
    /// ordinary address.
    pub postmaster: Option<Mailbox>,
    /// The spool: below its free-space reserve MAIL is refused before any data; it
    /// gives accepted messages their ids.
    pub room: Arc<dyn SpoolRoom>,
    /// Where bodies too large for memory are written while they arrive (`None`: all in
    /// memory).
    pub spill: Option<Spill>,
    /// Where the session stops for its policies (none: it never does).
    pub checks: CheckStages,
}

/// A message the client has finished sending and the protocol has accepted; the Session
/// hands it to the Queue and answers with what the Queue says.
#[derive(Debug)]
pub struct AcceptedMessage {
    /// The id given in the 250 reply and the Received: header.
    pub id: QueueId,
    /// MAIL FROM.
    pub sender: ReversePath,
    /// Accepted RCPT TOs, in order.
    pub recipients: Vec<Mailbox>,
    /// BODY=8BITMIME and SMTPUTF8 from MAIL FROM, to be passed on.
    pub options: MailOptions,
    /// The message with our Received: header in front, CRLF line ends, not dot-stuffed;
    /// only the header when the body is in `body_file`.
    pub data: Vec<u8>,
    /// A large body, in a file not yet fsynced: the Session syncs it before the message
    /// goes to the Queue.
    pub body_file: Option<IncomingBody>,
    /// The user the client authenticated as, kept with the message.
    pub user: Option<String>,
    /// A policy asked for the message to be queued on hold (DMARC quarantine).
    pub hold: bool,
    /// A policy sent every recipient to this next hop (DMARC quarantine transport).
    pub route: Option<String>,
    /// Its bytes, claimed against the spool's free-space reserve: the driver marks
    /// them stored once the message is queued ([`Claim::stored`]).
    pub claim: Option<Claim>,
    /// The W3C `traceparent` of the message's trace, set by the driver when it traces
    /// the message; kept in the envelope for the delivery attempts' spans.
    pub trace: Option<String>,
    /// A TLS report hermod made itself (see [`Envelope`](crate::store::envelope::Envelope)).
    pub tls_report: bool,
}

/// What the driver must do before feeding more bytes.
#[derive(Debug)]
pub enum Event {
    /// Queue this message, then write `Reply::queued(id)` or the queue's error.
    Enqueue(AcceptedMessage),
    /// Write the pending replies, then start TLS; bytes already buffered must be dropped.
    StartTls,
    /// Check these credentials, then hand the verdict to [`ServerSession::auth_verdict`]
    /// before feeding more input.
    Authenticate(Credentials),
    /// Ask the policies about these facts, then hand the verdict to
    /// [`ServerSession::check_verdict`] before feeding more input.
    Check(Facts),
    /// Write the pending replies, then close the connection.
    Close,
}

enum Phase {
    Command,
    /// Skipping the rest of an overlong command line.
    SkipLine,
    Data(DataReceiver),
    /// Reading a BDAT chunk into the transaction's receiver.
    Bdat {
        last: bool,
    },
    /// Reading and dropping a BDAT chunk that will be refused with `reply`.
    BdatDiscard {
        remaining: usize,
        reply: Reply,
    },
    /// Waiting for the client's answer to an AUTH challenge.
    Auth(auth::AuthStep),
}

struct Transaction {
    mail: MailFrom,
    /// Its bytes, claimed against the spool's free-space reserve.
    claim: Claim,
    recipients: Vec<Mailbox>,
    bdat: Option<BdatReceiver>,
    /// What the policies found at MAIL (SPF), for the checks at DATA.
    findings: Vec<Finding>,
}

/// The protocol state of one connection.
pub struct ServerSession {
    settings: Arc<ServerSettings>,
    client_ip: IpAddr,
    endpoint: Endpoint,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<TlsInfo>,
    user: Option<AuthenticatedUser>,
    transaction: Option<Transaction>,
    /// Transactions opened so far (the open one included): tells one from the next.
    transactions: u64,
    /// A command waiting for its policy verdict.
    pending: Option<policy::Pending>,
    phase: Phase,
    errors: u32,
    refusals: Vec<Reply>,
    /// Relay domains whose mail would come back to us (refused at RCPT with 5.4.6), as
    /// the driver last handed them in.
    looping: LoopSnapshot,
}

/// What one phase of [`ServerSession::feed`] did: go on with the next input, or stop
/// with an event for the driver (`Some`) or for more bytes (`None`).
type Step = ControlFlow<Option<Event>>;

impl ServerSession {
    /// A new connection from `client_ip`.
    pub fn new(settings: Arc<ServerSettings>, client_ip: IpAddr) -> Self {
        ServerSession {
            settings,
            client_ip,
            endpoint: Endpoint::default(),
            helo: None,
            esmtp: false,
            tls: None,
            user: None,
            transaction: None,
            transactions: 0,
            pending: None,
            phase: Phase::Command,
            errors: 0,
            refusals: Vec::new(),
            looping: LoopSnapshot::default(),
        }
    }

    /// The session of a connection that came in on `endpoint` (the default is a port 25
    /// style listener).
    pub fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Whether the connection starts with a TLS handshake (port 465 style).
    pub fn implicit_tls(&self) -> bool {
        self.endpoint.kind == ListenerKind::Submissions
    }

    /// The 220 banner.
    pub fn greeting(&self) -> Reply {
        Reply::greeting(&self.settings.hostname)
    }

    /// Whether the client is sending message content (the data timeout applies).
    pub fn in_data(&self) -> bool {
        matches!(
            self.phase,
            Phase::Data(_) | Phase::Bdat { .. } | Phase::BdatDiscard { .. }
        )
    }

    /// Whether a MAIL transaction is open (used to decide if a close loses work).
    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// How many transactions have opened, the open one included: the number of the open
    /// one, and one less than that of the one a MAIL being checked would open.
    pub fn transactions(&self) -> u64 {
        self.transactions
    }

    /// The EHLO/HELO name the client gave, once it has (for the message's trace).
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// What the TLS handshake agreed on, once TLS is up (for the message's trace).
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The relay domains found to loop back to us, from now on (the driver hands in each
    /// new finding before it feeds more input).
    pub fn looping_domains(&mut self, looping: LoopSnapshot) {
        self.looping = looping;
    }

    /// Records that TLS is now active: the state resets as RFC 3207 requires (what the
    /// client said before, including a user it authenticated as, is forgotten).
    pub fn tls_started(&mut self, info: TlsInfo) {
        self.tls = Some(info);
        self.helo = None;
        self.esmtp = false;
        self.user = None;
        self.transaction = None;
        self.phase = Phase::Command;
    }

    /// Consumes what it can from `input`, appending replies to `out`. Returns an event
    /// when the driver must act before more input is fed, `None` when it needs more bytes.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        now: SystemTime,
    ) -> Option<Event> {
        loop {
            if self.errors >= self.settings.max_errors {
                self.refuse(out, Reply::too_many_errors());
                return Some(Event::Close);
            }
            match &mut self.phase {
                Phase::Command => {
                    if let ControlFlow::Break(stop) = self.command_phase(input, out) {
                        return stop;
                    }
                }
                Phase::SkipLine => {
                    let Some(lf) = input.iter().position(|&b| b == b'\n') else {
                        input.clear();
                        return None;
                    };
                    input.advance(lf + 1);
                    self.phase = Phase::Command;
                }
                Phase::Data(receiver) => {
                    let result = receiver.feed(input)?;
                    self.phase = Phase::Command;
                    if let Some(event) = self.finish_message(result, out, now) {
                        return Some(event);
                    }
                }
                Phase::Bdat { last } => {
                    let last = *last;
                    if let ControlFlow::Break(stop) = self.bdat_phase(last, input, out, now) {
                        return stop;
                    }
                }
                Phase::BdatDiscard { remaining, reply } => {
                    let n = (*remaining).min(input.len());
                    input.advance(n);
                    *remaining -= n;
                    if *remaining > 0 {
                        return None;
                    }
                    let reply = reply.clone();
                    self.phase = Phase::Command;
                    self.error(out, reply);
                }
                Phase::Auth(_) => {
                    if let ControlFlow::Break(stop) = self.auth_phase(input, out) {
                        return stop;
                    }
                }
            }
        }
    }

    /// One command line, if a whole one has arrived.
    fn command_phase(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Step {
        let Some(lf) = input.iter().position(|&b| b == b'\n') else {
            if input.len() > self.settings.max_line_length + 2 {
                self.error(out, Reply::line_too_long());
                self.phase = Phase::SkipLine;
                input.clear();
            }
            return ControlFlow::Break(None);
        };
        if lf > self.settings.max_line_length + 2 {
            // The same verdict as when the line arrives in pieces and its start alone
            // is too long: whatever the line holds.
            self.error(out, Reply::line_too_long());
            input.advance(lf + 1);
            return ControlFlow::Continue(());
        }
        let line = input.split_to(lf + 1);
        match self.command_line(&line, input, out) {
            Some(event) => ControlFlow::Break(Some(event)),
            None => ControlFlow::Continue(()),
        }
    }

    /// Octets of a BDAT chunk; at the end of the LAST one, the message.
    fn bdat_phase(
        &mut self,
        last: bool,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        now: SystemTime,
    ) -> Step {
        let Some(receiver) = self.transaction.as_mut().and_then(|t| t.bdat.as_mut()) else {
            return ControlFlow::Break(None);
        };
        if !receiver.feed(input) {
            return ControlFlow::Break(None);
        }
        self.phase = Phase::Command;
        if last {
            let Some(receiver) = self.transaction.as_mut().and_then(|t| t.bdat.take()) else {
                return ControlFlow::Break(None);
            };
            if let Some(event) = self.finish_message(receiver.finish(), out, now) {
                return ControlFlow::Break(Some(event));
            }
        } else {
            let size = self
                .transaction
                .as_ref()
                .and_then(|t| t.bdat.as_ref())
                .map_or(0, |r| r.len());
            Reply::chunk_ok(size).write_to(out);
        }
        ControlFlow::Continue(())
    }

    /// One line of an AUTH exchange, if a whole one has arrived.
    fn auth_phase(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Step {
        let Some(lf) = input.iter().position(|&b| b == b'\n') else {
            if input.len() > self.settings.max_line_length + 2 {
                self.phase = Phase::SkipLine;
                self.error(out, Reply::line_too_long());
                input.clear();
            }
            return ControlFlow::Break(None);
        };
        let line = input.split_to(lf + 1);
        match self.auth_response(&line, out) {
            Some(event) => ControlFlow::Break(Some(event)),
            None => ControlFlow::Continue(()),
        }
    }

    /// Writes a refusal that counts toward `max_errors` and records it for the log.
    fn error(&mut self, out: &mut Vec<u8>, reply: Reply) {
        self.errors += 1;
        self.refuse(out, reply);
    }

    /// Writes a refusal and records it for the log.
    fn refuse(&mut self, out: &mut Vec<u8>, reply: Reply) {
        reply.write_to(out);
        self.refusals.push(reply);
    }

    /// The refusals written since the last call, so the driver can log each with the
    /// client's address and count it by reason.
    pub fn take_refusals(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.refusals)
    }

    fn command_line(
        &mut self,
        line: &[u8],
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        let crlf = line.len() >= 2 && line[line.len() - 2] == b'\r';
        let content = &line[..line.len() - if crlf { 2 } else { 1 }];
        if !crlf {
            // What follows the bare LF may be a second command to a lenient reader, or
            // the rest of this one: neither may run.
            self.refuse(out, Reply::bare_lf_command_closing());
            return Some(Event::Close);
        }
        if content.contains(&b'\r') {
            self.error(out, Reply::bare_line_ending_command());
            return None;
        }
        if content.len() > self.settings.max_line_length {
            self.error(out, Reply::line_too_long());
            return None;
        }
        let command = match command::parse(content, &self.settings.hostname) {
            Ok(command) => command,
            Err(CommandError::BadChunkSize) => {
                // The chunk's payload follows and cannot be skipped: closing is the only
                // way it is never read as commands.
                self.refuse(out, Reply::bad_chunk_size());
                return Some(Event::Close);
            }
            Err(e) => {
                let reply = command_error_reply(e);
                self.error(out, reply);
                return None;
            }
        };
        self.command(command, input, out)
    }

    fn command(
        &mut self,
        command: Command,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        match command {
            Command::Ehlo(domain) => return self.ehlo(domain, out),
            Command::Helo(domain) => return self.helo(domain, out),
            Command::Mail(mail) => return self.mail(mail, out),
            Command::Rcpt(rcpt) => return self.rcpt(rcpt, out),
            Command::Data => self.data(out),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.transaction = None;
                Reply::reset_ok().write_to(out);
            }
            Command::Noop => Reply::ok().write_to(out),
            Command::Quit => {
                Reply::bye().write_to(out);
                return Some(Event::Close);
            }
            Command::Vrfy => Reply::vrfy().write_to(out),
            Command::Help => Reply::help().write_to(out),
            Command::StartTls => return self.starttls(input, out),
            Command::Auth { mechanism, initial } => {
                return self.auth(&mechanism, initial.as_deref(), out);
            }
        }
        None
    }
}

fn command_error_reply(error: CommandError) -> Reply {
    match error {
        CommandError::Unknown => Reply::unknown_command(),
        CommandError::Syntax(expected) => Reply::syntax(expected),
        CommandError::Address { which, error } => Reply::bad_address(which, &error.to_string()),
        CommandError::UnsupportedParameter(name) => Reply::unsupported_parameter(&name),
        CommandError::BadBody(value) => Reply::bad_body_type(&value),
        CommandError::BadChunkSize => Reply::bad_chunk_size(),
        CommandError::DomainTooLong => Reply::helo_name_too_long(),
        CommandError::BadHeloName => Reply::bad_helo_name(),
    }
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
