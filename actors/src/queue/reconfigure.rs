//! A configuration reload reaching the Queue: new retry and bounce settings, and a new
//! router (transport map, relay host) for every dispatch from now on.

use actix::prelude::*;

use super::{Queue, QueueSettings};
use crate::outbound::routing::Router;

/// New settings for the Queue (SIGHUP). The timers (`scan_interval`,
/// `state_flush_interval`), the in-flight limit and the next-hop policy keep their
/// values until a restart; everything else in [`QueueSettings`] applies at once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconfigure {
    /// Retry, lifetime and bounce settings.
    pub settings: QueueSettings,
    /// Routes for dispatches from now on.
    pub router: Router,
}

impl Handler<Reconfigure> for Queue {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        let old = &self.settings;
        self.settings = QueueSettings {
            scan_interval: old.scan_interval,
            state_flush_interval: old.state_flush_interval,
            max_in_flight: old.max_in_flight,
            max_bytes_in_flight: old.max_bytes_in_flight,
            hops: old.hops,
            ..msg.settings
        };
        if msg.router == self.router {
            return;
        }
        self.router = msg.router;
        // Mail held for a down hop may route elsewhere now: release it all, so each
        // message is routed again (a hop still down is found down again by its reports).
        let released: Vec<_> = self
            .hops
            .drain()
            .flat_map(|(_, mut health)| {
                if health.is_down() {
                    metrics::gauge!("queue_hops_down").decrement(1.0);
                }
                health.reached()
            })
            .collect();
        if !released.is_empty() {
            tracing::info!(
                released = released.len(),
                "routes changed; mail held for down next hops is routed again"
            );
        }
        self.release(released);
        self.pump(ctx);
    }
}
