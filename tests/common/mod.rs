//! Shared helpers for the integration tests: a temporary data directory and the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

/// A temporary working directory with a data directory inside it (`<tmp>/data`).
pub struct Env {
    pub dir: TempDir,
    /// The data directory, relative to `dir`.
    data: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        Env::with_data_dir("data")
    }

    /// The data directory at `<tmp>/<relative>` instead: for a test that mounts a file system
    /// of its own at a parent of it (see `tests/fulldisk.rs`).
    pub fn with_data_dir(relative: &str) -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            data: PathBuf::from(relative),
        }
    }

    /// A temporary directory made in `base` (not the system's temporary directory): for a
    /// test whose output must not depend on `TMPDIR`'s length.
    pub fn new_in(base: &Path) -> Env {
        Env {
            dir: tempfile::tempdir_in(base).expect("tempdir"),
            data: PathBuf::from("data"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join(&self.data)
    }

    /// `monkctl --data-dir <data> ARGS`, run in the temporary directory with a clean environment.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// `cmd()` as a `std::process::Command`, for a test that wires stdout itself.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_monkctl"));
        c.current_dir(self.root())
            .env_remove("MONK_DATA_DIR")
            .env_remove("DATABASE_URL")
            .env_remove("MONK_CONFIG")
            .env_remove("MONK_FIXTURES_DIR")
            .env_remove("MONK_MIGRATIONS_DIR")
            .env_remove("MONK_LAYOUT")
            .env("HOME", self.root())
            .env("XDG_CONFIG_HOME", self.root().join("xdg"))
            // The system temporary directory too, so that what `doctor` finds there is the
            // test's own.
            .env("TMPDIR", self.root())
            .arg("--data-dir")
            .arg(self.data());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run monkctl")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "monkctl {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs and asserts the exit code; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "monkctl {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// Runs with `--format json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--format", "json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    /// Runs `monkctl ARGS` until it pauses at pause point `point`, sends it Ctrl-C (SIGINT),
    /// checks that it says it was interrupted, lets it go on and returns its output.
    pub fn interrupted_at(&self, point: &str, args: &[&str]) -> Output {
        use std::io::BufRead;
        let resume = self.root().join(format!("resume-{point}"));
        let mut child = self
            .std_cmd()
            .args(args)
            .env("MONKCTL_PAUSE_AT", point)
            .env("MONKCTL_RESUME_WHEN", &resume)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run monkctl");
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        while !line.contains(&format!("paused at {point}")) {
            line.clear();
            assert!(
                err.read_line(&mut line).expect("stderr") > 0,
                "monkctl {args:?} never paused at {point}"
            );
        }
        // SAFETY: kill(2) on the id of a child this test spawned and has not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        // The handler says what happens before the tenant in progress goes on.
        line.clear();
        err.read_line(&mut line).expect("stderr");
        assert!(line.contains("interrupted"), "{line}");
        std::fs::write(&resume, "").expect("resume");
        let mut out = child.wait_with_output().expect("wait");
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut rest).expect("stderr");
        out.stderr = rest;
        out
    }

    pub fn infra(&self) -> PathBuf {
        self.data().join("infra/monk.db")
    }

    pub fn tenant_file(&self, name: &str) -> PathBuf {
        self.data().join(format!("db_main/ns_tenant_{name}.db"))
    }

    /// Opens a database file directly for assertions. On the infra database it behaves like
    /// monkctl's own connections there, which leave the WAL to the API (no checkpoint on close),
    /// so that looking at the registry does not change it.
    pub fn open(&self, path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).expect("open sqlite");
        if path == self.infra() {
            c.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .expect("db config");
        }
        c
    }
}

/// Writes `<root>/fixtures/<name>/` with a manifest and files.
pub fn fixture(env: &Env, name: &str, manifest: &str, files: &[(&str, &[u8])]) {
    let dir = env.root().join("fixtures").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fixture.toml"), manifest).unwrap();
    for (f, content) in files {
        std::fs::write(dir.join(f), content).unwrap();
    }
}

/// Every file below `dir` with its size and modification time, for "nothing changed" checks.
/// `-shm` files are left out: they are SQLite's shared-memory index, written by every reader
/// (the API's included), and hold no data. Lock files count by presence and size only.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                walk(&p, out);
            } else if p.parent().is_some_and(|d| d.ends_with("locks")) {
                // A lock file is written while held (its holder) and emptied on release: its
                // presence and size count, not when it was last taken.
                out.push((p, m.len(), std::time::SystemTime::UNIX_EPOCH));
            } else if !p.to_string_lossy().ends_with("-shm") {
                out.push((p, m.len(), m.modified().expect("mtime")));
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

/// Every row of every table of a database, as text, sorted: for "data unchanged" checks.
pub fn table_rows(c: &rusqlite::Connection) -> Vec<String> {
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let mut st = c
            .prepare(&format!("SELECT * FROM \"{}\"", t.replace('"', "\"\"")))
            .unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let vals: Vec<String> = (0..n)
                .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect();
            out.push(format!("{t}: {}", vals.join(", ")));
        }
    }
    out.sort();
    out
}
