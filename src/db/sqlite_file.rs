//! The SQLite file a pool opened, and whether the path still names it.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Which file a path named when the pool opened it (device and inode; the
/// pool's open connections keep that inode from being reused). A file
/// deleted or replaced under a running server is noticed: readiness
/// fails and requests answer 503, instead of writes going on into an
/// unlinked file that is lost at the next start.
#[derive(Debug, Clone)]
pub struct SqliteFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SqliteFile {
    pub fn identify(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// What is wrong, in a sentence, when the path no longer names the file.
    pub fn check(&self) -> Result<(), String> {
        let shown = self.path.display();
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => Ok(()),
            Ok(_) => Err(format!(
                "the database file {shown} was replaced while keygate had it open; restart keygate"
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
                "the database file {shown} was deleted, or its directory moved or unmounted, \
                 while keygate had it open; requests answer 503 until the same file is back \
                 (a restored copy needs a restart)"
            )),
            Err(e) => Err(format!("cannot check the database file {shown}: {e}")),
        }
    }
}

/// Creates the database file readable by its owner alone, before SQLite
/// would create it with the process's umask; SQLite gives its `-wal` and
/// `-shm` files the database file's mode.
pub fn create_private(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_file_is_private_and_an_existing_one_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        create_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, b"data").unwrap();
        create_private(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn a_deleted_or_replaced_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        std::fs::write(&path, b"one").unwrap();
        // Held open, as keygate's connections hold it: its inode cannot be
        // reused by the replacement.
        let _open = std::fs::File::open(&path).unwrap();
        let file = SqliteFile::identify(&path).unwrap();
        assert_eq!(file.check(), Ok(()));
        std::fs::remove_file(&path).unwrap();
        assert!(file.check().unwrap_err().contains("was deleted"));
        std::fs::write(&path, b"two").unwrap();
        assert!(file.check().unwrap_err().contains("was replaced"));
    }
}
