//! STARTTLS (RFC 3207): offered when a certificate is configured and TLS is not already
//! on. Whatever the client pipelined behind the command is dropped, so it can never run
//! as if it came over TLS (the CVE-2011-0411 command injection).

use bytes::BytesMut;

use super::{Event, ServerSession};
use crate::protocol::reply::Reply;

impl ServerSession {
    /// Whether STARTTLS is on offer now.
    pub(super) fn starttls_offered(&self) -> bool {
        self.settings.security.tls && self.tls.is_none() && !self.implicit_tls()
    }

    pub(super) fn starttls(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> Option<Event> {
        if self.tls.is_some() || self.implicit_tls() {
            self.error(out, Reply::tls_already_active());
            return None;
        }
        if !self.settings.security.tls {
            self.refuse(
                out,
                Reply::tls_not_available("no certificate is configured"),
            );
            return None;
        }
        if self.transaction.is_some() {
            self.error(
                out,
                Reply::bad_sequence("STARTTLS during a mail transaction"),
            );
            return None;
        }
        Reply::ready_to_start_tls().write_to(out);
        input.clear();
        Some(Event::StartTls)
    }
}
