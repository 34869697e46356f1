//! `hermod config get [KEY...]`: the value each setting has once the file and the
//! environment are read, as Postfix's `postconf PARAM` prints it; with no key, every
//! setting. Secrets (the admin token, passwords, a Redis URL) are never printed.

use std::path::PathBuf;
use std::process::ExitCode;

/// Prints `section.key = value` for each of `keys` (all when empty); exits 1 when the
/// configuration is invalid or a key names no setting.
pub fn run(config: Option<PathBuf>, keys: &[String]) -> ExitCode {
    let config = match super::load(config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let settings = crate::config::settings(&config);
    if keys.is_empty() {
        for (key, value) in &settings {
            println!("{}", super::printable(&format!("{key} = {value}")));
        }
        return ExitCode::SUCCESS;
    }
    let mut code = ExitCode::SUCCESS;
    for wanted in keys {
        match settings.iter().find(|(key, _)| key == wanted) {
            Some((key, value)) => println!("{}", super::printable(&format!("{key} = {value}"))),
            None => {
                eprintln!(
                    "hermod: no setting {} (section.key, as `hermod config get` lists them)",
                    super::printable(wanted)
                );
                code = ExitCode::from(1);
            }
        }
    }
    code
}
