//! Per-peer debug logging (`log.debug_peers`, as Postfix's `debug_peer_list`): with the
//! level at info, a listed client's sessions are logged at DEBUG and another client's
//! are not; a reload (SIGHUP) moves the DEBUG lines to the newly listed client at once.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::hermod::Hermod;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;

fn config(peer: &str) -> String {
    format!("[log]\nlevel = \"info\"\ndebug_peers = [\"{peer}\"]\n")
}

/// A whole session from `from` (a loopback address of this machine): greeting, EHLO, QUIT.
async fn session_from(from: &str, server: SocketAddr) -> SocketAddr {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = lines.next_line().await.unwrap().unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");
    write
        .write_all(b"EHLO peer.test\r\nQUIT\r\n")
        .await
        .unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("221") {
            break;
        }
    }
    local
}

/// The DEBUG lines that name `client`.
fn debug_lines(hermod: &Hermod, client: SocketAddr) -> Vec<String> {
    hermod
        .logs()
        .into_iter()
        .filter(|l| l.contains("DEBUG") && l.contains(&client.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_client_is_logged_at_debug_and_a_reload_moves_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut hermod = Hermod::start(dir.path(), &config("127.0.0.2")).await;

    let listed = session_from("127.0.0.2", hermod.addr).await;
    let other = session_from("127.0.0.3", hermod.addr).await;
    hermod
        .wait_log_matching(
            |l| l.contains("DEBUG") && l.contains(&listed.to_string()),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|| panic!("no DEBUG line for {listed}:\n{}", hermod.logs().join("\n")));
    // The other session has ended too (its end is logged at DEBUG, and so filtered).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        debug_lines(&hermod, other).is_empty(),
        "{:?}",
        debug_lines(&hermod, other)
    );

    hermod.rewrite_config(&config("127.0.0.0/30"));
    hermod.hangup();
    hermod
        .wait_log("configuration reloaded", Duration::from_secs(10))
        .await
        .expect("a reload");
    let now_listed = session_from("127.0.0.3", hermod.addr).await;
    let no_longer = session_from("127.0.0.5", hermod.addr).await;
    hermod
        .wait_log_matching(
            |l| l.contains("DEBUG") && l.contains(&now_listed.to_string()),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "no DEBUG line for {now_listed}:\n{}",
                hermod.logs().join("\n")
            )
        });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(debug_lines(&hermod, no_longer).is_empty());
    // Nothing else went to DEBUG: every DEBUG line names a listed client.
    for line in hermod.logs().iter().filter(|l| l.contains("DEBUG")) {
        assert!(
            line.contains(&listed.to_string()) || line.contains(&now_listed.to_string()),
            "{line}"
        );
    }
    hermod.stop().await;
}
