//! Whether a signing key's public half is published where receivers look for it
//! (`SELECTOR._domainkey.DOMAIN`), for `--validate-only`: a key that is not published, or
//! a record of another key, makes every signature fail at the receivers (`dkim=permerror`,
//! `dkim=fail`) while hermod itself sees nothing wrong.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::DkimKey;
use mail_auth::{DnsError, Error, MessageAuthenticator};

/// The public key as DKIM publishes it: PKCS#1 `RSAPublicKey` for RSA (a record may also
/// wrap it in a SubjectPublicKeyInfo), the raw 32 octets for Ed25519.
pub fn public_key(key: &DkimKey) -> Vec<u8> {
    match key {
        DkimKey::Rsa(rsa) => rsa.public_key(),
        DkimKey::Ed25519(ed) => ed.public_key(),
    }
}

/// What is wrong with a key's record, in the words `--validate-only` prints after the
/// key's domain and selector; `name` is `SELECTOR._domainkey.DOMAIN`.
#[derive(Debug, thiserror::Error)]
pub enum RecordProblem {
    /// No TXT record at the name.
    #[error(
        "no key published at {name} (receivers will say dkim=permerror); publish the TXT record `hermod dkim keygen` printed"
    )]
    NotPublished {
        /// Where receivers look.
        name: String,
    },
    /// The DNS did not answer.
    #[error("cannot look up {name}: {error}")]
    Lookup {
        /// Where receivers look.
        name: String,
        /// The resolver's reason.
        error: Error,
    },
    /// A record without the key.
    #[error("the TXT record at {name} has no p= tag: {record:?}")]
    NoKeyTag {
        /// Where receivers look.
        name: String,
        /// The record as found.
        record: String,
    },
    /// An empty `p=`: the key was withdrawn.
    #[error("the key at {name} is revoked (empty p=)")]
    Revoked {
        /// Where receivers look.
        name: String,
    },
    /// A `p=` that is not base64.
    #[error("the p= of {name} is not base64: {error}")]
    NotBase64 {
        /// Where receivers look.
        name: String,
        /// The decoder's reason.
        error: base64::DecodeError,
    },
    /// The record holds another key.
    #[error(
        "the key published at {name} is not this key (receivers will say dkim=fail); publish this key's record, or use the key file that matches"
    )]
    OtherKey {
        /// Where receivers look.
        name: String,
    },
}

/// Looks up the record of `selector` at `domain` and says what is wrong with it, if
/// anything.
pub async fn check(
    auth: &MessageAuthenticator,
    domain: &str,
    selector: &str,
    key: &DkimKey,
) -> Result<(), RecordProblem> {
    let name = format!("{selector}._domainkey.{domain}");
    let record = match auth.txt_raw_lookup(format!("{name}.")).await {
        Ok(record) => String::from_utf8_lossy(&record).into_owned(),
        Err(Error::Dns(DnsError::RecordNotFound(_))) => {
            return Err(RecordProblem::NotPublished { name });
        }
        Err(error) => return Err(RecordProblem::Lookup { name, error }),
    };
    let Some(published) = record.split(';').find_map(|tag| {
        let (name, value) = tag.split_once('=')?;
        (name.trim() == "p").then(|| value.split_whitespace().collect::<String>())
    }) else {
        return Err(RecordProblem::NoKeyTag { name, record });
    };
    if published.is_empty() {
        return Err(RecordProblem::Revoked { name });
    }
    let published = match STANDARD.decode(&published) {
        Ok(published) => published,
        Err(error) => return Err(RecordProblem::NotBase64 { name, error }),
    };
    let ours = public_key(key);
    if published == ours || published.ends_with(&ours) {
        Ok(())
    } else {
        Err(RecordProblem::OtherKey { name })
    }
}
