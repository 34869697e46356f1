//! `hermod`: the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hermod::{logging, server, settings};

/// hermod, a mail transfer agent built as a system of actors. Without a command it
/// serves, as `hermod serve` does (so `hermod --validate-only` works as the operators'
/// runbooks write it).
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// How to serve.
#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Configuration file (default: ./config/hermod.toml if it exists, else built-in
    /// defaults). Environment variables override it.
    #[arg(long, env = "HERMOD_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration, print a summary and exit (0 valid, 1 invalid).
    #[arg(long)]
    validate_only: bool,
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
}

/// The environment as text; variables that are not UTF-8 cannot be settings.
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Route { domain, config } => {
            let config = match settings::load(config.as_deref(), &environment()) {
                Ok((config, _)) => config,
                Err(issues) => {
                    eprintln!("configuration invalid:");
                    for issue in issues {
                        eprintln!("  {issue}");
                    }
                    return ExitCode::from(1);
                }
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("hermod: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(hermod::route::explain(&config, &domain)) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Serve(ServeArgs {
            config,
            validate_only,
        }) => {
            let env = environment();
            let path = config;
            let (config, source) = match settings::load(path.as_deref(), &env) {
                Ok(loaded) => loaded,
                Err(issues) => {
                    eprintln!(
                        "configuration invalid ({} problem{}):",
                        issues.len(),
                        if issues.len() == 1 { "" } else { "s" }
                    );
                    for issue in issues {
                        eprintln!("  {issue}");
                    }
                    return ExitCode::from(1);
                }
            };
            let ignored = settings::unrecognized_env(&env);
            if validate_only {
                print!("{}", settings::summary(&config, &source));
                for name in &ignored {
                    println!("warning: {name} is not a hermod setting; it is ignored");
                }
                return ExitCode::SUCCESS;
            }
            let _log_guard = logging::init(&config.log);
            tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %source, "hermod starting");
            for name in &ignored {
                tracing::warn!(
                    variable = %name,
                    "environment variable looks like a hermod setting but is not one; it is ignored"
                );
            }
            // A reload reads the same file and environment, validated the same way.
            let reload = Box::new(move || settings::load(path.as_deref(), &env).map(|(c, _)| c));
            match server::run(config, server::shutdown_signal(), reload) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "hermod failed");
                    eprintln!("hermod: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
