//! RCPT TO: one recipient joins the transaction, unless the limit, the relay policy or a
//! mail loop refuses it; the postmaster is accepted from anyone.

use super::ServerSession;
use crate::protocol::address::Mailbox;
use crate::protocol::reply::Reply;

impl ServerSession {
    pub(super) fn rcpt(&mut self, rcpt: Mailbox, out: &mut Vec<u8>) {
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
}
