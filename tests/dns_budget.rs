//! A dead DNS, tried as a bad day goes: a DNS server that receives every query and never
//! answers, with DNSBL at RCPT and SPF, DKIM and DMARC on. The failures this stops: a
//! failed DNSBL lookup was not remembered, so each recipient waited again (5 + 5 + 4 s
//! for three; minutes for a hundred), and SPF at MAIL and DMARC at the end of DATA waited
//! 15 s each. Now each transaction has one DNS time budget (`smtp.dns_budget`, 5 s) across
//! its policies, and a failed lookup is remembered per list and address.

mod common;

use std::time::{Duration, Instant};

use common::client::Client;
use common::hermod::Hermod;

/// A UDP "DNS server" that takes every query and never answers.
fn black_hole() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn config(dns: std::net::SocketAddr, sink_port: u16, mail_auth: bool) -> String {
    let mail_auth = if mail_auth {
        "[mail_auth]\nverify = true\ntemp_error = \"accept\"\n"
    } else {
        ""
    };
    format!(
        "[relay]\ndomains = [\"relay.test\"]\nnetworks = []\n[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\ndns_servers = [\"{dns}\"]\n\
         [dnsbl]\nenabled = true\nzones = [{{ zone = \"bl.test\" }}, {{ zone = \"other-bl.test\" }}]\ncheck_at = \"rcpt\"\ndns_servers = [\"{dns}\"]\n{mail_auth}"
    )
}

/// hermod behind a dead DNS (with SPF, DKIM and DMARC too when `mail_auth`), relaying to
/// a sink; the directory, the dead server and the sink live as long as the test.
async fn gateway(
    mail_auth: bool,
) -> (
    tempfile::TempDir,
    std::net::UdpSocket,
    smtp_blaster::sink::SinkHandle,
    Hermod,
) {
    let dir = tempfile::tempdir().unwrap();
    let dns = black_hole();
    let sink = common::sink::start(&dir.path().join("sink")).await;
    let config = config(
        dns.local_addr().unwrap(),
        sink.local_addrs()[0].port(),
        mail_auth,
    );
    let hermod = Hermod::start(dir.path(), &config).await;
    (dir, dns, sink, hermod)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_twenty_recipient_message_is_answered_within_seconds_when_dns_is_dead() {
    let (_dir, _dns, _sink, hermod) = gateway(true).await;
    let connected = Instant::now();
    let mut client = Client::connect(hermod.addr).await;
    let recipients: Vec<String> = (0..20).map(|i| format!("u{i}@relay.test")).collect();
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let reply = client
        .send_message(
            "someone@sender.test",
            &recipients,
            b"From: someone@sender.test\r\nSubject: s\r\n\r\nx\r\n",
        )
        .await;
    let took = connected.elapsed();
    assert!(reply.starts_with("250"), "{reply}");
    assert!(took < Duration::from_secs(15), "final reply after {took:?}");
    assert!(
        hermod
            .wait_log(
                "DNS time budget (smtp.dns_budget) is spent",
                Duration::from_secs(5)
            )
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_dnsbl_lookup_is_remembered_for_the_next_connection() {
    let (_dir, _dns, _sink, hermod) = gateway(false).await;
    let mut first = Client::connect(hermod.addr).await;
    assert!(
        first
            .cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("250")
    );
    let started = Instant::now();
    assert!(
        first
            .cmd("RCPT TO:<u1@relay.test>")
            .await
            .starts_with("250")
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "no wait for a dead DNS? {waited:?}"
    );
    hermod
        .wait_log("DNSBL lookup failed", Duration::from_secs(5))
        .await
        .expect("the failure is logged");
    // Another connection from the same address, with a budget of its own: the lists
    // that failed are not asked again for a while.
    let mut second = Client::connect(hermod.addr).await;
    assert!(
        second
            .cmd("MAIL FROM:<b@sender.test>")
            .await
            .starts_with("250")
    );
    let started = Instant::now();
    for i in 0..5 {
        let reply = second.cmd(&format!("RCPT TO:<v{i}@relay.test>")).await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "remembered failures were asked again: {:?}",
        started.elapsed()
    );
}
