//! AUTH (RFC 4954) with PLAIN and LOGIN: offered after TLS (or on a listener trusted
//! with passwords in clear), once per session, outside a transaction. The protocol
//! decodes the exchange; the driver checks the credentials and hands back the verdict.

use super::{Event, Phase, ServerSession};
use crate::protocol::reply::Reply;
use crate::protocol::sasl::{self, Credentials, Mechanism, SaslError};
use crate::protocol::security::AuthenticatedUser;

/// Where an AUTH exchange stands while hermod waits for the client's next line.
pub(super) enum AuthStep {
    /// PLAIN, challenge sent: the next line is the whole message.
    Plain,
    /// LOGIN, "Username:" sent.
    LoginUser,
    /// LOGIN, "Password:" sent for this user.
    LoginPassword(String),
}

/// What checking the credentials of an [`Event::Authenticate`] found.
#[derive(Debug, Clone)]
pub enum AuthVerdict {
    /// They are valid: the session is this user's from now on.
    Accepted(AuthenticatedUser),
    /// Unknown user, wrong password or disabled user.
    Rejected,
    /// Too many failures from this client address: 421 and close.
    LockedOut,
    /// Too many failures for this user name from anywhere: its checks are paced and
    /// this one's turn is too far away; 454, try later.
    Paced,
    /// The user store cannot be read: 454, try later.
    Unavailable(String),
}

impl ServerSession {
    /// Whether AUTH is on offer now (for EHLO).
    pub(super) fn auth_offered(&self) -> bool {
        self.settings.security.auth
            && self.user.is_none()
            && (self.tls.is_some() || self.endpoint.plaintext_auth)
    }

    pub(super) fn auth(
        &mut self,
        mechanism: &str,
        initial: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        let refusal = if !self.settings.security.auth {
            Some(Reply::auth_not_offered())
        } else if self.helo.is_none() {
            Some(Reply::bad_sequence("send EHLO first"))
        } else if self.user.is_some() {
            Some(Reply::already_authenticated())
        } else if self.transaction.is_some() {
            Some(Reply::auth_in_transaction())
        } else if self.tls.is_none() && !self.endpoint.plaintext_auth {
            Some(Reply::encryption_required())
        } else {
            None
        };
        if let Some(reply) = refusal {
            self.error(out, reply);
            return None;
        }
        let Some(mechanism) = Mechanism::parse(mechanism) else {
            self.error(out, Reply::unknown_mechanism());
            return None;
        };
        match (mechanism, initial) {
            (Mechanism::Plain, Some(initial)) => self.plain(initial.as_bytes(), out),
            (Mechanism::Plain, None) => {
                self.challenge(AuthStep::Plain, "", out);
                None
            }
            (Mechanism::Login, Some(initial)) => self.login_user(initial.as_bytes(), out),
            (Mechanism::Login, None) => {
                self.challenge(AuthStep::LoginUser, "Username:", out);
                None
            }
        }
    }

    fn challenge(&mut self, step: AuthStep, text: &str, out: &mut Vec<u8>) {
        Reply::auth_challenge(sasl::encode(text)).write_to(out);
        self.phase = Phase::Auth(step);
    }

    /// One line of the client's side of an AUTH exchange (CRLF included).
    pub(super) fn auth_response(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<Event> {
        let Phase::Auth(step) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return None;
        };
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        if content == b"*" {
            self.error(out, Reply::auth_cancelled());
            return None;
        }
        match step {
            AuthStep::Plain => self.plain(content, out),
            AuthStep::LoginUser => self.login_user(content, out),
            AuthStep::LoginPassword(user) => {
                match sasl::decode(content).and_then(sasl::login_text) {
                    Ok(password) => Some(Event::Authenticate(Credentials { user, password })),
                    Err(e) => self.bad_response(e, out),
                }
            }
        }
    }

    fn plain(&mut self, base64: &[u8], out: &mut Vec<u8>) -> Option<Event> {
        match sasl::decode(base64).and_then(|m| sasl::plain(&m)) {
            Ok(credentials) => Some(Event::Authenticate(credentials)),
            Err(e) => self.bad_response(e, out),
        }
    }

    fn login_user(&mut self, base64: &[u8], out: &mut Vec<u8>) -> Option<Event> {
        match sasl::decode(base64).and_then(sasl::login_text) {
            Ok(user) if !user.is_empty() => {
                self.challenge(AuthStep::LoginPassword(user), "Password:", out);
                None
            }
            Ok(_) => self.bad_response(SaslError::Malformed("LOGIN"), out),
            Err(e) => self.bad_response(e, out),
        }
    }

    fn bad_response(&mut self, error: SaslError, out: &mut Vec<u8>) -> Option<Event> {
        self.error(out, Reply::bad_auth_response(&error.to_string()));
        None
    }

    /// The verdict on the credentials of the last [`Event::Authenticate`]: writes 235,
    /// 535, 454 or 421 (then [`Event::Close`]).
    pub fn auth_verdict(&mut self, verdict: AuthVerdict, out: &mut Vec<u8>) -> Option<Event> {
        match verdict {
            AuthVerdict::Accepted(user) => {
                self.user = Some(user);
                Reply::auth_succeeded().write_to(out);
                None
            }
            AuthVerdict::Rejected => {
                self.error(out, Reply::auth_failed());
                None
            }
            AuthVerdict::Unavailable(detail) => {
                self.refuse(out, Reply::auth_unavailable(&detail));
                None
            }
            AuthVerdict::Paced => {
                self.refuse(out, Reply::auth_paced());
                None
            }
            AuthVerdict::LockedOut => {
                self.refuse(out, Reply::too_many_auth_failures());
                Some(Event::Close)
            }
        }
    }
}
