//! `GET /api/maintenance` and `PUT /api/maintenance`: maintenance mode, in which new SMTP
//! connections get `421 4.3.2 Service temporarily unavailable, maintenance in progress`
//! while sessions already open and deliveries go on. It is forgotten at restart unless
//! `persist` asks for it to be kept (a file in the data directory).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{AdminState, auth};

/// The body of a `PUT`.
#[derive(Debug, Deserialize)]
pub struct Change {
    /// On or off.
    pub on: bool,
    /// Keep the state across restarts.
    #[serde(default)]
    pub persist: bool,
}

/// Whether maintenance mode is on.
pub async fn get(state: web::Data<AdminState>, _: auth::MayRead) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "maintenance": state.admission.maintenance(),
        "persisted": state.maintenance_file.exists(),
    }))
}

/// Turns maintenance mode on or off (token required).
pub async fn put(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    change: web::Json<Change>,
) -> HttpResponse {
    state.admission.set_maintenance(change.on);
    let kept = if change.on && change.persist {
        std::fs::write(&state.maintenance_file, b"on\n")
    } else {
        match std::fs::remove_file(&state.maintenance_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    };
    if let Err(e) = kept {
        tracing::error!(file = %state.maintenance_file.display(), error = %e, "cannot record maintenance mode for the next start");
    }
    if change.on {
        tracing::warn!(
            persist = change.persist,
            "maintenance mode on: new SMTP connections are refused with 421 4.3.2"
        );
    } else {
        tracing::info!("maintenance mode off: SMTP connections are accepted again");
    }
    HttpResponse::Ok().json(serde_json::json!({
        "maintenance": change.on,
        "persisted": state.maintenance_file.exists(),
    }))
}
