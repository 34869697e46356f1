//! `smtp-blaster sink`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use smtp_blaster::send::{parse_bytes, parse_duration};
use smtp_blaster::sink::{self, Delay, FailAt, SinkConfig, SinkHandle, SinkSummary, TlsFiles};

use super::signals;

/// Arguments of `sink`.
#[derive(Debug, Args)]
pub(crate) struct SinkArgs {
    /// Address to listen on (repeatable); port 0 picks a free port, printed at start.
    #[arg(short, long = "listen", default_value = "127.0.0.1:2525")]
    listen: Vec<SocketAddr>,
    /// Address for implicit TLS (SMTPS/LMTPS), repeatable.
    #[arg(long = "listen-tls")]
    listen_tls: Vec<SocketAddr>,
    /// Speak LMTP: LHLO, and one reply per recipient after the message.
    #[arg(long)]
    lmtp: bool,
    /// Name in the greeting, the EHLO reply and the self-made certificate.
    #[arg(long, default_value = "localhost")]
    hostname: String,
    /// PEM certificate chain for TLS (default: a self-signed one made at start).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Do not offer STARTTLS.
    #[arg(long)]
    no_starttls: bool,
    /// Answer STARTTLS with 220, then send plain text and close (a broken TLS server).
    #[arg(long)]
    broken_tls: bool,
    /// Leave these extensions out of the EHLO reply, to play an older server
    /// (e.g. `--without 8BITMIME,SMTPUTF8`).
    #[arg(long, value_delimiter = ',')]
    without: Vec<String>,
    /// Require AUTH PLAIN or LOGIN with USER:PASS before MAIL.
    #[arg(long, value_parser = super::user_pass)]
    auth: Option<(String, String)>,
    /// Odds (0..1) of a temporary failure per recipient (or per message with --fail-at data).
    #[arg(long, default_value_t = 0.0, value_parser = super::odds)]
    tempfail: f64,
    /// Odds (0..1) of a permanent failure per recipient (or per message with --fail-at data).
    #[arg(long, default_value_t = 0.0, value_parser = super::odds)]
    permfail: f64,
    /// Where injected failures are answered: rcpt, or data (after the message; per recipient in LMTP).
    #[arg(long, default_value = "rcpt")]
    fail_at: FailAt,
    /// Hold a reply back: CMD:MS[:ODDS] with CMD one of connect, ehlo, mail, rcpt, data, dot, rset, quit (repeatable).
    #[arg(long = "delay")]
    delays: Vec<Delay>,
    /// Answer RCPT TO for DOMAIN (and its subdomains; USER@DOMAIN: that recipient
    /// only; `*`: all) with REPLY, to play a
    /// provider: DOMAIN=CODE TEXT, e.g. `gmail.test=421 4.7.28 unusual rate` (a 421
    /// also closes the connection). Repeatable; the first match answers.
    #[arg(long = "reply")]
    replies: Vec<sink::ReplyRule>,
    /// Write a JSON line to this file when a connection opens (id, peer and local
    /// address, at_ms in unix milliseconds) and one when it closes (id, at_ms).
    #[arg(long)]
    connection_log: Option<PathBuf>,
    /// Odds (0..1) of dropping the connection instead of answering a message.
    #[arg(long, default_value_t = 0.0, value_parser = super::odds)]
    disconnect: f64,
    /// Answer 421 to connections past this many.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Largest message accepted (advertised in SIZE).
    #[arg(long, default_value = "100m", value_parser = parse_bytes)]
    max_size: usize,
    /// Write the Message-ID of every received message to this file, one a line.
    #[arg(long)]
    received_log: Option<PathBuf>,
    /// Keep each accepted message as DIR/<n>.eml with its envelope in DIR/<n>.json.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Serve a web view of the stored messages here (a mail catcher, with MailHog's
    /// JSON API: /api/v2/messages); without --store they go to a new directory under
    /// the system's temporary directory.
    #[arg(long)]
    ui: Option<std::net::SocketAddr>,
    /// Exit once this many messages have been received (clients get up to 2 s to QUIT).
    #[arg(long)]
    expect: Option<u64>,
    /// Exit after this long without traffic (no new connection, no bytes), counted
    /// from start-up; open but silent connections do not keep the sink up.
    #[arg(long, value_parser = parse_duration)]
    idle_exit: Option<Duration>,
    /// Close connections silent for this long.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed for the failure odds (repeatable runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Print nothing but the listening addresses and errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs a sink until --expect, --idle-exit, SIGINT or SIGTERM.
pub(crate) async fn run(args: SinkArgs) -> Result<ExitCode> {
    // Before "listening on" is printed: a script may signal as soon as it reads it.
    let mut signals = signals::install();
    let store = store_dir(&args)?;
    let config = SinkConfig {
        listen: args.listen.clone(),
        listen_tls: args.listen_tls.clone(),
        lmtp: args.lmtp,
        hostname: args.hostname.clone(),
        store: store.clone(),
        received_log: args.received_log.clone(),
        tempfail: args.tempfail,
        permfail: args.permfail,
        fail_at: args.fail_at,
        delays: args.delays.clone(),
        disconnect: args.disconnect,
        max_connections: args.max_connections,
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| TlsFiles { cert, key }),
        starttls: !args.no_starttls,
        broken_tls: args.broken_tls,
        without: args.without.clone(),
        auth: args.auth.clone(),
        max_message_size: args.max_size,
        expect: args.expect,
        idle_exit: args.idle_exit,
        command_timeout: args.timeout,
        seed: args.seed,
        replies: args.replies.clone(),
        connection_log: args.connection_log.clone(),
        ..SinkConfig::default()
    };
    let sink = sink::start(config).await.context("starting the sink")?;
    for addr in sink.local_addrs() {
        say!("listening on {addr}");
    }
    for addr in sink.tls_addrs() {
        say!("listening (TLS) on {addr}");
    }
    let catcher = start_catcher(args.ui, store)?;
    let ticker = (!args.quiet && std::io::stderr().is_terminal()).then(|| live(&sink));
    tokio::select! {
        () = sink.done() => {}
        () = signals::received(&mut signals, 1) => {}
    }
    if let Some(bar) = ticker {
        bar.finish_and_clear();
    }
    let summary = sink.shutdown().await;
    if let Some(catcher) = catcher {
        catcher.stop().await;
    }
    if !args.quiet {
        print_summary(&summary);
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where accepted messages are kept: `--store`, or a new directory under the system's
/// temporary directory for `--ui` alone.
fn store_dir(args: &SinkArgs) -> Result<Option<PathBuf>> {
    match (&args.store, args.ui) {
        (Some(dir), _) => Ok(Some(dir.clone())),
        (None, Some(_)) => {
            // A new directory of our own (create_dir fails on one somebody else made).
            let dir = std::env::temp_dir().join(format!(
                "smtp-blaster-catcher-{}-{}",
                std::process::id(),
                crate_nanos()
            ));
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            Ok(Some(dir))
        }
        (None, None) => Ok(None),
    }
}

/// The clock's nanoseconds, to make a directory name nobody guessed.
fn crate_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// The web view of `store` at `ui`, when asked for.
fn start_catcher(
    ui: Option<std::net::SocketAddr>,
    store: Option<PathBuf>,
) -> Result<Option<smtp_blaster::catcher::CatcherHandle>> {
    let (Some(listen), Some(dir)) = (ui, store) else {
        return Ok(None);
    };
    let catcher = smtp_blaster::catcher::start(listen, dir.clone())
        .with_context(|| format!("starting the web view on {listen}"))?;
    say!(
        "mail catcher on http://{}/ (messages in {})",
        catcher.addr,
        dir.display()
    );
    Ok(Some(catcher))
}

/// A live line of counters on a terminal.
fn live(sink: &SinkHandle) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(250));
    let shown = bar.clone();
    let stats = sink.stats_source();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = stats();
            shown.set_message(format!(
                "received {} ({}/s), recipients {}, connections {} open",
                s.received,
                s.received - last,
                s.recipients,
                s.active_connections
            ));
            last = s.received;
        }
    });
    bar
}

/// The human summary.
fn print_summary(s: &SinkSummary) {
    let st = &s.stats;
    say!(
        "received {} messages ({} recipients, {} bytes) in {:.2} s: {:.0}/s over {} connections",
        st.received,
        st.recipients,
        st.bytes,
        s.elapsed_s,
        s.rate_per_s,
        st.connections
    );
    if st.e2e_latency_ms.count > 0 {
        say!(
            "end-to-end latency ({} messages): {}",
            st.e2e_latency_ms.count,
            st.e2e_latency_ms
        );
    }
    say!(
        "injected: tempfail {} at RCPT, {} after data; permfail {} at RCPT, {} after data; {} disconnects, {} delays, {} connections refused",
        st.tempfail_rcpt,
        st.tempfail_data,
        st.permfail_rcpt,
        st.permfail_data,
        st.disconnects,
        st.delays,
        st.rejected_connections
    );
    if st.protocol_errors + st.tls_failures + st.auth_failures + st.timeouts > 0 {
        say!(
            "client errors: {} protocol, {} TLS, {} AUTH, {} timeouts",
            st.protocol_errors,
            st.tls_failures,
            st.auth_failures,
            st.timeouts
        );
    }
}
