//! `smtp-blaster`: a thin command-line wrapper over the `smtp_blaster` library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // One thread: a current-thread runtime, one event loop with no cross-thread
    // wake-ups (the cheapest when client and server share a small machine).
    // The sink does little per message: by default one event loop, leaving the other
    // cores to the server under test (and to the sender, when both share a machine).
    let threads = match (&args.command, args.threads) {
        (_, Some(threads)) => Some(threads),
        (cli::Command::Sink(_), None) => Some(1),
        (cli::Command::Send(_) | cli::Command::Inject(_), None) => None,
    };
    let mut runtime = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads.max(1));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smtp-blaster: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("smtp-blaster: {e:#}");
            ExitCode::FAILURE
        }
    }
}
