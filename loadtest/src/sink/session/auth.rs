//! AUTH PLAIN and AUTH LOGIN against the one configured user.

use super::{Session, State, Step};
use crate::sink::counters::bump;
use crate::sink::replies;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

impl Session {
    /// AUTH with a mechanism and optional initial response.
    pub(super) fn auth(
        &mut self,
        mechanism: &str,
        initial: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        if self.shared.config.auth.is_none() || self.authenticated || self.tx.is_some() {
            self.error(replies::AUTH_UNAVAILABLE, out);
            return None;
        }
        if mechanism.eq_ignore_ascii_case("PLAIN") {
            match initial {
                Some(response) => return self.auth_plain_response(response.as_bytes(), out),
                None => {
                    out.extend_from_slice(replies::AUTH_CONTINUE);
                    self.state = State::AuthPlain;
                }
            }
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            match initial {
                Some(user) => return self.auth_login_user(user.as_bytes(), out),
                None => {
                    out.extend_from_slice(replies::AUTH_USERNAME);
                    self.state = State::AuthLoginUser;
                }
            }
        } else {
            self.error(replies::AUTH_MECHANISM, out);
        }
        None
    }

    /// The PLAIN response: base64 of `authzid NUL user NUL password`.
    pub(super) fn auth_plain_response(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<Step> {
        let decoded = self.decode_or_cancel(line, out)?;
        let mut parts = decoded.split(|&b| b == 0);
        let (_authzid, user, pass) = (parts.next(), parts.next(), parts.next());
        let ok =
            matches!((user, pass, parts.next()), (Some(u), Some(p), None) if self.matches(u, p));
        self.auth_result(ok, out);
        None
    }

    /// The LOGIN user name; the password is asked next.
    pub(super) fn auth_login_user(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<Step> {
        let user = self.decode_or_cancel(line, out)?;
        out.extend_from_slice(replies::AUTH_PASSWORD);
        self.state = State::AuthLoginPass(user);
        None
    }

    /// The LOGIN password.
    pub(super) fn auth_login_password(
        &mut self,
        user: &[u8],
        line: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let pass = self.decode_or_cancel(line, out)?;
        let ok = self.matches(user, &pass);
        self.auth_result(ok, out);
        None
    }

    /// Decodes a response line; `*` or bad base64 cancels the exchange.
    fn decode_or_cancel(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<Vec<u8>> {
        let decoded = if line == b"*" {
            None
        } else {
            BASE64.decode(line.trim_ascii()).ok()
        };
        if decoded.is_none() {
            bump(&self.shared.counters.auth_failures);
            self.error(replies::AUTH_CANCELLED, out);
        }
        decoded
    }

    /// Whether the credentials are the configured ones.
    fn matches(&self, user: &[u8], pass: &[u8]) -> bool {
        self.shared
            .config
            .auth
            .as_ref()
            .is_some_and(|(u, p)| u.as_bytes() == user && p.as_bytes() == pass)
    }

    /// Answers and counts the outcome.
    fn auth_result(&mut self, ok: bool, out: &mut Vec<u8>) {
        if ok {
            self.authenticated = true;
            bump(&self.shared.counters.auth_successes);
            out.extend_from_slice(replies::AUTH_OK);
        } else {
            bump(&self.shared.counters.auth_failures);
            self.error(replies::AUTH_FAILED, out);
        }
    }
}
