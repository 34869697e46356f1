//! `smtp-blaster send`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use smtp_blaster::send::{self, SendConfig, SizeSpread, parse_duration};
use smtp_blaster::tls::Verify;

use super::signals;

/// Arguments of `send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Server to load, HOST:PORT; a fleet as HOST:PORT,HOST:PORT,... (connections go to
    /// each in turn, and one that refuses is passed over for the next).
    #[arg(default_value = "127.0.0.1:25")]
    server: String,
    /// Connections kept busy at once.
    #[arg(short, long, default_value_t = 10)]
    connections: usize,
    /// Total messages (default 1000 unless --duration is given).
    #[arg(short, long)]
    messages: Option<u64>,
    /// Send for this long (e.g. 30s, 2m) instead of a count.
    #[arg(short, long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Messages per connection before QUIT; 1 = a new connection per message, 0 = reuse for the whole run.
    #[arg(short = 'k', long, default_value_t = 0)]
    per_connection: u64,
    /// Open loop: messages per second at a steady pace; latency is measured from each message's due time.
    #[arg(short, long)]
    rate: Option<f64>,
    /// Message size in bytes (1k, 10k...) or a weighted spread such as 1k:70,10k:25,100k:5.
    #[arg(short, long, default_value = "1k")]
    size: SizeSpread,
    /// Recipients per message.
    #[arg(long, default_value_t = 1)]
    recipients: usize,
    /// Spread generated recipients (user<i>@d<j>.<suffix>) over this many domains.
    #[arg(long, default_value_t = 1)]
    domains: usize,
    /// Domain suffix of generated recipients.
    #[arg(long, default_value = "example.test")]
    domain_suffix: String,
    /// Envelope and header sender.
    #[arg(long, default_value = "blaster@example.test")]
    from: String,
    /// One fixed recipient instead of generated ones (+N added for extra recipients).
    #[arg(long)]
    to: Option<String>,
    /// Send this message file as a template (its Message-ID is replaced per message).
    #[arg(long)]
    eml: Option<PathBuf>,
    /// Extra header, NAME:VALUE (repeatable).
    #[arg(long = "header", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Pipeline commands when the server offers PIPELINING.
    #[arg(long)]
    pipelining: bool,
    /// Send with BDAT when the server offers CHUNKING.
    #[arg(long)]
    chunking: bool,
    /// Upgrade every connection with STARTTLS.
    #[arg(long)]
    starttls: bool,
    /// Implicit TLS (SMTPS) from the first byte.
    #[arg(long)]
    tls: bool,
    /// Accept any server certificate (self-signed test servers).
    #[arg(long)]
    insecure: bool,
    /// Trust the CA certificates in this PEM file.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Name for SNI and the certificate check (default: the host part of SERVER).
    #[arg(long)]
    tls_name: Option<String>,
    /// Authenticate with AUTH PLAIN or LOGIN, as offered: USER:PASS.
    #[arg(long, value_parser = super::user_pass)]
    auth: Option<(String, String)>,
    /// Speak LMTP (LHLO, one reply per recipient).
    #[arg(long)]
    lmtp: bool,
    /// Our EHLO/LHLO name.
    #[arg(long, default_value = "blaster.localhost")]
    helo: String,
    /// Longest wait for a connection and TLS handshake.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Longest wait for each whole reply (a server that trickles bytes counts as a timeout).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Message-ID of every accepted message to this file, one a line.
    #[arg(long)]
    accepted_log: Option<PathBuf>,
    /// Draw latency by percentile and rate over time to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Seed for size choices (repeatable runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// A `--header` without a name before its `:`; holds the text.
#[derive(Debug, thiserror::Error)]
#[error("expected NAME:VALUE, got {0:?}")]
struct NotAHeader(String);

/// Parses `NAME:VALUE`.
fn header(s: &str) -> Result<(String, String), NotAHeader> {
    match s.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(NotAHeader(s.to_string())),
    }
}

/// Runs a send and writes its outputs; exits 1 if nothing was accepted.
pub(crate) async fn run(args: SendArgs) -> Result<ExitCode> {
    // The first SIGINT/SIGTERM stops new messages and lets those under way finish
    // (each within --timeout); a second one exits at once.
    let mut signals = signals::install();
    let config = config(&args).await?;
    let mut first = signals.clone();
    let stop = async move { signals::received(&mut first, 1).await };
    let report = tokio::select! {
        report = send::run_until(config, stop) => report?,
        () = signals::received(&mut signals, 2) => {
            // Off the progress bar's line, if one is drawn.
            let newline = if std::io::stderr().is_terminal() { "\n" } else { "" };
            eprintln!("{newline}smtp-blaster: interrupted twice; not waiting for messages under way");
            return Ok(ExitCode::from(130));
        }
    };
    if !args.quiet {
        say!("{report}");
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let title = format!("smtp-blaster send to {}", args.server);
        let svg = smtp_blaster::plot::report_svg(&report, &title);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.accepted > 0 || report.sent == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Turns arguments into a library configuration.
async fn config(args: &SendArgs) -> Result<SendConfig> {
    let mut servers = Vec::new();
    for target in args.server.split(',').map(str::trim) {
        let server = tokio::net::lookup_host(target)
            .await
            .with_context(|| format!("resolving {target}"))?
            .next()
            .with_context(|| format!("{target} has no address"))?;
        servers.push(server);
    }
    let first = args.server.split(',').next().unwrap_or("").trim();
    let host = first.rsplit_once(':').map_or(first, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let template = match &args.eml {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let verify = match (&args.ca_file, args.insecure) {
        (_, true) => Verify::DangerAcceptAny,
        (Some(path), false) => Verify::CaFile(path.clone()),
        (None, false) => Verify::Roots,
    };
    Ok(SendConfig {
        server: servers[0],
        more_servers: servers[1..].to_vec(),
        tls_name: args.tls_name.clone().unwrap_or_else(|| host.to_string()),
        connections: args.connections,
        messages: args.messages.or(if args.duration.is_some() {
            None
        } else {
            Some(1000)
        }),
        duration: args.duration,
        per_connection: args.per_connection,
        rate: args.rate,
        size: args.size.clone(),
        recipients: args.recipients,
        domains: args.domains,
        domain_suffix: args.domain_suffix.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        template,
        headers: args.headers.clone(),
        pipelining: args.pipelining,
        chunking: args.chunking,
        starttls: args.starttls,
        tls: args.tls,
        verify,
        auth: args.auth.clone(),
        lmtp: args.lmtp,
        helo: args.helo.clone(),
        connect_timeout: args.connect_timeout,
        command_timeout: args.timeout,
        accepted_log: args.accepted_log.clone(),
        progress: !args.quiet,
        seed: args.seed,
    })
}
