//! The text format's fields: `name=value` separated by spaces, the message alone, every
//! value written through [`EscapingWriter`] as its `Debug` form (so a string is quoted).
//!
//! A string of printable ASCII without `"` or `\` has the `Debug` form `"text"` and nothing
//! to escape: it is written as it is, skipping the formatting machinery and the escaping
//! scan, which were most of what a log line cost the mail path. Numbers and booleans are
//! written by `Display` (their `Debug` form) without the scan. Every other value takes the
//! general path, so a line reads the same either way.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use super::EscapingWriter;

/// hermod's field formatter for the text format.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one event's or span's fields.
struct FieldWriter<'w> {
    writer: Writer<'w>,
    /// No field written yet: no space before the next one.
    first: bool,
    /// The first error; the fields after it are skipped.
    result: fmt::Result,
}

impl FieldWriter<'_> {
    /// The space between fields and the field's `name=` (none for the message).
    fn start(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if field.name() != "message" {
            self.writer.write_str(field.name())?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.start(field).and_then(|()| value(&mut self.writer));
        }
    }

    /// A value whose `Debug` form holds nothing to escape.
    fn record_safe(&mut self, field: &Field, value: &dyn fmt::Display) {
        self.write(field, |w| write!(w, "{value}"));
    }
}

/// Whether `text`'s `Debug` form is `"text"` with nothing in it to escape.
fn debug_form_is_quoted_as_is(text: &str) -> bool {
    text.bytes()
        .all(|b| (b' '..b'\x7f').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, |w| {
            fmt::write(&mut EscapingWriter(w), format_args!("{value:?}"))
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if debug_form_is_quoted_as_is(value) {
            self.write(field, |w| {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            });
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_safe(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_safe(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record_safe(field, &value);
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::field::MakeExt;
    use tracing_subscriber::fmt::format::{DefaultFields, Writer};
    use tracing_subscriber::prelude::*;

    use super::EscapedFields;

    /// The fields of one event as `formatter` writes them.
    fn written<F>(formatter: F) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false)
            .fmt_fields(formatter)
            .with_writer(move || Captured(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let forged = "admin\r\n2026-01-01T00:00:00Z  INFO forged";
            tracing::info!(queue_id = %"00ABC", to = %"u@example.test", tls = "none",
                quoted = "say \"hi\"", forged, bytes = 1024u64, delta = -3i64, ok = true,
                ratio = 0.5, list = ?["a", "b"], "delivery attempt");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.trim_end().to_string()
    }

    /// What the layer under test wrote.
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line the general path (every value's `Debug` form, escaped) writes.
    fn general_path() -> String {
        written(
            tracing_subscriber::fmt::format::debug_fn(
                |writer: &mut Writer<'_>,
                 field: &tracing::field::Field,
                 value: &dyn std::fmt::Debug| {
                    if field.name() != "message" {
                        write!(writer, "{}=", field.name())?;
                    }
                    let mut escaping = super::EscapingWriter(writer);
                    std::fmt::write(&mut escaping, format_args!("{value:?}"))
                },
            )
            .delimited(" "),
        )
    }

    #[test]
    fn lines_read_as_the_general_path_writes_them() {
        let fast = written(EscapedFields);
        assert_eq!(fast, general_path());
        assert!(
            fast.starts_with("delivery attempt queue_id=00ABC to=u@example.test tls=\"none\""),
            "{fast}"
        );
        // A peer's line break cannot start a line of its own.
        assert!(!fast.contains('\n') && !fast.contains('\r'), "{fast}");
        // tracing-subscriber's own field formatter agrees on the shape of plain values.
        assert!(written(DefaultFields::new()).contains("bytes=1024 delta=-3 ok=true"));
    }
}
