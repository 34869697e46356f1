//! Bounce classes as an operator meets them: `hermod bounce classify` with the built-in
//! and their own rules, a broken rules file refused by --validate-only, the class in the
//! DSN a sender gets, and a rules file changed on SIGHUP applied to the next failure.

mod common;

use std::process::Command;
use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;
use common::sink;

fn hermod(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(args)
        .env_remove("HERMOD_CONFIG")
        .output()
        .expect("running hermod")
}

#[test]
fn classify_prints_the_class_and_the_rule() {
    let out = hermod(&[
        "bounce",
        "classify",
        "421-4.7.28 Our system has detected an unusual rate of unsolicited mail",
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "SpamBlock (rule google-unsolicited-rate)"
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"acme\"\nclass = \"QuotaIssues\"\ntext = ['(?i)no room']\n",
    )
    .unwrap();
    let out = hermod(&[
        "bounce",
        "classify",
        "--rules",
        rules.to_str().unwrap(),
        "550 5.1.1 No room",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "QuotaIssues (rule acme)"
    );
    let out = hermod(&["bounce", "classify", "554 Transaction failed"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Uncategorized (rule default-permanent)"
    );
}

#[test]
fn a_broken_rules_file_is_refused_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"bad-one\"\nclass = \"SpamBlock\"\ntext = ['(unclosed']\n",
    )
    .unwrap();
    let config = dir.path().join("hermod.toml");
    std::fs::write(
        &config,
        format!("[bounce]\nrules_file = \"{}\"\n", rules.display()),
    )
    .unwrap();
    let out = hermod(&[
        "serve",
        "--validate-only",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("bounce.rules_file")
            && text.contains("\"bad-one\"")
            && text.contains("text:"),
        "{text}"
    );
    let out = hermod(&[
        "bounce",
        "classify",
        "--rules",
        rules.to_str().unwrap(),
        "550 x",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dsn_names_the_class_and_a_reload_changes_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "").unwrap();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1h\"\n\
[delivery]\nrelayhost = \"[127.0.0.1]:{}\"\n[bounce]\nrules_file = \"{}\"\n",
        sink.local_addrs()[0].port(),
        rules.display()
    );
    let h = Hermod::start(dir.path(), &config).await;
    let mut c = Client::connect(h.addr).await;
    c.send_message(
        "alice@shop.test",
        &["permfail@dest.test"],
        b"Subject: x\r\n\r\nx\r\n",
    )
    .await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    let dsn = String::from_utf8_lossy(&stored[0].data).into_owned();
    assert!(
        dsn.contains("X-Hermod-Bounce-Class: InvalidRecipient\r\n"),
        "{dsn}"
    );

    // The sink's temporary failure is TransientFailure by the built-in rules...
    c.send_message(
        "alice@shop.test",
        &["tempfail1@dest.test"],
        b"Subject: y\r\n\r\ny\r\n",
    )
    .await;
    let line = h
        .wait_log("tempfail1@dest.test", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(line.contains("bounce_class=\"TransientFailure\""), "{line}");
    // ... and QuotaIssues once the operator's rule says so and hermod reloads.
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"sink-full\"\nclass = \"QuotaIssues\"\ntext = ['temporarily unavailable']\n",
    )
    .unwrap();
    h.hangup();
    assert!(
        h.wait_log("configuration reloaded", Duration::from_secs(10))
            .await
            .is_some()
    );
    c.send_message(
        "alice@shop.test",
        &["tempfail2@dest.test"],
        b"Subject: z\r\n\r\nz\r\n",
    )
    .await;
    let line = h
        .wait_log("tempfail2@dest.test", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(line.contains("bounce_class=\"QuotaIssues\""), "{line}");
}
