//! hermod under systemd: the unit files pass `systemd-analyze verify`, hermod serves on
//! the listening socket systemd passes (socket activation, through systemd's own
//! `systemd-socket-activate`), and it tells the service manager when it is ready and
//! when it stops (`NOTIFY_SOCKET`).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client::Client;
use common::hermod::Hermod;

#[test]
fn the_unit_files_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/systemd");
    let service = std::fs::read_to_string(units.join("hermod.service"))
        .unwrap()
        .replace("/usr/local/bin/hermod", env!("CARGO_BIN_EXE_hermod"));
    std::fs::write(dir.path().join("hermod.service"), service).unwrap();
    std::fs::copy(
        units.join("hermod.socket"),
        dir.path().join("hermod.socket"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "./hermod.socket", "./hermod.service"])
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian's systemd package, see .ci/run)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hermod_serves_on_the_socket_systemd_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hermod.toml"),
        "[smtp]\nhostname = \"mx.activated.test\"\n",
    )
    .unwrap();
    let port = common::free_port();
    let data = dir.path().join("data");
    // systemd-socket-activate listens, then starts hermod with the socket as fd 3 and
    // LISTEN_FDS / LISTEN_PID set, as systemd does for hermod.socket.
    let mut child = Command::new("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--setenv=SMTP_DB_PATH={}", data.display()))
        .arg("--setenv=HERMOD_ADMIN_LISTEN=127.0.0.1:0")
        .arg("--setenv=SMTP_LOG_LEVEL=info")
        .arg(env!("CARGO_BIN_EXE_hermod"))
        .args(["serve", "--config"])
        .arg(dir.path().join("hermod.toml"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd package, see .ci/run)");
    let logs = common::hermod::collect_output(&mut child);
    // systemd-socket-activate says when it listens; the first connection then starts
    // hermod, and waits in the socket's backlog meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("Listening on"))
    {
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = tokio::time::timeout(
        Duration::from_secs(30),
        Client::connect(format!("127.0.0.1:{port}").parse().unwrap()),
    )
    .await
    .expect("a banner from the activated hermod");
    let reply = client.cmd("EHLO client.test").await;
    assert!(reply.starts_with("250-mx.activated.test"), "{reply}");
    client.cmd("QUIT").await;
    let activated = logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("socket activation"));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert!(activated, "{:?}", logs.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_stopping_are_notified() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    std::fs::write(dir.path().join("hermod.toml"), "").unwrap();
    let mut hermod = Hermod::start_with(
        dir.path().join("hermod.toml"),
        dir.path().join("data"),
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    )
    .await;
    assert!(received(&notify, "READY=1"), "no READY=1");
    hermod.stop().await;
    assert!(received(&notify, "STOPPING=1"), "no STOPPING=1");
}

/// Whether a datagram containing `line` arrives within 10 s.
fn received(socket: &UnixDatagram, line: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buffer)
            && String::from_utf8_lossy(&buffer[..n])
                .lines()
                .any(|l| l == line)
        {
            return true;
        }
    }
    false
}
