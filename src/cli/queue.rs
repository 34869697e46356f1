//! `hermod queue`: the running hermod's queue, through its admin API — `list` (like
//! `mailq`), `show ID`, `stats`, `flush`, `hold`, `release`, `delete`, `bounce` of one
//! message (by id) or of every message a filter matches, and `suspend`, `resume`,
//! `suspensions` of destinations.

use std::path::PathBuf;
use std::process::ExitCode;

use awc::http::Method;
use clap::{Args, Subcommand};

use super::queue_text;

/// The `hermod queue` command.
#[derive(Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
    /// Configuration file, as for `serve` (for the admin address and token).
    #[arg(long, env = "HERMOD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the admin API's JSON (for scripts) instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// List queued messages, oldest first: id, size, arrival, sender, and per recipient
    /// its state and last reply.
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one message: envelope, recipients, attempts, last reply, headers (and with
    /// `--body`, its body).
    Show {
        /// The queue id.
        id: String,
        /// Show the body too (its first MiB).
        #[arg(long)]
        body: bool,
        /// Show instead the transcript of the session that queued it (when its client is
        /// in log.transcript_peers).
        #[arg(long, conflicts_with = "body")]
        transcript: bool,
    },
    /// The queue's counters.
    Stats,
    /// Retry now: one message, or every deferred one a filter matches (no filter: all).
    Flush(Target),
    /// Never attempt until released.
    Hold(Target),
    /// Undo a hold.
    Release(Target),
    /// Remove without a bounce.
    Delete(Target),
    /// Fail every recipient not yet delivered, with a bounce to the sender.
    Bounce(Target),
    /// Stop delivery to a destination for a while; its mail waits.
    Suspend {
        /// The recipient domain.
        domain: String,
        /// How long (30m, 2h, 1d).
        #[arg(long = "for")]
        duration: String,
        /// Why (shown in the listing, the status page and the log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// End a suspension now; the destination's mail is tried at once.
    Resume {
        /// The recipient domain.
        domain: String,
    },
    /// The suspended destinations.
    Suspensions,
}

/// One message by id, or those a filter matches.
#[derive(Args)]
struct Target {
    /// The queue id; without it, every message the filter matches.
    id: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Which messages.
#[derive(Args, Default)]
struct FilterArgs {
    /// A recipient's domain.
    #[arg(long)]
    domain: Option<String>,
    /// The sender's address.
    #[arg(long)]
    sender: Option<String>,
    /// A recipient's address.
    #[arg(long)]
    recipient: Option<String>,
    /// pending, deferred or held.
    #[arg(long)]
    state: Option<String>,
    /// At least this old (30m, 2h, 1d).
    #[arg(long)]
    min_age: Option<String>,
    /// Messages to list (at most 1000).
    #[arg(long)]
    limit: Option<usize>,
    /// List from after this queue id (the `next` of the previous page).
    #[arg(long)]
    after: Option<String>,
}

impl FilterArgs {
    /// The query string (`?domain=…&…`), empty when no condition is given.
    fn query(&self) -> String {
        let pairs: Vec<String> = [
            ("domain", self.domain.clone()),
            ("sender", self.sender.clone()),
            ("recipient", self.recipient.clone()),
            ("state", self.state.clone()),
            ("min_age", self.min_age.clone()),
            ("limit", self.limit.map(|n| n.to_string())),
            ("after", self.after.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(&v))))
        .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

/// Percent-encodes a query value (addresses carry `@` and `+`).
pub(super) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs the command against the running hermod.
pub fn run(args: QueueArgs) -> ExitCode {
    let config = match super::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut body = None;
    let (method, path) = match &args.command {
        QueueCommand::Suspend {
            domain,
            duration,
            reason,
        } => {
            body = Some(serde_json::json!({ "domain": domain, "for": duration, "reason": reason }));
            (Method::POST, "/api/suspensions".to_string())
        }
        QueueCommand::Resume { domain } => (
            Method::DELETE,
            format!("/api/suspensions/{}", encode(domain)),
        ),
        QueueCommand::Suspensions => (Method::GET, "/api/suspensions".to_string()),
        QueueCommand::List { filter } => (Method::GET, format!("/api/queue{}", filter.query())),
        QueueCommand::Show {
            id,
            transcript: true,
            ..
        } => (Method::GET, format!("/api/queue/{}/transcript", encode(id))),
        QueueCommand::Show {
            id,
            body: with_body,
            ..
        } => (
            Method::GET,
            format!(
                "/api/queue/{}{}",
                encode(id),
                if *with_body { "?body=true" } else { "" }
            ),
        ),
        QueueCommand::Stats => (Method::GET, "/api/queue/stats".to_string()),
        QueueCommand::Flush(t) => (Method::POST, action_path("flush", t)),
        QueueCommand::Hold(t) => (Method::POST, action_path("hold", t)),
        QueueCommand::Release(t) => (Method::POST, action_path("release", t)),
        QueueCommand::Bounce(t) => (Method::POST, action_path("bounce", t)),
        QueueCommand::Delete(t) => match &t.id {
            Some(id) => (Method::DELETE, format!("/api/queue/{}", encode(id))),
            None => (Method::POST, action_path("delete", t)),
        },
    };
    let call = super::admin_client::call(&config, method, &path, body);
    match actix::System::new().block_on(call) {
        Ok(text) if args.json => {
            println!("{}", super::printable(&text));
            ExitCode::SUCCESS
        }
        Ok(text) => {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(answer) => print!("{}", for_people(&args.command, &answer)),
                Err(_) => println!("{}", super::printable(&text)),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hermod queue: {}", super::printable(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// The answer to `command` as text.
fn for_people(command: &QueueCommand, answer: &serde_json::Value) -> String {
    match command {
        QueueCommand::List { .. } => queue_text::mailq(answer),
        QueueCommand::Show { .. } => queue_text::message(answer),
        QueueCommand::Stats => queue_text::fields(answer),
        QueueCommand::Suspend { .. } | QueueCommand::Resume { .. } | QueueCommand::Suspensions => {
            queue_text::suspensions(answer)
        }
        QueueCommand::Flush(_)
        | QueueCommand::Hold(_)
        | QueueCommand::Release(_)
        | QueueCommand::Delete(_)
        | QueueCommand::Bounce(_) => queue_text::operated(answer),
    }
}

fn action_path(action: &str, target: &Target) -> String {
    match &target.id {
        Some(id) => format!("/api/queue/{}/{action}", encode(id)),
        None => format!("/api/queue/{action}{}", target.filter.query()),
    }
}
