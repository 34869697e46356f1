//! The retry schedule, pure: what an attempt's outcome makes of a recipient, when it is
//! due again, when hermod gives up on it, and what `hermod queue flush` changes. Time
//! comes in as `now` (unix seconds), so every rule is tested here with fixed time; the
//! Queue actor only applies the answers.

use std::time::Duration;

use crate::outbound::delivery::Outcome;
use crate::protocol::status::{EnhancedCode, Status};
use crate::queue::QueueSettings;
use crate::store::envelope::{Envelope, RecipientState, RecipientStatus};

/// RFC 3463 X.4.7, delivery time expired: the code of a recipient hermod stops trying.
const GAVE_UP: EnhancedCode = EnhancedCode::new(5, 4, 7);

impl QueueSettings {
    /// The delay before attempt `attempts + 1`: doubling from the first retry interval,
    /// capped at the maximum.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.retry_interval
            .saturating_mul(factor)
            .min(self.max_retry_interval)
    }
}

/// What one delivery attempt made of a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// Delivered: the next hop took it.
    Sent,
    /// To be tried again later.
    Deferred,
    /// Given up on: a bounce goes to the sender.
    Bounced,
}

impl AttemptResult {
    /// The log's `status` and the metric's label: `sent`, `deferred` or `bounced`.
    pub fn label(self) -> &'static str {
        match self {
            AttemptResult::Sent => "sent",
            AttemptResult::Deferred => "deferred",
            AttemptResult::Bounced => "bounced",
        }
    }
}

/// What one attempt made of one recipient, for its log line and metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What became of the recipient.
    pub result: AttemptResult,
    /// The reply or reason, as logged.
    pub reply: String,
    /// Its enhanced status code, which the bounce rules read beside the text.
    pub code: EnhancedCode,
    /// hermod gave up on a deferred recipient: the message expired or ran out of
    /// attempts (an `Expiration`, not a next hop's `Bounce`).
    pub gave_up: bool,
}

/// Applies `outcome` to `rcpt` of a message that arrived at `arrival`: counts the
/// attempt, then marks the recipient delivered, failed, or deferred with back-off. A
/// deferral past `max_lifetime` or `max_attempts` becomes a permanent 5.4.7 that carries
/// the last reply. With `soft_bounce`, permanent failures are deferred and nobody is
/// given up on.
pub fn after_attempt(
    settings: &QueueSettings,
    rcpt: &mut RecipientState,
    outcome: Outcome,
    arrival: u64,
    now: u64,
) -> Attempt {
    rcpt.attempts += 1;
    let outcome = match outcome {
        Outcome::Failed(status) if settings.soft_bounce => {
            Outcome::Deferred(status.noted("kept by queue.soft_bounce"))
        }
        outcome => outcome,
    };
    let mut gave_up_on = false;
    let (result, status) = match outcome {
        Outcome::Delivered(status) => {
            rcpt.status = RecipientStatus::Delivered;
            (AttemptResult::Sent, status)
        }
        Outcome::Failed(status) => {
            rcpt.status = failed(&status);
            (AttemptResult::Bounced, status)
        }
        Outcome::Deferred(status) => {
            let expired = now.saturating_sub(arrival) >= settings.max_lifetime.as_secs();
            let exhausted = settings.max_attempts > 0 && rcpt.attempts >= settings.max_attempts;
            if (expired || exhausted) && !settings.soft_bounce {
                let why = if expired {
                    "message expired in queue"
                } else {
                    "too many delivery attempts"
                };
                let status = gave_up(why, &status.text);
                rcpt.status = failed(&status);
                gave_up_on = true;
                (AttemptResult::Bounced, status)
            } else {
                let delay = settings.backoff(rcpt.attempts.max(1)).as_secs().max(1);
                rcpt.status = RecipientStatus::Deferred {
                    next_attempt: now + delay,
                    last_reply: status.text.clone(),
                };
                (AttemptResult::Deferred, status)
            }
        }
    };
    Attempt {
        result,
        reply: status.text,
        code: status.code,
        gave_up: gave_up_on,
    }
}

/// The permanent failure hermod gives a recipient it stops trying (RFC 3463 X.4.7): the
/// bounce's `Status:` and its diagnostic then agree, and the last reply says why.
pub fn gave_up(why: &str, last_reply: &str) -> Status {
    Status::local(GAVE_UP, format!("{why}; last reply: {last_reply}"))
}

/// Whether a failed recipient's `code` and `reply` are hermod's own give-up
/// ([`gave_up`]): its class is `MessageExpired`, whatever the last reply quoted in it says.
pub fn is_gave_up(code: EnhancedCode, reply: &str) -> bool {
    code == GAVE_UP && reply.contains("; last reply: ")
}

/// A recipient's failed state from the status that failed it.
pub fn failed(status: &Status) -> RecipientStatus {
    RecipientStatus::Failed {
        reply: status.text.clone(),
        code: status.code.permanent(),
    }
}

/// When a message that arrived at `arrival` has been queued too long (never, with
/// `soft_bounce`), in unix seconds: [`expired`] from then on.
pub fn expires_at(settings: &QueueSettings, arrival: u64) -> u64 {
    if settings.soft_bounce {
        u64::MAX
    } else {
        arrival.saturating_add(settings.max_lifetime.as_secs())
    }
}

/// Whether a message that arrived at `arrival` has outlived `max_lifetime` at `now`
/// (never, with `soft_bounce`).
pub fn expired(settings: &QueueSettings, arrival: u64, now: u64) -> bool {
    !settings.soft_bounce && now.saturating_sub(arrival) >= settings.max_lifetime.as_secs()
}

/// Whether a recipient needs an attempt at `now`.
pub fn is_due(status: &RecipientStatus, now: u64) -> bool {
    match status {
        RecipientStatus::Pending => true,
        RecipientStatus::Deferred { next_attempt, .. } => *next_attempt <= now,
        RecipientStatus::Delivered | RecipientStatus::Failed { .. } => false,
    }
}

/// The earliest time any recipient needs an attempt, or `None` when all are final.
pub fn next_due(envelope: &Envelope) -> Option<u64> {
    envelope
        .recipients
        .iter()
        .filter_map(|r| match &r.status {
            RecipientStatus::Pending => Some(0),
            RecipientStatus::Deferred { next_attempt, .. } => Some(*next_attempt),
            _ => None,
        })
        .min()
}

/// `hermod queue flush`: every deferred recipient is due at `now`. Returns how many.
pub fn flush(envelope: &mut Envelope, now: u64) -> usize {
    let mut count = 0;
    for r in &mut envelope.recipients {
        if let RecipientStatus::Deferred { next_attempt, .. } = &mut r.status {
            *next_attempt = now;
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::hop_health::HopPolicy;

    const HOUR: u64 = 3600;
    const ARRIVAL: u64 = 1_000_000;

    fn settings() -> QueueSettings {
        QueueSettings {
            hostname: "mx.test".into(),
            retry_interval: Duration::from_secs(300),
            max_retry_interval: Duration::from_secs(HOUR),
            max_lifetime: Duration::from_secs(5 * 24 * HOUR),
            max_attempts: 0,
            scan_interval: Duration::from_secs(1),
            max_in_flight: 10,
            max_bytes_in_flight: 1 << 20,
            hops: HopPolicy {
                down_after: 5,
                first_backoff: Duration::from_secs(60),
                max_backoff: Duration::from_secs(HOUR),
            },
            state_flush_interval: Duration::from_millis(200),
            postmaster: None,
            soft_bounce: false,
            bounce_rules: std::sync::Arc::new(crate::events::bounce_rules::BounceRules::shipped()),
        }
    }

    fn rcpt() -> RecipientState {
        RecipientState {
            address: "a@b.test".into(),
            domain: "b.test".into(),
            status: RecipientStatus::Pending,
            attempts: 0,
        }
    }

    fn envelope(recipients: Vec<RecipientState>) -> Envelope {
        Envelope {
            sender: "s@a.test".into(),
            recipients,
            arrival: ARRIVAL,
            size: 100,
            client: "127.0.0.1".into(),
            options: Default::default(),
            body_file: false,
            held: false,
            user: None,
            route: None,
            tracking: Vec::new(),
            trace: None,
            tls_report: false,
            pool: None,
        }
    }

    fn deferred() -> Outcome {
        Outcome::Deferred(Status::from_reply(451, "4.3.0 try later"))
    }

    fn next_attempt(rcpt: &RecipientState) -> u64 {
        match rcpt.status {
            RecipientStatus::Deferred { next_attempt, .. } => next_attempt,
            ref other => panic!("not deferred: {other:?}"),
        }
    }

    #[test]
    fn back_off_doubles_from_the_retry_interval_up_to_the_cap() {
        let s = settings();
        let delays: Vec<u64> = (1..=6).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(delays, [300, 600, 1200, 2400, HOUR, HOUR]);
        assert_eq!(s.backoff(u32::MAX).as_secs(), HOUR);
    }

    #[test]
    fn a_deferral_is_due_after_its_back_off() {
        let (s, mut r) = (settings(), rcpt());
        let now = ARRIVAL + 10;
        let attempt = after_attempt(&s, &mut r, deferred(), ARRIVAL, now);
        assert_eq!(attempt.result, AttemptResult::Deferred);
        assert_eq!(next_attempt(&r), now + 300);
        assert!(!is_due(&r.status, now + 299));
        assert!(is_due(&r.status, now + 300));
        after_attempt(&s, &mut r, deferred(), ARRIVAL, now + 300);
        assert_eq!(next_attempt(&r), now + 300 + 600);
    }

    #[test]
    fn past_max_lifetime_a_deferral_is_a_permanent_5_4_7_with_the_last_reply() {
        let (s, mut r) = (settings(), rcpt());
        let now = ARRIVAL + 5 * 24 * HOUR;
        let attempt = after_attempt(&s, &mut r, deferred(), ARRIVAL, now);
        assert_eq!(attempt.result, AttemptResult::Bounced);
        assert_eq!(
            attempt.reply,
            "5.4.7 message expired in queue; last reply: 451 4.3.0 try later"
        );
        assert_eq!(
            r.status,
            RecipientStatus::Failed {
                reply: attempt.reply,
                code: EnhancedCode::new(5, 4, 7),
            }
        );
        assert!(expired(&s, ARRIVAL, now) && !expired(&s, ARRIVAL, now - 1));
    }

    #[test]
    fn max_attempts_gives_up_at_the_last_attempt() {
        let mut s = settings();
        s.max_attempts = 2;
        let mut r = rcpt();
        assert_eq!(
            after_attempt(&s, &mut r, deferred(), ARRIVAL, ARRIVAL).result,
            AttemptResult::Deferred
        );
        let attempt = after_attempt(&s, &mut r, deferred(), ARRIVAL, ARRIVAL + 300);
        assert_eq!(attempt.result, AttemptResult::Bounced);
        assert!(
            attempt
                .reply
                .starts_with("5.4.7 too many delivery attempts")
        );
    }

    #[test]
    fn a_permanent_failure_keeps_the_next_hops_code() {
        let (s, mut r) = (settings(), rcpt());
        let failure = Outcome::Failed(Status::from_reply(550, "5.1.1 User unknown"));
        assert_eq!(
            after_attempt(&s, &mut r, failure, ARRIVAL, ARRIVAL).result,
            AttemptResult::Bounced
        );
        assert!(matches!(
            r.status,
            RecipientStatus::Failed { code, .. } if code == EnhancedCode::new(5, 1, 1)
        ));
        assert_eq!(next_due(&envelope(vec![r])), None);
    }

    #[test]
    fn soft_bounce_defers_permanent_failures_and_never_gives_up() {
        let mut s = settings();
        s.soft_bounce = true;
        s.max_attempts = 1;
        let mut r = rcpt();
        let failure = Outcome::Failed(Status::from_reply(550, "5.1.1 User unknown"));
        let late = ARRIVAL + 30 * 24 * HOUR;
        let attempt = after_attempt(&s, &mut r, failure, ARRIVAL, late);
        assert_eq!(attempt.result, AttemptResult::Deferred);
        assert!(attempt.reply.ends_with("(kept by queue.soft_bounce)"));
        assert_eq!(next_attempt(&r), late + 300);
        assert!(!expired(&s, ARRIVAL, late));
    }

    #[test]
    fn flush_makes_every_deferred_recipient_due_now() {
        let s = settings();
        let (mut a, mut b, c) = (rcpt(), rcpt(), rcpt());
        after_attempt(&s, &mut a, deferred(), ARRIVAL, ARRIVAL);
        after_attempt(
            &s,
            &mut b,
            Outcome::Delivered(Status::from_reply(250, "2.0.0 ok")),
            ARRIVAL,
            ARRIVAL,
        );
        let mut envelope = envelope(vec![a, b, c]);
        // The pending recipient is due at once; the deferred one later.
        assert_eq!(next_due(&envelope), Some(0));
        envelope.recipients.remove(2);
        assert_eq!(next_due(&envelope), Some(ARRIVAL + 300));
        assert_eq!(flush(&mut envelope, ARRIVAL + 5), 1);
        assert_eq!(next_due(&envelope), Some(ARRIVAL + 5));
    }
}
