//! The code keeps the shape STYLE.md asks for: small files with one clear job. A file
//! that grows past the limit is split by what it does before it lands.

use std::path::{Path, PathBuf};

/// Lines a source file of hermod, its actors or smtp-blaster may have.
const MAX_LINES: usize = 600;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "actors/src", "loadtest/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    let too_long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(too_long.is_empty(), "over {MAX_LINES} lines: {too_long:?}");
}

/// The floors of actors/src, top to bottom (STYLE.md, "Where new code goes"): a folder
/// may import only folders below it. Messages flow down; replies come back through
/// `Recipient<M>`.
const FLOORS: &[&str] = &[
    "inbound", "policy", "queue", "outbound", "events", "store", "protocol", "core",
];

/// Imports that run back up, as `file -> floor`: none since the shared floor `core/` and
/// the protocol's body sink (issue 21). Should one ever have to land, it is listed here
/// as a debt; a pair that no longer occurs must leave the list, so it only shrinks.
const KNOWN_UPWARD: &[&str] = &[];

/// The floors of src/ (the binary's library half), top to bottom: the commands start the
/// wiring, the wiring starts the admin server and the injection API, and everything reads
/// the configuration.
const SRC_FLOORS: &[&str] = &[
    "cli", "wiring", "admin", "inject", "logging", "config", "escape",
];

/// The floors a line of code imports from: `crate::x::...` and `crate::{x, y}`.
fn imported_floors(line: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for part in line.split("crate::").skip(1) {
        match part.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                found.extend(group.split(',').map(ident));
            }
            None => found.push(ident(part)),
        }
    }
    found
}

/// Every `file -> floor` import under `dir` (a crate's src) that runs back up `floors`
/// (code before the file's `#[cfg(test)]`, comments left out).
fn upward_imports(dir: &str, floors: &[&str]) -> std::collections::BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let rank = |floor: &str| floors.iter().position(|f| *f == floor);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut found = std::collections::BTreeSet::new();
    for path in files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let from = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let Some(from_rank) = rank(from) else {
            continue;
        };
        if rel.ends_with("/tests.rs") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in imported_floors(line) {
                if to != from && rank(&to).is_some_and(|to_rank| to_rank < from_rank) {
                    found.insert(format!("{rel} -> {to}"));
                }
            }
        }
    }
    found
}

#[test]
fn imports_in_src_only_go_down_its_floors() {
    let found = upward_imports("src", SRC_FLOORS);
    assert!(
        found.is_empty(),
        "imports that run back up src's floors ({SRC_FLOORS:?}): {found:?}"
    );
}

/// A ratchet: what `found` holds beyond the `known` debts is a new one (`what`), and a
/// debt no longer found must leave its list (`list`), so the list only shrinks.
fn only_known_debts(
    found: std::collections::BTreeSet<String>,
    known: &[&str],
    what: &str,
    list: &str,
) {
    let known: std::collections::BTreeSet<String> = known.iter().map(|s| s.to_string()).collect();
    let new: Vec<&String> = found.difference(&known).collect();
    assert!(new.is_empty(), "{what}: {new:?}");
    let paid: Vec<&String> = known.difference(&found).collect();
    assert!(
        paid.is_empty(),
        "no longer found, take them out of {list}: {paid:?}"
    );
}

#[test]
fn imports_only_go_down_the_floors_but_for_the_known_debts() {
    only_known_debts(
        upward_imports("actors/src", FLOORS),
        KNOWN_UPWARD,
        "imports that run back up the floors (move what both need to a lower floor)",
        "KNOWN_UPWARD",
    );
}

/// The modules a `mod.rs` or `lib.rs` declares (tests left out).
fn declared_modules(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))
                .or_else(|| line.strip_prefix("pub(crate) mod "))?;
            let name = rest.strip_suffix(';')?;
            (name != "tests").then(|| name.to_string())
        })
        .collect()
}

/// The map at the top of a crate's lib.rs (its `//!` lines).
fn crate_map(lib: &Path) -> String {
    std::fs::read_to_string(lib)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_module_is_named_in_its_crates_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for lib in ["src/lib.rs", "actors/src/lib.rs"] {
        let map = crate_map(&root.join(lib));
        for module in declared_modules(&root.join(lib)) {
            if !map.contains(&format!("[`{module}`]")) {
                missing.push(format!("{lib}: [`{module}`]"));
            }
        }
    }
    // The engine's map names each module of each stage in that stage's entry.
    let actors = root.join("actors/src");
    let map = crate_map(&actors.join("lib.rs"));
    for stage in declared_modules(&actors.join("lib.rs")) {
        let Some(start) = map.find(&format!("- [`{stage}`]")) else {
            continue;
        };
        let entry = &map[start + 1..];
        let entry = &entry[..entry.find("\n - [`").map_or(entry.len(), |end| end + 1)];
        let mod_rs = actors.join(&stage).join("mod.rs");
        if !mod_rs.exists() {
            continue;
        }
        for module in declared_modules(&mod_rs) {
            if !entry.contains(&format!("`{module}`")) {
                missing.push(format!("actors/src/lib.rs, entry {stage}: `{module}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules the crate map does not name: {missing:?}"
    );
}

/// Lines a function may have, signature to closing brace (STYLE.md: a function does one
/// thing; a longer one is split into named steps).
const MAX_FUNCTION_LINES: usize = 80;

/// Functions over the limit, as `file fn`: none since issue 21 split the last fifteen.
/// Should one ever have to land, it is listed here as a debt; one that is split must
/// leave the list, so it only shrinks.
const KNOWN_LONG: &[&str] = &[];

/// The name of the function a line declares, if it does.
fn declared_function(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let name: String = rest
        .strip_prefix("fn ")?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// A line's braces, with comments, strings and character literals left out.
fn brace_balance(line: &str) -> (i64, bool) {
    let code = line.split("//").next().unwrap_or("");
    let (mut balance, mut any, mut in_string, mut escaped) = (0, false, false, false);
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '\'' => {
                // A character literal ('{', '\n'); a lifetime has no closing quote.
                let ahead: String = chars.clone().take(3).collect();
                if let Some(end) = ahead.find('\'').filter(|&end| end > 0) {
                    for _ in 0..=end {
                        chars.next();
                    }
                }
            }
            '{' => {
                balance += 1;
                any = true;
            }
            '}' => balance -= 1,
            _ => {}
        }
    }
    (balance, any)
}

/// Every function under src/, actors/src and loadtest/src over the limit, as `file fn`.
fn long_functions() -> std::collections::BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = std::collections::BTreeSet::new();
    for dir in ["src", "actors/src", "loadtest/src"] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for (start, line) in lines.iter().enumerate() {
                let Some(name) = declared_function(line) else {
                    continue;
                };
                let (mut depth, mut opened) = (0, false);
                for (end, line) in lines.iter().enumerate().skip(start) {
                    let (balance, any) = brace_balance(line);
                    depth += balance;
                    opened |= any;
                    if !opened && line.trim_end().ends_with(';') {
                        break;
                    }
                    if opened && depth <= 0 {
                        if end - start + 1 > MAX_FUNCTION_LINES {
                            found.insert(format!("{rel} {name}"));
                        }
                        break;
                    }
                }
            }
        }
    }
    found
}

#[test]
fn no_function_is_over_80_lines_but_for_the_known_debts() {
    only_known_debts(
        long_functions(),
        KNOWN_LONG,
        &format!("functions over {MAX_FUNCTION_LINES} lines (split them into named steps)"),
        "KNOWN_LONG",
    );
}

/// What the protocol may not name: I/O, locks, shared counters and runtimes. It is fed
/// bytes, `now` and the inputs its driver hands it (the spool's room, the loop finding,
/// body sinks), so tests, fuzzers and benchmarks drive it over a buffer.
const NOT_IN_THE_PROTOCOL: &[&str] = &[
    "std::fs",
    "File::",
    "OpenOptions",
    "Mutex",
    "RwLock",
    "Atomic",
    "std::net::Tcp",
    "std::net::Udp",
    "tokio",
    "actix",
    "std::thread",
    "Instant::now",
    "SystemTime::now",
];

#[test]
fn the_protocol_touches_no_file_lock_clock_or_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("actors/src/protocol");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 15, "found only {} files", files.len());
    let mut found = Vec::new();
    for path in files.iter().filter(|p| !p.ends_with("tests.rs")) {
        let text = std::fs::read_to_string(path).unwrap();
        // Unit tests at the end of a file may build what they need.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for name in NOT_IN_THE_PROTOCOL
                .iter()
                .filter(|name| line.contains(*name))
            {
                found.push(format!("{}:{}: {name}", path.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the protocol reaches outside itself: {found:?}"
    );
}
