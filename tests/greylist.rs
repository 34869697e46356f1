//! Greylisting end to end, delays shortened by configuration: Python's smtplib retrying
//! by hand, and Postfix as an upstream MTA that retries a greylisted message on its own.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::hermod::Hermod;

fn config(sink_port: u16, extra: &str) -> String {
    format!(
        "[relay]\ndomains = [\"relay.test\"]\nnetworks = []\n[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n[greylist]\nenabled = true\ndelay = \"2s\"\nretry_window = \"1m\"\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn smtplib_is_greylisted_then_passes_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sink");
    let sink = common::sink::start(&sink_dir).await;
    let hermod = Hermod::start(dir.path(), &config(sink.local_addrs()[0].port(), "")).await;
    let script = format!(
        r#"
import smtplib, time
def send():
    s = smtplib.SMTP("127.0.0.1", {port}, local_hostname="sender.test")
    try:
        s.sendmail("news@sender.test", ["user@relay.test"], "Subject: grey\r\n\r\nhello\r\n")
        print("accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["user@relay.test"]
        print("refused", code, text.decode())
    s.quit()
send()
send()
time.sleep(2.5)
send()
"#,
        port = hermod.addr.port()
    );
    let out = Command::new(common::python3())
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "refused 451 4.7.1 Greylisted, please try again in 2 seconds"
    );
    assert!(
        lines[1].starts_with("refused 451 4.7.1 Greylisted, please try again in "),
        "{text}"
    );
    assert_eq!(lines[2], "accepted", "{text}");
    hermod
        .wait_log("greylist passed", Duration::from_secs(5))
        .await
        .expect("a greylist passed line");
    let logs = hermod.logs().join("\n");
    assert!(
        logs.contains("greylisted")
            && logs.contains("triplet_client=127.0.0.0/24")
            && logs.contains("from=news@sender.test")
            && logs.contains("to=user@relay.test"),
        "{logs}"
    );
    assert!(logs.contains("greylist passed"), "{logs}");
    let stored = common::sink::wait_stored(&sink_dir, 1, Duration::from_secs(10)).await;
    assert_eq!(stored.len(), 1);
    let metrics = common::http::get(hermod.admin.unwrap(), "/metrics")
        .await
        .body;
    assert!(
        metrics.contains("greylist_decisions_total{result=\"greylisted\"} 2")
            && metrics.contains("greylist_decisions_total{result=\"passed\"} 1"),
        "{metrics}"
    );
}

/// Postfix, with its own configuration directory and queue, relays a message to hermod,
/// is greylisted, and delivers on its own retry.
#[tokio::test(flavor = "multi_thread")]
async fn postfix_retries_a_greylisted_message_on_its_own() {
    if !Path::new("/usr/sbin/postfix").exists() {
        panic!("Postfix is needed (Debian package postfix)");
    }
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sink");
    let sink = common::sink::start(&sink_dir).await;
    let hermod = Hermod::start(dir.path(), &config(sink.local_addrs()[0].port(), "")).await;
    let postfix = Postfix::start(dir.path(), hermod.addr.port());
    postfix.sendmail(
        "from@upstream.test",
        "user@relay.test",
        "Subject: via postfix\r\n\r\nretried\r\n",
    );
    let stored = common::sink::wait_stored(&sink_dir, 1, Duration::from_secs(60)).await;
    let log = postfix.log();
    assert_eq!(
        stored.len(),
        1,
        "Postfix's log:\n{log}\nhermod's:\n{}",
        hermod.logs().join("\n")
    );
    assert!(
        log.contains("status=deferred") && log.contains("Greylisted, please try again in"),
        "{log}"
    );
    assert!(log.contains("status=sent"), "{log}");
}

/// A private Postfix instance: its own configuration directory, queue and data
/// directory, a relayhost, and a queue scan every second with retries after 2 to 3 s.
///
/// The backoff is not 1 s: Postfix's queue manager then can take a deferred message back
/// while its smtp process still holds the file's lock, logs "skipped, still being
/// delivered", and leaves the message in the active queue until it restarts (a CI run
/// waited 60 s for that retry).
struct Postfix {
    config_dir: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Postfix {
    fn start(dir: &Path, relay_port: u16) -> Postfix {
        let config_dir = dir.join("postfix-etc");
        let queue = dir.join("postfix-queue");
        let data = dir.join("postfix-data");
        let log = dir.join("postfix.log");
        // Postfix's processes run as the postfix user: they must reach the queue, and own
        // the data directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&queue).unwrap();
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .unwrap();
        assert!(chown.success(), "chown postfix {}", data.display());
        std::fs::copy("/etc/postfix/master.cf", config_dir.join("master.cf"))
            .or_else(|_| {
                std::fs::copy(
                    "/usr/share/postfix/master.cf.dist",
                    config_dir.join("master.cf"),
                )
            })
            .expect("a master.cf to start from");
        // Nothing of this Postfix listens: every inet service of the copied file goes (a
        // machine's own file may name ports, such as a benchmark's smtpd on a loopback
        // port another test now uses, which would stop this master from starting).
        let master = std::fs::read_to_string(config_dir.join("master.cf")).unwrap();
        let mut dropping = false;
        let mut without_listeners = String::new();
        for line in master.lines() {
            let service = !line.is_empty() && !line.starts_with(['#', ' ', '\t']);
            if service {
                // A service line; its continuation lines (indented) go with it.
                dropping = line.split_whitespace().nth(1) == Some("inet");
            }
            if !dropping || !service && !line.starts_with([' ', '\t']) {
                without_listeners.push_str(line);
                without_listeners.push('\n');
            }
        }
        std::fs::write(config_dir.join("master.cf"), without_listeners).unwrap();
        let main = format!(
            "compatibility_level = 3.6\nqueue_directory = {}\ndata_directory = {}\nmail_owner = postfix\nsetgid_group = postdrop\n\
             inet_interfaces = loopback-only\ninet_protocols = ipv4\nmydestination =\nmyhostname = upstream.test\n\
             relayhost = [127.0.0.1]:{relay_port}\nmaillog_file = {}\nmaillog_file_prefixes = {}\nqueue_run_delay = 1s\nminimal_backoff_time = 2s\n\
             maximal_backoff_time = 3s\nsmtp_tls_security_level = none\nalias_maps =\nalias_database =\n",
            queue.display(),
            data.display(),
            log.display(),
            dir.display()
        );
        std::fs::write(config_dir.join("main.cf"), main).unwrap();
        let postconf = |args: &[&str]| {
            let out = Command::new("postconf")
                .arg("-c")
                .arg(&config_dir)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "postconf {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        postconf(&[
            "-M",
            "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd",
        ]);
        let postfix = Postfix { config_dir, log };
        let out = postfix.command("postfix", &["start"]);
        assert!(
            out.status.success(),
            "postfix start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        postfix
    }

    fn command(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new(program)
            .arg("-c")
            .arg(&self.config_dir)
            .args(args)
            .output()
            .unwrap()
    }

    fn sendmail(&self, from: &str, to: &str, message: &str) {
        use std::io::Write;
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(&self.config_dir)
            .args(["-f", from, to])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "sendmail failed");
    }

    fn log(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains("status=sent") || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.command("postfix", &["stop"]);
    }
}
