//! sha256 digests of files, remembered by the file's identity and metadata, so that a warm
//! start hashes nothing it hashed before.
//!
//! A digest is remembered under the file's device and inode, with its size, modification time
//! and status-change time. The next request for the same file `stat`s it and answers the
//! remembered digest only if all four still match; any write, truncation, rename over it or
//! `touch` changes one of them (the status-change time cannot be set from user space), and the
//! file is hashed again. This is the bargain git, ccache and cargo make; what it cannot see is
//! a file's bytes changing under it without any metadata changing (media corruption).
//!
//! A file changed within [`RACY`] of being hashed is not remembered: a second write in the same
//! timestamp tick would leave its metadata unchanged ("racy git"). Such a file is hashed again
//! until it is older.
//!
//! Kept in `digests.db` (SQLite) in the compiled cache's folder, shared by every process using
//! that folder, or in this process's memory when there is none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::runtime::cache::{self, once_per_dir};

/// A sha256 digest.
pub type Sha256Digest = [u8; 32];

/// `digest` in lowercase hexadecimal, as `sha256sum` prints it.
pub fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest
        .iter()
        .fold(String::with_capacity(2 * digest.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The database in the cache folder.
const DIGESTS_DB: &str = "digests.db";

/// How long after its last change a file's digest starts to be remembered.
pub const RACY: Duration = Duration::from_secs(2);

/// Remembered digests of files; see the module's documentation.
#[derive(Debug)]
pub struct FileDigests {
    store: Mutex<Store>,
    /// [`RACY`], but for tests.
    racy: Duration,
}

#[derive(Debug)]
enum Store {
    Memory(HashMap<Identity, (Stamp, Sha256Digest)>),
    Disk(rusqlite::Connection),
}

/// Which file: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
}

/// What must not have changed: size, modification and status-change times (nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl FileDigests {
    /// Digests kept in this process's memory only.
    pub fn in_memory() -> Arc<FileDigests> {
        Arc::new(FileDigests {
            store: Mutex::new(Store::Memory(HashMap::new())),
            racy: RACY,
        })
    }

    /// The digests kept in `dir` (one per folder and process), or in memory when the database
    /// there cannot be opened.
    pub fn in_dir(dir: &Path) -> Arc<FileDigests> {
        static OPEN: LazyLock<Mutex<HashMap<PathBuf, Arc<FileDigests>>>> =
            LazyLock::new(Mutex::default);
        once_per_dir(&OPEN, dir, || match open_db(&dir.join(DIGESTS_DB)) {
            Ok(conn) => Arc::new(FileDigests {
                store: Mutex::new(Store::Disk(conn)),
                racy: RACY,
            }),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "file digests are kept in memory only");
                Self::in_memory()
            }
        })
    }

    /// The sha256 of the file at `path`: remembered if the file has not changed since it was
    /// last hashed, else read and hashed (and remembered).
    pub fn sha256(&self, path: &Path) -> anyhow::Result<Sha256Digest> {
        let (identity, stamp, changed) = stat(path)?;
        if let Some(digest) = self.recall(identity, stamp) {
            return Ok(digest);
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let digest: Sha256Digest = Sha256::digest(&bytes).into();
        // Only what was hashed is remembered: the file must not have changed while it was read.
        if stat(path).is_ok_and(|(i, s, _)| i == identity && s == stamp)
            && changed.elapsed().is_ok_and(|age| age >= self.racy)
        {
            self.remember(identity, stamp, digest);
        }
        Ok(digest)
    }

    fn recall(&self, identity: Identity, stamp: Stamp) -> Option<Sha256Digest> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        match &*store {
            Store::Memory(entries) => entries
                .get(&identity)
                .filter(|(s, _)| *s == stamp)
                .map(|(_, d)| *d),
            Store::Disk(conn) => {
                let (size, mtime_ns, ctime_ns, digest): (i64, i64, i64, Vec<u8>) = conn
                    .query_row(
                        "SELECT size, mtime_ns, ctime_ns, sha256 FROM files WHERE dev = ?1 AND ino = ?2",
                        [identity.dev.cast_signed(), identity.ino.cast_signed()],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                    )
                    .ok()?;
                let remembered = Stamp {
                    size: size.cast_unsigned(),
                    mtime_ns,
                    ctime_ns,
                };
                (remembered == stamp)
                    .then(|| digest.try_into().ok())
                    .flatten()
            }
        }
    }

    fn remember(&self, identity: Identity, stamp: Stamp, digest: Sha256Digest) {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *store {
            Store::Memory(entries) => {
                entries.insert(identity, (stamp, digest));
            }
            Store::Disk(conn) => {
                let written = conn.execute(
                    "INSERT OR REPLACE INTO files (dev, ino, size, mtime_ns, ctime_ns, sha256)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![
                        identity.dev.cast_signed(),
                        identity.ino.cast_signed(),
                        stamp.size.cast_signed(),
                        stamp.mtime_ns,
                        stamp.ctime_ns,
                        digest.as_slice()
                    ],
                );
                if let Err(e) = written {
                    tracing::debug!(error = %e, "a file digest was not remembered");
                }
            }
        }
    }
}

/// The file's identity, its stamp, and when it last changed (the later of its modification
/// and status-change times).
fn stat(path: &Path) -> anyhow::Result<(Identity, Stamp, SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    let ctime_ns = meta.ctime() * 1_000_000_000 + meta.ctime_nsec();
    let latest = mtime_ns.max(ctime_ns);
    let changed =
        SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(latest).unwrap_or_default());
    Ok((
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        Stamp {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
        },
        changed,
    ))
}

fn open_db(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    cache::open_db(
        path,
        "CREATE TABLE IF NOT EXISTS files (
             dev INTEGER NOT NULL,
             ino INTEGER NOT NULL,
             size INTEGER NOT NULL,
             mtime_ns INTEGER NOT NULL,
             ctime_ns INTEGER NOT NULL,
             sha256 BLOB NOT NULL,
             PRIMARY KEY (dev, ino)
         ) WITHOUT ROWID;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> Sha256Digest {
        Sha256::digest(bytes).into()
    }

    /// Digests in `dir`'s database (a fresh connection, as another process has) that remember
    /// a file as soon as it is hashed.
    fn eager(dir: &Path) -> FileDigests {
        FileDigests {
            store: Mutex::new(Store::Disk(open_db(&dir.join(DIGESTS_DB)).unwrap())),
            racy: Duration::ZERO,
        }
    }

    /// An empty folder of its own.
    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wafer-digests-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Waits out the coarsest file timestamp tick (the kernel's clock tick).
    fn tick() {
        std::thread::sleep(Duration::from_millis(30));
    }

    #[test]
    fn a_changed_file_is_hashed_again() {
        let files = tempdir("changed");
        let db = tempdir("changed-db");
        let path = files.join("model.onnx");
        std::fs::write(&path, b"first").unwrap();
        let digests = eager(&db);
        assert_eq!(digests.sha256(&path).unwrap(), sha(b"first"));
        // Remembered, by another process too: found without reading the file.
        assert!(eager(&db).recall_path(&path).is_some());
        // Rewritten in place, same size, its modification time put back: the status-change
        // time still tells.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        tick();
        std::fs::write(&path, b"secnd").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(digests.recall_path(&path).is_none());
        assert_eq!(digests.sha256(&path).unwrap(), sha(b"secnd"));
        // Replaced by a rename (another inode).
        let tmp = files.join("tmp");
        std::fs::write(&tmp, b"third!").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(digests.sha256(&path).unwrap(), sha(b"third!"));
        assert!(digests.sha256(&files.join("missing")).is_err());
    }

    #[test]
    fn a_file_just_written_is_not_remembered() {
        let files = tempdir("fresh");
        let path = files.join("model.onnx");
        std::fs::write(&path, b"fresh").unwrap();
        let digests = FileDigests::in_memory();
        assert_eq!(digests.sha256(&path).unwrap(), sha(b"fresh"));
        assert!(digests.recall_path(&path).is_none());
    }

    impl FileDigests {
        fn recall_path(&self, path: &Path) -> Option<Sha256Digest> {
            let (identity, stamp, _) = stat(path).unwrap();
            self.recall(identity, stamp)
        }
    }
}
