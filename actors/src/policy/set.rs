//! The policies a Session asks: each a policy actor behind a [`Recipient<Ask>`], with
//! the stages it speaks at, the time it gets to answer, and what its silence means. The
//! Session asks every policy of a stage at once and combines their verdicts: a rejection
//! wins over a deferral, a deferral over acceptance, and accepted headers add up.
//!
//! A policy that errs or does not answer by its deadline defers (4xx), never accepts and
//! never hangs, unless it is configured to fail open; then it is logged and counted each
//! time and the others decide.
//!
//! Policies that ask the DNS (DNSBL, SPF, DKIM, DMARC) share one time budget per
//! transaction ([`DnsBudget`], `smtp.dns_budget`): with a DNS that does not answer, a
//! message waits for it once, not once per policy and recipient (three recipients
//! cost 14 s, and SPF plus DMARC 30 s, before). Once it is spent, those policies are
//! not asked and their failure rule applies at once.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::protocol::check::{Acceptance, CheckStage, CheckStages, Facts, Verdict};
use crate::protocol::reply::Reply;

/// A question to one policy actor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Verdict")]
pub struct Ask(pub Arc<Facts>);

/// One policy as the Sessions see it.
#[derive(Clone)]
pub struct PolicyMember {
    /// Its name in logs, metrics and replies (`rate_limit`, `greylist`, `dnsbl`).
    pub name: &'static str,
    /// The stages it speaks at.
    pub stages: CheckStages,
    /// Its actor.
    pub ask: Recipient<Ask>,
    /// How long it gets to answer.
    pub deadline: Duration,
    /// Its failure (or silence) lets the mail through instead of deferring it.
    pub fail_open: bool,
    /// It asks the DNS: its waits come out of the transaction's [`DnsBudget`].
    pub uses_dns: bool,
}

/// The time a transaction may still spend waiting for policies that ask the DNS.
#[derive(Debug, Clone, Copy)]
pub struct DnsBudget {
    left: Duration,
}

impl DnsBudget {
    /// A budget of `total`.
    pub fn new(total: Duration) -> Self {
        DnsBudget { left: total }
    }

    /// No limit beyond each policy's own deadline.
    pub fn unlimited() -> Self {
        DnsBudget::new(Duration::MAX)
    }

    /// What is left.
    pub fn left(&self) -> Duration {
        self.left
    }

    fn spend(&mut self, spent: Duration) {
        self.left = self.left.saturating_sub(spent);
    }
}

/// Every policy, shared by all Sessions.
#[derive(Clone)]
pub struct PolicySet {
    members: Arc<Vec<PolicyMember>>,
    dns_budget: Duration,
}

impl Default for PolicySet {
    fn default() -> Self {
        PolicySet::new(Vec::new())
    }
}

impl PolicySet {
    /// The set of these policies, without a DNS budget beyond their deadlines.
    pub fn new(members: Vec<PolicyMember>) -> Self {
        PolicySet {
            members: Arc::new(members),
            dns_budget: Duration::MAX,
        }
    }

    /// The same set, giving each transaction `total` for its policies' DNS waits.
    pub fn with_dns_budget(mut self, total: Duration) -> Self {
        self.dns_budget = total;
        self
    }

    /// A fresh budget for a transaction (and for the checks before its MAIL).
    pub fn dns_budget(&self) -> DnsBudget {
        DnsBudget::new(self.dns_budget)
    }

    /// Where the Sessions must stop for some policy.
    pub fn stages(&self) -> CheckStages {
        self.members
            .iter()
            .fold(CheckStages::NONE, |all, m| all.union(m.stages))
    }

    /// Asks every policy of `facts.stage`, at once, and combines their verdicts.
    pub async fn check(&self, facts: Facts) -> Verdict {
        self.check_within(facts, &mut DnsBudget::unlimited()).await
    }

    /// [`PolicySet::check`], the DNS waits taken out of `budget`: a policy that asks the
    /// DNS gets at most what is left, and none once it is spent.
    pub async fn check_within(&self, facts: Facts, budget: &mut DnsBudget) -> Verdict {
        let stage = facts.stage;
        let facts = Arc::new(facts);
        let left = budget.left();
        let asks = self
            .members
            .iter()
            .filter(|m| m.stages.contains(stage))
            .map(|member| {
                let question = Ask(facts.clone());
                let deadline = if member.uses_dns {
                    member.deadline.min(left)
                } else {
                    member.deadline
                };
                async move {
                    if deadline.is_zero() {
                        return (member, Answer::BudgetSpent, Duration::ZERO);
                    }
                    crate::mailbox::sent(member.name);
                    let started = std::time::Instant::now();
                    let answer = tokio::time::timeout(deadline, member.ask.send(question)).await;
                    crate::mailbox::taken(member.name);
                    metrics::histogram!("policy_answer_seconds", "policy" => member.name)
                        .record(started.elapsed().as_secs_f64());
                    let answer = match answer {
                        Ok(Ok(verdict)) => Answer::Verdict(verdict),
                        Ok(Err(_)) => Answer::Gone,
                        Err(_) if deadline < member.deadline => Answer::BudgetSpent,
                        Err(_) => Answer::Late,
                    };
                    (member, answer, started.elapsed())
                }
            })
            .collect::<Vec<_>>();
        let answers = futures_util::future::join_all(asks).await;
        // Only the DNS policies' time counts (they run at once: the longest of them).
        let spent = answers
            .iter()
            .filter(|(member, _, _)| member.uses_dns)
            .map(|(_, _, took)| *took)
            .max()
            .unwrap_or_default();
        budget.spend(spent);
        let mut accepted = Acceptance::default();
        let mut deferral = None;
        for (member, answer, _) in answers {
            let verdict = match answer {
                Answer::Verdict(verdict) => verdict,
                Answer::Gone => failed(member, stage, &facts, "its actor is gone"),
                Answer::Late => failed(member, stage, &facts, "no answer in time"),
                Answer::BudgetSpent => failed(
                    member,
                    stage,
                    &facts,
                    "the transaction's DNS time budget (smtp.dns_budget) is spent",
                ),
            };
            match verdict {
                Verdict::Reject(reply) => return Verdict::Reject(reply),
                Verdict::Defer(reply) => {
                    deferral.get_or_insert(reply);
                }
                Verdict::Accept(more) => accepted.merge(more),
            }
        }
        match deferral {
            Some(reply) => Verdict::Defer(reply),
            None => Verdict::Accept(accepted),
        }
    }
}

/// What became of one question.
enum Answer {
    Verdict(Verdict),
    /// The actor stopped.
    Gone,
    /// No answer by the policy's own deadline.
    Late,
    /// No answer within (or no time left in) the transaction's DNS budget.
    BudgetSpent,
}

/// What a policy that failed says: nothing (fail open) or a deferral.
fn failed(member: &PolicyMember, stage: CheckStage, facts: &Facts, why: &str) -> Verdict {
    let outcome = if member.fail_open {
        "fail_open"
    } else {
        "deferred"
    };
    metrics::counter!("policy_failures_total", "policy" => member.name, "outcome" => outcome)
        .increment(1);
    tracing::warn!(
        policy = member.name,
        stage = stage.name(),
        client = %facts.client_ip,
        why,
        outcome,
        "policy did not answer"
    );
    if member.fail_open {
        Verdict::accept()
    } else if stage == CheckStage::Connect {
        Verdict::Defer(Reply::policy_unavailable_connect(member.name))
    } else {
        Verdict::Defer(Reply::policy_unavailable(member.name))
    }
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_histogram!(
        "policy_answer_seconds",
        metrics::Unit::Seconds,
        "Time from asking a policy actor to its answer (or to its deadline), by policy: its mailbox wait and handling time."
    );
    metrics::describe_counter!(
        "policy_failures_total",
        "Policy checks that failed or did not answer by their deadline, by policy and outcome (fail_open: let through; deferred: 4xx)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy actor that answers with a fixed verdict after a pause.
    struct Fixed(Verdict, Duration);

    impl Actor for Fixed {
        type Context = Context<Self>;
    }

    impl Handler<Ask> for Fixed {
        type Result = ResponseFuture<Verdict>;

        fn handle(&mut self, _: Ask, _: &mut Context<Self>) -> Self::Result {
            let (verdict, pause) = (self.0.clone(), self.1);
            Box::pin(async move {
                tokio::time::sleep(pause).await;
                verdict
            })
        }
    }

    fn member(
        name: &'static str,
        verdict: Verdict,
        pause_ms: u64,
        fail_open: bool,
    ) -> PolicyMember {
        PolicyMember {
            uses_dns: false,
            name,
            stages: CheckStages::of(&[CheckStage::Rcpt]),
            ask: Fixed(verdict, Duration::from_millis(pause_ms))
                .start()
                .recipient(),
            deadline: Duration::from_secs(1),
            fail_open,
        }
    }

    fn facts() -> Facts {
        let mut facts = Facts::connect("192.0.2.1".parse().unwrap(), false);
        facts.stage = CheckStage::Rcpt;
        facts
    }

    #[actix_rt::test]
    async fn rejection_beats_deferral_beats_acceptance() {
        let header = Verdict::accept_with_headers(vec!["X-Checked: yes".into()]);
        let set = PolicySet::new(vec![
            member("a", header.clone(), 0, false),
            member("b", Verdict::Defer(Reply::greylisted(60)), 0, false),
        ]);
        assert_eq!(
            set.check(facts()).await,
            Verdict::Defer(Reply::greylisted(60))
        );
        let set = PolicySet::new(vec![
            member("a", Verdict::Defer(Reply::greylisted(60)), 0, false),
            member("b", Verdict::Reject(Reply::rate_limited(1)), 0, false),
        ]);
        assert_eq!(
            set.check(facts()).await,
            Verdict::Reject(Reply::rate_limited(1))
        );
        let set = PolicySet::new(vec![
            member("a", header.clone(), 0, false),
            member("b", header, 0, false),
        ]);
        let Verdict::Accept(accepted) = set.check(facts()).await else {
            panic!("not accepted");
        };
        assert_eq!(accepted.headers.len(), 2);
        // A stage no member speaks at is accepted without asking.
        let mut connect = facts();
        connect.stage = CheckStage::Connect;
        assert_eq!(set.check(connect).await, Verdict::accept());
    }

    /// A DNS that never answers: the first recipient waits for the budget, the next
    /// ones not at all, and the failure rule (here: fail open) applies to each.
    #[actix_rt::test]
    async fn dns_policies_share_one_budget_per_transaction() {
        let mut dns = member("dnsbl", Verdict::accept(), 5_000, true);
        dns.uses_dns = true;
        let mut other = member("greylist", Verdict::accept(), 0, false);
        other.uses_dns = false;
        let set = PolicySet::new(vec![dns, other]).with_dns_budget(Duration::from_millis(300));
        let mut budget = set.dns_budget();
        let started = std::time::Instant::now();
        for _ in 0..20 {
            assert_eq!(
                set.check_within(facts(), &mut budget).await,
                Verdict::accept()
            );
        }
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        assert!(budget.left().is_zero());
        // A policy without DNS is still asked when the budget is spent.
        let mut dns = member("spf", Verdict::accept(), 5_000, false);
        dns.uses_dns = true;
        let strict = PolicySet::new(vec![dns]).with_dns_budget(Duration::ZERO);
        assert_eq!(
            strict.check_within(facts(), &mut strict.dns_budget()).await,
            Verdict::Defer(Reply::policy_unavailable("spf"))
        );
    }

    #[actix_rt::test]
    async fn a_silent_policy_defers_unless_it_fails_open() {
        let slow = PolicySet::new(vec![member("slow", Verdict::accept(), 5_000, false)]);
        let started = std::time::Instant::now();
        assert_eq!(
            slow.check(facts()).await,
            Verdict::Defer(Reply::policy_unavailable("slow"))
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let open = PolicySet::new(vec![member(
            "slow",
            Verdict::Reject(Reply::rate_limited(1)),
            5_000,
            true,
        )]);
        assert_eq!(open.check(facts()).await, Verdict::accept());
    }
}
