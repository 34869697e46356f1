//! `hermod spool check [--repair]` and `hermod spool compact --into DIR`: the spool of a
//! stopped hermod (sled lets one process open it; while hermod runs, these say so). A
//! check reads every record and names the damaged ones (and takes them out with
//! `--repair`); a compaction writes a compacted copy and leaves the original as it was.

use std::path::PathBuf;
use std::process::ExitCode;

use hermod_actors::store::spool::SledSpool;
use hermod_actors::store::spool::compact::compact_into;

/// `hermod spool ...`.
#[derive(clap::Args)]
pub struct SpoolArgs {
    #[command(subcommand)]
    action: Action,
    /// Configuration file, as for `serve` (for queue.data_dir).
    #[arg(long, env = "HERMOD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Read every record and name the damaged ones (exit 1 when there are any).
    Check {
        /// Take the damaged records out (a message that cannot be read back is lost
        /// already; this ends the error hermod logs for it at every start).
        #[arg(long)]
        repair: bool,
    },
    /// Write a compacted copy of the data directory into DIR (new or empty); then point
    /// queue.data_dir at it, or swap the directories.
    Compact {
        /// Where the copy goes.
        #[arg(long)]
        into: PathBuf,
    },
}

/// Runs a `hermod spool` command.
pub fn run(args: SpoolArgs) -> ExitCode {
    let config = match super::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let data_dir = config.queue.data_dir.clone();
    if !data_dir.join("db").exists() {
        eprintln!(
            "hermod: no spool in {} (is queue.data_dir, or SMTP_DB_PATH, right?)",
            super::printable(&data_dir.display().to_string())
        );
        return ExitCode::from(1);
    }
    match args.action {
        Action::Check { repair } => check(&data_dir, repair, args.json),
        Action::Compact { into } => compact(&data_dir, &into, args.json),
    }
}

fn check(data_dir: &std::path::Path, repair: bool, json: bool) -> ExitCode {
    let report = SledSpool::open(data_dir).and_then(|spool| spool.check(repair));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "hermod: cannot check the spool in {} (stop hermod first: it holds the spool): {}",
                data_dir.display(),
                super::printable(&e.to_string())
            );
            return ExitCode::from(1);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "{} messages read back whole, {} delivery events, {} damaged records{}",
            report.messages,
            report.events,
            report.damaged.len(),
            if report.repaired && !report.damaged.is_empty() {
                " (taken out)"
            } else {
                ""
            }
        );
        for damage in &report.damaged {
            println!("  {}: {}", damage.record, super::printable(&damage.problem));
        }
    }
    if report.damaged.is_empty() || report.repaired {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn compact(data_dir: &std::path::Path, into: &std::path::Path, json: bool) -> ExitCode {
    match compact_into(data_dir, into) {
        Ok(done) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&done).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(done) => {
            println!(
                "compacted {} into {}: {} -> {} octets, {} other files copied; point queue.data_dir at it (or swap the directories) before starting hermod",
                data_dir.display(),
                into.display(),
                done.before,
                done.after,
                done.files_copied
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hermod: {}", super::printable(&e.to_string()));
            ExitCode::from(1)
        }
    }
}
