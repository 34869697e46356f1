//! Files that hold secrets (DKIM and TLS private keys, the admin token, next hops'
//! passwords) must be readable by hermod's user only, as ssh demands of private keys:
//! hermod refuses to start, and `--validate-only` fails, naming the file and its mode.
//!
//! The one exception is the usual packaging: a file owned by another user (root) whose
//! group is one of hermod's groups, readable by that group (`0640 root:hermod`, or
//! Debian's `0640 root:ssl-cert` for TLS keys with hermod in `ssl-cert`), since that
//! group is the way hermod reads it. Any permission for others is always refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a secret file is not used: the text names the file, and for a mode too open, the
/// command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file's metadata cannot be read (missing, or a directory on the way denies it).
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Others, or a group that is not the packaging's, may read it.
    #[error(
        "{} is readable by group or others (mode {mode:04o}): a private key, token or password must be readable by hermod's user only: chmod 600 {}",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Checks the mode of the secret file `path`; `Err` says what is wrong and how to fix it.
pub fn check(path: &Path) -> Result<(), SecretFileError> {
    let meta = std::fs::metadata(path).map_err(|error| SecretFileError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    let mode = meta.mode() & 0o7777;
    let ours = meta.uid() == rustix::process::geteuid().as_raw();
    let our_group = meta.gid() == rustix::process::getegid().as_raw()
        || rustix::process::getgroups()
            .is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == meta.gid()));
    let group_may = !ours && our_group;
    let too_open = mode & 0o007 != 0 || (mode & 0o070 != 0 && !group_may);
    if too_open {
        return Err(SecretFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_secret_readable_by_others_is_refused_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dkim.key");
        std::fs::write(&file, "secret").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o644, false),
            (0o640, false),
            (0o604, false),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let checked = check(&file);
            assert_eq!(checked.is_ok(), ok, "{mode:o}: {checked:?}");
            if let Err(e) = checked {
                assert!(matches!(e, SecretFileError::TooOpen { .. }), "{e}");
                let e = e.to_string();
                assert!(e.contains(&format!("(mode {mode:04o})")), "{e}");
                assert!(e.contains("dkim.key"), "{e}");
            }
        }
    }
}
