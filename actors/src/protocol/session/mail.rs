//! MAIL FROM: a transaction starts, if the session greeted, TLS and AUTH are in place
//! where required, the user owns the sender, the declared size fits, the spool has room
//! and the policies agree.

use super::policy::Pending;
use super::{Event, ServerSession};
use crate::protocol::check::CheckStage;
use crate::protocol::command::MailFrom;
use crate::protocol::reply::Reply;

impl ServerSession {
    pub(super) fn mail(&mut self, mail: MailFrom, out: &mut Vec<u8>) -> Option<Event> {
        if let Some((reply, counts_as_error)) = self.mail_refusal(&mail) {
            if counts_as_error {
                self.error(out, reply);
            } else {
                self.refuse(out, reply);
            }
            return None;
        }
        if self.checks(CheckStage::Mail) {
            return self.stop_for_check(Pending::Mail(mail));
        }
        self.open_transaction(mail, Vec::new(), out);
        None
    }

    /// Why MAIL is refused, and whether that counts toward `max_errors`.
    fn mail_refusal(&self, mail: &MailFrom) -> Option<(Reply, bool)> {
        if self.helo.is_none() {
            return Some((Reply::bad_sequence("send EHLO or HELO first"), true));
        }
        if self.transaction.is_some() {
            return Some((Reply::bad_sequence("nested MAIL command"), true));
        }
        if !mail.smtputf8 && !mail.sender.to_string().is_ascii() {
            // RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter, or the
            // next hop would be handed it without being told.
            return Some((Reply::utf8_address_without_smtputf8("sender"), true));
        }
        if self.settings.security.require_tls && self.tls.is_none() {
            return Some((Reply::must_start_tls(), true));
        }
        if self.endpoint.require_auth && self.user.is_none() {
            return Some((Reply::auth_required(), true));
        }
        if let Some(user) = &self.user {
            let sender = mail.sender.to_string();
            if !user.may_send_as(&sender) {
                return Some((Reply::sender_not_owned(&sender, &user.name), true));
            }
        }
        if mail
            .size
            .is_some_and(|size| size > self.settings.max_message_size)
        {
            return Some((Reply::message_too_big(self.settings.max_message_size), true));
        }
        if self.settings.room.is_low() {
            // Refused before the client spends the data; not the client's error.
            return Some((Reply::insufficient_storage(), false));
        }
        None
    }
}
