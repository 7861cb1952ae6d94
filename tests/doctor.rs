//! `monkctl doctor`: each finding is built on a real data directory by the real binary plus
//! direct file edits, then named with its severity and exit code, and repaired exactly.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{snapshot, table_rows, Env};
use serde_json::Value;

const DEGRADED: i32 = 10;
const FAILING: i32 = 11;

/// Two tenants, `acme` (owner `admin`) and `bravo` (owner root).
fn setup() -> Env {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "--owner", "admin"]);
    env.ok(&["tenant", "create", "bravo"]);
    env
}

/// Runs `doctor ARGS --format json`; returns the report and the exit code.
fn doctor(env: &Env, args: &[&str]) -> (Value, i32) {
    let mut a = vec!["--format", "json", "doctor"];
    a.extend_from_slice(args);
    let out = env.run(&a);
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

/// Codes of the findings of severity warning or error.
fn problems(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| f["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every row of every table of a database, for "data unchanged" checks.
fn dump(path: &Path) -> Vec<String> {
    table_rows(&rusqlite::Connection::open(path).expect("open"))
}

fn registry_rows(env: &Env) -> Vec<String> {
    let conn = env.open(&env.infra());
    let mut st = conn
        .prepare("SELECT id, name, database, schema, status, deleted_at FROM tenants ORDER BY name")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|{}|{}|{:?}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?
            ))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_fresh_data_dir_is_healthy_and_doctor_changes_nothing() {
    let env = setup();
    let before = snapshot(&env.data());
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["summary"]["errors"], 0);
    assert_eq!(v["summary"]["warnings"], 0);
    assert_eq!(v["summary"]["tenants_checked"], 2);
    assert_eq!(snapshot(&env.data()), before);
    // The table form ends with the status line.
    let text = env.ok(&["doctor", "--full", "--jobs", "1"]);
    assert!(text.contains("healthy: 0 error(s), 0 warning(s)"), "{text}");
}

#[test]
fn no_infra_database_is_not_found() {
    let env = Env::new();
    let err = env.fails(&["doctor"], 3);
    assert!(err.contains("monkctl init"), "{err}");
    assert!(!env.data().exists());
}

#[test]
fn a_truncated_tenant_file_is_failing_and_not_repaired() {
    let env = setup();
    let f = env.tenant_file("acme");
    let len = fs::metadata(&f).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, FAILING, "{v:#}");
    assert_eq!(v["status"], "failing");
    let bad: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["tenant"] == "acme" && f["severity"] == "error")
        .collect();
    assert_eq!(bad.len(), 1, "{v:#}");
    assert!(
        bad[0]["code"] == "integrity_failed" || bad[0]["code"] == "tenant_unreadable",
        "{v:#}"
    );
    assert_eq!(bad[0]["repairable"], false);
    // bravo is fine.
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["tenant"] != "bravo" || f["severity"] == "info"));

    let before = snapshot(&env.data().join("db_main"));
    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, FAILING);
    assert_eq!(v["status_before"], "failing");
    assert!(v["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["code"] == "fixture_unrecorded"));
    assert_eq!(snapshot(&env.data().join("db_main")), before);
}

#[test]
fn a_missing_tenant_file_is_failing() {
    let env = setup();
    fs::remove_file(env.tenant_file("bravo")).unwrap();
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, FAILING);
    let f = with_code(&v, "file_missing");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["tenant"], "bravo");
    assert_eq!(f[0]["severity"], "error");
    assert_eq!(
        f[0]["path"].as_str().unwrap(),
        env.tenant_file("bravo").to_str().unwrap()
    );
    assert_eq!(v["summary"]["tenants_checked"], 1);
}

#[test]
fn a_dropped_system_table_is_drift_but_a_user_table_is_not() {
    let env = setup();
    let acme = env.tenant_file("acme");
    env.open(&acme)
        .execute_batch("CREATE TABLE widgets (id TEXT PRIMARY KEY, name TEXT);")
        .unwrap();
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, 0, "a user model table is not drift: {v:#}");

    env.open(&acme)
        .execute_batch("DROP TABLE filters; ALTER TABLE models DROP COLUMN description;")
        .unwrap();
    let (v, code) = doctor(&env, &["--tenant", "acme"]);
    assert_eq!(code, FAILING, "{v:#}");
    let d = with_code(&v, "schema_drift");
    assert_eq!(d.len(), 1, "{v:#}");
    assert_eq!(d[0]["severity"], "error");
    let msg = d[0]["message"].as_str().unwrap();
    assert!(msg.contains("table filters"), "{msg}");
    assert!(msg.contains("column models.description"), "{msg}");
    assert!(!msg.contains("widgets"), "{msg}");
}

#[test]
fn a_changed_system_column_is_a_warning() {
    let env = setup();
    // Rebuild `filters` with one column's type changed, as a hand edit would.
    let conn = env.open(&env.tenant_file("bravo"));
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name='filters'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("\"description\" TEXT"), "{sql}");
    let changed = sql.replace("\"description\" TEXT", "\"description\" BLOB");
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys=OFF; DROP TABLE filters; {changed};"
    ))
    .unwrap();
    drop(conn);
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let d = with_code(&v, "schema_drift");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["severity"], "warning");
    assert!(d[0]["message"]
        .as_str()
        .unwrap()
        .contains("filters.description is BLOB"));
}

#[test]
fn an_orphan_is_moved_to_orphans_and_nothing_else_changes() {
    let env = setup();
    let db_main = env.data().join("db_main");
    let orphan = db_main.join("ns_tenant_ghost.db");
    fs::write(&orphan, b"left by someone").unwrap();
    fs::set_permissions(&orphan, fs::Permissions::from_mode(0o600)).unwrap();
    let stray = db_main.join("ns_tenant_gone.db-wal");
    fs::write(&stray, b"wal").unwrap();
    fs::set_permissions(&stray, fs::Permissions::from_mode(0o600)).unwrap();

    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    assert_eq!(v["status"], "degraded");
    let o = with_code(&v, "orphan_file");
    assert_eq!(o.len(), 1, "{v:#}");
    assert_eq!(o[0]["severity"], "warning");
    assert_eq!(o[0]["repairable"], true);
    assert_eq!(o[0]["path"].as_str().unwrap(), orphan.to_str().unwrap());
    assert_eq!(with_code(&v, "stray_sidecar").len(), 1);
    let mut problems_found = problems(&v);
    problems_found.sort();
    assert_eq!(problems_found, vec!["orphan_file", "stray_sidecar"]);

    let tenants_before: Vec<_> = ["acme", "bravo"]
        .iter()
        .map(|t| dump(&env.tenant_file(t)))
        .collect();
    let rows_before = registry_rows(&env);
    let untouched = |s: Vec<(PathBuf, u64, std::time::SystemTime)>| -> Vec<_> {
        s.into_iter()
            .filter(|(p, _, _)| p != &orphan && p != &stray)
            .collect()
    };
    let before = untouched(snapshot(&db_main));

    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["status_before"], "degraded");
    let moved: Vec<&Value> = v["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] != "fixture_unrecorded")
        .collect();
    assert_eq!(moved.len(), 2, "{v:#}");
    assert!(moved.iter().all(|r| r["ok"] == true));
    assert!(!orphan.exists() && !stray.exists());
    let kept = env.data().join("orphans/ns_tenant_ghost.db");
    assert_eq!(fs::read(&kept).unwrap(), b"left by someone");
    assert_eq!(
        fs::read(env.data().join("orphans/ns_tenant_gone.db-wal")).unwrap(),
        b"wal"
    );
    assert_eq!(untouched(snapshot(&db_main)), before);
    let tenants_after: Vec<_> = ["acme", "bravo"]
        .iter()
        .map(|t| dump(&env.tenant_file(t)))
        .collect();
    assert_eq!(tenants_after, tenants_before);
    assert_eq!(registry_rows(&env), rows_before);
}

#[test]
fn temp_leftovers_of_dead_processes_are_removed_live_ones_kept() {
    let env = setup();
    let db_main = env.data().join("db_main");
    // pid 4194304 is above Linux's pid_max: no such process can exist.
    let dead = db_main.join(".ns_tenant_new.db.monktmp-4194304-deadbeef");
    fs::write(&dead, b"half a database").unwrap();
    let live = db_main.join(format!(
        ".ns_tenant_other.db.monktmp-{}-cafebabe",
        std::process::id()
    ));
    fs::write(&live, b"in progress").unwrap();
    for p in [&dead, &live] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap();
    }

    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let t = with_code(&v, "temp_leftover");
    assert_eq!(t.len(), 1, "{v:#}");
    assert_eq!(t[0]["severity"], "warning");
    assert_eq!(t[0]["path"].as_str().unwrap(), dead.to_str().unwrap());
    let in_use = with_code(&v, "temp_in_use");
    assert_eq!(in_use.len(), 1);
    assert_eq!(in_use[0]["severity"], "info");
    // Neither is an orphan.
    assert!(with_code(&v, "orphan_file").is_empty());

    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, 0, "{v:#}");
    assert!(!dead.exists());
    assert_eq!(fs::read(&live).unwrap(), b"in progress");
    assert!(!env.data().join("orphans").exists());
}

#[test]
fn a_stale_lock_is_removed_a_held_one_kept() {
    let env = setup();
    let locks = env.data().join("locks");
    fs::create_dir_all(&locks).unwrap();
    fs::set_permissions(&locks, fs::Permissions::from_mode(0o700)).unwrap();
    let holder = r#"{"pid":4194304,"host":"h","command":"monkctl migrate run","since":"2026-01-01T00:00:00Z"}"#;
    let stale = locks.join("migrate-db_main.lock");
    fs::write(&stale, holder).unwrap();
    let held = locks.join("restore.lock");
    fs::write(
        &held,
        holder.replace("4194304", &std::process::id().to_string()),
    )
    .unwrap();
    for p in [&stale, &held] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let held_file = fs::OpenOptions::new().read(true).open(&held).unwrap();
    held_file.lock().unwrap();

    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let s = with_code(&v, "stale_lock");
    assert_eq!(s.len(), 1, "{v:#}");
    assert_eq!(s[0]["severity"], "warning");
    assert!(s[0]["message"]
        .as_str()
        .unwrap()
        .contains("monkctl migrate run"));
    assert_eq!(with_code(&v, "lock_held").len(), 1);

    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, 0, "{v:#}");
    assert!(!stale.exists());
    assert!(held.exists());
    assert_eq!(with_code(&v, "lock_held").len(), 1);
    drop(held_file);
}

#[test]
fn world_readable_files_are_narrowed_to_owner_only() {
    let env = setup();
    let acme = env.tenant_file("acme");
    fs::set_permissions(&acme, fs::Permissions::from_mode(0o644)).unwrap();
    let trash = env.data().join("trash");
    fs::create_dir_all(&trash).unwrap();
    fs::set_permissions(&trash, fs::Permissions::from_mode(0o755)).unwrap();
    let data_before = dump(&acme);

    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let p = with_code(&v, "permissions_too_wide");
    assert_eq!(p.len(), 2, "{v:#}");
    assert!(p.iter().all(|f| f["severity"] == "warning"));
    assert!(p.iter().any(|f| f["tenant"] == "acme"));

    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(mode(&acme), 0o600);
    assert_eq!(mode(&trash), 0o700);
    assert_eq!(mode(&env.tenant_file("bravo")), 0o600);
    assert_eq!(dump(&acme), data_before);
}

#[test]
fn an_interrupted_delete_is_finished_into_the_trash() {
    let env = setup();
    let id: String = env
        .open(&env.infra())
        .query_row("SELECT id FROM tenants WHERE name='bravo'", [], |r| {
            r.get(0)
        })
        .unwrap();
    // The API's delete committed; the move to the trash did not happen.
    env.open(&env.infra())
        .execute(
            "UPDATE tenants SET status='deleted', is_active=0, deleted_at='2026-01-01T00:00:00Z' WHERE name='bravo'",
            [],
        )
        .unwrap();
    let live = env.tenant_file("bravo");
    let content = dump(&live);

    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let d = with_code(&v, "deleted_file_live");
    assert_eq!(d.len(), 1, "{v:#}");
    assert_eq!(d[0]["tenant"], "bravo");
    assert_eq!(d[0]["repairable"], true);
    // A deleted tenant's file is not checked as a live tenant.
    assert_eq!(v["summary"]["tenants_checked"], 1);

    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, 0, "{v:#}");
    let trashed = env.data().join(format!("trash/ns_tenant_bravo.{id}.db"));
    assert!(!live.exists());
    assert_eq!(dump(&trashed), content);
}

#[test]
fn status_and_deleted_at_disagreeing_is_a_warning() {
    let env = setup();
    env.open(&env.infra())
        .execute(
            "UPDATE tenants SET deleted_at='2026-01-01T00:00:00Z' WHERE name='acme'",
            [],
        )
        .unwrap();
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let s = with_code(&v, "status_inconsistent");
    assert_eq!(s.len(), 1, "{v:#}");
    assert_eq!(s[0]["tenant"], "acme");
    assert_eq!(s[0]["repairable"], false);
}

#[test]
fn a_missing_owner_row_is_failing() {
    let env = setup();
    env.open(&env.tenant_file("acme"))
        .execute("DELETE FROM users WHERE name='admin'", [])
        .unwrap();
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, FAILING, "{v:#}");
    let o = with_code(&v, "owner_missing");
    assert_eq!(o.len(), 1);
    assert_eq!(o[0]["tenant"], "acme");
    assert_eq!(o[0]["severity"], "error");
}

#[test]
fn full_finds_foreign_key_violations_that_quick_check_does_not() {
    let env = setup();
    env.open(&env.tenant_file("bravo"))
        .execute_batch(
            "PRAGMA foreign_keys=OFF; INSERT INTO fields (id, model_name, field_name, type) \
             SELECT 'orphan-field', 'no_such_model', 'x', type FROM fields LIMIT 1;",
        )
        .unwrap();
    let (_, code) = doctor(&env, &[]);
    assert_eq!(code, 0);
    let (v, code) = doctor(&env, &["--full"]);
    assert_eq!(code, FAILING, "{v:#}");
    let f = with_code(&v, "foreign_key_violation");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["tenant"], "bravo");
}

#[test]
fn an_oversized_wal_is_checkpointed_without_losing_rows() {
    let env = setup();
    let acme = env.tenant_file("acme");
    // A connection that keeps the WAL (the last one to close would checkpoint it).
    let conn = env.open(&acme);
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0; CREATE TABLE blobs (b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 66)
         INSERT INTO blobs SELECT zeroblob(1048576) FROM n;",
    )
    .unwrap();
    let wal = PathBuf::from(format!("{}-wal", acme.display()));
    assert!(fs::metadata(&wal).unwrap().len() > 64 << 20);

    let (v, code) = doctor(&env, &["--tenant", "acme"]);
    assert_eq!(code, DEGRADED, "{v:#}");
    let w = with_code(&v, "wal_oversized");
    assert_eq!(w.len(), 1, "{v:#}");
    assert_eq!(w[0]["repairable"], true);

    let (v, code) = doctor(&env, &["--tenant", "acme", "--repair"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(fs::metadata(&wal).unwrap().len(), 0);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 66);
}

#[test]
fn tenant_filter_checks_only_that_tenant() {
    let env = setup();
    fs::write(env.data().join("db_main/stray.db"), b"x").unwrap();
    fs::remove_file(env.tenant_file("bravo")).unwrap();
    let (v, code) = doctor(&env, &["--tenant", "acme"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["summary"]["tenants_checked"], 1);
    let before = snapshot(&env.data());
    env.fails(&["doctor", "--tenant", "nobody"], 3);
    env.fails(&["doctor", "--tenant", "../etc"], 2);
    assert_eq!(snapshot(&env.data()), before);
}

#[test]
fn unrecorded_system_fixture_is_info_and_recorded_on_repair() {
    let env = setup();
    // monkctl records it at creation; the API does not.
    let (v, _) = doctor(&env, &[]);
    assert!(with_code(&v, "fixture_unrecorded").is_empty(), "{v:#}");
    env.open(&env.infra())
        .execute(
            "DELETE FROM tenant_fixtures WHERE fixture_name = 'system'",
            [],
        )
        .unwrap();
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, 0);
    assert_eq!(with_code(&v, "fixture_unrecorded").len(), 2, "{v:#}");
    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, 0);
    assert!(with_code(&v, "fixture_unrecorded").is_empty());
    let n: i64 = env
        .open(&env.infra())
        .query_row(
            "SELECT count(*) FROM tenant_fixtures WHERE fixture_name='system'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}

/// A data directory the Monk API 6.2 wrote: `<data>/monk/public.db` with tenants beside it.
#[test]
fn an_api6_data_directory_is_healthy() {
    let env = Env::new();
    let monk = env.data().join("monk");
    fs::create_dir_all(&monk).unwrap();
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/monk-api-6.2");
    for e in fs::read_dir(reference).unwrap().flatten() {
        let to = monk.join(e.file_name());
        fs::copy(e.path(), &to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
    }
    for d in [env.data(), monk.clone()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    }
    // Closing the last connection removes an empty `-wal` and the `-shm`; the databases stay.
    let mains = |d: &Path| -> Vec<_> {
        snapshot(d)
            .into_iter()
            .filter(|(p, _, _)| p.extension().is_some_and(|e| e == "db"))
            .collect()
    };
    let before = mains(&env.data());
    let (v, code) = doctor(&env, &["--full"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["summary"]["tenants_checked"], 2);
    // Only notes: the API records no migration history and no fixture rows.
    for f in v["findings"].as_array().unwrap() {
        assert!(
            f["code"] == "infra_migrations_pending" || f["code"] == "fixture_unrecorded",
            "{f:#}"
        );
    }
    assert_eq!(mains(&env.data()), before);

    // Files as the API's umask leaves them are named, one finding each.
    fs::set_permissions(
        monk.join("ns_tenant_globex.db"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, DEGRADED);
    assert_eq!(problems(&v), vec!["permissions_too_wide"]);
}

#[test]
fn an_unreadable_infra_database_is_failing() {
    let env = setup();
    // Overwritten with its WAL gone too (a WAL would still hold the registry's pages).
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", env.infra().display()));
    }
    fs::write(
        env.infra(),
        b"this is not a database, it is a note somebody saved over it",
    )
    .unwrap();
    let before = snapshot(&env.data());
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, FAILING, "{v:#}");
    let f = with_code(&v, "infra_unreadable");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0]["severity"], "error");
    assert_eq!(
        f[0]["path"].as_str().unwrap(),
        env.infra().to_str().unwrap()
    );
    assert_eq!(v["summary"]["tenants_checked"], 0);
    let (_, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, FAILING);
    assert_eq!(snapshot(&env.data()), before);
}

#[test]
fn what_templates_fixtures_and_restores_leave_is_not_a_problem() {
    let env = setup();
    let fx = env.root().join("fx/shop");
    fs::create_dir_all(&fx).unwrap();
    fs::write(
        fx.join("fixture.toml"),
        "name = \"shop\"\nversion = \"1\"\nfiles = [\"s.sql\"]\n",
    )
    .unwrap();
    fs::write(
        fx.join("s.sql"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    let fixtures = env.root().join("fx");
    let fixtures = fixtures.to_str().unwrap();
    env.ok(&[
        "fixture",
        "deploy",
        "shop",
        "--tenant",
        "acme",
        "--fixtures",
        fixtures,
    ]);
    env.ok(&[
        "template",
        "build",
        "shopt",
        "--fixture",
        "shop",
        "--fixtures",
        fixtures,
    ]);
    env.ok(&[
        "tenant",
        "create",
        "cloned",
        "--template",
        "shopt",
        "--fixtures",
        fixtures,
    ]);
    let archive = env.root().join("acme.monk.db");
    env.ok(&["extract", "acme", "-o", archive.to_str().unwrap()]);
    env.ok(&["restore", archive.to_str().unwrap(), "--force", "--yes"]);
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, 0, "{v:#}");
    let saved = with_code(&v, "saved_before_restore");
    assert_eq!(saved.len(), 1, "{v:#}");
    assert_eq!(saved[0]["severity"], "info");
    assert!(with_code(&v, "orphan_file").is_empty(), "{v:#}");
}

/// `<data>/snapshots/` holds whole tenant copies taken before destructive migrations: their
/// permissions are checked and repaired like the tenants'.
#[test]
fn snapshot_copies_with_wide_permissions_are_found_and_repaired() {
    let env = setup();
    let mig = env.root().join("mig");
    fs::create_dir_all(&mig).unwrap();
    fs::write(mig.join("V2__drop_filters.sql"), "DROP TABLE filters;\n").unwrap();
    env.ok(&[
        "--migrations",
        mig.to_str().unwrap(),
        "migrate",
        "up",
        "--allow-destructive",
        "--yes",
    ]);
    let copies: Vec<std::path::PathBuf> = fs::read_dir(env.data().join("snapshots"))
        .unwrap()
        .flatten()
        .filter(|r| r.path().is_dir())
        .flat_map(|r| fs::read_dir(r.path()).unwrap().flatten().map(|f| f.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    assert!(!copies.is_empty());
    fs::set_permissions(&copies[0], fs::Permissions::from_mode(0o644)).unwrap();
    let (v, code) = doctor(&env, &["--migrations", mig.to_str().unwrap()]);
    let wide = with_code(&v, "permissions_too_wide");
    assert_eq!(code, 10, "{v:#}");
    assert!(
        wide.iter()
            .any(|f| f["path"].as_str() == copies[0].to_str()),
        "{v:#}"
    );
    doctor(&env, &["--migrations", mig.to_str().unwrap(), "--repair"]);
    let mode = fs::metadata(&copies[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn scratch_directories_left_by_killed_fixture_checks_are_found_and_removed() {
    let env = setup();
    // What a `fixture check` of an older version, killed, left in the temporary directory
    // (the tests' TMPDIR is the test's own directory): its pid is a finished child's.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let dead = env.root().join(format!("monkctl-check-{pid}-0a1b2c3d"));
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("scratch.db"), b"x").unwrap();
    // A running process's, and names that are not monkctl's, are left alone.
    let live = env
        .root()
        .join(format!("monkctl-check-{}-0a1b2c3d", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    let other = env.root().join(format!("monkctl-check-{pid}-notours"));
    std::fs::create_dir(&other).unwrap();
    let (v, code) = doctor(&env, &[]);
    assert_eq!(code, 10, "{v}");
    let found = with_code(&v, "scratch_leftover");
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["path"], dead.display().to_string());
    let (v, code) = doctor(&env, &["--repair"]);
    assert_eq!(code, 0, "{v}");
    assert!(!dead.exists());
    assert!(live.exists() && other.exists());
}

/// Ctrl-C while doctor checks tenant files: the file being checked is finished, no other is
/// started; the report says so and counts only what was checked, exit 130.
#[test]
fn ctrl_c_during_the_tenant_checks_reports_what_was_checked() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "bravo", "carol"]);
    let out = env.interrupted_at(
        "doctor.tenant.checked",
        &["--format", "json", "doctor", "-j", "1"],
    );
    assert_eq!(out.status.code(), Some(130));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["interrupted"], true, "{v:#}");
    assert_eq!(v["summary"]["tenants_checked"], 1, "{v:#}");
}
