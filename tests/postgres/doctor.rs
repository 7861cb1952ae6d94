//! `monkctl doctor` on a PostgreSQL deployment: each finding made by hand in the database the
//! way an operator or a crashed API would leave it, then named with its severity and exit code;
//! doctor without `--repair` changes nothing.

use serde_json::Value;

use crate::tenant::{fails, json, ok, registry, run, schema_rows, tenant_schemas};
use crate::PgDb;

cases![
    a_new_deployment_is_healthy_and_doctor_changes_nothing,
    a_dropped_schema_is_schema_missing_and_failing,
    a_schema_without_a_row_is_schema_without_row_and_degraded,
    a_dropped_column_is_schema_drift,
    a_deleted_owner_is_owner_missing,
    a_sqlite_row_in_the_registry_is_only_info,
    tenant_option_checks_only_the_named_tenants,
    repair_sets_an_orphan_schema_aside_and_repairs_the_data_directory,
    the_json_report_has_the_shape_it_has_on_sqlite,
    doctor_without_a_registry_or_a_server_says_so,
];

const DEGRADED: i32 = 10;
const FAILING: i32 = 11;

/// Two tenants, `acme` (owner `admin`) and `bravo` (owner root).
fn setup(db: &PgDb) {
    ok(db, &["tenant", "create", "acme", "--owner", "admin"]);
    ok(db, &["tenant", "create", "bravo"]);
}

/// Runs `doctor ARGS --format json`; returns the report and the exit code.
fn doctor(db: &PgDb, args: &[&str]) -> (Value, i32) {
    let mut a = vec!["--format", "json", "doctor"];
    a.extend_from_slice(args);
    let out = run(db, &a);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor {args:?}: no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().expect("exit code"))
}

/// The findings with `code`.
fn with_code<'a>(v: &'a Value, code: &str) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

/// Codes of every finding, sorted.
fn codes(v: &Value) -> Vec<String> {
    let mut c: Vec<String> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().unwrap_or_default().to_string())
        .collect();
    c.sort();
    c
}

/// What doctor must leave as it found it: the registry, the schemas and every tenant's rows.
fn everything(db: &PgDb) -> (Vec<Value>, Vec<String>, Vec<String>) {
    let schemas = tenant_schemas(db);
    let rows = schemas.iter().flat_map(|s| schema_rows(db, s)).collect();
    (registry(db), schemas, rows)
}

fn a_new_deployment_is_healthy_and_doctor_changes_nothing(db: &PgDb) {
    setup(db);
    let before = everything(db);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["summary"]["errors"], 0);
    assert_eq!(v["summary"]["warnings"], 0);
    assert_eq!(v["summary"]["infos"], 0);
    assert_eq!(v["summary"]["tenants_checked"], 2);
    assert_eq!(v["findings"], serde_json::json!([]), "{v:#}");
    assert_eq!(everything(db), before);
    // The table form ends with the status line.
    let text = ok(db, &["doctor"]);
    assert!(text.contains("healthy: 0 error(s), 0 warning(s)"), "{text}");
    // Its drift reference is built in a transaction rolled back: no scratch schema is left.
    assert_eq!(
        db.scalar::<i64>(
            "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
             AND nspname NOT IN ('information_schema', 'public') \
             AND nspname NOT LIKE 'ns\\_tenant\\_%'"
        ),
        0
    );
    // User models of the API (tables besides the system ones) are the tenant's own: no drift.
    db.sql(
        "CREATE TABLE ns_tenant_bravo.widgets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
         name text); ALTER TABLE ns_tenant_bravo.users ADD COLUMN nickname text",
    );
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["findings"], serde_json::json!([]), "{v:#}");
}

fn a_dropped_schema_is_schema_missing_and_failing(db: &PgDb) {
    setup(db);
    db.sql("DROP SCHEMA ns_tenant_acme CASCADE");
    let before = everything(db);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, FAILING, "{v:#}");
    assert_eq!(v["status"], "failing");
    assert_eq!(v["summary"]["errors"], 1);
    assert_eq!(v["summary"]["tenants_checked"], 1);
    let f = with_code(&v, "schema_missing");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["severity"], "error");
    assert_eq!(f[0]["tenant"], "acme");
    assert_eq!(f[0]["repairable"], false);
    assert!(
        f[0]["message"].as_str().unwrap().contains("ns_tenant_acme"),
        "{v:#}"
    );
    assert!(
        f[0]["fix"].as_str().unwrap().contains("tenant delete"),
        "{v:#}"
    );
    // bravo is fine.
    assert_eq!(codes(&v), ["schema_missing"], "{v:#}");
    assert_eq!(everything(db), before);
    // show says the same.
    let shown = json(db, &["tenant", "show", "acme"]);
    assert_eq!(shown["file_exists"], false, "{shown:#}");
    assert!(
        shown["file_error"]
            .as_str()
            .unwrap()
            .contains("ns_tenant_acme"),
        "{shown:#}"
    );
    // Once deleted (the API's answer to a lost schema), it is not a finding any more.
    ok(db, &["tenant", "delete", "acme", "--yes"]);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(codes(&v), Vec::<String>::new(), "{v:#}");
}

fn a_schema_without_a_row_is_schema_without_row_and_degraded(db: &PgDb) {
    setup(db);
    // What an API create interrupted after its schema commit leaves; and a schema of another
    // kind, which is not a tenant's.
    db.sql(
        "CREATE SCHEMA ns_tenant_ghost; CREATE TABLE ns_tenant_ghost.users (id uuid); \
         CREATE SCHEMA reports; CREATE TABLE reports.monthly (x int)",
    );
    let before = everything(db);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["summary"]["warnings"], 1);
    let f = with_code(&v, "schema_without_row");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["severity"], "warning");
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("ns_tenant_ghost"),
        "{v:#}"
    );
    assert_eq!(codes(&v), ["schema_without_row"], "{v:#}");
    assert_eq!(everything(db), before);
    // Creating the tenant of that name is refused, and names the cause; the schema is kept.
    let err = fails(db, &["tenant", "create", "ghost"], 4);
    assert!(err.contains("ns_tenant_ghost"), "{err}");
    assert!(err.contains("doctor"), "{err}");
    assert_eq!(everything(db), before);
    // Dropped by the operator: healthy again.
    db.sql("DROP SCHEMA ns_tenant_ghost CASCADE");
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, 0, "{v:#}");
}

fn a_dropped_column_is_schema_drift(db: &PgDb) {
    setup(db);
    db.sql("ALTER TABLE ns_tenant_acme.users DROP COLUMN auth");
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let f = with_code(&v, "schema_drift");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["tenant"], "acme");
    assert_eq!(f[0]["severity"], "warning");
    let message = f[0]["message"].as_str().unwrap();
    assert!(message.contains("users.auth"), "{message}");
    // A column of another type and a missing table are drift too, named each.
    db.sql(
        "ALTER TABLE ns_tenant_bravo.filters ALTER COLUMN name TYPE varchar(20); \
         DROP TABLE ns_tenant_bravo.auth_challenges",
    );
    let before = everything(db);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let f = with_code(&v, "schema_drift");
    assert_eq!(f.len(), 2, "{v:#}");
    let bravo = f.iter().find(|f| f["tenant"] == "bravo").expect("bravo");
    let message = bravo["message"].as_str().unwrap();
    assert!(message.contains("filters.name"), "{message}");
    assert!(message.contains("auth_challenges"), "{message}");
    assert_eq!(everything(db), before);
}

fn a_deleted_owner_is_owner_missing(db: &PgDb) {
    setup(db);
    db.sql("DELETE FROM ns_tenant_acme.users WHERE name = 'admin'");
    let before = everything(db);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let f = with_code(&v, "owner_missing");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["tenant"], "acme");
    assert_eq!(f[0]["severity"], "warning");
    let owner = crate::tenant::row(db, "acme")["owner_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(f[0]["message"].as_str().unwrap().contains(&owner), "{v:#}");
    assert_eq!(codes(&v), ["owner_missing"], "{v:#}");
    assert_eq!(everything(db), before);
    // The root owner of bravo, deleted too.
    db.sql("DELETE FROM ns_tenant_bravo.users");
    let (v, _) = doctor(db, &[]);
    assert_eq!(with_code(&v, "owner_missing").len(), 2, "{v:#}");
}

fn a_sqlite_row_in_the_registry_is_only_info(db: &PgDb) {
    setup(db);
    db.sql(
        "INSERT INTO public.tenants (name, db_type, database, schema, owner_id) \
         VALUES ('legacy', 'sqlite', 'db_main', 'ns_tenant_legacy', \
           '00000000-0000-0000-0000-000000000000')",
    );
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, 0, "{v:#}");
    let f = with_code(&v, "sqlite_tenant_in_postgres_registry");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["severity"], "info");
    assert_eq!(f[0]["tenant"], "legacy");
    assert_eq!(codes(&v), ["sqlite_tenant_in_postgres_registry"], "{v:#}");
    // It is listed as a tenant like the others.
    let list = json(db, &["tenant", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 3, "{list:#}");
}

fn tenant_option_checks_only_the_named_tenants(db: &PgDb) {
    setup(db);
    db.sql(
        "CREATE SCHEMA ns_tenant_ghost; \
         ALTER TABLE ns_tenant_bravo.users DROP COLUMN access",
    );
    let (v, code) = doctor(db, &["--tenant", "acme"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["summary"]["tenants_checked"], 1);
    assert_eq!(codes(&v), Vec::<String>::new(), "{v:#}");
    let (v, code) = doctor(db, &["--tenant", "bravo"]);
    assert_eq!(code, DEGRADED, "{v:#}");
    assert_eq!(codes(&v), ["schema_drift"], "{v:#}");
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    assert_eq!(codes(&v), ["schema_drift", "schema_without_row"], "{v:#}");
    let err = fails(db, &["doctor", "--tenant", "nobody"], 3);
    assert!(err.contains("nobody"), "{err}");
    fails(db, &["doctor", "--tenant", "../x"], 2);
}

/// `--repair` on PostgreSQL: an orphan tenant schema is renamed aside with its content (the
/// name free again, nothing dropped); monkctl's own state in the data directory (a stale lock,
/// a dead process's temporary file, a directory others can read) is repaired as on SQLite; the
/// findings that need a person (a missing schema, drift, a missing owner) are left as they are.
fn repair_sets_an_orphan_schema_aside_and_repairs_the_data_directory(db: &PgDb) {
    use std::os::unix::fs::PermissionsExt;
    setup(db);
    ok(db, &["tenant", "create", "carol"]);
    db.sql(
        "CREATE SCHEMA ns_tenant_ghost; CREATE TABLE ns_tenant_ghost.notes (body text); \
         INSERT INTO ns_tenant_ghost.notes VALUES ('kept'); \
         DROP SCHEMA ns_tenant_carol CASCADE; \
         DELETE FROM ns_tenant_acme.users WHERE name = 'admin'; \
         ALTER TABLE ns_tenant_bravo.fs DROP COLUMN mode",
    );
    let data = db.data_dir();
    let locks = data.join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stale = locks.join("migrate-postgres.lock");
    std::fs::write(
        &stale,
        r#"{"pid":4194304,"host":"h","command":"monkctl migrate up","since":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o600)).unwrap();
    let temp = data.join(".acme.monk.db.monktmp-4194304-deadbeef");
    std::fs::write(&temp, "half an archive").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Without --repair: every finding, nothing changed.
    let before = everything(db);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, FAILING, "{v:#}");
    assert_eq!(
        codes(&v),
        [
            "owner_missing",
            "permissions_too_wide",
            "schema_drift",
            "schema_missing",
            "schema_without_row",
            "stale_lock",
            "temp_leftover"
        ],
        "{v:#}"
    );
    for f in v["findings"].as_array().unwrap() {
        let repairable = [
            "permissions_too_wide",
            "schema_without_row",
            "stale_lock",
            "temp_leftover",
        ]
        .contains(&f["code"].as_str().unwrap());
        assert_eq!(f["repairable"], repairable, "{f:#}");
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f:#}");
    }
    assert_eq!(everything(db), before, "doctor changed the database");
    assert!(stale.exists() && temp.exists());

    let (v, code) = doctor(db, &["--repair"]);
    assert_eq!(code, FAILING, "{v:#}");
    let repairs = v["repairs"].as_array().unwrap();
    let mut repaired: Vec<&str> = repairs
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    repaired.sort();
    assert_eq!(
        repaired,
        [
            "permissions_too_wide",
            "schema_without_row",
            "stale_lock",
            "temp_leftover"
        ],
        "{v:#}"
    );
    assert!(repairs.iter().all(|r| r["ok"] == true), "{v:#}");
    assert_eq!(
        codes(&v),
        ["owner_missing", "schema_drift", "schema_missing"],
        "{v:#}"
    );
    assert!(!stale.exists() && !temp.exists());
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // The orphan is renamed aside with its content; no tenant schema was touched.
    let aside: String = db.scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'monk\\_orphan\\_ghost\\_%'",
    );
    let note: String = db.scalar(&format!("SELECT body FROM \"{aside}\".notes"));
    assert_eq!(note, "kept");
    let shown = repairs
        .iter()
        .find(|r| r["code"] == "schema_without_row")
        .unwrap();
    assert!(
        shown["action"].as_str().unwrap().contains(&aside),
        "{shown:#}"
    );
    let (tenants, schemas, _) = everything(db);
    assert_eq!(tenants, before.0, "the registry changed");
    assert_eq!(
        schemas,
        before
            .1
            .iter()
            .filter(|s| *s != "ns_tenant_ghost")
            .cloned()
            .collect::<Vec<_>>()
    );
    // The name is free again.
    ok(db, &["tenant", "create", "ghost"]);
}

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn the_json_report_has_the_shape_it_has_on_sqlite(db: &PgDb) {
    setup(db);
    db.sql("DROP SCHEMA ns_tenant_acme CASCADE");
    let (pg, code) = doctor(db, &[]);
    assert_eq!(code, FAILING, "{pg:#}");
    // The same kind of problem on SQLite: a registered tenant without its file.
    let env = crate::common::Env::new();
    let out = env
        .cmd()
        .args(["tenant", "create", "acme", "--owner", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(env.tenant_file("acme")).unwrap();
    let out = env
        .cmd()
        .args(["--format", "json", "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(FAILING), "{out:?}");
    let lite: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(keys(&pg), keys(&lite));
    assert_eq!(keys(&pg["summary"]), keys(&lite["summary"]));
    assert_eq!(keys(&pg["findings"][0]), keys(&lite["findings"][0]));
    assert_eq!(pg["status"], lite["status"]);
    assert_eq!(
        pg["findings"][0]["severity"],
        lite["findings"][0]["severity"]
    );
    assert_eq!(pg["findings"][0]["tenant"], lite["findings"][0]["tenant"]);
    assert_eq!(pg["repairs"], serde_json::json!([]));
    assert_eq!(pg["findings"][0]["tenants"], serde_json::json!(["acme"]));
    assert_eq!(pg["findings"][0]["count"], 1);
    // On PostgreSQL a finding names no file.
    assert!(pg["findings"][0]["path"].is_null(), "{pg:#}");
}

fn doctor_without_a_registry_or_a_server_says_so(db: &PgDb) {
    // An empty database: not a deployment yet.
    let err = fails(db, &["doctor"], 3);
    assert!(err.contains("monkctl init"), "{err}");
    assert!(err.contains(db.name()), "{err}");
    assert_eq!(
        db.scalar::<Option<String>>("SELECT to_regclass('public.tenants')::text"),
        None,
        "doctor created the registry"
    );
    // `init` makes one, and it is healthy with no tenant.
    ok(db, &["init"]);
    let (v, code) = doctor(db, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["summary"]["tenants_checked"], 0);
}
