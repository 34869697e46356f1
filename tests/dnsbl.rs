//! DNS blocklists: the DNSBL actor's lookups against a real blocklist server we did not
//! write (Debian's rbldnsd, started here on a loopback port with its own zones), odd
//! answers and time-outs from an in-process DNS server and a silent socket, and hermod
//! refusing a listed client at RCPT (the postmaster still reachable) and at connect.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::client::Client;
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;
use hermod_actors::outbound::mx::MxResolver;
use hermod_actors::policy::dnsbl::{DnsblRules, DnsblZone, decide, look_up};
use hermod_actors::protocol::check::{CheckStage, Facts, Verdict};

/// rbldnsd serving `zones` (`(zone, type, file contents)`) on a free loopback port.
struct Rbldnsd {
    child: Child,
    addr: SocketAddr,
}

impl Rbldnsd {
    async fn start(dir: &Path, zones: &[(&str, &str, &str)]) -> Rbldnsd {
        use std::os::unix::fs::PermissionsExt;
        // It drops to an unprivileged user, which must read the zone files.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut specs = Vec::new();
        for (zone, kind, contents) in zones {
            let file = format!("{zone}.zone");
            std::fs::write(dir.join(&file), contents).unwrap();
            std::fs::set_permissions(dir.join(&file), std::fs::Permissions::from_mode(0o644))
                .unwrap();
            specs.push(format!("{zone}:{kind}:{file}"));
        }
        let port = free_udp_port();
        let child = Command::new("rbldnsd")
            .args(["-n", "-u", "nobody", "-t", "60", "-b"])
            .arg(format!("127.0.0.1/{port}"))
            .arg("-w")
            .arg(dir)
            .args(&specs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rbldnsd (Debian package rbldnsd)");
        let rbldnsd = Rbldnsd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Ready once it answers.
        let resolver = MxResolver::new(&[rbldnsd.addr], Duration::from_millis(200)).unwrap();
        let probe = rules(&[(zones[0].0, 1.0)], 1.0, true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while look_up(&probe, &resolver, "127.0.0.1".parse().unwrap())
            .await
            .failed
            .len()
            == 1
        {
            assert!(Instant::now() < deadline, "rbldnsd did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rbldnsd
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rbldnsd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rules(zones: &[(&str, f64)], threshold: f64, fail_open: bool) -> DnsblRules {
    DnsblRules {
        zones: zones
            .iter()
            .map(|(zone, weight)| DnsblZone {
                zone: zone.to_string(),
                weight: *weight,
                codes: Vec::new(),
            })
            .collect(),
        threshold,
        allow_networks: Vec::new(),
        fail_open,
    }
}

fn facts(ip: &str) -> Facts {
    let mut facts = Facts::connect(ip.parse::<IpAddr>().unwrap(), false);
    facts.stage = CheckStage::Rcpt;
    facts
}

const BL: &str = ":127.0.0.2:Listed in bl.test, see https://bl.test/lookup\n192.0.2.66\n192.0.2.67 :127.0.0.3:Spam source\n198.51.100.0/24 :127.255.255.254:Query refused\n";
const BL2: &str = ":127.0.0.2:Listed in bl2.test\n192.0.2.67\n192.0.2.68\n";
const WL: &str = ":127.0.0.2:Known good\n192.0.2.68\n";
const BL6: &str = ":127.0.0.2:IPv6 spam\n2001:db8:66::/48\n";

#[tokio::test(flavor = "multi_thread")]
async fn rbldnsd_listings_weights_error_codes_ipv6_and_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Rbldnsd::start(
        dir.path(),
        &[
            ("bl.test", "ip4set", BL),
            ("bl2.test", "ip4set", BL2),
            ("wl.test", "ip4set", WL),
            ("bl6.test", "ip6trie", BL6),
        ],
    )
    .await;
    let resolver = MxResolver::new(&[server.addr], Duration::from_secs(1)).unwrap();
    let one = rules(&[("bl.test", 1.0)], 1.0, true);

    // Listed: refused with the zone and its TXT reason.
    let verdict = decide(&one, &resolver, &Default::default(), &facts("192.0.2.66")).await;
    let Verdict::Reject(reply) = verdict else {
        panic!("a listed client passed: {verdict:?}");
    };
    assert_eq!(
        reply.to_wire(),
        "554 5.7.1 Service unavailable; client [192.0.2.66] blocked using bl.test; Listed in bl.test, see https://bl.test/lookup\r\n"
    );
    // Not listed (NXDOMAIN).
    assert_eq!(
        decide(&one, &resolver, &Default::default(), &facts("192.0.2.1")).await,
        Verdict::accept()
    );
    // 127.255.255.254 is the list's own error: never a listing.
    assert_eq!(
        decide(&one, &resolver, &Default::default(), &facts("198.51.100.7")).await,
        Verdict::accept()
    );
    // Return-code filter: 192.0.2.67 answers 127.0.0.3, which this zone does not count.
    let mut filtered = one.clone();
    filtered.zones[0].codes = vec!["127.0.0.2".parse().unwrap()];
    assert_eq!(
        decide(
            &filtered,
            &resolver,
            &Default::default(),
            &facts("192.0.2.67")
        )
        .await,
        Verdict::accept()
    );

    // Weights: two half-weight lists block together, one alone does not; a DNSWL listing
    // takes weight away.
    let halves = rules(
        &[("bl.test", 0.5), ("bl2.test", 0.5), ("wl.test", -1.0)],
        1.0,
        true,
    );
    assert!(matches!(
        decide(
            &halves,
            &resolver,
            &Default::default(),
            &facts("192.0.2.67")
        )
        .await,
        Verdict::Reject(_)
    ));
    assert_eq!(
        decide(
            &halves,
            &resolver,
            &Default::default(),
            &facts("192.0.2.66")
        )
        .await,
        Verdict::accept()
    );
    let findings = look_up(&halves, &resolver, "192.0.2.68".parse().unwrap()).await;
    assert_eq!(findings.score, -0.5);
    assert_eq!(
        decide(
            &halves,
            &resolver,
            &Default::default(),
            &facts("192.0.2.68")
        )
        .await,
        Verdict::accept()
    );

    // IPv6, by nibbles.
    let six = rules(&[("bl6.test", 1.0)], 1.0, true);
    assert!(matches!(
        decide(
            &six,
            &resolver,
            &Default::default(),
            &facts("2001:db8:66::25")
        )
        .await,
        Verdict::Reject(_)
    ));
    assert_eq!(
        decide(
            &six,
            &resolver,
            &Default::default(),
            &facts("2001:db8:67::25")
        )
        .await,
        Verdict::accept()
    );

    // Answers are cached by their TTL: with the server gone, a known listing still holds.
    server.stop();
    assert!(matches!(
        decide(&one, &resolver, &Default::default(), &facts("192.0.2.66")).await,
        Verdict::Reject(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_answers_and_time_outs() {
    // An answer outside 127.0.0.0/8 is not a listing.
    let dns = TestDns::start(vec![
        TestZone::new("odd.test.").a("5.2.0.192.odd.test.", "192.0.2.10".parse().unwrap()),
    ])
    .await;
    let resolver = MxResolver::new(&[dns.addr], Duration::from_secs(1)).unwrap();
    let odd = rules(&[("odd.test", 1.0)], 1.0, false);
    assert_eq!(
        decide(&odd, &resolver, &Default::default(), &facts("192.0.2.5")).await,
        Verdict::accept()
    );
    dns.shutdown().await;

    // A server that never answers: fail open lets the client through, fail closed
    // defers it; neither hangs.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver =
        MxResolver::new(&[silent.local_addr().unwrap()], Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    let open = rules(&[("silent.test", 1.0)], 1.0, true);
    assert_eq!(
        decide(&open, &resolver, &Default::default(), &facts("192.0.2.5")).await,
        Verdict::accept()
    );
    let closed = rules(&[("silent.test", 1.0)], 1.0, false);
    let Verdict::Defer(reply) =
        decide(&closed, &resolver, &Default::default(), &facts("192.0.2.6")).await
    else {
        panic!("a failed lookup was not deferred");
    };
    assert_eq!(
        reply.to_wire(),
        "451 4.3.0 Temporary policy failure (dnsbl did not answer), try again later\r\n"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn hermod_refuses_a_listed_client_at_rcpt_and_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let rbl_dir = dir.path().join("rbl");
    std::fs::create_dir_all(&rbl_dir).unwrap();
    let local = ":127.0.0.2:Test listing of the loopback client\n127.0.0.1\n";
    let server = Rbldnsd::start(&rbl_dir, &[("local.test", "ip4set", local)]).await;
    let sink = common::sink::start(&dir.path().join("sink")).await;
    let config = |check_at: &str| {
        format!(
            "[relay]\ndomains = [\"relay.test\"]\nnetworks = []\n[queue]\npostmaster = \"ops@relay.test\"\n[delivery]\nrelayhost = \"[127.0.0.1]:{}\"\n[dnsbl]\nenabled = true\nzones = [{{ zone = \"local.test\" }}]\ncheck_at = \"{check_at}\"\ndns_servers = [\"{}\"]\n",
            sink.local_addrs()[0].port(),
            server.addr
        )
    };
    let h1 = dir.path().join("h1");
    std::fs::create_dir_all(&h1).unwrap();
    let hermod = Hermod::start(&h1, &config("rcpt")).await;
    let mut client = Client::connect(hermod.addr).await;
    assert!(
        client
            .cmd("MAIL FROM:<a@outside.test>")
            .await
            .starts_with("250")
    );
    assert_eq!(
        client.cmd("RCPT TO:<user@relay.test>").await,
        "554 5.7.1 Service unavailable; client [127.0.0.1] blocked using local.test; Test listing of the loopback client"
    );
    // The postmaster can still be told.
    assert_eq!(
        client.cmd("RCPT TO:<postmaster>").await,
        "250 2.1.5 Recipient ok"
    );
    let line = hermod
        .wait_log("blocked by DNSBL", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        line.contains("zone=local.test") && line.contains("client=127.0.0.1"),
        "{line}"
    );

    let h2 = dir.path().join("h2");
    std::fs::create_dir_all(&h2).unwrap();
    let hermod = Hermod::start(&h2, &config("connect")).await;
    let (mut refused, greeting) = Client::connect_raw(hermod.addr).await;
    assert!(
        greeting.starts_with(
            "554 5.7.1 Service unavailable; client [127.0.0.1] blocked using local.test"
        ),
        "{greeting}"
    );
    assert!(refused.is_closed().await);
    let metrics = common::http::get(hermod.admin.unwrap(), "/metrics")
        .await
        .body;
    assert!(
        metrics.contains("dnsbl_hits_total{zone=\"local.test\"} 1"),
        "{metrics}"
    );
}
