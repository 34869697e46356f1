//! The command line on the server itself, tried as a new operator would: on the defaults
//! (no admin token configured) `hermod queue flush`, `hermod maintenance on` and
//! `hermod user add` all answered 403, where Postfix's `postqueue -f` just works for
//! root. Now they go through the owner-only admin socket in the data directory, while
//! over TCP a change still needs the token, and a user other than root or hermod's own
//! is refused on the socket by its peer credentials.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::hermod::Hermod;
use common::http;

/// `hermod ARGS` for the data directory in `dir`, with `admin.listen` pointing where
/// nothing listens: only the socket can answer.
fn cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(args)
        .arg("--config")
        .arg(dir.join("hermod.toml"))
        .env("SMTP_DB_PATH", dir.join("data"))
        .env(
            "HERMOD_ADMIN_LISTEN",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn write_commands_work_on_the_machine_itself_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let hermod = Hermod::start(dir.path(), "").await;
    let socket = dir.path().join("data/admin.sock");
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let flushed = ok(&cli(dir.path(), &["queue", "flush"], ""));
    assert!(flushed.starts_with("done: 0"), "{flushed}");
    let on = ok(&cli(dir.path(), &["maintenance", "on"], ""));
    assert!(on.contains("\"maintenance\":true"), "{on}");
    ok(&cli(dir.path(), &["maintenance", "off"], ""));
    let added = ok(&cli(
        dir.path(),
        &["user", "add", "app", "--password-stdin"],
        "pw-of-app\n",
    ));
    assert!(added.contains("user app added"), "{added}");
    assert!(ok(&cli(dir.path(), &["user", "list"], "")).contains("app"));

    // Over TCP nothing changed: without a token configured, changes are refused.
    let refused = http::request(
        hermod.admin.unwrap(),
        "PUT",
        "/api/maintenance",
        None,
        Some(r#"{"on":true}"#),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Another user: the socket file keeps it out; with the file opened up, the peer
    // credentials still do.
    if !rustix::process::geteuid().is_root() {
        return;
    }
    for path in [dir.path(), &dir.path().join("data")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let as_nobody = |socket: &std::path::Path| {
        let out = Command::new(common::python3())
            .arg("-c")
            .arg(format!(
                r#"
import os, socket
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({path:?})
except PermissionError:
    print("denied")
    raise SystemExit
body = b'{{"on":true}}'
s.sendall(b"PUT /api/maintenance HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
answer = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    answer += chunk
print(answer.decode())
"#,
                path = socket.display().to_string()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert_eq!(as_nobody(&socket).trim(), "denied");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answer = as_nobody(&socket);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("the admin socket serves root and hermod's own user only, not uid 65534"),
        "{answer}"
    );
    let status = http::get(hermod.admin.unwrap(), "/api/maintenance").await;
    assert!(
        status.body.contains("\"maintenance\":false"),
        "{}",
        status.body
    );
}
