//! A tenant's reach, tried as a tenant would: a user limited to `bob@example.com` sends
//! through hermod (swaks, AUTH PLAIN) with `From: ceo@victim.example`, another hosted
//! domain. The attack this stops: the message went out signed `d=victim.example`,
//! aligned for DMARC. dkimpy, which we did not write, reads the `d=` of what the sink
//! received. Then the sender list's canonical forms, each relayed as what it names.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;
use common::users::{add_user, run_python};

fn config(dir: &Path, relay: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[smtp]
hostname = "localhost"
listen = [{{ address = "127.0.0.1:0", kind = "submission", plaintext_auth = true }}]
[auth]
enabled = true
[relay]
networks = []
[delivery]
relayhost = "[127.0.0.1]:{port}"
[dkim]
{extra}
[[dkim.keys]]
domain = "example.com"
selector = "s1"
key_file = "{dir}/s1.key"
[[dkim.keys]]
domain = "victim.example"
selector = "v1"
key_file = "{dir}/v1.key"
"#,
        port = relay.port(),
        dir = dir.display(),
    )
}

/// Sends one message as bob with swaks; returns swaks's transcript.
fn swaks_as_bob(port: u16, envelope_from: &str, header_from: &str) -> String {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}")])
        .args([
            "--auth",
            "PLAIN",
            "--auth-user",
            "bob",
            "--auth-password",
            "bob-pass",
        ])
        .args(["--from", envelope_from, "--to", "someone@remote.test"])
        .args(["--header", &format!("From: {header_from}")])
        .args(["--header", "Subject: quarterly numbers"])
        .args(["--body", "Please wire the money."])
        .output()
        .expect("running swaks");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The `d=` of each DKIM signature dkimpy finds in `message`, and whether it verifies
/// against the records `keygen` printed.
fn signing_domains(dir: &Path, message: &[u8], records: &[(&str, &str)]) -> String {
    let path = dir.join("received.eml");
    std::fs::write(&path, message).unwrap();
    let records: Vec<String> = records
        .iter()
        .map(|(name, txt)| format!("b{name:?}: {txt:?}.encode()"))
        .collect();
    run_python(&format!(
        r#"
import dkim
from dkim.util import parse_tag_value
records = {{{records}}}
def dns(name, timeout=5):
    return records.get(name if name.endswith(b".") else name + b".")
message = open({path:?}, "rb").read()
headers, _ = dkim.rfc822_parse(message)
sigs = [parse_tag_value(v) for (k, v) in headers if k.lower() == b"dkim-signature"]
ok = [dkim.DKIM(message).verify(idx=i, dnsfunc=dns) for i in range(len(sigs))]
print("d=" + ",".join(s[b"d"].decode() for s in sigs), "verified", ok)
"#,
        records = records.join(", "),
        path = path.display().to_string()
    ))
}

/// hermod with keys for example.com and victim.example, a sink behind it, and user bob
/// limited to `bob@example.com`; `dkim_extra` goes into `[dkim]`.
struct Tenant {
    dir: tempfile::TempDir,
    sink_dir: std::path::PathBuf,
    _sink: smtp_blaster::sink::SinkHandle,
    hermod: Hermod,
    /// The TXT records of the two keys.
    records: [String; 2],
}

async fn tenant(dkim_extra: &str) -> Tenant {
    let dir = tempfile::tempdir().unwrap();
    let own = common::dkim::keygen(dir.path(), "example.com", "s1", "ed25519");
    let victim = common::dkim::keygen(dir.path(), "victim.example", "v1", "ed25519");
    let sink_dir = dir.path().join("sink");
    let sink = common::sink::start(&sink_dir).await;
    let cfg = config(dir.path(), sink.local_addrs()[0], dkim_extra);
    std::fs::write(dir.path().join("hermod.toml"), &cfg).unwrap();
    add_user(
        dir.path(),
        None,
        "bob",
        "bob-pass",
        &["--sender", "bob@example.com"],
    );
    let hermod = Hermod::start_listening(dir.path(), &cfg, &[]).await;
    Tenant {
        dir,
        sink_dir,
        _sink: sink,
        hermod,
        records: [own, victim],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_gets_no_signature_for_a_from_it_does_not_own() {
    let t = tenant("").await;
    let (dir, sink_dir, hermod) = (&t.dir, &t.sink_dir, &t.hermod);
    let port = hermod.listener("submission").port();

    let forged = swaks_as_bob(port, "bob@example.com", "CEO <ceo@victim.example>");
    assert!(
        forged.contains(
            "550 5.7.1 From: header address <ceo@victim.example> is not owned by user bob"
        ),
        "{forged}"
    );
    assert!(
        hermod
            .wait_log(
                "From: header not owned by the authenticated user; message refused",
                Duration::from_secs(5)
            )
            .await
            .is_some()
    );
    let own = swaks_as_bob(port, "bob@example.com", "Bob <bob@example.com>");
    assert!(own.contains("250 2.0.0"), "{own}");
    let stored = common::sink::wait_stored(sink_dir, 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "the refused message was relayed");
    let domains = signing_domains(
        dir.path(),
        &stored[0].data,
        &[
            ("s1._domainkey.example.com.", &t.records[0]),
            ("v1._domainkey.victim.example.", &t.records[1]),
        ],
    );
    assert_eq!(domains.trim(), "d=example.com verified [True]");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_from_not_owned_unsigned_the_message_goes_out_without_a_signature() {
    let t = tenant("from_not_owned = \"unsigned\"").await;
    let (sink_dir, hermod) = (&t.sink_dir, &t.hermod);
    let forged = swaks_as_bob(
        hermod.listener("submission").port(),
        "bob@example.com",
        "ceo@victim.example",
    );
    assert!(forged.contains("250 2.0.0"), "{forged}");
    let stored = common::sink::wait_stored(sink_dir, 1, Duration::from_secs(20)).await;
    let text = String::from_utf8_lossy(&stored[0].data);
    assert!(!text.contains("DKIM-Signature:"), "{text}");
}

/// The canonical form of a sender: each of these names bob@example.com, and what the
/// next hop receives is the canonical address, never the route or the dot.
#[tokio::test(flavor = "multi_thread")]
async fn the_sender_lists_canonical_forms_are_relayed_as_the_canonical_address() {
    let t = tenant("").await;
    let (sink_dir, hermod) = (&t.sink_dir, &t.hermod);
    let addr = hermod.listener("submission");
    let mut client = Client::connect(addr).await;
    // AUTH PLAIN \0bob\0bob-pass
    let reply = client.cmd("AUTH PLAIN AGJvYgBib2ItcGFzcw==").await;
    assert!(reply.starts_with("235"), "{reply}");
    let body = b"From: bob@example.com\r\nSubject: s\r\n\r\nx\r\n";
    for (i, (sent, relayed)) in [
        ("BOB@EXAMPLE.COM", "BOB@example.com"),
        ("bob@example.com.", "bob@example.com"),
        ("@evil.com:bob@example.com", "bob@example.com"),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = client
            .send_message(sent, &["someone@remote.test"], body)
            .await;
        assert!(reply.starts_with("250"), "{sent}: {reply}");
        let stored = common::sink::wait_stored(sink_dir, i + 1, Duration::from_secs(20)).await;
        let senders: Vec<&str> = stored
            .iter()
            .map(|m| m.mail_from.trim_matches(['<', '>']))
            .collect();
        assert_eq!(senders.get(i), Some(&relayed), "{sent}: {senders:?}");
    }
    // Quoting makes another address as far as the list is concerned: refused.
    let reply = client.cmd("MAIL FROM:<\"bob\"@example.com>").await;
    assert!(reply.starts_with("553 5.7.1"), "{reply}");
    let reply = client.cmd("MAIL FROM:<bob@victim.example>").await;
    assert!(reply.starts_with("553 5.7.1"), "{reply}");
}
