//! `hermod bounce classify "REPLY"`: the class hermod gives a reply and the rule that gave
//! it, with the rules the configuration puts in force (`bounce.rules_file` before the
//! built-in ones), so an operator can test a rule before reloading it.

use std::path::PathBuf;
use std::process::ExitCode;

use hermod_actors::events::bounce_rules::BounceRules;

/// `hermod bounce` commands.
#[derive(clap::Args)]
pub struct BounceArgs {
    #[command(subcommand)]
    action: BounceAction,
}

#[derive(clap::Subcommand)]
enum BounceAction {
    /// Print the class of a reply (`550 5.1.1 <a@example.com>: user unknown`) and the
    /// rule that matched.
    Classify {
        /// The reply, as a next hop sent it (code, enhanced code, text).
        reply: String,
        /// A rules file to use instead of `bounce.rules_file` (still before the built-in
        /// rules).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Configuration file, as for `serve`.
        #[arg(long, env = "HERMOD_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs a `hermod bounce` command.
pub fn run(args: BounceArgs) -> ExitCode {
    let BounceAction::Classify {
        reply,
        rules,
        config,
    } = args.action;
    let rules = match rules {
        Some(path) => BounceRules::load(Some(&path)).map(std::sync::Arc::new),
        None => match super::load(config.as_deref()) {
            Ok(config) => config.bounce.rules(),
            Err(code) => return code,
        },
    };
    let rules = match rules {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("hermod: {}", super::printable(&e.to_string()));
            return ExitCode::from(1);
        }
    };
    let classified = rules.classify_reply(&reply);
    println!(
        "{} (rule {})",
        classified.class,
        super::printable(&classified.rule)
    );
    ExitCode::SUCCESS
}
