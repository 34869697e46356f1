//! Running what a test needs from outside: a Python script (smtplib and friends) and
//! `hermod user add` for the AUTH users.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs a Python script; returns its stdout, or panics with stderr.
pub fn run_python(script: &str) -> String {
    let out = Command::new(super::python3())
        .arg("-c")
        .arg(script)
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Adds a user with `hermod user add` (the data directory, hermod stopped, or through
/// the running hermod's admin API).
pub fn add_user(dir: &Path, admin: Option<SocketAddr>, name: &str, password: &str, extra: &[&str]) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hermod"));
    command
        .args(["user", "add", name, "--password-stdin", "--config"])
        .arg(dir.join("hermod.toml"))
        .args(extra)
        .env("SMTP_DB_PATH", dir.join("data"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(admin) = admin {
        command.env("HERMOD_ADMIN_LISTEN", admin.to_string());
    }
    let mut child = command.spawn().expect("hermod user add");
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "hermod user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
