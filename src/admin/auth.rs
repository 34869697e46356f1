//! The admin API's bearer token: required for every request that changes something, and
//! for every request when the admin listener is not on loopback; not on the admin Unix
//! socket, for root and hermod's own user ([`super::local_socket`]). A handler states
//! what it needs by taking a [`MayRead`] or a [`MayChange`] first: the request is
//! refused before the handler runs, the same way on every route.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use super::AdminState;
use super::local_socket::LocalPeer;

/// The request may read (on loopback, without a token).
pub struct MayRead;

/// The request may change something (with the token, or from a trusted local user).
pub struct MayChange;

impl FromRequest for MayRead {
    type Error = Refused;
    type Future = std::future::Ready<Result<Self, Refused>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(admit(request, false).map(|()| MayRead))
    }
}

impl FromRequest for MayChange {
    type Error = Refused;
    type Future = std::future::Ready<Result<Self, Refused>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(admit(request, true).map(|()| MayChange))
    }
}

/// Why a request was not let through; its response is a JSON `{"error": …}`.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A local user other than root or hermod's own on the Unix socket.
    #[error("the admin socket serves root and hermod's own user only, not uid {0}")]
    UntrustedUser(u32),
    /// A change asked for, and no token to check it against.
    #[error("no admin token is configured (admin.token or admin.token_file); changes are refused")]
    NoTokenConfigured,
    /// No `Authorization: Bearer` header, or not the token.
    #[error("missing or wrong bearer token")]
    WrongToken,
    /// The server was built without its state (a wiring bug, never the client's).
    #[error("the admin server has no state")]
    NoState,
}

impl ResponseError for Refused {
    fn status_code(&self) -> StatusCode {
        match self {
            Refused::UntrustedUser(_) | Refused::NoTokenConfigured => StatusCode::FORBIDDEN,
            Refused::WrongToken => StatusCode::UNAUTHORIZED,
            Refused::NoState => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Refused::WrongToken) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// Lets `request` through, or says why not; `changes`: it changes something.
fn admit(request: &HttpRequest, changes: bool) -> Result<(), Refused> {
    if let Some(peer) = request.conn_data::<LocalPeer>() {
        return match peer.trusted() {
            true => Ok(()),
            false => Err(Refused::UntrustedUser(peer.uid)),
        };
    }
    let state = request
        .app_data::<web::Data<AdminState>>()
        .ok_or(Refused::NoState)?;
    if !changes && !state.token_for_reads {
        return Ok(());
    }
    let token = state.token.as_ref().ok_or(Refused::NoTokenConfigured)?;
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
        true => Ok(()),
        false => Err(Refused::WrongToken),
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing
/// about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
