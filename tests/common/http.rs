//! The admin API tests' HTTP client: awc (the client `hermod`'s own command line uses),
//! each request on a small actix system of its own, so tests on any tokio runtime can
//! call it. The status code and the body come back.

use std::net::SocketAddr;
use std::time::Duration;

/// An answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, None, None).await
}

/// A request with an optional bearer token and JSON body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Answer {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let url = format!("http://{addr}{path}");
    let (token, json) = (token.map(str::to_owned), json.map(str::to_owned));
    // awc's client is not Send: it runs on a thread and an actix system of its own.
    tokio::task::spawn_blocking(move || {
        actix_web::rt::System::new().block_on(async move {
            let mut request = awc::Client::new()
                .request(method, &url)
                .timeout(Duration::from_secs(30));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let mut response = match json {
                Some(json) => {
                    request
                        .content_type("application/json")
                        .send_body(json)
                        .await
                }
                None => request.send().await,
            }
            .unwrap_or_else(|e| panic!("{url}: {e}"));
            let body = response.body().limit(64 << 20).await.expect("the body");
            Answer {
                status: response.status().as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        })
    })
    .await
    .expect("the request's thread")
}
