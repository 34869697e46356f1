//! The sink's web view, a local mail catcher in MailHog's manner: a page that lists the
//! messages the sink stored, shows each one's headers, body, MIME parts and raw source,
//! searches and deletes (`page.html`), and the JSON API MailHog's tools use
//! (`/api/v2/messages`, `/api/v2/search`, `/api/v1/messages[/{id}]`), served from the
//! store directory (`messages`). actix-web runs on a thread and an actix system of its
//! own, apart from the sink's runtime.

use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::{Value, json};

pub mod messages;

/// The page, with its script: everything it shows comes from the API.
const PAGE: &str = include_str!("page.html");

/// Where the view reads from.
struct View {
    dir: PathBuf,
}

/// The running view.
pub struct CatcherHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
}

impl CatcherHandle {
    /// Stops the server.
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// Serves the messages stored in `dir` at `listen`.
pub fn start(listen: SocketAddr, dir: PathBuf) -> std::io::Result<CatcherHandle> {
    let (sent, bound) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("catcher-ui".into())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let view = web::Data::new(View { dir });
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(view.clone())
                        .route("/", web::get().to(page))
                        .route("/api/v2/messages", web::get().to(list_v2))
                        .route("/api/v2/messages", web::delete().to(delete_all))
                        .route("/api/v2/search", web::get().to(search_v2))
                        .route("/api/v1/messages", web::get().to(list_v1))
                        .route("/api/v1/messages", web::delete().to(delete_all))
                        .route("/api/v1/messages/{id}", web::get().to(one))
                        .route("/api/v1/messages/{id}", web::delete().to(delete_one))
                        .route("/api/v1/messages/{id}/download", web::get().to(download))
                })
                .workers(1)
                .disable_signals()
                .bind(listen);
                let server = match server {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = sent.send(Err(e));
                        return;
                    }
                };
                let addr = server.addrs()[0];
                let running = server.run();
                let _ = sent.send(Ok((addr, running.handle())));
                let _ = running.await;
            });
        })?;
    let (addr, server) = bound
        .recv()
        .map_err(|_| std::io::Error::other("the catcher's thread ended"))??;
    Ok(CatcherHandle { addr, server })
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page shows peers' text: nothing it did not load itself may run.
        .insert_header(("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-src 'self' about:; img-src data:"))
        .body(PAGE)
}

/// `start` and `limit` of a page of messages.
#[derive(Debug, Deserialize)]
struct Window {
    #[serde(default)]
    start: usize,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    query: String,
}

fn default_limit() -> usize {
    50
}

fn page_of(all: Vec<Value>, window: &Window) -> Value {
    let total = all.len();
    let items: Vec<Value> = all
        .into_iter()
        .skip(window.start)
        .take(window.limit)
        .collect();
    json!({"total": total, "count": items.len(), "start": window.start, "items": items})
}

async fn list_v2(view: web::Data<View>, window: web::Query<Window>) -> HttpResponse {
    let dir = view.dir.clone();
    let (start, limit) = (window.start, window.limit);
    // Only the page asked for is read.
    let (total, items) = web::block(move || {
        let ids = messages::ids(&dir);
        let items: Vec<Value> = ids
            .iter()
            .skip(start)
            .take(limit)
            .filter_map(|&seq| messages::read(&dir, seq))
            .map(|m| messages::mailhog(&m))
            .collect();
        (ids.len(), items)
    })
    .await
    .unwrap_or_default();
    HttpResponse::Ok()
        .json(json!({"total": total, "count": items.len(), "start": start, "items": items}))
}

async fn search_v2(view: web::Data<View>, window: web::Query<Window>) -> HttpResponse {
    let dir = view.dir.clone();
    let (kind, query) = (window.kind.clone(), window.query.clone());
    let all = blocking(move || {
        messages::list(&dir)
            .iter()
            .filter(|m| messages::matches(m, &kind, &query))
            .map(messages::mailhog)
            .collect()
    })
    .await;
    HttpResponse::Ok().json(page_of(all, &window))
}

async fn list_v1(view: web::Data<View>) -> HttpResponse {
    let dir = view.dir.clone();
    let all = blocking(move || messages::list(&dir).iter().map(messages::mailhog).collect()).await;
    HttpResponse::Ok().json(all)
}

async fn one(view: web::Data<View>, id: web::Path<u64>) -> HttpResponse {
    let (dir, id) = (view.dir.clone(), *id);
    match web::block(move || messages::read(&dir, id))
        .await
        .ok()
        .flatten()
    {
        Some(message) => HttpResponse::Ok().json(messages::mailhog(&message)),
        None => HttpResponse::NotFound().json(json!({"error": "no such message"})),
    }
}

async fn download(view: web::Data<View>, id: web::Path<u64>) -> HttpResponse {
    let (dir, id) = (view.dir.clone(), *id);
    match web::block(move || messages::read(&dir, id))
        .await
        .ok()
        .flatten()
    {
        Some(message) => HttpResponse::Ok()
            .content_type("message/rfc822")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{id}.eml\""),
            ))
            .body(message.raw),
        None => HttpResponse::NotFound().json(json!({"error": "no such message"})),
    }
}

async fn delete_one(view: web::Data<View>, id: web::Path<u64>) -> HttpResponse {
    let (dir, id) = (view.dir.clone(), *id);
    if web::block(move || messages::delete(&dir, id))
        .await
        .unwrap_or(false)
    {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NotFound().json(json!({"error": "no such message"}))
    }
}

async fn delete_all(view: web::Data<View>) -> HttpResponse {
    let dir = view.dir.clone();
    let _ = web::block(move || {
        for seq in messages::ids(&dir) {
            messages::delete(&dir, seq);
        }
    })
    .await;
    HttpResponse::Ok().finish()
}

async fn blocking(work: impl FnOnce() -> Vec<Value> + Send + 'static) -> Vec<Value> {
    web::block(work).await.unwrap_or_default()
}
