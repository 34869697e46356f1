//! Password guessing against AUTH, tried as an attacker would: sixty connections from one
//! address, each sending one AUTH at the same moment (Python's smtplib over STARTTLS,
//! released by a barrier). The attack this stops: every AUTH already in flight got its
//! password checked, so the lock-out after `max_failures` was worth nothing against
//! parallel connections (90 of 90 checked, and a right password among them got in).
//! Then the operator's side: `hermod auth lockouts`, `hermod auth unlock`, and the
//! fail2ban filter docs/OPERATIONS.md gives, matched against the real lock-out line.

mod common;

use std::time::Duration;

use common::certs::{CertFiles, TestCa};
use common::hermod::Hermod;
use common::users::{add_user, run_python};

const MAX_FAILURES: usize = 5;

fn config(server: &CertFiles) -> String {
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
max_failures = {MAX_FAILURES}
failure_window = "10m"
[relay]
networks = []
[admin]
token = "test-admin-token"
"#,
        server.cert.display(),
        server.key.display(),
    )
}

/// One AUTH PLAIN (smtplib's `login` would try LOGIN after a failed PLAIN: two guesses)
/// from `source` with `password`; prints the reply code.
fn one_login(ca: &str, port: u16, source: &str, password: &str) -> String {
    run_python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("localhost", {port}, local_hostname="client.test", source_address=("{source}", 0), timeout=60)
s.starttls(context=ctx)
s.ehlo()
s.user, s.password = "app", "{password}"
try:
    code, _ = s.auth("PLAIN", s.auth_plain)
    print("code", code)
except smtplib.SMTPAuthenticationError as e:
    print("code", e.smtp_code, e.smtp_error.decode())
"#
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_connections_guessing_at_once_get_at_most_max_failures_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let server = ca.issue(dir.path(), "server", &["localhost"], false);
    std::fs::write(dir.path().join("hermod.toml"), config(&server)).unwrap();
    add_user(dir.path(), None, "app", "right-pass", &[]);
    let hermod = Hermod::start_listening(dir.path(), &config(&server), &[]).await;
    let port = hermod.listener("submission").port();
    let ca_file = ca.cert_file.display().to_string();

    // The attack: every connection is open and past STARTTLS before any sends AUTH.
    let out = run_python(&format!(
        r#"
import smtplib, ssl, threading, json
ctx = ssl.create_default_context(cafile="{ca_file}")
N = 60
barrier = threading.Barrier(N, timeout=120)
results = [None] * N
def guess(i):
    s = smtplib.SMTP("localhost", {port}, local_hostname="guesser.test", timeout=120)
    s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = "app", "guess-%d" % i
    barrier.wait()
    try:
        code, _ = s.auth("PLAIN", s.auth_plain)
        results[i] = code
    except smtplib.SMTPAuthenticationError as e:
        results[i] = e.smtp_code
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        results[i] = "closed"
threads = [threading.Thread(target=guess, args=(i,)) for i in range(N)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results))
"#
    ));
    let results: Vec<serde_json::Value> =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let checked = results.iter().filter(|r| **r == 535).count();
    let locked = results.iter().filter(|r| **r == 421).count();
    assert!(
        (1..=MAX_FAILURES).contains(&checked),
        "{checked} guesses answered 535: {results:?}"
    );
    assert_eq!(checked + locked, 60, "{results:?}");
    // What the server did, not only what it answered: passwords actually checked.
    hermod
        .wait_log(
            "client locked out for too many failures",
            Duration::from_secs(5),
        )
        .await
        .expect("the lock-out line");
    let wrong = hermod
        .logs()
        .iter()
        .filter(|l| l.contains("Authentication failed") && l.contains("wrong password"))
        .count();
    assert!(wrong <= MAX_FAILURES, "{wrong} passwords checked");

    // The right password from the locked address is refused; another address still logs in.
    let same = one_login(&ca_file, port, "127.0.0.1", "right-pass");
    assert!(
        same.contains("code 421 4.7.0 Too many authentication failures"),
        "{same}"
    );
    let other = one_login(&ca_file, port, "127.0.0.2", "right-pass");
    assert!(other.contains("code 235"), "{other}");

    // The operator sees the lock-out and lifts it.
    let listed = hermod.command(dir.path(), &["auth", "lockouts"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("127.0.0.1/32"), "{listed}");
    let unlocked = hermod.command(dir.path(), &["auth", "unlock", "127.0.0.1"]);
    assert!(
        String::from_utf8_lossy(&unlocked.stdout).contains("127.0.0.1: unlocked"),
        "{unlocked:?}"
    );
    let again = one_login(&ca_file, port, "127.0.0.1", "right-pass");
    assert!(again.contains("code 235"), "{again}");
    assert!(
        hermod
            .wait_log(
                "AUTH lock-out lifted by the operator",
                Duration::from_secs(5)
            )
            .await
            .is_some()
    );

    // docs/OPERATIONS.md's fail2ban filter finds the locked address in the real line.
    let line = hermod
        .logs()
        .into_iter()
        .find(|l| l.contains("client locked out for too many failures"))
        .unwrap();
    let ops = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
        .unwrap();
    let failregex = ops
        .lines()
        .find_map(|l| l.strip_prefix("failregex = "))
        .expect("a failregex in docs/OPERATIONS.md");
    let matched = run_python(&format!(
        r#"
import re
pattern = {failregex:?}.replace("<HOST>", r"(?P<host>[0-9A-Fa-f:.]+)")
m = re.search(pattern, {line:?})
print(m.group("host") if m else "no match")
"#
    ));
    assert_eq!(matched.trim(), "127.0.0.1", "{failregex} on {line}");
}
