//! `smtp-blaster inject URL`: load an HTTP injection API with requests of many
//! recipients (see [`smtp_blaster::inject`]). Loopback only unless `--allow-remote`.

use std::process::ExitCode;
use std::time::Duration;

use smtp_blaster::inject::{InjectConfig, run as run_load};

/// Arguments of `inject`.
#[derive(Debug, clap::Args)]
pub(crate) struct InjectArgs {
    /// The API's URL (`http://127.0.0.1:8025/api/inject/v1`).
    url: String,
    /// Requests under way at once.
    #[arg(short = 'c', long, default_value_t = 10)]
    concurrency: usize,
    /// Messages (recipients) in all.
    #[arg(short = 'm', long, default_value_t = 10_000)]
    messages: u64,
    /// Recipients per request.
    #[arg(short = 'r', long, default_value_t = 100)]
    recipients: usize,
    /// Octets of each message's body.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Bearer key (`Authorization: Bearer KEY`).
    #[arg(long, env = "BLASTER_INJECT_KEY")]
    key: Option<String>,
    /// Envelope sender and From:.
    #[arg(long, default_value = "blaster@load.test")]
    from: String,
    /// Recipients' domain.
    #[arg(long, default_value = "sink.test")]
    domain: String,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Allow a URL that is not on loopback.
    #[arg(long)]
    allow_remote: bool,
    /// Print only the summary line.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Runs `inject`.
pub(crate) async fn run(args: InjectArgs) -> anyhow::Result<ExitCode> {
    let host = args
        .url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or("");
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !args.allow_remote {
        anyhow::bail!(
            "{} is not on loopback; add --allow-remote to load another machine",
            args.url
        );
    }
    let config = InjectConfig {
        url: args.url.clone(),
        key: args.key.clone(),
        concurrency: args.concurrency.max(1),
        messages: args.messages,
        recipients: args.recipients.max(1),
        size: args.size,
        from: args.from.clone(),
        domain: args.domain.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let report =
        tokio::task::spawn_blocking(move || actix_rt::System::new().block_on(run_load(config)))
            .await?;
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    let p = report.latency.percentiles();
    say!(
        "inject requests={} accepted={} elapsed={:.2}s requests/s={:.0} messages/s={:.0} latency_ms p50={:.1} p99={:.1} statuses={:?}",
        report.requests,
        report.accepted,
        seconds,
        report.requests as f64 / seconds,
        report.accepted as f64 / seconds,
        p.p50,
        p.p99,
        report.statuses
    );
    if let Some(error) = &report.first_error
        && !args.quiet
    {
        say!("first error: {error}");
    }
    Ok(if report.accepted == args.messages {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
