//! A relay domain whose MX is hermod itself (and no transport entry) is refused at RCPT
//! with 5.4.6, instead of being accepted and delivered to hermod again and again until
//! the Received: count stops it. A relay domain with a transport entry is not affected,
//! and a reload that adds the missing transport entry accepts the domain again.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::client::Client;
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;

fn config(dns: std::net::SocketAddr, port: u16, transport: &str) -> String {
    format!(
        r#"
[relay]
domains = ["loop.test", "inside.test"]
networks = []
[delivery]
dns_servers = ["{dns}"]
mx_port = {port}
dns_timeout = "2s"
[delivery.transport]
"inside.test" = "smtp:[127.0.0.1]:9"
{transport}
"#
    )
}

#[tokio::test]
async fn relay_domain_whose_mx_is_hermod_is_refused_at_rcpt() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![
        TestZone::new("loop.test")
            .mx("@", 10, "mx.loop.test")
            .a("mx.loop.test", Ipv4Addr::LOCALHOST),
    ])
    .await;
    // hermod delivers MX mail to the port it listens on: its own MX is itself.
    let port = common::free_port();
    let path = dir.path().join("hermod.toml");
    std::fs::write(&path, config(dns.addr, port, "")).unwrap();
    let port_text = port.to_string();
    let mut hermod = Hermod::start_with(
        path.clone(),
        dir.path().join("data"),
        &[("SMTP_PORT", port_text.as_str())],
    )
    .await;
    assert_eq!(hermod.addr.port(), port);

    let mut client = Client::connect(hermod.addr).await;
    assert!(
        client
            .cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("250")
    );
    let reply = client.cmd("RCPT TO:<user@loop.test>").await;
    assert!(
        reply.starts_with("550 5.4.6") && reply.contains("loop.test loops back to myself"),
        "{reply}"
    );
    let reply = client.cmd("RCPT TO:<user@inside.test>").await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        hermod
            .wait_log("would loop back to hermod itself", Duration::from_secs(5))
            .await
            .is_some()
    );
    client.cmd("QUIT").await;

    // The operator adds a transport entry; after the reload the domain is accepted.
    hermod.rewrite_config(&config(
        dns.addr,
        port,
        "\"loop.test\" = \"lmtp:[127.0.0.1]:24\"",
    ));
    hermod.hangup();
    assert!(
        hermod
            .wait_log("no longer loops back", Duration::from_secs(10))
            .await
            .is_some(),
        "{}",
        hermod.logs().join("\n")
    );
    let mut client = Client::connect(hermod.addr).await;
    assert!(
        client
            .cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("250")
    );
    let reply = client.cmd("RCPT TO:<user@loop.test>").await;
    assert!(reply.starts_with("250"), "{reply}");
    client.cmd("QUIT").await;
    hermod.stop().await;
}
