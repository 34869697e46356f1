//! The webhook destination: each batch is one HTTP POST of a JSON array, signed with
//! HMAC-SHA256 over the body (`X-Hermod-Signature: sha256=<hex>`) so the receiver can
//! check it came from hermod; any 2xx acknowledges the batch.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use futures_util::future::LocalBoxFuture;

use crate::events::destination::{Destination, DestinationError};

/// The longest answer text quoted in an error: a receiver's bytes are hostile.
const QUOTED: usize = 200;

/// POSTs batches to one URL.
pub struct Webhook {
    url: String,
    key: Option<hmac::Key>,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
}

impl Webhook {
    /// A webhook at `url` (http or https, verified against `tls`'s roots), signing with
    /// `secret` when one is given, giving up on a request after `timeout`.
    pub fn new(
        url: &str,
        secret: Option<&[u8]>,
        timeout: Duration,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Webhook {
            url: url.to_string(),
            key: secret.map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)),
            timeout,
            tls,
        }
    }
}

/// `sha256=<hex>` of `body` under `key`: what the receiver recomputes.
pub fn signature(key: &hmac::Key, body: &[u8]) -> String {
    let tag = hmac::sign(key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Destination for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send(&self, batch: Vec<Vec<u8>>) -> LocalBoxFuture<'static, Result<(), DestinationError>> {
        let body = json_array(&batch);
        let signature = self.key.as_ref().map(|k| signature(k, &body));
        // A redirect would be followed as a GET without the body, and its 2xx taken
        // for the batch's acknowledgement: a 3xx is a refusal instead.
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(self.timeout)
            .connector(awc::Connector::new().rustls_0_23(self.tls.clone()))
            .finish();
        let mut request = client
            .post(&self.url)
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Hermod-Event-Count", batch.len().to_string()));
        if let Some(signature) = signature {
            request = request.insert_header(("X-Hermod-Signature", signature));
        }
        Box::pin(async move {
            let mut response = request
                .send_body(body)
                .await
                .map_err(|e| DestinationError::Unreachable(e.to_string()))?;
            if response.status().is_success() {
                return Ok(());
            }
            let text = response.body().limit(64 * 1024).await.unwrap_or_default();
            let text: String = String::from_utf8_lossy(&text)
                .chars()
                .filter(|c| !c.is_control())
                .take(QUOTED)
                .collect();
            Err(DestinationError::Refused(format!(
                "HTTP {}: {text}",
                response.status().as_u16()
            )))
        })
    }
}

/// `[e1,e2,...]` of JSON objects given as bytes.
fn json_array(events: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event);
    }
    body.push(b']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
