//! The DkimVerifier actor: checks every `DKIM-Signature:` of a message (RFC 6376) and
//! reports each result with its signature, for DMARC and the `Authentication-Results:`
//! header. Parsing, body hashes and signature checks run on the [`VerifyPool`], not on
//! the arbiter that asks, so sessions never wait behind the CPU work of a large message.

use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use actix::prelude::*;
use mail_auth::dkim::Signature;
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, MessageAuthenticator};

use super::pool::VerifyPool;
use crate::protocol::check::AuthResult;

/// Check the signatures of this message (headers and body, CRLF line ends).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Option<DkimReport>")]
pub struct VerifyDkim(pub Arc<Vec<u8>>);

/// What the signatures of one message say.
#[derive(Debug, Clone, Default)]
pub struct DkimReport {
    /// Each signature's result, with the signature when it could be read.
    pub signatures: Vec<(DkimResult, Option<Signature>)>,
    /// The From: addresses, as DMARC reads them.
    pub from: Vec<String>,
}

impl DkimReport {
    /// mail-auth's outputs again, for DMARC and the header.
    pub fn outputs(&self) -> Vec<DkimOutput<'_>> {
        self.signatures
            .iter()
            .map(|(result, signature)| {
                let output = match result.clone() {
                    DkimResult::Pass => DkimOutput::pass(),
                    DkimResult::Fail(e) => DkimOutput::fail(e),
                    DkimResult::Neutral(e) => DkimOutput::neutral(e),
                    DkimResult::PermError(e) => DkimOutput::perm_err(e),
                    DkimResult::TempError(e) => DkimOutput::temp_err(e),
                    DkimResult::None => DkimOutput::neutral(mail_auth::Error::NotAligned),
                };
                match signature {
                    Some(signature) => output.with_signature(signature),
                    None => output,
                }
            })
            .collect()
    }

    /// The message's DKIM result in one word: `pass` if any signature passed, else the
    /// most telling failure; `none` without signatures.
    pub fn summary(&self) -> AuthResult {
        let rank = |r: &DkimResult| match r {
            DkimResult::Pass => (0, AuthResult::Pass),
            DkimResult::Fail(_) => (1, AuthResult::Fail),
            DkimResult::TempError(_) => (2, AuthResult::TempError),
            DkimResult::PermError(_) => (3, AuthResult::PermError),
            DkimResult::Neutral(_) => (4, AuthResult::Neutral),
            DkimResult::None => (5, AuthResult::None),
        };
        self.signatures
            .iter()
            .map(|(r, _)| rank(r))
            .min_by_key(|(n, _)| *n)
            .map_or(AuthResult::None, |(_, r)| r)
    }

    /// `d=` of the first signature that did not pass, and why, for the log.
    pub fn first_failure(&self) -> Option<String> {
        self.signatures.iter().find_map(|(result, signature)| {
            let why = match result {
                DkimResult::Pass | DkimResult::None => return None,
                DkimResult::Fail(e)
                | DkimResult::Neutral(e)
                | DkimResult::PermError(e)
                | DkimResult::TempError(e) => e.to_string(),
            };
            let d = signature.as_ref().map_or("?", |s| s.d.as_str());
            let selector = signature.as_ref().map_or("?", |s| s.s.as_str());
            Some(format!("d={d} s={selector}: {why}"))
        })
    }
}

/// The actor.
pub struct DkimVerifier {
    auth: Arc<MessageAuthenticator>,
    pool: Arc<VerifyPool>,
}

impl DkimVerifier {
    /// A verifier looking keys up through `auth`, working on `pool`.
    pub fn new(auth: MessageAuthenticator, pool: Arc<VerifyPool>) -> Self {
        DkimVerifier {
            auth: Arc::new(auth),
            pool,
        }
    }
}

impl Actor for DkimVerifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(100_000);
    }
}

impl Handler<VerifyDkim> for DkimVerifier {
    type Result = ResponseFuture<Option<DkimReport>>;

    fn handle(&mut self, VerifyDkim(message): VerifyDkim, _: &mut Context<Self>) -> Self::Result {
        let (auth, pool) = (self.auth.clone(), self.pool.clone());
        Box::pin(async move {
            let started = Instant::now();
            // None: the pool stopped, or the check panicked; the message is deferred.
            let report = pool.run(verify(auth, message)).await;
            metrics::histogram!("mail_auth_verify_seconds", "method" => "dkim")
                .record(started.elapsed().as_secs_f64());
            report
        })
    }
}

/// Signatures checked per message, at most (the first ones, from the top): each costs a
/// key lookup in a domain the sender chose, and real mail carries one to three.
pub const MAX_SIGNATURES: usize = 10;

/// Checks the signatures of `message` (the first [`MAX_SIGNATURES`]).
pub async fn verify(auth: Arc<MessageAuthenticator>, message: Arc<Vec<u8>>) -> DkimReport {
    let Some(mut parsed) = AuthenticatedMessage::parse(&message) else {
        return DkimReport::default();
    };
    parsed.dkim_headers.truncate(MAX_SIGNATURES);
    let outputs = auth.verify_dkim(&parsed).await;
    DkimReport {
        signatures: outputs
            .iter()
            .map(|o| (o.result().clone(), o.signature().cloned()))
            .collect(),
        from: parsed.from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::mx::MxResolver;

    #[tokio::test]
    async fn no_more_than_the_first_ten_signatures_are_checked() {
        let mut message = String::new();
        for i in 0..25 {
            message.push_str(&format!(
                "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d{i}.test; s=s; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==\r\n"
            ));
        }
        message.push_str("From: a@d0.test\r\n\r\nbody\r\n");
        // Nothing answers on port 1: every key lookup fails at once.
        let resolver = MxResolver::new(
            &["127.0.0.1:1".parse().unwrap()],
            Duration::from_millis(200),
        )
        .unwrap();
        let auth = Arc::new(crate::policy::mail_auth::authenticator(&resolver));
        let report = verify(auth, Arc::new(message.into_bytes())).await;
        assert_eq!(report.signatures.len(), MAX_SIGNATURES, "{report:?}");
    }
}
