//! The SpfVerifier actor: at MAIL FROM, whether the client's address may send for the
//! MAIL FROM domain (RFC 7208), or for the HELO name when the sender is null; the HELO
//! name is checked beside MAIL FROM too, and recorded. mail-auth
//! does the lookups and keeps RFC 7208's limits (10 DNS mechanisms, 20 s). A `fail` may
//! be refused there, before any data is sent; every result is kept by the session for
//! DMARC and the `Authentication-Results:` header at the end of DATA.

use std::sync::Arc;
use std::time::Instant;

use actix::ResponseFuture;

use crate::policy::actor::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfResult};

use super::{AuthRules, SpfFailAction, TempErrorAction};
use crate::policy::set::Ask;
use crate::protocol::check::{Acceptance, AuthMethod, AuthResult, Facts, Finding, Verdict};
use crate::protocol::reply::Reply;

/// The actor.
pub struct SpfVerifier {
    auth: Arc<MessageAuthenticator>,
    rules: Arc<AuthRules>,
}

impl SpfVerifier {
    /// A verifier asking through `auth`, acting by `rules`.
    pub fn new(auth: MessageAuthenticator, rules: Arc<AuthRules>) -> Self {
        SpfVerifier {
            auth: Arc::new(auth),
            rules,
        }
    }
}

impl Policy for SpfVerifier {
    fn ask(&mut self, Ask(facts): Ask) -> ResponseFuture<Verdict> {
        let (auth, rules) = (self.auth.clone(), self.rules.clone());
        Box::pin(async move { decide(&auth, &rules, &facts).await })
    }
}

/// SPF's result as RFC 8601 names it.
pub fn auth_result(result: SpfResult) -> AuthResult {
    match result {
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail => AuthResult::Fail,
        SpfResult::SoftFail => AuthResult::SoftFail,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::TempError => AuthResult::TempError,
        SpfResult::PermError => AuthResult::PermError,
        SpfResult::None => AuthResult::None,
    }
}

/// mail-auth's SPF result from ours (for DMARC and the header at DATA).
pub fn spf_result(result: AuthResult) -> SpfResult {
    match result {
        AuthResult::Pass => SpfResult::Pass,
        AuthResult::Fail => SpfResult::Fail,
        AuthResult::SoftFail => SpfResult::SoftFail,
        AuthResult::Neutral => SpfResult::Neutral,
        AuthResult::TempError => SpfResult::TempError,
        AuthResult::PermError => SpfResult::PermError,
        AuthResult::None => SpfResult::None,
    }
}

/// Whether a HELO name can have an SPF record: a domain name with a dot, not an address
/// literal (`[192.0.2.1]`) or a bare host name.
fn is_domain_name(helo: &str) -> bool {
    helo.contains('.') && !helo.starts_with('[') && helo.parse::<std::net::IpAddr>().is_err()
}

/// Whether `facts` come from a client whose mail is not verified: a trusted network or
/// an authenticated user (their mail is ours, and is signed instead).
pub(super) fn exempt(facts: &Facts) -> bool {
    facts.trusted || facts.user.is_some()
}

async fn decide(auth: &MessageAuthenticator, rules: &AuthRules, facts: &Facts) -> Verdict {
    if exempt(facts) {
        return Verdict::accept();
    }
    let helo = facts.helo.as_deref().unwrap_or_default();
    let sender = facts.sender.as_deref().unwrap_or_default();
    let started = Instant::now();
    let helo_check = async {
        auth.verify_spf(SpfParameters::verify_ehlo(
            facts.client_ip,
            helo,
            &rules.authserv_id,
        ))
        .await
    };
    let mail_from = auth.verify_spf(SpfParameters::verify_mail_from(
        facts.client_ip,
        helo,
        &rules.authserv_id,
        sender,
    ));
    let (output, helo_finding) = if sender.is_empty() {
        // The null sender (bounces): RFC 7208 §2.4 checks the HELO identity instead.
        (helo_check.await, None)
    } else if is_domain_name(helo) {
        // Both identities (RFC 7208 §2.3), at once; only MAIL FROM's result is enforced.
        let (mail_from, helo_output) = futures_util::future::join(mail_from, helo_check).await;
        let result = auth_result(helo_output.result());
        metrics::counter!("mail_auth_results_total", "method" => "spf_helo", "result" => result.name())
            .increment(1);
        let finding = Finding {
            method: AuthMethod::SpfHelo,
            result,
            domain: helo.to_string(),
        };
        (mail_from, Some(finding))
    } else {
        (mail_from.await, None)
    };
    metrics::histogram!("mail_auth_verify_seconds", "method" => "spf")
        .record(started.elapsed().as_secs_f64());
    let result = auth_result(output.result());
    let domain = output.domain().to_string();
    metrics::counter!("mail_auth_results_total", "method" => "spf", "result" => result.name())
        .increment(1);
    let finding = Finding {
        method: AuthMethod::Spf,
        result,
        domain,
    };
    match (result, rules.spf_fail, rules.temp_error) {
        (AuthResult::Fail, SpfFailAction::Reject, _) => {
            metrics::counter!("mail_auth_actions_total", "action" => "spf_rejected").increment(1);
            tracing::info!(client = %facts.client_ip, from = sender, helo, domain = %finding.domain,
                spf = "fail", "SPF fail: sender refused");
            Verdict::Reject(Reply::spf_failed(
                facts.client_ip,
                &finding.domain,
                output.explanation(),
            ))
        }
        (AuthResult::TempError, _, TempErrorAction::Defer) => {
            metrics::counter!("mail_auth_actions_total", "action" => "deferred_temperror")
                .increment(1);
            tracing::info!(client = %facts.client_ip, from = sender, helo, domain = %finding.domain,
                spf = "temperror", "SPF temperror: sender deferred");
            Verdict::Defer(Reply::spf_temporary_error(&finding.domain))
        }
        _ => Verdict::Accept(Acceptance {
            findings: std::iter::once(finding).chain(helo_finding).collect(),
            ..Acceptance::default()
        }),
    }
}
