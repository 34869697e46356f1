//! `hermod`: the command line (see [`hermod::cli`]).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    hermod::cli::Cli::parse().run()
}
