//! `POST /api/inject/v1`: the tenant named by its bearer key, the body read within its
//! limit and checked field by field, then one message per recipient built, asked of the
//! same DATA-stage policies as SMTP intake (DKIM signing among them) and stored through
//! the same intake: each is on disk (fsynced, group commit) before the answer lists it as
//! accepted with its queue id.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use hermod_actors::core::id::QueueId;
use hermod_actors::core::message_trace::{self, Receiving, SpanStart};
use hermod_actors::protocol::check::{Acceptance, CheckStage, Facts, Verdict};
use hermod_actors::protocol::session::AcceptedMessage;
use hermod_actors::protocol::spool_room::SpoolRoom as _;
use serde_json::json;

use super::InjectState;
use super::build::{self, Envelope};
use super::request::{self, Checked, InjectRequest, Refusal};
use super::tenants::Tenant;

/// Answers one injection request.
pub async fn inject(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<InjectState>,
) -> HttpResponse {
    let client = request
        .peer_addr()
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    let tenant = match state.tenants.authenticate(&request) {
        Ok(tenant) => tenant,
        Err(refusal) => return refused(&refusal, client, None),
    };
    let name = tenant.as_ref().map(|t| t.name.clone());
    let body = match read_body(payload, state.max_request_size).await {
        Ok(body) => body,
        Err(refusal) => return refused(&refusal, client, name.as_deref()),
    };
    let parsed = match parse(&body) {
        Ok(parsed) => parsed,
        Err(refusal) => return refused(&refusal, client, name.as_deref()),
    };
    let checked = match request::check(&parsed, state.max_recipients, &state.hostname)
        .and_then(|checked| may_send_as(tenant.as_deref(), &parsed, checked))
    {
        Ok(checked) => checked,
        Err(refusal) => return refused(&refusal, client, name.as_deref()),
    };
    if state.room.is_low() {
        let refusal = Refusal {
            status: 503,
            field: "body".into(),
            reason: "insufficient system storage: the spool is below its free-space reserve; try again later".into(),
        };
        return refused(&refusal, client, name.as_deref());
    }
    // Every message is built before any is queued: a request that fails for one
    // recipient (a template, a size) queues nothing.
    let built = match build_all(&state, &parsed, &checked, client) {
        Ok(built) => built,
        Err(refusal) => return refused(&refusal, client, name.as_deref()),
    };
    let each = built
        .into_iter()
        .enumerate()
        .map(|(i, (id, data))| store(&state, &checked, i, id, data, client, tenant.clone()));
    let results = futures_util::future::join_all(each).await;
    answer(&parsed, results, client, name.as_deref())
}

/// Each recipient's queue id and message.
fn build_all(
    state: &InjectState,
    parsed: &InjectRequest,
    checked: &Checked,
    client: std::net::IpAddr,
) -> Result<Vec<(QueueId, Vec<u8>)>, Refusal> {
    // What one request may hold in memory as built messages at once.
    let budget = (2 * state.max_request_size).max(state.max_message_size);
    let mut total = 0usize;
    let mut built = Vec::with_capacity(checked.recipients.len());
    for i in 0..checked.recipients.len() {
        let envelope = Envelope {
            id: state.room.next_id(),
            index: i,
            recipient: &checked.recipients[i],
            hostname: &state.hostname,
            client,
        };
        let data = build::message(parsed, checked, &envelope, state.max_message_size)?;
        total += data.len();
        if total > budget {
            return Err(Refusal {
                status: 413,
                field: "recipients".into(),
                reason: format!(
                    "the messages of this request come to more than {budget} octets (twice http_inject.max_request_size): send fewer recipients a request"
                ),
            });
        }
        built.push((envelope.id, data));
    }
    Ok(built)
}

/// What became of one recipient.
enum Outcome {
    Accepted(String),
    Refused { reason: String, temporary: bool },
}

/// Recipient `i`'s message `data` through the policies and the intake.
async fn store(
    state: &InjectState,
    checked: &Checked,
    i: usize,
    id: QueueId,
    data: Vec<u8>,
    client: std::net::IpAddr,
    tenant: Option<Arc<Tenant>>,
) -> Outcome {
    let began = SystemTime::now();
    let Some(claim) = state.room.try_claim(data.len() as u64) else {
        return Outcome::Refused {
            reason: "452 4.3.1 Insufficient system storage".into(),
            temporary: true,
        };
    };
    let (acceptance, message) =
        match ask_policies(state, checked, i, id, data, client, tenant.as_deref()).await {
            Ok(answer) => answer,
            Err(refused) => return refused,
        };
    let mut data = Vec::with_capacity(message.len() + 1024);
    for header in &acceptance.headers {
        data.extend_from_slice(header.as_bytes());
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(&message);
    let mut accepted = AcceptedMessage {
        id,
        sender: checked.sender.clone(),
        recipients: vec![checked.recipients[i].clone()],
        options: Default::default(),
        data,
        body_file: None,
        user: tenant.as_ref().map(|t| t.name.clone()),
        hold: acceptance.hold,
        route: acceptance.route,
        claim: None,
        trace: None,
        tls_report: false,
    };
    let receiving = trace_root(&accepted, client, began).map(|root| {
        let (receiving, traceparent) = Receiving::new(root);
        accepted.trace = traceparent;
        receiving
    });
    let deadline = Instant::now() + ENQUEUE_TIMEOUT;
    let outcome = match state.intake.enqueue(accepted, client, deadline).await {
        Ok(id) => {
            claim.stored();
            Outcome::Accepted(id.to_string())
        }
        Err(e) => Outcome::Refused {
            reason: format!("451 4.3.0 {e}"),
            temporary: true,
        },
    };
    if let Some(receiving) = receiving {
        match &outcome {
            Outcome::Accepted(id) => receiving.answered(250, id),
            Outcome::Refused { reason, .. } => receiving.answered(451, reason),
        }
    }
    outcome
}

/// The root span of an injected message's trace (`http.inject`), begun when its
/// recipient's turn came; `None` while tracing is off.
fn trace_root(
    message: &AcceptedMessage,
    client: std::net::IpAddr,
    began: SystemTime,
) -> Option<opentelemetry::global::BoxedSpan> {
    let span = SpanStart {
        name: "http.inject",
        kind: opentelemetry::trace::SpanKind::Server,
        start: began,
        attributes: hermod_actors::inbound::session_trace::message_attributes(message, client),
    };
    message_trace::start(span, None)
}

/// Message `data` of recipient `i` through the policies of MAIL, RCPT and DATA; what the
/// last added (DKIM signature headers, a hold), or the refusal.
async fn ask_policies(
    state: &InjectState,
    checked: &Checked,
    i: usize,
    id: QueueId,
    data: Vec<u8>,
    client: std::net::IpAddr,
    tenant: Option<&Tenant>,
) -> Result<(Acceptance, Arc<Vec<u8>>), Outcome> {
    // The per-message and per-recipient policies (rate limits per user among them), as
    // an SMTP client's MAIL and RCPT meet them: each message is one transaction.
    let user = tenant.map(|t| t.name.clone());
    let senders = tenant.map(|t| t.senders.clone()).unwrap_or_default();
    for stage in [CheckStage::Mail, CheckStage::Rcpt] {
        let facts = Facts {
            stage,
            sender: Some(checked.sender.to_string()),
            recipients: match stage {
                CheckStage::Rcpt => vec![checked.recipients[i].to_string()],
                _ => Vec::new(),
            },
            user: user.clone(),
            user_senders: senders.clone(),
            ..Facts::connect(client, false)
        };
        if let Verdict::Defer(reply) | Verdict::Reject(reply) = state.policies.check(facts).await {
            return Err(Outcome::Refused {
                temporary: reply.code < 500,
                reason: reply.to_string(),
            });
        }
    }
    let message = Arc::new(data);
    let facts = Facts {
        stage: CheckStage::Data,
        sender: Some(checked.sender.to_string()),
        recipients: vec![checked.recipients[i].to_string()],
        user,
        user_senders: senders,
        size: message.len(),
        message: Some(message.clone()),
        queue_id: Some(id),
        ..Facts::connect(client, false)
    };
    match state.policies.check(facts).await {
        Verdict::Accept(acceptance) => Ok((acceptance, message)),
        Verdict::Defer(reply) | Verdict::Reject(reply) => Err(Outcome::Refused {
            temporary: reply.code < 500,
            reason: reply.to_string(),
        }),
    }
}

/// How long a message may take to reach the disk before it is refused.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// The body, read up to `limit` octets.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Refusal {
            status: 400,
            field: "body".into(),
            reason: format!("reading the request: {e}"),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(Refusal {
                status: 413,
                field: "body".into(),
                reason: format!(
                    "the request is over {limit} octets (http_inject.max_request_size)"
                ),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The JSON of the request: 400 when it is not JSON, 422 naming the field when it is
/// JSON of another shape.
fn parse(body: &[u8]) -> Result<InjectRequest, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        if e.is_data() {
            let field = text
                .split('`')
                .nth(1)
                .filter(|_| text.contains("missing field") || text.contains("unknown field"))
                .unwrap_or("body")
                .to_string();
            let field = if text.contains("untagged enum Content") {
                "content".to_string()
            } else {
                field
            };
            Refusal::field(field, text)
        } else {
            Refusal {
                status: 400,
                field: "body".into(),
                reason: format!("not JSON: {text}"),
            }
        }
    })
}

/// The tenant may use the envelope sender (its `senders`, when it has any).
fn may_send_as(
    tenant: Option<&Tenant>,
    request: &InjectRequest,
    checked: Checked,
) -> Result<Checked, Refusal> {
    match tenant {
        Some(tenant) if !tenant.may_send_as(&request.envelope_sender) => Err(Refusal::field(
            "envelope_sender",
            format!(
                "tenant {} may not send as {:?} (http_inject.tenants.{}.senders)",
                tenant.name, request.envelope_sender, tenant.name
            ),
        )),
        _ => Ok(checked),
    }
}

fn refused(refusal: &Refusal, client: std::net::IpAddr, tenant: Option<&str>) -> HttpResponse {
    let result = match refusal.status {
        401 => "unauthorized",
        413 => "too_large",
        503 => "unavailable",
        _ => "invalid",
    };
    metrics::counter!("inject_requests_total", "result" => result).increment(1);
    tracing::warn!(client = %client, tenant, status = refusal.status, field = %crate::escape::escape_controls(&refusal.field, false),
        reason = %crate::escape::escape_controls(&refusal.reason, false), "injection request refused");
    let status = actix_web::http::StatusCode::from_u16(refusal.status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({
        "error": refusal.reason,
        "field": refusal.field,
    }))
}

fn answer(
    request: &InjectRequest,
    results: Vec<Outcome>,
    client: std::net::IpAddr,
    tenant: Option<&str>,
) -> HttpResponse {
    let mut listed = Vec::with_capacity(results.len());
    let (mut accepted, mut temporary) = (0usize, 0usize);
    for (entry, result) in request.recipients.iter().zip(results) {
        match result {
            Outcome::Accepted(queue_id) => {
                accepted += 1;
                listed.push(
                    json!({"email": entry.email, "status": "accepted", "queue_id": queue_id}),
                );
            }
            Outcome::Refused {
                reason,
                temporary: t,
            } => {
                temporary += usize::from(t);
                listed.push(json!({"email": entry.email, "status": "refused", "temporary": t, "reason": reason}));
            }
        }
    }
    let refused_count = listed.len() - accepted;
    metrics::counter!("inject_requests_total", "result" => "taken").increment(1);
    metrics::counter!("inject_messages_total", "result" => "accepted").increment(accepted as u64);
    metrics::counter!("inject_messages_total", "result" => "refused")
        .increment(refused_count as u64);
    tracing::info!(client = %client, tenant, accepted, refused = refused_count, "injection request");
    let body = json!({"accepted": accepted, "refused": refused_count, "recipients": listed});
    if accepted == 0 && temporary > 0 && temporary == refused_count {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}
