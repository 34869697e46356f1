//! The DkimSigner actor: at the end of DATA, before the `250`, mail from authenticated
//! users and trusted networks whose From: domain has a key is signed (RFC 6376,
//! relaxed/relaxed), once per selector of the domain (two during a key rotation), and the
//! `DKIM-Signature:` headers go on top of the message, so the spool holds it signed.
//! From, To, Subject, Date and Message-ID are signed once more than they occur, so none
//! can be added later without breaking the signature. Keys (RSA 2048 bits and up,
//! Ed25519) are parsed once, at start; signing runs on the [`VerifyPool`], a few threads
//! for mail authentication's CPU work (one per core), not one blocking thread per
//! message in flight, which on a small machine spent more time switching threads than
//! signing. A large message is read back from its body file to be signed.
//!
//! A tenant gets a signature only for what it may send as: when the authenticated user
//! has a sender list, every address of the From: header (and of Sender:, with
//! [`SigningRules::check_sender_header`]) must be on it, or the message is refused
//! (`550 5.7.1`) or sent unsigned, as [`SigningRules::from_not_owned`] says. Without
//! that, a user limited to `bob@example.com` got `d=victim.example` signatures, aligned
//! for DMARC, on mail "from" any other hosted domain.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::ResponseFuture;

use crate::policy::actor::Policy;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner as Signer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::mail_auth::pool::VerifyPool;
use super::set::Ask;
use crate::protocol::check::{Facts, Verdict};
use crate::protocol::reply::Reply;
use crate::protocol::security::AuthenticatedUser;

/// Headers signed: the set the large mailbox providers recommend. The over-signed ones
/// are listed once more than a message has them (see [`headers_for`]).
const SIGNED: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Messages up to this size signed with Ed25519 keys only are signed on the actor's own
/// thread: that takes about 20 µs for 1 KiB (190 µs for 100 KiB), less than the hand-off
/// to the pool and back. RSA (about 300 µs a signature) and larger messages go to the
/// pool.
const INLINE_LIMIT: usize = 16 * 1024;

/// Signed one more time than they occur, so that adding one breaks the signature.
const OVER_SIGNED: &[&str] = &["From", "To", "Subject", "Date", "Message-ID"];

/// One selector's key of a signing domain.
pub struct SigningKey {
    /// The selector (`s=`).
    pub selector: String,
    /// The parsed key.
    pub key: Arc<DkimKey>,
    /// `rsa` or `ed25519`, for the log.
    pub algorithm: &'static str,
}

/// Why a PEM file is not a key hermod signs with; `--validate-only` prints it after the
/// key's domain, selector and file.
#[derive(Debug, thiserror::Error)]
pub enum DkimKeyError {
    /// No private key in PEM form.
    #[error("not a PEM private key: {0}")]
    NotPem(rustls_pki_types::pem::Error),
    /// A private key of a kind DKIM does not use.
    #[error("neither an Ed25519 nor an RSA key: {0}")]
    NotRsaOrEd25519(mail_auth::Error),
    /// An RSA key too short to be trusted (RFC 8301).
    #[error("RSA keys under 2048 bits are refused (RFC 8301)")]
    RsaTooShort,
}

/// Reads a PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA) and checks it is fit
/// for DKIM: RSA of 2048 bits or more.
pub fn load_key(pem: &str) -> Result<(DkimKey, &'static str), DkimKeyError> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(DkimKeyError::NotPem)?;
    if let PrivateKeyDer::Pkcs8(pkcs8) = &der
        && let Ok(key) = Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der())
    {
        return Ok((DkimKey::Ed25519(key), "ed25519"));
    }
    let rsa = RsaKey::<Sha256>::from_key_der(der).map_err(DkimKeyError::NotRsaOrEd25519)?;
    let bits = rsa.public_key().len() * 8;
    // The DER of a 2048-bit public key is about 270 octets; a 1024-bit one about 140.
    if bits < 2048 {
        return Err(DkimKeyError::RsaTooShort);
    }
    Ok((DkimKey::Rsa(rsa), "rsa"))
}

/// What happens to a message whose From: (or Sender:) the authenticated user may not use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FromNotOwned {
    /// Refused at the end of DATA with `550 5.7.1`: nothing is queued.
    #[default]
    Refuse,
    /// Accepted and relayed without a signature.
    Unsigned,
}

/// Whose mail is signed, from `[dkim]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningRules {
    /// What a From: the user does not own gets.
    pub from_not_owned: FromNotOwned,
    /// The Sender: header, when present, must be owned too.
    pub check_sender_header: bool,
}

impl Default for SigningRules {
    fn default() -> Self {
        SigningRules {
            from_not_owned: FromNotOwned::Refuse,
            check_sender_header: true,
        }
    }
}

/// The actor.
pub struct DkimSigner {
    keys: Arc<HashMap<String, Vec<SigningKey>>>,
    pool: Arc<VerifyPool>,
    rules: SigningRules,
}

impl DkimSigner {
    /// A signer with these keys, by lowercase domain, signing on `pool` under `rules`.
    pub fn new(
        keys: HashMap<String, Vec<SigningKey>>,
        pool: Arc<VerifyPool>,
        rules: SigningRules,
    ) -> Self {
        DkimSigner {
            keys: Arc::new(keys),
            pool,
            rules,
        }
    }
}

/// The first address of the From: (and, with `check_sender`, Sender:) header that a user
/// allowed only `senders` may not use; `None` when every one is allowed.
fn header_address_not_owned(
    message: &[u8],
    senders: &[String],
    check_sender: bool,
) -> Option<String> {
    if senders.is_empty() {
        return None;
    }
    let user = AuthenticatedUser {
        name: String::new(),
        senders: senders.to_vec(),
    };
    let parsed = mail_parser::MessageParser::default().parse_headers(message)?;
    let mut addresses: Vec<String> = Vec::new();
    let mut collect = |address: Option<&mail_parser::Address>| {
        for addr in address.into_iter().flat_map(|a| a.iter()) {
            // A group or an address mail-parser could not read is not owned either.
            addresses.push(addr.address().unwrap_or("").to_string());
        }
    };
    collect(parsed.from());
    if check_sender {
        collect(parsed.sender());
    }
    addresses.into_iter().find(|address| {
        let canonical = canonical_address(address);
        canonical.is_empty() || !user.may_send_as(&canonical)
    })
}

/// `address` as the sender list is compared with: the domain lower-cased and without
/// a final dot (the local part as written); empty when it is not `local@domain`.
fn canonical_address(address: &str) -> String {
    match address.trim().rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            let domain = domain.strip_suffix('.').unwrap_or(domain);
            format!("{local}@{}", domain.to_ascii_lowercase())
        }
        _ => String::new(),
    }
}

/// The domain of the first address in the From: header of `message`.
fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?.to_string();
    Some(
        address
            .rsplit_once('@')?
            .1
            .trim_end_matches('.')
            .to_ascii_lowercase(),
    )
}

/// The headers to sign for `message`: those of [`SIGNED`] it has (as often as it has
/// them), and the over-signed ones once more.
fn headers_for(message: &[u8]) -> Vec<String> {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut headers = Vec::new();
    for name in SIGNED {
        let count = head
            .split("\r\n")
            .filter(|line| {
                line.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            })
            .count();
        let times = if OVER_SIGNED.contains(name) {
            count + 1
        } else {
            count
        };
        headers.extend(std::iter::repeat_n(name.to_string(), times));
    }
    headers
}

/// A message that could not be signed with one of its domain's keys: it is deferred,
/// and the log line names the domain and selector.
#[derive(Debug, thiserror::Error)]
#[error("signing for {domain} with selector {selector}: {error}")]
pub struct SignError {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector whose key failed (`s=`).
    pub selector: String,
    /// mail-auth's reason.
    pub error: mail_auth::Error,
}

/// Signs `message` for `domain` with each of `keys`; the header lines, without their
/// final CRLF.
pub fn sign(message: &[u8], domain: &str, keys: &[SigningKey]) -> Result<Vec<String>, SignError> {
    let headers = headers_for(message);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let signature = Signer::from_key(SharedKey(key.key.clone()))
            .domain(domain)
            .selector(key.selector.clone())
            .headers(headers.clone())
            .sign(message)
            .map_err(|error| SignError {
                domain: domain.to_string(),
                selector: key.selector.clone(),
                error,
            })?;
        out.push(signature.to_header().trim_end_matches("\r\n").to_string());
    }
    Ok(out)
}

/// A shared parsed key, signing through the one it points to.
struct SharedKey(Arc<DkimKey>);

impl mail_auth::common::crypto::SigningKey for SharedKey {
    type Hasher = <DkimKey as mail_auth::common::crypto::SigningKey>::Hasher;

    fn sign(&self, input: impl mail_auth::common::headers::Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

impl Policy for DkimSigner {
    fn ask(&mut self, Ask(facts): Ask) -> ResponseFuture<Verdict> {
        let (keys, pool, rules) = (self.keys.clone(), self.pool.clone(), self.rules);
        Box::pin(async move { decide(keys, pool, rules, facts).await })
    }
}

async fn decide(
    keys: Arc<HashMap<String, Vec<SigningKey>>>,
    pool: Arc<VerifyPool>,
    rules: SigningRules,
    facts: Arc<Facts>,
) -> Verdict {
    if facts.user.is_none() && !facts.trusted {
        return Verdict::accept();
    }
    let content = match super::content::content(&facts).await {
        Ok(Some(content)) => content,
        Ok(None) => return Verdict::accept(),
        Err(e) => return failed(&e),
    };
    // `content` is kept to the end: a large message's turn ends with it.
    let message = content.bytes.clone();
    let Some(domain) = from_domain(&message) else {
        metrics::counter!("dkim_sign_total", "result" => "no_from").increment(1);
        return Verdict::accept();
    };
    if !keys.contains_key(&domain) {
        metrics::counter!("dkim_sign_total", "result" => "no_key").increment(1);
        tracing::debug!(domain = %domain, "DKIM: no key for the From: domain; not signed");
        return Verdict::accept();
    }
    if let Some(address) =
        header_address_not_owned(&message, &facts.user_senders, rules.check_sender_header)
    {
        return not_owned(rules, &facts, &address);
    }
    let started = Instant::now();
    let cheap = message.len() <= INLINE_LIMIT
        && keys[&domain]
            .iter()
            .all(|k| matches!(*k.key, DkimKey::Ed25519(_)));
    let signed = if cheap {
        let signed = sign(&message, &domain, &keys[&domain]);
        Ok::<_, &str>(signed.map(|headers| (domain, headers)))
    } else {
        pool.run(async move {
            let keys = &keys[&domain];
            sign(&message, &domain, keys).map(|headers| (domain, headers))
        })
        .await
        .ok_or("the signing pool stopped")
    };
    metrics::histogram!("dkim_sign_seconds").record(started.elapsed().as_secs_f64());
    match signed {
        Ok(Ok((domain, headers))) => {
            metrics::counter!("dkim_sign_total", "result" => "signed").increment(1);
            tracing::debug!(domain = %domain, signatures = headers.len(), "DKIM signed");
            Verdict::accept_with_headers(headers)
        }
        Ok(Err(e)) => failed(&e),
        Err(e) => failed(e),
    }
}

/// A From: or Sender: the user may not use: refused, or accepted unsigned.
fn not_owned(rules: SigningRules, facts: &Facts, address: &str) -> Verdict {
    let user = facts.user.as_deref().unwrap_or("");
    match rules.from_not_owned {
        FromNotOwned::Refuse => {
            metrics::counter!("dkim_sign_total", "result" => "from_not_owned").increment(1);
            tracing::warn!(user = %user, from = %address, client = %facts.client_ip,
                "From: header not owned by the authenticated user; message refused, not signed");
            Verdict::Reject(Reply::from_header_not_owned(address, user))
        }
        FromNotOwned::Unsigned => {
            metrics::counter!("dkim_sign_total", "result" => "unsigned_not_owned").increment(1);
            tracing::info!(user = %user, from = %address, client = %facts.client_ip,
                "From: header not owned by the authenticated user; sent without a signature");
            Verdict::accept()
        }
    }
}

fn failed(error: impl std::fmt::Display) -> Verdict {
    metrics::counter!("dkim_sign_total", "result" => "error").increment(1);
    tracing::error!(error = %error, "DKIM signing failed; the message is deferred");
    Verdict::Defer(Reply::policy_unavailable("dkim_sign"))
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "dkim_sign_total",
        "Messages from authenticated or trusted clients at the DKIM signer, by result (signed, no_key, no_from, from_not_owned, unsigned_not_owned, error)."
    );
    metrics::describe_histogram!(
        "dkim_sign_seconds",
        "Time to DKIM-sign one message (all its selectors)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_signed_headers_appear_once_more_than_in_the_message() {
        let message = b"From: a@shop.test\r\nTo: b@x.test\r\nTo: c@x.test\r\nSubject: s\r\nX-Other: 1\r\n\r\nbody\r\n";
        let headers = headers_for(message);
        assert_eq!(headers.iter().filter(|h| *h == "From").count(), 2);
        assert_eq!(headers.iter().filter(|h| *h == "To").count(), 3);
        assert_eq!(headers.iter().filter(|h| *h == "Date").count(), 1);
        assert!(!headers.iter().any(|h| h == "Cc" || h == "X-Other"));
        assert_eq!(from_domain(message).as_deref(), Some("shop.test"));
    }

    #[test]
    fn a_header_from_outside_the_users_senders_is_not_owned() {
        let bob = ["bob@example.com".to_string()];
        let from = |f: &str| format!("From: {f}\r\nSubject: s\r\n\r\nbody\r\n").into_bytes();
        let check = |message: &[u8]| header_address_not_owned(message, &bob, true);
        assert_eq!(check(&from("Bob <bob@example.com>")), None);
        // The canonical form: the domain's case and a final dot do not matter.
        assert_eq!(check(&from("<BOB@EXAMPLE.COM.>")), None);
        assert_eq!(
            check(&from("CEO <ceo@victim.example>")).as_deref(),
            Some("ceo@victim.example")
        );
        assert_eq!(
            check(&from("bob@example.com, ceo@victim.example")).as_deref(),
            Some("ceo@victim.example")
        );
        let sender = b"From: bob@example.com\r\nSender: ceo@victim.example\r\n\r\nx\r\n";
        assert!(check(sender).is_some());
        assert_eq!(header_address_not_owned(sender, &bob, false), None);
        // A user with no sender list may use any.
        assert_eq!(
            header_address_not_owned(&from("ceo@victim.example"), &[], true),
            None
        );
        let domain = ["@example.com".to_string()];
        assert_eq!(
            header_address_not_owned(&from("anyone@example.com"), &domain, true),
            None
        );
    }
}
