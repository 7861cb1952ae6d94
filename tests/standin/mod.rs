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
}

impl Tally {
    /// Reads the stand-in's output: its `error:` lines and its `requests=N failed=M` line.
    pub fn parse(out: &str) -> Option<Tally> {
        let mut t = Tally::default();
        let mut found = false;
        for line in out.lines() {
            if let Some(e) = line.strip_prefix("standin error: ") {
                t.errors.push(e.to_string());
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
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        t.requests += 1;
        if let Err(e) = request(plan, t.requests) {
            t.failed += 1;
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
