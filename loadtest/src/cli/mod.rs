//! Command-line arguments: one subcommand per role.

/// `println!` that ignores a closed stdout (`| head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod inject;
mod send;
mod signals;
mod sink;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// SMTP/LMTP load generator and sink that measures any mail server.
#[derive(Debug, Parser)]
#[command(name = "smtp-blaster", version, about)]
pub(crate) struct Cli {
    /// Runtime worker threads; 1 = a single event loop (default: one per core for
    /// send, 1 for sink).
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Send messages to a server and report rates, latency and reply codes.
    Send(Box<send::SendArgs>),
    /// Accept messages as fast as possible, inject failures, measure end-to-end latency.
    Sink(Box<sink::SinkArgs>),
    /// Load an HTTP injection API (POST, many recipients per request).
    Inject(Box<inject::InjectArgs>),
}

/// Runs the chosen subcommand.
pub(crate) async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Send(args) => send::run(*args).await,
        Command::Sink(args) => sink::run(*args).await,
        Command::Inject(args) => inject::run(*args).await,
    }
}

/// A credential flag without the `:` between user and password; holds the text.
#[derive(Debug, thiserror::Error)]
#[error("expected USER:PASS, got {0:?}")]
struct NotUserPass(String);

/// Parses `USER:PASS`.
fn user_pass(s: &str) -> Result<(String, String), NotUserPass> {
    s.split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .ok_or_else(|| NotUserPass(s.to_string()))
}

/// Why a failure rate flag is not a probability; clap prints it after the flag.
#[derive(Debug, thiserror::Error)]
enum OddsError {
    /// Not a number.
    #[error("bad probability {text:?}: {error}")]
    Number {
        /// The flag's value.
        text: String,
        /// Why.
        error: std::num::ParseFloatError,
    },
    /// A number outside 0..=1.
    #[error("probability {0} is not within 0..=1")]
    OutOfRange(String),
}

/// Parses a probability in 0..=1.
fn odds(s: &str) -> Result<f64, OddsError> {
    let p: f64 = s.parse().map_err(|error| OddsError::Number {
        text: s.to_string(),
        error,
    })?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(OddsError::OutOfRange(s.to_string()))
    }
}
