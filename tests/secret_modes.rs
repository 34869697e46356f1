//! Secrets readable by others, tried as a careless install would leave them: a DKIM key
//! and an `admin.token_file` with mode 0644 were accepted without a word, and the spool
//! that holds the AUTH users' Argon2 hashes was created 0644 under umask 022. Now hermod
//! refuses such files (as ssh does), naming the file and its mode, and keeps its data
//! directory owner-only whatever the umask.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::hermod::Hermod;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `hermod ARGS --config FILE` with the data directory in `dir`; exit code and stderr.
fn hermod(dir: &Path, args: &[&str], config: &str) -> (Option<i32>, String) {
    let path = dir.join("modes.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(args)
        .arg("--config")
        .arg(&path)
        .env("SMTP_DB_PATH", dir.join("data"))
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", "0")
        .env("HERMOD_ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn a_dkim_key_readable_by_others_stops_validation_and_start() {
    let dir = tempfile::tempdir().unwrap();
    common::dkim::keygen(dir.path(), "shop.test", "s1", "ed25519");
    let key = dir.path().join("s1.key");
    assert_eq!(mode(&key), 0o600, "keygen writes an owner-only key");
    let config = format!(
        "[[dkim.keys]]\ndomain = \"shop.test\"\nselector = \"s1\"\nkey_file = \"{}\"\n",
        key.display()
    );
    assert_eq!(hermod(dir.path(), &["--validate-only"], &config).0, Some(0));
    set_mode(&key, 0o644);
    for args in [&["--validate-only"][..], &["serve"][..]] {
        let (code, text) = hermod(dir.path(), args, &config);
        assert_eq!(code, Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&format!(
                "{} is readable by group or others (mode 0644)",
                key.display()
            )),
            "{args:?}: {text}"
        );
        assert!(text.contains("chmod 600"), "{text}");
    }
}

#[test]
fn an_admin_token_file_readable_by_others_stops_validation_and_start() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    set_mode(&token, 0o640);
    let config = format!("[admin]\ntoken_file = \"{}\"\n", token.display());
    for args in [&["--validate-only"][..], &["serve"][..]] {
        let (code, text) = hermod(dir.path(), args, &config);
        assert_eq!(code, Some(1), "{args:?}: {text}");
        assert!(text.contains("admin.token_file"), "{text}");
        assert!(text.contains("(mode 0640)"), "{text}");
    }
    set_mode(&token, 0o600);
    assert_eq!(hermod(dir.path(), &["--validate-only"], &config).0, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_directory_and_spool_are_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An existing data directory others may enter, as `mkdir` under umask 022 makes it.
    std::fs::create_dir_all(&data).unwrap();
    set_mode(&data, 0o755);
    // The test process's own umask (022 as a rule) is what hermod inherits.
    let mut hermod = Hermod::start(dir.path(), "").await;
    assert!(
        hermod
            .wait_log(
                "the data directory could be entered by other users; made owner-only (0700)",
                std::time::Duration::from_secs(5)
            )
            .await
            .is_some()
    );
    assert_eq!(mode(&data), 0o700);
    hermod.stop().await;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let m = mode(&path);
        assert_eq!(m & 0o077, 0, "{} has mode {m:o}", path.display());
    }
    // A new one, made by `hermod user add` with hermod stopped (the user store).
    let fresh = dir.path().join("fresh");
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["user", "add", "app", "--password-stdin"])
        .env("SMTP_DB_PATH", &fresh)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "pw-for-app")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&fresh), 0o700);
    for entry in std::fs::read_dir(&fresh).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path) & 0o077, 0, "{}", path.display());
    }
}
