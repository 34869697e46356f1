//! The sender: drives load at a server in closed loop (N connections as fast as the
//! server answers) or open loop (a fixed rate, latency counted from each message's due
//! time, so a slow server cannot hide its queueing: no coordinated omission).
//!
//! # Layout
//!
//! - `config`: [`SendConfig`], size spreads and duration parsing.
//! - `message`: content rendered once and patched per message.
//! - `source`: hands out message numbers and due times.
//! - `conn`, `stream`: one connection and its opening exchange.
//! - `pipeline`: messages over a connection, replies matched in order.
//! - `worker`: one connection slot; `report`: tallies and the [`Report`].
//! - `outcome`: [`Outcome`] and [`ErrorKind`]; `progress`: the terminal progress bar.

mod config;
mod conn;
mod ctx;
mod message;
mod outcome;
mod pipeline;
mod progress;
mod report;
mod source;
mod stream;
mod worker;

use std::fs::File;
use std::future::Future;
use std::io::{BufWriter, Write};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tokio_rustls::TlsConnector;

pub use config::{DurationError, SendConfig, SizeError, SizeSpread, parse_bytes, parse_duration};
pub use outcome::{ErrorKind, Outcome};
pub use report::{Report, Schedule, Second};

use crate::rng;
use ctx::Ctx;
use message::Content;
use rand::RngExt as _;
use report::Tally;
use source::Source;

/// Sends as configured and reports.
pub async fn run(config: SendConfig) -> Result<Report> {
    run_until(config, std::future::pending()).await
}

/// Like [`run`], but stops handing out new messages once `stop` resolves (e.g. Ctrl-C);
/// messages under way still finish and are counted.
pub async fn run_until(config: SendConfig, stop: impl Future<Output = ()>) -> Result<Report> {
    validate(&config)?;
    let tls = if config.tls || config.starttls {
        Some(TlsConnector::from(crate::tls::client_config(
            &config.verify,
        )?))
    } else {
        None
    };
    let accepted_log = match &config.accepted_log {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Some(Mutex::new(BufWriter::new(file)))
        }
        None => None,
    };
    let mut rng = config.seed.map_or_else(rng::from_entropy, rng::seeded);
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        // Not from the seeded generator: Message-IDs must differ between runs even when
        // --seed repeats the sizes and failures.
        content: Content::new(&config, rng::from_entropy().random()),
        source: Source::new(config.messages, config.duration, config.rate, start),
        tls,
        accepted_log,
        start,
        finished: AtomicU64::new(0),
        turns: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        config,
    });
    let bar = progress::start(&ctx);
    let workers: Vec<_> = (0..ctx.config.connections)
        .map(|_| tokio::spawn(worker::worker(Arc::clone(&ctx), rng::seeded(rng.random()))))
        .collect();
    let all = async {
        let mut total = Tally::new(start);
        for w in workers {
            match w.await {
                Ok(tally) => total.merge(&tally),
                Err(e) => bail!("a connection worker failed: {e}"),
            }
        }
        Ok(total)
    };
    tokio::pin!(all);
    tokio::pin!(stop);
    let total = tokio::select! {
        total = &mut all => total?,
        () = &mut stop => {
            ctx.source.stop();
            all.await?
        }
    };
    if let Some((bar, task)) = bar {
        task.abort();
        bar.finish_and_clear();
    }
    if let Some(log) = &ctx.accepted_log
        && let Ok(mut w) = log.lock()
    {
        w.flush().context("writing the accepted log")?;
    }
    let elapsed = total
        .last_finish()
        .map_or_else(|| start.elapsed(), |t| t - start);
    Ok(total.report(elapsed, ctx.config.rate.filter(|_| ctx.source.open_loop())))
}

/// Refuses configurations that cannot run.
fn validate(config: &SendConfig) -> Result<()> {
    if config.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if config.messages.is_none() && config.duration.is_none() {
        bail!("give --messages or --duration");
    }
    if config.recipients == 0 || config.domains == 0 {
        bail!("--recipients and --domains must be at least 1");
    }
    if config.rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
        bail!("--rate must be a positive number");
    }
    if config.tls && config.starttls {
        bail!("--tls and --starttls exclude each other");
    }
    Ok(())
}
