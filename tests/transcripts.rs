//! Session transcripts, opt-in per peer: a session with a client in
//! `log.transcript_peers` is recorded line by line (the message data left out) and shown
//! by `hermod queue show ID --transcript` and the admin API after the message is gone;
//! hermod's own conversation with a listed next hop goes into the same file; a session
//! with any other client is not recorded.

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
    h.wait_log("removed", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    // The next hop (127.0.0.1 too) is listed: hermod's own delivery is in the same file.
    assert!(text.contains("--- delivery by hermod ---"), "{text}");
    assert!(
        text.contains("session with next hop 127.0.0.1 [127.0.0.1:"),
        "{text}"
    );
    let delivery = text.split("--- delivery by hermod ---").nth(1).unwrap();
    assert!(
        delivery.contains(" C: MAIL FROM:<a@shop.test>") && delivery.contains(" S: 250 "),
        "{delivery}"
    );
    assert!(
        delivery.contains("octets of message data]") && !delivery.contains("the secret body"),
        "{delivery}"
    );

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
    sink::wait_stored(&dir.path().join("sink"), 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Its message went to the listed next hop: that conversation is recorded, its own
    // session is not.
    let answer = common::http::get(
        h.admin.unwrap(),
        &format!("/api/queue/{other_id}/transcript"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains("--- delivery by hermod ---"),
        "{}",
        answer.body
    );
    assert!(
        !answer.body.contains("session with 127.0.0.2"),
        "{}",
        answer.body
    );
    let never = common::http::get(h.admin.unwrap(), "/api/queue/0000000000000001/transcript").await;
    assert_eq!(never.status, 404, "{}", never.body);
    assert!(
        never.body.contains("log.transcript_peers"),
        "{}",
        never.body
    );
}
