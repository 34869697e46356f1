//! `[dkim]`: the DkimSigner actor — the signing keys, one per domain and selector (two
//! selectors of a domain during a key rotation: mail is signed with both).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use hermod_actors::policy::dkim_record;
use hermod_actors::policy::dkim_sign::{
    DkimKeyError, FromNotOwned, SigningKey, SigningRules, load_key,
};
use serde::{Deserialize, Serialize};

use super::secret_file::SecretFileError;
use super::section::{Key, section};
use super::{ConfigIssue, Section};

section! {
    /// `[dkim]`: DKIM signing.
    pub struct DkimConfig {
        /// The keys: `{ domain = "example.com", selector = "s2026", key_file = "/etc/hermod/dkim/example.com.s2026.key" }`
        /// (PEM, PKCS#8 RSA of 2048 bits or more, or Ed25519; `hermod dkim keygen` makes one).
        /// Mail from authenticated users and `relay.networks` whose From: domain has a key is
        /// signed, before the `250`.
        pub keys: Vec<DkimKeyConfig> = Vec::new()
            => (restart, []),
        /// What a message from an authenticated user whose From: header names an address
        /// outside the user's sender list gets: `refuse` (550 5.7.1, nothing queued) or
        /// `unsigned` (relayed without a signature).
        pub from_not_owned: FromNotOwned = SigningRules::default().from_not_owned
            => (restart, []),
        /// The Sender: header, when present, must be owned by the user too.
        pub check_sender_header: bool = SigningRules::default().check_sender_header
            => (restart, []),
    }
}

/// One signing key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// The signing domain (`d=`), matched against the From: header's domain.
    pub domain: String,
    /// The selector (`s=`): the public key is at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The private key, PEM.
    pub key_file: PathBuf,
}

impl Section for DkimConfig {
    const KEYS: &'static [Key] = DkimConfig::DECLARED;
    const NAME: &'static str = "dkim";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        for key in &self.keys {
            if let Err(reason) = read(key) {
                issues.push(ConfigIssue::new("dkim.keys", reason));
            }
        }
    }
}

/// Why a configured key cannot sign; each text starts with the key's domain and
/// selector (`KEY`), as `--validate-only` and a refused start print it.
#[derive(Debug, thiserror::Error)]
enum KeyFileError {
    /// The key file's mode lets others read it, or it cannot be looked at.
    #[error("{key}: {error}")]
    Secret {
        /// `DOMAIN (selector SELECTOR)`.
        key: String,
        /// What is wrong with the file's mode.
        error: SecretFileError,
    },
    /// The key file cannot be read.
    #[error("{key}: cannot read {}: {error}", path.display())]
    Unreadable {
        /// `DOMAIN (selector SELECTOR)`.
        key: String,
        /// The key file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file holds no key hermod signs with.
    #[error("{key}: {}: {error}", path.display())]
    NotAKey {
        /// `DOMAIN (selector SELECTOR)`.
        key: String,
        /// The key file.
        path: PathBuf,
        /// What is wrong with the key.
        error: DkimKeyError,
    },
}

fn read(key: &DkimKeyConfig) -> Result<SigningKey, KeyFileError> {
    let name = || format!("{} (selector {})", key.domain, key.selector);
    let path = || key.key_file.clone();
    super::secret_file::check(&key.key_file)
        .map_err(|error| KeyFileError::Secret { key: name(), error })?;
    let pem = std::fs::read_to_string(&key.key_file).map_err(|error| KeyFileError::Unreadable {
        key: name(),
        path: path(),
        error,
    })?;
    let (parsed, algorithm) = load_key(&pem).map_err(|error| KeyFileError::NotAKey {
        key: name(),
        path: path(),
        error,
    })?;
    Ok(SigningKey {
        selector: key.selector.clone(),
        key: Arc::new(parsed),
        algorithm,
    })
}

impl DkimConfig {
    /// What is wrong with the published records of the keys, one line per key: looked
    /// up through `dns_servers` (or the system's), each query waiting up to 3 s.
    pub fn published_key_problems(&self, dns_servers: &[std::net::SocketAddr]) -> Vec<String> {
        if self.keys.is_empty() {
            return Vec::new();
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return vec![format!("dkim.keys: cannot check the DNS records: {e}")],
        };
        runtime.block_on(async {
            let resolver = match hermod_actors::outbound::mx::MxResolver::new(
                dns_servers,
                Duration::from_secs(3),
            ) {
                Ok(resolver) => resolver,
                Err(e) => return vec![format!("dkim.keys: cannot check the DNS records: {e}")],
            };
            let auth = hermod_actors::policy::mail_auth::authenticator(&resolver);
            let mut problems = Vec::new();
            for key in &self.keys {
                let Ok(parsed) = read(key) else { continue };
                if let Err(problem) =
                    dkim_record::check(&auth, &key.domain, &key.selector, &parsed.key).await
                {
                    problems.push(format!(
                        "dkim.keys: {} (selector {}): {problem}",
                        key.domain, key.selector
                    ));
                }
            }
            problems
        })
    }

    /// Whose mail is signed: the From: ownership rules.
    pub fn rules(&self) -> SigningRules {
        SigningRules {
            from_not_owned: self.from_not_owned,
            check_sender_header: self.check_sender_header,
        }
    }

    /// Whether any key is configured (the signer runs).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The parsed keys by lowercase domain.
    pub fn signing_keys(&self) -> anyhow::Result<HashMap<String, Vec<SigningKey>>> {
        let mut keys: HashMap<String, Vec<SigningKey>> = HashMap::new();
        for key in &self.keys {
            let parsed = read(key)?;
            keys.entry(key.domain.trim_end_matches('.').to_ascii_lowercase())
                .or_default()
                .push(parsed);
        }
        Ok(keys)
    }
}
