//! `send` to a fleet (`HOST:PORT,HOST:PORT,...`): connections go to each server in turn,
//! and a server that refuses connections (a node that is down) is passed over, so every
//! message is still accepted by the others.

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_go_to_each_server_and_a_down_one_is_passed_over() {
    let a = sink::start(SinkConfig::default()).await.unwrap();
    let b = sink::start(SinkConfig::default()).await.unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = send::run(SendConfig {
        server: a.local_addrs()[0],
        more_servers: vec![down, b.local_addrs()[0]],
        connections: 3,
        messages: Some(90),
        per_connection: 1,
        ..SendConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(report.accepted, 90, "{report:?}");
    let (got_a, got_b) = (a.stats().received, b.stats().received);
    assert_eq!(got_a + got_b, 90);
    // Every third connection went to the node that is down and was passed over to the
    // next in turn: both live nodes took a fair share.
    assert!(got_a >= 30 && got_b >= 30, "{got_a} and {got_b}");
}
