//! Where a password is checked: hermod's own Argon2 user store (`hermod user add`), or
//! Dovecot's auth service ([`super::dovecot_auth`]) for sites that keep their users there
//! (and behind it in SQL or LDAP). `auth.backend` chooses.

use std::net::IpAddr;

use super::dovecot_auth::{DovecotAuth, DovecotError};
use crate::protocol::sasl::Credentials;
use crate::store::users::{UserError, UserStore, Verified};

/// The password store AUTH asks.
#[derive(Clone)]
pub enum PasswordCheck {
    /// Argon2id hashes in the spool's sled (checked on a blocking thread).
    Local(UserStore),
    /// Dovecot's auth service over its Unix socket.
    Dovecot(DovecotAuth),
}

/// Why a password could not be checked (the client gets `454 4.7.0`).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] UserError),
    /// Dovecot did not answer yes or no.
    #[error(transparent)]
    Dovecot(#[from] DovecotError),
    /// The blocking check itself failed.
    #[error("the password check failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl PasswordCheck {
    /// Checks `credentials` from `client`.
    pub async fn verify(
        &self,
        credentials: Credentials,
        client: IpAddr,
    ) -> Result<Verified, CheckError> {
        let Credentials { user, password } = credentials;
        match self {
            PasswordCheck::Local(users) => {
                let users = users.clone();
                Ok(tokio::task::spawn_blocking(move || users.verify(&user, &password)).await??)
            }
            PasswordCheck::Dovecot(dovecot) => Ok(dovecot.verify(&user, &password, client).await?),
        }
    }

    /// What the client is told when the check fails: `454 4.7.0 Temporary
    /// authentication failure: …`.
    pub fn unavailable(&self) -> &'static str {
        match self {
            PasswordCheck::Local(_) => "the user store cannot be read",
            PasswordCheck::Dovecot(_) => "the authentication service does not answer",
        }
    }
}
