//! The command line: `hermod [serve]` runs the server (or checks its configuration with
//! `--validate-only`), `hermod route DOMAIN` explains where mail for a domain goes,
//! `queue`, `user`, `auth`, `maintenance` and `dkim` act on a running hermod or its data.
//! Each command is a file; `main` only parses and dispatches. Everything printed that a
//! peer may have written goes through [`printable`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigIssue};

pub mod admin_client;
pub mod auth;
pub mod bounce;
pub mod config_get;
pub mod diagnose;
pub mod dkim;
pub mod maintenance;
pub mod queue;
mod queue_text;
pub mod route;
pub mod serve;
pub mod shaping;
pub mod spool;
pub mod user;

/// hermod, a mail transfer agent built as a system of actors. Without a command it
/// serves, as `hermod serve` does (so `hermod --validate-only` works as the operators'
/// runbooks write it).
#[derive(Parser)]
#[command(
    name = "hermod",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// How to serve.
#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    /// Configuration file (default: ./config/hermod.toml if it exists, else built-in
    /// defaults). Environment variables override it.
    #[arg(long, env = "HERMOD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Check the configuration, print a summary and exit (0 valid, 1 invalid).
    #[arg(long)]
    pub validate_only: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server.
    Serve(ServeArgs),
    /// Show the next hop mail for DOMAIN takes and why (transport map, relay host, or
    /// MX records), with the addresses it would try.
    Route {
        /// The recipient domain.
        domain: String,
        /// Configuration file, as for `serve`.
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The running hermod's queue: list, show, stats, flush, hold, release, delete,
    /// bounce, suspend, resume, suspensions (through its admin API).
    Queue(queue::QueueArgs),
    /// The configuration as hermod reads it (file plus environment): `get [KEY...]`
    /// prints settings as `section.key = value`, secrets hidden (as `postconf`).
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// The AUTH users: add, passwd, del, list, disable, enable, senders (in the data
    /// directory, or through the running hermod's admin API).
    User(user::UserArgs),
    /// AUTH lock-outs in the running hermod: `lockouts` lists them, `unlock ADDRESS`
    /// lifts one.
    Auth(auth::AuthArgs),
    /// Provider-aware shaping: `check FILE` validates a shaping file; `status` lists
    /// the automation's actions in force in the running hermod, `clear SITE` ends them.
    Shaping(shaping::ShapingArgs),
    /// DKIM keys: `keygen` makes one and prints the DNS record to publish.
    Dkim(dkim::DkimArgs),
    /// Bounce classification: `classify "REPLY"` prints the class a reply gets and the
    /// rule that gave it.
    Bounce(bounce::BounceArgs),
    /// One .tar.gz for a bug report: version, configuration (secrets hidden), and the
    /// running server's health, queue, hops, recent warnings and metrics.
    Diagnose {
        /// Where the archive goes (default: hermod-diagnose-HOST-TIME.tar.gz here).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Configuration file, as for `serve`.
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The spool of a stopped hermod: `check [--repair]` reads every record and names the
    /// damaged ones; `compact --into DIR` writes a compacted copy.
    Spool(spool::SpoolArgs),
    /// Turn maintenance mode on or off in the running hermod: while on, new SMTP
    /// connections get 421 4.3.2 and deliveries go on.
    Maintenance {
        /// `on` or `off`.
        state: maintenance::State,
        /// Keep maintenance mode on across restarts (until `off`).
        #[arg(long)]
        persist: bool,
        /// Configuration file, as for `serve` (for the admin address and token).
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `hermod config` commands.
#[derive(Debug, clap::Subcommand)]
enum ConfigAction {
    /// Print settings as `section.key = value` (all when no KEY is given).
    Get {
        /// Settings, as `section.key` (`smtp.max_recipients`).
        keys: Vec<String>,
        /// Configuration file, as for `serve`.
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
}

impl Cli {
    /// Runs the command the arguments name.
    pub fn run(self) -> ExitCode {
        match self.command.unwrap_or(Command::Serve(self.serve)) {
            Command::Serve(args) => serve::run(args),
            Command::Route { domain, config } => route::run(config, &domain),
            Command::Queue(args) => queue::run(args),
            Command::Config {
                action: ConfigAction::Get { keys, config },
            } => config_get::run(config, &keys),
            Command::User(args) => user::run(args),
            Command::Dkim(args) => dkim::run(args),
            Command::Shaping(args) => shaping::run(args),
            Command::Bounce(args) => bounce::run(args),
            Command::Spool(args) => spool::run(args),
            Command::Diagnose { out, config } => diagnose::run(config, out),
            Command::Auth(args) => auth::run(args),
            Command::Maintenance {
                state,
                persist,
                config,
            } => maintenance::run(config, state, persist),
        }
    }
}

/// The environment as text; variables that are not UTF-8 cannot be settings.
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Prints every problem of an invalid configuration to stderr; the exit code says so.
fn invalid(issues: Vec<ConfigIssue>) -> ExitCode {
    eprintln!(
        "configuration invalid ({} problem{}):",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for issue in issues {
        eprintln!("  {issue}");
    }
    ExitCode::from(1)
}

/// `text` with every control character escaped (C0 but for newline and tab, DEL, C1,
/// and the Unicode line and paragraph separators), so that a sender's subject or a next
/// hop's reply cannot clear the operator's screen, hide text or forge output lines.
pub fn printable(text: &str) -> String {
    crate::escape::escape_controls(text, true).into_owned()
}

/// Loads the configuration for a command that needs nothing else from it.
fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    config::load(path, &environment())
        .map(|(config, _)| config)
        .map_err(invalid)
}
