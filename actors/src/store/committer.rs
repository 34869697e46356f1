//! The commit threads: the one place where the spool is written and made durable. A
//! Session hands a new message to [`Committer::store`]: the writer thread writes it at
//! once, and the flusher flushes once for every message written while its last flush ran
//! (group commit) and answers each. The Queue's own spool work goes through the writer
//! too, in the order it was asked: delivery-state updates and removals without waiting
//! ([`Committer::update`], [`Committer::remove`]), reads of messages it does not hold in
//! memory ([`Committer::read`]), and the commit of its state ([`Committer::commit`]).
//! sled work thus never runs on an arbiter thread that serves sessions, a message needs
//! no round trip through the Queue before its 250, and a read always sees every write
//! asked for before it.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::core::id::QueueId;
use crate::protocol::body_sink::IncomingBody;
use crate::store::event_log::EventLog;
use crate::store::spool::{Envelope, Spool, SpoolError};

/// A new message to write and flush.
struct StoreRequest {
    id: QueueId,
    envelope: Envelope,
    /// The message, or only its head when the body is in `body_file`.
    data: Bytes,
    body_file: Option<IncomingBody>,
    /// Its delivery events (`Reception`, and `OOB` for a returned DSN), appended with
    /// it (so both are durable or neither).
    events: Vec<Vec<u8>>,
    /// Past this the requester has answered 451: the message must not be written.
    deadline: Instant,
    /// The envelope as stored (a body file sets its flag), once it is on disk.
    reply: oneshot::Sender<Result<Envelope, SpoolError>>,
}

/// What the commit thread is asked.
enum Request {
    /// Write a new message; answer after the flush that carries it.
    Store(Box<StoreRequest>),
    /// Answer after the next flush (the Queue's delivery state).
    Flush(oneshot::Sender<Result<(), SpoolError>>),
    /// Take out a message its requester gave up on (written or not).
    Withdraw(QueueId),
    /// Replace a message's envelope (the Queue's delivery state).
    Update(QueueId, Box<Envelope>),
    /// Take out a message the Queue is done with.
    Remove(QueueId),
    /// Run a read (or a rare composite write) against the spool, in order.
    Run(SpoolWork),
    /// Append a delivery event; durable with the next flush.
    Event(Vec<u8>),
}

/// Work the writer thread runs against the spool for [`Committer::read`].
type SpoolWork = Box<dyn FnOnce(&dyn Spool) + Send>;

/// The handle to the commit thread; clones share it. The thread ends when every clone is
/// dropped.
#[derive(Clone)]
pub struct Committer {
    requests: crossbeam::channel::Sender<Request>,
    /// Whether delivery events are kept (some destination is configured).
    events: bool,
}

impl Committer {
    /// Starts the commit threads for `spool`: a writer that writes each new message as
    /// it comes, and a flusher that flushes once for everything written while its last
    /// flush ran. Two threads, so that writing the next group never waits for the
    /// current flush.
    pub fn start(spool: Arc<dyn Spool>) -> Self {
        Self::start_with_events(spool, None)
    }

    /// Like [`Committer::start`], appending delivery events to `events` beside the writes
    /// they describe.
    pub fn start_with_events(spool: Arc<dyn Spool>, events: Option<Arc<EventLog>>) -> Self {
        let keeps_events = events.is_some();
        let writer_events = events.clone();
        let (requests, incoming) = crossbeam::channel::unbounded::<Request>();
        let (written, to_flush) = crossbeam::channel::unbounded::<Waiter>();
        let writer_spool = spool.clone();
        std::thread::Builder::new()
            .name("hermod-spool-write".into())
            .spawn(move || {
                for request in incoming {
                    let waiter = match request {
                        Request::Store(store) => {
                            write(writer_spool.as_ref(), writer_events.as_deref(), *store)
                        }
                        Request::Event(event) => {
                            append(writer_events.as_deref(), &event);
                            None
                        }
                        Request::Flush(waiter) => Some(Waiter::Flush(waiter)),
                        Request::Withdraw(id) => {
                            withdraw(writer_spool.as_ref(), id);
                            if let Some(events) = &writer_events
                                && let Err(e) = events.withdraw(id)
                            {
                                tracing::error!(queue_id = %id, error = %e, "cannot take a withdrawn message's event out of the event log");
                            }
                            None
                        }
                        Request::Update(id, envelope) => {
                            if let Err(e) = writer_spool.update(id, &envelope) {
                                tracing::error!(queue_id = %id, error = %e, "cannot record delivery state");
                            }
                            None
                        }
                        Request::Remove(id) => {
                            if let Err(e) = writer_spool.remove(id) {
                                tracing::error!(queue_id = %id, error = %e, "cannot remove a message from the spool");
                            }
                            None
                        }
                        Request::Run(work) => {
                            // A read that panics must not end the thread every new
                            // message is written by: its caller gets an error instead.
                            let spool = writer_spool.as_ref();
                            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                                move || work(spool),
                            ));
                            if ran.is_err() {
                                tracing::error!("a spool read panicked; its caller gets an error");
                            }
                            None
                        }
                    };
                    if let Some(waiter) = waiter
                        && written.send(waiter).is_err()
                    {
                        return;
                    }
                }
            })
            .expect("spawning the spool writer thread");
        std::thread::Builder::new()
            .name("hermod-commit".into())
            .spawn(move || {
                while let Ok(first) = to_flush.recv() {
                    let group: Vec<Waiter> =
                        std::iter::once(first).chain(to_flush.try_iter()).collect();
                    flush(spool.as_ref(), events.as_deref(), group);
                }
            })
            .expect("spawning the commit thread");
        Committer {
            requests,
            events: keeps_events,
        }
    }

    /// Whether delivery events are kept: when not, nobody needs to build them.
    pub fn keeps_events(&self) -> bool {
        self.events
    }

    /// Appends a delivery event after every write asked for before; durable with the next
    /// flush. Nobody waits: an error is logged.
    pub fn event(&self, event: Vec<u8>) {
        if self.events {
            let _ = self.requests.send(Request::Event(event));
        }
    }

    /// Writes a new message and resolves once it is on disk, with its envelope as
    /// stored. A message whose `deadline` passes before the thread reaches it is not
    /// written.
    pub async fn store(
        &self,
        id: QueueId,
        envelope: Envelope,
        data: Bytes,
        body_file: Option<IncomingBody>,
        events: Vec<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Envelope, SpoolError> {
        let (reply, answer) = oneshot::channel();
        let request = StoreRequest {
            id,
            envelope,
            data,
            body_file,
            events,
            deadline,
            reply,
        };
        self.requests
            .send(Request::Store(Box::new(request)))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Resolves once every write made before this call is on disk.
    pub async fn commit(&self) -> Result<(), SpoolError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Flush(tx))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Takes message `id` out of the spool, after any store of it already asked for,
    /// and has a flush carry that to disk soon (nobody waits for it).
    pub fn withdraw(&self, id: QueueId) {
        let _ = self.requests.send(Request::Withdraw(id));
        let (flushed, _) = oneshot::channel();
        let _ = self.requests.send(Request::Flush(flushed));
    }
}

impl Committer {
    /// Records message `id`'s delivery state, after every write asked for before; a flush
    /// ([`Committer::commit`], or the next new message's) makes it durable. Nobody waits:
    /// an error is logged.
    pub fn update(&self, id: QueueId, envelope: &Envelope) {
        let _ = self
            .requests
            .send(Request::Update(id, Box::new(envelope.clone())));
    }

    /// Takes message `id` out of the spool, after every write asked for before; like
    /// [`Committer::update`], nobody waits.
    pub fn remove(&self, id: QueueId) {
        let _ = self.requests.send(Request::Remove(id));
    }

    /// Runs `work` against the spool on the writer thread, after every write asked for
    /// before, and resolves with its result: how the Queue reads back what it does not
    /// hold in memory without touching sled on its own thread.
    pub fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Spool) -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, SpoolError>> + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.requests.send(Request::Run(Box::new(move |spool| {
            let _ = tx.send(work(spool));
        })));
        async move {
            sent.map_err(|_| stopped())?;
            rx.await.map_err(|_| stopped())
        }
    }

    /// Like [`Committer::read`], but waits on the calling thread: for the operator's rare
    /// actions (and bounces), which need the answer before they go on. The wait is for the
    /// writes queued before it, not for a flush.
    pub fn read_now<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Spool) -> T + Send + 'static,
    ) -> Result<T, SpoolError> {
        let (tx, rx) = crossbeam::channel::bounded(1);
        self.requests
            .send(Request::Run(Box::new(move |spool| {
                let _ = tx.send(work(spool));
            })))
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())
    }
}

fn stopped() -> SpoolError {
    SpoolError("commit thread stopped".into())
}

/// Someone waiting for the next flush.
enum Waiter {
    /// A new message, written: answered with its envelope.
    Stored(
        oneshot::Sender<Result<Envelope, SpoolError>>,
        Box<Envelope>,
        QueueId,
    ),
    /// The Queue's delivery state.
    Flush(oneshot::Sender<Result<(), SpoolError>>),
}

/// One flush for a group of waiters, then every one answered.
fn flush(spool: &dyn Spool, events: Option<&EventLog>, group: Vec<Waiter>) {
    let started = Instant::now();
    // Every event appended before the flush starts is durable once it succeeds.
    let events_written = events.map(EventLog::written);
    let result = spool.flush();
    if let (Some(events), Some(seq), Ok(())) = (events, events_written, &result) {
        events.flushed_up_to(seq);
        events.settled(group.iter().filter_map(|w| match w {
            Waiter::Stored(_, _, id) => Some(*id),
            Waiter::Flush(_) => None,
        }));
    }
    metrics::histogram!("queue_flush_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("queue_flush_group_size").record(group.len() as f64);
    if let Err(e) = &result {
        tracing::error!(error = %e, "spool flush failed; messages in this group get 451");
    }
    for waiter in group {
        match waiter {
            Waiter::Stored(reply, envelope, _) => {
                let _ = reply.send(result.clone().map(|()| *envelope));
            }
            Waiter::Flush(reply) => {
                let _ = reply.send(result.clone());
            }
        }
    }
}

fn withdraw(spool: &dyn Spool, id: QueueId) {
    if let Err(e) = spool.remove(id) {
        tracing::error!(queue_id = %id, error = %e, "cannot take a withdrawn message out of the spool");
    }
}

fn append(events: Option<&EventLog>, event: &[u8]) {
    if let Some(events) = events
        && let Err(e) = events.append(event)
    {
        tracing::error!(error = %e, "cannot append a delivery event to the event log");
    }
}

/// Writes one new message; answers at once (and returns `None`) when it cannot.
fn write(spool: &dyn Spool, events: Option<&EventLog>, request: StoreRequest) -> Option<Waiter> {
    let StoreRequest {
        id,
        mut envelope,
        data,
        body_file,
        events: new_events,
        deadline,
        reply,
    } = request;
    if Instant::now() >= deadline {
        let _ = reply.send(Err(SpoolError::not_in_time(id, "before it was written")));
        return None;
    }
    let written = match body_file {
        None => spool.insert(id, &envelope, &data),
        Some(file) => spool.insert_with_file(id, &mut envelope, &data, file),
    };
    match written {
        Ok(()) => {
            if let Some(events) = events
                && let Err(e) = events.append_for(id, &new_events)
            {
                tracing::error!(queue_id = %id, error = %e, "cannot append a delivery event to the event log");
            }
            Some(Waiter::Stored(reply, Box::new(envelope), id))
        }
        Err(e) => {
            metrics::counter!("queue_enqueue_errors_total").increment(1);
            tracing::error!(queue_id = %id, error = %e, "cannot write message to spool");
            let _ = reply.send(Err(e));
            None
        }
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_histogram!(
        "queue_flush_seconds",
        metrics::Unit::Seconds,
        "Time one spool flush (fsync) took."
    );
    metrics::describe_histogram!(
        "queue_flush_group_size",
        "Messages and state commits answered by one flush (group commit)."
    );
    metrics::describe_counter!(
        "queue_enqueue_errors_total",
        "Messages that could not be written to the spool (answered 451)."
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::spool::SledSpool;

    fn envelope() -> Envelope {
        crate::store::envelope::sample(1)
    }

    #[tokio::test]
    async fn many_stores_share_flushes_and_all_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
        let committer = Committer::start(spool.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let c = committer.clone();
            let data = Bytes::from_static(b"x");
            tasks.push(tokio::spawn(async move {
                c.store(QueueId(i), envelope(), data, None, Vec::new(), deadline)
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        committer.commit().await.unwrap();
        let mut found = 0;
        spool.recover_each(&mut |_, _| found += 1).unwrap();
        assert_eq!(found, 200);
    }

    #[tokio::test]
    async fn a_store_past_its_deadline_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
        let committer = Committer::start(spool.clone());
        let data = Bytes::from_static(b"x");
        let late = Instant::now() - Duration::from_secs(1);
        let refused = committer
            .store(QueueId(1), envelope(), data, None, Vec::new(), late)
            .await;
        assert!(refused.unwrap_err().to_string().contains("in time"));
        assert!(spool.envelope(QueueId(1)).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_read_sees_every_update_and_removal_asked_for_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
        let committer = Committer::start(spool.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        for id in [1, 2] {
            let data = Bytes::from_static(b"x");
            committer
                .store(QueueId(id), envelope(), data, None, Vec::new(), deadline)
                .await
                .unwrap();
        }
        // Many updates queued without waiting: the read after them sees the last.
        let mut changed = envelope();
        for attempts in 1..=100 {
            changed.recipients[0].attempts = attempts;
            committer.update(QueueId(1), &changed);
        }
        committer.remove(QueueId(2));
        let (first, second) = committer
            .read(|spool| (spool.envelope(QueueId(1)), spool.envelope(QueueId(2))))
            .await
            .unwrap();
        assert_eq!(first.unwrap().unwrap().recipients[0].attempts, 100);
        assert!(second.unwrap().is_none());
        // The same from a thread that waits for the answer (the operator's actions).
        changed.recipients[0].attempts = 101;
        committer.update(QueueId(1), &changed);
        let now = std::thread::spawn(move || {
            committer.read_now(|spool| spool.envelope(QueueId(1)).unwrap().unwrap())
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(now.recipients[0].attempts, 101);
    }

    #[tokio::test]
    async fn a_withdrawn_message_is_taken_out() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
        let committer = Committer::start(spool.clone());
        let data = Bytes::from_static(b"x");
        let deadline = Instant::now() + Duration::from_secs(30);
        committer
            .store(QueueId(7), envelope(), data, None, Vec::new(), deadline)
            .await
            .unwrap();
        committer.withdraw(QueueId(7));
        committer.commit().await.unwrap();
        assert!(spool.envelope(QueueId(7)).unwrap().is_none());
    }
}
