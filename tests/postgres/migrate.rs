//! `migrate` on PostgreSQL: adoption of the API's schemas, one transaction per tenant, the guard,
//! destructive statements found from the catalog and row counters, snapshots, per-backend files,
//! and a run killed before its commit.

use std::fs;
use std::path::PathBuf;

use crate::PgDb;

cases![
    reference_deployment_is_adopted_and_migrated,
    created_tenants_run_the_deployments_migrations,
    destructive_migrations_are_refused_then_snapshotted,
    the_guard_refuses_what_reaches_outside_the_tenant,
    a_migration_for_one_backend_only,
    a_failing_tenant_leaves_the_others_migrated_and_itself_untouched,
    a_run_killed_before_its_commit_leaves_the_tenant_as_it_was,
];

fn migrations(db: &PgDb, files: &[(&str, &str)]) -> PathBuf {
    let dir = db.env().root().join("migrations");
    fs::create_dir_all(&dir).unwrap();
    for (name, sql) in files {
        fs::write(dir.join(name), sql).unwrap();
    }
    dir
}

/// The output without whitespace, so that checks need not know how JSON is laid out.
fn compact(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn columns(db: &PgDb, schema: &str, table: &str) -> Vec<String> {
    db.client()
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn history(db: &PgDb, schema: &str) -> Vec<i32> {
    db.client()
        .query(
            &format!("SELECT version FROM {schema}.refinery_schema_history ORDER BY version"),
            &[],
        )
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

fn reference_deployment_is_adopted_and_migrated(db: &PgDb) {
    db.restore_reference_dump();
    let out = db
        .monkctl()
        .args(["--format", "json", "migrate", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = compact(&out.stdout);
    assert!(text.contains("\"adopt\":true"), "{text}");
    for name in ["acme", "globex"] {
        assert!(text.contains(&format!("\"tenant\":\"{name}\"")), "{text}");
    }
    // Status wrote nothing.
    assert!(history(db, "ns_tenant_acme").is_empty());
    let dir = migrations(
        db,
        &[(
            "V2__nickname.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\n",
        )],
    );
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "up", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for schema in ["ns_tenant_acme", "ns_tenant_globex"] {
        assert_eq!(history(db, schema), vec![1, 2]);
        assert!(columns(db, schema, "users").contains(&"nickname".to_string()));
    }
    // The API's rows are as they were: acme's 3 widgets, both registry rows.
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.widgets"),
        3
    );
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM public.tenants"), 2);
    // Nothing pending: a second run changes nothing and says so.
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["--format", "json", "migrate", "status"])
        .output()
        .unwrap();
    let text = compact(&out.stdout);
    assert!(text.contains("\"up_to_date\":2"), "{text}");
    let doctor = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(doctor.status.code(), Some(0), "{doctor:?}");
}

fn created_tenants_run_the_deployments_migrations(db: &PgDb) {
    // Without operator migrations a new tenant is the API's own: no history table.
    db.monkctl()
        .args(["tenant", "create", "plain"])
        .assert()
        .success();
    assert_eq!(
        db.scalar::<Option<String>>(
            "SELECT to_regclass('ns_tenant_plain.refinery_schema_history')::text"
        ),
        None
    );
    let dir = migrations(
        db,
        &[(
            "V2__notes.sql",
            "CREATE TABLE notes (id uuid DEFAULT gen_random_uuid() PRIMARY KEY, body text NOT NULL);\n",
        )],
    );
    db.monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["tenant", "create", "fresh"])
        .assert()
        .success();
    assert_eq!(history(db, "ns_tenant_fresh"), vec![1, 2]);
    assert_eq!(columns(db, "ns_tenant_fresh", "notes"), vec!["id", "body"]);
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["--format", "json", "migrate", "status"])
        .output()
        .unwrap();
    let text = compact(&out.stdout);
    // `fresh` is up to date; `plain` is adopted at V1 with V2 pending.
    assert!(text.contains("\"up_to_date\":1"), "{text}");
    assert!(text.contains("\"adopt\":1"), "{text}");
    // A failing migration fails the create of that tenant, and nothing of it is left.
    let bad = migrations(
        db,
        &[("V3__bad.sql", "ALTER TABLE nowhere ADD COLUMN x text;\n")],
    );
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&bad)
        .args(["tenant", "create", "broken"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM pg_namespace WHERE nspname = 'ns_tenant_broken'"),
        0
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM public.tenants WHERE name = 'broken'"),
        0
    );
}

fn destructive_migrations_are_refused_then_snapshotted(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "acme"])
        .assert()
        .success();
    db.sql("INSERT INTO ns_tenant_acme.filters (name, model_name) VALUES ('f1', 'users')");
    let dir = migrations(
        db,
        &[
            (
                "V2__nickname.sql",
                "ALTER TABLE users ADD COLUMN nickname text;\n",
            ),
            (
                "V3__drop.sql",
                "ALTER TABLE users DROP COLUMN nickname;\nDELETE FROM filters;\n",
            ),
        ],
    );
    let plan = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["--format", "json", "migrate", "plan"])
        .output()
        .unwrap();
    let text = compact(&plan.stdout);
    assert!(text.contains("drop_column"), "{text}");
    assert!(text.contains("users.nickname"), "{text}");
    assert!(text.contains("delete_rows"), "{text}");
    // Plan rolled back: nothing applied.
    assert!(history(db, "ns_tenant_acme").is_empty());
    let refused = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "up", "--yes"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(18), "{refused:?}");
    assert!(
        history(db, "ns_tenant_acme").is_empty(),
        "a refused tenant stays untouched"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.filters"),
        1
    );
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args([
            "--format",
            "json",
            "migrate",
            "up",
            "--allow-destructive",
            "--yes",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(history(db, "ns_tenant_acme"), vec![1, 2, 3]);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.filters"),
        0
    );
    // The snapshot holds the tenant as it was before: its filter row comes back from it.
    let snaps: Vec<PathBuf> = fs::read_dir(db.data_dir().join("snapshots"))
        .unwrap()
        .flat_map(|run| fs::read_dir(run.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&snaps[0]).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "snapshots are owner-only");
    let copy = db.server().fresh_database().unwrap();
    let (url, password) = crate::pgdb::split_password(copy.url());
    let st = std::process::Command::new(crate::pgdb::pg_bin("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(&url)
        .arg(&snaps[0])
        .env("PGPASSWORD", password.unwrap_or_default())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        copy.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.filters"),
        1
    );
    // As the run found it: V2 and V3 ran in one transaction, after the snapshot.
    assert!(!columns(&copy, "ns_tenant_acme", "users").contains(&"nickname".to_string()));
    copy.drop_database().unwrap();
}

fn the_guard_refuses_what_reaches_outside_the_tenant(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "acme", "globex"])
        .assert()
        .success();
    for (i, sql) in [
        "DELETE FROM public.tenants;",
        "UPDATE ns_tenant_globex.users SET name = 'x';",
        "COMMIT;",
        "SET search_path TO public;",
        "COPY users TO PROGRAM 'id';",
        "SELECT pg_read_file('/etc/passwd');",
        "SELECT nextval('public.tenants_id_seq');",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("V{}__evil.sql", 10 + i);
        let dir = db.env().root().join(format!("evil{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(&name), sql).unwrap();
        let out = db
            .monkctl()
            .arg("--migrations")
            .arg(&dir)
            .args(["migrate", "up", "--tenant", "acme", "--yes"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{sql} ran: {out:?}");
        assert!(
            err.contains(&name),
            "{sql}: the refusal names the file: {err}"
        );
        assert!(
            history(db, "ns_tenant_acme").is_empty(),
            "{sql} changed acme"
        );
    }
    // An unqualified name resolves in the tenant's schema alone, never the registry.
    let dir = migrations(db, &[("V2__reg.sql", "DELETE FROM tenants;\n")]);
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "up", "--tenant", "acme", "--yes"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{out:?}"
    );
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM public.tenants"), 2);
    assert_eq!(
        db.scalar::<String>("SELECT name FROM ns_tenant_globex.users WHERE auth = 'root'"),
        "Root User"
    );
}

fn a_migration_for_one_backend_only(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "acme"])
        .assert()
        .success();
    let dir = migrations(
        db,
        &[
            (
                "V2__lite.sqlite.sql",
                "CREATE TABLE only_sqlite (x INTEGER);\n",
            ),
            (
                "V3__pg.postgres.sql",
                "CREATE TABLE only_pg (x jsonb DEFAULT '{}'::jsonb);\n",
            ),
            ("V4__pair.sqlite.sql", "CREATE TABLE pair (x TEXT);\n"),
            (
                "V4__pair.postgres.sql",
                "CREATE TABLE pair (x uuid[] DEFAULT '{}');\n",
            ),
        ],
    );
    db.monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "up", "--yes"])
        .assert()
        .success();
    assert_eq!(history(db, "ns_tenant_acme"), vec![1, 2, 3, 4]);
    let tables: Vec<String> = db
        .client()
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'ns_tenant_acme' \
             AND table_name IN ('only_sqlite', 'only_pg', 'pair') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, vec!["only_pg", "pair"]);
    assert_eq!(
        db.scalar::<String>(
            "SELECT data_type::text FROM information_schema.columns WHERE table_schema = 'ns_tenant_acme' AND table_name = 'pair'"
        ),
        "ARRAY"
    );
    // The same directory on SQLite runs the other halves.
    let lite = db
        .env()
        .cmd()
        .arg("--migrations")
        .arg(&dir)
        .args(["tenant", "create", "lite"])
        .output()
        .unwrap();
    assert_eq!(lite.status.code(), Some(0), "{lite:?}");
    let status = db
        .env()
        .cmd()
        .arg("--migrations")
        .arg(&dir)
        .args(["--format", "json", "migrate", "status"])
        .output()
        .unwrap();
    assert!(
        compact(&status.stdout).contains("\"up_to_date\":1"),
        "{status:?}"
    );
    // Two bodies for both backends in one version without a pair is refused.
    fs::write(dir.join("V4__pair.sql"), "SELECT 1;\n").unwrap();
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

fn a_failing_tenant_leaves_the_others_migrated_and_itself_untouched(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "aa", "bb", "cc"])
        .assert()
        .success();
    // bb has a row the migration's constraint rejects.
    db.sql(
        "INSERT INTO ns_tenant_bb.filters (name, model_name) VALUES ('dup', 'users'), ('dup', 'models')",
    );
    let dir = migrations(
        db,
        &[(
            "V2__unique.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\nCREATE UNIQUE INDEX filters_name ON filters (name);\n",
        )],
    );
    let out = db
        .monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "up", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("retry with:") && err.contains("--tenant bb"),
        "{err}"
    );
    if let Some(password) = crate::pgdb::split_password(db.url()).1 {
        assert!(
            !format!("{out:?}").contains(&password),
            "the password was printed"
        );
    }
    assert_eq!(history(db, "ns_tenant_aa"), vec![1, 2]);
    assert_eq!(history(db, "ns_tenant_cc"), vec![1, 2]);
    assert!(history(db, "ns_tenant_bb").is_empty());
    assert!(!columns(db, "ns_tenant_bb", "users").contains(&"nickname".to_string()));
}

fn a_run_killed_before_its_commit_leaves_the_tenant_as_it_was(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "acme"])
        .assert()
        .success();
    let dir = migrations(
        db,
        &[(
            "V2__nickname.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\n",
        )],
    );
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("monkctl"));
    cmd.arg("--data-dir")
        .arg(db.data_dir())
        .arg("--database-url")
        .arg(db.url())
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "up", "--yes"])
        .env("MONKCTL_PAUSE_AT", "migrate.pg.before_commit")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("paused at migrate.pg.before_commit") {
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        assert!(n > 0, "the run ended before its pause point: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The migration ran inside the open transaction; kill before the commit.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(history(db, "ns_tenant_acme").is_empty());
    assert!(!columns(db, "ns_tenant_acme", "users").contains(&"nickname".to_string()));
    // A retry finds nothing in its way.
    db.monkctl()
        .arg("--migrations")
        .arg(&dir)
        .args(["migrate", "up", "--yes"])
        .assert()
        .success();
    assert_eq!(history(db, "ns_tenant_acme"), vec![1, 2]);
}
