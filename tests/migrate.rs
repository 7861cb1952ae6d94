//! `monkctl migrate`: adoption, parallel up, failures kept per tenant, divergence, bad operator
//! directories, locks, destructive refusal, snapshots and undo. Real binary, real SQLite files.

mod common;

use std::path::{Path, PathBuf};

use common::{snapshot, Env};
use monkctl::core::lock::Lock;
use serde_json::Value;

const ADD_NICK: &str =
    "ALTER TABLE users ADD COLUMN nick TEXT;\nCREATE INDEX users_nick ON users (nick);\n";

/// Tenants as the API leaves them: the baseline schema without migration history (monkctl's
/// own creates record theirs, see tests/deployment.rs), so that adoption is exercised.
fn env_with(tenants: &[&str]) -> Env {
    let env = Env::new();
    env.ok(&["init"]);
    let mut args = vec!["tenant", "create"];
    args.extend_from_slice(tenants);
    env.ok(&args);
    for t in tenants {
        env.open(&env.tenant_file(t))
            .execute_batch("DROP TABLE refinery_schema_history")
            .unwrap();
    }
    env
}

fn mig_dir(env: &Env, files: &[(&str, &str)]) -> PathBuf {
    let d = env.root().join("mig");
    std::fs::create_dir_all(&d).unwrap();
    for (n, sql) in files {
        std::fs::write(d.join(n), sql).unwrap();
    }
    d
}

fn m(dir: &Path) -> String {
    dir.display().to_string()
}

fn columns(env: &Env, tenant: &str, table: &str) -> Vec<String> {
    let c = env.open(&env.tenant_file(tenant));
    let mut st = c.prepare("SELECT name FROM pragma_table_info(?1)").unwrap();
    st.query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn has_object(env: &Env, tenant: &str, name: &str) -> bool {
    let c = env.open(&env.tenant_file(tenant));
    c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

fn result_of<'a>(report: &'a Value, tenant: &str) -> &'a Value {
    report["tenants"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["tenant"] == tenant)
        .unwrap_or_else(|| panic!("no result for {tenant}: {report}"))
}

#[test]
fn adopts_then_applies_a_column_and_index_in_every_tenant() {
    let env = env_with(&["acme", "beta", "gamma"]);
    let dir = mig_dir(&env, &[("V2__add_nick.sql", ADD_NICK)]);
    let st = env.json(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(st["summary"]["adopt"], 3);
    assert_eq!(st["summary"]["pending"], 3);
    assert_eq!(st["summary"]["by_version"]["1"], 3);

    let up = env.json(&["migrate", "--migrations", &m(&dir), "up", "--jobs", "2"]);
    assert_eq!(up["summary"]["migrated"], 3, "{up}");
    assert_eq!(
        result_of(&up, "beta")["result"]["applied"],
        serde_json::json!([2])
    );
    assert_eq!(result_of(&up, "beta")["result"]["adopted"], true);
    for t in ["acme", "beta", "gamma"] {
        assert!(columns(&env, t, "users").contains(&"nick".to_string()));
        assert!(has_object(&env, t, "users_nick"));
        // History in refinery's format: version, name, RFC 3339 time, checksum as text.
        let c = env.open(&env.tenant_file(t));
        let rows: Vec<(i64, String, String, String)> = c
            .prepare("SELECT version, name, applied_on, typeof(checksum) FROM refinery_schema_history ORDER BY version")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].0, rows[0].1.as_str()), (1, "api_6_2_baseline"));
        assert_eq!((rows[1].0, rows[1].1.as_str()), (2, "add_nick"));
        assert!(rows[1].2.contains('T') && rows[1].2.ends_with('Z'));
        assert_eq!(rows[1].3, "text");
    }
    // A second run has nothing to do and changes nothing.
    let before = snapshot(&env.data().join("db_main"));
    let again = env.json(&["migrate", "--migrations", &m(&dir), "up"]);
    assert_eq!(again["summary"]["up_to_date"], 3);
    assert_eq!(before, snapshot(&env.data().join("db_main")));
    let st = env.json(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(st["summary"]["by_version"]["2"], 3);
}

#[test]
fn api_created_data_directory_is_adopted_without_running_anything() {
    let env = Env::new();
    let api = env.data().join("monk");
    std::fs::create_dir_all(&api).unwrap();
    for e in std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/monk-api-6.2"),
    )
    .unwrap()
    {
        let p = e.unwrap().path();
        std::fs::copy(&p, api.join(p.file_name().unwrap())).unwrap();
    }
    let acme = api.join("ns_tenant_acme.db");
    let widgets_before: i64 = env
        .open(&acme)
        .query_row("SELECT count(*) FROM widgets", [], |r| r.get(0))
        .unwrap();
    let up = env.json(&["migrate", "up"]);
    assert_eq!(up["summary"]["adopted"], 2, "{up}");
    assert_eq!(
        result_of(&up, "acme")["result"]["applied"],
        serde_json::json!([])
    );
    let c = env.open(&acme);
    let v: i64 = c
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, 1);
    let widgets_after: i64 = c
        .query_row("SELECT count(*) FROM widgets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(widgets_before, widgets_after);
}

#[test]
fn a_failing_migration_leaves_that_tenant_untouched_and_the_others_migrated() {
    let env = env_with(&["acme", "beta", "gamma"]);
    // V3 inserts a user that beta already has: beta fails after V2's statements ran in the
    // same transaction.
    env.open(&env.tenant_file("beta"))
        .execute_batch(
            "INSERT INTO users (id, name, auth, access) VALUES ('u-ops', 'ops', 'ops', 'root')",
        )
        .unwrap();
    let dir = mig_dir(
        &env,
        &[
            ("V2__notes.sql", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\nALTER TABLE users ADD COLUMN nick TEXT;\n"),
            ("V3__ops_user.sql", "INSERT INTO notes (body) VALUES ('hello');\nINSERT INTO users (id, name, auth, access) VALUES ('u-ops', 'ops', 'ops', 'root');\n"),
        ],
    );
    let err = env.fails(&["migrate", "--migrations", &m(&dir), "up"], 8);
    assert!(err.contains("V3__ops_user.sql"), "{err}");
    assert!(err.contains("INSERT INTO users"), "{err}");
    assert!(err.contains("--tenant beta"), "{err}");
    assert!(!err.contains("acme:"), "{err}");
    // beta: no V2 table, no new column, no history table: nothing half-applied.
    assert!(!has_object(&env, "beta", "notes"));
    assert!(!columns(&env, "beta", "users").contains(&"nick".to_string()));
    assert!(!has_object(&env, "beta", "refinery_schema_history"));
    for t in ["acme", "gamma"] {
        assert!(has_object(&env, t, "notes"));
        assert!(columns(&env, t, "users").contains(&"nick".to_string()));
    }
    let st = env.json(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "status",
        "--tenant",
        "beta",
    ]);
    assert_eq!(st["tenants"]["results"][0]["result"]["version"], 1);
}

#[test]
fn a_prepare_error_names_file_and_statement() {
    let env = env_with(&["acme"]);
    let dir = mig_dir(
        &env,
        &[(
            "V2__bad.sql",
            "CREATE TABLE fine (x);\nINSERT INTO nowhere VALUES (1);\n",
        )],
    );
    let before = snapshot(&env.data().join("db_main"));
    let plan = env.run(&["migrate", "--migrations", &m(&dir), "plan"]);
    assert_eq!(plan.status.code(), Some(1));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(out.contains("INSERT INTO nowhere"), "{out}");
    let err = env.fails(&["migrate", "--migrations", &m(&dir), "up"], 1);
    assert!(
        err.contains("V2__bad.sql")
            && err.contains("INSERT INTO nowhere")
            && err.contains("no such table"),
        "{err}"
    );
    assert_eq!(before, snapshot(&env.data().join("db_main")));
}

#[test]
fn an_edited_or_removed_applied_migration_is_reported_and_refused() {
    let env = env_with(&["acme", "beta"]);
    let dir = mig_dir(&env, &[("V2__add_nick.sql", ADD_NICK)]);
    env.ok(&["migrate", "--migrations", &m(&dir), "up"]);
    std::fs::write(
        dir.join("V2__add_nick.sql"),
        "ALTER TABLE users ADD COLUMN nickname TEXT;",
    )
    .unwrap();
    std::fs::write(dir.join("V3__more.sql"), "CREATE TABLE more (x);").unwrap();
    let st = env.json(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(st["summary"]["diverged"], 2);
    let d = st["tenants"]["results"][0]["result"]["diverged"][0]
        .as_str()
        .unwrap();
    assert!(d.contains("V2") && d.contains("edited"), "{d}");
    env.fails(&["migrate", "--migrations", &m(&dir), "plan"], 17);
    let before = snapshot(&env.data().join("db_main"));
    let err = env.fails(&["migrate", "--migrations", &m(&dir), "up"], 17);
    assert!(err.contains("V2__add_nick.sql"), "{err}");
    assert_eq!(before, snapshot(&env.data().join("db_main")));
    assert!(!has_object(&env, "acme", "more"));

    // Removed: applied V2 no longer present.
    std::fs::remove_file(dir.join("V2__add_nick.sql")).unwrap();
    let st = env.json(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(st["summary"]["missing"], 2);
    env.fails(&["migrate", "--migrations", &m(&dir), "plan"], 17);
    env.fails(&["migrate", "--migrations", &m(&dir), "up"], 17);
}

#[test]
fn bad_operator_directories_are_refused_before_anything_runs() {
    let env = env_with(&["acme"]);
    let before = snapshot(&env.data());
    for (files, needle) in [
        (vec![("V2_add.sql", "SELECT 1;")], "V2_add.sql"),
        (vec![("notes.txt", "x")], "notes.txt"),
        (
            vec![("V2__a.sql", "SELECT 1;"), ("V2__b.sql", "SELECT 2;")],
            "version 2",
        ),
        (
            vec![("V1__mine.sql", "SELECT 1;")],
            "built-in V1__api_6_2_baseline.sql",
        ),
    ] {
        let d = env
            .root()
            .join(format!("bad-{needle}").replace(['/', ' '], "_"));
        std::fs::create_dir_all(&d).unwrap();
        for (n, sql) in &files {
            std::fs::write(d.join(n), sql).unwrap();
        }
        for cmd in ["status", "plan", "up"] {
            let err = env.fails(&["migrate", "--migrations", &m(&d), cmd], 2);
            assert!(err.contains(needle), "{cmd}: {err}");
        }
    }
    let d = env.root().join("bad-utf8");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("V2__x.sql"), [0xff, 0xfe, b';']).unwrap();
    let err = env.fails(&["migrate", "--migrations", &m(&d), "up"], 2);
    assert!(err.contains("UTF-8"), "{err}");
    // Also from the environment.
    let err = env
        .cmd()
        .env("MONK_MIGRATIONS_DIR", &d)
        .args(["migrate", "up"])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(2));
    let err = env.fails(&["migrate", "--migrations", "/nonexistent/mig", "up"], 3);
    assert!(err.contains("/nonexistent/mig"), "{err}");
    assert_eq!(before, snapshot(&env.data()));
}

#[test]
fn missing_and_corrupt_tenant_files_fail_alone() {
    let env = env_with(&["acme", "beta", "gamma"]);
    std::fs::remove_file(env.tenant_file("beta")).unwrap();
    std::fs::write(
        env.tenant_file("gamma"),
        b"this is not a database, not at all......",
    )
    .unwrap();
    let dir = mig_dir(&env, &[("V2__add_nick.sql", ADD_NICK)]);
    env.fails(&["migrate", "--migrations", &m(&dir), "plan"], 6);
    let err = env.fails(&["migrate", "--migrations", &m(&dir), "up"], 8);
    assert!(err.contains("beta") && err.contains("gamma"), "{err}");
    assert!(err.contains("--tenant beta,gamma"), "{err}");
    assert!(columns(&env, "acme", "users").contains(&"nick".to_string()));
    assert_eq!(
        std::fs::read(env.tenant_file("gamma")).unwrap(),
        b"this is not a database, not at all......"
    );
    assert!(!env.tenant_file("beta").exists());
}

#[test]
fn a_locked_tenant_is_reported_and_the_others_migrate() {
    let env = env_with(&["acme", "beta"]);
    let dir = mig_dir(&env, &[("V2__add_nick.sql", ADD_NICK)]);
    let holder = env.open(&env.tenant_file("beta"));
    holder
        .execute_batch("PRAGMA journal_mode=WAL; BEGIN IMMEDIATE;")
        .unwrap();
    env.fails(
        &[
            "migrate",
            "--migrations",
            &m(&dir),
            "plan",
            "--busy-timeout",
            "1s",
        ],
        5,
    );
    let err = env.fails(
        &[
            "migrate",
            "--migrations",
            &m(&dir),
            "up",
            "--busy-timeout",
            "1s",
        ],
        8,
    );
    assert!(err.contains("beta") && err.contains("busy"), "{err}");
    assert!(columns(&env, "acme", "users").contains(&"nick".to_string()));
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert!(!columns(&env, "beta", "users").contains(&"nick".to_string()));
    let retry = env.json(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--tenant",
        "beta",
    ]);
    assert_eq!(retry["summary"]["migrated"], 1);
}

#[test]
fn a_second_run_is_refused_and_a_stale_lock_is_taken_over() {
    let env = env_with(&["acme"]);
    let lock_path = env.data().join("locks/migrate.lock");
    {
        let _held = Lock::acquire(&lock_path, "test holder").unwrap();
        let err = env.fails(&["migrate", "up"], 5);
        assert!(
            err.contains("test holder") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        env.fails(&["migrate", "undo", "--yes"], 5);
        let plan = env.run(&["migrate", "plan"]);
        assert_eq!(plan.status.code(), Some(5));
    }
    // A lock file naming a process that is gone: no OS lock holds it.
    std::fs::write(
        &lock_path,
        r#"{"pid":999999,"host":"elsewhere","command":"monkctl migrate up","since":"2026-01-01T00:00:00.000Z"}"#,
    )
    .unwrap();
    let out = env.run(&["--format", "json", "migrate", "up"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("took over") && err.contains("999999"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["took_over_stale_lock"]["pid"], 999999);
}

#[test]
fn destructive_migrations_are_refused_then_snapshotted_and_undone() {
    let env = env_with(&["acme", "beta", "gamma"]);
    for t in ["acme", "beta", "gamma"] {
        env.open(&env.tenant_file(t))
            .execute_batch(
                "INSERT INTO users (id, name, auth, access) VALUES ('u-old', 'old', 'old', 'read')",
            )
            .unwrap();
    }
    let dir = mig_dir(
        &env,
        &[
            ("V2__add_nick.sql", ADD_NICK),
            (
                "V3__drop_old.sql",
                "DELETE FROM users WHERE name = 'old';\nDROP INDEX users_nick;\n",
            ),
        ],
    );
    let plan = env.json(&["migrate", "--migrations", &m(&dir), "plan"]);
    assert_eq!(plan["summary"]["destructive"], 3);
    let d = &plan["tenants"]["results"][0]["result"]["destructive"];
    let actions: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"delete_rows") && actions.contains(&"drop_index"),
        "{d}"
    );
    assert!(d[0]["file"].as_str().unwrap().ends_with("V3__drop_old.sql"));

    let before = snapshot(&env.data().join("db_main"));
    let err = env.fails(&["migrate", "--migrations", &m(&dir), "up"], 18);
    assert!(
        err.contains("--allow-destructive") && err.contains("delete_rows users"),
        "{err}"
    );
    assert_eq!(before, snapshot(&env.data().join("db_main")));
    // Without a terminal, --allow-destructive also needs --yes.
    env.fails(
        &[
            "migrate",
            "--migrations",
            &m(&dir),
            "up",
            "--allow-destructive",
        ],
        2,
    );
    assert_eq!(before, snapshot(&env.data().join("db_main")));

    let up = env.json(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--allow-destructive",
        "--yes",
    ]);
    assert_eq!(up["summary"]["migrated"], 3);
    let snaps = PathBuf::from(up["snapshots"].as_str().unwrap());
    assert!(snaps.starts_with(env.data().join("snapshots")));
    use std::os::unix::fs::PermissionsExt;
    let snap_file = snaps.join("db_main.ns_tenant_acme.db");
    assert_eq!(
        std::fs::metadata(&snap_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let count_old = |t: &str| -> i64 {
        env.open(&env.tenant_file(t))
            .query_row("SELECT count(*) FROM users WHERE name = 'old'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(count_old("acme"), 0);

    // beta changes after the run: undo must leave it alone.
    env.open(&env.tenant_file("beta"))
        .execute_batch(
            "INSERT INTO users (id, name, auth, access) VALUES ('u-new', 'new', 'new', 'read')",
        )
        .unwrap();
    let list = env.json(&["migrate", "snapshots", "list"]);
    assert_eq!(list[0]["tenant_count"], 3);
    assert_eq!(list[0]["undone"], false);
    env.fails(&["migrate", "undo"], 2);
    let out = env.run(&["--format", "json", "migrate", "undo", "--yes"]);
    assert_eq!(out.status.code(), Some(8));
    let undo: Value = serde_json::from_slice(&out.stdout).unwrap();
    // In tenant order, as every fan-out reports (the run's manifest is in finishing order).
    let order: Vec<&str> = undo["tenants"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["acme", "beta", "gamma"]);
    assert_eq!(result_of(&undo, "acme")["result"]["restored_to"], 1);
    assert!(result_of(&undo, "beta")["error"]
        .as_str()
        .unwrap()
        .contains("changed since"));
    assert_eq!(count_old("acme"), 1);
    assert_eq!(count_old("gamma"), 1);
    assert!(!columns(&env, "acme", "users").contains(&"nick".to_string()));
    assert_eq!(count_old("beta"), 0);
    assert!(!env.tenant_file("acme").with_extension("db-wal").exists());
    // Nothing left to undo; the run is kept until pruned.
    env.fails(&["migrate", "undo", "--yes"], 3);
    let list = env.json(&["migrate", "snapshots", "list"]);
    assert_eq!(list[0]["undone"], true);
    env.fails(&["migrate", "snapshots", "prune", "--keep", "0"], 2);
    let pruned = env.json(&["migrate", "snapshots", "prune", "--keep", "0", "--yes"]);
    assert_eq!(pruned.as_array().unwrap().len(), 1);
    assert!(!snaps.exists());
}

#[test]
fn fail_fast_target_and_trashed_tenants() {
    let env = env_with(&["aaa", "bbb", "ccc", "ddd"]);
    env.ok(&["tenant", "trash", "ddd"]);
    env.open(&env.tenant_file("aaa"))
        .execute_batch(
            "INSERT INTO users (id, name, auth, access) VALUES ('u-ops', 'ops', 'ops', 'root')",
        )
        .unwrap();
    let dir = mig_dir(
        &env,
        &[
            ("V2__add_nick.sql", ADD_NICK),
            ("V3__ops.sql", "INSERT INTO users (id, name, auth, access) VALUES ('u-ops', 'ops', 'ops', 'root');"),
        ],
    );
    let out = env.run(&[
        "--format",
        "json",
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--jobs",
        "1",
        "--fail-fast",
    ]);
    assert_eq!(out.status.code(), Some(8));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["not_started"], serde_json::json!(["bbb", "ccc"]));
    assert_eq!(v["summary"]["skipped"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant aaa,bbb,ccc"));

    let v = env.json(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--target",
        "2",
        "--tenant",
        "bbb,ccc",
    ]);
    assert_eq!(result_of(&v, "bbb")["result"]["to"], 2);
    env.fails(
        &["migrate", "--migrations", &m(&dir), "up", "--target", "9"],
        2,
    );
    env.fails(
        &[
            "migrate",
            "--migrations",
            &m(&dir),
            "up",
            "--tenant",
            "nosuch",
        ],
        3,
    );
    env.fails(
        &["migrate", "--migrations", &m(&dir), "up", "--tenant", "ddd"],
        4,
    );
    assert!(!columns(&env, "ddd", "users").contains(&"nick".to_string()));
    let v = env.json(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--tenant",
        "ddd",
        "--include-trashed",
    ]);
    assert_eq!(result_of(&v, "ddd")["result"]["to"], 3);
}

#[test]
fn plan_writes_nothing() {
    let env = env_with(&["acme", "beta"]);
    let dir = mig_dir(&env, &[("V2__add_nick.sql", ADD_NICK)]);
    let before = snapshot(&env.data());
    let plan = env.json(&["migrate", "--migrations", &m(&dir), "plan"]);
    assert_eq!(plan["summary"]["pending"], 2);
    assert_eq!(plan["summary"]["locked"], 0);
    let dry = env.json(&["migrate", "--migrations", &m(&dir), "up", "--dry-run"]);
    assert_eq!(dry["summary"]["pending"], 2);
    env.ok(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(before, snapshot(&env.data()));
}

#[test]
fn a_run_killed_mid_way_leaves_every_tenant_whole_and_a_rerun_finishes() {
    let names: Vec<String> = (0..24).map(|i| format!("k{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let env = env_with(&refs);
    let dir = mig_dir(
        &env,
        &[(
            "V2__bulk.sql",
            "CREATE TABLE bulk (x INTEGER PRIMARY KEY, s TEXT);\n\
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)\n\
             INSERT INTO bulk SELECT x, 'row' FROM c;\n",
        )],
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_monkctl"))
        .current_dir(env.root())
        .env_remove("MONK_DATA_DIR")
        .env_remove("MONK_MIGRATIONS_DIR")
        .env_remove("DATABASE_URL")
        .env_remove("MONK_CONFIG")
        .arg("--data-dir")
        .arg(env.data())
        .args(["migrate", "--migrations", &m(&dir), "up", "--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The run takes its lock once every statement passed the guard on a scratch copy; kill it
    // a little after that, among the tenants.
    let lock = env.data().join("locks/migrate.lock");
    let started = std::time::Instant::now();
    while !lock.exists() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut done = 0;
    for n in &names {
        let c = env.open(&env.tenant_file(n));
        let has_bulk = has_object(&env, n, "bulk");
        let version: i64 = if has_object(&env, n, "refinery_schema_history") {
            c.query_row(
                "SELECT max(version) FROM refinery_schema_history",
                [],
                |r| r.get(0),
            )
            .unwrap()
        } else {
            1
        };
        if has_bulk {
            let rows: i64 = c
                .query_row("SELECT count(*) FROM bulk", [], |r| r.get(0))
                .unwrap();
            assert_eq!((rows, version), (100_000, 2), "{n} half-migrated");
            done += 1;
        } else {
            assert_eq!(version, 1, "{n} recorded V2 without its table");
        }
    }
    assert!(
        done < names.len(),
        "the kill came too late to test anything"
    );
    let out = env.run(&[
        "--format",
        "json",
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("took over"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["migrated"], names.len() - done);
    let st = env.json(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(st["summary"]["by_version"]["2"], names.len());
}

#[test]
fn snapshots_prune_by_age_and_usage() {
    let env = env_with(&["acme"]);
    let dir = mig_dir(&env, &[("V2__wipe.sql", "DELETE FROM filters;")]);
    env.ok(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--allow-destructive",
        "--yes",
    ]);
    env.fails(&["migrate", "snapshots", "prune", "--yes"], 2);
    let none = env.json(&[
        "migrate",
        "snapshots",
        "prune",
        "--older-than",
        "1d",
        "--yes",
    ]);
    assert_eq!(none.as_array().unwrap().len(), 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let gone = env.json(&[
        "migrate",
        "snapshots",
        "prune",
        "--older-than",
        "1s",
        "--yes",
    ]);
    assert_eq!(gone.as_array().unwrap().len(), 1);
    assert_eq!(
        env.json(&["migrate", "snapshots", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// The version recorded in a tenant's main file alone, ignoring any `-wal` beside it (what a
/// reader that skipped the WAL would see).
fn version_in_main_file(path: &Path) -> i64 {
    let uri = format!("file:{}?mode=ro&immutable=1", path.display());
    let c = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    c.query_row(
        "SELECT max(version) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn reads_see_what_an_open_wal_holds_and_leave_nothing_beside_quiet_tenants() {
    let env = env_with(&["acme", "beta"]);
    let dir = mig_dir(&env, &[("V2__add_nick.sql", ADD_NICK)]);
    env.ok(&["migrate", "--migrations", &m(&dir), "up"]);
    std::fs::write(
        dir.join("V3__add_city.sql"),
        "ALTER TABLE users ADD COLUMN city TEXT;\n",
    )
    .unwrap();

    // beta is held open, as by the API, in a read transaction (a long request): no checkpoint
    // can copy past what it reads, so V3 lands in its -wal only.
    let beta = env.tenant_file("beta");
    let holder = env.open(&beta);
    holder
        .execute_batch("PRAGMA wal_autocheckpoint=0; BEGIN; SELECT count(*) FROM users;")
        .unwrap();
    env.ok(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--tenant",
        "beta",
    ]);
    assert_eq!(
        version_in_main_file(&beta),
        2,
        "V3 must be in the -wal only"
    );

    let quiet = env.data().join("db_main");
    let before = snapshot(&quiet);
    let st = env.json(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(st["summary"]["by_version"]["3"], 1, "{st}");
    assert_eq!(st["summary"]["by_version"]["2"], 1, "{st}");
    let up = env.json(&["migrate", "--migrations", &m(&dir), "up"]);
    assert_eq!(
        result_of(&up, "beta")["result"]["applied"],
        serde_json::json!([])
    );
    assert_eq!(
        result_of(&up, "acme")["result"]["applied"],
        serde_json::json!([3])
    );
    drop(holder);

    // A run with nothing pending reads without creating or changing any file, and no run
    // leaves a lock file per tenant.
    let before_noop = snapshot(&quiet);
    assert_ne!(before, before_noop);
    let again = env.json(&["migrate", "--migrations", &m(&dir), "up"]);
    assert_eq!(again["summary"]["up_to_date"], 2);
    env.ok(&["migrate", "--migrations", &m(&dir), "status"]);
    assert_eq!(before_noop, snapshot(&quiet));
    let stray: Vec<_> = std::fs::read_dir(&quiet)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".db"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let locks: Vec<_> = std::fs::read_dir(env.data().join("locks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        locks.iter().all(|n| !n.contains("ns_tenant")),
        "a lock file per tenant was left: {locks:?}"
    );
}

/// Tenants hold tables of their own that a baseline tenant lacks (the API creates one per
/// model): a destructive migration about such a table runs with --allow-destructive, with its
/// snapshot, and undo brings the rows back. (The destructive statements cannot be listed on a
/// baseline tenant before the run; each tenant is analysed against its own schema.)
#[test]
fn destructive_migrations_on_tables_only_tenants_have_run_and_are_undone() {
    let env = env_with(&["acme"]);
    env.open(&env.tenant_file("acme"))
        .execute_batch(
            "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO widgets (name) VALUES ('a'), ('b'), ('c');",
        )
        .unwrap();
    let dir = mig_dir(
        &env,
        &[(
            "V2__prune_widgets.sql",
            "DELETE FROM widgets WHERE name <> 'a';\n",
        )],
    );
    let err = env.fails(&["migrate", "--migrations", &m(&dir), "up"], 18);
    assert!(err.contains("delete_rows"), "{err}");
    let out = env.run(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--allow-destructive",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not be listed in advance"),
        "{stderr}"
    );
    let names = |env: &Env| -> Vec<String> {
        let c = env.open(&env.tenant_file("acme"));
        let mut st = c.prepare("SELECT name FROM widgets ORDER BY id").unwrap();
        let rows = st.query_map([], |r| r.get(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    assert_eq!(names(&env), ["a"]);
    env.ok(&["migrate", "undo", "--yes"]);
    assert_eq!(names(&env), ["a", "b", "c"]);
}

/// The exit code is decided by the result, never by rendering: a reader that closed the pipe
/// (`monkctl ... | head -c 100`) does not turn a partial failure into success.
#[test]
fn a_closed_pipe_keeps_the_exit_code_of_the_result() {
    let env = env_with(&["acme", "beta"]);
    std::fs::write(
        env.tenant_file("beta"),
        b"this is not a database, not at all......",
    )
    .unwrap();
    let run_into_closed_pipe = |args: &[&str]| -> (Option<i32>, String) {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // every write to stdout now fails with EPIPE
        let out = env
            .std_cmd()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for format in ["json", "table"] {
        let (code, err) = run_into_closed_pipe(&["--format", format, "migrate", "status"]);
        assert_eq!(code, Some(8), "{format}: {err}");
    }
    let dir = mig_dir(&env, &[("V2__add_nick.sql", ADD_NICK)]);
    let (code, err) = run_into_closed_pipe(&[
        "--format",
        "json",
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
    ]);
    assert_eq!(code, Some(8), "{err}");
    assert!(
        err.contains("retry with:") && err.contains("--tenant beta"),
        "{err}"
    );
    // A command that succeeds still exits 0 into a closed pipe.
    let (code, err) = run_into_closed_pipe(&["--format", "json", "tenant", "list"]);
    assert_eq!(code, Some(0), "{err}");
}

/// `tenant vacuum` (ANALYZE) and the API's `PRAGMA optimize` write statistics, not content: a
/// tenant analysed after a destructive run is still undone.
#[test]
fn undo_restores_a_tenant_analysed_after_the_run() {
    let env = env_with(&["acme"]);
    let dir = mig_dir(&env, &[("V2__drop_filters.sql", "DROP TABLE filters;\n")]);
    env.ok(&[
        "migrate",
        "--migrations",
        &m(&dir),
        "up",
        "--allow-destructive",
        "--yes",
    ]);
    assert!(!has_object(&env, "acme", "filters"));
    env.ok(&["tenant", "vacuum", "acme"]);
    env.open(&env.tenant_file("acme"))
        .execute_batch("ANALYZE; PRAGMA optimize;")
        .unwrap();
    let undo = env.json(&["migrate", "undo", "--yes"]);
    assert_eq!(result_of(&undo, "acme")["ok"], true, "{undo}");
    assert!(has_object(&env, "acme", "filters"));
}

/// Two destructive runs whose ids share a second (here: the first run's directory carries a later
/// stamp, as after a clock set back, which no sleep can make flaky): the second run still sorts
/// after the first, and `undo` takes it first.
#[test]
fn undo_takes_the_newest_run_first_even_within_one_second() {
    let env = env_with(&["acme"]);
    env.open(&env.tenant_file("acme"))
        .execute_batch(
            "INSERT INTO users (id, name, auth, access) VALUES ('u1', 'old1', 'old1', 'read'), ('u2', 'old2', 'old2', 'read')",
        )
        .unwrap();
    let dir = mig_dir(
        &env,
        &[(
            "V2__drop_one.sql",
            "DELETE FROM users WHERE name = 'old1';\n",
        )],
    );
    let up = |env: &Env| -> PathBuf {
        let v = env.json(&[
            "migrate",
            "--migrations",
            &m(&dir),
            "up",
            "--allow-destructive",
            "--yes",
        ]);
        PathBuf::from(v["snapshots"].as_str().unwrap())
    };
    let first = up(&env);
    let moved = env.data().join("snapshots/29991231T235959Z-0000-ffffffff");
    std::fs::rename(&first, &moved).unwrap();
    std::fs::write(
        dir.join("V3__drop_two.sql"),
        "DELETE FROM users WHERE name = 'old2';\n",
    )
    .unwrap();
    let second = up(&env);
    let second_id = second.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        second_id.starts_with("29991231T235959Z-0001-"),
        "{second_id}"
    );
    let names = |env: &Env| -> Vec<String> {
        env.open(&env.tenant_file("acme"))
            .prepare("SELECT name FROM users WHERE name LIKE 'old%' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(names(&env).is_empty());
    let list = env.json(&["migrate", "snapshots", "list"]);
    assert_eq!(list[0]["run_id"], second_id.as_str());
    let undo = env.json(&["migrate", "undo", "--yes"]);
    assert_eq!(undo["run_id"], second_id.as_str(), "{undo}");
    assert_eq!(names(&env), ["old2"]);
    let undo = env.json(&["migrate", "undo", "--yes"]);
    assert_eq!(undo["run_id"], "29991231T235959Z-0000-ffffffff", "{undo}");
    assert_eq!(names(&env), ["old1", "old2"]);
}

/// `migrate undo` restores the run it asked about: a run that became the newest while the user
/// confirmed is not undone in its place.
#[test]
fn undo_acts_on_the_run_that_was_confirmed() {
    use std::io::BufRead;
    let env = env_with(&["acme"]);
    let dir = mig_dir(&env, &[("V2__drop_filters.sql", "DROP TABLE filters;\n")]);
    let up = |env: &Env| {
        env.ok(&[
            "migrate",
            "--migrations",
            &m(&dir),
            "up",
            "--allow-destructive",
            "--yes",
        ])
    };
    up(&env);
    let resume = env.root().join("resume");
    let mut undo = env
        .std_cmd()
        .args(["migrate", "undo", "--yes"])
        .env("MONKCTL_PAUSE_AT", "migrate.undo.confirmed")
        .env("MONKCTL_RESUME_WHEN", &resume)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(undo.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("paused at migrate.undo.confirmed"), "{line}");
    // While the question stood answered, another destructive run finished.
    std::fs::write(dir.join("V3__drop_tracked.sql"), "DROP TABLE tracked;\n").unwrap();
    up(&env);
    std::fs::write(&resume, b"").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(undo.wait().unwrap().code(), Some(4), "{rest}");
    assert!(
        rest.contains("was confirmed") && rest.contains("nothing was restored"),
        "{rest}"
    );
    // Nothing was restored: both runs' changes stand, and both can still be undone in order.
    assert!(!has_object(&env, "acme", "filters") && !has_object(&env, "acme", "tracked"));
    env.ok(&["migrate", "undo", "--yes"]);
    assert!(has_object(&env, "acme", "tracked") && !has_object(&env, "acme", "filters"));
    env.ok(&["migrate", "undo", "--yes"]);
    assert!(has_object(&env, "acme", "filters"));
}
