//! EHLO, HELO, LHLO and STARTTLS.

use super::{Session, State, Step};
use crate::sink::config::DelayPoint;
use crate::sink::replies;

impl Session {
    /// Greets the client; `extended` for EHLO/LHLO, `lhlo` for the LMTP verb.
    pub(super) fn hello(&mut self, name: &str, extended: bool, lhlo: bool, out: &mut Vec<u8>) {
        if lhlo != self.shared.config.lmtp {
            let reply = if self.shared.config.lmtp {
                replies::USE_LHLO
            } else {
                replies::USE_EHLO
            };
            return self.error(reply, out);
        }
        self.helo = Some(name.to_string());
        self.tx = None;
        let reply = match (extended, self.tls) {
            (false, _) => &self.shared.helo,
            (true, false) => &self.shared.ehlo_plain,
            (true, true) => &self.shared.ehlo_tls,
        };
        out.extend_from_slice(reply);
        self.maybe_delay(DelayPoint::Hello);
    }

    /// STARTTLS: answers 220 and hands the socket to the TLS handshake.
    pub(super) fn starttls(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        if self.tls || self.shared.tls.is_none() || !self.shared.config.starttls {
            self.error(replies::TLS_UNAVAILABLE, out);
            return None;
        }
        out.extend_from_slice(replies::TLS_GO);
        Some(Step::StartTls)
    }

    /// The handshake succeeded: the session starts over inside TLS (RFC 3207).
    pub(crate) fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.tx = None;
        self.authenticated = false;
        self.state = State::Command;
    }
}
