//! AUTH against a real Dovecot (Debian's dovecot-core, started by the test with a
//! passwd-file passdb and its `auth-client` socket in a temporary directory), as Postfix's
//! `smtpd_sasl_type = dovecot` uses it: Python's smtplib logs in over STARTTLS with the
//! right password (235), a wrong one (535), and, with Dovecot stopped, gets a clear
//! `454 4.7.0` instead of a hang or an accept.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::certs::{CertFiles, TestCa};
use common::hermod::Hermod;
use common::users::run_python;

/// A Dovecot with only its auth service, its files under `dir`.
struct Dovecot {
    child: Child,
    socket: PathBuf,
}

impl Dovecot {
    fn start(dir: &Path) -> Dovecot {
        // Dovecot's auth processes run as its own user: they must reach these files.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("passwd"), "alice:{PLAIN}wonderland::::::\n").unwrap();
        let conf = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={d}/home
}}
service auth {{
  unix_listener auth-client {{
    mode = 0600
  }}
}}
service anvil {{
  chroot =
}}
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
        let child = Command::new("dovecot")
            .args(["-F", "-c"])
            .arg(dir.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot (Debian's dovecot-core; see .ci/run)");
        let socket = dir.join("run/auth-client");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not start; its log:\n{}",
                std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Dovecot { child, socket }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

fn config(server: &CertFiles, socket: &Path) -> String {
    format!(
        r#"
[smtp]
hostname = "localhost"
listen = [{{ address = "127.0.0.1:0", kind = "submission" }}]
[tls]
cert = "{}"
key = "{}"
[auth]
enabled = true
backend = "dovecot"
dovecot_socket = "{}"
dovecot_timeout = "3s"
[relay]
networks = []
"#,
        server.cert.display(),
        server.key.display(),
        socket.display(),
    )
}

/// One AUTH PLAIN over STARTTLS; the reply code and text.
fn login(ca: &str, port: u16, user: &str, password: &str) -> String {
    run_python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("localhost", {port}, local_hostname="client.test", timeout=30)
s.starttls(context=ctx)
s.ehlo()
s.user, s.password = "{user}", "{password}"
try:
    code, text = s.auth("PLAIN", s.auth_plain)
    print(code, text.decode())
except smtplib.SMTPAuthenticationError as e:
    print(e.smtp_code, e.smtp_error.decode())
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_checks_the_passwords_and_its_absence_is_a_454() {
    let dir = tempfile::tempdir().unwrap();
    let dovecot_dir = dir.path().join("dovecot");
    std::fs::create_dir_all(&dovecot_dir).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut dovecot = Dovecot::start(&dovecot_dir);
    let ca = TestCa::new(dir.path());
    let server = ca.issue(dir.path(), "server", &["localhost"], false);
    let mut hermod =
        Hermod::start_listening(dir.path(), &config(&server, &dovecot.socket), &[]).await;
    let port = hermod.listener("submission").port();
    let ca_file = ca.cert_file.display().to_string();

    let right = login(&ca_file, port, "alice", "wonderland");
    assert!(right.starts_with("235"), "{right}");
    let wrong = login(&ca_file, port, "alice", "looking-glass");
    assert!(wrong.starts_with("535"), "{wrong}");
    let nobody = login(&ca_file, port, "bob", "wonderland");
    assert!(nobody.starts_with("535"), "{nobody}");
    hermod
        .wait_log("authenticated", Duration::from_secs(5))
        .await
        .expect("the log names the user who logged in");

    dovecot.stop();
    let started = Instant::now();
    let gone = login(&ca_file, port, "alice", "wonderland");
    assert!(
        gone.starts_with(
            "454 4.7.0 Temporary authentication failure: the authentication service does not answer"
        ),
        "{gone}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let line = hermod
        .wait_log(
            "Authentication not possible: the password check failed",
            Duration::from_secs(5),
        )
        .await
        .expect("an ERROR line");
    assert!(line.contains("Dovecot's auth socket"), "{line}");
    hermod.stop().await;
}
