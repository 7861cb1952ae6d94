//! Generated fixtures and migrations through the operator-SQL guard: a few thousand scripts built
//! from the statements that matter (ATTACH, VACUUM INTO, raw pages, PRAGMAs, transaction control,
//! triggers, views, renames, endless queries) and from random text, run the way monkctl runs
//! them: the destructive analysis on a scratch copy, and a guarded transaction on a real tenant
//! file. No panic, no hang (each statement has a short limit), and no file appears anywhere but
//! the tenant's own.
//!
//! One test in this file: it changes the process's working directory to a temporary one, so
//! that a relative `ATTACH 'x.db'` or `VACUUM INTO 'x.db'` that got through would show there.

use std::path::Path;
use std::time::Duration;

use monkctl::core::guard::{self, Kind};
use monkctl::core::migrate::{destructive, Mig};
use monkctl::core::system;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const LIMIT: Duration = Duration::from_millis(5);

/// An absolute path outside the temporary directory that hostile statements aim at.
fn outside() -> String {
    format!("/tmp/monkctl-fuzz-outside-{}.db", std::process::id())
}

fn statement() -> impl Strategy<Value = String> {
    let ident = prop_oneof![
        Just("t"),
        Just("u"),
        Just("users"),
        Just("filters"),
        Just("sqlite_master"),
        Just("sqlite_sequence"),
        Just("sqlite_dbpage"),
        Just("dbstat"),
        Just("main.t"),
        Just("temp.t"),
        Just("o.t"),
    ];
    let out = outside();
    let path = prop_oneof![
        Just("x.db".to_string()),
        Just("../x.db".to_string()),
        Just(out),
        Just(String::new()),
        Just(":memory:".to_string()),
        Just("file:y.db?mode=rwc".to_string()),
    ];
    let pragma = prop_oneof![
        Just("writable_schema"),
        Just("journal_mode"),
        Just("page_size"),
        Just("user_version"),
        Just("table_info(users)"),
        Just("foreign_key_list(fields)"),
        Just("integrity_check"),
        Just("wal_checkpoint"),
        Just("temp_store_directory"),
        Just("cache_size"),
    ];
    let value = prop_oneof![
        Just("ON"),
        Just("1"),
        Just("DELETE"),
        Just("'x.db'"),
        Just("4096")
    ];
    let module = prop_oneof![
        Just("fts5(a)"),
        Just("dbstat"),
        Just("sqlite_dbpage"),
        Just("rtree(i, a, b)")
    ];
    let garbage = "[ -~\n]{0,40}";
    (
        0usize..34,
        ident.clone(),
        ident,
        path,
        pragma,
        value,
        module,
        garbage,
    )
        .prop_map(|(k, a, b, p, pr, v, m, g)| {
            match k {
                0 => format!("CREATE TABLE {a} (a, b)"),
                1 => format!("CREATE TABLE IF NOT EXISTS {a} (a INTEGER PRIMARY KEY AUTOINCREMENT, b)"),
                2 => format!("INSERT INTO {a} VALUES (1, 2)"),
                3 => format!("UPDATE {a} SET a = 1"),
                4 => format!("DELETE FROM {a}"),
                5 => format!("DROP TABLE {a}"),
                6 => format!("ATTACH '{p}' AS o"),
                7 => "DETACH o".into(),
                8 => "VACUUM".into(),
                9 => format!("VACUUM INTO '{p}'"),
                10 => format!("PRAGMA {pr}"),
                11 => format!("PRAGMA {pr} = {v}"),
                12 => format!("SELECT * FROM {a}"),
                13 => format!("SELECT load_extension('{p}')"),
                14 => "BEGIN".into(),
                15 => "COMMIT".into(),
                16 => "ROLLBACK".into(),
                17 => "SAVEPOINT s".into(),
                18 => "RELEASE s".into(),
                19 => format!("CREATE VIEW v AS SELECT * FROM {a}"),
                20 => format!(
                    "CREATE TRIGGER tr AFTER INSERT ON {a} BEGIN INSERT INTO {b} VALUES (1, 2); END"
                ),
                21 => format!("CREATE VIRTUAL TABLE vt USING {m}"),
                22 => "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c".into(),
                23 => format!("ALTER TABLE {a} RENAME TO {b}"),
                24 => format!("ALTER TABLE {a} ADD COLUMN c"),
                25 => format!("ALTER TABLE {a} RENAME COLUMN a TO z"),
                26 => "REINDEX".into(),
                27 => "ANALYZE".into(),
                28 => format!("UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2 -- {a}"),
                29 => format!("INSERT INTO {a} SELECT * FROM {b}"),
                30 => format!("SELECT * FROM pragma_{pr}"),
                31 => format!("CREATE TEMP TABLE {a} AS SELECT * FROM {b}"),
                _ => g,
            }
        })
}

fn script() -> impl Strategy<Value = String> {
    prop::collection::vec(statement(), 1..8).prop_map(|v| v.join(";\n") + ";\n")
}

#[test]
fn generated_scripts_pass_the_guard_without_panic_hang_or_stray_file() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let tenant = data.join("tenant.db");
    system::build(
        &tenant,
        "root",
        &monkctl::core::migrate::MigrationSet::builtin(),
    )
    .unwrap();
    // A small schema with the names the generator uses: building the whole baseline for
    // every case would spend the time on it rather than on the statements.
    let schema: Vec<String> = [
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, a, b)",
        "CREATE TABLE filters (id TEXT PRIMARY KEY, a, b)",
        "CREATE INDEX users_name ON users (name)",
    ]
    .map(String::from)
    .to_vec();
    let conn = rusqlite::Connection::open(&tenant).unwrap();
    system::register_functions(&conn).unwrap();
    let conn = std::cell::RefCell::new(conn);
    let started = std::time::Instant::now();

    let mut runner = TestRunner::new(Config {
        cases: 1500,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(script(), script()), |(a, b)| {
            // A migration set of two files, analysed as `plan` and `up` do.
            let migs = [
                Mig {
                    version: 2,
                    name: "a".into(),
                    file: "V2__a.sql".into(),
                    sql: a.clone(),
                    checksum: 0,
                    pg_sql: a.clone(),
                    pg_checksum: 0,
                },
                Mig {
                    version: 3,
                    name: "b".into(),
                    file: "V3__b.sql".into(),
                    sql: b.clone(),
                    checksum: 0,
                    pg_sql: b.clone(),
                    pg_checksum: 0,
                },
            ];
            let refs: Vec<&Mig> = migs.iter().collect();
            for keep_going in [true, false] {
                let mut scratch = destructive::scratch_from_schema(&schema).unwrap();
                let _ = destructive::analyse(&mut scratch, &refs, LIMIT, keep_going);
            }
            // The same text as a fixture, on the real tenant file, rolled back.
            let mut conn = conn.borrow_mut();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            let g = guard::install(&mut conn, Kind::Fixture, LIMIT).unwrap();
            for st in guard::split(&a).iter().chain(guard::split(&b).iter()) {
                let _ = g.run(&conn, st);
            }
            g.remove(&mut conn).unwrap();
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").unwrap();
            }
            drop(conn);
            let stray = strays(dir.path(), &data);
            prop_assert!(
                stray.is_empty(),
                "files appeared: {stray:?} after {a:?} / {b:?}"
            );
            prop_assert!(!Path::new(&outside()).exists(), "{} appeared", outside());
            Ok(())
        })
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(120), "took {took:?}");
}

/// Entries of `root` other than the data directory, and of the data directory other than the
/// tenant's own files.
fn strays(root: &Path, data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap().flatten() {
        if e.path() != data {
            out.push(e.path().display().to_string());
        }
    }
    for e in std::fs::read_dir(data).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !["tenant.db", "tenant.db-wal", "tenant.db-shm"].contains(&n.as_str()) {
            out.push(e.path().display().to_string());
        }
    }
    out
}
