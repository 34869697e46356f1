//! Stopping for the policies: at HELO, MAIL, RCPT and the end of DATA the session keeps
//! what it was about to accept, raises [`Event::Check`] with the facts so far, and
//! finishes the command with the verdict it is given ([`ServerSession::check_verdict`]).
//! Nothing is fed in between, so pipelined commands keep their replies in order.

use super::{AcceptedMessage, Event, ServerSession, Transaction};
use crate::protocol::address::Mailbox;
use crate::protocol::check::{Acceptance, CheckStage, Facts, Finding, Verdict};
use crate::protocol::command::MailFrom;
use crate::protocol::reply::Reply;

/// A command waiting for its verdict.
pub(super) enum Pending {
    /// EHLO (`esmtp`) or HELO with this name.
    Helo { domain: String, esmtp: bool },
    /// MAIL FROM.
    Mail(MailFrom),
    /// RCPT TO, and whether it is the postmaster (whom everyone must reach).
    Rcpt(Mailbox, bool),
    /// The whole message, and what the checks at MAIL found.
    Data(Box<AcceptedMessage>, Vec<Finding>),
}

impl ServerSession {
    /// Whether the session stops for its policies at `stage`.
    pub(super) fn checks(&self, stage: CheckStage) -> bool {
        self.settings.checks.contains(stage)
    }

    /// Keeps `pending` and raises the check.
    pub(super) fn stop_for_check(&mut self, mut pending: Pending) -> Option<Event> {
        let stage = match &pending {
            Pending::Helo { .. } => CheckStage::Helo,
            Pending::Mail(_) => CheckStage::Mail,
            Pending::Rcpt(..) => CheckStage::Rcpt,
            Pending::Data(..) => CheckStage::Data,
        };
        let mut facts = Facts::connect(
            self.client_ip,
            self.settings.relay.is_trusted_client(self.client_ip),
        );
        facts.stage = stage;
        if let Some(user) = &self.user {
            facts.user = Some(user.name.clone());
            facts.user_senders = user.senders.clone();
        }
        facts.helo = self.helo.clone();
        if let Some(transaction) = &self.transaction {
            facts.sender = Some(transaction.mail.sender.to_string());
            facts.findings = transaction.findings.clone();
        }
        match &mut pending {
            Pending::Helo { domain, .. } => facts.helo = Some(domain.clone()),
            Pending::Mail(mail) => facts.sender = Some(mail.sender.to_string()),
            Pending::Rcpt(rcpt, postmaster) => {
                facts.recipients = vec![rcpt.to_string()];
                facts.postmaster = *postmaster;
            }
            Pending::Data(message, findings) => {
                facts.queue_id = Some(message.id);
                facts.findings = findings.clone();
                facts.sender = Some(message.sender.to_string());
                facts.recipients = message.recipients.iter().map(ToString::to_string).collect();
                facts.size =
                    message.data.len() + message.body_file.as_ref().map_or(0, |f| f.len() as usize);
                match message.body_file.as_mut() {
                    None => facts.message = Some(std::sync::Arc::new(message.data.clone())),
                    // The policies read the file; if it cannot even be written out, they
                    // see no content, and the fsync before queueing fails the same way.
                    Some(file) => {
                        if file.flush().is_ok() {
                            facts.body_file = Some(file.path().to_path_buf());
                        }
                    }
                }
            }
        }
        self.pending = Some(pending);
        Some(Event::Check(facts))
    }

    /// Finishes the command that raised the last [`Event::Check`]: accepted as it would
    /// have been without policies, or refused with the verdict's reply. At DATA an
    /// accepted message comes back as [`Event::Enqueue`] with the verdict's headers on
    /// top.
    pub fn check_verdict(&mut self, verdict: Verdict, out: &mut Vec<u8>) -> Option<Event> {
        let pending = self.pending.take()?;
        let mut accepted = match verdict {
            Verdict::Accept(accepted) => accepted,
            Verdict::Defer(reply) | Verdict::Reject(reply) => {
                // A refused message's spilled body file goes with `pending`.
                self.refuse(out, reply);
                return None;
            }
        };
        match pending {
            Pending::Helo { domain, esmtp } => {
                self.greet(domain, esmtp, out);
                None
            }
            Pending::Mail(mail) => {
                self.open_transaction(mail, accepted.findings, out);
                None
            }
            Pending::Rcpt(rcpt, _) => {
                if let Some(transaction) = self.transaction.as_mut() {
                    transaction.recipients.push(rcpt);
                }
                Reply::recipient_ok().write_to(out);
                None
            }
            Pending::Data(mut message, _) => {
                message.hold |= accepted.hold;
                if accepted.route.is_some() {
                    message.route = accepted.route.take();
                }
                if let (Some(file), Some(path)) = (
                    message.body_file.as_mut(),
                    accepted.replace_body_file.take(),
                ) && let Err(e) = file.replace_with(path)
                {
                    self.refuse(
                        out,
                        Reply::queue_unavailable(&format!("replacing the body file: {e}")),
                    );
                    return None;
                }
                if !accepted.headers.is_empty() || !accepted.remove.is_empty() {
                    message.data = edited(&message.data, accepted);
                }
                Some(Event::Enqueue(*message))
            }
        }
    }

    /// A transaction starts with `mail`.
    pub(super) fn open_transaction(
        &mut self,
        mail: MailFrom,
        findings: Vec<Finding>,
        out: &mut Vec<u8>,
    ) {
        let estimate = super::cost_of(mail.size.map_or(super::DEFAULT_CLAIM, |size| size as u64));
        let Some(claim) = self.settings.room.try_claim(estimate) else {
            // Its bytes would reach into the reserve: refused before the client sends
            // them, and not the client's error.
            self.refuse(out, Reply::insufficient_storage());
            return;
        };
        self.transaction = Some(Transaction {
            mail,
            claim,
            recipients: Vec::new(),
            bdat: None,
            findings,
        });
        self.transactions += 1;
        Reply::sender_ok().write_to(out);
    }
}

/// `header` with every control character a policy copied from a peer (a DKIM `d=`, a
/// From: domain, a reply text) replaced by `?`; a line break stays only where it folds
/// the header (followed by a space or tab), so nothing can start a header of its own.
fn header_safe(header: &str) -> std::borrow::Cow<'_, str> {
    let bad = crate::protocol::text::is_unsafe;
    let folds_only = !header.char_indices().any(|(i, c)| match c {
        '\t' => false,
        '\r' => !header[i..].starts_with("\r\n ") && !header[i..].starts_with("\r\n\t"),
        '\n' => !(header[..i].ends_with('\r') && header[i + 1..].starts_with([' ', '\t'])),
        c => bad(c),
    });
    if folds_only {
        return std::borrow::Cow::Borrowed(header);
    }
    let mut out = String::with_capacity(header.len());
    let mut chars = header.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\r' && (header[i..].starts_with("\r\n ") || header[i..].starts_with("\r\n\t")) {
            out.push_str("\r\n");
            chars.next();
        } else if c == '\t' || !bad(c) {
            out.push(c);
        } else {
            out.push('?');
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `data` with the accepted headers on top and the ranges to remove taken out (ranges
/// out of bounds or overlapping an earlier one are skipped).
fn edited(data: &[u8], accepted: Acceptance) -> Vec<u8> {
    // `remove` is about `data` only when the whole message is in memory; a policy
    // replaces a body file instead.
    let mut out = Vec::with_capacity(data.len() + 256);
    for header in &accepted.headers {
        out.extend_from_slice(header_safe(header).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut remove = accepted.remove;
    remove.sort_by_key(|r| r.start);
    let mut at = 0;
    for range in remove {
        if range.start < at || range.end > data.len() || range.start > range.end {
            continue;
        }
        out.extend_from_slice(&data[at..range.start]);
        at = range.end;
    }
    out.extend_from_slice(&data[at..]);
    out
}

#[cfg(test)]
mod header_tests {
    use super::header_safe;

    #[test]
    fn a_header_keeps_its_folds_and_loses_its_injected_lines_and_controls() {
        let signed = "DKIM-Signature: v=1; a=rsa-sha256;\r\n\td=shop.test; s=s1;\r\n b=abc";
        assert_eq!(header_safe(signed), signed);
        assert_eq!(
            header_safe("Authentication-Results: mx; dkim=pass header.d=x\r\nBcc: victim@x\x1b[2J"),
            "Authentication-Results: mx; dkim=pass header.d=x??Bcc: victim@x?[2J"
        );
        assert_eq!(header_safe("X: a\nb\u{2028}"), "X: a?b?");
    }
}
