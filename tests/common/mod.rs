//! Helpers shared by hermod's end-to-end tests; each test file includes them with
//! `mod common;`. Not every test file uses every helper.
#![allow(dead_code)]

pub mod certs;
pub mod client;
pub mod dkim;
pub mod dns;
pub mod hermod;
pub mod http;
pub mod sink;

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
