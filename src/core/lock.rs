//! Every lock monkctl takes between its own processes, in one place.
//!
//! - [`Lock`]: a lock file in `<data>/locks/` (its path comes from `Layout`) holding who took it
//!   (pid, host, command, since) and an OS lock (`flock`) on it: for runs that must not interleave
//!   (`Layout::migrate_lock`, `restore_lock`), taken without waiting (a live holder is `Busy`,
//!   named), or waited for around short critical sections (`Layout::template_lock`,
//!   `infra_migrate_lock`). The OS lock ends with the process, so a lock file left by a dead
//!   process is stale by construction: the next run takes it over and says so, and `doctor`
//!   reports and removes it (`inspect`, `remove_stale`).
//! - [`hold_file`]: an OS lock on a file that is not ours to write a holder into (a tenant
//!   database while fixtures are deployed to it, a temporary file while it is being written).
//!   SQLite's own locks are `fcntl` locks, independent of these on Linux.

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

    /// Takes the lock at `path`, waiting while another process holds it: for short critical
    /// sections (building one template, migrating the infra database), where the second run
    /// should go on once the first is done.
    pub fn wait(path: &Path, command: &str) -> Result<Lock> {
        Self::take(path, command, false, true)
    }

    fn acquire_with(path: &Path, command: &str, transient: bool) -> Result<Lock> {
        Self::take(path, command, transient, false)
    }

    fn take(path: &Path, command: &str, transient: bool, wait: bool) -> Result<Lock> {
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
            let locked = if wait {
                file.lock().map_err(TryLockError::Error)
            } else {
                file.try_lock()
            };
            match locked {
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

/// Takes an OS lock on the existing file at `path`, waiting for a holder to finish; released
/// when the returned handle is dropped or the process ends. Nothing is written to the file.
pub fn hold_file(path: &Path) -> Result<File> {
    let f = File::open(path).at(path)?;
    hold(&f, path)?;
    Ok(f)
}

/// Takes an OS lock on an open file (see `hold_file`), waiting for a holder to finish.
pub fn hold(file: &File, path: &Path) -> Result<()> {
    file.lock().at(path)
}

/// Takes an OS lock on the existing file at `path` if nobody holds one, without waiting.
pub fn try_hold_file(path: &Path) -> Option<File> {
    let f = File::open(path).ok()?;
    f.try_lock().ok()?;
    Some(f)
}

/// Whether someone holds an OS lock on the file at `path` now (`hold_file`, `Lock`); a file that
/// cannot be opened is not held.
pub fn is_held(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// Removes a stale lock file (`doctor --repair`), only while holding its OS lock and only if it
/// still names a holder, so a run that took it over in the meantime keeps it.
pub fn remove_stale(path: &Path) -> Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Error::Busy {
                what: path.display().to_string(),
                detail: "a running process holds it now; left alone".into(),
            })
        }
        Err(TryLockError::Error(e)) => return Err(e).at(path),
    }
    if read_holder(&mut file).is_none() {
        return Err(Error::Conflict(
            "it no longer names a holder; left alone".into(),
        ));
    }
    std::fs::remove_file(path).at(path)?;
    let _ = file.unlock();
    Ok(())
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

    #[test]
    fn a_waiting_lock_names_its_holder_and_goes_on_when_the_first_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locks/template-base.lock");
        let a = Lock::wait(&p, "test a").unwrap();
        let LockState::Held { holder: Some(h) } = inspect(&p).unwrap() else {
            panic!("held, with its holder")
        };
        assert_eq!((h.pid, h.command.as_str()), (std::process::id(), "test a"));
        // An OS lock is per open file: a second take from this process waits like another's.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let p = p.clone();
            move || {
                let b = Lock::wait(&p, "test b").unwrap();
                tx.send(()).unwrap();
                drop(b);
            }
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the second waits while the first holds it"
        );
        drop(a);
        rx.recv()
            .expect("the second goes on once the first is released");
        waiter.join().unwrap();
        assert_eq!(inspect(&p).unwrap(), LockState::Free);
    }

    #[test]
    fn only_a_stale_lock_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locks/migrate.lock");
        let held = Lock::acquire(&p, "test a").unwrap();
        assert_eq!(remove_stale(&p).unwrap_err().exit_code(), 5, "held: busy");
        assert!(p.exists());
        drop(held);
        // Released: emptied, so it names no holder and is not stale either.
        assert!(remove_stale(&p).is_err());
        // A holder recorded by a process that is gone.
        std::fs::write(
            &p,
            r#"{"pid":999999,"host":"h","command":"dead","since":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(matches!(inspect(&p).unwrap(), LockState::Stale { .. }));
        remove_stale(&p).unwrap();
        assert!(!p.exists());
    }
}
