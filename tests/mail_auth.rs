//! SPF, DKIM and DMARC verification of inbound mail, end to end: hermod as an MX gateway
//! for `relay.test`, an in-process DNS server with each case's records, mail over real
//! SMTP from a client outside `relay.networks`, and the `Authentication-Results:` header
//! read at the sink hermod relays to. DKIM signatures are made by dkimpy (Debian's
//! python3-dkim), an implementation we did not write, with RSA and Ed25519 keys.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::client::Client;
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;

const HOSTNAME: &str = "mx.gateway.test";
const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// SPF records of the MAIL FROM domains, and DMARC records of the From: domains.
fn zone() -> TestZone {
    let spf_inc = (0..11)
        .map(|i| format!("include:inc{i}.test"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut zone = TestZone::new("test.")
        .txt("pass.test.", "v=spf1 ip4:127.0.0.1 -all")
        .txt("client.test.", "v=spf1 ip4:127.0.0.1 -all")
        .txt("fail.test.", "v=spf1 ip4:192.0.2.1 -all")
        .txt("softfail.test.", "v=spf1 ip4:192.0.2.1 ~all")
        .txt("neutral.test.", "v=spf1 ?all")
        .a("none.test.", LOCAL)
        .txt("broken.test.", "v=spf1 ip4:not-an-address -all")
        .txt("toomany.test.", &format!("v=spf1 {spf_inc} -all"))
        .txt("_dmarc.pass.test.", "v=DMARC1; p=reject")
        .txt("_dmarc.reject.test.", "v=DMARC1; p=reject")
        .txt("_dmarc.quarantine.test.", "v=DMARC1; p=quarantine")
        .txt("_dmarc.monitor.test.", "v=DMARC1; p=none")
        .txt("_dmarc.sp.test.", "v=DMARC1; p=none; sp=reject")
        .a("sub.sp.test.", LOCAL)
        .txt("bounce.relaxed.test.", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.relaxed.test.", "v=DMARC1; p=reject")
        .txt("bounce.strict.test.", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.strict.test.", "v=DMARC1; p=reject; aspf=s")
        .txt("_dmarc.sampled.test.", "v=DMARC1; p=reject; pct=0")
        .txt("_dmarc.signed.test.", "v=DMARC1; p=reject; adkim=s")
        .txt("_dmarc.malformed.test.", "v=DMARC1; p=sometimes");
    for i in 0..11 {
        zone = zone.txt(&format!("inc{i}.test."), "v=spf1 ip4:192.0.2.1 -all");
    }
    zone
}

fn config(sink_port: u16, dns: &TestDns, extra: &str) -> String {
    format!(
        "[smtp]\nhostname = \"{HOSTNAME}\"\n[relay]\ndomains = [\"relay.test\"]\nnetworks = []\n[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\ndns_servers = [\"{}\"]\n[mail_auth]\nverify = true\ndns_timeout = \"1s\"\n{extra}\n",
        dns.addr
    )
}

/// hermod as the MX gateway of a test: the DNS server with `zone`, a sink it relays to,
/// `[mail_auth]` with `extra` lines (and any sections after them), and a client outside
/// `relay.networks` that has said EHLO client.test.
struct Gateway {
    dns: TestDns,
    sink_dir: std::path::PathBuf,
    _sink: smtp_blaster::sink::SinkHandle,
    hermod: Hermod,
    client: Client,
}

impl Gateway {
    async fn start(dir: &Path, zone: TestZone, extra: &str) -> Gateway {
        let dns = TestDns::start(vec![zone]).await;
        let sink_dir = dir.join("sink");
        let sink = common::sink::start(&sink_dir).await;
        let port = sink.local_addrs()[0].port();
        let hermod = Hermod::start(dir, &config(port, &dns, extra)).await;
        let mut client = Client::connect(hermod.addr).await;
        assert!(client.cmd("EHLO client.test").await.starts_with("250"));
        Gateway {
            dns,
            sink_dir,
            _sink: sink,
            hermod,
            client,
        }
    }

    /// The `SPF/DKIM/DMARC verdict` line that contains `needle`.
    async fn verdict(&self, needle: &str) -> String {
        self.hermod
            .wait_log_matching(
                |l| l.contains("SPF/DKIM/DMARC verdict") && l.contains(needle),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|| panic!("no verdict line with {needle}"))
    }
}

/// A message from `from` (the From: header) whose Subject: names the case.
fn message(case: &str, from: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <user@relay.test>\r\nSubject: {case}\r\nDate: Mon, 30 Nov 2026 06:00:00 +0000\r\nMessage-ID: <{case}@test>\r\n\r\nHello from {case}.\r\n"
    )
}

/// Sends `body` from MAIL FROM `sender`; the final reply (or the MAIL reply, if refused).
async fn send(client: &mut Client, sender: &str, body: &str) -> String {
    let mail = client.cmd(&format!("MAIL FROM:<{sender}>")).await;
    if !mail.starts_with("250") {
        return mail;
    }
    let rcpt = client.cmd("RCPT TO:<user@relay.test>").await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    let data = client.cmd("DATA").await;
    assert!(data.starts_with("354"), "{data}");
    client.send(body.as_bytes()).await;
    client.send(b".\r\n").await;
    client.reply().await
}

/// The messages at the sink by Subject, each with its `Authentication-Results:` headers
/// unfolded.
async fn at_sink(dir: &Path, n: usize) -> HashMap<String, (Vec<String>, String)> {
    let stored = common::sink::wait_stored(dir, n, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), n, "messages at the sink");
    stored
        .into_iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data).replace("\r\n\t", " ");
            let head = text
                .split("\r\n\r\n")
                .next()
                .unwrap_or_default()
                .to_string();
            let subject = head
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_string();
            let results = head
                .lines()
                .filter(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("authentication-results:")
                })
                .map(str::to_string)
                .collect();
            (subject, (results, text))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn spf_results_at_mail_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(
        dir.path(),
        zone(),
        "spf_fail = \"reject\"\ntemp_error = \"defer\"",
    )
    .await;
    let client = &mut g.client;

    // fail: refused at MAIL FROM, before any data, with RFC 7372's code.
    let reply = client.cmd("MAIL FROM:<a@fail.test>").await;
    assert_eq!(
        reply.trim_end(),
        "550 5.7.23 SPF check failed: [127.0.0.1] is not allowed to send mail for fail.test"
    );
    // An unanswerable DNS question (no server serves the zone): deferred.
    let reply = client.cmd("MAIL FROM:<a@nowhere.example>").await;
    assert_eq!(
        reply.trim_end(),
        "451 4.7.24 SPF check of nowhere.example failed temporarily (DNS error), try again later"
    );
    let cases = [
        ("pass", "a@pass.test", "spf=pass"),
        ("softfail", "a@softfail.test", "spf=softfail"),
        ("neutral", "a@neutral.test", "spf=neutral"),
        ("none", "a@none.test", "spf=none"),
        ("permerror", "a@broken.test", "spf=permerror"),
        ("toomany", "a@toomany.test", "spf=permerror"),
        // The null sender: the HELO name's record decides.
        ("bounce", "", "spf=pass"),
    ];
    for (case, sender, _) in cases {
        let reply = send(client, sender, &message(case, "x@monitor.test")).await;
        assert!(reply.starts_with("250"), "{case}: {reply}");
    }
    let stored = at_sink(&g.sink_dir, cases.len()).await;
    for (case, sender, expected) in cases {
        let (results, text) = &stored[case];
        assert_eq!(results.len(), 1, "{case}: {text}");
        let header = &results[0];
        assert!(
            header.starts_with(&format!("Authentication-Results: {HOSTNAME};")),
            "{header}"
        );
        let part = |key: &str| {
            header
                .split(';')
                .find(|p| p.contains(key))
                .unwrap_or_default()
                .trim()
        };
        assert!(
            part("smtp.mailfrom=").starts_with(expected),
            "{case}: {header}"
        );
        // The HELO name is checked beside MAIL FROM, and recorded.
        assert!(
            sender.is_empty() || part("smtp.helo=client.test").starts_with("spf=pass"),
            "{case}: {header}"
        );
        if !sender.is_empty() {
            assert!(
                header.contains(&format!("smtp.mailfrom={sender}")),
                "{header}"
            );
        }
    }
    // Every verdict is in the log, in a line an operator greps for SPF, DKIM and DMARC.
    let line = g.verdict("a@toomany.test").await;
    assert!(line.contains("permerror"), "{line}");
    assert!(
        g.hermod
            .wait_log("SPF fail: sender refused", Duration::from_secs(5))
            .await
            .is_some()
    );
    g.dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dmarc_policies_and_alignment() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(dir.path(), zone(), "").await;
    let client = &mut g.client;

    // p=reject, SPF passes for another domain (not aligned), no DKIM: refused after DATA.
    let reply = send(client, "a@pass.test", &message("reject", "ceo@reject.test")).await;
    assert_eq!(
        reply.trim_end(),
        "550 5.7.1 DMARC policy of reject.test rejects this message: no SPF or DKIM pass aligned with the From: domain (spf=pass smtp.mailfrom=pass.test, dkim=none)"
    );
    // The subdomain policy (sp=reject) applies to sub.sp.test.
    let reply = send(client, "a@pass.test", &message("sp", "x@sub.sp.test")).await;
    assert!(
        reply.starts_with("550 5.7.1 DMARC policy of sub.sp.test"),
        "{reply}"
    );
    // Strict SPF alignment: bounce.strict.test is not strict.test.
    let reply = send(
        client,
        "a@bounce.strict.test",
        &message("strict", "x@strict.test"),
    )
    .await;
    assert!(
        reply.starts_with("550 5.7.1 DMARC policy of strict.test"),
        "{reply}"
    );

    // A forged Authentication-Results claiming our authserv-id is removed; another
    // server's is kept.
    let forged = format!(
        "Authentication-Results: {HOSTNAME}; dmarc=pass header.from=pass.test\r\nAuthentication-Results: elsewhere.test; spf=pass\r\n{}",
        message("aligned", "x@pass.test")
    );
    let accepted = [
        ("a@pass.test", forged),
        (
            "a@bounce.relaxed.test",
            message("relaxed", "x@relaxed.test"),
        ),
        ("a@pass.test", message("quarantine", "x@quarantine.test")),
        ("a@pass.test", message("monitor", "x@monitor.test")),
        ("a@pass.test", message("sampled", "x@sampled.test")),
        ("a@pass.test", message("malformed", "x@malformed.test")),
    ];
    for (sender, body) in &accepted {
        let reply = send(client, sender, body).await;
        assert!(reply.starts_with("250"), "{body}: {reply}");
    }
    let stored = at_sink(&g.sink_dir, accepted.len()).await;
    let ours = |case: &str| -> String {
        let (results, text) = &stored[case];
        let ours: Vec<&String> = results
            .iter()
            .filter(|h| h.starts_with(&format!("Authentication-Results: {HOSTNAME};")))
            .collect();
        assert_eq!(ours.len(), 1, "{case}: {text}");
        ours[0].clone()
    };
    let aligned = ours("aligned");
    assert!(
        aligned.contains("dmarc=pass header.from=pass.test"),
        "{aligned}"
    );
    let (results, _) = &stored["aligned"];
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results
            .iter()
            .any(|h| h.contains("elsewhere.test; spf=pass"))
    );
    // Relaxed alignment: bounce.relaxed.test is under relaxed.test.
    assert!(
        ours("relaxed").contains("dmarc=pass"),
        "{}",
        ours("relaxed")
    );
    // p=quarantine: delivered with the quarantine header.
    let quarantine = ours("quarantine");
    assert!(quarantine.contains("dmarc=fail"), "{quarantine}");
    assert!(
        quarantine.contains("policy.dmarc=quarantine"),
        "{quarantine}"
    );
    assert!(
        stored["quarantine"]
            .1
            .contains("\r\nX-Hermod-Quarantine: DMARC\r\n")
    );
    // p=none: only recorded.
    let monitor = ours("monitor");
    assert!(monitor.contains("dmarc=fail") && monitor.contains("policy.dmarc=none"));
    assert!(!stored["monitor"].1.contains("X-Hermod-Quarantine"));
    // A record that does not parse is no policy: accepted, recorded.
    let malformed = ours("malformed");
    assert!(!malformed.contains("dmarc=pass"), "{malformed}");
    assert!(!stored["malformed"].1.contains("X-Hermod-Quarantine"));
    // pct=0: a p=reject domain's failure is quarantined instead (RFC 7489 §6.6.4).
    assert!(stored["sampled"].1.contains("X-Hermod-Quarantine: DMARC"));
    let line = g.verdict("reject.test").await;
    assert!(line.contains("reject"), "{line}");
    g.dns.shutdown().await;
}

/// Signs each `(case, message, selector, tamper)` with dkimpy (a tampered one has
/// its signed Subject: changed after signing): RSA keys come from
/// `hermod dkim keygen`, the Ed25519 key from PyNaCl. Returns the signed messages by case
/// and the Ed25519 public key's TXT record.
fn dkimpy_sign(
    dir: &Path,
    cases: &[(&str, String, &str, bool)],
) -> (HashMap<String, String>, String) {
    let mut script = String::from(
        "import dkim, base64, nacl.signing, sys\nsk = nacl.signing.SigningKey.generate()\nkeys = {'s1': (open(sys.argv[1], 'rb').read(), b'rsa-sha256'), 'e1': (base64.b64encode(bytes(sk)), b'ed25519-sha256')}\nprint('ed25519 v=DKIM1; k=ed25519; p=' + base64.b64encode(bytes(sk.verify_key)).decode())\n",
    );
    for (case, body, selector, tamper) in cases {
        script.push_str(&format!(
            "m = {body:?}.encode()\nkey, alg = keys['{selector}']\ns = dkim.sign(m, b'{selector}', b'signed.test', key, signature_algorithm=alg, include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])\nm = s + m\nif {tamper}: m = m.replace(b'Subject: tampered', b'Subject: Tampered')\nopen({path:?}, 'wb').write(m)\n",
            tamper = if *tamper { "True" } else { "False" },
            path = dir.join(format!("{case}.eml")).display().to_string(),
        ));
    }
    let out = Command::new(common::python3())
        .arg("-c")
        .arg(&script)
        .arg(dir.join("s1.key"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dkimpy: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ed25519 "))
        .unwrap()
        .to_string();
    let signed = cases
        .iter()
        .map(|(case, ..)| {
            let text = std::fs::read_to_string(dir.join(format!("{case}.eml"))).unwrap();
            (case.to_string(), text)
        })
        .collect();
    (signed, ed)
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_signed_by_dkimpy_verifies_in_hermod() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = common::dkim::keygen(dir.path(), "signed.test", "s1", "rsa2048");
    let from = "news@signed.test";
    let cases = [
        ("rsa", message("rsa", from), "s1", false),
        ("ed25519", message("ed25519", from), "e1", false),
        ("tampered", message("tampered", from), "s1", true),
    ];
    let (signed, ed) = dkimpy_sign(dir.path(), &cases);
    let zone = zone()
        .txt("s1._domainkey.signed.test.", &rsa)
        .txt("e1._domainkey.signed.test.", &ed);
    let mut g = Gateway::start(dir.path(), zone, "").await;
    let client = &mut g.client;

    // SPF passes for pass.test, which is not aligned with signed.test: DMARC rests on
    // DKIM alone (adkim=s, p=reject).
    for case in ["rsa", "ed25519"] {
        let reply = send(client, "a@pass.test", &signed[case]).await;
        assert!(reply.starts_with("250"), "{case}: {reply}");
    }
    let reply = send(client, "a@pass.test", &signed["tampered"]).await;
    assert!(
        reply.starts_with("550 5.7.1 DMARC policy of signed.test rejects this message"),
        "{reply}"
    );
    assert!(reply.contains("dkim=fail"), "{reply}");
    let stored = at_sink(&g.sink_dir, 2).await;
    for (case, algorithm) in [("rsa", "s1"), ("ed25519", "e1")] {
        let (results, text) = &stored[case];
        assert_eq!(results.len(), 1, "{text}");
        let header = &results[0];
        assert!(
            header.contains(&format!(
                "dkim=pass header.d=signed.test header.s={algorithm}"
            )) || header.contains(&format!(
                "dkim=pass header.i=@signed.test header.s={algorithm}"
            )),
            "{case}: {header}"
        );
        assert!(
            header.contains("dmarc=pass header.from=signed.test"),
            "{header}"
        );
    }
    let line = g.verdict("dkim_failure").await;
    assert!(line.contains("d=signed.test s=s1"), "{line}");
    g.dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_on_hold_until_released_and_dns_failures_deferred() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(
        dir.path(),
        zone(),
        "dmarc_quarantine = \"hold\"\ndmarc_reject = \"quarantine\"\n[admin]\ntoken = \"t0ken\"",
    )
    .await;
    let client = &mut g.client;
    // The From: domain's DMARC record cannot be looked up (no server serves it).
    let reply = send(client, "a@pass.test", &message("dns", "x@nowhere.example")).await;
    assert_eq!(
        reply.trim_end(),
        "451 4.7.1 DMARC check of nowhere.example failed temporarily (DNS error), try again later"
    );
    // p=reject, but the operator quarantines instead; quarantine here means hold.
    let reply = send(client, "a@pass.test", &message("held", "ceo@reject.test")).await;
    let id = common::client::queue_id(&reply);
    let list = |state: &str| {
        let out = g
            .hermod
            .command(dir.path(), &["queue", "list", "--json", "--state", state]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(list("held").contains(&id), "{}", list("held"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        common::sink::stored(&g.sink_dir).is_empty(),
        "a held message was delivered"
    );
    let out = g.hermod.command(dir.path(), &["queue", "release", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = at_sink(&g.sink_dir, 1).await;
    let (results, _) = &stored["held"];
    assert!(results[0].contains("dmarc=fail"), "{results:?}");
    assert!(results[0].contains("policy.dmarc=reject"), "{results:?}");
    g.dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_messages_are_verified_and_forged_headers_removed_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = common::dkim::keygen(dir.path(), "signed.test", "s1", "rsa2048");
    // Over queue.large_message_threshold, so its body is received into a file; a forged
    // header claiming our authserv-id on top.
    let large = format!(
        "Authentication-Results: {HOSTNAME}; dkim=pass header.d=bank.test\r\n{}{}",
        message("large", "news@signed.test"),
        "A line of a long newsletter, repeated until the message is large.\r\n".repeat(600)
    );
    let (signed, _) = dkimpy_sign(dir.path(), &[("large", large, "s1", false)]);
    let zone = zone().txt("s1._domainkey.signed.test.", &rsa);
    let mut g = Gateway::start(dir.path(), zone, "[queue]\nlarge_message_threshold = 4096").await;
    let client = &mut g.client;
    let reply = send(client, "a@pass.test", &signed["large"]).await;
    assert!(reply.starts_with("250"), "{reply}");
    let stored = at_sink(&g.sink_dir, 1).await;
    let (results, text) = &stored["large"];
    assert!(text.len() > 40_000);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(
        results[0].contains("dkim=pass header.i=@signed.test header.s=s1")
            || results[0].contains("dkim=pass header.d=signed.test header.s=s1"),
        "{results:?}"
    );
    assert!(!text.contains("bank.test"), "the forged header was kept");
    // Nothing is left behind in incoming/.
    let incoming: Vec<_> = std::fs::read_dir(dir.path().join("data/incoming"))
        .unwrap()
        .collect();
    assert!(incoming.is_empty(), "{incoming:?}");
    g.dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_server_that_never_answers_defers_or_is_recorded_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink_dir = dir.path().join("sink");
    let sink = common::sink::start(&sink_dir).await;
    let port = sink.local_addrs()[0].port();
    let config = |temp_error: &str| {
        format!(
            "[smtp]\nhostname = \"{HOSTNAME}\"\n[relay]\ndomains = [\"relay.test\"]\nnetworks = []\n[delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\ndns_servers = [\"{}\"]\n[mail_auth]\nverify = true\ndns_timeout = \"300ms\"\ntemp_error = \"{temp_error}\"\n",
            silent.local_addr().unwrap()
        )
    };
    let mut hermod = Hermod::start(dir.path(), &config("defer")).await;
    let mut client = Client::connect(hermod.addr).await;
    assert!(client.cmd("EHLO client.test").await.starts_with("250"));
    let started = std::time::Instant::now();
    let reply = client.cmd("MAIL FROM:<a@pass.test>").await;
    assert_eq!(
        reply.trim_end(),
        "451 4.7.24 SPF check of pass.test failed temporarily (DNS error), try again later"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    hermod.stop().await;

    // Accepted and recorded instead.
    let hermod = Hermod::start(dir.path(), &config("accept")).await;
    let mut client = Client::connect(hermod.addr).await;
    assert!(client.cmd("EHLO client.test").await.starts_with("250"));
    let started = std::time::Instant::now();
    let reply = send(
        &mut client,
        "a@pass.test",
        &message("silent", "x@pass.test"),
    )
    .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let stored = at_sink(&sink_dir, 1).await;
    let (results, _) = &stored["silent"];
    assert!(results[0].contains("spf=temperror"), "{results:?}");
    assert!(results[0].contains("dmarc=temperror"), "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_transport_and_several_from_domains() {
    let dir = tempfile::tempdir().unwrap();
    let quarantine_dir = dir.path().join("quarantine");
    let quarantine = common::sink::start(&quarantine_dir).await;
    let extra = format!(
        "dmarc_quarantine = \"transport\"\nquarantine_transport = \"smtp:[127.0.0.1]:{}\"",
        quarantine.local_addrs()[0].port()
    );
    let mut g = Gateway::start(dir.path(), zone(), &extra).await;
    let client = &mut g.client;
    let reply = send(
        client,
        "a@pass.test",
        &message("quarantined", "x@quarantine.test"),
    )
    .await;
    assert!(reply.starts_with("250"), "{reply}");
    let reply = send(client, "a@pass.test", &message("passed", "x@pass.test")).await;
    assert!(reply.starts_with("250"), "{reply}");
    // Two From: domains, one of them with p=reject.
    let two = message("two", "x@pass.test").replace(
        "From: <x@pass.test>",
        "From: <ceo@reject.test>, <x@pass.test>",
    );
    let reply = send(client, "a@pass.test", &two).await;
    assert_eq!(
        reply.trim_end(),
        "550 5.7.1 Message refused: its From: header names several domains (pass.test,reject.test), which DMARC cannot check"
    );
    let held = at_sink(&quarantine_dir, 1).await;
    assert!(held["quarantined"].0[0].contains("dmarc=fail"), "{held:?}");
    let delivered = at_sink(&g.sink_dir, 1).await;
    assert!(delivered.contains_key("passed"), "{delivered:?}");
    g.dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_clients_large_messages_lose_only_the_forged_headers() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let sink_dir = dir.path().join("sink");
    let sink = common::sink::start(&sink_dir).await;
    // The client is in relay.networks: its mail is not verified, but a header claiming
    // our authserv-id is still not its to add. Large, so only the header section of the
    // file is scanned, and the file is written again only for the forged one.
    let config = format!(
        "[smtp]\nhostname = \"{HOSTNAME}\"\n[relay]\ndomains = [\"relay.test\"]\nnetworks = [\"127.0.0.0/8\"]\n\
         [delivery]\nrelayhost = \"[127.0.0.1]:{}\"\ndns_servers = [\"{}\"]\n[mail_auth]\nverify = true\n\
         [queue]\nlarge_message_threshold = 4096\n",
        sink.local_addrs()[0].port(),
        dns.addr
    );
    let hermod = Hermod::start(dir.path(), &config).await;
    let mut client = Client::connect(hermod.addr).await;
    assert!(client.cmd("EHLO client.test").await.starts_with("250"));
    let body = "A line of a long report, repeated until the message is large.\r\n".repeat(600);
    let forged = format!(
        "Authentication-Results: {HOSTNAME}; dkim=pass header.d=bank.test\r\n{}{body}",
        message("forged", "x@pass.test")
    );
    let other = format!(
        "Authentication-Results: elsewhere.test; spf=pass\r\n{}{body}",
        message("other", "x@pass.test")
    );
    for text in [&forged, &other] {
        let reply = send(&mut client, "a@pass.test", text).await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    let stored = at_sink(&sink_dir, 2).await;
    let (results, text) = &stored["forged"];
    assert!(results.is_empty(), "{results:?}");
    assert!(text.len() > 30_000 && !text.contains("bank.test"));
    let (results, text) = &stored["other"];
    assert_eq!(
        results,
        &["Authentication-Results: elsewhere.test; spf=pass"],
        "{text}"
    );
    dns.shutdown().await;
}
