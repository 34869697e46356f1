//! How the command line reaches the running hermod: its admin API, first on the Unix
//! socket in the data directory (`admin.socket`: no token needed there for root and
//! hermod's user), else at `admin.listen` with `admin.token`, from the same
//! configuration as `serve`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::{Method, Uri};

use crate::config::Config;

/// Runs `call` (an admin API request and what to make of its answer) and prints the
/// result for `hermod COMMAND`: the text on stdout, or the error on stderr with exit
/// code 1; both with control characters escaped, since they may quote a peer's bytes.
pub fn print_outcome(
    command: &str,
    call: impl std::future::Future<Output = anyhow::Result<String>>,
) -> std::process::ExitCode {
    match actix::System::new().block_on(call) {
        Ok(text) => {
            println!("{}", super::printable(&text));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hermod {command}: {}", super::printable(&format!("{e:#}")));
            std::process::ExitCode::from(1)
        }
    }
}

/// Sends `method path` (with a JSON `body` if given) and returns the answer's text; an
/// answer that is not a success is an error carrying it.
pub async fn call(
    config: &Config,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let socket = config
        .admin
        .socket_path(&config.queue.data_dir)
        .filter(|socket| socket.exists());
    if let Some(socket) = socket {
        match send(
            &over_socket(socket.clone()),
            "http://localhost",
            None,
            &method,
            path,
            body.clone(),
        )
        .await
        {
            Ok(answer) => return answer,
            // A socket a stopped hermod left behind, or one this user may not open: the
            // TCP listener may still answer.
            Err(e) => {
                tracing::debug!(socket = %socket.display(), error = %e, "admin socket not usable; trying admin.listen")
            }
        }
    }
    let Some(addr) = config.admin.listen else {
        anyhow::bail!(
            "admin.listen is empty and no admin socket answers: the running hermod cannot be asked"
        );
    };
    let token = config.admin.read_token()?;
    let client = awc::Client::new();
    match send(
        &client,
        &format!("http://{addr}"),
        token.as_deref(),
        &method,
        path,
        body,
    )
    .await
    {
        Ok(answer) => answer,
        Err(e) => Err(anyhow::anyhow!(
            "hermod is not running, or not at admin.listen {addr}: {e}"
        )),
    }
}

/// One request; the outer `Err` is a failure to reach the server at all.
async fn send(
    client: &awc::Client,
    base: &str,
    token: Option<&str>,
    method: &Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<anyhow::Result<String>, awc::error::SendRequestError> {
    let mut request = client
        .request(method.clone(), format!("{base}{path}"))
        .timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }?;
    let answer = async {
        let text = String::from_utf8_lossy(&response.body().limit(64 << 20).await?).into_owned();
        if response.status().is_success() {
            Ok(text)
        } else {
            anyhow::bail!("hermod answered {}: {text}", response.status())
        }
    };
    Ok(answer.await)
}

/// An HTTP client whose every connection goes to the Unix socket at `path`.
fn over_socket(path: PathBuf) -> awc::Client {
    let connector = awc::Connector::new().connector(actix_service::fn_service(
        move |request: ConnectInfo<Uri>| {
            let path = path.clone();
            async move {
                let stream = actix_web::rt::net::UnixStream::connect(Path::new(&path))
                    .await
                    .map_err(ConnectError::Io)?;
                Ok::<_, ConnectError>(Connection::new(request.request().clone(), stream))
            }
        },
    ));
    awc::Client::builder().connector(connector).finish()
}
