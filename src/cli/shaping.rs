//! `hermod shaping`: `check FILE` validates a shaping file and prints what it says;
//! `status` lists the traffic-shaping actions in force in the running hermod (rule,
//! site, what it does, the reply that triggered it, time left); `clear SITE [--rule R]`
//! ends them before their time (through its admin API; on every node of a fleet).

use std::path::PathBuf;
use std::process::ExitCode;

use awc::http::Method;
use clap::{Args, Subcommand};

/// The `hermod shaping` command.
#[derive(Args)]
pub struct ShapingArgs {
    #[command(subcommand)]
    command: ShapingCommand,
    /// Configuration file, as for `serve` (for the admin address and token).
    #[arg(long, env = "HERMOD_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ShapingCommand {
    /// Check a shaping file (exit 0 valid, 1 not) and print its sites, limits and rules.
    Check {
        /// The shaping file.
        file: PathBuf,
    },
    /// The actions in force in the running hermod.
    Status,
    /// End the actions in force on SITE (`*`: every site) before their time.
    Clear {
        /// The site, as `status` names it.
        site: String,
        /// Only this rule's action.
        #[arg(long)]
        rule: Option<String>,
    },
}

/// Runs the subcommand and prints the result.
pub fn run(args: ShapingArgs) -> ExitCode {
    if let ShapingCommand::Check { file } = &args.command {
        return match crate::config::shaping::load(file) {
            Ok(rules) => {
                print!(
                    "{}",
                    super::printable(&crate::config::shaping::summary(&rules))
                );
                println!("{}: valid", super::printable(&file.display().to_string()));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hermod shaping: {}", super::printable(&format!("{e:#}")));
                ExitCode::from(1)
            }
        };
    }
    let config = match super::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let call = async {
        let text = match &args.command {
            ShapingCommand::Clear { site, rule } => {
                let mut path = format!("/api/shaping/{}", super::queue::encode(site));
                if let Some(rule) = rule {
                    path.push_str(&format!("?rule={}", super::queue::encode(rule)));
                }
                super::admin_client::call(&config, Method::DELETE, &path, None).await?
            }
            _ => super::admin_client::call(&config, Method::GET, "/api/shaping", None).await?,
        };
        let answer: serde_json::Value = serde_json::from_str(&text)?;
        Ok(match &args.command {
            ShapingCommand::Clear { .. } => format!(
                "cleared:\n{}\nstill in force:\n{}",
                table(&answer["cleared"]),
                table(&answer["actions"])
            ),
            _ if answer["enabled"] == false => {
                "shaping is off (no delivery.shaping_file)".to_string()
            }
            _ => table(&answer["actions"]),
        })
    };
    super::admin_client::print_outcome("shaping", call)
}

/// Actions as a table a person reads, the triggering reply on its own line.
fn table(actions: &serde_json::Value) -> String {
    let actions = actions.as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        return "no shaping action in force".to_string();
    }
    let mut out = format!(
        "{:<32} {:<24} {:<28} {:>9} {}\n",
        "SITE", "RULE", "ACTION", "SECONDS", "NODE"
    );
    for a in &actions {
        let source = a["source"].as_str().unwrap_or_default();
        let site = match source {
            "" => a["site"].as_str().unwrap_or("?").to_string(),
            source => format!("{} (from {source})", a["site"].as_str().unwrap_or("?")),
        };
        out.push_str(&format!(
            "{:<32} {:<24} {:<28} {:>9} {}\n    after: {}\n",
            site,
            a["rule"].as_str().unwrap_or("?"),
            a["action"].as_str().unwrap_or("?"),
            a["remaining_s"],
            a["node"].as_str().unwrap_or("?"),
            a["reason"].as_str().unwrap_or_default(),
        ));
    }
    out.trim_end().to_string()
}
