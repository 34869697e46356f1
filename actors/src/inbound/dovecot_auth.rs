//! AUTH against Dovecot's auth service, as Postfix's `smtpd_sasl_type = dovecot`: a
//! connection to its `auth-client` Unix socket per check, the handshake (`VERSION`,
//! `CPID`; Dovecot answers with its mechanisms and `DONE`), one `AUTH` with the PLAIN
//! response, and its `OK` or `FAIL`. Whatever Dovecot checks against (passwd-file, SQL,
//! LDAP) stays Dovecot's; hermod's lock-out and pacing still come first.
//!
//! The client's name and password only ever travel base64-encoded inside `resp=`, so no
//! byte a client chose can break Dovecot's tab-separated lines. Every read is bounded in
//! time and length.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::protocol::security::AuthenticatedUser;
use crate::store::users::Verified;

/// Longest line read from Dovecot.
const MAX_LINE: usize = 16 * 1024;

/// Where Dovecot's auth service listens, and how long a check may take.
#[derive(Debug, Clone)]
pub struct DovecotAuth {
    /// Its `auth-client` socket (`unix_listener auth-client` in `service auth`).
    pub socket: PathBuf,
    /// Connecting, the handshake and the answer together.
    pub timeout: Duration,
}

/// Why Dovecot could not say yes or no; the client gets `454 4.7.0`.
#[derive(Debug, thiserror::Error)]
pub enum DovecotError {
    /// The socket is missing, refused, or not ours to open.
    #[error("cannot connect to Dovecot's auth socket {socket}: {error}")]
    Connect {
        /// The socket.
        socket: String,
        /// Why.
        error: std::io::Error,
    },
    /// Reading or writing failed half-way.
    #[error("Dovecot's auth socket failed: {0}")]
    Io(#[from] std::io::Error),
    /// No answer within the timeout.
    #[error("Dovecot's auth service did not answer within {0:?}")]
    Timeout(Duration),
    /// An answer that is not the protocol.
    #[error("Dovecot's auth service answered {0:?}")]
    Protocol(String),
    /// Dovecot failed the check for its own reasons (its database is down: `temp`).
    #[error("Dovecot could not check the password (temporary failure{0})")]
    Temporary(String),
}

impl DovecotAuth {
    /// Asks Dovecot whether `password` is `user`'s; `client` is passed on for its logs
    /// and its own penalties.
    pub async fn verify(
        &self,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Verified, DovecotError> {
        if user.contains('\0') || password.contains('\0') {
            return Ok(Verified::No("a NUL in the user name or password"));
        }
        let exchange = self.exchange(user, password, client.to_canonical());
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(DovecotError::Timeout(self.timeout)),
        }
    }

    async fn exchange(
        &self,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Verified, DovecotError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|error| DovecotError::Connect {
                    socket: self.socket.display().to_string(),
                    error,
                })?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        write
            .write_all(format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id()).as_bytes())
            .await?;
        handshake(&mut read).await?;
        let response =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        // `no-penalty`: hermod counts failures itself (the lock-out and the per-user
        // pacing come before this check); Dovecot's own penalty would make each further
        // failure from the address wait 2, 4, 8 ... seconds, past `dovecot_timeout`, and
        // turn a mistyped password into a 454.
        let auth = format!(
            "AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip={client}\tsecured\tno-penalty\tresp={response}\n"
        );
        write.write_all(auth.as_bytes()).await?;
        let answer = next_line(&mut read).await?;
        verdict(&answer, user)
    }
}

/// Reads Dovecot's side of the handshake up to `DONE`: protocol version 1, PLAIN offered.
async fn handshake<R: AsyncBufReadExt + Unpin>(read: &mut R) -> Result<(), DovecotError> {
    let mut plain = false;
    loop {
        let line = next_line(read).await?;
        let mut fields = line.split('\t');
        match fields.next() {
            Some("VERSION") if fields.next() != Some("1") => {
                return Err(DovecotError::Protocol(line));
            }
            Some("MECH") => plain |= fields.next() == Some("PLAIN"),
            Some("DONE") if plain => return Ok(()),
            Some("DONE") => {
                return Err(DovecotError::Protocol(
                    "no PLAIN mechanism (auth_mechanisms)".into(),
                ));
            }
            _ => {}
        }
    }
}

/// One line without its LF, at most [`MAX_LINE`] octets.
async fn next_line<R: AsyncBufReadExt + Unpin>(read: &mut R) -> Result<String, DovecotError> {
    let mut line = Vec::new();
    let mut limited = AsyncReadExt::take(read, MAX_LINE as u64 + 1);
    limited.read_until(b'\n', &mut line).await?;
    if line.last() != Some(&b'\n') {
        return Err(DovecotError::Protocol(match line.len() > MAX_LINE {
            true => "a line too long".into(),
            false => "the connection closed".into(),
        }));
    }
    line.pop();
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// What an answer to `AUTH\t1\t...` says.
fn verdict(answer: &str, user: &str) -> Result<Verified, DovecotError> {
    let mut fields = answer.split('\t');
    let (kind, id) = (fields.next(), fields.next());
    if id != Some("1") {
        return Err(DovecotError::Protocol(answer.chars().take(200).collect()));
    }
    let params: Vec<&str> = fields.collect();
    match kind {
        Some("OK") => {
            // Dovecot may name the user differently (case, a realm): that name is used.
            let name = params
                .iter()
                .find_map(|p| p.strip_prefix("user="))
                .unwrap_or(user);
            Ok(Verified::Yes(AuthenticatedUser {
                name: name.to_string(),
                senders: Vec::new(),
            }))
        }
        Some("FAIL") if params.contains(&"temp") => {
            let reason = params
                .iter()
                .find_map(|p| p.strip_prefix("reason="))
                .map(|r| format!(": {}", r.chars().take(200).collect::<String>()))
                .unwrap_or_default();
            Err(DovecotError::Temporary(reason))
        }
        Some("FAIL") => Ok(Verified::No("Dovecot refused the password or user")),
        _ => Err(DovecotError::Protocol(answer.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_verdicts() {
        assert!(matches!(
            verdict("OK\t1\tuser=Alice", "alice"),
            Ok(Verified::Yes(u)) if u.name == "Alice"
        ));
        assert!(matches!(
            verdict("FAIL\t1\tuser=alice", "alice"),
            Ok(Verified::No(_))
        ));
        assert!(matches!(
            verdict("FAIL\t1\tuser=alice\ttemp\treason=db down", "alice"),
            Err(DovecotError::Temporary(r)) if r == ": db down"
        ));
        assert!(matches!(
            verdict("CONT\t1\t", "alice"),
            Err(DovecotError::Protocol(_))
        ));
        assert!(matches!(
            verdict("OK\t2\tuser=alice", "alice"),
            Err(DovecotError::Protocol(_))
        ));
    }
}
