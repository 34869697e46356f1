//! The Queue's part of a clean stop: no new deliveries start, the ones under way finish
//! and are recorded, so a stopped hermod leaves no message delivered but still queued
//! (which a restart would deliver again).

use actix::prelude::*;

use super::Queue;

/// Start no more deliveries (SIGTERM); answered with the messages whose delivery is
/// still under way. Mail that was due stays in the spool for the next start.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct StopDispatch;

impl Handler<StopDispatch> for Queue {
    type Result = usize;

    fn handle(&mut self, _: StopDispatch, _ctx: &mut Context<Self>) -> usize {
        if !self.stopping {
            tracing::info!(
                in_flight = self.in_flight,
                "stopping: no new deliveries; waiting for those under way"
            );
        }
        self.stopping = true;
        self.in_flight
    }
}
