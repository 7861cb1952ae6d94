//! A stand-in for the Monk API's request path, run as a process of its own beside monkctl.
//!
//! Per request, as Monk API 6.2 does with Bun's SQLite driver: a new connection to the infra
//! database with busy timeout 0, `PRAGMA journal_mode=WAL`, the tenant's row read with the API's
//! filter, the lifecycle `UPDATE` that every lookup runs (a write statement that matches no row
//! but still needs the write lock), close; then a new connection to the tenant's file, busy
//! timeout 0, `PRAGMA journal_mode=WAL`, one `BEGIN IMMEDIATE` insert into `tracked` (the
//! API's change log, which every tenant has), commit, close. Any lock another process holds at
//! that moment fails the request at once with "database is locked", as it fails the API's.
//!
//! Shared by `tests/live.rs` and the `live` benchmark; each runs it by re-executing its own
//! binary (`Standin::spawn`), so it is built with them and never shipped in monkctl.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

/// Environment variable that carries the stand-in's arguments into the re-executed binary.
pub const ENV: &str = "MONK_API_STANDIN";

/// What a stand-in run is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The data directory: a tenant's file is `<data>/<tenants.database>/<tenants.schema>.db`.
    pub data_dir: PathBuf,
    pub infra: PathBuf,
    pub tenant: String,
    /// Requests started per second (evenly spaced).
    pub rate: u32,
    /// Stops after this many requests...
    pub max_requests: u64,
    /// ...or after this long, whichever comes first.
    pub max_time: Duration,
}

impl Plan {
    fn encode(&self) -> String {
        [
            self.data_dir.display().to_string(),
            self.infra.display().to_string(),
            self.tenant.clone(),
            self.rate.to_string(),
            self.max_requests.to_string(),
            self.max_time.as_millis().to_string(),
        ]
        .join("\n")
    }

    fn decode(s: &str) -> Plan {
        let f: Vec<&str> = s.split('\n').collect();
        assert_eq!(f.len(), 6, "malformed {ENV}: {s:?}");
        Plan {
            data_dir: PathBuf::from(f[0]),
            infra: PathBuf::from(f[1]),
            tenant: f[2].to_string(),
            rate: f[3].parse().expect("rate"),
            max_requests: f[4].parse().expect("max_requests"),
            max_time: Duration::from_millis(f[5].parse().expect("max_time")),
        }
    }
}

/// The counts a stand-in run prints as its last line: `requests=N failed=M`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    pub failed: u64,
    /// The first few error messages, with the step that failed.
    pub errors: Vec<String>,
    /// Failed requests per step that failed ("registry lifecycle update", "tenant begin
    /// immediate", ...).
    pub by_step: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    /// Reads the stand-in's output: its `error:` lines and its `requests=N failed=M` line.
    pub fn parse(out: &str) -> Option<Tally> {
        let mut t = Tally::default();
        let mut found = false;
        for line in out.lines() {
            if let Some(e) = line.strip_prefix("standin error: ") {
                t.errors.push(e.to_string());
            } else if let Some((step, n)) = line
                .strip_prefix("standin step ")
                .and_then(|l| l.rsplit_once('='))
            {
                t.by_step.insert(step.to_string(), n.parse().ok()?);
            } else if let Some(rest) = line.strip_prefix("standin requests=") {
                let (n, m) = rest.split_once(" failed=")?;
                t.requests = n.trim().parse().ok()?;
                t.failed = m.trim().parse().ok()?;
                found = true;
            }
        }
        found.then_some(t)
    }
}

/// A running stand-in process.
pub struct Standin {
    child: Child,
}

impl Standin {
    /// Starts the stand-in as a new process: `exe` with `args` (which make that binary call
    /// `main_if_asked`) and the plan in the environment.
    pub fn spawn(exe: &Path, args: &[&str], plan: &Plan) -> Standin {
        let child = Command::new(exe)
            .args(args)
            .env(ENV, plan.encode())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the API stand-in");
        Standin { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to stop by itself and reads its counts.
    pub fn finish(self) -> Tally {
        let out = self
            .child
            .wait_with_output()
            .expect("wait for the stand-in");
        let stdout = String::from_utf8_lossy(&out.stdout);
        Tally::parse(&stdout).unwrap_or_else(|| {
            panic!(
                "the stand-in printed no counts ({:?})\nstdout: {stdout}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// In the re-executed binary: runs the stand-in when `MONK_API_STANDIN` is set, printing its
/// counts, and says whether it did.
pub fn main_if_asked() -> bool {
    let Ok(plan) = std::env::var(ENV) else {
        return false;
    };
    let t = run(&Plan::decode(&plan));
    for e in &t.errors {
        println!("standin error: {e}");
    }
    for (step, n) in &t.by_step {
        println!("standin step {step}={n}");
    }
    println!("standin requests={} failed={}", t.requests, t.failed);
    true
}

/// Runs the requests of `plan` in this process and counts them.
pub fn run(plan: &Plan) -> Tally {
    let mut t = Tally::default();
    let start = Instant::now();
    let interval = Duration::from_secs(1) / plan.rate.max(1);
    let mut next = start;
    while t.requests < plan.max_requests && start.elapsed() < plan.max_time {
        // Evenly spaced; a request that ran late is not made up for by a burst (failed
        // requests are quick, and a burst would count one lock many times over).
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
            next += interval;
        } else {
            next = now + interval;
        }
        t.requests += 1;
        if let Err(e) = request(plan, t.requests) {
            t.failed += 1;
            let step = e.split(':').next().unwrap_or_default().to_string();
            *t.by_step.entry(step).or_default() += 1;
            if t.errors.len() < 5 {
                t.errors.push(e);
            }
        }
    }
    t
}

/// One request, as the API serves it; the error names the step that failed.
fn request(plan: &Plan, n: u64) -> Result<(), String> {
    let step = |what: &'static str| move |e: rusqlite::Error| format!("{what}: {e}");
    let (database, schema) = {
        let infra = connect(&plan.infra).map_err(step("registry connect"))?;
        let row: Option<(String, String)> = infra
            .query_row(
                "SELECT database, schema FROM tenants WHERE name = ?1 AND is_active = 1 \
                 AND trashed_at IS NULL AND deleted_at IS NULL \
                 AND (status IS NULL OR status = '' OR status = 'active')",
                [&plan.tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(step("registry read"))?;
        let row = row.ok_or_else(|| format!("tenant {} not found or not active", plan.tenant))?;
        infra
            .execute(
                "UPDATE tenants SET status = 'active', updated_at = updated_at \
                 WHERE name = ?1 AND (status IS NULL OR status = '')",
                [&plan.tenant],
            )
            .map_err(step("registry lifecycle update"))?;
        infra.close().map_err(|(_, e)| step("registry close")(e))?;
        row
    };
    let path = plan.data_dir.join(database).join(format!("{schema}.db"));
    let conn = connect(&path).map_err(step("tenant connect"))?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(step("tenant begin immediate"))?;
    conn.execute(
        "INSERT INTO tracked (id, model_name, record_id, operation, changes) \
         VALUES (?1, 'widgets', ?1, 'create', '{}')",
        [format!("standin-{}-{n}", std::process::id())],
    )
    .map_err(step("tenant insert"))?;
    conn.execute_batch("COMMIT")
        .map_err(step("tenant commit"))?;
    conn.close().map_err(|(_, e)| step("tenant close")(e))?;
    Ok(())
}

/// The API's connect: busy timeout 0, then `PRAGMA journal_mode=WAL`.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    if !path.exists() {
        return Err(rusqlite::Error::InvalidPath(path.to_path_buf()));
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
    conn.execute_batch("PRAGMA foreign_keys=ON")?;
    Ok(conn)
}

/// How long some process held a database's write lock while it was watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holds {
    /// Separate holds seen.
    pub count: u32,
    /// All of them together.
    pub total: Duration,
    /// The longest one.
    pub longest: Duration,
}

/// Watches, from a thread of this process, whether another process than `ignored` (the
/// stand-in) holds the write lock of the database at `path`: the WAL write lock (byte 120 of
/// its `-shm`) or a rollback-mode RESERVED lock (or the PENDING lock of a checkpoint on close). It asks the operating system (`F_GETLK`) every 200 µs and never takes the lock, so it
/// fails no request. This process must not have a connection to the database meanwhile (each
/// look opens and closes the files, which drops this process's own locks on them).
pub struct LockWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Holds>,
}

impl LockWatch {
    pub fn start(path: &Path, ignored: u32) -> LockWatch {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (db, shm) = (
            path.to_path_buf(),
            PathBuf::from(format!("{}-shm", path.display())),
        );
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut h = Holds::default();
            let mut since: Option<Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                let by = |pid: Option<u32>| pid.is_some_and(|p| p != ignored);
                let held = by(write_locker(&shm, 120, 1)) || by(write_locker(&db, 0x4000_0000, 2));
                match (held, since) {
                    (true, None) => since = Some(now),
                    (false, Some(s)) => {
                        let d = now - s;
                        h.count += 1;
                        h.total += d;
                        h.longest = h.longest.max(d);
                        since = None;
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            if let Some(s) = since {
                let d = s.elapsed();
                h.count += 1;
                h.total += d;
                h.longest = h.longest.max(d);
            }
            h
        });
        LockWatch { stop, thread }
    }

    pub fn finish(self) -> Holds {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("lock watcher")
    }
}

/// The process holding a write lock on `len` bytes at `start` of `file`, if any.
fn write_locker(file: &Path, start: i64, len: i64) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(file).ok()?;
    // SAFETY: plain data zero-initialised then filled; F_GETLK only reads the file's locks.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_WRLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    lk.l_start = start as libc::off_t;
    lk.l_len = len as libc::off_t;
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut lk) };
    (rc == 0 && lk.l_type == libc::F_WRLCK as libc::c_short).then_some(lk.l_pid as u32)
}
