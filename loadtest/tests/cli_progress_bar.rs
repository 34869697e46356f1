//! `send` draws a progress bar on a terminal and nothing extra when its output is not a
//! terminal. The terminal is a real pseudo-terminal from util-linux `script`.

mod common;

use std::process::Command;

use common::cli::{BIN, Running};

/// The bar's message (`N sent, M accepted, R/s`); the summary never says " sent, ".
const BAR_MARK: &str = " sent, ";

fn send_args(addr: &str) -> Vec<String> {
    ["send", addr, "-c", "1", "-m", "40"]
        .map(String::from)
        .to_vec()
}

#[test]
fn progress_bar_shows_on_a_terminal_only() {
    // Every message held 20 ms, so the run lasts long enough to draw the bar.
    let (_sink, addr) = Running::sink(&["--quiet", "--delay", "dot:20"]);

    let command_line = std::iter::once(BIN.to_string())
        .chain(send_args(&addr))
        .collect::<Vec<_>>()
        .join(" ");
    let on_terminal = Command::new("script")
        .args(["-qec", &command_line, "/dev/null"])
        .output()
        .expect("util-linux script runs the sender on a pseudo-terminal");
    let shown = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(on_terminal.status.success(), "{shown}");
    assert!(shown.contains("accepted 40"), "{shown}");
    assert!(
        shown.contains(BAR_MARK),
        "no progress bar on a terminal: {shown}"
    );

    let piped = Command::new(BIN).args(send_args(&addr)).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr),
    );
    assert!(out.contains("accepted 40"), "{out}");
    assert!(
        !out.contains(BAR_MARK) && !err.contains(BAR_MARK),
        "{out}{err}"
    );
    assert!(err.is_empty(), "nothing extra on stderr: {err}");
}
