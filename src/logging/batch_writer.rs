//! Where log lines go: a buffer that a thread of its own writes out in batches, a few
//! milliseconds after the first line of each batch. Under load a mail server logs
//! thousands of lines a second; handing each line to a writer thread through a channel
//! woke that thread (and made it spin and yield) once a line, and each wake wrote one
//! line. Here a line is appended under a short lock and the writer wakes once per
//! batch. A full buffer makes the logging thread wait for room: no line is dropped.

use std::io::Write;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits after the first line of a batch for more to join it. A
/// crash (kill -9) loses at most the lines of this window that were not yet written.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// Octets the buffer holds before a logging thread waits for the writer.
const MAX_BUFFERED: usize = 4 << 20;

/// Capacity a batch buffer keeps after a burst, at most: what a burst allocated beyond it
/// is given back.
const KEPT_CAPACITY: usize = 1 << 20;

/// How long stopping waits for the last lines to be written: an output that does not
/// take them (a stalled pipe reader) must not keep hermod from exiting.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The lines not yet written, and whether the writer should stop.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when lines arrive in an empty buffer, and at stop.
    arrived: Condvar,
    /// Signalled when the writer took the buffer.
    taken: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked while appending left whole lines behind: keep going.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The [`MakeWriter`] for the log subscriber; clones share one buffer and writer thread.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it wrote every line logged before (or
/// [`STOP_WAIT`] passed).
pub struct FlushGuard {
    shared: Arc<Shared>,
    /// Closed when the writer thread ends.
    finished: Receiver<()>,
}

impl BatchWriter {
    /// Starts the writer thread (`hermod-log`) over `out`.
    pub fn start(out: impl Write + Send + 'static) -> (BatchWriter, FlushGuard) {
        let shared = Arc::new(Shared::default());
        let writer_shared = shared.clone();
        let (done, finished) = channel::<()>();
        std::thread::Builder::new()
            .name("hermod-log".into())
            .spawn(move || {
                write_batches(&writer_shared, out);
                drop(done);
            })
            .expect("spawning the log writer thread");
        (
            BatchWriter {
                shared: shared.clone(),
            },
            FlushGuard { shared, finished },
        )
    }
}

/// The writer thread: waits for a first line, lets a batch gather, writes it in one go.
fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && !pending.stopping {
            pending = shared
                .arrived
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
        }
        let stopping = pending.stopping;
        if pending.lines.is_empty() && stopping {
            return;
        }
        if !stopping && pending.lines.len() < MAX_BUFFERED {
            drop(pending);
            std::thread::sleep(BATCH_WINDOW);
            pending = shared.lock();
        }
        std::mem::swap(&mut batch, &mut pending.lines);
        drop(pending);
        shared.taken.notify_all();
        // Nowhere to report a failed write of the log itself; the lines are dropped then.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        batch.shrink_to(KEPT_CAPACITY);
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.arrived.notify_one();
        self.shared.taken.notify_all();
        let _ = self.finished.recv_timeout(STOP_WAIT);
    }
}

/// One event's line, appended to the buffer in one piece.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        while pending.lines.len() >= MAX_BUFFERED && !pending.stopping {
            pending = self
                .shared
                .taken
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
        }
        if pending.stopping {
            // The writer is gone or going: nothing would write this line.
            return Ok(bytes.len());
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(bytes);
        drop(pending);
        if was_empty {
            self.shared.arrived.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer thread wrote, and in how many writes.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut c = self.0.lock().unwrap();
            c.0.extend_from_slice(bytes);
            c.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_order_and_in_few_writes() {
        let out = Collected::default();
        let (writer, guard) = BatchWriter::start(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for n in 0..2_000 {
                        let line = format!("thread {t} line {n} {}\n", "x".repeat(50));
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let (text, writes) = out.0.lock().unwrap().clone();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000);
        for t in 0..4 {
            let ns: Vec<usize> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .map(|l| l.split(' ').nth(3).unwrap().parse().unwrap())
                .collect();
            assert_eq!(ns, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
        assert!(writes < 8_000 / 4, "{writes} writes for 8,000 lines");
    }

    #[test]
    fn dropping_the_guard_writes_what_is_left() {
        let out = Collected::default();
        let (writer, guard) = BatchWriter::start(out.clone());
        writer.make_writer().write_all(b"last words\n").unwrap();
        drop(guard);
        assert_eq!(out.0.lock().unwrap().0, b"last words\n");
    }

    /// Takes a while for every write, like a slow terminal or a full pipe.
    struct Slow(Collected);

    impl Write for Slow {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(20));
            self.0.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Never takes anything: a pipe whose reader stopped reading.
    struct Stalled;

    impl Write for Stalled {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_does_not_keep_the_process_from_stopping() {
        let (writer, guard) = BatchWriter::start(Stalled);
        writer.make_writer().write_all(b"never written\n").unwrap();
        std::thread::sleep(BATCH_WINDOW * 4);
        let started = std::time::Instant::now();
        drop(guard);
        assert!(started.elapsed() < STOP_WAIT + Duration::from_secs(1));
        // A line after the stop is dropped, not buffered for nobody.
        writer.make_writer().write_all(b"too late\n").unwrap();
        assert!(writer.shared.lock().lines.is_empty());
    }

    #[test]
    fn a_slow_output_slows_logging_and_loses_nothing() {
        let out = Collected::default();
        let (writer, guard) = BatchWriter::start(Slow(out.clone()));
        let line = vec![b'y'; 64 * 1024 - 1];
        for _ in 0..200 {
            let mut w = writer.make_writer();
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
        }
        drop(guard);
        let text = out.0.lock().unwrap().0.clone();
        assert_eq!(text.len(), 200 * 64 * 1024);
    }
}
