//! DATA and BDAT: receiving the message content, checking it (size, loops by Received:
//! count), and handing it on with hermod's Received: header in front.

use std::net::IpAddr;
use std::time::SystemTime;

use super::policy::Pending;
use super::{AcceptedMessage, Event, Phase, ServerSession, Transaction};
use crate::core::id::QueueId;
use crate::protocol::check::CheckStage;
use crate::protocol::command::MailOptions;
use crate::protocol::datetime;
use crate::protocol::receiver::{BdatReceiver, BodyLimits, BodyResult, DataReceiver, ReceivedBody};
use crate::protocol::reply::Reply;

impl ServerSession {
    pub(super) fn limits(&self) -> BodyLimits {
        BodyLimits {
            max_size: self.settings.max_message_size,
            max_line: self.settings.max_line_length,
            spill: self.settings.spill.clone(),
        }
    }

    pub(super) fn data(&mut self, out: &mut Vec<u8>) {
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

    pub(super) fn bdat(&mut self, size: usize, last: bool) {
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

    pub(super) fn finish_message(
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
        let mut transaction = transaction;
        let in_memory = match &body {
            ReceivedBody::Memory(body) => body.len(),
            ReceivedBody::File { .. } => 0,
        };
        if !transaction
            .claim
            .grow_to(super::cost_of(in_memory as u64 + 1024))
        {
            self.refuse(out, Reply::insufficient_storage());
            return None;
        }
        let id = self.settings.room.next_id();
        let mut data = self.received_header(id, &transaction, now, in_memory);
        let body_file = match body {
            ReceivedBody::Memory(body) => {
                data.extend_from_slice(&body);
                None
            }
            ReceivedBody::File { file, .. } => Some(file),
        };
        let message = AcceptedMessage {
            id,
            options: MailOptions {
                eight_bit_mime: transaction.mail.eight_bit,
                smtputf8: transaction.mail.smtputf8,
            },
            sender: transaction.mail.sender,
            recipients: transaction.recipients,
            data,
            body_file,
            user: self.user.as_ref().map(|u| u.name.clone()),
            hold: false,
            route: None,
            claim: Some(transaction.claim),
            trace: None,
            tls_report: false,
        };
        if self.checks(CheckStage::Data) {
            return self.stop_for_check(Pending::Data(Box::new(message), transaction.findings));
        }
        Some(Event::Enqueue(message))
    }

    /// The `Received:` field hermod adds, in a buffer with room for the `body` octets
    /// that follow it (one allocation, no copy as the body is appended).
    fn received_header(
        &self,
        id: QueueId,
        transaction: &Transaction,
        now: SystemTime,
        body: usize,
    ) -> Vec<u8> {
        use std::fmt::Write as _;
        // RFC 3848 and RFC 6531 §3.7.3: S for TLS, A for an authenticated client.
        let base = match (transaction.mail.smtputf8, self.esmtp) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        };
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let mut header = String::with_capacity(512 + body);
        // Writing to a String cannot fail.
        let _ = match self.client_ip {
            IpAddr::V4(v4) => write!(header, "Received: from {helo} ([{v4}])"),
            IpAddr::V6(v6) => write!(header, "Received: from {helo} ([IPv6:{v6}])"),
        };
        if let Some(tls) = &self.tls {
            let _ = write!(
                header,
                "\r\n\t(using {} with cipher {})",
                tls.version, tls.cipher
            );
        }
        let _ = write!(
            header,
            "\r\n\tby {} (hermod) with {base}{}{} id {id}",
            self.settings.hostname,
            if self.tls.is_some() { "S" } else { "" },
            if self.user.is_some() { "A" } else { "" }
        );
        if let [only] = transaction.recipients.as_slice() {
            let _ = write!(header, "\r\n\tfor <{only}>");
        }
        let _ = write!(header, ";\r\n\t{}\r\n", datetime::rfc5322(now));
        header.into_bytes()
    }
}

/// Received: headers in the header section (up to the first empty line).
fn count_received_headers(message: &[u8]) -> usize {
    let mut count = 0;
    let mut at = 0;
    for end in memchr::memchr_iter(b'\n', message).chain([message.len()]) {
        let line = &message[at..end];
        if line == b"\r" || line.is_empty() {
            break;
        }
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            count += 1;
        }
        at = end + 1;
    }
    count
}
