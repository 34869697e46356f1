//! EHLO and HELO: the greeting that starts (or restarts) a session, and the extensions
//! hermod offers.

use super::ServerSession;
use crate::protocol::reply::Reply;

impl ServerSession {
    pub(super) fn ehlo(&mut self, domain: String, out: &mut Vec<u8>) {
        self.transaction = None;
        Reply::ehlo(&self.settings.hostname, &domain, self.extensions()).write_to(out);
        self.helo = Some(domain);
        self.esmtp = true;
    }

    pub(super) fn helo(&mut self, domain: String, out: &mut Vec<u8>) {
        self.transaction = None;
        Reply::helo(&self.settings.hostname, &domain).write_to(out);
        self.helo = Some(domain);
        self.esmtp = false;
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
