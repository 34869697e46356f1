//! What `hermod queue` prints for people (`--json` prints the API's JSON instead): the
//! listing as `mailq` does, one message with its headers (and body), the counters, the
//! result of an action and the suspended destinations. Every value a sender or a next
//! hop chose is printed with its control characters escaped.

use serde_json::Value;

/// A value of the listing on one line, its control characters escaped.
pub fn one_line(value: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::escape_controls(value, false)
}

/// A listing page as `mailq` prints its queue.
pub fn mailq(page: &serde_json::Value) -> String {
    let mut out = String::new();
    let messages = page["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        out.push_str("Mail queue is empty\n");
        return out;
    }
    out.push_str("-Queue ID-        --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    for m in &messages {
        let held = if m["held"].as_bool() == Some(true) {
            "!"
        } else {
            " "
        };
        let sender = one_line(
            m["sender"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("<>"),
        );
        out.push_str(&format!(
            "{}{held} {:>8} {:>20} {sender}\n",
            one_line(m["id"].as_str().unwrap_or("?")),
            m["size"],
            m["arrival"].as_str().unwrap_or("?"),
        ));
        for r in m["recipients"].as_array().into_iter().flatten() {
            if let Some(reply) = r["last_reply"].as_str() {
                out.push_str(&format!("        ({})\n", one_line(reply)));
            }
            out.push_str(&format!(
                "                                         {} [{}]\n",
                one_line(r["address"].as_str().unwrap_or("?")),
                one_line(r["state"].as_str().unwrap_or("?")),
            ));
        }
        out.push('\n');
    }
    if let Some(next) = page["next"].as_str() {
        out.push_str(&format!(
            "-- more: list the next page with --after {}\n",
            one_line(next)
        ));
    }
    out.push_str(&format!("-- {} message(s) listed\n", messages.len()));
    out
}

/// One message: its envelope, each recipient's state and last reply, its header section
/// and, when asked for, its body.
pub fn message(shown: &Value) -> String {
    let text = |key: &str| one_line(shown[key].as_str().unwrap_or("")).into_owned();
    let mut out = format!(
        "Queue ID: {}{}\nArrival:  {} ({} s ago)\nSize:     {} octets\nSender:   {}\nClient:   {}\n",
        text("id"),
        if shown["held"].as_bool() == Some(true) {
            " (held)"
        } else {
            ""
        },
        text("arrival"),
        shown["age_s"],
        shown["size"],
        match text("sender") {
            sender if sender.is_empty() => "<>".to_string(),
            sender => sender,
        },
        text("client"),
    );
    out.push_str("Recipients:\n");
    for r in shown["recipients"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} [{}] attempts={}",
            one_line(r["address"].as_str().unwrap_or("?")),
            one_line(r["state"].as_str().unwrap_or("?")),
            r["attempts"],
        ));
        if let Some(next) = r["next_attempt_in_s"].as_u64() {
            out.push_str(&format!(" next attempt in {next} s"));
        }
        out.push('\n');
        if let Some(reply) = r["last_reply"].as_str() {
            out.push_str(&format!("    last reply: {}\n", one_line(reply)));
        }
    }
    out.push_str("Headers:\n");
    out.push_str(&crate::escape::escape_controls(
        shown["headers"].as_str().unwrap_or("").trim_end(),
        true,
    ));
    out.push('\n');
    if let Some(body) = shown["body"].as_str() {
        out.push_str("Body:\n");
        out.push_str(&crate::escape::escape_controls(body, true));
        if shown["body_truncated"].as_bool() == Some(true) {
            out.push_str("\n-- (only the first MiB is shown)");
        }
        out.push('\n');
    }
    out
}

/// An object as `key: value` lines (nested objects as `outer.inner`), for the counters.
pub fn fields(value: &Value) -> String {
    let mut out = String::new();
    flatten("", value, &mut out);
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let key = match prefix {
                    "" => key.clone(),
                    _ => format!("{prefix}.{key}"),
                };
                flatten(&key, inner, out);
            }
        }
        Value::String(text) => out.push_str(&format!("{prefix}: {}\n", one_line(text))),
        other => out.push_str(&format!("{prefix}: {other}\n")),
    }
}

/// The result of an action on messages: which were done, busy or missing.
pub fn operated(result: &Value) -> String {
    let mut out = String::new();
    for (key, what) in [
        ("done", "done"),
        ("busy", "busy (a delivery is under way: ask again)"),
        ("missing", "not in the queue"),
    ] {
        let ids: Vec<String> = result[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(|s| one_line(s).into_owned()))
            .collect();
        if !ids.is_empty() || key == "done" {
            out.push_str(&format!("{what}: {} {}\n", ids.len(), ids.join(" ")));
        }
    }
    out
}

/// The suspended destinations, one a line.
pub fn suspensions(list: &Value) -> String {
    let rows = list["suspensions"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "No destination is suspended\n".to_string();
    }
    let mut out = String::from("-Destination-------------- --Until------------- Reason\n");
    for row in &rows {
        out.push_str(&format!(
            "{:<26} {:<21} {}\n",
            one_line(row["domain"].as_str().unwrap_or("?")),
            one_line(row["until"].as_str().unwrap_or("?")),
            one_line(row["reason"].as_str().unwrap_or("")),
        ));
    }
    out
}
