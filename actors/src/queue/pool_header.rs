//! `X-Hermod-Pool:`: an application that submits mail (AUTH, or as an injection tenant)
//! names the egress pool a message leaves from in this header field. The intake takes
//! the field out of every message, whoever sent it, before the message is stored (so it
//! is never sent on, and never signed), and keeps the pool in the envelope when the
//! sender was authenticated and the pool exists.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;

use crate::outbound::egress::Egress;
use crate::protocol::body_sink::IncomingBody;
use crate::store::spool::Envelope;

/// The field's name.
pub const HEADER: &str = "X-Hermod-Pool";

/// Octets of a header section scanned for the field, at most.
const SCAN_LIMIT: usize = 1 << 20;

/// Longest pool name taken from the field.
const MAX_NAME: usize = 64;

/// Each `X-Hermod-Pool:` field (with its continuation lines) in the header section of
/// `message`, and the first one's value (unfolded, trimmed).
pub fn find(message: &[u8]) -> (Vec<Range<usize>>, Option<String>) {
    let mut ranges = Vec::new();
    let mut value = None;
    let mut at = 0;
    let end = message.len().min(SCAN_LIMIT);
    while at < end {
        let Some(line_end) = memchr::memchr(b'\n', &message[at..end]).map(|i| at + i + 1) else {
            // A line cut by the scan limit (or a last line with no end) is left whole.
            break;
        };
        let line = &message[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let is_field = line.len() > HEADER.len()
            && line[..HEADER.len()].eq_ignore_ascii_case(HEADER.as_bytes())
            && line[HEADER.len()] == b':';
        if !is_field {
            at = line_end;
            continue;
        }
        // The field and the lines folded into it.
        let mut field_end = line_end;
        while field_end < end && matches!(message[field_end], b' ' | b'\t') {
            field_end =
                memchr::memchr(b'\n', &message[field_end..end]).map_or(end, |i| field_end + i + 1);
        }
        if value.is_none() {
            let raw = String::from_utf8_lossy(&message[at + HEADER.len() + 1..field_end]);
            value = Some(raw.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        ranges.push(at..field_end);
        at = field_end;
    }
    (ranges, value)
}

/// `data` without `ranges`.
fn without(data: &[u8], ranges: &[Range<usize>]) -> Bytes {
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for range in ranges {
        out.extend_from_slice(&data[at..range.start]);
        at = range.end;
    }
    out.extend_from_slice(&data[at..]);
    Bytes::from(out)
}

/// Takes the field out of a message (its in-memory `data`, or its body file) and
/// notes the pool it names in `envelope` when that may be honoured. A body file that
/// holds the field is written again without it, synced, in its place.
pub async fn take(
    envelope: &mut Envelope,
    data: Bytes,
    body_file: Option<IncomingBody>,
    egress: Option<&Egress>,
) -> std::io::Result<(Bytes, Option<IncomingBody>)> {
    let (data, body_file, value) = match body_file {
        None => {
            let (ranges, value) = find(&data);
            if ranges.is_empty() {
                return Ok((data, None));
            }
            (without(&data, &ranges), None, value)
        }
        Some(mut file) => {
            let path = file.path().to_path_buf();
            let rewritten = tokio::task::spawn_blocking(move || rewrite_without_field(&path))
                .await
                .map_err(std::io::Error::other)??;
            let Some((clean, value)) = rewritten else {
                return Ok((data, Some(file)));
            };
            file.replace_with(clean)?;
            (data, Some(file), value)
        }
    };
    choose(envelope, value, egress);
    Ok((data, body_file))
}

/// Keeps the pool `value` names when the sender authenticated and the pool exists.
fn choose(envelope: &mut Envelope, value: Option<String>, egress: Option<&Egress>) {
    let Some(name) = value.filter(|v| !v.is_empty()) else {
        return;
    };
    let printable: String = name
        .chars()
        .take(MAX_NAME)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    match (&envelope.user, egress) {
        (None, _) => {
            tracing::info!(pool = %printable, client = %envelope.client,
                "X-Hermod-Pool from an unauthenticated client removed and not honoured");
        }
        (Some(_), Some(egress)) if egress.pool(&name).is_some() => envelope.pool = Some(name),
        (Some(user), _) => {
            tracing::warn!(pool = %printable, user = %user,
                "X-Hermod-Pool names no egress pool; removed, the user's or default pool is used");
        }
    }
}

/// Writes the file at `path` again without its `X-Hermod-Pool` fields (beside it,
/// synced); `None` when it has none.
fn rewrite_without_field(
    path: &Path,
) -> std::io::Result<Option<(std::path::PathBuf, Option<String>)>> {
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        head.extend_from_slice(&chunk[..n]);
        if n == 0 || head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= SCAN_LIMIT {
            break;
        }
    }
    let (ranges, value) = find(&head);
    if ranges.is_empty() {
        return Ok(None);
    }
    let clean = path.with_extension("nopool");
    let written = write_without_ranges(&mut file, &clean, &ranges);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&clean);
        return Err(e);
    }
    Ok(Some((clean, value)))
}

/// Copies `file` to `clean` without the byte `ranges`, and syncs it.
fn write_without_ranges(
    file: &mut std::fs::File,
    clean: &Path,
    ranges: &[Range<usize>],
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(clean)?);
    let mut at = 0u64;
    for range in ranges {
        file.seek(SeekFrom::Start(at))?;
        std::io::copy(&mut (&mut *file).take(range.start as u64 - at), &mut out)?;
        at = range.end as u64;
    }
    file.seek(SeekFrom::Start(at))?;
    std::io::copy(file, &mut out)?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_found_with_its_folded_lines_and_the_first_value_kept() {
        let message = b"Received: x\r\nX-Hermod-Pool: bulk\r\nSubject: s\r\nx-hermod-pool: a\r\n b\r\n\r\nX-Hermod-Pool: body\r\n";
        let (ranges, value) = find(message);
        assert_eq!(value.as_deref(), Some("bulk"));
        assert_eq!(ranges.len(), 2);
        let kept = without(message, &ranges);
        assert_eq!(
            &kept[..],
            b"Received: x\r\nSubject: s\r\n\r\nX-Hermod-Pool: body\r\n"
        );
        assert!(find(b"Subject: X-Hermod-Pool: no\r\n\r\n").0.is_empty());
        assert!(find(b"X-Hermod-Poolx: no\r\n\r\n").0.is_empty());
    }

    #[test]
    fn a_body_file_is_written_again_without_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body");
        let mut bytes = b"From: a@b\r\nX-Hermod-Pool: vip\r\n\r\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 200_000));
        std::fs::write(&path, &bytes).unwrap();
        let (clean, value) = rewrite_without_field(&path).unwrap().unwrap();
        assert_eq!(value.as_deref(), Some("vip"));
        let written = std::fs::read(clean).unwrap();
        assert_eq!(written.len(), bytes.len() - "X-Hermod-Pool: vip\r\n".len());
        assert!(written.starts_with(b"From: a@b\r\n\r\nxxx"));
        std::fs::write(&path, b"From: a@b\r\n\r\nbody").unwrap();
        assert!(rewrite_without_field(&path).unwrap().is_none());
    }
}
