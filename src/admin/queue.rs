//! `/api/queue`: the queue for operators. `GET /api/queue` lists messages a page at a
//! time, read from the spool in arrival order (a queue of a million is never held in
//! memory), with filters; `GET /api/queue/{id}` shows one message with its headers;
//! `POST /api/queue/{id}/{action}` (flush, hold, release, bounce), `DELETE
//! /api/queue/{id}` and `POST /api/queue/{action}?FILTERS` (every message that matches)
//! act on the queue through the Queue actor. Actions need the token.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::{HttpResponse, web};
use hermod_actors::core::id::QueueId;
use hermod_actors::protocol::datetime;
use hermod_actors::queue::dsn::ORIGINAL_PREFIX;
use hermod_actors::queue::{Action, Operate, Operated};
use hermod_actors::store::spool::{Envelope, RecipientStatus, Spool, SpoolError};
use serde::Deserialize;

use super::{AdminState, QueueUnavailable, auth, bad_request, unavailable, unix_now};
use crate::config::duration::DurationError;

/// Most messages on one page.
const MAX_PAGE: usize = 1000;
/// Ids sent to the Queue in one request of a bulk action.
const BATCH: usize = 500;

/// Which messages: every given condition must hold.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    /// A recipient's domain (exact, any case).
    pub domain: Option<String>,
    /// The sender's address (exact, any case).
    pub sender: Option<String>,
    /// A recipient's address (exact, any case).
    pub recipient: Option<String>,
    /// `pending` (a recipient not tried yet), `deferred` (one waiting for a retry) or
    /// `held`.
    pub state: Option<String>,
    /// At least this old (`30m`, `2h`, `1d`).
    pub min_age: Option<String>,
    /// Messages per page (at most 1000; 100 by default).
    pub limit: Option<usize>,
    /// The last id of the previous page.
    pub after: Option<String>,
}

/// What is wrong with a filter: the text of the 400.
#[derive(Debug, thiserror::Error)]
enum BadFilter {
    /// `min_age` is not a duration (the text is the duration's own).
    #[error(transparent)]
    MinAge(#[from] DurationError),
    /// `after` is not a queue id.
    #[error("after: {0:?} is not a queue id")]
    After(String),
    /// `state` is not one the listing knows.
    #[error("state: {0:?} is not pending, deferred or held")]
    State(String),
}

impl Filter {
    /// The filter with its texts checked; `Err` names the bad one.
    fn parsed(&self) -> Result<Parsed, BadFilter> {
        let min_age = match &self.min_age {
            None => None,
            Some(text) => Some(crate::config::duration::parse(text)?),
        };
        let after = match &self.after {
            None => None,
            Some(text) => Some(
                text.parse::<QueueId>()
                    .map_err(|_| BadFilter::After(text.clone()))?,
            ),
        };
        if let Some(state) = &self.state
            && !["pending", "deferred", "held"].contains(&state.as_str())
        {
            return Err(BadFilter::State(state.clone()));
        }
        Ok(Parsed {
            filter: self.clone(),
            min_age,
            after,
        })
    }
}

/// A [`Filter`] whose texts were checked.
struct Parsed {
    filter: Filter,
    min_age: Option<Duration>,
    after: Option<QueueId>,
}

impl Parsed {
    fn matches(&self, envelope: &Envelope, now: u64) -> bool {
        let f = &self.filter;
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        // Only recipients still waiting count: a delivered or failed one is done.
        let waiting = || {
            envelope.recipients.iter().filter(|r| {
                matches!(
                    r.status,
                    RecipientStatus::Pending | RecipientStatus::Deferred { .. }
                )
            })
        };
        f.domain
            .as_deref()
            .is_none_or(|d| waiting().any(|r| same(&r.domain, d.trim_end_matches('.'))))
            && f.sender
                .as_deref()
                .is_none_or(|s| same(&envelope.sender, s))
            && f.recipient
                .as_deref()
                .is_none_or(|a| waiting().any(|r| same(&r.address, a)))
            && f.state.as_deref().is_none_or(|state| match state {
                "held" => envelope.held,
                "pending" => envelope
                    .recipients
                    .iter()
                    .any(|r| r.status == RecipientStatus::Pending),
                _ => envelope
                    .recipients
                    .iter()
                    .any(|r| matches!(r.status, RecipientStatus::Deferred { .. })),
            })
            && self
                .min_age
                .is_none_or(|age| now.saturating_sub(envelope.arrival) >= age.as_secs())
    }
}

/// One message as the listing shows it.
fn summary(id: QueueId, envelope: &Envelope, now: u64) -> serde_json::Value {
    let recipients: Vec<serde_json::Value> = envelope
        .recipients
        .iter()
        .map(|r| {
            let (state, reply, next_attempt_in_s) = match &r.status {
                RecipientStatus::Pending => ("pending", None, None),
                RecipientStatus::Deferred {
                    next_attempt,
                    last_reply,
                } => (
                    "deferred",
                    Some(last_reply.as_str()),
                    Some(next_attempt.saturating_sub(now)),
                ),
                RecipientStatus::Delivered => ("delivered", None, None),
                RecipientStatus::Failed { reply, .. } => ("failed", Some(reply.as_str()), None),
            };
            serde_json::json!({
                "address": r.address,
                "state": state,
                "attempts": r.attempts,
                "last_reply": reply,
                "next_attempt_in_s": next_attempt_in_s,
            })
        })
        .collect();
    serde_json::json!({
        "id": id.to_string(),
        "arrival": datetime::rfc3339(UNIX_EPOCH + Duration::from_secs(envelope.arrival)),
        "age_s": now.saturating_sub(envelope.arrival),
        "size": envelope.size,
        "sender": envelope.sender,
        "client": envelope.client,
        "held": envelope.held,
        "recipients": recipients,
    })
}

/// `GET /api/queue`: one page of messages, oldest first.
pub async fn list(
    state: web::Data<AdminState>,
    _: auth::MayRead,
    filter: web::Query<Filter>,
) -> HttpResponse {
    let parsed = match filter.parsed() {
        Ok(parsed) => parsed,
        Err(reason) => return bad_request(reason),
    };
    let limit = filter.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let spool = state.spool.clone();
    let page = web::block(move || {
        let now = unix_now();
        let mut messages = Vec::new();
        let mut last = None;
        let mut more = false;
        let scanned = spool.scan(parsed.after, &mut |id, envelope| {
            if !parsed.matches(&envelope, now) {
                return true;
            }
            if messages.len() == limit {
                more = true;
                return false;
            }
            messages.push(summary(id, &envelope, now));
            last = Some(id);
            true
        });
        scanned.map(|()| (messages, more.then_some(last).flatten()))
    })
    .await;
    match page {
        Ok(Ok((messages, next))) => HttpResponse::Ok().json(serde_json::json!({
            "messages": messages,
            "next": next.map(|id| id.to_string()),
        })),
        Ok(Err(e)) => unavailable(e),
        Err(e) => unavailable(e),
    }
}

/// Why a message could not be shown: the text of the 503.
#[derive(Debug, thiserror::Error)]
enum ShowError {
    /// The spool failed to read the envelope or the message.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The message's body file could not be read.
    #[error(transparent)]
    BodyFile(#[from] std::io::Error),
}

/// Octets of a body `GET /api/queue/{id}?body=true` shows at most.
const SHOWN_BODY: usize = 1 << 20;

/// `?body=true`: show the body too.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ShowOptions {
    #[serde(default)]
    body: bool,
}

/// `GET /api/queue/{id}/transcript`: the transcript of the session that queued message
/// `id` (when its client was in `log.transcript_peers`), as text; it outlives the message.
pub async fn transcript(
    state: web::Data<AdminState>,
    _: auth::MayRead,
    id: web::Path<String>,
) -> HttpResponse {
    let Ok(id) = id.parse::<QueueId>() else {
        return bad_request(format!("{id:?} is not a queue id"));
    };
    let dir = state.data_dir().join("transcripts");
    let path = hermod_actors::store::transcripts::path_of(&dir, id);
    match web::block(move || std::fs::read_to_string(path)).await {
        Ok(Ok(text)) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text),
        _ => HttpResponse::NotFound().json(serde_json::json!({
            "error": format!("no transcript of {id} (its client was not in log.transcript_peers, or it was removed)")
        })),
    }
}

/// `GET /api/queue/{id}`: one message, with its header section (and with `?body=true`,
/// its body: the first MiB, `body_truncated` saying whether there is more).
pub async fn show(
    state: web::Data<AdminState>,
    _: auth::MayRead,
    id: web::Path<String>,
    options: web::Query<ShowOptions>,
) -> HttpResponse {
    let Ok(id) = id.parse::<QueueId>() else {
        return bad_request(format!("{id:?} is not a queue id"));
    };
    let spool = state.spool.clone();
    let found = web::block(move || -> Result<Option<serde_json::Value>, ShowError> {
        let Some(envelope) = spool.envelope(id)? else {
            return Ok(None);
        };
        let mut shown = summary(id, &envelope, unix_now());
        let wanted = match options.body {
            true => ORIGINAL_PREFIX.max(SHOWN_BODY),
            false => ORIGINAL_PREFIX,
        };
        let head = spool
            .data(id, envelope.body_file)?
            .map(|data| data.prefix(wanted))
            .transpose()?
            .unwrap_or_default();
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(head.len(), |at| at + 2);
        shown["headers"] = String::from_utf8_lossy(&head[..end]).into_owned().into();
        if options.body {
            let body = head.get(end + 2..).unwrap_or_default();
            shown["body"] = String::from_utf8_lossy(body).into_owned().into();
            shown["body_truncated"] = (envelope.size > head.len()).into();
        }
        Ok(Some(shown))
    })
    .await;
    match found {
        Ok(Ok(Some(shown))) => HttpResponse::Ok().json(shown),
        Ok(Ok(None)) => HttpResponse::NotFound().json(serde_json::json!({
            "error": format!("{id} is not in the queue")
        })),
        Ok(Err(e)) => unavailable(e),
        Err(e) => unavailable(e),
    }
}

/// `POST /api/queue/{id}/{action}`.
pub async fn act_on_one(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    act_by_id(state, &id, &action).await
}

/// `DELETE /api/queue/{id}`.
pub async fn delete(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    id: web::Path<String>,
) -> HttpResponse {
    act_by_id(state, &id, "delete").await
}

/// Acts on one message; its caller was let through as one that changes.
async fn act_by_id(state: web::Data<AdminState>, id: &str, action: &str) -> HttpResponse {
    let Ok(id) = id.parse::<QueueId>() else {
        return bad_request(format!("{id:?} is not a queue id"));
    };
    let Some(action) = parse_action(action) else {
        return bad_request(format!(
            "{action:?} is not flush, hold, release, bounce or delete"
        ));
    };
    match operate(&state, vec![id], action).await {
        Ok(operated) if !operated.missing.is_empty() => HttpResponse::NotFound().json(operated),
        Ok(operated) if !operated.busy.is_empty() => HttpResponse::Conflict().json(operated),
        Ok(operated) => HttpResponse::Ok().json(operated),
        Err(reason) => unavailable(reason),
    }
}

/// `POST /api/queue/{action}?FILTERS`: every message that matches (no filter: all).
pub async fn act_on_matching(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    action: web::Path<String>,
    filter: web::Query<Filter>,
) -> HttpResponse {
    let Some(action) = parse_action(&action) else {
        return bad_request(format!(
            "{action:?} is not flush, hold, release, bounce or delete"
        ));
    };
    let parsed = match filter.parsed() {
        Ok(parsed) => parsed,
        Err(reason) => return bad_request(reason),
    };
    let spool: Arc<dyn Spool> = state.spool.clone();
    let ids = web::block(move || {
        let now = unix_now();
        let mut ids = Vec::new();
        spool
            .scan(parsed.after, &mut |id, envelope| {
                if parsed.matches(&envelope, now) {
                    ids.push(id);
                }
                true
            })
            .map(|()| ids)
    })
    .await;
    let ids = match ids {
        Ok(Ok(ids)) => ids,
        Ok(Err(e)) => return unavailable(e),
        Err(e) => return unavailable(e),
    };
    let mut all = Operated::default();
    for batch in ids.chunks(BATCH) {
        match operate(&state, batch.to_vec(), action).await {
            Ok(operated) => {
                all.done.extend(operated.done);
                all.busy.extend(operated.busy);
                all.missing.extend(operated.missing);
            }
            Err(reason) => return unavailable(reason),
        }
    }
    HttpResponse::Ok().json(all)
}

fn parse_action(text: &str) -> Option<Action> {
    match text {
        "flush" => Some(Action::Flush),
        "hold" => Some(Action::Hold),
        "release" => Some(Action::Release),
        "delete" => Some(Action::Delete),
        "bounce" => Some(Action::Bounce),
        _ => None,
    }
}

async fn operate(
    state: &AdminState,
    ids: Vec<QueueId>,
    action: Action,
) -> Result<Operated, QueueUnavailable> {
    state.ask(Operate { ids, action }).await
}
