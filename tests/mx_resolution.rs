//! MX resolution over real DNS: `hermod_actors::outbound::mx::MxResolver` against an in-process
//! authoritative server, one behaviour per test (RFC 5321 §5.1, RFC 7505).

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::dns::{TestDns, TestZone};
use hermod_actors::outbound::mx::{MxError, MxResolver, Target};
use hermod_actors::outbound::routing::{NextHop, parse_target};

/// The zones every test serves; each test asks for the part it is about.
fn zones() -> Vec<TestZone> {
    vec![
        TestZone::new("example.test")
            // Listed worst first, so the order of the answer cannot pass by accident.
            .mx("@", 20, "mx2.example.test")
            .mx("@", 10, "mx1.example.test")
            .a("mx1.example.test", Ipv4Addr::new(127, 0, 0, 11))
            .aaaa("mx1.example.test", Ipv6Addr::LOCALHOST)
            .a("mx2.example.test", Ipv4Addr::new(127, 0, 0, 12))
            .a("implicit.example.test", Ipv4Addr::new(127, 0, 0, 13))
            .null_mx("nullmx.example.test")
            .txt("noaddr.example.test", "v=spf1 -all")
            .a("relay.example.test", Ipv4Addr::new(127, 0, 0, 14))
            .aaaa("relay.example.test", Ipv6Addr::LOCALHOST)
            .mx("partial.example.test", 10, "missing.example.test")
            .mx("partial.example.test", 20, "mx2.example.test"),
        TestZone::new("other.test").mx("@", 5, "mx2.example.test"),
    ]
}

async fn start() -> (TestDns, MxResolver) {
    let dns = TestDns::start(zones()).await;
    let resolver = MxResolver::new(&[dns.addr], Duration::from_secs(2)).expect("resolver");
    (dns, resolver)
}

fn mx(domain: &str) -> NextHop {
    NextHop::Mx {
        domain: domain.into(),
    }
}

fn target(host: &str, addr: &str, preference: u16) -> Target {
    Target {
        host: host.into(),
        addr: addr.parse::<SocketAddr>().expect("test address"),
        preference,
    }
}

#[tokio::test]
async fn mx_records_give_targets_by_preference_ipv4_first() {
    let (_dns, resolver) = start().await;
    let targets = resolver
        .targets(&mx("example.test"), 25)
        .await
        .expect("targets");
    assert_eq!(
        targets,
        vec![
            target("mx1.example.test", "127.0.0.11:25", 10),
            target("mx1.example.test", "[::1]:25", 10),
            target("mx2.example.test", "127.0.0.12:25", 20),
        ]
    );
}

#[tokio::test]
async fn mx_exchange_in_another_zone_is_followed() {
    let (_dns, resolver) = start().await;
    let targets = resolver
        .targets(&mx("other.test"), 25)
        .await
        .expect("targets");
    assert_eq!(
        targets,
        vec![target("mx2.example.test", "127.0.0.12:25", 5)]
    );
}

#[tokio::test]
async fn domain_without_mx_uses_its_own_address() {
    let (_dns, resolver) = start().await;
    let targets = resolver
        .targets(&mx("implicit.example.test"), 25)
        .await
        .expect("implicit MX");
    assert_eq!(
        targets,
        vec![target("implicit.example.test", "127.0.0.13:25", 0)]
    );
}

#[tokio::test]
async fn null_mx_is_a_permanent_error() {
    let (_dns, resolver) = start().await;
    let err = resolver
        .targets(&mx("nullmx.example.test"), 25)
        .await
        .expect_err("null MX");
    assert_eq!(
        err,
        MxError::NullMx {
            domain: "nullmx.example.test".into()
        }
    );
    assert!(err.is_permanent());
    assert_eq!(err.enhanced_status().to_string(), "5.1.10");
}

#[tokio::test]
async fn nxdomain_is_a_permanent_no_such_domain() {
    let (_dns, resolver) = start().await;
    let err = resolver
        .targets(&mx("nonexistent.example.test"), 25)
        .await
        .expect_err("NXDOMAIN");
    assert_eq!(
        err,
        MxError::NoSuchDomain {
            domain: "nonexistent.example.test".into()
        }
    );
    assert!(err.is_permanent());
}

#[tokio::test]
async fn domain_with_neither_mx_nor_address_is_temporary() {
    let (_dns, resolver) = start().await;
    let err = resolver
        .targets(&mx("noaddr.example.test"), 25)
        .await
        .expect_err("no address");
    assert_eq!(
        err,
        MxError::NoAddress {
            host: "noaddr.example.test".into()
        }
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn mx_host_without_address_is_skipped() {
    let (_dns, resolver) = start().await;
    let targets = resolver
        .targets(&mx("partial.example.test"), 25)
        .await
        .expect("the second MX");
    assert_eq!(
        targets,
        vec![target("mx2.example.test", "127.0.0.12:25", 20)]
    );
}

#[tokio::test]
async fn recipient_domain_case_and_trailing_dot_are_ignored() {
    let (_dns, resolver) = start().await;
    let targets = resolver
        .targets(&mx("Implicit.EXAMPLE.test."), 25)
        .await
        .expect("targets");
    assert_eq!(
        targets,
        vec![target("implicit.example.test", "127.0.0.13:25", 0)]
    );
}

#[tokio::test]
async fn server_refusal_is_a_temporary_dns_error() {
    // No zone covers this name, so the test server answers REFUSED.
    let (_dns, resolver) = start().await;
    let err = resolver
        .targets(&mx("unserved.zone"), 25)
        .await
        .expect_err("REFUSED");
    assert!(matches!(err, MxError::Dns { .. }), "{err:?}");
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn smtp_ip_literal_hop_needs_no_lookup() {
    let (_dns, resolver) = start().await;
    let hop = parse_target("smtp:[127.0.0.20]:2525", 25).expect("hop");
    assert_eq!(
        hop,
        NextHop::Smtp {
            host: "127.0.0.20".into(),
            port: 2525,
            mx: false
        }
    );
    let targets = resolver.targets(&hop, 25).await.expect("literal");
    assert_eq!(targets, vec![target("127.0.0.20", "127.0.0.20:2525", 0)]);
}

#[tokio::test]
async fn smtp_bracketed_host_uses_its_addresses_not_mx() {
    let (_dns, resolver) = start().await;
    let hop = parse_target("smtp:[relay.example.test]:587", 25).expect("hop");
    let targets = resolver.targets(&hop, 25).await.expect("addresses");
    assert_eq!(
        targets,
        vec![
            target("relay.example.test", "127.0.0.14:587", 0),
            target("relay.example.test", "[::1]:587", 0),
        ]
    );
}

#[tokio::test]
async fn smtp_host_hop_uses_its_mx_on_the_configured_port() {
    let (_dns, resolver) = start().await;
    let hop = parse_target("smtp:example.test:2525", 25).expect("hop");
    let targets = resolver.targets(&hop, 25).await.expect("targets");
    let addrs: Vec<String> = targets.iter().map(|t| t.addr.to_string()).collect();
    assert_eq!(addrs, ["127.0.0.11:2525", "[::1]:2525", "127.0.0.12:2525"]);
}

#[tokio::test]
async fn lmtp_hop_never_uses_mx() {
    // example.test has MX records but no address of its own: LMTP must not follow them.
    let (_dns, resolver) = start().await;
    let hop = parse_target("lmtp:example.test:24", 25).expect("hop");
    let err = resolver.targets(&hop, 25).await.expect_err("no address");
    assert_eq!(
        err,
        MxError::NoAddress {
            host: "example.test".into()
        }
    );
}

#[tokio::test]
async fn exchanges_name_the_mx_hosts_without_looking_up_their_addresses() {
    let (_dns, resolver) = start().await;
    let mut hosts = resolver
        .exchanges(&mx("partial.example.test"))
        .await
        .unwrap();
    hosts.sort();
    // One of them has no address: named all the same (shaping's site name).
    assert_eq!(hosts, ["missing.example.test", "mx2.example.test"]);
    assert_eq!(
        resolver
            .exchanges(&mx("implicit.example.test"))
            .await
            .unwrap(),
        ["implicit.example.test"]
    );
    assert_eq!(
        resolver
            .exchanges(&mx("nxdomain.example.test"))
            .await
            .unwrap(),
        ["nxdomain.example.test"]
    );
    let relay = parse_target("smtp:[relay.example.test]:2525", 25).unwrap();
    assert_eq!(
        resolver.exchanges(&relay).await.unwrap(),
        ["relay.example.test"]
    );
}
