//! `hermod diagnose [--out FILE]`: one `.tar.gz` for a bug report, made on the machine
//! where hermod runs: the version and the system, the configuration as hermod reads it
//! (secrets hidden), which environment variables set it (names only), and from the
//! running server through its admin API: health, counters, queue and next-hop state,
//! suspensions, the warnings and errors it logged lately, and every metric (its limits
//! and free space among them). What cannot be had (hermod stopped) is named in the
//! archive instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use awc::http::Method;

use crate::config::Config;

/// What the running server is asked, and the file each answer goes to.
const FROM_THE_SERVER: &[(&str, &str)] = &[
    ("/health", "health.json"),
    ("/stats", "stats.json"),
    ("/api/queue/stats", "queue-stats.json"),
    ("/api/suspensions", "suspensions.json"),
    ("/api/log/recent", "recent-warnings-and-errors.json"),
    ("/metrics", "metrics.txt"),
];

/// Runs `hermod diagnose`.
pub fn run(config_path: Option<PathBuf>, out: Option<PathBuf>) -> ExitCode {
    let config = match super::load(config_path.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "hermod-diagnose-{}-{stamp}.tar.gz",
            config.smtp.hostname.replace(['/', ' '], "_")
        ))
    });
    let files = collect(&config);
    match write_archive(&out, &files) {
        Ok(()) => {
            println!(
                "wrote {} ({} files); it holds no secret, but read it before you send it",
                out.display(),
                files.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hermod: writing {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

/// Every file of the archive: name and contents.
fn collect(config: &Config) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("version.txt".to_string(), version().into_bytes()),
        (
            "configuration.txt".to_string(),
            configuration(config).into_bytes(),
        ),
        (
            "environment.txt".to_string(),
            environment_names().into_bytes(),
        ),
        ("disk.txt".to_string(), disk(config).into_bytes()),
        (
            "limits-of-this-shell.txt".to_string(),
            std::fs::read("/proc/self/limits").unwrap_or_default(),
        ),
    ];
    let answers = actix::System::new().block_on(async {
        let mut answers = Vec::new();
        for (path, file) in FROM_THE_SERVER {
            let answer = super::admin_client::call(config, Method::GET, path, None).await;
            answers.push(((*file).to_string(), match answer {
                Ok(text) => text.into_bytes(),
                Err(e) => format!("not available: {e:#}\n(is hermod running, and its admin API reachable with this configuration?)\n").into_bytes(),
            }));
        }
        answers
    });
    files.extend(answers);
    files
}

fn version() -> String {
    format!(
        "hermod {}\n{}\n",
        env!("CARGO_PKG_VERSION"),
        std::fs::read_to_string("/proc/version")
            .unwrap_or_else(|_| std::env::consts::OS.to_string())
    )
}

/// Every setting as `hermod config get` prints it (secrets hidden).
fn configuration(config: &Config) -> String {
    crate::config::settings(config)
        .into_iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect()
}

/// The names of the variables that may set hermod's configuration; values are left out
/// (some are secrets).
fn environment_names() -> String {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            name.starts_with("HERMOD_")
                || name.starts_with("SMTP_")
                || name == "RUST_LOG"
                || name.starts_with("METRICS_")
        })
        .collect();
    names.sort();
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// Free space where the spool lives.
fn disk(config: &Config) -> String {
    let dir = &config.queue.data_dir;
    match rustix::fs::statvfs(dir) {
        Ok(stat) => format!(
            "queue.data_dir {}\nfree {} octets of {}\nqueue.min_free_space {}\n",
            dir.display(),
            stat.f_bavail * stat.f_frsize,
            stat.f_blocks * stat.f_frsize,
            config.queue.min_free_space
        ),
        Err(e) => format!("queue.data_dir {}: {e}\n", dir.display()),
    }
}

fn write_archive(out: &std::path::Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    // Owner-only: it names hosts, addresses and the server's state.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)?
    };
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (name, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("hermod-diagnose/{name}"),
            contents.as_slice(),
        )?;
    }
    tar.into_inner()?.finish()?.sync_all()
}
