//! Session transcripts, opt-in per peer: a session with a client in
//! `log.transcript_peers` is recorded line by line (the message data left out) and shown
//! by `hermod queue show ID --transcript` and the admin API after the message is gone;
//! a session with any other client is not recorded.

mod common;

use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_peers_session_is_recorded_and_shown_by_queue_id() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let config = format!(
        "[queue]\nscan_interval = \"100ms\"\n[delivery]\nrelayhost = \"[127.0.0.1]:{}\"\n[log]\ntranscript_peers = [\"127.0.0.1\"]\n",
        sink.local_addrs()[0].port()
    );
    let h = Hermod::start(dir.path(), &config).await;
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message(
            "a@shop.test",
            &["b@dest.test"],
            b"Subject: x\r\n\r\nthe secret body\r\n",
        )
        .await,
    );
    drop(c);
    h.wait_log("session transcript written", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    // Delivered and removed: the transcript stays.
    sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    let out = h.command(dir.path(), &["queue", "show", &id, "--transcript"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("session with 127.0.0.1:"), "{text}");
    assert!(text.contains(" S: 220 "), "{text}");
    assert!(text.contains(" C: MAIL FROM:<a@shop.test>"), "{text}");
    assert!(
        text.contains(" C: DATA") && text.contains(" S: 354 "),
        "{text}"
    );
    assert!(text.contains("octets of message data]"), "{text}");
    assert!(!text.contains("the secret body"), "{text}");
    assert!(text.contains(&format!("queued as {id}")), "{text}");

    // A client that is not listed leaves no transcript.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(h.addr).await.unwrap();
    let mut other = Client::from_stream(stream).await;
    let other_id = queue_id(
        &other
            .send_message("a@shop.test", &["c@dest.test"], b"Subject: y\r\n\r\ny\r\n")
            .await,
    );
    drop(other);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = common::http::get(
        h.admin.unwrap(),
        &format!("/api/queue/{other_id}/transcript"),
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(
        answer.body.contains("log.transcript_peers"),
        "{}",
        answer.body
    );
}
