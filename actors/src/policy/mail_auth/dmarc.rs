//! The DmarcVerifier actor: at the end of DATA it has the DkimVerifier check every
//! signature, evaluates DMARC (RFC 7489) for the From: domain with that and the SPF result
//! the session kept from MAIL FROM, and writes the one `Authentication-Results:` header,
//! after taking out any that claim our authserv-id. Then it acts as the domain asks and
//! the operator allows: `p=reject` refused with `550 5.7.1`, `p=quarantine` marked or
//! held, a DNS failure deferred or recorded. Every verdict is in one log line per message
//! (`SPF/DKIM/DMARC verdict`) and in `mail_auth_results_total`.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcOutput, DmarcResult, MessageAuthenticator,
    SpfOutput,
};

use super::authentication_results::forged;
use super::dkim_verify::{DkimVerifier, VerifyDkim};
use super::spf::{exempt, spf_result};
use super::{AuthRules, DmarcRejectAction, QuarantineAction, TempErrorAction};
use crate::policy::content::{Content, content, header_section, write_without};
use crate::policy::set::Ask;
use crate::protocol::check::{Acceptance, AuthMethod, AuthResult, Facts, Verdict};
use crate::protocol::reply::Reply;

/// The actor.
pub struct DmarcVerifier {
    auth: Arc<MessageAuthenticator>,
    dkim: Addr<DkimVerifier>,
    rules: Arc<AuthRules>,
}

impl DmarcVerifier {
    /// A verifier asking `dkim` for signatures and looking policies up through `auth`.
    pub fn new(
        auth: MessageAuthenticator,
        dkim: Addr<DkimVerifier>,
        rules: Arc<AuthRules>,
    ) -> Self {
        DmarcVerifier {
            auth: Arc::new(auth),
            dkim,
            rules,
        }
    }
}

impl crate::policy::actor::Policy for DmarcVerifier {
    fn ask(&mut self, Ask(facts): Ask) -> ResponseFuture<Verdict> {
        let (auth, dkim, rules) = (self.auth.clone(), self.dkim.clone(), self.rules.clone());
        Box::pin(async move { decide(&auth, &dkim, &rules, &facts).await })
    }
}

/// What the verdict does to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Accept,
    Reject,
    QuarantineHeader,
    QuarantineHold,
    QuarantineTransport,
    Defer,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::QuarantineHeader => "quarantine_header",
            Action::QuarantineHold => "quarantine_hold",
            Action::QuarantineTransport => "quarantine_transport",
            Action::Defer => "defer",
        }
    }
}

fn dmarc_auth_result(result: &DmarcResult) -> AuthResult {
    match result {
        DmarcResult::Pass => AuthResult::Pass,
        DmarcResult::Fail(_) => AuthResult::Fail,
        DmarcResult::TempError(_) => AuthResult::TempError,
        DmarcResult::PermError(_) => AuthResult::PermError,
        DmarcResult::None => AuthResult::None,
    }
}

fn policy_name(policy: Policy) -> &'static str {
    match policy {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

async fn decide(
    auth: &MessageAuthenticator,
    dkim: &Addr<DkimVerifier>,
    rules: &AuthRules,
    facts: &Facts,
) -> Verdict {
    let queue_id = facts.queue_id.map(|id| id.to_string()).unwrap_or_default();
    let content = match to_verify(rules, facts, &queue_id).await {
        Ok(content) => content,
        Err(verdict) => return verdict,
    };
    let message = &content.bytes;
    let sender = facts.sender.as_deref().unwrap_or_default();
    let helo = facts.helo.as_deref().unwrap_or_default();
    let mail_from_domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d);
    let (spf, spf_name) = spf_of(facts, mail_from_domain);
    let Ok(Some(report)) = dkim.send(VerifyDkim(message.clone())).await else {
        return unreadable(&queue_id, "the DKIM check did not finish");
    };
    let dkim_outputs = report.outputs();
    let dkim_result = report.summary();
    let from_message = AuthenticatedMessage {
        from: report.from.clone(),
        ..AuthenticatedMessage::default()
    };
    let started = Instant::now();
    let dmarc = auth
        .verify_dmarc(DmarcParameters::new(
            &from_message,
            &dkim_outputs,
            mail_from_domain,
            &spf,
        ))
        .await;
    let from_domains = domains_of(&report.from);
    let several = from_domains.len() > 1;
    let dmarc_result = if several {
        AuthResult::PermError
    } else {
        dmarc_auth_result(&dmarc.result())
    };
    let header_from = dmarc.domain().to_string();
    let (action, policy, pct) = if several {
        // mail-auth skips such messages; RFC 7489 §6.6.1 lets the receiver refuse them,
        // and one of the domains may be a bank's with p=reject: the strictest policy.
        (choose(Policy::Reject, rules), Policy::Reject, None)
    } else {
        act(auth, rules, &dmarc, dmarc_result, facts).await
    };
    metrics::histogram!("mail_auth_verify_seconds", "method" => "dmarc")
        .record(started.elapsed().as_secs_f64());
    count_results(dkim_result, dmarc_result, action);
    let header = results_header(rules, facts, &spf, &dkim_outputs, &header_from, &dmarc);
    let header_from = if several {
        from_domains.join(",")
    } else {
        header_from
    };
    tracing::info!(queue_id = %queue_id, client = %facts.client_ip, from = sender,
        header_from = %header_from, spf = spf_name, dkim = dkim_result.name(),
        dkim_failure = report.first_failure().as_deref(), dmarc = dmarc_result.name(),
        policy = policy_name(policy), pct, action = action.name(), "SPF/DKIM/DMARC verdict");
    let why = || {
        format!(
            "no SPF or DKIM pass aligned with the From: domain (spf={spf_name} smtp.mailfrom={mail_from_domain}, dkim={})",
            dkim_result.name()
        )
    };
    match verdict_for(action, several, &header_from, why, &header, rules) {
        Verdict::Accept(accepted) => {
            without_forged(accepted, facts, message, rules, &queue_id).await
        }
        refusal => refusal,
    }
}

/// The message to verify, read whole; or the verdict already reached: an exempt client's
/// mail (only its header section is scanned for a forged `Authentication-Results:`), or
/// a message that cannot be read.
async fn to_verify(rules: &AuthRules, facts: &Facts, queue_id: &str) -> Result<Content, Verdict> {
    if exempt(facts) {
        // Their mail is not verified: only its header section is scanned, and a large
        // message is read whole only if a forged header must be taken out of its file.
        match header_section(facts).await {
            Ok(Some(head)) if forged(&head, &rules.authserv_id).is_empty() => {
                return Err(Verdict::Accept(Acceptance::default()));
            }
            Ok(_) => {}
            Err(e) => return Err(unreadable(queue_id, &e)),
        }
    }
    let content = match content(facts).await {
        Ok(Some(content)) => content,
        // At DATA a message is in memory or in its file; none means the file could not
        // even be written out.
        Ok(None) => {
            return Err(unreadable(
                queue_id,
                "its body file could not be written out",
            ));
        }
        Err(e) => return Err(unreadable(queue_id, &e)),
    };
    if exempt(facts) {
        // Their mail is not verified, but a header claiming our id is not theirs to add.
        let message = &content.bytes;
        return Err(without_forged(Acceptance::default(), facts, message, rules, queue_id).await);
    }
    Ok(content)
}

/// The SPF result the session kept from MAIL FROM, as DMARC takes it, and its name.
fn spf_of(facts: &Facts, mail_from_domain: &str) -> (SpfOutput, &'static str) {
    match facts.finding(AuthMethod::Spf) {
        Some(f) => (
            SpfOutput::new(f.domain.clone()).with_result(spf_result(f.result)),
            f.result.name(),
        ),
        None => (
            SpfOutput::new(mail_from_domain.to_string()),
            AuthResult::None.name(),
        ),
    }
}

/// The one `Authentication-Results:` header of the message: SPF for HELO and MAIL FROM,
/// each DKIM signature, DMARC.
fn results_header(
    rules: &AuthRules,
    facts: &Facts,
    spf: &SpfOutput,
    dkim_outputs: &[mail_auth::DkimOutput<'_>],
    header_from: &str,
    dmarc: &DmarcOutput,
) -> String {
    let sender = facts.sender.as_deref().unwrap_or_default();
    let helo = facts.helo.as_deref().unwrap_or_default();
    let header = AuthenticationResults::new(&rules.authserv_id);
    match facts.finding(AuthMethod::SpfHelo) {
        Some(f) => header.with_spf_ehlo_result(
            &SpfOutput::new(f.domain.clone()).with_result(spf_result(f.result)),
            facts.client_ip,
            helo,
        ),
        None => header,
    }
    .with_spf_mailfrom_result(spf, facts.client_ip, sender, helo)
    .with_dkim_results(dkim_outputs, header_from)
    .with_dmarc_result(dmarc)
    .to_header()
}

/// What `action` makes of the message: a refusal (`why` says why DMARC failed), or what
/// it is accepted with (its `header`, and the quarantine the action asks for), before
/// forged headers are taken out.
fn verdict_for(
    action: Action,
    several: bool,
    header_from: &str,
    why: impl FnOnce() -> String,
    header: &str,
    rules: &AuthRules,
) -> Verdict {
    let mut accepted = Acceptance {
        headers: vec![header.trim_end().to_string()],
        hold: action == Action::QuarantineHold,
        ..Acceptance::default()
    };
    match action {
        Action::Reject if several => {
            return Verdict::Reject(Reply::dmarc_several_from_domains(header_from));
        }
        Action::Reject => return Verdict::Reject(Reply::dmarc_rejected(header_from, &why())),
        Action::Defer => return Verdict::Defer(Reply::dmarc_temporary_error(header_from)),
        Action::QuarantineHeader => accepted.headers.push(rules.quarantine_header.clone()),
        Action::QuarantineTransport => accepted.route = Some(rules.quarantine_transport.clone()),
        Action::QuarantineHold | Action::Accept => {}
    }
    Verdict::Accept(accepted)
}

/// Counts one message's DKIM and DMARC results and the action taken on it.
fn count_results(dkim: AuthResult, dmarc: AuthResult, action: Action) {
    metrics::counter!("mail_auth_results_total", "method" => "dkim", "result" => dkim.name())
        .increment(1);
    metrics::counter!("mail_auth_results_total", "method" => "dmarc", "result" => dmarc.name())
        .increment(1);
    if action != Action::Accept {
        metrics::counter!("mail_auth_actions_total", "action" => match action {
            Action::Reject => "dmarc_rejected",
            Action::QuarantineHeader => "quarantined_header",
            Action::QuarantineHold => "quarantined_hold",
            Action::QuarantineTransport => "quarantined_transport",
            _ => "deferred_temperror",
        })
        .increment(1);
    }
}

/// A message that could not be checked is deferred, never accepted unchecked.
fn unreadable(queue_id: &str, why: impl std::fmt::Display) -> Verdict {
    tracing::error!(queue_id = %queue_id, error = %why, "SPF/DKIM/DMARC verdict: the message cannot be checked; deferred");
    Verdict::Defer(Reply::policy_unavailable("dmarc"))
}

/// `accepted`, with the `Authentication-Results:` headers that claim our authserv-id
/// taken out: by byte ranges in memory, or by writing a large message's file again.
async fn without_forged(
    mut accepted: Acceptance,
    facts: &Facts,
    message: &Arc<Vec<u8>>,
    rules: &AuthRules,
    queue_id: &str,
) -> Verdict {
    let forged = forged(message, &rules.authserv_id);
    match &facts.body_file {
        None => accepted.remove = forged,
        Some(path) if !forged.is_empty() => {
            match write_without(path, message.clone(), forged).await {
                Ok(clean) => accepted.replace_body_file = Some(clean),
                Err(e) => {
                    tracing::error!(queue_id = %queue_id, error = %e, "cannot remove forged Authentication-Results headers; deferred");
                    return Verdict::Defer(Reply::policy_unavailable("dmarc"));
                }
            }
        }
        Some(_) => {}
    }
    Verdict::Accept(accepted)
}

/// The distinct domains of the From: addresses, lowercase.
fn domains_of(from: &[String]) -> Vec<String> {
    let mut domains: Vec<String> = from
        .iter()
        .filter_map(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

/// What a failure under `policy` does, by the operator's rules.
fn choose(policy: Policy, rules: &AuthRules) -> Action {
    let quarantine = match rules.dmarc_quarantine {
        QuarantineAction::Header => Action::QuarantineHeader,
        QuarantineAction::Hold => Action::QuarantineHold,
        QuarantineAction::Transport => Action::QuarantineTransport,
        QuarantineAction::Record => Action::Accept,
    };
    match (policy, rules.dmarc_reject) {
        (Policy::Reject, DmarcRejectAction::Reject) => Action::Reject,
        (Policy::Reject, DmarcRejectAction::Quarantine) | (Policy::Quarantine, _) => quarantine,
        _ => Action::Accept,
    }
}

/// What to do about a message with this DMARC outcome; the policy that applied (after
/// the `pct` sample) and the `pct`.
async fn act(
    auth: &MessageAuthenticator,
    rules: &AuthRules,
    dmarc: &DmarcOutput,
    result: AuthResult,
    facts: &Facts,
) -> (Action, Policy, Option<u8>) {
    let mut policy = dmarc.policy();
    match result {
        AuthResult::TempError if rules.temp_error == TempErrorAction::Defer => {
            (Action::Defer, policy, None)
        }
        AuthResult::Fail => {
            let pct = if matches!(policy, Policy::Reject | Policy::Quarantine) {
                percent(auth, dmarc.domain()).await
            } else {
                None
            };
            // RFC 7489 §6.6.4: outside the `pct` sample, the next policy down applies.
            if let Some(pct) = pct
                && sample(facts) >= u64::from(pct)
            {
                policy = match policy {
                    Policy::Reject => Policy::Quarantine,
                    _ => Policy::None,
                };
            }
            (choose(policy, rules), policy, pct)
        }
        _ => (Action::Accept, policy, None),
    }
}

/// A number in 0..100 for the `pct` sample, the same for one message.
fn sample(facts: &Facts) -> u64 {
    RandomState::new().hash_one(facts.queue_id) % 100
}

/// The `pct=` of the DMARC record that governs `domain` (its own, else that of a parent
/// domain), when it is under 100. mail-auth follows the DMARC revision that dropped `pct`,
/// so hermod reads it itself; the lookups are answered from the resolver's cache, since
/// the DMARC check just made them.
async fn percent(auth: &MessageAuthenticator, domain: &str) -> Option<u8> {
    let mut name = domain.trim_end_matches('.');
    loop {
        if let Ok(record) = auth.txt_raw_lookup(format!("_dmarc.{name}.")).await {
            let record = String::from_utf8_lossy(&record);
            if record.trim_start().starts_with("v=DMARC1") {
                return pct_of(&record);
            }
        }
        // Up to the organizational domain: stop at two labels.
        match name.split_once('.') {
            Some((_, parent)) if parent.contains('.') => name = parent,
            _ => return None,
        }
    }
}

/// The `pct` tag of a DMARC record, when it is under 100.
fn pct_of(record: &str) -> Option<u8> {
    record.split(';').find_map(|tag| {
        let (name, value) = tag.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("pct") {
            return None;
        }
        value.trim().parse::<u8>().ok().filter(|p| *p < 100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_is_read_when_it_samples() {
        assert_eq!(pct_of("v=DMARC1; p=reject; pct=25"), Some(25));
        assert_eq!(
            pct_of("v=DMARC1; p=reject; PCT = 0 ;rua=mailto:x@y"),
            Some(0)
        );
        assert_eq!(pct_of("v=DMARC1; p=reject; pct=100"), None);
        assert_eq!(pct_of("v=DMARC1; p=reject"), None);
        assert_eq!(pct_of("v=DMARC1; pct=abc"), None);
    }
}
