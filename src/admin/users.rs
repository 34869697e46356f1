//! `/api/users`: the AUTH users, for `hermod user` while hermod runs (sled lets one
//! process open the data directory, so the command asks the server). The command line
//! hashes the password; only the Argon2id hash travels. Every route needs the token.
//!
//! - `GET /api/users`: the users, without their hashes.
//! - `POST /api/users` `{name, hash, senders}`: adds one.
//! - `PATCH /api/users/{name}` `{"password": hash}` | `{"disabled": bool}` |
//!   `{"senders": [...]}`: changes one.
//! - `DELETE /api/users/{name}`: deletes one.

use actix_web::{HttpResponse, web};
use hermod_actors::store::users::{UserChange, UserError};
use serde::Deserialize;

use super::{AdminState, auth, bad_request};

/// The body of a `POST`.
#[derive(Debug, Deserialize)]
pub struct NewUser {
    /// The login name.
    pub name: String,
    /// The password's Argon2id hash (PHC string).
    pub hash: String,
    /// Envelope senders the user may use (empty: any).
    #[serde(default)]
    pub senders: Vec<String>,
}

fn answer(result: Result<serde_json::Value, UserError>) -> HttpResponse {
    match result {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(e @ UserError::NoSuchUser(_)) => {
            HttpResponse::NotFound().json(serde_json::json!({ "error": e.to_string() }))
        }
        Err(e @ UserError::Exists(_)) => {
            HttpResponse::Conflict().json(serde_json::json!({ "error": e.to_string() }))
        }
        Err(e @ (UserError::BadName(_) | UserError::Hash(_))) => bad_request(e),
        Err(e @ UserError::Store(_)) => {
            HttpResponse::InternalServerError().json(serde_json::json!({ "error": e.to_string() }))
        }
    }
}

/// Every user, without hashes.
pub async fn list(state: web::Data<AdminState>, _: auth::MayChange) -> HttpResponse {
    answer(
        state
            .users
            .list()
            .map(|users| serde_json::json!({ "users": users })),
    )
}

/// Adds a user.
pub async fn add(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    user: web::Json<NewUser>,
) -> HttpResponse {
    let NewUser {
        name,
        hash,
        senders,
    } = user.into_inner();
    let added = state.users.add(&name, hash, senders);
    if added.is_ok() {
        tracing::info!(user = %name, "AUTH user added");
    }
    answer(added.map(|()| serde_json::json!({ "added": name })))
}

/// Changes a user.
pub async fn change(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    name: web::Path<String>,
    change: web::Json<UserChange>,
) -> HttpResponse {
    let change = change.into_inner();
    let what = match &change {
        UserChange::Password(_) => "password",
        UserChange::Disabled(true) => "disabled",
        UserChange::Disabled(false) => "enabled",
        UserChange::Senders(_) => "senders",
    };
    let changed = state.users.update(&name, change);
    if changed.is_ok() {
        tracing::info!(user = %name, change = what, "AUTH user changed");
    }
    answer(changed.map(|()| serde_json::json!({ "changed": *name, "what": what })))
}

/// Deletes a user.
pub async fn delete(
    state: web::Data<AdminState>,
    _: auth::MayChange,
    name: web::Path<String>,
) -> HttpResponse {
    let deleted = state.users.delete(&name);
    if deleted.is_ok() {
        tracing::info!(user = %name, "AUTH user deleted");
    }
    answer(deleted.map(|()| serde_json::json!({ "deleted": *name })))
}
