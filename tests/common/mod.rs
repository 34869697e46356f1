//! Helpers shared by hermod's end-to-end tests; each test file includes them with
//! `mod common;`. Not every test file uses every helper.
#![allow(dead_code)]

pub mod certs;
pub mod client;
pub mod dkim;
pub mod dns;
pub mod hermod;
pub mod http;
pub mod otlp;
pub mod policy_server;
pub mod redis;
pub mod sink;
pub mod users;
pub mod webhook;

/// A loopback port on which nothing listens (yet): a next hop that is down until the
/// test starts a server there.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python with Debian's modules (smtplib, aiosmtpd, dkimpy): /usr/bin/python3 where a
/// pyenv or virtualenv shadows it on the PATH.
pub fn python3() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Asserts that `text` holds `before` followed by "try again in N seconds" with N at most
/// `full` and at most 10 below it: a rate limit's wait counts down from the first counted
/// command, and on a slow machine a second or more can pass before the refused one.
pub fn assert_retry_in(text: &str, before: &str, full: u64) {
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} in {text}"));
    let rest = &text[start + before.len()..];
    let seconds: u64 = rest
        .strip_prefix("try again in ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a wait in seconds after {before:?} in {text}"));
    assert!(
        (full.saturating_sub(10)..=full).contains(&seconds),
        "{seconds} s, not about {full}: {text}"
    );
    assert!(rest.contains(&format!("{seconds} seconds")), "{text}");
}
