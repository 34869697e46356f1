//! `GET /`: the live status page — health, rates, the queue by destination, deferral
//! reasons and the oldest queued messages — plain HTML and a little JavaScript, built
//! into the binary, reading the same JSON endpoints as any other client.

use actix_web::HttpResponse;

/// The page (its data comes from `/health`, `/stats` and `/api/queue`).
const PAGE: &str = include_str!("status.html");

/// Serves the page. It holds no data itself, so it needs no token; off loopback, its
/// requests carry the one given as `/?token=…`.
pub async fn get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}
