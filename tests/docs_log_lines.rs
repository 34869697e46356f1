//! Every log line the documentation quotes (`` `WARN message text key=… key2=…` ``) is one
//! hermod writes: a tracing call at that level with that message, recording every field
//! the quote names, and a field the code records as a string literal is quoted as the
//! text log writes it (`reason="relay_denied"`, not `reason=relay_denied`), so a grep copied
//! from TROUBLESHOOTING.md finds the line.

use std::path::{Path, PathBuf};

const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// One tracing call in the source: its level, its message, the text of its arguments.
#[derive(Debug)]
struct Call {
    level: String,
    message: String,
    text: String,
    place: String,
    /// For a message made elsewhere (`"{advice}"`): the format strings of its file, one
    /// of which made it.
    made_from: Vec<String>,
}

impl Call {
    /// Whether this call writes `message` (or, `cut`, a message that starts with it).
    fn writes(&self, message: &str, cut: bool) -> bool {
        if self.message == message || (cut && self.message.starts_with(message)) {
            return true;
        }
        self.made_from.iter().any(|format| fills(format, message))
    }
}

/// Whether `text` is `format` with each `{…}` filled in by something.
fn fills(format: &str, text: &str) -> bool {
    let mut fixed = Vec::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        fixed.push(&rest[..open]);
        rest = rest[open..].split_once('}').map_or("", |(_, after)| after);
    }
    fixed.push(rest);
    let Some((first, others)) = fixed.split_first() else {
        return false;
    };
    let Some(mut left) = text.strip_prefix(first) else {
        return false;
    };
    for (i, part) in others.iter().enumerate() {
        let last = i + 1 == others.len();
        if last {
            return left.ends_with(part);
        }
        match left.find(part) {
            Some(at) => left = &left[at + part.len()..],
            None => return false,
        }
    }
    left.is_empty()
}

/// One quoted line: its level, message, whether the message is cut short (`…`), its
/// fields with the values as quoted.
#[derive(Debug)]
struct Quote {
    level: String,
    message: String,
    cut: bool,
    fields: Vec<(String, String)>,
    place: String,
}

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

/// The string literals of `text`, in order (escapes kept as written).
fn literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        literal.push(match next {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => break,
                other => literal.push(other),
            }
        }
        out.push(literal);
    }
    out
}

/// The argument text of the macro call starting at `start` (just after its `(`).
fn call_text(source: &str, start: usize) -> &str {
    let (mut depth, mut in_string, mut escaped) = (1, false, false);
    for (i, c) in source[start..].char_indices() {
        if in_string {
            match (c, escaped) {
                ('\\', false) => escaped = true,
                ('"', false) => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &source[start..start + i];
                }
            }
            _ => {}
        }
    }
    &source[start..]
}

fn calls() -> Vec<Call> {
    let mut files = Vec::new();
    for dir in ["src", "actors/src"] {
        rust_files(Path::new(dir), &mut files);
    }
    let mut out = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        for level in LEVELS {
            let name = format!("{}!(", level.to_lowercase());
            let mut from = 0;
            while let Some(at) = source[from..].find(&name) {
                let at = from + at;
                from = at + name.len();
                let before = source[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let text = call_text(&source, from);
                let Some(message) = literals(text).pop() else {
                    continue;
                };
                let made_elsewhere = message.starts_with('{')
                    && message.ends_with('}')
                    && !message[1..message.len() - 1].contains(['{', '}']);
                let made_from = if made_elsewhere {
                    literals(&source)
                        .into_iter()
                        .filter(|l| l.contains('{') && l.len() > 20)
                        .collect()
                } else {
                    Vec::new()
                };
                out.push(Call {
                    level: level.to_string(),
                    message,
                    text: text.to_string(),
                    place: format!("{}:{}", file.display(), source[..at].lines().count()),
                    made_from,
                });
            }
        }
    }
    out
}

/// Splits `rest` (after the level) into the message and the fields.
fn quote(level: &str, rest: &str, place: String) -> Quote {
    let words: Vec<&str> = rest.split(' ').collect();
    let is_field = |w: &str| {
        w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
    };
    let is_cut = |w: &str| w == "…" || w == "...";
    let end = words
        .iter()
        .position(|w| is_field(w) || is_cut(w))
        .unwrap_or(words.len());
    let mut message = words[..end].join(" ");
    let mut cut = words.get(end).is_some_and(|w| is_cut(w));
    if let Some(stripped) = message
        .strip_suffix('…')
        .or_else(|| message.strip_suffix("..."))
    {
        message = stripped.trim_end().to_string();
        cut = true;
    }
    let fields = words[end..]
        .iter()
        .filter(|w| is_field(w))
        .map(|w| {
            let (k, v) = w.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    Quote {
        level: level.to_string(),
        message,
        cut,
        fields,
        place,
    }
}

fn quotes() -> Vec<Quote> {
    let mut files = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir("docs").unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            files.push(entry.path());
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Quotes may be wrapped over lines in the Markdown source.
        let joined = text.replace('\n', " ");
        for (i, piece) in joined.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let Some((level, rest)) = piece.split_once(' ') else {
                continue;
            };
            let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
            if LEVELS.contains(&level) && !rest.is_empty() {
                out.push(quote(level, &rest, file.display().to_string()));
            }
        }
    }
    out
}

/// Whether the call records `field` (as `field = …`, `field,`, `%field`, `?field` or
/// `field)`).
fn records(text: &str, field: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(field) {
        let at = from + at;
        from = at + field.len();
        let before = at.checked_sub(1).map(|i| bytes[i] as char);
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let after = text[from..].trim_start().chars().next();
        if matches!(after, Some('=' | ',' | ')')) || after.is_none() {
            return true;
        }
    }
    false
}

/// Whether the call records `field` plainly (`field = expr` or `field`), not with `%`
/// (Display) or `?` (Debug): a word-valued field recorded so is a string, and the text
/// log writes it in quotes.
fn recorded_plainly(text: &str, field: &str) -> bool {
    let compact: String = text.split_whitespace().collect();
    let displayed = compact.contains(&format!("%{field}"))
        || compact.contains(&format!("?{field}"))
        || compact.contains(&format!("{field}=%"))
        || compact.contains(&format!("{field}=?"));
    !displayed
}

#[test]
fn every_quoted_log_line_is_written_by_hermod_as_quoted() {
    let calls = calls();
    assert!(
        calls.len() > 100,
        "found only {} tracing calls",
        calls.len()
    );
    let quotes = quotes();
    assert!(
        quotes.len() > 50,
        "found only {} quoted log lines",
        quotes.len()
    );
    let mut problems = Vec::new();
    for q in &quotes {
        let same = |c: &&Call| c.level == q.level && c.writes(&q.message, q.cut);
        let matching: Vec<&Call> = calls.iter().filter(same).collect();
        if matching.is_empty() {
            let other_level: Vec<String> = calls
                .iter()
                .filter(|c| c.message == q.message)
                .map(|c| format!("{} at {}", c.level, c.place))
                .collect();
            problems.push(format!(
                "{}: `{} {}`: no {} call with this message{}",
                q.place,
                q.level,
                q.message,
                q.level,
                if other_level.is_empty() {
                    String::new()
                } else {
                    format!(" (written as {})", other_level.join(", "))
                }
            ));
            continue;
        }
        for (field, value) in &q.fields {
            if !matching.iter().any(|c| records(&c.text, field)) {
                problems.push(format!(
                    "{}: `{} {}`: no such call records {field} ({})",
                    q.place,
                    q.level,
                    q.message,
                    matching
                        .iter()
                        .map(|c| c.place.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
            let bare_word = value.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '|')
                && !matches!(value.as_str(), "true" | "false");
            let recording: Vec<&&Call> = matching
                .iter()
                .filter(|c| records(&c.text, field))
                .collect();
            if bare_word && recording.iter().all(|c| recorded_plainly(&c.text, field)) {
                problems.push(format!(
                    "{}: `{} {}`: hermod writes {field}=\"{value}\" (a string is quoted in the text log)",
                    q.place, q.level, q.message
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} quoted log lines out of step:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
