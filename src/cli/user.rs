//! `hermod user add|passwd|del|list|disable|enable|senders`: the AUTH users in the data
//! directory. With hermod stopped the command opens the store itself; while hermod runs
//! (sled lets one process open it) it asks the running server through the admin API,
//! which sees the change at once. Passwords are hashed here (Argon2id with `[auth]`'s
//! cost) and never leave this process in clear.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use awc::http::Method;
use hermod_actors::store::users::{UserChange, UserError, UserStore, UserSummary};

use crate::config::Config;

/// `hermod user ...`.
#[derive(clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    action: Action,
    /// Configuration file, as for `serve` (data directory, hash cost, admin API).
    #[arg(long, env = "HERMOD_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Add a user; the password is asked for (or read from standard input).
    Add {
        /// The login name.
        name: String,
        /// An envelope sender the user may use (address, or @domain); repeat for more.
        /// None: any sender.
        #[arg(long = "sender")]
        senders: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password.
    Passwd {
        /// The login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user.
    Del {
        /// The login name.
        name: String,
    },
    /// List the users.
    List,
    /// Refuse a user's logins (the user stays).
    Disable {
        /// The login name.
        name: String,
    },
    /// Take a disabled user's logins again.
    Enable {
        /// The login name.
        name: String,
    },
    /// Set the envelope senders a user may use (none: any).
    Senders {
        /// The login name.
        name: String,
        /// Addresses, or @domain for a whole domain.
        senders: Vec<String>,
    },
}

/// Where the change is made.
enum Store {
    /// The data directory, opened here (hermod is stopped).
    Direct(UserStore),
    /// The running hermod, through its admin API.
    Running(Box<Config>),
}

/// Runs the user command.
pub fn run(args: UserArgs) -> ExitCode {
    let config = match super::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match execute(args.action, config) {
        Ok(text) => {
            print!("{}", super::printable(&text));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hermod user: {}", super::printable(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

fn execute(action: Action, config: Config) -> anyhow::Result<String> {
    let cost = config.auth.hash_cost();
    let data_dir = &config.queue.data_dir;
    if !matches!(action, Action::Add { .. }) && !data_dir.join("db").exists() {
        anyhow::bail!(
            "no hermod data in {} (is queue.data_dir, or SMTP_DB_PATH, right?)",
            data_dir.display()
        );
    }
    let store = match UserStore::open_dir(data_dir, cost) {
        Ok(store) => Store::Direct(store),
        Err(UserError::Store(e)) if e.contains("lock") || e.contains("WouldBlock") => {
            Store::Running(Box::new(config))
        }
        Err(e) => anyhow::bail!("opening the user store in the data directory: {e}"),
    };
    match action {
        Action::Add {
            name,
            senders,
            password_stdin,
        } => {
            let hash = cost.hash(&password(password_stdin)?)?;
            match store {
                Store::Direct(users) => users.add(&name, hash, senders)?,
                Store::Running(config) => {
                    let body =
                        serde_json::json!({ "name": name, "hash": hash, "senders": senders });
                    ask(&config, Method::POST, "/api/users", Some(body))?;
                }
            }
            Ok(format!("user {name} added\n"))
        }
        Action::Passwd {
            name,
            password_stdin,
        } => {
            let hash = cost.hash(&password(password_stdin)?)?;
            change(store, &name, UserChange::Password(hash))?;
            Ok(format!("password of {name} set\n"))
        }
        Action::Disable { name } => {
            change(store, &name, UserChange::Disabled(true))?;
            Ok(format!("user {name} disabled\n"))
        }
        Action::Enable { name } => {
            change(store, &name, UserChange::Disabled(false))?;
            Ok(format!("user {name} enabled\n"))
        }
        Action::Senders { name, senders } => {
            change(store, &name, UserChange::Senders(senders))?;
            Ok(format!("senders of {name} set\n"))
        }
        Action::Del { name } => {
            match store {
                Store::Direct(users) => users.delete(&name)?,
                Store::Running(config) => {
                    ask(&config, Method::DELETE, &path(&name), None)?;
                }
            }
            Ok(format!("user {name} deleted\n"))
        }
        Action::List => {
            let users = match store {
                Store::Direct(users) => users.list()?,
                Store::Running(config) => {
                    let text = ask(&config, Method::GET, "/api/users", None)?;
                    let mut answer: serde_json::Value = serde_json::from_str(&text)?;
                    serde_json::from_value(answer["users"].take())?
                }
            };
            Ok(table(&users))
        }
    }
}

fn change(store: Store, name: &str, change: UserChange) -> anyhow::Result<()> {
    match store {
        Store::Direct(users) => users.update(name, change)?,
        Store::Running(config) => {
            ask(
                &config,
                Method::PATCH,
                &path(name),
                Some(serde_json::to_value(change)?),
            )?;
        }
    }
    Ok(())
}

/// The admin path of one user, its name percent-encoded.
fn path(name: &str) -> String {
    let mut encoded = String::from("/api/users/");
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn ask(
    config: &Config,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let call = super::admin_client::call(config, method, path, body);
    actix::System::new().block_on(call).map_err(|e| {
        e.context("the data directory is in use by a running hermod, and its admin API did not take the change")
    })
}

/// The new password: asked for without echo on a terminal, else the first line of
/// standard input.
fn password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        first
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok(password)
}

fn table(users: &[UserSummary]) -> String {
    if users.is_empty() {
        return "no users\n".to_string();
    }
    let mut out = String::from("NAME                 STATE     PASSWORD SET          SENDERS\n");
    for user in users {
        let set = time::OffsetDateTime::from_unix_timestamp(user.password_set as i64)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<20} {:<9} {:<21} {}\n",
            user.name,
            if user.disabled { "disabled" } else { "enabled" },
            set,
            if user.senders.is_empty() {
                "(any)".to_string()
            } else {
                user.senders.join(",")
            }
        ));
    }
    out
}
