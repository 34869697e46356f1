//! EHLO and HELO: the greeting that starts (or restarts) a session, and the extensions
//! hermod offers.

use std::borrow::Cow;

use super::policy::Pending;
use super::{Event, ServerSession};
use crate::protocol::check::CheckStage;
use crate::protocol::reply::Reply;

impl ServerSession {
    pub(super) fn ehlo(&mut self, domain: String, out: &mut Vec<u8>) -> Option<Event> {
        self.hello(domain, true, out)
    }

    pub(super) fn helo(&mut self, domain: String, out: &mut Vec<u8>) -> Option<Event> {
        self.hello(domain, false, out)
    }

    fn hello(&mut self, domain: String, esmtp: bool, out: &mut Vec<u8>) -> Option<Event> {
        self.transaction = None;
        if self.checks(CheckStage::Helo) {
            // A refused EHLO leaves the session without a greeting, not with the last one.
            self.helo = None;
            return self.stop_for_check(Pending::Helo { domain, esmtp });
        }
        self.greet(domain, esmtp, out);
        None
    }

    /// Answers EHLO (`esmtp`) or HELO and remembers the name.
    pub(super) fn greet(&mut self, domain: String, esmtp: bool, out: &mut Vec<u8>) {
        if esmtp {
            Reply::ehlo(&self.settings.hostname, &domain, self.extensions()).write_to(out);
        } else {
            Reply::helo(&self.settings.hostname, &domain).write_to(out);
        }
        self.helo = Some(domain);
        self.esmtp = esmtp;
    }

    /// The extensions offered, with room for the greeting line [`Reply::ehlo`] puts
    /// first; fixed names are not allocated.
    fn extensions(&self) -> Vec<Cow<'static, str>> {
        let mut ext = Vec::with_capacity(9);
        ext.extend([
            Cow::Borrowed("PIPELINING"),
            Cow::Owned(format!("SIZE {}", self.settings.max_message_size)),
            Cow::Borrowed("8BITMIME"),
            Cow::Borrowed("ENHANCEDSTATUSCODES"),
            Cow::Borrowed("SMTPUTF8"),
            Cow::Borrowed("CHUNKING"),
        ]);
        if self.starttls_offered() {
            ext.push(Cow::Borrowed("STARTTLS"));
        }
        if self.auth_offered() {
            ext.push(Cow::Owned(format!(
                "AUTH {}",
                crate::protocol::sasl::MECHANISMS
            )));
        }
        ext
    }
}
