//! SASL for AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN mechanisms, decoded from the
//! client's base64 lines into a user name and password. Nothing here checks a password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The mechanisms hermod offers, as EHLO names them.
pub const MECHANISMS: &str = "PLAIN LOGIN";

/// A mechanism the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// One message: `authzid NUL authcid NUL password`.
    Plain,
    /// Two challenges: user name, then password.
    Login,
}

impl Mechanism {
    /// The mechanism named `name` (any case), if hermod offers it.
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// Its name, for the log.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// A user name and password the client sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity.
    pub user: String,
    /// The password, never logged.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why a client's SASL message cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// Not base64.
    #[error("the response is not valid base64")]
    Base64,
    /// Not UTF-8, or not the mechanism's shape.
    #[error("the response is not a valid {0} message")]
    Malformed(&'static str),
    /// PLAIN with an authorization identity other than the user (acting for someone
    /// else is not offered).
    #[error("authorizing as another user is not supported")]
    Authzid,
}

/// Decodes one base64 line; `=` alone is an empty response (RFC 4954 §4).
pub fn decode(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    if line == b"=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| SaslError::Base64)
}

/// Encodes a server challenge (`334 <base64>`).
pub fn encode(challenge: &str) -> String {
    STANDARD.encode(challenge)
}

/// The credentials in a decoded PLAIN message.
pub fn plain(message: &[u8]) -> Result<Credentials, SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("PLAIN"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed("PLAIN"));
    };
    if user.is_empty() {
        return Err(SaslError::Malformed("PLAIN"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::Authzid);
    }
    Ok(Credentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// A decoded LOGIN response (the user name or the password) as text.
pub fn login_text(message: Vec<u8>) -> Result<String, SaslError> {
    String::from_utf8(message).map_err(|_| SaslError::Malformed("LOGIN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_takes_an_empty_or_equal_authzid() {
        let c = plain(b"\0app\0secret").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("app", "secret"));
        assert!(plain(b"app\0app\0secret").is_ok());
        assert_eq!(plain(b"boss\0app\0secret"), Err(SaslError::Authzid));
        assert_eq!(plain(b"app\0secret"), Err(SaslError::Malformed("PLAIN")));
        assert_eq!(plain(b"\0\0secret"), Err(SaslError::Malformed("PLAIN")));
        assert_eq!(plain(b"\0a\0b\0c"), Err(SaslError::Malformed("PLAIN")));
    }

    #[test]
    fn decode_takes_base64_and_the_empty_marker() {
        assert_eq!(decode(b"AGFwcABzZWNyZXQ=").unwrap(), b"\0app\0secret");
        assert_eq!(decode(b"=").unwrap(), b"");
        assert_eq!(decode(b"not base64!"), Err(SaslError::Base64));
        assert_eq!(encode("Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn password_stays_out_of_debug_output() {
        let c = plain(b"\0app\0secret").unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
