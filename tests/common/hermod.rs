//! A real hermod process for end-to-end tests: the binary cargo built, started with a
//! config file and environment overrides, its log lines kept for assertions.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running hermod.
pub struct Hermod {
    child: Child,
    /// Where it listens for SMTP.
    pub addr: SocketAddr,
    /// Where its admin HTTP server listens (a free loopback port), if it has one.
    pub admin: Option<SocketAddr>,
    /// Every SMTP listener: its kind and address.
    pub listeners: Vec<(String, SocketAddr)>,
    logs: Arc<Mutex<Vec<String>>>,
    /// The threads reading its stdout and stderr: joined once it has exited, so every
    /// line it wrote is in `logs` before a test reads them.
    readers: Vec<JoinHandle<()>>,
    config_path: PathBuf,
    data_dir: PathBuf,
}

impl Hermod {
    /// Starts hermod with `config` (TOML) in `dir`; the spool goes to `dir/data`, the
    /// listener to a free loopback port (through SMTP_HOST / SMTP_PORT / SMTP_DB_PATH).
    pub async fn start(dir: &Path, config: &str) -> Hermod {
        let config_path = dir.join("hermod.toml");
        std::fs::write(&config_path, config).expect("writing test config");
        Self::start_with(config_path, dir.join("data"), &[]).await
    }

    /// Starts hermod with extra environment variables.
    pub async fn start_with(
        config_path: PathBuf,
        data_dir: PathBuf,
        env: &[(&str, &str)],
    ) -> Hermod {
        Self::spawn(config_path, data_dir, env, true).await
    }

    /// Starts hermod with an open-files limit of `nofile` (soft and hard, set by
    /// prlimit), as a machine with few descriptors would run it.
    pub async fn start_with_nofile(dir: &Path, config: &str, nofile: u64) -> Hermod {
        let config_path = dir.join("hermod.toml");
        std::fs::write(&config_path, config).expect("writing test config");
        Self::spawn_limited(config_path, dir.join("data"), &[], true, Some(nofile)).await
    }

    /// Starts hermod on the listeners `config` names itself (`smtp.listen`, with kinds,
    /// on port 0), not on one SMTP_HOST / SMTP_PORT address.
    pub async fn start_listening(dir: &Path, config: &str, env: &[(&str, &str)]) -> Hermod {
        let config_path = dir.join("hermod.toml");
        std::fs::write(&config_path, config).expect("writing test config");
        Self::spawn(config_path, dir.join("data"), env, false).await
    }

    /// The address of the listener of `kind` (smtp, submission, submissions).
    pub fn listener(&self, kind: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no {kind} listener in {:?}", self.listeners))
    }

    async fn spawn(
        config_path: PathBuf,
        data_dir: PathBuf,
        env: &[(&str, &str)],
        one_listener: bool,
    ) -> Hermod {
        Self::spawn_limited(config_path, data_dir, env, one_listener, None).await
    }

    async fn spawn_limited(
        config_path: PathBuf,
        data_dir: PathBuf,
        env: &[(&str, &str)],
        one_listener: bool,
        nofile: Option<u64>,
    ) -> Hermod {
        let mut command = match nofile {
            Some(n) => {
                let mut prlimit = Command::new("prlimit");
                prlimit
                    .arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_hermod"));
                prlimit
            }
            None => Command::new(env!("CARGO_BIN_EXE_hermod")),
        };
        if one_listener {
            command.env("SMTP_HOST", "127.0.0.1").env("SMTP_PORT", "0");
        }
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("SMTP_DB_PATH", &data_dir)
            .env("SMTP_LOG_LEVEL", "info")
            .env("HERMOD_ADMIN_LISTEN", "127.0.0.1:0")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("starting hermod");
        let (logs, readers) = collect_output_with_readers(&mut child);
        let mut hermod = Hermod {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            listeners: Vec::new(),
            logs,
            readers,
            config_path,
            data_dir,
        };
        let line = hermod
            .wait_log_matching(
                |l| l.contains("listening") && l.contains("smtp_addr"),
                Duration::from_secs(30),
            )
            .await;
        let line = line
            .unwrap_or_else(|| panic!("hermod did not start; log:\n{}", hermod.logs().join("\n")));
        let addr = field(&line, "smtp_addr");
        let addr = addr.expect("smtp_addr in the listening line");
        hermod.addr = addr.parse().expect("listening address");
        // The listening lines are logged one after the other.
        tokio::time::sleep(Duration::from_millis(100)).await;
        hermod.listeners = hermod
            .logs()
            .iter()
            .filter(|l| l.contains("listening") && l.contains("smtp_addr"))
            .filter_map(|l| {
                let kind = field(l, "kind")
                    .map_or_else(|| "smtp".into(), |k| k.trim_matches('"').to_string());
                Some((kind, field(l, "smtp_addr")?.parse().ok()?))
            })
            .collect();
        // Logged before the SMTP "listening" line.
        hermod.admin = hermod
            .logs()
            .iter()
            .find(|l| l.contains("admin listening"))
            .and_then(|l| field(l, "admin_addr"))
            .and_then(|a| a.parse().ok());
        hermod
    }

    /// Starts again on the same config and spool (after [`Hermod::kill`] or [`Hermod::stop`]).
    pub async fn restart(&mut self) {
        let next = Self::start_with(self.config_path.clone(), self.data_dir.clone(), &[]).await;
        *self = next;
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; returns it.
    pub async fn wait_log(&self, needle: &str, limit: Duration) -> Option<String> {
        self.wait_log_matching(|l| l.contains(needle), limit).await
    }

    /// Waits until a log line satisfies `pred`.
    pub async fn wait_log_matching(
        &self,
        pred: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.logs.lock().unwrap().iter().find(|l| pred(l)) {
                return Some(line.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the `delivery attempt` line of message `id` with `status="<status>"`.
    pub async fn wait_status(&self, id: &str, status: &str, limit: Duration) -> Option<String> {
        let status = format!("status=\"{status}\"");
        self.wait_log_matching(|l| l.contains(id) && l.contains(&status), limit)
            .await
    }

    /// Sends SIGTERM and waits for the exit status code.
    pub async fn stop(&mut self) -> Option<i32> {
        signal(self.child.id(), "-TERM");
        self.wait_exit(Duration::from_secs(30)).await
    }

    /// Replaces the config file (for a reload).
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(&self.config_path, config).expect("rewriting test config");
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hangup(&self) {
        signal(self.child.id(), "-HUP");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGKILL: no drain, no final flush.
    pub async fn kill(&mut self) {
        signal(self.child.id(), "-KILL");
        self.wait_exit(Duration::from_secs(10)).await;
    }

    /// Waits for the process to exit by itself; its exit code (`None` if it had to be
    /// killed after `limit`).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The pipes are closed now; what was in them is read to the end.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
}

impl Drop for Hermod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name` in a log line, text (`name=value`) or JSON.
fn field(line: &str, name: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(json) => json[name].as_str().map(String::from),
        Err(_) => line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(String::from),
    }
}

/// The lines `child` writes to its stdout and stderr (both piped), gathered as they come.
pub fn collect_output(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    collect_output_with_readers(child).0
}

/// [`collect_output`], with the reader threads, which end when the child's pipes close.
fn collect_output_with_readers(
    child: &mut Child,
) -> (Arc<Mutex<Vec<String>>>, Vec<JoinHandle<()>>) {
    let mut readers = Vec::new();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for pipe in [stdout, stderr].into_iter().flatten() {
        let logs = logs.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        }));
    }
    (logs, readers)
}

impl Hermod {
    /// Runs `hermod ARGS --config DIR/hermod.toml` (a command that talks to this
    /// server's admin API, such as `queue` or `maintenance`) and returns its output.
    pub fn command(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(args)
            .arg("--config")
            .arg(dir.join("hermod.toml"))
            .env(
                "HERMOD_ADMIN_LISTEN",
                self.admin.expect("an admin server").to_string(),
            )
            .env("SMTP_DB_PATH", &self.data_dir)
            .env_remove("RUST_LOG")
            .output()
            .expect("running hermod")
    }
}
