//! Few descriptors and many destinations, tried as a small machine's bad day goes: an
//! open-files limit that leaves the outbound budget at 16 connections, and mail for 300
//! domains (each its own MX, so its own next hop). The failure this stops: a connection
//! for a new destination waited up to a second for an idle one elsewhere to be closed,
//! so 7,024 of 20,000 messages went out in 120 s. Now an idle connection is closed at
//! once when another destination needs its slot, and the small budget is named at start.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::client::Client;
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;
use common::sink;

const DOMAINS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_gives_its_slot_to_a_new_destination_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut zone = TestZone::new("dest.test").a("mx.dest.test", Ipv4Addr::LOCALHOST);
    for i in 0..DOMAINS {
        zone = zone.mx(&format!("d{i}.dest.test"), 10, "mx.dest.test");
    }
    let dns = TestDns::start(vec![zone]).await;
    let sink_dir = dir.path().join("sink");
    let sink = sink::start(&sink_dir).await;
    let config = format!(
        "[queue]\nscan_interval = \"100ms\"\n[delivery]\ndns_servers = [\"{}\"]\nmx_port = {}\nidle_timeout = \"60s\"\n",
        dns.addr,
        sink.local_addrs()[0].port()
    );
    // 1000 inbound + 256 reserved: the budget is its floor of 16.
    let h = Hermod::start_with_nofile(dir.path(), &config, 1100).await;
    let warned = h
        .wait_log(
            "the outbound connection budget is small",
            Duration::from_secs(5),
        )
        .await
        .expect("a warning about the small budget");
    assert!(
        warned.contains("16 connections for all destinations"),
        "{warned}"
    );
    assert!(warned.contains("LimitNOFILE"), "{warned}");

    let started = Instant::now();
    // Thirty clients at once, ten destinations each: intake takes well under a second.
    let senders: Vec<_> = (0..30)
        .map(|c| {
            let addr = h.addr;
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for i in (c..DOMAINS).step_by(30) {
                    let to = format!("user@d{i}.dest.test");
                    let reply = client
                        .send_message("a@sender.test", &[&to], b"Subject: x\r\n\r\nx\r\n")
                        .await;
                    assert!(reply.starts_with("250"), "{reply}");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let stored = sink::wait_stored(&sink_dir, DOMAINS, Duration::from_secs(60)).await;
    let took = started.elapsed();
    assert_eq!(
        stored.len(),
        DOMAINS,
        "{} of {DOMAINS} delivered",
        stored.len()
    );
    // Waiting up to a second per new destination, 16 at a time: about 19 s or more.
    assert!(
        took < Duration::from_secs(12),
        "{DOMAINS} destinations took {took:?}"
    );
    dns.shutdown().await;
}

/// `--validate-only` says how the descriptors are shared and how to raise a small
/// outbound share.
#[test]
fn validate_only_names_the_descriptor_split_and_how_to_raise_it() {
    let out = std::process::Command::new("prlimit")
        .args(["--nofile=1100:1100", "--"])
        .arg(env!("CARGO_BIN_EXE_hermod"))
        .arg("--validate-only")
        .env_remove("HERMOD_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("descriptors open_files=1100 inbound=1000 outbound=16"),
        "{text}"
    );
    assert!(
        text.contains("warning: the outbound connection budget is small")
            && text.contains("ulimit -n 65536"),
        "{text}"
    );
}
