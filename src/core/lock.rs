//! Advisory locks on the data directory and on single databases, for runs that must not
//! interleave (migrations, bulk restores).
//!
//! A lock is a file holding who took it (pid, host, command, since) and an OS lock on it. The OS
//! lock ends with the process, so a lock file left by a dead process is stale by construction:
//! the next run takes it over and says so.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Context, Error, Result};
use super::fsutil;
use super::ids;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub since: String,
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
    /// The file is removed when the lock is released (see `acquire_transient`).
    transient: bool,
    /// The holder recorded by a dead process that this lock replaced, if any.
    pub took_over: Option<Holder>,
}

impl Lock {
    /// Takes the lock at `path` without waiting. A live holder is `Busy`, naming it.
    pub fn acquire(path: &Path, command: &str) -> Result<Lock> {
        Self::acquire_with(path, command, false)
    }

    /// Like `acquire`, but the lock file exists only while the lock is held: it is removed on
    /// release. For locks named after something (a tenant), which would otherwise pile up. A
    /// process that dies holding it leaves the file, with its holder, for the next one to take
    /// over. (Whoever takes a lock checks that the file it locked is still the one at `path`,
    /// so a file removed meanwhile is never held by two.)
    pub fn acquire_transient(path: &Path, command: &str) -> Result<Lock> {
        Self::acquire_with(path, command, true)
    }

    fn acquire_with(path: &Path, command: &str, transient: bool) -> Result<Lock> {
        use std::os::unix::fs::MetadataExt;
        if let Some(dir) = path.parent() {
            fsutil::create_private_dir(dir)?;
        }
        let mut attempts = 0;
        let mut file = loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .at(path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let who = read_holder(&mut file)
                        .map(|h| {
                            format!(
                                "held by pid {} on {} ({}) since {}",
                                h.pid, h.host, h.command, h.since
                            )
                        })
                        .unwrap_or_else(|| "held by another process".into());
                    return Err(Error::Busy {
                        what: path.display().to_string(),
                        detail: format!("{who}; wait for it to finish and retry"),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(e).at(path),
            }
            // A holder of a transient lock may have removed the file between our open and our
            // lock: then we hold a file nobody else will see; open the new one.
            let mine = file.metadata().at(path)?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == mine.ino() && now.dev() == mine.dev() => break file,
                _ if attempts < 100 => attempts += 1,
                _ => {
                    return Err(Error::Busy {
                        what: path.display().to_string(),
                        detail: "the lock file keeps being replaced; retry".into(),
                    })
                }
            }
        };
        let took_over = read_holder(&mut file);
        let holder = Holder {
            pid: std::process::id(),
            host: hostname(),
            command: command.to_string(),
            since: ids::now_iso(),
        };
        file.set_len(0).at(path)?;
        file.rewind().at(path)?;
        let text = serde_json::to_string(&holder).unwrap_or_default();
        file.write_all(text.as_bytes()).at(path)?;
        file.sync_all().at(path)?;
        Ok(Lock {
            file,
            path: path.to_path_buf(),
            transient,
            took_over,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed (transient) or emptied while still held, so that no holder is ever shown for
        // a free lock.
        if self.transient {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

/// The state of a lock file, for `doctor`: free, held (with its holder) or stale (a recorded
/// holder whose process is gone).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LockState {
    Free,
    Held { holder: Option<Holder> },
    Stale { holder: Holder },
}

pub fn inspect(path: &Path) -> Result<LockState> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)?;
    let holder = read_holder(&mut file);
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(match holder {
                Some(h) => LockState::Stale { holder: h },
                None => LockState::Free,
            })
        }
        Err(TryLockError::WouldBlock) => Ok(LockState::Held { holder }),
        Err(TryLockError::Error(e)) => Err(e).at(path),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locks/run.lock");
        let a = Lock::acquire(&p, "test a").unwrap();
        let e = Lock::acquire(&p, "test b").unwrap_err();
        assert_eq!(e.exit_code(), super::super::error::exit::BUSY);
        assert!(e.to_string().contains("test a"), "{e}");
        assert!(matches!(inspect(&p).unwrap(), LockState::Held { .. }));
        drop(a);
        assert_eq!(inspect(&p).unwrap(), LockState::Free);
        Lock::acquire(&p, "test c").unwrap();
    }

    #[test]
    fn a_transient_lock_file_exists_only_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locks/restore-acme.lock");
        let a = Lock::acquire_transient(&p, "test a").unwrap();
        assert!(p.exists());
        let e = Lock::acquire_transient(&p, "test b").unwrap_err();
        assert!(e.to_string().contains("test a"), "{e}");
        drop(a);
        assert!(!p.exists());
        let b = Lock::acquire_transient(&p, "test b").unwrap();
        assert!(matches!(inspect(&p).unwrap(), LockState::Held { .. }));
        drop(b);
        assert!(!p.exists());
    }
}
