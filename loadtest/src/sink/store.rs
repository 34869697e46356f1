//! Keeping accepted messages: `<seq>.eml` and `<seq>.json` files, and the Message-ID
//! log. Runs before the 250 goes out, so a test that saw the 250 finds the files.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::session::Delivery;
use super::shared::Shared;

/// Stores and logs one accepted message; false if anything could not be written.
pub(crate) async fn deliver(shared: &Arc<Shared>, delivery: Delivery) -> bool {
    if let Some(dir) = shared.config.store.clone() {
        let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let delivery = Arc::new(delivery);
        let job = {
            let delivery = Arc::clone(&delivery);
            tokio::task::spawn_blocking(move || write_files(&dir, seq, &delivery))
        };
        if !matches!(job.await, Ok(Ok(()))) {
            return false;
        }
        return log_id(shared, delivery.message_id.as_deref());
    }
    log_id(shared, delivery.message_id.as_deref())
}

/// Appends a Message-ID to the received log, written out before the message's 250: a
/// comparison with the sender's log while the sink runs is truthful.
fn log_id(shared: &Shared, id: Option<&str>) -> bool {
    let (Some(log), Some(id)) = (&shared.received_log, id) else {
        return true;
    };
    match log.lock() {
        Ok(mut w) => writeln!(w, "{id}").and_then(|()| w.flush()).is_ok(),
        Err(_) => false,
    }
}

/// Writes the message, then its envelope: the `.json` appears last and whole (written
/// under a temporary name and renamed), since tests poll for it.
fn write_files(dir: &Path, seq: u64, d: &Delivery) -> std::io::Result<()> {
    std::fs::write(dir.join(format!("{seq}.eml")), &d.message)?;
    let envelope = serde_json::json!({
        "mail_from": d.mail_from,
        "mail_params": d.mail_params,
        "rcpt_to": d.rcpt_to,
        "helo": d.helo,
        "lmtp": d.lmtp,
        "tls": d.tls,
        "size": d.message.len(),
        "message_id": d.message_id,
    });
    let tmp = dir.join(format!("{seq}.json.tmp"));
    std::fs::write(&tmp, envelope.to_string())?;
    std::fs::rename(&tmp, dir.join(format!("{seq}.json")))
}
