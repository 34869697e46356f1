//! One delivery job, from connection to per-recipient results: over the pooled
//! connection when there is one, else to the hop's targets in MX order; each failure
//! turned into a status whose enhanced code is chosen where the failure is known.

use std::sync::Arc;

use crate::outbound::connection_budget::Permit;
use crate::outbound::domain_policy::{DomainPolicy, pooled_under};
use crate::outbound::egress::Source;
use crate::outbound::job::{Deliver, DeliveryReport, DeliverySettings, JobRecipient, Outcome};
use crate::outbound::mx::{MxResolver, Target};
use crate::outbound::routing::NextHop;
use crate::outbound::smtp_client::{ClientError, Dial, ServerReply, SmtpConnection};
use crate::outbound::tls::{HopSecurity, TlsMode};
use crate::protocol::status::{EnhancedCode, Status};
use crate::store::envelope::RecipientIndex;

/// What one job left behind: its report, the connection if it can carry the next job,
/// and whether the hop could not be reached at all.
pub(crate) struct JobOutcome {
    pub(crate) report: DeliveryReport,
    pub(crate) connection: Option<SmtpConnection>,
    pub(crate) connect_failed: bool,
    /// The next hop's own refusals in the job (not hermod's errors): what the shaping
    /// automation rules read.
    pub(crate) refusals: Vec<Status>,
}

/// RFC 3463 4.4.1: no answer from host.
pub(crate) const NO_ANSWER: EnhancedCode = EnhancedCode::new(4, 4, 1);
/// RFC 3463 4.4.2: bad connection (lost, timed out, or not speaking SMTP).
pub(crate) const CONNECTION_DROPPED: EnhancedCode = EnhancedCode::new(4, 4, 2);
/// RFC 3463 4.7.0: the next hop refused our AUTH (or it could not be sent): deferred,
/// since a corrected password makes the next attempt succeed.
const AUTH_FAILED: EnhancedCode = EnhancedCode::new(4, 7, 0);
/// RFC 3463 4.4.4: unable to route (the hop has no address).
const UNABLE_TO_ROUTE: EnhancedCode = EnhancedCode::new(4, 4, 4);

pub(crate) fn all(recipients: &[JobRecipient], outcome: Outcome) -> Vec<(RecipientIndex, Outcome)> {
    recipients
        .iter()
        .map(|r| (r.index, outcome.clone()))
        .collect()
}

fn client_error_outcome(error: &ClientError) -> Outcome {
    match error {
        ClientError::Refused { reply, .. } => {
            let status = Status {
                code: EnhancedCode::of_reply(reply.code, &reply.text),
                text: error.to_string(),
            };
            if reply.code >= 500 {
                Outcome::Failed(status)
            } else {
                Outcome::Deferred(status)
            }
        }
        ClientError::Unsupported { status, .. } => Outcome::Failed(Status {
            code: *status,
            text: error.to_string(),
        }),
        ClientError::Connect { .. } => Outcome::Deferred(Status::local(NO_ANSWER, error)),
        ClientError::Tls { status, .. } => Outcome::Deferred(Status::local(*status, error)),
        ClientError::Auth { .. } => Outcome::Deferred(Status::local(AUTH_FAILED, error)),
        ClientError::Timeout { .. } | ClientError::Io { .. } | ClientError::Protocol { .. } => {
            Outcome::Deferred(Status::local(CONNECTION_DROPPED, error))
        }
    }
}

/// How a job's new connection is made, beyond the hop's settings: the shaping file's
/// `tls` for its site or domain, and the egress source it leaves from.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobPath {
    pub(crate) tls: Option<TlsMode>,
    pub(crate) source: Option<Arc<Source>>,
}

impl JobPath {
    /// The local address to bind to (none: the system's choice) and the EHLO name.
    fn origin<'a>(&'a self, settings: &'a DeliverySettings) -> (Option<std::net::IpAddr>, &'a str) {
        match &self.source {
            Some(source) => (Some(source.address), source.ehlo.as_str()),
            None => (None, settings.helo_name.as_str()),
        }
    }
}

/// Delivers one job: over the reused connection if there is one and it still works,
/// else over a new connection to the first target (in MX order) that answers.
pub(crate) async fn run_job(
    connection: Option<SmtpConnection>,
    mut permit: Option<Permit>,
    job: Deliver,
    hop: NextHop,
    settings: Arc<DeliverySettings>,
    resolver: Arc<MxResolver>,
    path: JobPath,
) -> JobOutcome {
    let tls = path.tls;
    let max = settings.max_recipients_per_transaction.max(1);
    let policy = if job.tls_report {
        DomainPolicy::default()
    } else {
        DomainPolicy::of(&hop, &settings).await.with_tls(tls)
    };
    if let Some(mut connection) = pooled_under(&policy, connection, &mut permit) {
        let sent = transact(&mut connection, &job, max).await;
        keep_transcript(&mut connection, &job, &settings);
        match sent {
            Ok(replies) => return finished(connection, &job, replies),
            // The server closed the pooled connection while it was idle: nothing of this
            // message reached it, so a fresh connection may carry it, in its place.
            Err((done, e)) if done.is_empty() && e.is_stale_connection() => {
                permit = connection.release_permit();
            }
            Err((done, e)) => return failed_part_way(connection, &job, &done, &e),
        }
    }
    // Boxed: resolving and connecting (DNS, TLS handshakes) make by far the largest
    // state of this future, which would otherwise be copied whole each time a job starts,
    // though a pooled connection, the common case, needs none of it.
    Box::pin(connect_and_deliver(
        permit, &job, &hop, &settings, &resolver, &path, &policy,
    ))
    .await
}

/// Delivers `job` over a new connection to the first target (in MX order) that answers.
async fn connect_and_deliver(
    mut permit: Option<Permit>,
    job: &Deliver,
    hop: &NextHop,
    settings: &DeliverySettings,
    resolver: &MxResolver,
    path: &JobPath,
    policy: &DomainPolicy,
) -> JobOutcome {
    let targets = match targets_for(job, hop, settings, resolver, policy).await {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let lmtp = matches!(hop, NextHop::Lmtp { .. });
    let implicit_tls = matches!(hop, NextHop::Smtps { .. });
    let mut last_error = None;
    // Under DANE or an enforced MTA-STS policy, a host that failed TLS is what to report,
    // whatever failed after it.
    let mut tls_error = None;
    let (from, helo_name) = path.origin(settings);
    for (target, security) in &targets {
        let dial = Dial {
            to: target.addr,
            from,
        };
        match SmtpConnection::open(
            &target.host,
            dial,
            helo_name,
            lmtp,
            settings.timeouts,
            security,
            implicit_tls,
        )
        .await
        {
            Ok(mut connection) => {
                connection.set_source(path.source.clone());
                // No TLS by the operator's own choice (`tls = "none"`) is not the receiver's
                // failure to report.
                if security.mode != TlsMode::None || connection.tls().is_some() {
                    policy.report_session(settings, target, Ok(&connection));
                }
                return deliver_over(connection, permit.take(), target, job, settings).await;
            }
            Err(e) => {
                tracing::debug!(next_hop = %hop, target = %target.addr, error = %e, "connection attempt failed");
                if let ClientError::Tls { failure, .. } = &e {
                    policy.report_session(settings, target, Err((*failure, &e)));
                    tls_error = Some(e.clone());
                }
                last_error = Some(e);
            }
        }
    }
    no_session(job, hop, policy, tls_error.as_ref(), last_error.as_ref())
}

/// No target gave a session: the domain's TLS demand names the failure (DANE or an
/// enforced MTA-STS policy, after `tls_error`), else the last connection error.
fn no_session(
    job: &Deliver,
    hop: &NextHop,
    policy: &DomainPolicy,
    tls_error: Option<&ClientError>,
    last_error: Option<&ClientError>,
) -> JobOutcome {
    match policy.tls_failure(tls_error) {
        Some(outcome) => JobOutcome {
            report: report(job, &hop.to_string(), all(&job.recipients, outcome)),
            connection: None,
            connect_failed: false,
            refusals: Vec::new(),
        },
        None => unreached(job, hop, last_error),
    }
}

/// Sends `job` over `connection`, just opened to `target`, which keeps `permit`.
async fn deliver_over(
    mut connection: SmtpConnection,
    permit: Option<Permit>,
    target: &Target,
    job: &Deliver,
    settings: &DeliverySettings,
) -> JobOutcome {
    connection.hold(permit);
    connection.prefer_chunking(settings.chunking);
    if let Some(transcript) = settings
        .transcripts
        .as_ref()
        .and_then(|t| t.for_next_hop(&target.host, target.addr))
    {
        connection.record(transcript);
    }
    let max = settings.max_recipients_per_transaction.max(1);
    let sent = transact(&mut connection, job, max).await;
    keep_transcript(&mut connection, job, settings);
    match sent {
        Ok(replies) => finished(connection, job, replies),
        Err((done, e)) => failed_part_way(connection, job, &done, &e),
    }
}

/// The targets of `hop` in MX order, each with the security to reach it with, as its
/// domain's `policy` allows; or the job's outcome when there are none.
async fn targets_for(
    job: &Deliver,
    hop: &NextHop,
    settings: &DeliverySettings,
    resolver: &MxResolver,
    policy: &DomainPolicy,
) -> Result<Vec<(Target, HopSecurity)>, JobOutcome> {
    let refused = |outcome: Outcome| JobOutcome {
        report: report(job, &hop.to_string(), all(&job.recipients, outcome)),
        connection: None,
        connect_failed: false,
        refusals: Vec::new(),
    };
    let targets = match resolver.targets(hop, settings.mx_port).await {
        Ok(targets) => targets,
        Err(e) => {
            let status = Status::local(e.enhanced_status(), &e);
            return Err(refused(if e.is_permanent() {
                Outcome::Failed(status)
            } else {
                Outcome::Deferred(status)
            }));
        }
    };
    policy.targets(hop, settings, targets).map_err(refused)
}

/// Appends what `connection` recorded of `job` (the next hop is a listed peer) to the
/// message's transcript.
fn keep_transcript(connection: &mut SmtpConnection, job: &Deliver, settings: &DeliverySettings) {
    if let (Some(transcripts), Some(text)) = (&settings.transcripts, connection.take_transcript()) {
        transcripts.append(job.id, format!("--- delivery by hermod ---\n{text}"));
    }
}

/// A report of `job` naming `relay`; the actor fills in its serial.
pub(crate) fn report(
    job: &Deliver,
    relay: &str,
    results: Vec<(RecipientIndex, Outcome)>,
) -> DeliveryReport {
    DeliveryReport {
        id: job.id,
        relay: relay.to_string(),
        tls: None,
        results,
        unreachable: false,
        serial: 0,
        shaping: Vec::new(),
        held_until: None,
    }
}

/// The job failed with `error` after the replies `done`: the connection goes back to the
/// pool if the failure left it usable.
fn failed_part_way(
    connection: SmtpConnection,
    job: &Deliver,
    done: &[ServerReply],
    error: &ClientError,
) -> JobOutcome {
    let results = partial_results(&job.recipients, done, error);
    let mut refusals = refusals_in(done);
    refusals.extend(server_refusal(error));
    JobOutcome {
        report: report(job, connection.peer(), results),
        connection: error.leaves_connection_usable().then_some(connection),
        connect_failed: false,
        refusals,
    }
}

/// No target of `hop` took a connection (`last_error`, or none to try): every recipient
/// gets that outcome, and a temporary one counts toward the hop being down.
fn unreached(job: &Deliver, hop: &NextHop, last_error: Option<&ClientError>) -> JobOutcome {
    let outcome = match last_error {
        Some(e) => client_error_outcome(e),
        None => Outcome::Deferred(Status::local(
            UNABLE_TO_ROUTE,
            format!("no address to deliver to for {hop}"),
        )),
    };
    let connect_failed = !matches!(outcome, Outcome::Failed(_));
    let mut unreached = report(job, &hop.to_string(), all(&job.recipients, outcome));
    unreached.unreachable = connect_failed;
    JobOutcome {
        report: unreached,
        connection: None,
        connect_failed,
        refusals: last_error.and_then(server_refusal).into_iter().collect(),
    }
}

/// Sends the job over `connection`, `max` recipients per transaction. On failure, also
/// returns the replies of the transactions that completed before it.
async fn transact(
    connection: &mut SmtpConnection,
    job: &Deliver,
    max: usize,
) -> Result<Vec<ServerReply>, (Vec<ServerReply>, ClientError)> {
    let mut replies: Vec<ServerReply> = Vec::with_capacity(job.recipients.len());
    for chunk in job.recipients.chunks(max) {
        if connection.is_spent()
            && let Some(closing) = replies.iter().rev().find(|r| r.code == 421).cloned()
        {
            // The server said 421 and closed: the recipients not sent yet get its reply.
            replies.resize(job.recipients.len(), closing);
            break;
        }
        match connection
            .send(&job.sender, chunk, job.options, &job.data)
            .await
        {
            Ok(chunk_replies) => replies.extend(chunk_replies),
            Err(e) => return Err((replies, e)),
        }
    }
    Ok(replies)
}

/// The outcome of a job whose transactions all completed.
fn finished(connection: SmtpConnection, job: &Deliver, replies: Vec<ServerReply>) -> JobOutcome {
    let results = job
        .recipients
        .iter()
        .map(|r| r.index)
        .zip(replies.iter().map(Outcome::from_reply))
        .collect();
    JobOutcome {
        report: DeliveryReport {
            tls: connection
                .tls()
                .map(|t| format!("{} {}", t.version, t.cipher)),
            ..report(job, connection.peer(), results)
        },
        connection: Some(connection),
        connect_failed: false,
        refusals: refusals_in(&replies),
    }
}

/// The distinct refusals among a server's `replies`.
fn refusals_in(replies: &[ServerReply]) -> Vec<Status> {
    let mut refusals: Vec<Status> = Vec::new();
    for reply in replies.iter().filter(|r| !r.is_positive()) {
        let status = Status::from_reply(reply.code, &reply.text);
        if !refusals.contains(&status) {
            refusals.push(status);
        }
    }
    refusals
}

/// The server's own refusal in `error` (a 4xx or 5xx to a command, the greeting
/// included), if it is one, not hermod's failure to reach or talk to it.
fn server_refusal(error: &ClientError) -> Option<Status> {
    matches!(error, ClientError::Refused { .. })
        .then(|| client_error_outcome(error).status().clone())
}

/// Replies for the recipients done before `error`; the rest get the error.
fn partial_results(
    recipients: &[JobRecipient],
    done: &[ServerReply],
    error: &ClientError,
) -> Vec<(RecipientIndex, Outcome)> {
    let failed = client_error_outcome(error);
    recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.index,
                done.get(i)
                    .map_or_else(|| failed.clone(), Outcome::from_reply),
            )
        })
        .collect()
}
