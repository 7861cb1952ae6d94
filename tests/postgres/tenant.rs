//! `tenant` commands on a PostgreSQL deployment: the API's reference deployment administered,
//! a created tenant against the API's own, whole-or-nothing creation, the lifecycle and bad
//! input. Each case checks the database with its own connection, as the API would see it.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::pgdb::{masked, pg_bin, split_password, with_database, PrivateServer};
use crate::PgDb;

cases![
    reference_deployment_is_listed_shown_and_healthy,
    a_write_adopts_the_api_registry_without_changing_its_data,
    a_created_tenant_equals_the_one_the_api_created,
    create_writes_the_registry_row_and_owner_as_the_api_does,
    existing_names_are_refused_deleted_ones_included,
    concurrent_creates_of_one_name_leave_one_tenant,
    a_create_killed_before_its_commit_leaves_nothing,
    a_batch_from_a_file_creates_every_tenant,
    a_batch_with_a_taken_name_creates_the_others,
    a_create_locks_the_registry_only_at_its_end,
    a_lock_held_on_the_registry_makes_commands_busy_and_changes_nothing,
    the_longest_name_fits_a_postgresql_identifier,
    skip_existing_leaves_an_existing_tenant_as_it_is,
    trash_suspend_and_back_set_the_api_columns,
    delete_keeps_the_schema_and_undelete_brings_it_back,
    purge_archives_the_schema_then_drops_it,
    a_purge_killed_after_its_archive_drops_nothing,
    purging_the_tenant_holding_pgcrypto_keeps_the_deployment_working,
    purging_the_apis_first_tenant_keeps_the_api_deployment_working,
    init_makes_the_registry_once,
    bad_names_are_refused_before_anything_is_written,
    a_wrong_password_is_refused_and_never_shown,
    a_missing_database_is_not_found,
    an_absent_server_is_unreachable,
    a_server_that_goes_away_is_unreachable,
    config_never_prints_the_password,
    an_extract_to_a_missing_directory_changes_nothing,
];

// ---- helpers, shared with doctor.rs ----

/// `monkctl ARGS` on the case's database.
pub fn run(db: &PgDb, args: &[&str]) -> Output {
    db.monkctl().args(args).output().expect("run monkctl")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs and asserts success; returns stdout.
#[track_caller]
pub fn ok(db: &PgDb, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(out.status.success(), "monkctl {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs and asserts the exit code; returns stderr.
#[track_caller]
pub fn fails(db: &PgDb, args: &[&str], code: i32) -> String {
    let out = run(db, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "monkctl {args:?}: {}",
        text(&out)
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// Runs with `--format json`, asserts success and parses stdout.
#[track_caller]
pub fn json(db: &PgDb, args: &[&str]) -> Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(db, &a)).expect("json output")
}

/// The first column of every row `query` returns, as text.
#[track_caller]
pub fn column(db: &PgDb, query: &str) -> Vec<String> {
    match db.client().query(query, &[]) {
        Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect(),
        Err(e) => panic!("{}\nin query: {query}", crate::pgdb::pg_error(&e)),
    }
}

/// The `ns_tenant_*` schemas of the database, by name.
pub fn tenant_schemas(db: &PgDb) -> Vec<String> {
    column(
        db,
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'ns\\_tenant\\_%' ORDER BY 1",
    )
}

/// Every registry row, as `to_jsonb` gives it, by name.
pub fn registry(db: &PgDb) -> Vec<Value> {
    column(
        db,
        "SELECT to_jsonb(t)::text FROM public.tenants t ORDER BY name",
    )
    .iter()
    .map(|s| serde_json::from_str(s).unwrap())
    .collect()
}

/// The registry row of `name`, as `to_jsonb` gives it.
#[track_caller]
pub fn row(db: &PgDb, name: &str) -> Value {
    registry(db)
        .into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no registry row for {name}"))
}

/// Every row of one table (`schema.table`), as text, sorted.
pub fn table_rows(db: &PgDb, table: &str) -> Vec<String> {
    column(db, &format!("SELECT t::text FROM {table} t ORDER BY 1"))
}

/// Every row of every table of `schema`, as `table: row`, sorted: for "data unchanged" checks.
pub fn schema_rows(db: &PgDb, schema: &str) -> Vec<String> {
    let tables = column(
        db,
        &format!(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = '{schema}' AND c.relkind = 'r' ORDER BY 1"
        ),
    );
    let mut out = Vec::new();
    for t in tables {
        for r in table_rows(db, &format!("\"{schema}\".\"{t}\"")) {
            out.push(format!("{t}: {r}"));
        }
    }
    out
}

/// `pg_dump --schema-only --no-owner ARGS` of the database `url` names, without what differs
/// between two dumps of the same thing (comments, blank lines, `\restrict` lines), as
/// tests/data/postgres/compare-ddl.sh cleans it.
pub fn clean_dump(url: &str, args: &[&str]) -> String {
    let out = pg_tool("pg_dump", url)
        .args(["--schema-only", "--no-owner"])
        .args(args)
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("--")
                && !l.is_empty()
                && !l.starts_with("\\restrict ")
                && !l.starts_with("\\unrestrict ")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A PostgreSQL client program for the database `url` names, its password in the environment.
pub fn pg_tool(program: &str, url: &str) -> std::process::Command {
    let (bare, password) = split_password(url);
    let mut cmd = std::process::Command::new(pg_bin(program));
    cmd.arg("--dbname").arg(bare);
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    cmd
}

/// The data directory's trash archive of a purged tenant.
fn archive_of(db: &PgDb, schema: &str, id: &str) -> PathBuf {
    db.data_dir().join(format!("trash/{schema}-{id}.pgdump"))
}

/// `monkctl` on the case's database as a `std::process::Command` (for spawning), with `env`.
pub fn spawn(db: &PgDb, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = db.env().std_cmd();
    c.arg("--database-url").arg(db.url()).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn monkctl")
}

/// Reads the child's stderr until it says `paused at POINT`; the rest of stderr is returned by
/// the thread the reader continues on.
#[track_caller]
pub fn wait_paused(child: &mut Child, point: &str) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let want = format!("paused at {point}");
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut lines = std::io::BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if line == want {
                let _ = tx.send(());
            }
        }
        seen
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "monkctl never paused at {point}: {}",
            reader.join().unwrap_or_default()
        );
    }
    reader
}

/// SIGKILL, as a crash would end it.
pub fn kill9(child: &mut Child) {
    // SAFETY: kill(2) on the id of a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
}

/// Waits until no session of monkctl is left on the case's database (a killed client's
/// session ends when the server notices the closed connection).
#[track_caller]
pub fn no_monkctl_session(db: &PgDb) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'monkctl' \
             AND datname = current_database()",
        );
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < until,
            "a monkctl session is still open 20 s after its process ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

const ROOT_ID: &str = "00000000-0000-0000-0000-000000000000";

/// What the reference dump holds (tests/data/postgres/infra-data.sql).
const ACME_ID: &str = "85a81de8-126e-47db-bdc8-a49b1cd9ba7c";
const ACME_OWNER: &str = "8b5a56e2-28fe-4b2d-befb-d519249c3b35";
const GLOBEX_ID: &str = "34d61570-9019-4219-a187-c4e43fda227c";

fn reference_file(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/postgres")
            .join(name),
    )
    .unwrap()
}

// ---- 1. the reference deployment ----

fn reference_deployment_is_listed_shown_and_healthy(db: &PgDb) {
    db.restore_reference_dump();
    // The constants are the dump's: the data-only dump of the registry names them.
    let infra = reference_file("infra-data.sql");
    let line = |id: &str| {
        infra
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not in infra-data.sql"))
            .to_string()
    };
    assert!(line(ACME_ID).contains(ACME_OWNER) && line(ACME_ID).contains("'acme'"));
    assert!(line(GLOBEX_ID).contains(ROOT_ID) && line(GLOBEX_ID).contains("'globex'"));
    let public_before = clean_dump(db.url(), &["--schema", "public"]);

    let v = json(db, &["tenant", "list"]);
    assert_eq!(names(&v), ["acme", "globex"], "{v:#}");
    assert_eq!(v[0]["id"], ACME_ID);
    assert_eq!(v[0]["owner_id"], ACME_OWNER);
    assert_eq!(v[1]["id"], GLOBEX_ID);
    assert_eq!(v[1]["owner_id"], ROOT_ID);
    for t in v.as_array().unwrap() {
        assert_eq!(t["status"], "active");
        assert!(t["path"].is_null(), "{t}");
        assert!(
            t["size_bytes"].as_u64().unwrap() > 100_000,
            "a schema of ten tables with indexes measures more: {t}"
        );
        assert!(t["created_at"].as_str().unwrap().ends_with('Z'), "{t}");
    }

    let acme = json(db, &["tenant", "show", "acme"]);
    assert_eq!(acme["owner_name"], "admin", "{acme:#}");
    assert_eq!(acme["database"], "monk");
    assert_eq!(acme["schema"], "ns_tenant_acme");
    assert_eq!(acme["db_type"], "postgresql");
    assert_eq!(acme["file_exists"], true);
    assert_eq!(acme["purged"], false);
    assert!(acme["file_error"].is_null(), "{acme:#}");
    let count = |t: &Value, table: &str| {
        t["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["table"] == table)
            .map(|c| c["row_count"].as_i64().unwrap())
    };
    assert_eq!(count(&acme, "widgets"), Some(3), "{acme:#}");
    assert_eq!(count(&acme, "users"), Some(2));
    let globex = json(db, &["tenant", "show", "globex"]);
    assert_eq!(globex["owner_name"], "Root User", "{globex:#}");
    assert_eq!(count(&globex, "models"), Some(7));
    assert_eq!(count(&globex, "fields"), Some(68));
    assert_eq!(count(&globex, "widgets"), None);
    // The table form shows them too.
    let table = ok(db, &["tenant", "show", "acme"]);
    assert!(table.contains("widgets (3)"), "{table}");

    let out = run(db, &["--format", "json", "doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "healthy", "{report:#}");
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["summary"]["warnings"], 0);
    assert_eq!(report["summary"]["tenants_checked"], 2);
    for f in report["findings"].as_array().unwrap() {
        assert_eq!(f["severity"], "info", "{report:#}");
        assert_eq!(f["code"], "infra_migrations_pending", "{report:#}");
    }

    // Reading adopts nothing: the API's registry is as the dump left it.
    assert_eq!(
        clean_dump(db.url(), &["--schema", "public"]),
        public_before,
        "a read-only command changed schema public"
    );
    assert!(db
        .scalar::<Option<String>>("SELECT to_regclass('public.refinery_schema_history')::text")
        .is_none());
}

fn a_write_adopts_the_api_registry_without_changing_its_data(db: &PgDb) {
    db.restore_reference_dump();
    // Rows in the API's tables monkctl does not own.
    db.sql(&format!(
        "INSERT INTO public.processes (tenant, db_type, db_name, ns_name, uid, access, comm, \
           cmdline, environ) \
         VALUES ('acme', 'postgresql', 'monk', 'ns_tenant_acme', '{ACME_OWNER}', 'root', 'ls', \
           ARRAY['ls', '-l'], '{{\"HOME\": \"/\"}}'); \
         INSERT INTO public.auth0_identity_mappings (issuer, subject, tenant_id, user_id) \
         VALUES ('https://auth.example/', 'auth0|42', '{ACME_ID}', '{ACME_OWNER}');"
    ));
    let not_ours = |db: &PgDb| {
        (
            table_rows(db, "public.processes"),
            table_rows(db, "public.auth0_identity_mappings"),
            clean_dump(
                db.url(),
                &[
                    "--table",
                    "public.processes",
                    "--table",
                    "public.auth0_identity_mappings",
                ],
            ),
        )
    };
    let others_before = not_ours(db);
    let rows_before = registry(db);
    let tenant_data_before = (
        schema_rows(db, "ns_tenant_acme"),
        schema_rows(db, "ns_tenant_globex"),
    );

    let v = json(db, &["tenant", "trash", "globex"]);
    assert_eq!(v["changed"], true, "{v:#}");
    let trashed = row(db, "globex");
    assert!(trashed["trashed_at"].is_string(), "{trashed:#}");
    assert_eq!(
        db.scalar::<i64>("SELECT max(version)::int8 FROM public.refinery_schema_history"),
        2,
        "the write did not adopt the registry"
    );
    let v = json(db, &["tenant", "untrash", "globex"]);
    assert_eq!(v["changed"], true, "{v:#}");

    let rows_after = registry(db);
    assert_eq!(rows_after.len(), rows_before.len());
    for (before, after) in rows_before.iter().zip(&rows_after) {
        let (mut before, mut after) = (before.clone(), after.clone());
        if before["name"] == "globex" {
            assert_ne!(
                before["updated_at"], after["updated_at"],
                "updated_at of globex"
            );
            assert!(after["trashed_at"].is_null(), "{after:#}");
            for v in [&mut before, &mut after] {
                let o = v.as_object_mut().unwrap();
                o.remove("updated_at");
                o.remove("trashed_at");
            }
        }
        assert_eq!(before, after, "a registry row changed beyond the command");
    }
    assert_eq!(
        not_ours(db),
        others_before,
        "processes or auth0 mappings changed"
    );
    assert_eq!(
        (
            schema_rows(db, "ns_tenant_acme"),
            schema_rows(db, "ns_tenant_globex")
        ),
        tenant_data_before
    );
    // The adopted registry is up to date: doctor has nothing to say at all.
    let report = json(db, &["doctor"]);
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    // And it keeps working: a new tenant beside the API's.
    ok(db, &["tenant", "create", "initech"]);
    assert_eq!(
        names(&json(db, &["tenant", "list"])),
        ["acme", "globex", "initech"]
    );
}

// ---- 2. a created tenant equals the API's ----

/// For every table of `schema` in `db`, a query giving its rows as `table: (values)`, uuids other
/// than the root id and every timestamp masked: the SQL of tests/data/postgres/compare-ddl.sh.
fn masked_rows_query(db: &PgDb, schema: &str) -> String {
    let parts = column(
        db,
        &format!(
            "SELECT format('SELECT %L || '': '' || ROW(%s)::text FROM {schema}.%I', c.relname, \
               string_agg( \
                 CASE \
                   WHEN a.atttypid = 'uuid'::regtype THEN format( \
                     'CASE WHEN %1$I IS NULL THEN NULL WHEN %1$I = %2$L THEN %1$I::text ELSE ''<uuid>'' END', \
                     a.attname, '{ROOT_ID}') \
                   WHEN a.atttypid IN ('timestamp'::regtype, 'timestamptz'::regtype) THEN format( \
                     'CASE WHEN %1$I IS NULL THEN NULL ELSE ''<timestamp>'' END', a.attname) \
                   ELSE format('%I', a.attname) \
                 END, ', ' ORDER BY a.attnum), \
               c.relname) \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = '{schema}' AND c.relkind = 'r' \
             GROUP BY c.relname ORDER BY c.relname"
        ),
    );
    assert_eq!(parts.len(), 9, "the nine system tables of {schema}");
    format!("{} ORDER BY 1", parts.join(" UNION ALL "))
}

fn a_created_tenant_equals_the_one_the_api_created(db: &PgDb) {
    // As the API made them: acme (owner admin) first, then globex.
    ok(db, &["tenant", "create", "acme", "--owner", "admin"]);
    ok(db, &["tenant", "create", "globex"]);
    let api = db.server().fresh_database().unwrap();
    api.restore_reference_dump();

    let ours = clean_dump(db.url(), &["--schema", "ns_tenant_globex"]);
    let theirs = clean_dump(api.url(), &["--schema", "ns_tenant_globex"]);
    assert!(
        ours.contains("CREATE TABLE ns_tenant_globex.users"),
        "{ours}"
    );
    if ours != theirs {
        let diff: Vec<String> = diff_lines(&theirs, &ours);
        panic!(
            "pg_dump --schema-only of ns_tenant_globex differs from the API's:\n{}",
            diff.join("\n")
        );
    }

    let query = masked_rows_query(&api, "ns_tenant_globex");
    let seq = "SELECT 'sequence tracked_change_id_seq: ' || last_value || ' ' || is_called \
               FROM ns_tenant_globex.tracked_change_id_seq";
    let (our_rows, their_rows) = (column(db, &query), column(&api, &query));
    assert!(their_rows.len() > 70, "{their_rows:?}");
    if our_rows != their_rows {
        panic!(
            "the seed rows of ns_tenant_globex differ from the API's (ids and timestamps masked):\n{}",
            diff_lines(&their_rows.join("\n"), &our_rows.join("\n")).join("\n")
        );
    }
    assert_eq!(column(db, seq), column(&api, seq));
    // The seed's timestamps are one UTC wall-clock time, as the API writes them.
    let same_time: bool = db.scalar(
        "SELECT count(DISTINCT ts) = 1 AND bool_and(abs(extract(epoch FROM ts - \
           (now() AT TIME ZONE 'UTC'))) < 300) \
         FROM (SELECT created_at AS ts FROM ns_tenant_globex.models \
               UNION ALL SELECT updated_at FROM ns_tenant_globex.fields \
               UNION ALL SELECT created_at FROM ns_tenant_globex.users) t",
    );
    assert!(
        same_time,
        "seed timestamps are not one UTC time of the create"
    );
    api.drop_database().unwrap();
}

/// The lines only in `a` (`-`) and only in `b` (`+`): enough to see a difference.
fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out: Vec<String> = la
        .iter()
        .filter(|l| !lb.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        lb.iter()
            .filter(|l| !la.contains(l))
            .map(|l| format!("+ {l}")),
    );
    if out.is_empty() {
        out.push("(the same lines in another order)".into());
    }
    out
}

fn create_writes_the_registry_row_and_owner_as_the_api_does(db: &PgDb) {
    let v = json(
        db,
        &[
            "tenant",
            "create",
            "acme",
            "--owner",
            "admin",
            "--description",
            "Acme Inc",
        ],
    );
    assert_eq!(v["succeeded"], 1, "{v:#}");
    ok(db, &["tenant", "create", "globex"]);
    let acme = row(db, "acme");
    assert_eq!(acme["database"], db.name(), "{acme:#}");
    assert_eq!(acme["db_type"], "postgresql");
    assert_eq!(acme["schema"], "ns_tenant_acme");
    assert_eq!(acme["status"], "active");
    assert_eq!(acme["is_active"], true);
    assert_eq!(acme["description"], "Acme Inc");
    assert_eq!(acme["template_version"], 1);
    assert!(acme["trashed_at"].is_null() && acme["deleted_at"].is_null());
    let owner = acme["owner_id"].as_str().unwrap();
    assert_ne!(owner, ROOT_ID);
    assert_eq!(
        column(
            db,
            &format!(
                "SELECT name || '/' || auth || '/' || access FROM ns_tenant_acme.users \
                 WHERE id = '{owner}'"
            )
        ),
        ["admin/admin/root"]
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.users"),
        2
    );
    // The row's times are UTC wall-clock time, shown in the API's ISO form.
    let fresh: bool = db.scalar(
        "SELECT abs(extract(epoch FROM created_at - (now() AT TIME ZONE 'UTC'))) < 300 \
         FROM public.tenants WHERE name = 'acme'",
    );
    assert!(fresh, "created_at is not UTC wall-clock time: {acme:#}");
    let shown = json(db, &["tenant", "show", "acme"]);
    assert!(shown["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(shown["owner_name"], "admin");

    let globex = row(db, "globex");
    assert_eq!(globex["owner_id"], ROOT_ID);
    assert!(globex["description"].is_null());
    assert_eq!(
        column(db, "SELECT id::text FROM ns_tenant_globex.users"),
        [ROOT_ID]
    );
    // Nothing but the two schemas and the registry: no other schema, no tenant files.
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme", "ns_tenant_globex"]);
    assert!(!db.data_dir().join("db_main").exists());
}

fn existing_names_are_refused_deleted_ones_included(db: &PgDb) {
    ok(db, &["tenant", "create", "acme", "gone"]);
    ok(db, &["tenant", "delete", "gone", "--yes"]);
    let before = (registry(db), schema_rows(db, "ns_tenant_acme"));
    for name in ["acme", "gone"] {
        let err = fails(db, &["tenant", "create", name], 4);
        assert!(
            err.contains(&format!("tenant '{name}' already exists")),
            "creating existing tenant {name} should say it already exists: {err}"
        );
        assert!(!err.contains("without tenant"), "{err}");
    }
    assert_eq!((registry(db), schema_rows(db, "ns_tenant_acme")), before);
    // A batch with one taken name creates the rest and says which failed (exit 8).
    let out = run(
        db,
        &["--format", "json", "tenant", "create", "newone", "acme"],
    );
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 1, "{v:#}");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["results"][1]["exit_code"], 4);
    assert_eq!(
        tenant_schemas(db),
        ["ns_tenant_acme", "ns_tenant_gone", "ns_tenant_newone"]
    );
}

// ---- 3. whole or nothing ----

fn concurrent_creates_of_one_name_leave_one_tenant(db: &PgDb) {
    ok(db, &["init"]);
    // Racing freely, a few times.
    for round in 0..4 {
        let name = format!("same{round}");
        let a = spawn(db, &["tenant", "create", &name], &[]);
        let b = spawn(db, &["tenant", "create", &name], &[]);
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let mut codes = [outs[0].status.code(), outs[1].status.code()];
        codes.sort();
        let errs: Vec<String> = outs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        assert_eq!(codes, [Some(0), Some(4)], "round {round}: {errs:?}");
        assert!(
            errs.iter().any(|e| e.contains(&name)),
            "the loser names the tenant: {errs:?}"
        );
        let n: i64 = db.scalar(&format!(
            "SELECT count(*) FROM public.tenants WHERE name = '{name}'"
        ));
        assert_eq!(n, 1);
        assert_eq!(
            db.scalar::<i64>(&format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'ns_tenant_{name}'"
            )),
            1
        );
    }
    // The second starts while the first holds its whole tenant uncommitted, and waits for it.
    let resume = db.env().root().join("resume");
    let resume_s = resume.to_str().unwrap().to_string();
    let mut first = spawn(
        db,
        &["tenant", "create", "held"],
        &[
            ("MONKCTL_PAUSE_AT", "tenant.pg.registered"),
            ("MONKCTL_RESUME_WHEN", &resume_s),
        ],
    );
    let first_err = wait_paused(&mut first, "tenant.pg.registered");
    let second = spawn(db, &["tenant", "create", "held"], &[]);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&resume, "").unwrap();
    let first_status = first.wait().unwrap();
    let second = second.wait_with_output().unwrap();
    assert_eq!(
        first_status.code(),
        Some(0),
        "{}",
        first_err.join().unwrap()
    );
    assert_eq!(second.status.code(), Some(4), "{}", text(&second));
    assert_eq!(
        column(
            db,
            "SELECT name::text FROM public.tenants WHERE name LIKE 'held%'"
        ),
        ["held"]
    );
    assert_eq!(
        tenant_schemas(db)
            .iter()
            .filter(|s| s.starts_with("ns_tenant_held"))
            .count(),
        1
    );
    let report = json(db, &["doctor"]);
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
}

fn a_create_killed_before_its_commit_leaves_nothing(db: &PgDb) {
    ok(db, &["tenant", "create", "keep"]);
    let keep_before = (row(db, "keep"), schema_rows(db, "ns_tenant_keep"));
    let one: &[&str] = &["tenant", "create", "acme", "--owner", "admin"];
    let batch: &[&str] = &["tenant", "create", "acme", "b1", "b2", "b3"];
    for (point, args) in [
        ("tenant.pg.built", one),
        ("tenant.pg.registered", one),
        ("tenant.pg.built", batch),
        ("tenant.pg.registered", batch),
    ] {
        let mut child = spawn(db, args, &[("MONKCTL_PAUSE_AT", point)]);
        let _stderr = wait_paused(&mut child, point);
        // While it waits, nothing of it is visible to another session.
        assert_eq!(tenant_schemas(db), ["ns_tenant_keep"], "at {point}");
        kill9(&mut child);
        no_monkctl_session(db);
        assert_eq!(
            tenant_schemas(db),
            ["ns_tenant_keep"],
            "a schema left after a kill at {point}"
        );
        assert_eq!(
            names(&json(db, &["tenant", "list", "--all"])),
            ["keep"],
            "a row left after a kill at {point}"
        );
    }
    // Nothing for doctor to see, and a retry succeeds.
    let report = json(db, &["doctor"]);
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    ok(db, &["tenant", "create", "acme", "--owner", "admin"]);
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme", "ns_tenant_keep"]);
    assert_eq!(json(db, &["tenant", "show", "acme"])["owner_name"], "admin");
    assert_eq!(
        (row(db, "keep"), schema_rows(db, "ns_tenant_keep")),
        keep_before
    );
}

/// A `--from-file` list of `t000`..`t099`, every third with an owner and a description.
fn hundred(db: &PgDb) -> PathBuf {
    let mut list = String::from("# a hundred tenants\n");
    for i in 0..100 {
        if i % 3 == 0 {
            list.push_str(&format!("t{i:03}  owner{i}  Customer number {i}\n"));
        } else {
            list.push_str(&format!("t{i:03}\n"));
        }
    }
    let path = db.env().root().join("tenants.txt");
    std::fs::write(&path, list).unwrap();
    path
}

fn a_batch_from_a_file_creates_every_tenant(db: &PgDb) {
    let file = hundred(db);
    let v = json(
        db,
        &["tenant", "create", "--from-file", file.to_str().unwrap()],
    );
    assert_eq!(v["succeeded"], 100, "{v:#}");
    assert_eq!(v["failed"], 0);
    let schemas = tenant_schemas(db);
    let want: Vec<String> = (0..100).map(|i| format!("ns_tenant_t{i:03}")).collect();
    assert_eq!(schemas, want);
    assert_eq!(
        db.scalar::<i64>(
            "SELECT count(*) FROM public.tenants WHERE schema LIKE 'ns\\_tenant\\_t%'"
        ),
        100
    );
    // Every schema whole: nine tables each, and the seed in each.
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'ns\\_tenant\\_t%'"),
        900
    );
    let t042 = row(db, "t042");
    assert_eq!(t042["description"], "Customer number 42");
    assert_eq!(
        column(
            db,
            &format!(
                "SELECT name::text FROM ns_tenant_t042.users WHERE id = '{}'",
                t042["owner_id"].as_str().unwrap()
            )
        ),
        ["owner42"]
    );
    assert_eq!(row(db, "t043")["owner_id"], ROOT_ID);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_t099.fields"),
        68
    );
    let report = json(db, &["doctor"]);
    assert_eq!(report["status"], "healthy", "{report:#}");
    assert_eq!(report["summary"]["tenants_checked"], 100);
}

fn a_batch_with_a_taken_name_creates_the_others(db: &PgDb) {
    ok(
        db,
        &[
            "tenant",
            "create",
            "t050",
            "--owner",
            "first",
            "--description",
            "The first one",
        ],
    );
    db.sql(
        "INSERT INTO ns_tenant_t050.users (name, auth, access) VALUES ('marker', 'marker', 'read')",
    );
    let taken_before = (row(db, "t050"), schema_rows(db, "ns_tenant_t050"));
    let file = hundred(db);
    let out = run(
        db,
        &[
            "--format",
            "json",
            "tenant",
            "create",
            "--from-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 99, "{v:#}");
    assert_eq!(v["failed"], 1);
    let failed: Vec<&Value> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["exit_code"] != 0 && !r["exit_code"].is_null())
        .collect();
    assert_eq!(failed.len(), 1, "{v:#}");
    assert_eq!(failed[0]["exit_code"], 4, "{v:#}");
    assert_eq!(v["results"][50]["exit_code"], 4, "{v:#}");
    let want: Vec<String> = (0..100).map(|i| format!("ns_tenant_t{i:03}")).collect();
    assert_eq!(tenant_schemas(db), want);
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM public.tenants"), 100);
    assert_eq!(
        (row(db, "t050"), schema_rows(db, "ns_tenant_t050")),
        taken_before,
        "the taken tenant changed"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_t049.users"),
        1
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_t051.users"),
        2
    );
}

/// The API's statement at every tenant lookup, which takes an ACCESS EXCLUSIVE lock on
/// `tenants`, from a session that waits at most `wait` for it: whether the API would be served.
fn api_lookup_gets_through(db: &PgDb, wait: &str) -> bool {
    let mut c = db.client();
    c.batch_execute(&format!("SET lock_timeout = '{wait}'"))
        .unwrap();
    match c.batch_execute(
        "BEGIN; ALTER TABLE public.tenants ALTER COLUMN status SET DEFAULT 'active'; COMMIT",
    ) {
        Ok(()) => true,
        Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => false,
        Err(e) => panic!("{}", crate::pgdb::pg_error(&e)),
    }
}

fn a_create_locks_the_registry_only_at_its_end(db: &PgDb) {
    ok(db, &["init"]);
    let resume = db.env().root().join("resume");
    let resume_s = resume.to_str().unwrap().to_string();
    let mut child = spawn(
        db,
        &["tenant", "create", "acme", "bravo", "--owner", "admin"],
        &[
            ("MONKCTL_PAUSE_AT", "tenant.pg.built"),
            ("MONKCTL_RESUME_WHEN", &resume_s),
        ],
    );
    let stderr = wait_paused(&mut child, "tenant.pg.built");
    // Both tenants are built in the open transaction, which has not touched the registry: the
    // API's lookups are served at once.
    assert!(
        api_lookup_gets_through(db, "200ms"),
        "a create holds a lock on tenants while it builds its schemas"
    );
    std::fs::write(&resume, "").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr.join().unwrap());
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme", "ns_tenant_bravo"]);

    // Once its rows are in, until its commit, it does hold the lock (so the check above can
    // see one).
    std::fs::remove_file(&resume).unwrap();
    let mut child = spawn(
        db,
        &["tenant", "create", "carol"],
        &[
            ("MONKCTL_PAUSE_AT", "tenant.pg.registered"),
            ("MONKCTL_RESUME_WHEN", &resume_s),
        ],
    );
    let stderr = wait_paused(&mut child, "tenant.pg.registered");
    assert!(!api_lookup_gets_through(db, "200ms"));
    std::fs::write(&resume, "").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr.join().unwrap());
    assert!(api_lookup_gets_through(db, "200ms"));
}

fn a_lock_held_on_the_registry_makes_commands_busy_and_changes_nothing(db: &PgDb) {
    ok(db, &["tenant", "create", "acme"]);
    let before = (registry(db), tenant_schemas(db));
    // Another session (a long API request) holds an exclusive lock on tenants.
    let mut holder = db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE public.tenants IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    for args in [
        &["tenant", "trash", "acme"][..],
        &["tenant", "create", "bravo"],
        &["tenant", "delete", "acme", "--yes"],
    ] {
        let started = Instant::now();
        let err = fails(db, args, 5);
        assert!(err.contains("lock"), "{args:?}: {err}");
        assert!(err.contains("retry"), "{args:?}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{args:?} waited {:?}",
            started.elapsed()
        );
    }
    holder.batch_execute("COMMIT").unwrap();
    assert_eq!((registry(db), tenant_schemas(db)), before);
    // The lock gone, the same commands work.
    ok(db, &["tenant", "trash", "acme"]);
    ok(db, &["tenant", "create", "bravo"]);
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme", "ns_tenant_bravo"]);
}

fn the_longest_name_fits_a_postgresql_identifier(db: &PgDb) {
    // 53 characters: ns_tenant_ and the name are PostgreSQL's 63-byte identifier limit.
    let name = format!("a{}", "b".repeat(52));
    let schema = format!("ns_tenant_{name}");
    assert_eq!(schema.len(), 63);
    ok(db, &["tenant", "create", &name, "--owner", "admin"]);
    assert_eq!(tenant_schemas(db), std::slice::from_ref(&schema));
    assert_eq!(row(db, &name)["schema"], schema.as_str());
    assert_eq!(json(db, &["tenant", "show", &name])["owner_name"], "admin");
    let id = json(db, &["tenant", "delete", &name, "--yes"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(db, &["tenant", "purge", "--older-than", "0s", "--yes"]);
    assert!(archive_of(db, &schema, &id).is_file());
    assert_eq!(tenant_schemas(db), Vec::<String>::new());
    // One more character would be cut by PostgreSQL without an error: refused.
    fails(db, &["tenant", "create", &format!("{name}c")], 2);
}

fn skip_existing_leaves_an_existing_tenant_as_it_is(db: &PgDb) {
    ok(db, &["tenant", "create", "acme", "--owner", "admin"]);
    db.sql("INSERT INTO ns_tenant_acme.users (name, auth, access) VALUES ('bob', 'bob', 'read')");
    let before = (row(db, "acme"), schema_rows(db, "ns_tenant_acme"));
    let v = json(
        db,
        &["tenant", "create", "acme", "bravo", "--skip-existing"],
    );
    assert_eq!(v["succeeded"], 2, "{v:#}");
    assert_eq!(v["failed"], 0);
    assert_eq!((row(db, "acme"), schema_rows(db, "ns_tenant_acme")), before);
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme", "ns_tenant_bravo"]);
}

// ---- 4. the lifecycle ----

/// The API's columns of `name`: status, is_active, trashed_at, deleted_at, updated_at.
fn state(db: &PgDb, name: &str) -> (String, bool, Option<String>, Option<String>, String) {
    let r = row(db, name);
    let s = |k: &str| r[k].as_str().map(String::from);
    (
        s("status").unwrap(),
        r["is_active"].as_bool().unwrap(),
        s("trashed_at"),
        s("deleted_at"),
        s("updated_at").unwrap(),
    )
}

fn trash_suspend_and_back_set_the_api_columns(db: &PgDb) {
    ok(db, &["tenant", "create", "acme", "other"]);
    let data = schema_rows(db, "ns_tenant_acme");
    let other = row(db, "other");

    let v = json(db, &["tenant", "trash", "acme"]);
    assert_eq!(v["changed"], true, "{v:#}");
    let shown = v["trashed_at"].as_str().unwrap();
    assert!(shown.ends_with('Z'), "{v:#}");
    let (status, active, trashed, deleted, updated) = state(db, "acme");
    assert_eq!((status.as_str(), active), ("active", true));
    assert!(deleted.is_none());
    // The column holds the time the command showed (UTC wall-clock, to the millisecond).
    let in_db: String = db.scalar(
        "SELECT to_char(trashed_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM public.tenants \
         WHERE name = 'acme'",
    );
    assert_eq!(in_db, shown);
    assert!(trashed.is_some());
    // Trashed again: nothing changes, not even updated_at.
    assert_eq!(json(db, &["tenant", "trash", "acme"])["changed"], false);
    assert_eq!(state(db, "acme").4, updated);
    // A trashed tenant is listed only on request.
    assert_eq!(names(&json(db, &["tenant", "list"])), ["other"]);
    assert_eq!(
        names(&json(db, &["tenant", "list", "--trashed"])),
        ["acme", "other"]
    );

    ok(db, &["tenant", "untrash", "acme"]);
    let (status, active, trashed, _, _) = state(db, "acme");
    assert_eq!((status.as_str(), active, trashed), ("active", true, None));

    ok(db, &["tenant", "suspend", "acme"]);
    let (status, active, trashed, deleted, _) = state(db, "acme");
    assert_eq!(
        (status.as_str(), active, trashed, deleted),
        ("suspended", true, None, None)
    );
    assert_eq!(
        names(&json(db, &["tenant", "list", "--status", "suspended"])),
        ["acme"]
    );
    // activate sets status and is_active, whatever set them.
    db.sql("UPDATE public.tenants SET is_active = false WHERE name = 'acme'");
    ok(db, &["tenant", "activate", "acme"]);
    let (status, active, _, _, _) = state(db, "acme");
    assert_eq!((status.as_str(), active), ("active", true));

    for cmd in ["trash", "untrash", "suspend", "activate"] {
        let err = fails(db, &["tenant", cmd, "nobody"], 3);
        assert!(err.contains("nobody"), "{err}");
        fails(db, &["tenant", cmd, "../etc"], 2);
    }
    // The tenant's data and the other tenant never changed.
    assert_eq!(schema_rows(db, "ns_tenant_acme"), data);
    assert_eq!(row(db, "other"), other);
}

fn delete_keeps_the_schema_and_undelete_brings_it_back(db: &PgDb) {
    ok(db, &["tenant", "create", "acme", "--owner", "admin"]);
    db.sql("INSERT INTO ns_tenant_acme.users (name, auth, access) VALUES ('late', 'late', 'read')");
    let data = schema_rows(db, "ns_tenant_acme");
    let before = registry(db);

    // Without --yes and without a terminal: refused, nothing changed.
    let err = fails(db, &["tenant", "delete", "acme"], 2);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(registry(db), before);

    let v = json(db, &["tenant", "delete", "acme", "--yes"]);
    assert_eq!(v["status"], "deleted", "{v:#}");
    assert_eq!(v["is_active"], false);
    assert!(v["deleted_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["moved"], serde_json::json!([]));
    let (status, active, _, deleted, _) = state(db, "acme");
    assert_eq!((status.as_str(), active), ("deleted", false));
    assert!(deleted.is_some());
    // As the API deletes: the schema stays, with everything in it.
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme"]);
    assert_eq!(schema_rows(db, "ns_tenant_acme"), data);
    assert!(!db.data_dir().join("trash").exists());

    assert_eq!(names(&json(db, &["tenant", "list"])), Vec::<String>::new());
    assert_eq!(names(&json(db, &["tenant", "list", "--deleted"])), ["acme"]);
    let shown = json(db, &["tenant", "show", "acme"]);
    assert_eq!(shown["status"], "deleted");
    assert_eq!(shown["file_exists"], true, "{shown:#}");
    assert_eq!(shown["purged"], false);
    // A deleted tenant is not changed, nor deleted again.
    fails(db, &["tenant", "delete", "acme", "--yes"], 4);
    fails(db, &["tenant", "activate", "acme"], 4);
    fails(db, &["tenant", "trash", "acme"], 4);
    fails(db, &["tenant", "delete", "nobody", "--yes"], 3);
    let report = json(db, &["doctor"]);
    assert_eq!(report["status"], "healthy", "{report:#}");

    let v = json(db, &["tenant", "undelete", "acme"]);
    assert_eq!(v["status"], "active", "{v:#}");
    assert!(v["path"].is_null() && v["from"].is_null());
    let (status, active, trashed, deleted, _) = state(db, "acme");
    assert_eq!(
        (status.as_str(), active, trashed, deleted),
        ("active", true, None, None)
    );
    assert_eq!(schema_rows(db, "ns_tenant_acme"), data);
    assert_eq!(json(db, &["tenant", "show", "acme"])["owner_name"], "admin");
    // Only a deleted tenant is undeleted.
    let err = fails(db, &["tenant", "undelete", "acme"], 4);
    assert!(err.contains("not deleted"), "{err}");
    fails(db, &["tenant", "undelete", "nobody"], 3);
}

fn purge_archives_the_schema_then_drops_it(db: &PgDb) {
    ok(db, &["tenant", "create", "acme", "--owner", "admin"]);
    ok(db, &["tenant", "create", "alive"]);
    db.sql(
        "INSERT INTO ns_tenant_acme.users (name, auth, access) VALUES ('late', 'late', 'read'); \
         INSERT INTO ns_tenant_acme.fs (parent_id, name, path, node_type, content) \
           SELECT id, 'notes.txt', '/notes.txt', 'file', 'hello'::bytea FROM ns_tenant_acme.fs \
           WHERE path = '/'",
    );
    let data = schema_rows(db, "ns_tenant_acme");
    let ddl = clean_dump(db.url(), &["--schema", "ns_tenant_acme"]);
    let alive = (row(db, "alive"), schema_rows(db, "ns_tenant_alive"));
    let deleted = json(db, &["tenant", "delete", "acme", "--yes"]);
    let id = deleted["id"].as_str().unwrap().to_string();
    let archive = archive_of(db, "ns_tenant_acme", &id);

    // A dry run and a retention not reached drop nothing.
    let dry = json(db, &["tenant", "purge", "--older-than", "0s", "--dry-run"]);
    assert_eq!(dry["purged"][0]["name"], "acme", "{dry:#}");
    assert_eq!(dry["purged"][0]["schema"], "ns_tenant_acme");
    assert_eq!(
        dry["purged"][0]["files"][0].as_str().unwrap(),
        archive.to_str().unwrap()
    );
    let err = fails(db, &["tenant", "purge", "--older-than", "0s"], 2);
    assert!(err.contains("--yes"), "{err}");
    let kept = json(db, &["tenant", "purge", "--older-than", "1d", "--yes"]);
    assert_eq!(kept["purged"], serde_json::json!([]), "{kept:#}");
    assert_eq!(kept["kept"], 1);
    assert!(!archive.exists());
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme", "ns_tenant_alive"]);

    let v = json(db, &["tenant", "purge", "--older-than", "0s", "--yes"]);
    assert_eq!(v["purged"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["purged"][0]["name"], "acme");
    assert!(v["purged"][0]["size_bytes"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(tenant_schemas(db), ["ns_tenant_alive"]);
    assert!(archive.is_file(), "{}", archive.display());
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the archive is the owner's alone");
    // The row stays, deleted, so the name stays reserved.
    let shown = json(db, &["tenant", "show", "acme"]);
    assert_eq!(shown["purged"], true, "{shown:#}");
    assert_eq!(shown["file_exists"], false);
    assert_eq!(shown["status"], "deleted");
    let err = fails(db, &["tenant", "undelete", "acme"], 4);
    assert!(err.contains("purged"), "{err}");
    fails(db, &["tenant", "create", "acme"], 4);
    // Purged once: a second purge has nothing to do.
    let again = json(db, &["tenant", "purge", "--older-than", "0s", "--yes"]);
    assert_eq!(again["purged"], serde_json::json!([]), "{again:#}");
    assert_eq!(again["kept"], 0);
    assert_eq!(
        (row(db, "alive"), schema_rows(db, "ns_tenant_alive")),
        alive
    );

    // The archive brings the tenant back, tables and rows, into another database.
    let other = db.server().fresh_database().unwrap();
    let out = pg_tool("pg_restore", other.url())
        .args(["--no-owner", "--exit-on-error"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore of the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(schema_rows(&other, "ns_tenant_acme"), data);
    assert_eq!(
        clean_dump(other.url(), &["--schema", "ns_tenant_acme"]),
        ddl
    );
    other.drop_database().unwrap();
}

fn a_purge_killed_after_its_archive_drops_nothing(db: &PgDb) {
    ok(db, &["tenant", "create", "acme"]);
    let data = schema_rows(db, "ns_tenant_acme");
    let id = json(db, &["tenant", "delete", "acme", "--yes"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let archive = archive_of(db, "ns_tenant_acme", &id);
    let mut child = spawn(
        db,
        &["tenant", "purge", "--older-than", "0s", "--yes"],
        &[("MONKCTL_PAUSE_AT", "tenant.purge.archived")],
    );
    let _stderr = wait_paused(&mut child, "tenant.purge.archived");
    // The archive is whole before the schema goes, and the schema is still there.
    assert!(archive.is_file());
    let listed = pg_tool("pg_restore", db.url())
        .arg("--list")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("TABLE DATA ns_tenant_acme users"));
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme"]);
    kill9(&mut child);
    no_monkctl_session(db);
    assert_eq!(schema_rows(db, "ns_tenant_acme"), data);
    assert_eq!(
        json(db, &["tenant", "show", "acme"])["purged"],
        false,
        "killed before the drop: not purged"
    );
    // Run again: archived again (over the first archive) and dropped.
    let v = json(db, &["tenant", "purge", "--older-than", "0s", "--yes"]);
    assert_eq!(v["purged"][0]["name"], "acme", "{v:#}");
    assert_eq!(tenant_schemas(db), Vec::<String>::new());
    assert!(archive.is_file());
    let leftovers: Vec<_> = std::fs::read_dir(db.data_dir().join("trash"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        leftovers,
        [archive.file_name().unwrap().to_str().unwrap()],
        "only the archive in the trash"
    );
}

fn purging_the_tenant_holding_pgcrypto_keeps_the_deployment_working(db: &PgDb) {
    ok(db, &["tenant", "create", "first", "--owner", "admin"]);
    // As the API's DDL does for the first tenant of a database.
    db.sql("CREATE EXTENSION pgcrypto SCHEMA ns_tenant_first");
    ok(db, &["tenant", "create", "second"]);
    ok(db, &["tenant", "delete", "first", "--yes"]);
    ok(db, &["tenant", "purge", "--older-than", "0s", "--yes"]);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'"),
        0,
        "the extension went with the schema"
    );
    assert_eq!(tenant_schemas(db), ["ns_tenant_second"]);
    ok(db, &["tenant", "create", "third", "--owner", "ops"]);
    // Rows with default ids, in a tenant made before and one made after the purge.
    for schema in ["ns_tenant_second", "ns_tenant_third"] {
        db.sql(&format!(
            "SET search_path TO {schema}; \
             INSERT INTO users (name, auth, access) VALUES ('carol', 'carol', 'edit'); \
             INSERT INTO models (model_name) VALUES ('orders'); \
             INSERT INTO filters (name, model_name) VALUES ('recent', 'orders'); \
             INSERT INTO tracked (model_name, record_id, operation, changes) \
               VALUES ('orders', gen_random_uuid(), 'create', '{{}}'::jsonb);"
        ));
        let ids: i64 = db.scalar(&format!(
            "SELECT count(DISTINCT id) FROM {schema}.users WHERE id <> '{ROOT_ID}'"
        ));
        assert!(ids >= 1, "{schema}");
    }
    let report = json(db, &["doctor"]);
    assert_eq!(report["status"], "healthy", "{report:#}");
    assert_eq!(names(&json(db, &["tenant", "list"])), ["second", "third"]);
}

fn purging_the_apis_first_tenant_keeps_the_api_deployment_working(db: &PgDb) {
    db.restore_reference_dump();
    // acme, the first tenant the API made, holds pgcrypto (and the API's user model widgets).
    let data = schema_rows(db, "ns_tenant_acme");
    let globex = schema_rows(db, "ns_tenant_globex");
    let id = json(db, &["tenant", "delete", "acme", "--yes"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id, ACME_ID);
    let v = json(db, &["tenant", "purge", "--older-than", "0s", "--yes"]);
    assert_eq!(v["purged"][0]["name"], "acme", "{v:#}");
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'"),
        0
    );
    assert_eq!(tenant_schemas(db), ["ns_tenant_globex"]);
    assert_eq!(schema_rows(db, "ns_tenant_globex"), globex);
    // The API's other tenant and a new one take rows with default ids.
    ok(db, &["tenant", "create", "initech"]);
    for schema in ["ns_tenant_globex", "ns_tenant_initech"] {
        db.sql(&format!(
            "INSERT INTO {schema}.users (name, auth, access) VALUES ('dave', 'dave', 'full'); \
             INSERT INTO {schema}.models (model_name) VALUES ('invoices')"
        ));
    }
    let report = json(db, &["doctor"]);
    assert_eq!(report["status"], "healthy", "{report:#}");
    // The archive gives acme back whole, widgets and all, without pgcrypto.
    let other = db.server().fresh_database().unwrap();
    let out = pg_tool("pg_restore", other.url())
        .args(["--no-owner", "--exit-on-error"])
        .arg(archive_of(db, "ns_tenant_acme", ACME_ID))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(schema_rows(&other, "ns_tenant_acme"), data);
    assert_eq!(
        other.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.widgets"),
        3
    );
    other.drop_database().unwrap();
}

fn init_makes_the_registry_once(db: &PgDb) {
    let v = json(db, &["init"]);
    assert_eq!(v["created"], true, "{v:#}");
    assert_eq!(v["infra_version"], 2);
    // No data-directory layout on PostgreSQL: tenants are schemas.
    assert_eq!(v["layout"], serde_json::Value::Null, "{v:#}");
    assert!(!ok(db, &["init"]).contains("design"));
    let ddl = clean_dump(db.url(), &["--schema", "public"]);
    assert!(ddl.contains("CREATE TABLE public.tenants ("), "{ddl}");
    assert!(
        ddl.contains("CREATE TABLE public.tenant_fixtures ("),
        "{ddl}"
    );
    let v = json(db, &["init"]);
    assert_eq!(v["created"], false, "{v:#}");
    assert_eq!(clean_dump(db.url(), &["--schema", "public"]), ddl);
    // Only monkctl's state goes to the data directory: no infra database file there.
    assert!(!db.data_dir().join("infra").exists());
    assert_eq!(json(db, &["tenant", "list"]), serde_json::json!([]));
}

// ---- 5. bad input ----

fn bad_names_are_refused_before_anything_is_written(db: &PgDb) {
    let long = "a".repeat(54);
    for bad in [
        "../evil",
        "a/b",
        "it's",
        "say\"hi\"",
        "café",
        "Acme",
        "1abc",
        "a",
        "",
        &long,
        "a b",
        "-x",
        "ns;drop",
    ] {
        let out = run(db, &["tenant", "create", "--", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tenant name"), "{bad:?}: {err}");
    }
    fails(
        db,
        &[
            "tenant",
            "create",
            "fine",
            "--owner",
            "Robert'); DROP TABLE",
        ],
        2,
    );
    // A bad name among good ones: nothing at all is created.
    fails(db, &["tenant", "create", "good_one", "../bad"], 2);
    // Not even the registry: the database is as empty as it was given.
    assert_eq!(
        db.scalar::<i64>(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
        ),
        0
    );
    assert_eq!(tenant_schemas(db), Vec::<String>::new());
    // With a registry: the same, and the registry unchanged.
    ok(db, &["tenant", "create", "acme"]);
    let before = registry(db);
    fails(db, &["tenant", "create", "good_one", "Bad"], 2);
    let list = db.env().root().join("bad.txt");
    std::fs::write(&list, "delta\nepsilon\nBad-Name x\n").unwrap();
    let err = fails(
        db,
        &["tenant", "create", "--from-file", list.to_str().unwrap()],
        2,
    );
    assert!(err.contains("bad.txt:3"), "{err}");
    assert_eq!(registry(db), before);
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme"]);
    fails(db, &["tenant", "show", "../etc"], 2);
}

/// Output and error of a run, joined, for "never shown" checks.
fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn a_wrong_password_is_refused_and_never_shown(db: &PgDb) {
    let wrong_password = "Wr0ng-S3cret-pw";
    let wrong = db.url_with_password(wrong_password);
    let real = split_password(db.url()).1.expect("a password");
    for args in [
        &["tenant", "list"][..],
        &["tenant", "create", "acme"],
        &["tenant", "show", "acme"],
        &["doctor"],
        &["--format", "json", "tenant", "list"],
        &["init"],
    ] {
        let out = db
            .env()
            .cmd()
            .arg("--database-url")
            .arg(&wrong)
            .args(args)
            .output()
            .unwrap();
        let all = all_output(&out);
        assert_eq!(out.status.code(), Some(9), "{args:?}: {all}");
        assert!(all.contains("password"), "{args:?}: {all}");
        assert!(all.contains(db.name()), "names the database: {all}");
        assert!(
            !all.contains(wrong_password),
            "{args:?} shows the password: {all}"
        );
        assert!(!all.contains(&real), "{args:?}: {all}");
    }
    // The same password by PGPASSWORD.
    let (bare, _) = split_password(db.url());
    let out = db
        .env()
        .cmd()
        .arg("--database-url")
        .arg(&bare)
        .env("PGPASSWORD", wrong_password)
        .args(["tenant", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{}", text(&out));
    assert!(!all_output(&out).contains(wrong_password));
    assert_eq!(tenant_schemas(db), Vec::<String>::new());
    assert_eq!(
        db.scalar::<Option<String>>("SELECT to_regclass('public.tenants')::text"),
        None
    );
}

fn a_missing_database_is_not_found(db: &PgDb) {
    let missing = format!("{}_absent", db.name());
    let url = with_database(db.url(), &missing);
    for args in [
        &["tenant", "list"][..],
        &["tenant", "create", "acme"],
        &["doctor"],
    ] {
        let out = db
            .env()
            .cmd()
            .arg("--database-url")
            .arg(&url)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(err.contains(&missing), "names the database: {err}");
        assert!(err.contains("createdb"), "says the fix: {err}");
    }
    let exists: bool = db
        .server()
        .admin_client()
        .unwrap()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&missing],
        )
        .unwrap()
        .get(0);
    assert!(!exists, "monkctl created the database");
    // A database without a registry: read commands say so and change nothing.
    let err = fails(db, &["tenant", "list"], 3);
    assert!(err.contains("monkctl init"), "{err}");
    assert_eq!(
        db.scalar::<Option<String>>("SELECT to_regclass('public.tenants')::text"),
        None
    );
}

/// A TCP port on 127.0.0.1 nothing listens on (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn an_absent_server_is_unreachable(db: &PgDb) {
    let port = free_port();
    let url = format!("postgresql://monk:secret-pw@127.0.0.1:{port}/monk");
    for args in [
        &["tenant", "list"][..],
        &["tenant", "create", "acme"],
        &["doctor"],
    ] {
        let started = Instant::now();
        let out = db
            .env()
            .cmd()
            .arg("--database-url")
            .arg(&url)
            .args(args)
            .output()
            .unwrap();
        let all = all_output(&out);
        assert_eq!(out.status.code(), Some(22), "{args:?}: {all}");
        assert!(
            all.contains(&format!("127.0.0.1:{port}")),
            "names the server: {all}"
        );
        assert!(all.contains("check that the server runs"), "{all}");
        assert!(!all.contains("secret-pw"), "{all}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{args:?} took long"
        );
    }
    assert!(!db.data_dir().join("db_main").exists());
}

fn a_server_that_goes_away_is_unreachable(_db: &PgDb) {
    let server = PrivateServer::start();
    let env = crate::common::Env::new();
    let url = server.url().to_string();
    let password = split_password(&url).1.unwrap();
    let monkctl = |args: &[&str], extra: &[(&str, &str)]| {
        let mut c = env.std_cmd();
        c.arg("--database-url").arg(&url).args(args);
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    };
    let out = monkctl(&["tenant", "create", "acme", "globex"], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Mid-run: a create waits with its tenant built when the server stops.
    let resume = env.root().join("resume");
    let mut child = monkctl(
        &["tenant", "create", "initech"],
        &[
            ("MONKCTL_PAUSE_AT", "tenant.pg.built"),
            ("MONKCTL_RESUME_WHEN", resume.to_str().unwrap()),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = wait_paused(&mut child, "tenant.pg.built");
    let stopped = server.stop();
    assert_eq!(stopped.code(), Some(143));
    std::fs::write(&resume, "").unwrap();
    let status = child.wait().unwrap();
    let err = stderr.join().unwrap();
    assert_eq!(status.code(), Some(22), "{err}");
    assert!(
        err.contains("initech") || err.contains("127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains(&password), "{err}");

    // After: every command says the server is not there, and how to act.
    for args in [
        &["tenant", "list"][..],
        &["tenant", "show", "acme"],
        &["doctor"],
    ] {
        let out = monkctl(args, &[]).output().unwrap();
        let all = all_output(&out);
        assert_eq!(out.status.code(), Some(22), "{args:?}: {all}");
        assert!(
            all.contains("check that the server runs"),
            "{args:?}: {all}"
        );
        assert!(all.contains("PostgreSQL 127.0.0.1:"), "{args:?}: {all}");
        assert!(!all.contains(&password), "{all}");
    }
}

fn config_never_prints_the_password(db: &PgDb) {
    let password = split_password(db.url()).1.unwrap();
    let masked_url = masked(db.url());
    for format in ["table", "json", "csv"] {
        let out = ok(db, &["--format", format, "config"]);
        assert!(!out.contains(&password), "{format}: {out}");
        assert!(
            out.contains(&masked_url),
            "{format} shows {masked_url}: {out}"
        );
        assert!(out.contains("postgresql"), "{format}: {out}");
    }
    let v = json(db, &["config"]);
    assert_eq!(v["backend"], "postgresql");
    assert_eq!(v["layout"], serde_json::Value::Null, "{v:#}");
    assert!(!ok(db, &["config"]).contains("design"));
    assert_eq!(v["database_url"]["value"], masked_url.as_str());
    // From the environment, and with PGPASSWORD, the same.
    let (bare, _) = split_password(db.url());
    let out = db
        .env()
        .cmd()
        .env("DATABASE_URL", db.url())
        .args(["--format", "json", "config"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!all_output(&out).contains(&password));
    let out = db
        .env()
        .cmd()
        .arg("--database-url")
        .arg(&bare)
        .env("PGPASSWORD", &password)
        .args(["config"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!all_output(&out).contains(&password), "{}", text(&out));
    // And a command that works with PGPASSWORD alone shows it nowhere either.
    let out = db
        .env()
        .cmd()
        .arg("--database-url")
        .arg(&bare)
        .env("PGPASSWORD", &password)
        .args(["tenant", "create", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!all_output(&out).contains(&password));
}

fn an_extract_to_a_missing_directory_changes_nothing(db: &PgDb) {
    ok(db, &["tenant", "create", "acme"]);
    let before = (registry(db), schema_rows(db, "ns_tenant_acme"));
    let err = fails(db, &["extract", "acme", "-o", "missing/acme.monk.db"], 3);
    assert!(err.contains("output directory"), "{err}");
    assert_eq!((registry(db), schema_rows(db, "ns_tenant_acme")), before);
    assert_eq!(tenant_schemas(db), ["ns_tenant_acme"]);
    assert!(!db.env().root().join("missing").exists());
}
