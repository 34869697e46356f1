//! The sink as a local mail catcher: `smtp-blaster sink --ui` lists what Python's smtplib
//! sent, answers MailHog's JSON API as MailHog's tools read it, and its page, loaded in
//! headless chromium, shows the list, one message's headers, body, parts and raw source,
//! and a search; a message deleted through the API is gone from the list.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::cli::{BIN, Running};

const PYTHON: &str = "/usr/bin/python3";

/// A sink with its web view; the SMTP address and the view's URL.
fn catcher(dir: &std::path::Path) -> (Running, String, String) {
    let mut child = Command::new(BIN)
        .args([
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--ui",
            "127.0.0.1:0",
            "--quiet",
            "--store",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let smtp = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let ui = lines.next().unwrap().unwrap();
    let url = ui
        .strip_prefix("mail catcher on ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{ui}"))
        .to_string();
    // Keep reading, so the sink never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    (Running(child), smtp, url)
}

fn python(script: &str) -> String {
    let out = Command::new(PYTHON)
        .args(["-c", script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        script
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chromium(url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium (see .ci/run)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_catcher_shows_messages_in_a_browser_and_to_mailhog_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, smtp, url) = catcher(dir.path());
    let (host, port) = smtp.rsplit_once(':').unwrap();
    python(&format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "Ann <ann@shop.test>"; m["To"] = "bob@home.test"; m["Subject"] = "Your receipt"
m.set_content("Thanks for your order, café <script>alert(1)</script>")
m.add_alternative("<p>Thanks for your <b>order</b></p>", subtype="html")
m.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="receipt.pdf")
s = smtplib.SMTP("{host}", {port}); s.send_message(m)
p = EmailMessage(); p["From"] = "news@list.test"; p["To"] = "cy@home.test"; p["Subject"] = "Newsletter"
p.set_content("plain news")
s.send_message(p); s.quit()
"#
    ));
    // MailHog's API, read as a MailHog client reads it.
    let api = python(&format!(
        r#"
import json, urllib.request
page = json.load(urllib.request.urlopen("{url}api/v2/messages"))
assert page["total"] == 2 and page["count"] == 2, page
newest, first = page["items"]
assert newest["Content"]["Headers"]["Subject"] == ["Newsletter"], newest["Content"]["Headers"]
assert first["From"]["Mailbox"] == "ann" and first["From"]["Domain"] == "shop.test"
assert first["To"][0]["Mailbox"] == "bob"
assert first["Raw"]["From"] == "ann@shop.test" and "receipt.pdf" in first["Raw"]["Data"]
types = [p["Headers"]["Content-Type"][0] for p in first["MIME"]["Parts"]]
assert any(t.startswith("text/html") for t in types) and any(t.startswith("application/pdf") for t in types), types
found = json.load(urllib.request.urlopen("{url}api/v2/search?kind=from&query=news@list"))
assert found["total"] == 1 and found["items"][0]["ID"] == newest["ID"], found
one = json.load(urllib.request.urlopen("{url}api/v1/messages/" + first["ID"]))
assert one["Content"]["Headers"]["Subject"] == ["Your receipt"]
print(first["ID"], newest["ID"])
"#
    ));
    let (receipt, newsletter) = api.trim().split_once(' ').unwrap();

    let list = chromium(&url);
    let rows = list
        .split("id=\"messages\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        rows.contains("Your receipt") && rows.contains("Newsletter"),
        "{rows}"
    );
    assert!(
        rows.contains("ann@shop.test") && rows.contains("bob@home.test"),
        "{rows}"
    );
    assert!(list.contains("2 messages"), "{list}");

    let detail = chromium(&format!("{url}#{receipt}"));
    let shown = detail
        .split("id=\"detail\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{detail}"));
    assert!(shown.contains("id=\"subject\">Your receipt<"), "{shown}");
    // The text body, escaped (its <script> is text, not an element).
    assert!(
        shown.contains("Thanks for your order, café &lt;script&gt;"),
        "{shown}"
    );
    assert!(shown.contains("<iframe sandbox=\"\""), "{shown}");
    assert!(
        shown.contains(">application/pdf<") && shown.contains(">receipt.pdf<"),
        "{shown}"
    );
    assert!(
        shown.contains("id=\"headers\"") && shown.contains(">Ann &lt;ann@shop.test&gt;<"),
        "{shown}"
    );
    assert!(
        shown.contains("id=\"raw\"") && shown.contains("Content-Disposition: attachment"),
        "{shown}"
    );

    let searched = chromium(&format!("{url}?q=from:news"));
    let rows = searched.split("id=\"messages\"").nth(1).unwrap();
    assert!(
        rows.contains("Newsletter") && !rows.contains("Your receipt"),
        "{rows}"
    );

    python(&format!(
        r#"
import urllib.request
urllib.request.urlopen(urllib.request.Request("{url}api/v1/messages/{newsletter}", method="DELETE"))
"#
    ));
    let after = chromium(&url);
    assert!(
        after.contains("1 message<") && !after.contains("Newsletter"),
        "{after}"
    );
}
