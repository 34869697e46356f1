//! A fleet on loopback: three hermod nodes sharing one redis-server, smtp-blaster
//! spreading its load over the three, one node killed with kill -9 in the middle of the
//! run. The other two keep accepting, the killed node restarted delivers what its spool
//! held, every message any node acknowledged reaches the sink, and a per-address rate
//! limit holds across the fleet (one budget, not one per node).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::hermod::Hermod;
use common::redis::RedisServer;
use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{Delay, DelayPoint, SinkConfig};

fn node_config(name: &str, sink_port: u16, redis_port: u16) -> String {
    format!(
        "[smtp]\nhostname = \"{name}.hermod.test\"\n\
[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\n\
[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n\
[redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\n\
[rate_limit]\nmessages_per_ip = 10\nwindow = \"1h\"\nexempt = [\"127.0.0.1/32\"]\n"
    )
}

fn lines(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// One message from 127.0.0.2 (not exempt from the limit) to `node`; its final reply.
async fn from_another_address(node: SocketAddr, i: usize) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(node).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut last = String::new();
    for command in [
        String::new(),
        "EHLO other.test\r\n".into(),
        format!("MAIL FROM:<s{i}@other.test>\r\n"),
    ] {
        write.write_all(command.as_bytes()).await.unwrap();
        loop {
            last = lines.next_line().await.unwrap().unwrap_or_default();
            if last.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
    let _ = write.write_all(b"QUIT\r\n").await;
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_loses_nothing_when_a_node_dies_and_shares_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), common::free_port());
    let received_log = dir.path().join("received.log");
    // A sink slow to take each message, so the nodes' spools hold mail when one dies.
    let sink = common::sink::start_with(SinkConfig {
        store: Some(dir.path().join("sink")),
        received_log: Some(received_log.clone()),
        delays: vec![Delay {
            point: DelayPoint::Dot,
            duration: Duration::from_millis(200),
            odds: 1.0,
        }],
        ..SinkConfig::default()
    })
    .await;
    let sink_port = sink.local_addrs()[0].port();
    let mut nodes = Vec::new();
    for name in ["node1", "node2", "node3"] {
        let node_dir = dir.path().join(name);
        std::fs::create_dir_all(&node_dir).unwrap();
        nodes.push(Hermod::start(&node_dir, &node_config(name, sink_port, redis.port)).await);
    }
    let accepted_log = dir.path().join("accepted.log");
    let load = SendConfig {
        server: nodes[0].addr,
        more_servers: vec![nodes[1].addr, nodes[2].addr],
        connections: 6,
        messages: Some(600),
        per_connection: 1,
        accepted_log: Some(accepted_log.clone()),
        ..SendConfig::default()
    };
    let run = tokio::spawn(send::run(load));
    // Mid-run, node 2 dies without a chance to flush or drain.
    let started = Instant::now();
    while lines(&accepted_log).len() < 150 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[1].kill().await;
    let report = run.await.unwrap().unwrap();
    // The others kept accepting: most of the run went through after the kill.
    assert!(report.accepted >= 550, "{report:?}");
    nodes[1].restart().await;
    let recovered = nodes[1]
        .wait_log("recovered messages from the spool", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| {
            panic!(
                "node 2 found nothing to deliver after the kill\n{}",
                nodes[1].logs().join("\n")
            )
        });
    assert!(!recovered.contains("messages=0"), "{recovered}");

    // Every message a node acknowledged reaches the sink.
    let acknowledged = lines(&accepted_log);
    assert_eq!(acknowledged.len() as u64, report.accepted);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        let received = lines(&received_log);
        missing = acknowledged.difference(&received).cloned().collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged messages never arrived: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // One budget for the fleet: 10 messages an hour from 127.0.0.2, whichever node.
    let mut accepted = 0;
    let mut refused = Vec::new();
    for i in 0..30 {
        let reply = from_another_address(nodes[i % 3].addr, i).await;
        if reply.starts_with("250") {
            accepted += 1;
        } else {
            refused.push(reply);
        }
    }
    assert_eq!(accepted, 10, "{refused:?}");
    assert!(
        refused.iter().all(|r| r.starts_with("450 4.7.1")),
        "{refused:?}"
    );
}
