//! RCPT TO: one recipient joins the transaction, unless the limit, the relay policy or a
//! mail loop refuses it (nor the policies); the postmaster is accepted from anyone, and
//! an authenticated user may relay anywhere.

use super::policy::Pending;
use super::{Event, ServerSession};
use crate::protocol::address::Mailbox;
use crate::protocol::check::CheckStage;
use crate::protocol::reply::Reply;

impl ServerSession {
    pub(super) fn rcpt(&mut self, rcpt: Mailbox, out: &mut Vec<u8>) -> Option<Event> {
        let (rcpt, postmaster) = self.rcpt_allowed(rcpt, out)?;
        if self.checks(CheckStage::Rcpt) {
            return self.stop_for_check(Pending::Rcpt(rcpt, postmaster));
        }
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.recipients.push(rcpt);
        }
        Reply::recipient_ok().write_to(out);
        None
    }

    /// The recipient to add and whether it is the postmaster, or `None` when it was
    /// answered already (refused, or a duplicate).
    fn rcpt_allowed(&mut self, rcpt: Mailbox, out: &mut Vec<u8>) -> Option<(Mailbox, bool)> {
        let max = self.settings.max_recipients;
        let postmaster = self.postmaster_for(&rcpt);
        let rcpt = postmaster.clone().unwrap_or(rcpt);
        let Some(transaction) = self.transaction.as_mut() else {
            self.error(out, Reply::bad_sequence("need MAIL before RCPT"));
            return None;
        };
        if transaction.recipients.contains(&rcpt) {
            // A duplicate gets the same answer as the first, but one delivery.
            Reply::recipient_ok().write_to(out);
            return None;
        }
        if !transaction.mail.smtputf8 && !rcpt.to_string().is_ascii() {
            self.error(out, Reply::utf8_address_without_smtputf8("recipient"));
            return None;
        }
        if transaction.recipients.len() >= max {
            // Counts as an error (Postfix's hard error limit does the same): a client
            // that keeps sending RCPT past the limit is cut off, not answered forever.
            self.error(out, Reply::too_many_recipients(max));
            return None;
        }
        // On submission listeners with `require_auth_for_relay`, only AUTH earns relaying.
        let trust_network =
            !(self.endpoint.kind.is_submission() && self.settings.security.require_auth_for_relay);
        let may_relay = self.user.is_some()
            || (trust_network && self.settings.relay.is_trusted_client(self.client_ip))
            || self.settings.relay.accepts_from_anyone(&rcpt);
        if postmaster.is_none() && !may_relay {
            let reply = Reply::relay_denied(&rcpt.to_string());
            self.error(out, reply);
            return None;
        }
        if self.looping.loops(&rcpt.domain) {
            let reply = Reply::loops_back(&rcpt.to_string(), &rcpt.domain);
            self.error(out, reply);
            return None;
        }
        Some((rcpt, postmaster.is_some()))
    }

    /// The configured postmaster, when `rcpt` is our postmaster address.
    fn postmaster_for(&self, rcpt: &Mailbox) -> Option<Mailbox> {
        let postmaster = self.settings.postmaster.as_ref()?;
        (rcpt.local.eq_ignore_ascii_case("postmaster")
            && rcpt.domain.eq_ignore_ascii_case(&self.settings.hostname))
        .then(|| postmaster.clone())
    }
}
