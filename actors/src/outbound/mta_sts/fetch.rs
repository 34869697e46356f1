//! Fetching a domain's policy (RFC 8461 §3.3): `GET
//! https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, the name resolved through hermod's own
//! resolver, the certificate verified against the roots `verify` delivery trusts, no
//! redirect followed, 200 with `text/plain` only, at most 64 KiB read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::policy::{Policy, PolicyError};
use crate::outbound::mx::MxResolver;

/// The most of a policy body read (RFC 8461 §3.3 lets senders stop at 64 KiB).
const MAX_POLICY: usize = 64 * 1024;

/// Why no policy came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// `mta-sts.DOMAIN` has no address.
    #[error("{host} has no address: {reason}")]
    NoAddress {
        /// The policy host.
        host: String,
        /// The lookup's error.
        reason: String,
    },
    /// Connection, TLS (an unverified certificate among them) or time-out.
    #[error("fetching https://{host}/.well-known/mta-sts.txt failed: {reason}")]
    Http {
        /// The policy host.
        host: String,
        /// reqwest's error, with its sources.
        reason: String,
    },
    /// An answer other than 200 (a redirect among them), or not `text/plain`.
    #[error("https://{host}/.well-known/mta-sts.txt answered {answer}")]
    Answer {
        /// The policy host.
        host: String,
        /// Status and content type.
        answer: String,
    },
    /// The body is no policy.
    #[error("the policy at https://{host}/.well-known/mta-sts.txt is invalid: {error}")]
    Invalid {
        /// The policy host.
        host: String,
        /// What is wrong with it.
        error: PolicyError,
    },
}

/// Fetches and parses `domain`'s policy, the whole bounded by `timeout`.
pub async fn fetch(
    domain: &str,
    resolver: &MxResolver,
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
    timeout: Duration,
) -> Result<Policy, FetchError> {
    let host = format!("mta-sts.{domain}");
    let http = |reason: String| FetchError::Http {
        host: host.clone(),
        reason,
    };
    let addr = resolve(&host, resolver, port).await?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((**tls).clone())
        .resolve(&host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("hermod/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| http(error_chain(&e)))?;
    let url = match port {
        443 => format!("https://{host}/.well-known/mta-sts.txt"),
        _ => format!("https://{host}:{port}/.well-known/mta-sts.txt"),
    };
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| http(error_chain(&e)))?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if response.status() != reqwest::StatusCode::OK || !content_type.starts_with("text/plain") {
        let shown: String = content_type.chars().take(60).collect();
        return Err(FetchError::Answer {
            host,
            answer: format!("{} ({shown:?})", response.status().as_u16()),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| http(error_chain(&e)))? {
        // Refused, not cut: a line cut short could read as another valid pattern.
        if body.len() + chunk.len() > MAX_POLICY {
            return Err(FetchError::Answer {
                host,
                answer: format!("a policy larger than {} KiB", MAX_POLICY / 1024),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Policy::parse(&String::from_utf8_lossy(&body))
        .map_err(|error| FetchError::Invalid { host, error })
}

/// The first address of the policy host.
async fn resolve(host: &str, resolver: &MxResolver, port: u16) -> Result<SocketAddr, FetchError> {
    let no_address = |reason: String| FetchError::NoAddress {
        host: host.to_string(),
        reason,
    };
    let name = format!("{host}.");
    let lookup = resolver
        .resolver()
        .lookup_ip(name.as_str())
        .await
        .map_err(|e| no_address(e.to_string()))?;
    lookup
        .iter()
        .next()
        .map(|ip| SocketAddr::new(ip, port))
        .ok_or_else(|| no_address("no A or AAAA record".into()))
}

/// An error with its causes (reqwest's own text stops at "error sending request").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
