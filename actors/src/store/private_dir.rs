//! The data directory is hermod's alone: it holds queued mail, the AUTH users' Argon2
//! hashes and the greylist, so it is created owner-only (0700) whatever the umask, and an
//! existing one that others could enter is made owner-only at start.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) owner-only, or makes an existing one owner-only.
/// Returns the mode it had when that was wider, for a warning.
pub fn owner_only(dir: &Path) -> std::io::Result<Option<u32>> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7700))?;
    Ok(Some(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_or_open_data_directory_becomes_owner_only() {
        let top = tempfile::tempdir().unwrap();
        let new = top.path().join("a/data");
        assert_eq!(owner_only(&new).unwrap(), None);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&new), 0o700);
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(owner_only(&new).unwrap(), Some(0o755));
        assert_eq!(mode(&new), 0o700);
    }
}
