//! The server side of one SMTP connection as a state machine: the Session actor feeds it
//! the bytes it reads and `now`, and writes out the replies it produces. It stops at
//! each point where the outside world must act first (queue the message, start TLS,
//! close), so replies always go out in order, even to a pipelining client.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, BytesMut};

use super::address::{Mailbox, ReversePath};
use super::command::{self, Command, CommandError, MailFrom, MailOptions};
use super::receiver::{BdatReceiver, BodyLimits, BodyResult, DataReceiver, ReceivedBody, Spill};
use super::reply::Reply;
use crate::policy::mail_loop::LoopingDomains;
use crate::policy::relay::RelayPolicy;
use crate::protocol::datetime;
use crate::queue::id::{QueueId, QueueIdGenerator};
use crate::store::body_file::IncomingBody;
use crate::store::disk_space::DiskSpace;

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
    /// Relay domains whose mail would come back to us (refused at RCPT with 5.4.6).
    pub loops: Arc<LoopingDomains>,
    /// Where queue ids come from.
    pub ids: Arc<QueueIdGenerator>,
    /// Whether STARTTLS is offered.
    pub starttls: bool,
    /// Where `RCPT TO:<postmaster>` (and `postmaster@` our hostname) goes: accepted from
    /// anyone as RFC 5321 §4.5.1 requires, whatever the relay policy. `None`: it is an
    /// ordinary address.
    pub postmaster: Option<Mailbox>,
    /// The spool's free space: below the reserve, MAIL is refused before any data.
    pub disk: Arc<DiskSpace>,
    /// Where bodies too large for memory are written while they arrive (`None`: all in
    /// memory).
    pub spill: Option<Spill>,
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
}

/// What the driver must do before feeding more bytes.
#[derive(Debug)]
pub enum Event {
    /// Queue this message, then write `Reply::queued(id)` or the queue's error.
    Enqueue(AcceptedMessage),
    /// Write the pending replies, then start TLS; bytes already buffered must be dropped.
    StartTls,
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
}

struct Transaction {
    mail: MailFrom,
    recipients: Vec<Mailbox>,
    bdat: Option<BdatReceiver>,
}

/// The protocol state of one connection.
pub struct ServerSession {
    settings: Arc<ServerSettings>,
    client_ip: IpAddr,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    transaction: Option<Transaction>,
    phase: Phase,
    errors: u32,
    refusals: Vec<Reply>,
}

impl ServerSession {
    /// A new connection from `client_ip`.
    pub fn new(settings: Arc<ServerSettings>, client_ip: IpAddr) -> Self {
        ServerSession {
            settings,
            client_ip,
            helo: None,
            esmtp: false,
            tls: false,
            transaction: None,
            phase: Phase::Command,
            errors: 0,
            refusals: Vec::new(),
        }
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

    /// Records that TLS is now active: the state resets as RFC 3207 requires.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
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
                    let Some(lf) = input.iter().position(|&b| b == b'\n') else {
                        if input.len() > self.settings.max_line_length + 2 {
                            self.error(out, Reply::line_too_long());
                            self.phase = Phase::SkipLine;
                            input.clear();
                        }
                        return None;
                    };
                    if lf > self.settings.max_line_length + 2 {
                        // The same verdict as when the line arrives in pieces and its
                        // start alone is too long: whatever the line holds.
                        self.error(out, Reply::line_too_long());
                        input.advance(lf + 1);
                        continue;
                    }
                    let line = input.split_to(lf + 1);
                    if let Some(event) = self.command_line(&line, input, out) {
                        return Some(event);
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
                    let transaction = self.transaction.as_mut()?;
                    let receiver = transaction.bdat.as_mut()?;
                    if !receiver.feed(input) {
                        return None;
                    }
                    self.phase = Phase::Command;
                    if last {
                        let receiver = self.transaction.as_mut()?.bdat.take()?;
                        if let Some(event) = self.finish_message(receiver.finish(), out, now) {
                            return Some(event);
                        }
                    } else {
                        let size = self
                            .transaction
                            .as_ref()
                            .and_then(|t| t.bdat.as_ref())
                            .map_or(0, |r| r.len());
                        Reply::chunk_ok(size).write_to(out);
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
            }
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
            Command::Ehlo(domain) => {
                self.transaction = None;
                Reply::ehlo(&self.settings.hostname, &domain, self.extensions()).write_to(out);
                self.helo = Some(domain);
                self.esmtp = true;
            }
            Command::Helo(domain) => {
                self.transaction = None;
                Reply::helo(&self.settings.hostname, &domain).write_to(out);
                self.helo = Some(domain);
                self.esmtp = false;
            }
            Command::Mail(mail) => self.mail(mail, out),
            Command::Rcpt(rcpt) => self.rcpt(rcpt, out),
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
            Command::StartTls if self.settings.starttls && !self.tls => {
                Reply::ready_to_start_tls().write_to(out);
                input.clear();
                return Some(Event::StartTls);
            }
            Command::StartTls => self.error(out, Reply::not_implemented("STARTTLS")),
        }
        None
    }

    fn extensions(&self) -> Vec<String> {
        let mut ext = vec![
            "PIPELINING".to_string(),
            format!("SIZE {}", self.settings.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
        ];
        if self.settings.starttls && !self.tls {
            ext.push("STARTTLS".to_string());
        }
        ext
    }

    fn mail(&mut self, mail: MailFrom, out: &mut Vec<u8>) {
        if self.helo.is_none() {
            return self.error(out, Reply::bad_sequence("send EHLO or HELO first"));
        }
        if self.transaction.is_some() {
            return self.error(out, Reply::bad_sequence("nested MAIL command"));
        }
        if mail
            .size
            .is_some_and(|size| size > self.settings.max_message_size)
        {
            return self.error(out, Reply::message_too_big(self.settings.max_message_size));
        }
        if self.settings.disk.is_low() {
            // Refused before the client spends the data; not the client's error.
            return self.refuse(out, Reply::insufficient_storage());
        }
        self.transaction = Some(Transaction {
            mail,
            recipients: Vec::new(),
            bdat: None,
        });
        Reply::sender_ok().write_to(out);
    }

    fn rcpt(&mut self, rcpt: Mailbox, out: &mut Vec<u8>) {
        let max = self.settings.max_recipients;
        let postmaster = self.postmaster_for(&rcpt);
        let rcpt = postmaster.clone().unwrap_or(rcpt);
        let Some(transaction) = self.transaction.as_mut() else {
            return self.error(out, Reply::bad_sequence("need MAIL before RCPT"));
        };
        if transaction.recipients.contains(&rcpt) {
            // A duplicate gets the same answer as the first, but one delivery.
            return Reply::recipient_ok().write_to(out);
        }
        if transaction.recipients.len() >= max {
            // Counts as an error (Postfix's hard error limit does the same): a client
            // that keeps sending RCPT past the limit is cut off, not answered forever.
            return self.error(out, Reply::too_many_recipients(max));
        }
        if postmaster.is_none() && !self.settings.relay.allows(self.client_ip, &rcpt) {
            let reply = Reply::relay_denied(&rcpt.to_string());
            return self.error(out, reply);
        }
        if self.settings.loops.loops(&rcpt.domain) {
            let reply = Reply::loops_back(&rcpt.to_string(), &rcpt.domain);
            return self.error(out, reply);
        }
        transaction.recipients.push(rcpt);
        Reply::recipient_ok().write_to(out);
    }

    /// The configured postmaster, when `rcpt` is our postmaster address.
    fn postmaster_for(&self, rcpt: &Mailbox) -> Option<Mailbox> {
        let postmaster = self.settings.postmaster.as_ref()?;
        (rcpt.local.eq_ignore_ascii_case("postmaster")
            && rcpt.domain.eq_ignore_ascii_case(&self.settings.hostname))
        .then(|| postmaster.clone())
    }

    fn limits(&self) -> BodyLimits {
        BodyLimits {
            max_size: self.settings.max_message_size,
            max_line: self.settings.max_line_length,
            spill: self.settings.spill.clone(),
        }
    }

    fn data(&mut self, out: &mut Vec<u8>) {
        let Some(transaction) = self.transaction.as_ref() else {
            return self.error(out, Reply::bad_sequence("need MAIL before DATA"));
        };
        if transaction.bdat.is_some() {
            return self.error(out, Reply::bad_sequence("DATA after BDAT"));
        }
        if transaction.recipients.is_empty() {
            return self.error(out, Reply::no_valid_recipients());
        }
        let hint = transaction.mail.size.unwrap_or(0);
        self.phase = Phase::Data(DataReceiver::new(self.limits(), hint));
        Reply::start_data().write_to(out);
    }

    fn bdat(&mut self, size: usize, last: bool) {
        let limits = self.limits();
        let max_size = self.settings.max_message_size;
        let refusal = match self.transaction.as_mut() {
            None => Some(Reply::bad_sequence("need MAIL before BDAT")),
            Some(t) if t.recipients.is_empty() => Some(Reply::no_valid_recipients()),
            // Refused at the chunk that passes the limit, not after the client has sent
            // every chunk; the message is over, as RFC 3030 §2 says of a failed BDAT.
            Some(t)
                if t.bdat
                    .as_ref()
                    .map_or(0, BdatReceiver::len)
                    .saturating_add(size)
                    > max_size =>
            {
                self.transaction = None;
                Some(Reply::message_too_big(max_size))
            }
            Some(t) => {
                t.bdat
                    .get_or_insert_with(|| BdatReceiver::new(limits))
                    .begin_chunk(size);
                None
            }
        };
        self.phase = match refusal {
            Some(reply) => {
                if last {
                    self.transaction = None;
                }
                Phase::BdatDiscard {
                    remaining: size,
                    reply,
                }
            }
            None => Phase::Bdat { last },
        };
    }

    fn finish_message(
        &mut self,
        result: BodyResult,
        out: &mut Vec<u8>,
        now: SystemTime,
    ) -> Option<Event> {
        let transaction = self.transaction.take()?;
        let body = match result {
            Ok(body) => body,
            Err(problem) => {
                self.error(out, problem.reply(self.settings.max_message_size));
                return None;
            }
        };
        let hops = count_received_headers(body.start());
        if hops > self.settings.max_received_headers {
            self.refuse(out, Reply::mail_loop(hops));
            return None;
        }
        let id = self.settings.ids.next_id();
        let mut data = self.received_header(id, &transaction, now).into_bytes();
        let body_file = match body {
            ReceivedBody::Memory(body) => {
                data.extend_from_slice(&body);
                None
            }
            ReceivedBody::File { file, .. } => Some(file),
        };
        Some(Event::Enqueue(AcceptedMessage {
            id,
            options: MailOptions {
                eight_bit_mime: transaction.mail.eight_bit,
                smtputf8: transaction.mail.smtputf8,
            },
            sender: transaction.mail.sender,
            recipients: transaction.recipients,
            data,
            body_file,
        }))
    }

    fn received_header(&self, id: QueueId, transaction: &Transaction, now: SystemTime) -> String {
        let protocol = match (transaction.mail.smtputf8, self.esmtp, self.tls) {
            (true, _, true) => "UTF8SMTPS",
            (true, _, false) => "UTF8SMTP",
            (false, true, true) => "ESMTPS",
            (false, true, false) => "ESMTP",
            (false, false, true) => "SMTPS",
            (false, false, false) => "SMTP",
        };
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let ip = match self.client_ip {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        let for_clause = match transaction.recipients.as_slice() {
            [only] => format!("\r\n\tfor <{only}>"),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ({ip})\r\n\tby {} (hermod) with {protocol} id {id}{for_clause};\r\n\t{}\r\n",
            self.settings.hostname,
            datetime::rfc5322(now)
        )
    }
}

/// Received: headers in the header section (up to the first empty line).
fn count_received_headers(message: &[u8]) -> usize {
    message
        .split(|&b| b == b'\n')
        .take_while(|line| *line != b"\r" && !line.is_empty())
        .filter(|line| line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:"))
        .count()
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
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
