//! Emails as `.eml` files in a folder, when no SMTP server is configured.
//! They hold working invitation and password-reset links, so the folder is
//! readable by its owner only (0700) and so is every file (0600), whatever
//! the process's umask: anyone else on the machine could otherwise take over
//! an account, an admin's included.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The folder's mode: its owner only.
const DIR_MODE: u32 = 0o700;
/// Each file's mode.
const FILE_MODE: u32 = 0o600;

/// Writes `message` (the RFC 5322 bytes) as `<uuid>.eml` in `dir`, creating
/// `dir` if need be and making it private if it is not. The file appears
/// whole: written under a hidden name, then renamed.
pub fn write_eml(dir: &Path, message: &[u8]) -> std::io::Result<PathBuf> {
    private_dir(dir)?;
    let name = uuid::Uuid::now_v7().hyphenated().to_string();
    let partial = dir.join(format!(".{name}.eml.part"));
    let path = dir.join(format!("{name}.eml"));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&partial)
        .and_then(|mut file| {
            // The mode given at creation is narrowed by the umask; this is
            // the mode exactly.
            file.set_permissions(Permissions::from_mode(FILE_MODE))?;
            file.write_all(message)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, &path));
    if written.is_err() {
        // Nothing half-written stays behind; the outbox sends it again.
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| path)
}

/// `dir` exists with mode 0700: created so, or set so (a folder an older
/// keygate or the operator made with the umask's mode).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let folder = File::open(dir)?;
    if folder.metadata()?.permissions().mode() & 0o777 != DIR_MODE {
        folder.set_permissions(Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_their_folder_are_readable_by_their_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mail").join("outgoing");
        let path = write_eml(&dir, b"Subject: hello\r\n\r\nbody\r\n").unwrap();
        assert_eq!(path.extension().unwrap(), "eml");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"Subject: hello\r\n\r\nbody\r\n"
        );
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        // Only the finished file is there.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn an_existing_open_folder_is_made_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mail");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let path = write_eml(&dir, b"x").unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
    }
}
