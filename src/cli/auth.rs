//! `hermod auth lockouts|unlock`: the client networks AUTH has locked out in the running
//! hermod, and lifting one before its failures age out (through its admin API).

use std::path::PathBuf;
use std::process::ExitCode;

use awc::http::Method;
use clap::{Args, Subcommand};

/// The `hermod auth` command.
#[derive(Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
    /// Configuration file, as for `serve` (for the admin address and token).
    #[arg(long, env = "HERMOD_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AuthCommand {
    /// The client networks locked out now and the user names being paced.
    Lockouts,
    /// Lift the lock-out of ADDRESS's network (or of every network inside a CIDR range).
    Unlock {
        /// A client address (`192.0.2.7`, `2001:db8::1`) or a range (`2001:db8::/48`).
        address: String,
    },
}

/// Runs the subcommand and prints what hermod answered.
pub fn run(args: AuthArgs) -> ExitCode {
    let config = match super::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let call = async {
        match args.command {
            AuthCommand::Lockouts => {
                let text =
                    super::admin_client::call(&config, Method::GET, "/api/auth/lockouts", None)
                        .await?;
                Ok(lockouts_table(&serde_json::from_str(&text)?))
            }
            AuthCommand::Unlock { address } => {
                let body = serde_json::json!({ "address": address });
                let text = super::admin_client::call(
                    &config,
                    Method::POST,
                    "/api/auth/unlock",
                    Some(body),
                )
                .await?;
                let answer: serde_json::Value = serde_json::from_str(&text)?;
                Ok(match answer["unlocked"].as_u64().unwrap_or(0) {
                    0 => format!("{address}: not locked out"),
                    n => format!(
                        "{address}: unlocked ({n} network{})",
                        if n == 1 { "" } else { "s" }
                    ),
                })
            }
        }
    };
    super::admin_client::print_outcome("auth", call)
}

/// The lock-outs as a table a person reads.
fn lockouts_table(answer: &serde_json::Value) -> String {
    let mut out = String::new();
    let lockouts = answer["lockouts"].as_array().cloned().unwrap_or_default();
    if lockouts.is_empty() {
        out.push_str("no client network is locked out\n");
    } else {
        out.push_str(&format!(
            "{:<44} {:>8} {:>10}\n",
            "NETWORK", "FAILURES", "SECONDS"
        ));
        for l in &lockouts {
            out.push_str(&format!(
                "{:<44} {:>8} {:>10}\n",
                l["network"].as_str().unwrap_or("?"),
                l["failures"],
                l["seconds_left"]
            ));
        }
    }
    for p in answer["paced_users"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "user {} paced ({} failures)\n",
            p["user"].as_str().unwrap_or("?"),
            p["failures"]
        ));
    }
    out.trim_end().to_string()
}
