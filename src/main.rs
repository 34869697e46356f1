//! `hermod`: the command line (see [`hermod::cli`]), run with an owner-only umask.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Everything hermod creates (the spool, the user store, the admin socket, state
    // files) is its user's alone, whatever umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    hermod::cli::Cli::parse().run()
}
