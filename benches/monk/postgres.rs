//! PostgreSQL figures, on the server `MONKCTL_TEST_PG_URL` names (an admin URL: run the suite as
//! `scripts/with-postgres cargo bench --bench monk -- postgres`), each in databases of its own
//! that are dropped afterwards:
//! 1. 1,000 tenants created by one `tenant create --from-file` against one `psql` session
//!    executing, per tenant, the API's tenant DDL and seed (`system.sql`) and the registry rows
//!    in one transaction; three rounds, the sides alternating, medians compared.
//! 2. `--format json tenant list` of 100,000 tenants (the 1,000 real schemas of figure 1 and
//!    registry rows without a schema for the rest) against `psql` printing the same JSON from one
//!    query; the two outputs are checked equal.
//! 3. One pending migration (`ALTER TABLE users ADD COLUMN nickname text`) over the 1,000 tenant
//!    schemas: `migrate up` with default jobs against `--jobs 1`, each on its own copy of the
//!    database of figure 1 (`CREATE DATABASE ... TEMPLATE`).
//! 4. `migrate up` with nothing pending over those 1,000 schemas (absolute), beside the same on a
//!    deployment of one tenant.
//!
//! `MONK_BENCH_TENANTS` and `MONK_BENCH_LIST` change the two sizes. Without a server the suite
//! prints a line saying it was skipped; with `MONKCTL_REQUIRE_POSTGRES=1` (set by
//! `scripts/with-postgres`) a server that cannot be used is an error instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use monkctl::core::backend::postgres::{find_client, SYSTEM_SQL};
use postgres::{Client, NoTls};

use crate::util::{median, monk, report, run_ok, scratch, settle, time};

pub(crate) const URL_VAR: &str = "MONKCTL_TEST_PG_URL";
const CREATE_N: usize = 1_000;
const LIST_N: usize = 100_000;
const ROUNDS: usize = 5;
/// Rounds of figure 1, the two sides alternating.
const CREATE_ROUNDS: usize = 3;
const MIGRATION: &str = "ALTER TABLE users ADD COLUMN nickname text;\n";

pub(crate) fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Stops the run: the server was promised (`MONKCTL_REQUIRE_POSTGRES=1`) but is not usable.
/// Otherwise says why the suite is skipped.
fn skip(why: &str) {
    if std::env::var("MONKCTL_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("postgres suite: {why} (MONKCTL_REQUIRE_POSTGRES=1)");
    }
    println!(
        "skipped: {why}; run it as `scripts/with-postgres cargo bench --bench monk -- postgres`"
    );
}

pub fn run() {
    let admin_url = match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => u,
        _ => return skip(&format!("no PostgreSQL server ({URL_VAR} is not set)")),
    };
    let Some(psql) = find_client("psql") else {
        return skip("psql was not found (PATH, `pg_config --bindir`, /usr/lib/postgresql/*/bin)");
    };
    let server = match Server::new(&admin_url, psql) {
        Ok(s) => s,
        Err(e) => return skip(&format!("the server of {URL_VAR} cannot be used: {e}")),
    };
    let n = size("MONK_BENCH_TENANTS", CREATE_N);
    let list_n = size("MONK_BENCH_LIST", LIST_N).max(n);
    let root = scratch("postgres");

    let created = create(&server, &root, n);
    // Two copies of the fleet for figure 3, taken before figure 2 adds rows to it.
    let par = server.copy(&created, "mig_par");
    let seq = server.copy(&created, "mig_seq");
    list(&root, &created, n, list_n);
    drop(created);
    migrate(&server, &root, &par, &seq, n);
    drop((par, seq));
    let _ = std::fs::remove_dir_all(&root);
}

/// The server, its admin URL and the `psql` to run against it.
pub(crate) struct Server {
    admin_url: String,
    psql: PathBuf,
}

/// A database of this run, dropped with its value.
pub(crate) struct Db<'a> {
    server: &'a Server,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl Server {
    pub(crate) fn new(admin_url: &str, psql: PathBuf) -> Result<Server, String> {
        let s = Server {
            admin_url: admin_url.to_string(),
            psql,
        };
        s.admin().map(|_| s)
    }

    fn admin(&self) -> Result<Client, String> {
        Client::connect(&self.admin_url, NoTls).map_err(|e| e.to_string())
    }

    /// Runs each statement on its own (`CREATE DATABASE` may not share a transaction).
    pub(crate) fn sql(&self, statements: &[&str]) {
        let mut c = self.admin().unwrap();
        for sql in statements {
            if let Err(e) = c.batch_execute(sql) {
                let why = e.as_db_error().map(|d| d.message().to_string());
                panic!("{sql}: {}", why.unwrap_or_else(|| e.to_string()));
            }
        }
    }

    fn db_named(&self, tag: &str) -> Db<'_> {
        let name = format!("monkctl_bench_{}_{tag}", std::process::id());
        Db {
            server: self,
            url: with_database(&self.admin_url, &name),
            name,
        }
    }

    /// A new empty database.
    pub(crate) fn database(&self, tag: &str) -> Db<'_> {
        let db = self.db_named(tag);
        self.sql(&[
            &format!("DROP DATABASE IF EXISTS \"{}\"", db.name),
            &format!("CREATE DATABASE \"{}\"", db.name),
        ]);
        db
    }

    /// A new database holding what `from` holds (no session may be connected to `from`).
    fn copy(&self, from: &Db<'_>, tag: &str) -> Db<'_> {
        let db = self.db_named(tag);
        self.sql(&[
            &format!("DROP DATABASE IF EXISTS \"{}\"", db.name),
            &format!(
                "CREATE DATABASE \"{}\" TEMPLATE \"{}\" STRATEGY FILE_COPY",
                db.name, from.name
            ),
        ]);
        db
    }
}

impl Drop for Db<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.server.admin() {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

impl Db<'_> {
    pub(crate) fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }

    pub(crate) fn scalar_i64(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }

    /// `monkctl --data-dir DATA --database-url URL`.
    pub(crate) fn monk(&self, data: &Path) -> Command {
        let mut c = monk(data);
        c.arg("--database-url").arg(&self.url);
        c
    }

    /// `psql` on this database: no psqlrc, stop at the first error, the password in its
    /// environment rather than on its command line.
    fn psql(&self) -> Command {
        let (url, password) = split_password(&self.url);
        let mut c = Command::new(&self.server.psql);
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"]).arg(url);
        match password {
            Some(p) => c.env("PGPASSWORD", p),
            None => c.env_remove("PGPASSWORD"),
        };
        c
    }
}

/// `url` with its path (the database) replaced by `name`, its query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `url` without its password, and the password (percent-decoding is left to the URL: a test
/// server's password is hex).
pub(crate) fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_string(), None);
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.find('@') else {
        return (url.to_string(), None);
    };
    let userinfo = &rest[..at];
    match userinfo.split_once(':') {
        Some((user, pw)) => (
            format!("{}{user}{}", &url[..scheme_end], &rest[at..]),
            Some(pw.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant_{i:05}")).collect()
}

/// The baseline of figure 1: per tenant, one transaction with the schema, the API's DDL and seed
/// rows, and the registry rows monkctl writes (`tenants` and the `system` fixture's row).
fn psql_create_script(names: &[String], database: &str) -> String {
    let mut s = String::from("SET TIME ZONE 'UTC';\n");
    for name in names {
        let schema = format!("ns_tenant_{name}");
        s.push_str(&format!(
            "BEGIN;\nCREATE SCHEMA {schema};\nSET LOCAL search_path TO {schema};\n{SYSTEM_SQL}\n\
             WITH t AS (INSERT INTO public.tenants (name, db_type, database, schema, owner_id) \
             VALUES ('{name}', 'postgresql', '{database}', '{schema}', \
             '00000000-0000-0000-0000-000000000000') RETURNING id)\n\
             INSERT INTO public.tenant_fixtures (tenant_id, fixture_name, deployed_at, version) \
             SELECT id, 'system', now() AT TIME ZONE 'UTC', 'bench' FROM t;\nCOMMIT;\n"
        ));
    }
    s
}

/// Relations in tenant schemas: the two ways of creating must build the same.
fn tenant_relations(db: &Db<'_>) -> i64 {
    db.scalar_i64(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname LIKE 'ns\\_tenant\\_%'",
    )
}

/// Figure 1, over `CREATE_ROUNDS` rounds that alternate the two sides (each in a new database),
/// so that a shared machine's slow moments fall on both; the medians are compared. Returns the
/// database monkctl filled last.
fn create<'a>(server: &'a Server, root: &Path, n: usize) -> Db<'a> {
    let names = names(n);
    let list = root.join("names.txt");
    std::fs::write(&list, names.join("\n")).unwrap();
    let count = |d: &Db<'_>| d.scalar_i64("SELECT count(*) FROM public.tenants");
    let mut psql_took = Vec::new();
    let mut monk_took = Vec::new();
    let mut last = None;
    // Before each timed side: the files of the databases dropped before it deleted and written
    // out, so that neither side pays for what the other left (a dropped database of 1,000
    // schemas is some 30,000 files).
    let quiet = || {
        server.sql(&["CHECKPOINT"]);
        settle();
    };
    for round in 0..CREATE_ROUNDS {
        drop(last.take());
        // The baseline, in a deployment monkctl initialised (the registry tables).
        let base = server.database("create_psql");
        run_ok(
            base.monk(&root.join(format!("data_psql{round}")))
                .arg("init"),
        );
        let script = root.join("create.sql");
        std::fs::write(&script, psql_create_script(&names, &base.name)).unwrap();
        quiet();
        let (d, _) = time(|| run_ok(base.psql().arg("-f").arg(&script)));
        psql_took.push(d);

        let db = server.database("create");
        let data = root.join(format!("data_create{round}"));
        run_ok(db.monk(&data).arg("init"));
        quiet();
        let (d, out) = time(|| {
            run_ok(
                db.monk(&data)
                    .args(["--format", "json", "tenant", "create", "--from-file"])
                    .arg(&list),
            )
        });
        monk_took.push(d);
        assert!(!out.stdout.is_empty());
        assert_eq!(count(&db), n as i64, "monkctl registered every tenant");
        assert_eq!(count(&base), n as i64, "psql registered every tenant");
        assert_eq!(
            tenant_relations(&db),
            tenant_relations(&base),
            "both built the same relations"
        );
        println!(
            "  create round {}: monkctl {:.0} ms, psql {:.0} ms",
            round + 1,
            d.as_secs_f64() * 1e3,
            psql_took[round].as_secs_f64() * 1e3
        );
        drop(base);
        last = Some(db);
    }
    report(
        &format!("create {n} tenants, one process (median of {CREATE_ROUNDS})"),
        median(monk_took),
        "one psql session, DDL+seed per tenant",
        median(psql_took),
        "<= 1.2x",
    );
    last.expect("at least one round")
}

/// The JSON of `monkctl --format json tenant list` as one query: the registry's rows that are
/// neither trashed nor deleted in name order, each schema's size (its tables with their indexes
/// and TOAST; null without a schema) and its fixtures in the order they were deployed.
const LIST_JSON: &str = r#"
SELECT coalesce(json_agg(json_build_object(
    'id', t.id::text,
    'name', t.name,
    'status', t.status,
    'owner_id', t.owner_id::text,
    'description', t.description,
    'created_at', to_char(t.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'trashed_at', to_char(t.trashed_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'deleted_at', to_char(t.deleted_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'path', NULL,
    'size_bytes', s.bytes,
    'fixtures', coalesce(f.names, '[]'::json)
) ORDER BY t.name COLLATE "C"), '[]'::json)
FROM public.tenants t
LEFT JOIN (
    SELECT n.nspname AS schema, sum(pg_total_relation_size(c.oid))::int8 AS bytes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname LIKE 'ns\_tenant\_%' AND c.relkind IN ('r', 'm', 'p')
    GROUP BY 1
) s ON s.schema = t.schema
LEFT JOIN (
    SELECT tenant_id, json_agg(fixture_name ORDER BY deployed_at, fixture_name) AS names
    FROM public.tenant_fixtures GROUP BY 1
) f ON f.tenant_id = t.id
WHERE t.trashed_at IS NULL AND t.deleted_at IS NULL AND t.status <> 'deleted'
"#;

/// Figure 2, on the database of figure 1 filled up to `list_n` registry rows.
fn list(root: &Path, db: &Db<'_>, n: usize, list_n: usize) {
    db.client()
        .batch_execute(&format!(
            "INSERT INTO public.tenants (name, db_type, database, schema, owner_id, description) \
             SELECT 'bulk_' || lpad(i::text, 6, '0'), 'postgresql', current_database(), \
               'ns_tenant_bulk_' || lpad(i::text, 6, '0'), '00000000-0000-0000-0000-000000000000', \
               'customer ' || i \
             FROM generate_series(1, {}) AS i; \
             INSERT INTO public.tenant_fixtures (tenant_id, fixture_name, deployed_at, version) \
             SELECT id, 'system', created_at, 'bench' FROM public.tenants WHERE name LIKE 'bulk\\_%'; \
             ANALYZE public.tenants; ANALYZE public.tenant_fixtures",
            list_n - n
        ))
        .unwrap();
    let data = root.join("data_create");
    let mut ours = Vec::new();
    let mut shell = Vec::new();
    let mut outputs = None;
    for _ in 0..ROUNDS {
        let (d, m) = time(|| run_ok(db.monk(&data).args(["--format", "json", "tenant", "list"])));
        ours.push(d);
        let (d, p) = time(|| run_ok(db.psql().args(["-A", "-t", "-c", LIST_JSON])));
        shell.push(d);
        outputs = Some((m.stdout, p.stdout));
    }
    let (m, p) = outputs.unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m).expect("monkctl's JSON");
    let p: serde_json::Value = serde_json::from_slice(&p).expect("psql's JSON");
    assert_eq!(
        m.as_array().map(|a| a.len()),
        Some(list_n),
        "monkctl listed every tenant"
    );
    assert!(m == p, "psql's JSON differs from monkctl's");
    report(
        &format!("list {list_n} tenants as JSON ({n} with a schema) (median of {ROUNDS})"),
        median(ours),
        "psql, json_agg of the same rows",
        median(shell),
        "<= 1.5x",
    );
}

fn up(db: &Db<'_>, data: &Path, mig: &Path, extra: &[&str]) -> (Duration, serde_json::Value) {
    let (took, out) = time(|| {
        run_ok(
            db.monk(data)
                .arg("--migrations")
                .arg(mig)
                .args(["--format", "json", "migrate", "up"])
                .args(extra),
        )
    });
    (took, serde_json::from_slice(&out.stdout).expect("json"))
}

/// Figures 3 and 4.
fn migrate(server: &Server, root: &Path, par: &Db<'_>, seq: &Db<'_>, n: usize) {
    let mig = root.join("mig");
    std::fs::create_dir_all(&mig).unwrap();
    std::fs::write(mig.join("V100__add_nickname.sql"), MIGRATION).unwrap();

    let (seq_took, v) = up(seq, &root.join("data_seq"), &mig, &["--jobs", "1"]);
    assert_eq!(
        v["summary"]["migrated"], n,
        "--jobs 1 migrated every tenant: {v}"
    );
    let (par_took, v) = up(par, &root.join("data_par"), &mig, &[]);
    assert_eq!(
        v["summary"]["migrated"], n,
        "default jobs migrated every tenant: {v}"
    );
    let column = "SELECT count(*) FROM information_schema.columns \
                  WHERE table_schema LIKE 'ns\\_tenant\\_%' AND table_name = 'users' \
                  AND column_name = 'nickname'";
    assert_eq!(par.scalar_i64(column), n as i64);
    assert_eq!(seq.scalar_i64(column), n as i64);
    println!("{n} tenant schemas, one pending migration (ADD COLUMN), each run on its own copy");
    report(
        "migrate up, default jobs vs the same run on one connection",
        par_took,
        "migrate up --jobs 1",
        seq_took,
        "<= 0.59x (1.7x faster)",
    );

    // Nothing pending: the fleet just migrated, and a deployment of one tenant.
    let one = server.database("one");
    let data_one = root.join("data_one");
    run_ok(one.monk(&data_one).arg("init"));
    run_ok(one.monk(&data_one).args(["tenant", "create", "solo"]));
    up(&one, &data_one, &mig, &[]);
    let mut fleet = Vec::new();
    let mut single = Vec::new();
    for _ in 0..ROUNDS {
        let (d, v) = up(par, &root.join("data_par"), &mig, &[]);
        assert_eq!(v["summary"]["up_to_date"], n, "nothing pending: {v}");
        fleet.push(d);
        let (d, v) = up(&one, &data_one, &mig, &[]);
        assert_eq!(v["summary"]["up_to_date"], 1, "nothing pending: {v}");
        single.push(d);
    }
    report(
        &format!("migrate up, nothing pending, {n} schemas (median of {ROUNDS})"),
        median(fleet),
        "the same on 1 tenant",
        median(single),
        "< 1 s",
    );
}
