//! The server the tests run on, and each case's own database on it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use postgres::types::FromSqlOwned;
use postgres::{Client, Config, NoTls};

use crate::common::Env;

/// The PostgreSQL server of the run, reached through its admin URL (`MONKCTL_TEST_PG_URL`).
pub struct Server {
    admin_url: String,
}

/// Numbers the databases this process creates: `monkctl_test_<pid>_<n>`.
static NEXT_DB: AtomicU64 = AtomicU64::new(1);

impl Server {
    /// Checks that `admin_url` reaches a server on which its user may create databases.
    pub fn connect(admin_url: &str) -> Result<Server, String> {
        if !admin_url.contains("://") {
            return Err(format!(
                "{} must be a URL, postgresql://USER:PASSWORD@HOST:PORT/DATABASE, not '{}'",
                crate::URL_VAR,
                masked(admin_url)
            ));
        }
        let server = Server {
            admin_url: admin_url.to_string(),
        };
        let mut c = server.admin_client().map_err(|e| {
            format!(
                "cannot use the PostgreSQL server of {}: {e}",
                crate::URL_VAR
            )
        })?;
        let may_create: bool = c
            .query_one(
                "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .map_err(|e| pg_error(&e))?
            .get(0);
        if !may_create {
            return Err(format!(
                "the user of {} ({}) may not create databases; the tests need one that may \
                 (ALTER ROLE ... CREATEDB)",
                masked(admin_url),
                crate::URL_VAR
            ));
        }
        Ok(server)
    }

    /// The admin URL, with its password.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A new connection to the admin URL's database.
    pub fn admin_client(&self) -> Result<Client, String> {
        connect(&self.admin_url)
    }

    /// A new empty database, `monkctl_test_<pid>_<n>`, with a temporary data directory beside
    /// it. The runner gives one to every case; a case that needs a second one makes it here and
    /// ends it with `drop_database` or `keep`.
    pub fn fresh_database(self: &Arc<Self>) -> Result<PgDb, String> {
        let mut admin = self.admin_client()?;
        loop {
            let name = format!(
                "monkctl_test_{}_{}",
                std::process::id(),
                NEXT_DB.fetch_add(1, Ordering::SeqCst)
            );
            match admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
                Ok(()) => {
                    return Ok(PgDb {
                        url: with_database(&self.admin_url, &name),
                        name,
                        server: self.clone(),
                        env: Env::new(),
                    })
                }
                // Left by an earlier process with the same id (a failed case keeps its
                // database): take the next number.
                Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE) => {
                    continue
                }
                Err(e) => return Err(format!("CREATE DATABASE {name}: {}", pg_error(&e))),
            }
        }
    }
}

/// A case's own database on the server, and its own data directory.
pub struct PgDb {
    name: String,
    url: String,
    server: Arc<Server>,
    env: Env,
}

impl PgDb {
    /// The database's name, `monkctl_test_<pid>_<n>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of this database, with the admin user and its password: what monkctl gets as
    /// `--database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `url()` with another password, for a case that needs a wrong one.
    pub fn url_with_password(&self, password: &str) -> String {
        let (bare, _) = split_password(&self.url);
        let (scheme, rest) = bare.split_once("://").expect("a URL");
        let at = rest.find('@').expect("a user in the URL");
        format!("{scheme}://{}:{password}{}", &rest[..at], &rest[at..])
    }

    /// The server, for a case that needs its admin connection or another database.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// A new connection to this database.
    #[track_caller]
    pub fn client(&self) -> Client {
        match connect(&self.url) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// Executes `sql` (any number of statements, no parameters) in this database.
    #[track_caller]
    pub fn sql(&self, sql: &str) {
        if let Err(e) = self.client().batch_execute(sql) {
            panic!("{}\nin SQL:\n{sql}", pg_error(&e));
        }
    }

    /// The first column of the one row `query` returns.
    #[track_caller]
    pub fn scalar<T: FromSqlOwned>(&self, query: &str) -> T {
        let row = match self.client().query_one(query, &[]) {
            Ok(row) => row,
            Err(e) => panic!("{}\nin query: {query}", pg_error(&e)),
        };
        match row.try_get(0) {
            Ok(v) => v,
            Err(e) => panic!("{e}\nin query: {query}"),
        }
    }

    /// The case's data directory (`--data-dir` of `monkctl()`); it does not exist until
    /// something creates it, and goes with the case.
    pub fn data_dir(&self) -> PathBuf {
        self.env.data()
    }

    /// The case's temporary directory (holding the data directory), for the helpers of
    /// `tests/common` (`common::fixture(db.env(), ...)`) and `env().cmd()` without a URL.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// `monkctl --data-dir <data_dir()> --database-url <url()>`, run in the case's temporary
    /// directory with a clean environment (see `common::Env::cmd`).
    pub fn monkctl(&self) -> assert_cmd::Command {
        let mut cmd = self.env.cmd();
        cmd.arg("--database-url").arg(&self.url);
        cmd
    }

    /// Restores `tests/data/postgres/monk.dump` (what Monk API 6.2 wrote on PostgreSQL 15: the
    /// registry in `public`, tenants `acme`, with 3 `widgets`, and `globex`) into this
    /// database with `pg_restore --no-owner`. The registry rows still say
    /// `database = 'monk'`, the name of the database the API wrote them in.
    #[track_caller]
    pub fn restore_reference_dump(&self) {
        let dump = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/postgres/monk.dump");
        let pg_restore = pg_bin("pg_restore");
        let (url, password) = split_password(&self.url);
        let mut cmd = std::process::Command::new(&pg_restore);
        cmd.args(["--no-owner", "--exit-on-error", "--dbname"])
            .arg(&url)
            .arg(&dump);
        // The password goes by the environment, not the command line.
        match password {
            Some(p) => cmd.env("PGPASSWORD", p),
            None => cmd.env_remove("PGPASSWORD"),
        };
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) => panic!("run {}: {e}", pg_restore.display()),
        };
        assert!(
            out.status.success(),
            "pg_restore of {} into {} failed ({}):\n{}",
            dump.display(),
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Drops the database (ending whatever is still connected to it) and the data directory:
    /// the end of a passed case.
    pub fn drop_database(self) -> Result<(), String> {
        let mut admin = self.server.admin_client()?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .map_err(|e| format!("DROP DATABASE {}: {}", self.name, pg_error(&e)))
    }

    /// Keeps the database and the data directory for a look after a failed case; says where.
    pub fn keep(self) -> String {
        let dir = self.env.dir.keep();
        format!(
            "kept for inspection: database {} on {} ({}), data directory {}",
            self.name,
            masked(&self.server.admin_url),
            crate::URL_VAR,
            dir.join("data").display()
        )
    }
}

/// A server of a case's own, started by `scripts/with-postgres` (which needs PostgreSQL's
/// server binaries on this machine): for a case that stops a server under monkctl. Its admin
/// URL is `url()`; `stop()` (or dropping it) ends it as a signal to the script would.
pub struct PrivateServer {
    child: std::process::Child,
    url: String,
}

impl PrivateServer {
    #[track_caller]
    pub fn start() -> PrivateServer {
        PrivateServer::start_running("cat >/dev/null")
    }

    /// The server, with `script` (sh) run beside it once its URL is printed: the script's
    /// standard input is the `stdin()` of the returned server.
    #[track_caller]
    pub fn start_running(script: &str) -> PrivateServer {
        use std::io::BufRead;
        let with_postgres = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/with-postgres");
        let mut child = match std::process::Command::new(&with_postgres)
            .args(["sh", "-c"])
            .arg(format!("printf '%s\\n' \"$MONKCTL_TEST_PG_URL\"; {script}"))
            .env_remove(crate::URL_VAR)
            .env_remove(crate::REQUIRE_VAR)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("run {}: {e}", with_postgres.display()),
        };
        let mut line = String::new();
        let read =
            std::io::BufReader::new(child.stdout.as_mut().expect("piped")).read_line(&mut line);
        let url = line.trim().to_string();
        if read.is_err() || !url.starts_with("postgresql://") {
            let _ = child.kill();
            let out = child
                .wait_with_output()
                .expect("wait for scripts/with-postgres");
            panic!(
                "scripts/with-postgres started no server ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        PrivateServer { child, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The script's standard input (closing it ends the default `cat`, and so the server).
    pub fn stdin(&mut self) -> &mut Option<std::process::ChildStdin> {
        &mut self.child.stdin
    }

    /// Sends `signal` to scripts/with-postgres and waits for it to end, server and all.
    pub fn signal(mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the id of a child process this value owns and has not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        self.child.wait().expect("wait for scripts/with-postgres")
    }

    /// Stops the server (SIGTERM) and waits for the script.
    pub fn stop(self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM)
    }

    /// Waits for the script to end by itself.
    pub fn wait(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        self.child.wait().expect("wait for scripts/with-postgres")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

/// A connection to `url`, without TLS, giving up on an unreachable server after 10 s.
fn connect(url: &str) -> Result<Client, String> {
    let mut config = Config::from_str(url)
        .map_err(|e| format!("{} is not a PostgreSQL URL: {e}", masked(url)))?;
    config.connect_timeout(Duration::from_secs(10));
    config
        .connect(NoTls)
        .map_err(|e| format!("connect to {}: {}", masked(url), pg_error(&e)))
}

/// An error with what the server said: its message, detail and hint.
pub fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!("\nDETAIL: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("\nHINT: {h}"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// `url` naming `database` instead of its own (query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = base.split_once('/').map_or(base, |(a, _)| a);
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `url` without its password, and the password (percent-decoded), if it has one.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_string(), None);
    };
    let Some((user, password)) = rest[..at].split_once(':') else {
        return (url.to_string(), None);
    };
    (
        format!("{scheme}://{user}{}", &rest[at..]),
        Some(percent_decode(password)),
    )
}

/// `url` with its password shown as `***`, for messages.
pub fn masked(url: &str) -> String {
    match split_password(url) {
        (bare, Some(_)) => {
            let (scheme, rest) = bare.split_once("://").expect("a URL");
            let at = rest.find('@').expect("user before @");
            format!("{scheme}://{}:***{}", &rest[..at], &rest[at..])
        }
        (bare, None) => bare,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A PostgreSQL program: from `pg_config --bindir`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`, else the PATH.
pub fn pg_bin(program: &str) -> PathBuf {
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|d| std::cmp::Reverse(d.0));
    from_pg_config
        .into_iter()
        .chain(debian.into_iter().map(|(_, dir)| dir))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}
