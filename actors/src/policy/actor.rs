//! The one actor every policy runs in. A policy ([`Policy`]) says how it answers an
//! [`Ask`] and what housekeeping it needs; [`PolicyActor`] gives it a mailbox (large:
//! the Sessions of every arbiter ask it, and a full mailbox would make them wait), runs
//! its housekeeping on a timer and answers each question with a future of its own, so a
//! question waiting on DNS or Redis does not hold up the next.

use std::time::Duration;

use actix::prelude::*;

use super::set::Ask;
use crate::protocol::check::Verdict;

/// Questions a policy actor's mailbox holds before senders wait.
pub const MAILBOX_CAPACITY: usize = 100_000;

/// A policy the Sessions ask at the stages it speaks at.
pub trait Policy: Sized + Unpin + 'static {
    /// The verdict on one question: a future that owns what it needs, so the actor takes
    /// the next question while this one waits.
    fn ask(&mut self, question: Ask) -> ResponseFuture<Verdict>;

    /// How often [`Policy::keep_house`] runs (`None`: never).
    fn housekeeping_interval(&self) -> Option<Duration> {
        None
    }

    /// Drops what has expired (greylist triplets, rate-limit windows).
    fn keep_house(&mut self) {}
}

/// The actor of one policy.
pub struct PolicyActor<P>(pub P);

impl<P: Policy> PolicyActor<P> {
    /// Starts `make()`'s policy on `arbiter`; the Sessions ask it through the recipient.
    pub fn start_on(
        arbiter: &ArbiterHandle,
        make: impl FnOnce() -> P + Send + 'static,
    ) -> Recipient<Ask> {
        PolicyActor::start_in_arbiter(arbiter, move |_| PolicyActor(make())).recipient()
    }
}

impl<P: Policy> Actor for PolicyActor<P> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if let Some(every) = self.0.housekeeping_interval() {
            ctx.run_interval(every, |this, _| this.0.keep_house());
        }
    }
}

impl<P: Policy> Handler<Ask> for PolicyActor<P> {
    type Result = ResponseFuture<Verdict>;

    fn handle(&mut self, question: Ask, _: &mut Context<Self>) -> Self::Result {
        self.0.ask(question)
    }
}
