//! The operator's documents say what the code does: every metric the code records is in
//! TROUBLESHOOTING.md's reference (and nothing else is), and every configuration key is
//! in CONFIG.md, with the code's default and the environment names that set it, and in
//! the commented default file config/hermod.toml.

use std::collections::BTreeSet;
use std::path::Path;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The process's own metrics, which metrics-process records (Prometheus' standard names)
/// at each scrape of `/metrics`.
const PROCESS_METRICS: &[&str] = &[
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// The names in `counter!("…"`, `gauge!("…"` and `histogram!("…"` calls, and the
/// process metrics.
fn recorded_metrics() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    sources(&root.join("src"), &mut texts);
    sources(&root.join("actors/src"), &mut texts);
    let mut names: BTreeSet<String> = PROCESS_METRICS.iter().map(|n| n.to_string()).collect();
    for text in texts {
        for macro_name in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = text[at + macro_name.len()..].trim_start();
                if let Some(rest) = rest.strip_prefix('"') {
                    let name: String = rest.chars().take_while(|c| *c != '"').collect();
                    names.insert(name);
                }
            }
        }
    }
    names
}

/// The metric names listed in TROUBLESHOOTING.md's metrics reference.
fn documented_metrics() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/TROUBLESHOOTING.md")).unwrap();
    let section = doc
        .split("## Reference: metrics")
        .nth(1)
        .expect("a metrics reference section");
    let section = section.split("\n## ").next().unwrap();
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|code| code.split('{').next().unwrap().to_string())
        .filter(|name| {
            name.contains('_') && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .collect()
}

#[test]
fn every_recorded_metric_is_documented_and_no_other() {
    let recorded = recorded_metrics();
    let documented = documented_metrics();
    assert!(recorded.len() > 20, "found {recorded:?}");
    let missing: Vec<_> = recorded.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "recorded but not in TROUBLESHOOTING.md: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "in TROUBLESHOOTING.md but never recorded: {stale:?}"
    );
}

#[test]
fn every_configuration_key_is_in_config_md_and_the_default_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_md = std::fs::read_to_string(root.join("docs/CONFIG.md")).unwrap();
    let default_file = std::fs::read_to_string(root.join("config/hermod.toml")).unwrap();
    let defaults = toml::Table::try_from(hermod::config::Config::default()).unwrap();
    let mut missing = Vec::new();
    for (section, keys) in &defaults {
        for key in keys.as_table().unwrap().keys() {
            if !config_md.contains(&format!("| `{key}`")) {
                missing.push(format!("CONFIG.md: {section}.{key}"));
            }
            let in_file = default_file.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{key} ="))
                    || line.starts_with(&format!("[{section}.{key}]"))
            });
            if !in_file {
                missing.push(format!("config/hermod.toml: {section}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:#?}");
}

#[test]
fn every_seed_variable_is_named_in_the_row_of_the_key_it_sets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_md = std::fs::read_to_string(root.join("docs/CONFIG.md")).unwrap();
    let mut missing = Vec::new();
    for section in hermod::config::sections() {
        for (name, key) in section.seed_env() {
            let named = config_md.lines().any(|row| {
                row.starts_with(&format!("| `{key}`")) && row.contains(&format!("`{name}`"))
            });
            if !named {
                missing.push(format!("{name} ({}.{key})", section.name));
            }
        }
    }
    assert!(missing.is_empty(), "not in CONFIG.md's rows: {missing:?}");
}

#[test]
fn every_recorded_metric_has_a_help_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    sources(&root.join("src"), &mut texts);
    sources(&root.join("actors/src"), &mut texts);
    let all = texts.concat();
    // metrics-process describes its own (Collector::describe, at install).
    let undescribed: Vec<String> = recorded_metrics()
        .into_iter()
        .filter(|name| !PROCESS_METRICS.contains(&name.as_str()))
        .filter(|name| {
            ![
                "describe_counter!(",
                "describe_gauge!(",
                "describe_histogram!(",
            ]
            .iter()
            .any(|m| {
                all.match_indices(m).any(|(at, _)| {
                    all[at + m.len()..]
                        .trim_start()
                        .starts_with(&format!("\"{name}\""))
                })
            })
        })
        .collect();
    assert!(
        undescribed.is_empty(),
        "no help text (metrics::describe_*!): {undescribed:?}"
    );
}

/// CONFIG.md's row for `key` in the part about `[section]`: its columns.
fn config_md_row(config_md: &str, section: &str, key: &str) -> Option<Vec<String>> {
    let start = config_md.find(&format!("## [{section}]"))?;
    let part = &config_md[start..];
    let part = &part[..part[3..].find("\n## ").map_or(part.len(), |end| end + 3)];
    let row = part
        .lines()
        .find(|row| row.starts_with(&format!("| `{key}` |")))?;
    Some(row.split(" | ").map(|c| c.trim().to_string()).collect())
}

/// A default as written in CONFIG.md's second column: its first code span, unquoted.
fn documented_default(column: &str) -> String {
    let code = column.split('`').nth(1).unwrap_or("");
    code.trim_matches('"').to_string()
}

/// A default as the code has it, written the way CONFIG.md writes values.
fn code_default(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn config_md_states_each_default_and_environment_name_as_the_code_has_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_md = std::fs::read_to_string(root.join("docs/CONFIG.md")).unwrap();
    let defaults = toml::Table::try_from(hermod::config::Config::default()).unwrap();
    let mut wrong = Vec::new();
    for (section, keys) in &defaults {
        for (key, value) in keys.as_table().unwrap() {
            let Some(row) = config_md_row(&config_md, section, key) else {
                wrong.push(format!("{section}.{key}: no row under ## [{section}]"));
                continue;
            };
            let (documented, code) = (documented_default(&row[1]), code_default(value));
            if !value.is_table() && documented != code {
                wrong.push(format!(
                    "{section}.{key}: CONFIG.md says `{documented}`, the code `{code}`"
                ));
            }
            // The environment column names the seeds' variable for the key where there
            // is one, else the generic `HERMOD_<SECTION>_<KEY>`; every name in it must
            // set this key.
            let generic = format!("HERMOD_{section}_{key}").to_ascii_uppercase();
            let seeds: Vec<&str> = hermod::config::sections()
                .iter()
                .filter(|s| s.name == section)
                .flat_map(|s| s.seed_env())
                .filter(|(_, k)| k == key)
                .map(|(name, _)| name)
                .collect();
            let named: Vec<&str> = row[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| {
                    n.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
                .collect();
            let expected = if seeds.is_empty() {
                vec![generic.as_str()]
            } else {
                seeds
            };
            // Applied by their own rules (CONFIG.md says how): `RUST_LOG` replaces the
            // log level when logging starts; `SMTP_HOST` and `SMTP_PORT` build the listen
            // address, applied last.
            let special = [
                ("log.level", "RUST_LOG"),
                ("smtp.listen", "SMTP_HOST"),
                ("smtp.listen", "SMTP_PORT"),
            ];
            let this = format!("{section}.{key}");
            for name in &named {
                let special = special.contains(&(this.as_str(), *name));
                if !expected.contains(name) && *name != generic && !special {
                    wrong.push(format!(
                        "{section}.{key}: CONFIG.md names `{name}`, which does not set it"
                    ));
                }
            }
            if !expected.iter().all(|e| named.contains(e)) {
                wrong.push(format!(
                    "{section}.{key}: CONFIG.md should name {expected:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "CONFIG.md out of step: {wrong:#?}");
}

#[test]
fn every_declared_key_is_a_setting() {
    // A section's key list (seed names, liveness) may only name its real keys: a typo in a
    // hand-written list would leave a seed variable or a reload silently doing nothing.
    let defaults = toml::Table::try_from(hermod::config::Config::default()).unwrap();
    let mut strangers = Vec::new();
    for section in hermod::config::sections() {
        let table = defaults[section.name].as_table().unwrap();
        for key in section.keys {
            if !table.contains_key(key.name) {
                strangers.push(format!("{}.{}", section.name, key.name));
            }
        }
    }
    assert!(
        strangers.is_empty(),
        "declared but not settings: {strangers:?}"
    );
}
