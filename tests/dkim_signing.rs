//! DKIM signing end to end: keys made by `hermod dkim keygen` (RSA-2048 and Ed25519, two
//! selectors of one domain as during a rotation), mail from a trusted client signed
//! before the 250, relayed to the sink, and every signature verified there, byte for
//! byte, by an implementation we did not write (dkimpy, Debian's python3-dkim). Then
//! `--validate-only` checks the published key records.

mod common;

use std::process::Command;
use std::time::Duration;

use common::client::Client;
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;

#[tokio::test(flavor = "multi_thread")]
async fn signatures_made_by_hermod_verify_with_dkimpy_after_relaying() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = common::dkim::keygen(dir.path(), "shop.test", "s1", "rsa2048");
    let ed = common::dkim::keygen(dir.path(), "shop.test", "e1", "ed25519");
    assert!(rsa.starts_with("v=DKIM1; k=rsa; p=MII"), "{rsa}");
    assert!(ed.starts_with("v=DKIM1; k=ed25519; p="), "{ed}");
    let sink_dir = dir.path().join("sink");
    let sink = common::sink::start(&sink_dir).await;
    let config = format!(
        "[queue]\nlarge_message_threshold = 4096\n[delivery]\nrelayhost = \"[127.0.0.1]:{}\"\n[[dkim.keys]]\ndomain = \"shop.test\"\nselector = \"s1\"\nkey_file = \"{}\"\n[[dkim.keys]]\ndomain = \"shop.test\"\nselector = \"e1\"\nkey_file = \"{}\"\n",
        sink.local_addrs()[0].port(),
        dir.path().join("s1.key").display(),
        dir.path().join("e1.key").display()
    );
    let hermod = Hermod::start(dir.path(), &config).await;
    let mut client = Client::connect(hermod.addr).await;
    let body = "From: News <news@shop.test>\r\nTo: someone@remote.test\r\nSubject: Offers\r\nDate: Mon, 30 Nov 2026 04:00:00 +0000\r\nMessage-ID: <1@shop.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello,\r\n\r\n  spaced   line\r\n.. a dot line\r\n";
    let reply = client
        .send_message(
            "bounces@shop.test",
            &["someone@remote.test"],
            body.as_bytes(),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    // A large message: its body goes to a file (over queue.large_message_threshold) and
    // is read back to be signed.
    let large = format!(
        "From: News <news@shop.test>\r\nTo: someone@remote.test\r\nSubject: Large\r\n\r\n{}",
        "A line of a long newsletter, repeated until the message is large.\r\n".repeat(600)
    );
    let reply = client
        .send_message(
            "bounces@shop.test",
            &["someone@remote.test"],
            large.as_bytes(),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let mut stored = common::sink::wait_stored(&sink_dir, 2, Duration::from_secs(20)).await;
    stored.sort_by_key(|m| m.data.len());
    assert!(stored[1].data.len() > 40_000);
    let text = String::from_utf8_lossy(&stored[0].data);
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    // Over-signed: From appears in h= once more than in the message.
    let unfolded = text.replace("\r\n\t", "");
    let h = unfolded
        .split("h=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        h.split(':').filter(|name| *name == "From").count(),
        2,
        "{h}"
    );

    for (i, relayed) in stored.iter().enumerate() {
        let message = dir.path().join(format!("relayed{i}.eml"));
        std::fs::write(&message, &relayed.data).unwrap();
        let text = String::from_utf8_lossy(&relayed.data);
        let script = format!(
            r#"
import dkim, sys
records = {{b"s1._domainkey.shop.test.": {rsa:?}.encode(), b"e1._domainkey.shop.test.": {ed:?}.encode()}}
def dns(name, timeout=5):
    return records.get(name if name.endswith(b".") else name + b".")
message = open({path:?}, "rb").read()
d = dkim.DKIM(message)
results = [d.verify(idx=i, dnsfunc=dns) for i in range(2)]
print("verified", results)
sys.exit(0 if all(results) else 1)
"#,
            path = message.display().to_string()
        );
        let out = Command::new(common::python3())
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "dkimpy did not verify hermod's signatures: {stdout}{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("verified [True, True]"), "{stdout}");
    }

    // --validate-only looks the records up: the RSA one is published, the Ed25519
    // selector has the RSA key's record (a wrong key), and without records, neither is.
    let dns = TestDns::start(vec![
        TestZone::new("shop.test.")
            .txt("s1._domainkey.shop.test.", &rsa)
            .txt("e1._domainkey.shop.test.", &rsa),
    ])
    .await;
    let validate = |dns: &TestDns| {
        let with_dns = config.replace(
            "[delivery]\n",
            &format!("[delivery]\ndns_servers = [\"{}\"]\n", dns.addr),
        );
        std::fs::write(dir.path().join("dns.toml"), with_dns).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(["--validate-only", "--config"])
            .arg(dir.path().join("dns.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = validate(&dns);
    assert!(!out.contains("dkim.keys: shop.test (selector s1)"), "{out}");
    assert!(
        out.contains("warning: dkim.keys: shop.test (selector e1): the key published at e1._domainkey.shop.test is not this key"),
        "{out}"
    );
    dns.shutdown().await;
    let empty = TestDns::start(vec![TestZone::new("shop.test.")]).await;
    let out = validate(&empty);
    assert!(
        out.contains("warning: dkim.keys: shop.test (selector s1): no key published at s1._domainkey.shop.test"),
        "{out}"
    );
    empty.shutdown().await;

    // A key that does not parse stops --validate-only with the domain and the reason.
    std::fs::write(dir.path().join("bad.key"), "not a key").unwrap();
    std::fs::set_permissions(
        dir.path().join("bad.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let bad = config.replace("s1.key", "bad.key");
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["--validate-only", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dkim.keys: shop.test (selector s1)"), "{err}");
}
