//! `hermod queue`: the running hermod's queue, through its admin API — `list` (like
//! `mailq`), `show ID`, `stats`, `flush`, `hold`, `release`, `delete`, `bounce` of one
//! message (by id) or of every message a filter matches, and `suspend`, `resume`,
//! `suspensions` of destinations.

use std::path::PathBuf;
use std::process::ExitCode;

use awc::http::Method;
use clap::{Args, Subcommand};

/// The `hermod queue` command.
#[derive(Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
    /// Configuration file, as for `serve` (for the admin address and token).
    #[arg(long, env = "HERMOD_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// List queued messages, oldest first: id, size, arrival, sender, and per recipient
    /// its state and last reply.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Show one message: envelope, recipients, attempts, last reply, headers.
    Show {
        /// The queue id.
        id: String,
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
fn encode(value: &str) -> String {
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
    let (method, path, json) = match &args.command {
        QueueCommand::Suspend {
            domain,
            duration,
            reason,
        } => {
            body = Some(serde_json::json!({ "domain": domain, "for": duration, "reason": reason }));
            (Method::POST, "/api/suspensions".to_string(), true)
        }
        QueueCommand::Resume { domain } => (
            Method::DELETE,
            format!("/api/suspensions/{}", encode(domain)),
            true,
        ),
        QueueCommand::Suspensions => (Method::GET, "/api/suspensions".to_string(), true),
        QueueCommand::List { filter, json } => {
            (Method::GET, format!("/api/queue{}", filter.query()), *json)
        }
        QueueCommand::Show { id } => (Method::GET, format!("/api/queue/{}", encode(id)), true),
        QueueCommand::Stats => (Method::GET, "/api/queue/stats".to_string(), true),
        QueueCommand::Flush(t) => (Method::POST, action_path("flush", t), true),
        QueueCommand::Hold(t) => (Method::POST, action_path("hold", t), true),
        QueueCommand::Release(t) => (Method::POST, action_path("release", t), true),
        QueueCommand::Bounce(t) => (Method::POST, action_path("bounce", t), true),
        QueueCommand::Delete(t) => match &t.id {
            Some(id) => (Method::DELETE, format!("/api/queue/{}", encode(id)), true),
            None => (Method::POST, action_path("delete", t), true),
        },
    };
    let call = super::admin_client::call(&config, method, &path, body);
    match actix::System::new().block_on(call) {
        Ok(text) if json => {
            println!("{}", super::printable(&text));
            ExitCode::SUCCESS
        }
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(page) => {
                print!("{}", mailq(&page));
                ExitCode::SUCCESS
            }
            Err(_) => {
                println!("{}", super::printable(&text));
                ExitCode::SUCCESS
            }
        },
        Err(e) => {
            eprintln!("hermod queue: {}", super::printable(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

fn action_path(action: &str, target: &Target) -> String {
    match &target.id {
        Some(id) => format!("/api/queue/{}/{action}", encode(id)),
        None => format!("/api/queue/{action}{}", target.filter.query()),
    }
}

/// A value of the listing on one line, its control characters escaped.
fn one_line(value: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::escape_controls(value, false)
}

/// A listing page as `mailq` prints its queue.
fn mailq(page: &serde_json::Value) -> String {
    let mut out = String::new();
    let messages = page["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        out.push_str("Mail queue is empty\n");
        return out;
    }
    out.push_str("-Queue ID-        --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    for m in &messages {
        let held = if m["held"].as_bool() == Some(true) {
            "!"
        } else {
            " "
        };
        let sender = one_line(
            m["sender"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("<>"),
        );
        out.push_str(&format!(
            "{}{held} {:>8} {:>20} {sender}\n",
            one_line(m["id"].as_str().unwrap_or("?")),
            m["size"],
            m["arrival"].as_str().unwrap_or("?"),
        ));
        for r in m["recipients"].as_array().into_iter().flatten() {
            if let Some(reply) = r["last_reply"].as_str() {
                out.push_str(&format!("        ({})\n", one_line(reply)));
            }
            out.push_str(&format!(
                "                                         {} [{}]\n",
                one_line(r["address"].as_str().unwrap_or("?")),
                one_line(r["state"].as_str().unwrap_or("?")),
            ));
        }
        out.push('\n');
    }
    if let Some(next) = page["next"].as_str() {
        out.push_str(&format!(
            "-- more: list the next page with --after {}\n",
            one_line(next)
        ));
    }
    out.push_str(&format!("-- {} message(s) listed\n", messages.len()));
    out
}
