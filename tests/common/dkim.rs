//! DKIM keys for tests, made by `hermod dkim keygen` as an operator would.

use std::path::Path;
use std::process::Command;

/// Makes a key for `domain` with the CLI in `dir/SELECTOR.key`; returns the value of its
/// DNS TXT record.
pub fn keygen(dir: &Path, domain: &str, selector: &str, algorithm: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args([
            "dkim",
            "keygen",
            "--domain",
            domain,
            "--selector",
            selector,
            "--algorithm",
            algorithm,
            "--out",
        ])
        .arg(dir.join(format!("{selector}.key")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("._domainkey."))
        .unwrap_or_else(|| panic!("no TXT record in:\n{text}"));
    line.split_once("IN TXT \"")
        .unwrap()
        .1
        .trim_end_matches('"')
        .to_string()
}
