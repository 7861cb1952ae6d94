//! File-system rules: owner-only files and directories, atomic placement, moving aside.
//!
//! Nothing here deletes user data: leftovers are moved to a directory, never removed, except
//! monkctl's own temporary files.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::{Context, Result};
use super::ids;

/// Marker in the names of monkctl's temporary files: `.<final name>.monktmp-<pid>-<random>`.
pub const TEMP_MARKER: &str = ".monktmp-";

/// Creates `dir` and its missing parents, each new one with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .at(dir)
}

/// Creates a new empty file with mode 0600; fails if it exists.
pub fn create_private_file(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .at(path)
}

/// Creates `path` (mode 0600) unless it exists; never fails because another process created it
/// first.
pub fn ensure_private_file(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .at(path)
}

/// A fresh temporary path beside `final_path`, in the same directory (so a rename is atomic).
pub fn temp_beside(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rand = &ids::uuid_v4()[..8];
    final_path.with_file_name(format!(".{name}{TEMP_MARKER}{}-{rand}", std::process::id()))
}

/// A private temporary file (see `temp_beside`): removed with its SQLite side files when
/// dropped, unless disarmed once it has been placed.
pub struct TempFile(pub Option<PathBuf>);

impl TempFile {
    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("a disarmed TempFile has no path")
    }

    /// Keeps the file: it was placed (renamed or linked) and is no longer temporary.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(&p);
            for s in ["-wal", "-shm", "-journal"] {
                let _ = fs::remove_file(with_suffix(&p, s));
            }
        }
    }
}

impl TempFile {
    /// A new private temporary file beside `final_path` (see `temp_beside`), created now and
    /// held with an OS lock (`flock`) until the returned handle is dropped, so that
    /// `remove_dead_temps` can tell it from a dead run's even when the pid in its name was
    /// reused. SQLite's own locks are of another kind and do not interfere.
    pub fn held(final_path: &Path) -> Result<(TempFile, File)> {
        let path = temp_beside(final_path);
        let f = create_private_file(&path)?;
        let tmp = TempFile(Some(path));
        crate::core::lock::hold(&f, tmp.path())?;
        Ok((tmp, f))
    }
}

/// A temporary file whose writer is gone for certain is this old (by its last write) before
/// `remove_dead_temps` removes it when the pid in its name belongs to a running process: that
/// process may be another one that got the same pid.
pub const TEMP_REUSED_PID_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether a process with this pid runs on this machine.
pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Whether the temporary file at `path`, made by process `pid` (see `temp_owner_pid`), may still
/// be written by a running run: someone holds its OS lock (`TempFile::held`; a side file
/// `-wal`, `-shm`, `-journal` follows its main file), or its process runs and the file was
/// written within `TEMP_REUSED_PID_AGE` (older, the pid belongs to another process now).
pub fn temp_in_use(path: &Path, pid: u32) -> bool {
    let main = path
        .to_str()
        .and_then(|p| {
            ["-wal", "-shm", "-journal"]
                .iter()
                .find_map(|s| p.strip_suffix(s))
        })
        .map_or_else(|| path.to_path_buf(), PathBuf::from);
    if crate::core::lock::is_held(&main) {
        return true;
    }
    let recent = fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_none_or(|age| age <= TEMP_REUSED_PID_AGE);
    pid_alive(pid) && recent
}

/// Removes the temporary files (`.NAME.monktmp-PID-RAND`, with their SQLite side files) that
/// dead runs left directly in `dir`, such as an output directory outside the data directory
/// where `doctor` does not look. A file is left alone while `temp_in_use`. Returns what was
/// removed; a file that cannot be removed is skipped.
pub fn remove_dead_temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_owner_pid(&name) else {
            continue;
        };
        if ["-wal", "-shm", "-journal"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            continue;
        }
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if temp_in_use(&path, pid) {
            continue;
        }
        // Removed while holding its lock, so that no writer can have taken it meanwhile.
        let Some(_held) = crate::core::lock::try_hold_file(&path) else {
            continue;
        };
        if fs::remove_file(&path).is_ok() {
            for s in ["-wal", "-shm", "-journal"] {
                let _ = fs::remove_file(with_suffix(&path, s));
            }
            removed.push(path);
        }
    }
    removed
}

/// Whether a file name is one of monkctl's temporary files, and the pid that made it.
pub fn temp_owner_pid(file_name: &str) -> Option<u32> {
    let (_, rest) = file_name.split_once(TEMP_MARKER)?;
    rest.split(['-', '.']).next()?.parse().ok()
}

/// Flushes a file's content to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).at(path)
}

/// Runs `work` while a second thread keeps starting the write-back of `files` to disk (every
/// few milliseconds, each file opened once it exists), so that writing a large file and getting
/// it onto the disk overlap instead of following each other: Linux starts writing back dirty
/// pages on its own only once gigabytes are dirty, so a copy followed by one sync pays for the
/// disk after the copy. This is a head start only (errors ignored): whoever needs the data
/// durable still syncs it afterwards, and that sync then finds less left to write.
pub fn while_flushing<T>(files: &[PathBuf], work: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    if files.is_empty() {
        return work();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut open: Vec<Option<File>> = files.iter().map(|_| None).collect();
            while !done.load(Ordering::Relaxed) {
                for (slot, path) in open.iter_mut().zip(files) {
                    if slot.is_none() {
                        *slot = File::open(path).ok();
                    }
                    if let Some(f) = slot {
                        start_writeback(f);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let r = work();
        done.store(true, Ordering::Relaxed);
        r
    })
}

/// Flushes a directory entry change (a rename or a link) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Places `tmp` at `final_path` only if nothing is there (atomic, never overwrites), then
/// removes the temporary name. The directory entry is synced.
pub fn place_new(tmp: &Path, final_path: &Path) -> Result<()> {
    place_new_unsynced(tmp, final_path)?;
    if let Some(dir) = final_path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// `place_new` without syncing the directory: for a caller that places many files and syncs
/// their directory once, before anything (a committed registry row) refers to them.
pub fn place_new_unsynced(tmp: &Path, final_path: &Path) -> Result<()> {
    match fs::hard_link(tmp, final_path) {
        Ok(()) => {
            let _ = fs::remove_file(tmp);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e).at(final_path),
        // File systems without hard links: the caller holds the registry lock and checked that
        // the final name is free, so a rename is as safe.
        Err(_) => {
            if final_path.exists() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists)).at(final_path);
            }
            fs::rename(tmp, final_path).at(final_path)?;
        }
    }
    Ok(())
}

/// Starts writing back what is dirty of `f` without waiting for it (no durability by itself).
fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    let rc = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc != 0 {
        let _ = f.sync_data();
    }
}

/// An open directory whose file system can be flushed to disk in one call. Open it BEFORE
/// writing the files it is to make durable: `syncfs` reports write-back errors the file system
/// saw since the descriptor was opened.
pub struct FsSyncer {
    dir: PathBuf,
    handle: File,
}

impl FsSyncer {
    pub fn open(dir: &Path) -> Result<FsSyncer> {
        Ok(FsSyncer {
            dir: dir.to_path_buf(),
            handle: File::open(dir).at(dir)?,
        })
    }

    /// Flushes every written file of the file system holding the directory (one `syncfs`
    /// instead of one `fsync` per file: the journal commits once). An error means some of them
    /// may not be on disk; the caller then syncs its files one by one, which says which.
    pub fn sync(&self) -> Result<()> {
        use std::os::unix::io::AsRawFd;
        // SAFETY: `syncfs` takes a file descriptor and touches no memory of ours; the descriptor
        // is valid for the whole call because `self.handle` owns it and outlives the call.
        let rc = unsafe { libc::syncfs(self.handle.as_raw_fd()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error()).at(&self.dir)
        }
    }
}

/// Bytes an unprivileged writer can still use on the file system holding `path` (its nearest
/// existing ancestor when it does not exist, such as a temporary file already removed); `None`
/// when that cannot be told. Used to recognise a full disk behind SQLite's generic I/O errors.
pub fn available_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    statvfs_available(existing)
}

fn statvfs_available(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that lives through the call, and `buf` is a
    // `struct statvfs` as libc declares it for this target; it is read only when the call
    // succeeded and so filled it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it wrote the whole struct.
    let st = unsafe { buf.assume_init() };
    #[allow(clippy::useless_conversion)] // fsblkcnt_t and c_ulong are u64 on 64-bit Linux only
    Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

/// Moves `path` into `dir` under a name that does not exist there yet; returns the new path.
pub fn move_into(path: &Path, dir: &Path) -> Result<PathBuf> {
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut target = dir.join(&name);
    if target.exists() {
        let stamp = ids::file_stamp(SystemTime::now());
        target = dir.join(format!("{name}.{stamp}.{}", &ids::uuid_v4()[..8]));
    }
    fs::rename(path, &target).at(path)?;
    sync_dir(dir)?;
    Ok(target)
}

/// The size of a file, or `None` when it does not exist.
pub fn size_of(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.len())
}

/// The hasher of maps keyed by file names monkctl itself lists: XXH3 (`core::fingerprint`'s
/// algorithm). No adversary chooses these names, so SipHash's flood resistance buys nothing and
/// costs a third of a 100,000-tenant listing's lookups.
pub type NameHashing = xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// File name → size.
pub type SizeMap = std::collections::HashMap<String, u64, NameHashing>;

/// Sizes of the files in directories of the data directory, each directory read once: listing a
/// large registry costs one scan per directory instead of one lookup per tenant.
#[derive(Default)]
pub struct DirSizes {
    dirs: std::collections::HashMap<String, SizeMap, NameHashing>,
}

impl DirSizes {
    /// The size of `<base>/<dir>/<file>`, or `None` when it does not exist.
    pub fn get(&mut self, base: &Path, dir: &str, file: &str) -> Option<u64> {
        if let Some(files) = self.dirs.get(dir) {
            return files.get(file).copied();
        }
        let files = scan_sizes(&base.join(dir));
        let size = files.get(file).copied();
        self.dirs.insert(dir.to_string(), files);
        size
    }

    /// Adds a directory scanned beforehand (for example on another thread).
    pub fn insert(&mut self, dir: &str, files: SizeMap) {
        self.dirs.insert(dir.to_string(), files);
    }
}

/// File name → size of every file in `dir` (empty when it cannot be read): one directory read,
/// then one `stat` per file relative to the open directory, spread over the cores when the
/// directory is large (the stats are most of the cost of listing many tenants).
pub fn scan_sizes(dir: &Path) -> SizeMap {
    let Ok(entries) = fs::read_dir(dir) else {
        return SizeMap::default();
    };
    let entries: Vec<fs::DirEntry> = entries.flatten().collect();
    let stat = |part: &[fs::DirEntry]| -> Vec<(String, u64)> {
        part.iter()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || entries.len() < 8192 {
        return stat(&entries).into_iter().collect();
    }
    let chunk = entries.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = entries
            .chunks(chunk)
            .map(|p| s.spawn(move || stat(p)))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// `path` with a suffix appended to its file name (`x.db` → `x.db-wal`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether a file or directory is readable or writable by anyone but its owner.
pub fn wider_than_owner(path: &Path) -> Option<u32> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_runs_temporaries_go_and_live_or_held_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id();
            c.wait().unwrap();
            pid
        };
        let me = std::process::id();
        let mk = |name: &str| {
            let p = d.path().join(name);
            fs::write(&p, b"partial").unwrap();
            p
        };
        let gone = mk(&format!(".a.monk.db{TEMP_MARKER}{dead}-aaaa"));
        let gone_journal = with_suffix(&gone, "-journal");
        fs::write(&gone_journal, b"j").unwrap();
        let alive = mk(&format!(".b.monk.db{TEMP_MARKER}{me}-bbbb"));
        let held = mk(&format!(".c.monk.db{TEMP_MARKER}{dead}-cccc"));
        let holder = File::open(&held).unwrap();
        holder.lock().unwrap();
        let other = mk("keep.monk.db");
        let removed = remove_dead_temps(d.path());
        assert_eq!(removed, vec![gone.clone()]);
        assert!(!gone.exists() && !gone_journal.exists());
        assert!(alive.exists() && held.exists() && other.exists());
        // A running pid's file not written for long is a reused pid's: it goes too, unless held.
        let old = std::time::SystemTime::now() - TEMP_REUSED_PID_AGE * 2;
        File::options()
            .write(true)
            .open(&alive)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let removed = remove_dead_temps(d.path());
        assert_eq!(removed, vec![alive.clone()]);
        drop(holder);
        assert_eq!(remove_dead_temps(d.path()), vec![held]);
        assert!(other.exists());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn available_bytes_reads_the_file_system_of_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let here = available_bytes(dir.path()).expect("statvfs of an existing directory");
        let missing = available_bytes(&dir.path().join("gone/.x.monktmp-1-ab"))
            .expect("statvfs of the ancestor");
        // The same file system, measured twice: only what other processes wrote in between differs.
        assert!(here.abs_diff(missing) < 64 << 20, "{here} vs {missing}");
        assert!(here > 0);
    }
}
