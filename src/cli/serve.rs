//! `hermod serve` (and `hermod` alone): load and check the configuration, then run the
//! server until SIGTERM; with `--validate-only`, print the summary and stop.

use std::process::ExitCode;

use super::{ServeArgs, environment, invalid};
use crate::config::{self, env};
use crate::{logging, wiring};

/// Serves, or validates only.
pub fn run(args: ServeArgs) -> ExitCode {
    let env = environment();
    let path = args.config;
    let (config, source) = match config::load(path.as_deref(), &env) {
        Ok(loaded) => loaded,
        Err(issues) => return invalid(issues),
    };
    let ignored = env::unrecognized_env(&env);
    if args.validate_only {
        print!("{}", config::summary(&config, &source));
        for name in &ignored {
            println!("warning: {name} is not a hermod setting; it is ignored");
        }
        for problem in config
            .dkim
            .published_key_problems(&config.delivery.dns_servers)
        {
            println!("warning: {problem}");
        }
        let split = wiring::DescriptorSplit::at_start(&config);
        println!(
            "descriptors open_files={} inbound={} outbound={}",
            split.open_files, split.inbound, split.outbound
        );
        if let Some(advice) = split.advice() {
            println!("warning: {advice}");
        }
        return ExitCode::SUCCESS;
    }
    let recent = logging::recent::RecentProblems::default();
    let _log_guard = logging::init(&config.log, &recent);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %source, "hermod starting");
    for name in &ignored {
        tracing::warn!(
            variable = %name,
            "environment variable looks like a hermod setting but is not one; it is ignored"
        );
    }
    // A reload reads the same file and environment, validated the same way.
    let reload = Box::new(move || config::load(path.as_deref(), &env).map(|(c, _)| c));
    match wiring::run(config, wiring::shutdown_signal(), reload, recent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "hermod failed");
            eprintln!("hermod: {e:#}");
            ExitCode::from(1)
        }
    }
}
