//! MAIL FROM: a transaction starts, if the session greeted, TLS and AUTH are in place
//! where required, the user owns the sender, the declared size fits and the spool has
//! room.

use super::{ServerSession, Transaction};
use crate::protocol::command::MailFrom;
use crate::protocol::reply::Reply;

impl ServerSession {
    pub(super) fn mail(&mut self, mail: MailFrom, out: &mut Vec<u8>) {
        if self.helo.is_none() {
            return self.error(out, Reply::bad_sequence("send EHLO or HELO first"));
        }
        if self.transaction.is_some() {
            return self.error(out, Reply::bad_sequence("nested MAIL command"));
        }
        if self.settings.security.require_tls && self.tls.is_none() {
            return self.error(out, Reply::must_start_tls());
        }
        if self.endpoint.require_auth && self.user.is_none() {
            return self.error(out, Reply::auth_required());
        }
        if let Some(user) = &self.user {
            let sender = mail.sender.to_string();
            if !user.may_send_as(&sender) {
                let reply = Reply::sender_not_owned(&sender, &user.name);
                return self.error(out, reply);
            }
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
}
