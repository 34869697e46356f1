//! EHLO and HELO: the greeting that starts (or restarts) a session, and the extensions
//! hermod offers.

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

    fn extensions(&self) -> Vec<String> {
        let mut ext = vec![
            "PIPELINING".to_string(),
            format!("SIZE {}", self.settings.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
        ];
        if self.starttls_offered() {
            ext.push("STARTTLS".to_string());
        }
        if self.auth_offered() {
            ext.push(format!("AUTH {}", crate::protocol::sasl::MECHANISMS));
        }
        ext
    }
}
