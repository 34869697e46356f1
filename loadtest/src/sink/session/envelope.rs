//! MAIL, RCPT and RSET: building the transaction and injecting RCPT-time failures.

use super::{Rcpt, Session, State, Transaction, Verdict, forced_verdict};
use crate::sink::config::{DelayPoint, FailAt};
use crate::sink::counters::bump;
use crate::sink::replies;

/// Recipients kept per message; past it RCPT gets 452, as RFC 5321 allows.
const MAX_RECIPIENTS: usize = 10_000;

impl Session {
    /// MAIL FROM.
    pub(super) fn mail(
        &mut self,
        from: &str,
        size: Option<usize>,
        params: &str,
        out: &mut Vec<u8>,
    ) {
        if self.shared.config.auth.is_some() && !self.authenticated {
            return self.error(replies::AUTH_REQUIRED, out);
        }
        if self.tx.is_some() {
            return self.error(replies::NESTED_MAIL, out);
        }
        if size.is_some_and(|s| s > self.shared.config.max_message_size) {
            bump(&self.shared.counters.too_big);
            out.extend_from_slice(replies::TOO_BIG);
            return;
        }
        self.tx = Some(Transaction {
            from: from.to_string(),
            params: params.to_string(),
            rcpts: Vec::new(),
            chunking: false,
            rcpts_refused: false,
        });
        out.extend_from_slice(replies::MAIL_OK);
        self.maybe_delay(DelayPoint::Mail);
    }

    /// RCPT TO: accepted, or failed as forced by the local part or drawn from the odds.
    pub(super) fn rcpt(&mut self, to: &str, out: &mut Vec<u8>) {
        let at_rcpt = self.shared.config.fail_at == FailAt::Rcpt;
        let forced = forced_verdict(to);
        let verdict = match (at_rcpt, forced) {
            (false, _) => Verdict::Accept,
            (true, Some(v)) => v,
            (true, None) => self.draw(),
        };
        let Some(tx) = self.tx.as_mut() else {
            return self.error(replies::NEED_MAIL, out);
        };
        if let Some(rule) = self.shared.config.replies.iter().find(|r| r.answers(to)) {
            tx.rcpts_refused = true;
            bump(&self.shared.counters.scripted_replies);
            out.extend_from_slice(&rule.reply);
            if rule.closes() {
                self.state = State::Closed;
            }
            return;
        }
        if tx.rcpts.len() >= MAX_RECIPIENTS {
            tx.rcpts_refused = true;
            out.extend_from_slice(replies::TOO_MANY_RECIPIENTS);
            return;
        }
        if verdict != Verdict::Accept {
            tx.rcpts_refused = true;
        }
        let counters = &self.shared.counters;
        match verdict {
            Verdict::Accept => {
                tx.rcpts.push(Rcpt {
                    addr: to.to_string(),
                    forced,
                });
                out.extend_from_slice(replies::RCPT_OK);
            }
            Verdict::Temp => {
                bump(&counters.tempfail_rcpt);
                out.extend_from_slice(replies::TEMPFAIL);
            }
            Verdict::Perm => {
                bump(&counters.permfail_rcpt);
                out.extend_from_slice(replies::PERMFAIL);
            }
        }
        self.maybe_delay(DelayPoint::Rcpt);
    }

    /// RSET.
    pub(super) fn rset(&mut self, out: &mut Vec<u8>) {
        self.tx = None;
        out.extend_from_slice(replies::OK);
        self.maybe_delay(DelayPoint::Rset);
    }
}
