//! The admin API on a Unix socket in the data directory (`admin.socket`, owner-only):
//! the command line on the same machine reaches the running hermod there without a
//! token, as `postqueue -f` just works for root on a Postfix box. The socket file is
//! mode 0600, so only hermod's user and root can connect, and each connection's peer
//! credentials are checked once more ([`LocalPeer`]); over TCP the token stays required.

use std::any::Any;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use actix_web::dev::Extensions;

/// The credentials of a client on the admin socket, kept with its connection.
#[derive(Debug, Clone, Copy)]
pub struct LocalPeer {
    /// The client process's user id.
    pub uid: u32,
}

impl LocalPeer {
    /// Whether the peer may act without a token: root, or hermod's own user.
    pub fn trusted(&self) -> bool {
        self.uid == 0 || self.uid == rustix::process::geteuid().as_raw()
    }
}

/// The `on_connect` hook: records the peer credentials of a Unix-socket connection (TCP
/// connections get none, and so still need the token).
pub fn mark(connection: &dyn Any, data: &mut Extensions) {
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::UnixStream>() {
        match stream.peer_cred() {
            Ok(credentials) => {
                data.insert(LocalPeer {
                    uid: credentials.uid(),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: cannot read the peer's credentials; its requests need the token")
            }
        }
    }
}

/// Makes way for the socket at `path`: removes a socket file a stopped hermod left.
pub fn prepare(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path)?;
            Ok(())
        }
        Ok(_) => anyhow::bail!(
            "admin.socket {} exists and is not a socket: remove it or choose another path",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Makes the bound socket owner-only.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}
