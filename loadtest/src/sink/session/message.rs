//! DATA and BDAT, and the final reply(ies) to a message: one in SMTP, one per accepted
//! recipient in LMTP, with DATA-time failures injected here.

use std::sync::Arc;

use super::{Delivery, Pending, Refusal, Session, State, Step, Transaction, Verdict};
use crate::sink::config::{DelayPoint, FailAt};
use crate::sink::counters::bump;
use crate::sink::data::DataReceiver;
use crate::sink::headers;
use crate::sink::replies;

impl Session {
    /// DATA: 354 if there is someone to deliver to.
    pub(super) fn data(&mut self, out: &mut Vec<u8>) {
        let Some(tx) = &self.tx else {
            return self.error(replies::NEED_MAIL, out);
        };
        if let Some(refusal) = no_recipients(tx) {
            return self.refuse(refusal, out);
        }
        self.body.reset();
        self.state = State::Data(DataReceiver::new());
        out.extend_from_slice(replies::DATA_GO);
        self.maybe_delay(DelayPoint::Data);
    }

    /// Answers a DATA or BDAT that has nothing to deliver.
    fn refuse(&self, refusal: Refusal, out: &mut Vec<u8>) {
        if refusal.client_error {
            self.error(refusal.reply, out);
        } else {
            out.extend_from_slice(refusal.reply);
        }
    }

    /// BDAT: the chunk is always read (to stay in sync), and refused if out of place.
    pub(super) fn bdat(&mut self, size: usize, last: bool) {
        let refuse = match self.tx.as_mut() {
            None => Some(Refusal {
                reply: replies::NEED_MAIL,
                client_error: true,
            }),
            Some(tx) if tx.rcpts.is_empty() => no_recipients(tx),
            Some(tx) => {
                if !tx.chunking {
                    tx.chunking = true;
                    self.body.reset();
                }
                None
            }
        };
        self.state = State::Bdat {
            remaining: size,
            last,
            refuse,
        };
    }

    /// A whole BDAT chunk arrived.
    pub(super) fn chunk_done(
        &mut self,
        last: bool,
        refuse: Option<Refusal>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        if let Some(refusal) = refuse {
            self.refuse(refusal, out);
            return None;
        }
        if !last {
            out.extend_from_slice(replies::CHUNK_OK);
            return None;
        }
        self.end_of_message(now_ns, out)
    }

    /// The message is complete: decide, then store (via [`Step::Deliver`]) or answer.
    pub(super) fn end_of_message(&mut self, now_ns: u64, out: &mut Vec<u8>) -> Option<Step> {
        let tx = self.tx.take()?;
        let config = Arc::clone(&self.shared);
        let config = &config.config;
        let replies_needed = if config.lmtp { tx.rcpts.len() } else { 1 };
        if self.body.too_big() {
            bump(&self.shared.counters.too_big);
            (0..replies_needed).for_each(|_| out.extend_from_slice(replies::TOO_BIG));
            return None;
        }
        if crate::rng::chance(&mut self.rng, config.disconnect) {
            bump(&self.shared.counters.disconnects);
            self.state = State::Closed;
            return Some(Step::Drop);
        }
        let at_data = config.fail_at == FailAt::Data;
        let verdicts: Vec<Verdict> = if config.lmtp {
            let forced: Vec<_> = tx.rcpts.iter().map(|r| r.forced).collect();
            forced
                .into_iter()
                .map(|f| {
                    if at_data {
                        f.unwrap_or_else(|| self.draw())
                    } else {
                        Verdict::Accept
                    }
                })
                .collect()
        } else if at_data {
            let forced = tx.rcpts.iter().filter_map(|r| r.forced);
            let worst = forced.max_by_key(|v| matches!(v, Verdict::Perm));
            vec![worst.unwrap_or_else(|| self.draw())]
        } else {
            vec![Verdict::Accept]
        };
        let rcpt_to: Vec<String> = if config.lmtp {
            tx.rcpts
                .into_iter()
                .zip(&verdicts)
                .filter(|(_, v)| **v == Verdict::Accept)
                .map(|(r, _)| r.addr)
                .collect()
        } else if verdicts[0] == Verdict::Accept {
            tx.rcpts.into_iter().map(|r| r.addr).collect()
        } else {
            Vec::new()
        };
        let found = headers::scan(self.body.bytes());
        self.pending = Some(Pending {
            verdicts,
            accepted: rcpt_to.len() as u64,
            size: self.body.size(),
            sent_ns: found.sent_ns,
        });
        if rcpt_to.is_empty() || !self.shared.keeps_messages() {
            self.delivered(true, now_ns, out);
            return None;
        }
        let message_id = found.message_id.map(str::to_string);
        let message = if config.store.is_some() {
            self.body.take()
        } else {
            Vec::new()
        };
        Some(Step::Deliver(Delivery {
            mail_from: tx.from,
            mail_params: tx.params,
            rcpt_to,
            helo: self.helo.clone().unwrap_or_default(),
            lmtp: config.lmtp,
            tls: self.tls,
            message,
            message_id,
        }))
    }

    /// Writes the final replies of the message just decided; `stored` is false when the
    /// store failed, which turns every acceptance into 451.
    pub(crate) fn delivered(&mut self, stored: bool, now_ns: u64, out: &mut Vec<u8>) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let counters = &self.shared.counters;
        for verdict in &pending.verdicts {
            let reply = match verdict {
                Verdict::Accept if stored => replies::QUEUED,
                Verdict::Accept => replies::STORE_FAILED,
                Verdict::Temp => {
                    bump(&counters.tempfail_data);
                    replies::TEMPFAIL
                }
                Verdict::Perm => {
                    bump(&counters.permfail_data);
                    replies::PERMFAIL
                }
            };
            out.extend_from_slice(reply);
        }
        if pending.accepted > 0 {
            if stored {
                let size = pending.size as u64;
                self.shared
                    .record_message(pending.accepted, size, now_ns, pending.sent_ns);
            } else {
                bump(&counters.store_failures);
            }
        }
        self.maybe_delay(DelayPoint::Dot);
    }
}

/// The refusal for DATA/BDAT when no recipient was accepted (none if one was).
fn no_recipients(tx: &Transaction) -> Option<Refusal> {
    tx.rcpts.is_empty().then_some(Refusal {
        reply: replies::NO_RECIPIENTS,
        client_error: !tx.rcpts_refused,
    })
}
