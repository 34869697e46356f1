//! One connection slot: claims messages, opens connections as needed and runs them
//! through a [`Pipeline`]; counts into its own [`Tally`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::ctx::Ctx;
use super::pipeline::Pipeline;
use super::report::Tally;
use crate::rng::Rng;

/// Pause after a failed connection, so a dead server is counted, not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// Runs until the source is exhausted; returns what this slot counted.
pub(crate) async fn worker(ctx: Arc<Ctx>, mut rng: Rng) -> Tally {
    let mut tally = Tally::new(ctx.start);
    let mut next = None;
    while let Some(claim) = next.take().or_else(|| ctx.source.claim()) {
        if claim.due > Instant::now() {
            tokio::time::sleep_until(claim.due.into()).await;
        }
        match Conn::open(&ctx, &mut tally).await {
            Ok(conn) => {
                next = Pipeline::new(&ctx, conn, &mut tally, &mut rng, claim)
                    .run()
                    .await
            }
            Err(outcome) => {
                if ctx.source.open_loop() {
                    tally.started(claim.due, Instant::now());
                }
                tally.finish(outcome, claim.due, Instant::now());
                ctx.progress(false);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    tally
}
