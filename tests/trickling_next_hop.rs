//! A next hop that trickles its replies a byte at a time is cut at
//! `delivery.command_timeout` for the whole reply, not held until the job's budget.

mod common;

use std::time::{Duration, Instant};

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_next_hop_is_cut_at_the_reply_deadline() {
    let trickler = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trickler.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = trickler.accept().await {
            tokio::spawn(async move {
                // A greeting that never ends: continuation lines, one byte every 200 ms.
                for b in b"220-trickle\r\n".iter().cycle().take(1000) {
                    if socket.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nretry_interval = \"1h\"\n[delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\nconnect_timeout = \"2s\"\ncommand_timeout = \"2s\"\n"
    );
    let h = Hermod::start(dir.path(), &config).await;
    let mut c = Client::connect(h.addr).await;
    let start = Instant::now();
    let id = queue_id(
        &c.send_message(
            "a@sender.test",
            &["u@dest.test"],
            b"Subject: x\r\n\r\nx\r\n",
        )
        .await,
    );
    let line = h
        .wait_status(&id, "deferred", Duration::from_secs(20))
        .await
        .expect("deferred");
    assert!(
        line.contains("timeout waiting for reply to greeting"),
        "{line}"
    );
    let took = start.elapsed();
    // Cut at the 2 s reply deadline, well before the job's budget (12 s here).
    assert!(took < Duration::from_secs(9), "cut after {took:?}");
}
