//! `/api/suspensions`: suspend a destination for a while with a reason (its mail waits,
//! it is not retried every tick), list the suspensions, and resume one.
//! `POST /api/suspensions {"domain":"example.com","for":"2h","reason":"…"}`,
//! `GET /api/suspensions`, `DELETE /api/suspensions/{domain}`; changes need the token.
//! The suspensions in force are kept in `data_dir/suspensions.json` after each change,
//! and [`restore`] gives them back to the Queue at the next start.

use std::time::UNIX_EPOCH;

use actix_web::{HttpResponse, web};
use hermod_actors::queue::{ListSuspensions, Resume, Suspend, Suspension};
use serde::Deserialize;

use super::{AdminState, QueueUnavailable, auth, bad_request, unavailable, unix_now};

/// The body of a `POST`.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// The recipient domain.
    pub domain: String,
    /// How long (`30m`, `2h`, `1d`).
    #[serde(rename = "for")]
    pub duration: String,
    /// Why; shown in the listing and the log.
    #[serde(default)]
    pub reason: String,
}

/// The suspensions in force, as JSON rows (also merged into `/stats`).
pub async fn current(state: &AdminState) -> Result<Vec<Suspension>, QueueUnavailable> {
    state.ask(ListSuspensions).await
}

fn rows(list: &[Suspension]) -> serde_json::Value {
    let now = unix_now();
    list.iter()
        .map(|s| {
            serde_json::json!({
                "domain": s.domain,
                "until": hermod_actors::protocol::datetime::rfc3339(
                    UNIX_EPOCH + std::time::Duration::from_secs(s.until)
                ),
                "resumes_in_s": s.until.saturating_sub(now),
                "reason": s.reason,
            })
        })
        .collect()
}

/// Writes the suspensions in force to the file the next start reads.
async fn remember(state: &AdminState) {
    let Ok(list) = current(state).await else {
        return;
    };
    let saved: Vec<serde_json::Value> = list
        .iter()
        .map(|s| serde_json::json!({ "domain": s.domain, "until": s.until, "reason": s.reason }))
        .collect();
    let text = serde_json::Value::Array(saved).to_string();
    if let Err(e) = std::fs::write(&state.suspensions_file, text) {
        tracing::error!(file = %state.suspensions_file.display(), error = %e, "cannot record the suspensions for the next start");
    }
}

/// The suspensions kept by the last run that have not ended, to send to the Queue at
/// start. A missing file is no suspension; an unreadable one is logged and skipped.
pub fn restore(file: &std::path::Path) -> Vec<Suspend> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::error!(file = %file.display(), error = %e, "cannot read the suspensions kept before the restart");
            return Vec::new();
        }
    };
    let Ok(serde_json::Value::Array(saved)) = serde_json::from_str::<serde_json::Value>(&text)
    else {
        tracing::error!(file = %file.display(), "the suspensions kept before the restart are unreadable; none is restored");
        return Vec::new();
    };
    let now = unix_now();
    saved
        .iter()
        .filter_map(|s| {
            Some(Suspend {
                domain: s["domain"].as_str()?.to_string(),
                until: s["until"].as_u64().filter(|&until| until > now)?,
                reason: s["reason"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// `GET /api/suspensions`.
pub async fn list(state: web::Data<AdminState>, _: auth::MayRead) -> HttpResponse {
    listing(&state).await
}

/// The suspensions in force, as `GET /api/suspensions` and each change answer them.
async fn listing(state: &AdminState) -> HttpResponse {
    match current(state).await {
        Ok(list) => HttpResponse::Ok().json(serde_json::json!({ "suspensions": rows(&list) })),
        Err(reason) => unavailable(reason),
    }
}

/// `POST /api/suspensions`.
pub async fn suspend(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    body: web::Json<Request>,
) -> HttpResponse {
    let duration = match crate::config::duration::parse(&body.duration) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => return bad_request("for: must be longer than zero"),
        Err(e) => return bad_request(format!("for: {e}")),
    };
    let domain = body.domain.trim();
    if domain.is_empty() || domain.contains(['@', ' ', ',']) {
        return bad_request(format!("domain: {domain:?} is not a domain"));
    }
    let suspend = Suspend {
        domain: domain.to_string(),
        until: unix_now() + duration.as_secs(),
        reason: body.reason.clone(),
    };
    match state.ask(suspend).await {
        Ok(()) => {
            remember(&state).await;
            listing(&state).await
        }
        Err(reason) => unavailable(reason),
    }
}

/// `DELETE /api/suspensions/{domain}`.
pub async fn resume(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    domain: web::Path<String>,
) -> HttpResponse {
    let resume = Resume {
        domain: domain.into_inner(),
    };
    match state.ask(resume).await {
        Ok(true) => {
            remember(&state).await;
            listing(&state).await
        }
        Ok(false) => HttpResponse::NotFound()
            .json(serde_json::json!({ "error": "that destination is not suspended" })),
        Err(reason) => unavailable(reason),
    }
}
