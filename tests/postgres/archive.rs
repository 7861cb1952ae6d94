//! Tenants between PostgreSQL and SQLite deployments: `extract` of a tenant schema to the
//! portable SQLite archive, `restore` of any archive into PostgreSQL (whole or nothing, `--force`
//! saving what it replaces), a PostgreSQL archive restored into a SQLite deployment, round trips
//! that give back every value, and bad input named by table, row and column.

use std::path::Path;
use std::process::Output;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::common::Env;
use crate::PgDb;

cases![
    a_postgres_tenant_is_archived_in_the_sqlite_form,
    postgres_archive_postgres_gives_back_every_value,
    generated_postgres_values_come_back_exactly,
    a_postgres_archive_restores_into_a_sqlite_deployment_and_back,
    sqlite_archive_postgres_archive_sqlite_gives_back_the_content,
    a_tenant_monkctl_made_on_sqlite_comes_back_from_postgres_unchanged,
    restore_force_saves_the_tenant_then_replaces_it,
    restore_refuses_a_taken_name_and_changes_nothing,
    a_restore_killed_or_cut_off_before_its_commit_leaves_nothing,
    bad_values_are_named_by_table_row_and_column_and_leave_nothing,
    tenant_copy_moves_a_tenant_between_deployments,
];

/// Generated cases per property: 6, or `PROPTEST_CASES` for a longer search.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

fn run(db: &PgDb, args: &[&str]) -> Output {
    db.monkctl().args(args).output().expect("run monkctl")
}

/// Every row of every table of `schema`, each as its text form, sorted: two schemas with the
/// same content give the same list whatever order their rows sit in.
fn content(db: &PgDb, schema: &str) -> Vec<(String, Vec<String>)> {
    let mut c = db.client();
    let tables: Vec<String> = c
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut rows: Vec<String> = c
                .query(
                    &format!("SELECT (x.*)::text FROM \"{schema}\".\"{t}\" x"),
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            rows.sort();
            (t, rows)
        })
        .collect()
}

/// The rows that differ between two `content` lists, table by table (empty when equal).
fn differences(
    a: &[(String, Vec<String>)],
    b: &[(String, Vec<String>)],
) -> Vec<(String, Vec<String>, Vec<String>)> {
    let tables: std::collections::BTreeSet<&String> =
        a.iter().chain(b.iter()).map(|(t, _)| t).collect();
    let rows = |c: &[(String, Vec<String>)], t: &String| {
        c.iter()
            .find(|(n, _)| n == t)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    tables
        .into_iter()
        .filter_map(|t| {
            let (ra, rb) = (rows(a, t), rows(b, t));
            let only_a: Vec<String> = ra.iter().filter(|r| !rb.contains(r)).cloned().collect();
            let only_b: Vec<String> = rb.iter().filter(|r| !ra.contains(r)).cloned().collect();
            (!only_a.is_empty() || !only_b.is_empty() || ra.len() != rb.len())
                .then(|| (t.clone(), only_a, only_b))
        })
        .collect()
}

fn archive_conn(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Rows of a SQLite table, each value as SQLite's `quote()` shows it (type and bytes), in
/// `order`.
fn sqlite_rows(conn: &rusqlite::Connection, table: &str, order: &str) -> Vec<Vec<String>> {
    let cols: Vec<String> = conn
        .prepare(&format!(
            "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let sel: Vec<String> = cols.iter().map(|c| format!("quote(\"{c}\")")).collect();
    let mut st = conn
        .prepare(&format!(
            "SELECT {} FROM \"{table}\" ORDER BY {order}",
            sel.join(", ")
        ))
        .unwrap();
    let n = cols.len();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn a_postgres_tenant_is_archived_in_the_sqlite_form(db: &PgDb) {
    db.restore_reference_dump();
    let archive = db.env().root().join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    // The archive verifies, and says where it comes from.
    let v: Value = serde_json::from_slice(
        &ok(run(
            db,
            &[
                "--format",
                "json",
                "archive",
                "verify",
                archive.to_str().unwrap(),
            ],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["format_version"], 2, "{v}");
    let v: Value = serde_json::from_slice(
        &ok(run(
            db,
            &[
                "--format",
                "json",
                "archive",
                "inspect",
                archive.to_str().unwrap(),
            ],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(v["metadata"]["source_backend"], "postgresql", "{v}");
    assert_eq!(
        v["metadata"]["postgres_columns"]["widgets"]["price"], "numeric",
        "{v}"
    );
    assert_eq!(v["metadata"]["tenant"]["schema"], "ns_tenant_acme");
    // Values as the API's SQLite backend stores them.
    let c = archive_conn(&archive);
    let alpha: (String, f64, i64, String, String, String, String, String, String) = c
        .query_row(
            "SELECT typeof(price) || ':' || typeof(active) || ':' || typeof(qty), price, active, \
             released_at, released_on, meta, tags, sizes, access_read FROM widgets WHERE name = 'alpha'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(alpha.0, "real:integer:integer");
    assert_eq!(alpha.1, 9.99);
    assert_eq!(alpha.2, 1);
    assert_eq!(alpha.3, "2025-01-02T03:04:05.678Z");
    assert_eq!(alpha.4, "2025-01-02");
    assert_eq!(alpha.5, r#"{"dims":[1,2,3],"color":"red"}"#);
    assert_eq!(alpha.6, r#"["a","b"]"#);
    assert_eq!(alpha.7, "[1,2]");
    assert_eq!(alpha.8, "[]");
    // The table as the API's SQLite backend makes it from the model's fields.
    let ddl: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'widgets'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        ddl.starts_with("CREATE TABLE \"widgets\" (\n\n    \"id\" TEXT PRIMARY KEY,"),
        "{ddl}"
    );
    assert!(
        ddl.contains(
            ", \"name\" TEXT NOT NULL, \"qty\" INTEGER, \"price\" REAL, \"active\" INTEGER"
        ),
        "{ddl}"
    );
    // The system tables have the SQLite column order (`tracked` starts with change_id).
    let first: String = c
        .query_row(
            "SELECT name FROM pragma_table_info('tracked') WHERE cid = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(first, "change_id");
    let users: i64 = c
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2, "root and the owner admin");
}

/// Values PostgreSQL holds that the SQLite form holds only with help: numerics beyond a
/// double, trailing zeros, microseconds, arrays with NULLs and quotes, empty arrays, unicode,
/// huge and tiny values.
fn postgres_archive_postgres_gives_back_every_value(db: &PgDb) {
    db.restore_reference_dump();
    db.sql(
        "INSERT INTO ns_tenant_acme.widgets (name, qty, price, active, released_at, released_on, meta, tags, sizes, ref_id) VALUES \
         ('delta', 2147483647, 12345678901234567890.1234567890, true, '2024-02-29 23:59:59.123456', '0001-01-01', \
          '{\"k\": [1.10, \"x\\ty\", null], \"ü\": {}}', ARRAY['', NULL, 'a\"b', 'c\\\\d', 'NULL', 'tab\there'], ARRAY[NULL, -1]::int[], gen_random_uuid()), \
         ('epsilon', -2147483648, 9.90, false, '1970-01-01 00:00:00', '9999-12-31', '[]', '{}', '{}', NULL), \
         ('zeta', 0, -0.000000000000000000001, NULL, '2026-12-03 01:02:03.4', NULL, '\"just a string\"', ARRAY['日本語'], ARRAY[0], NULL)",
    );
    let before = content(db, "ns_tenant_acme");
    let archive = db.env().root().join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    let v: Value = serde_json::from_slice(
        &ok(run(
            db,
            &[
                "--format",
                "json",
                "restore",
                archive.to_str().unwrap(),
                "--as",
                "acme2",
            ],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(v["mode"], "created", "{v}");
    assert!(v["path"].is_null(), "{v}");
    assert_eq!(v["schema"], "ns_tenant_acme2", "{v}");
    let after = content(db, "ns_tenant_acme2");
    assert_eq!(
        differences(&before, &after),
        vec![],
        "every table, value for value"
    );
    // The tracked sequence continues where it stood.
    let seq = |s: &str| -> i64 {
        db.scalar(&format!("SELECT last_value FROM {s}.tracked_change_id_seq"))
    };
    assert_eq!(seq("ns_tenant_acme"), seq("ns_tenant_acme2"));
    // The API can use it: the owner is there, the row says PostgreSQL.
    let (db_type, owner_ok): (String, bool) = {
        let mut c = db.client();
        let r = c
            .query_one(
                "SELECT db_type::text, EXISTS (SELECT 1 FROM ns_tenant_acme2.users u WHERE u.id = t.owner_id) \
                 FROM public.tenants t WHERE name = 'acme2'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(db_type, "postgresql");
    assert!(owner_ok);
    // doctor finds nothing wrong.
    ok(run(db, &["doctor"]));
}

fn a_postgres_archive_restores_into_a_sqlite_deployment_and_back(db: &PgDb) {
    db.restore_reference_dump();
    let archive = db.env().root().join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    // A SQLite deployment of its own.
    let lite = Env::new();
    lite.ok(&["init"]);
    let v = lite.json(&["restore", archive.to_str().unwrap()]);
    assert_eq!(v["mode"], "created", "{v}");
    let file = lite.tenant_file("acme");
    let c = lite.open(&file);
    // The file the SQLite API serves: no archive tables left, the widgets there.
    let leftovers: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_monk%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leftovers, 0);
    let n: i64 = c
        .query_row("SELECT count(*) FROM widgets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    let ok_check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok_check, "ok");
    drop(c);
    lite.ok(&["doctor"]);
    // And back to PostgreSQL from the SQLite deployment: the same content as the original.
    let back = lite.root().join("back.monk.db");
    lite.ok(&["extract", "acme", "-o", back.to_str().unwrap()]);
    ok(run(
        db,
        &["restore", back.to_str().unwrap(), "--as", "acme_back"],
    ));
    assert_eq!(
        content(db, "ns_tenant_acme"),
        content(db, "ns_tenant_acme_back")
    );
}

/// A generated widget as the API's SQLite backend stores it: the values in the forms the API
/// writes (timestamps `...Z`, compact JSON in `jsonb`'s key order), so that the SQLite content
/// comes back byte for byte.
#[derive(Debug, Clone)]
struct Widget {
    name: String,
    qty: Option<i64>,
    price: Option<f64>,
    active: Option<bool>,
    released_at: Option<String>,
    released_on: Option<String>,
    meta: Option<String>,
    tags: Option<Vec<Option<String>>>,
    sizes: Option<Vec<Option<i32>>>,
}

fn widget() -> impl Strategy<Value = Widget> {
    let text = "\\PC{0,12}";
    (
        text,
        proptest::option::of(any::<i32>().prop_map(i64::from)),
        proptest::option::of(prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            Just(0.1),
            Just(1e300),
            Just(-2.5e-300),
        ]),
        proptest::option::of(any::<bool>()),
        proptest::option::of(
            (0i64..4_102_444_800, 0u32..1_000_000, any::<bool>()).prop_map(|(s, us, ms)| {
                let us = if ms { us / 1000 * 1000 } else { us };
                let t = time::OffsetDateTime::from_unix_timestamp(s).unwrap();
                let day = format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day());
                let clock = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
                // The two spellings SQLite tenants hold: SQLite's CURRENT_TIMESTAMP (whole
                // seconds) and the API's ISO text with milliseconds (or microseconds).
                if us == 0 {
                    format!("{day} {clock}")
                } else if us % 1000 == 0 {
                    format!("{day}T{clock}.{:03}Z", us / 1000)
                } else {
                    format!("{day}T{clock}.{us:06}Z")
                }
            }),
        ),
        proptest::option::of(
            (1i32..9999, 1u8..13, 1u8..29).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        ),
        proptest::option::of(prop_oneof![
            Just("{}".to_string()),
            Just("[]".to_string()),
            Just("null".to_string()),
            (text, any::<i32>()).prop_map(|(s, n)| {
                // jsonb orders keys by length, then bytes: "n" before "s".
                format!("{{\"n\":{n},\"s\":{}}}", serde_json::to_string(&s).unwrap())
            }),
        ]),
        proptest::option::of(proptest::collection::vec(proptest::option::of(text), 0..4)),
        proptest::option::of(proptest::collection::vec(
            proptest::option::of(any::<i32>()),
            0..4,
        )),
    )
        .prop_map(
            |(name, qty, price, active, released_at, released_on, meta, tags, sizes)| Widget {
                name,
                qty,
                price,
                active,
                released_at,
                released_on,
                meta,
                tags,
                sizes,
            },
        )
}

fn sqlite_archive_postgres_archive_sqlite_gives_back_the_content(db: &PgDb) {
    db.restore_reference_dump();
    let root = db.env().root().to_path_buf();
    let archive = root.join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let round = std::cell::Cell::new(0);
    runner
        .run(&proptest::collection::vec(widget(), 0..6), |widgets| {
            round.set(round.get() + 1);
            let r = round.get();
            // A SQLite tenant with the generated widgets.
            let lite = Env::new();
            lite.ok(&["init"]);
            lite.ok(&["restore", archive.to_str().unwrap()]);
            {
                let c = lite.open(&lite.tenant_file("acme"));
                for (i, w) in widgets.iter().enumerate() {
                    let json_list = |v: &Option<Vec<Option<String>>>| {
                        v.as_ref().map(|v| serde_json::to_string(v).unwrap())
                    };
                    c.execute(
                        "INSERT INTO widgets (id, created_at, updated_at, name, qty, price, active, released_at, released_on, meta, tags, sizes) \
                         VALUES (?1, '2026-12-03T00:00:00.123Z', '2026-12-03 00:00:00', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        rusqlite::params![
                            format!("00000000-0000-4000-8000-{i:012}"),
                            w.name,
                            w.qty,
                            w.price,
                            w.active,
                            w.released_at,
                            w.released_on,
                            w.meta,
                            json_list(&w.tags),
                            w.sizes.as_ref().map(|v| serde_json::to_string(v).unwrap()),
                        ],
                    )
                    .unwrap();
                }
            }
            let before = {
                let c = lite.open(&lite.tenant_file("acme"));
                sqlite_rows(&c, "widgets", "id")
            };
            let a1 = lite.root().join("a1.monk.db");
            lite.ok(&["extract", "acme", "-o", a1.to_str().unwrap()]);
            let pg_name = format!("prop{r}");
            ok(run(db, &["restore", a1.to_str().unwrap(), "--as", &pg_name]));
            let a2 = lite.root().join("a2.monk.db");
            ok(run(db, &["extract", &pg_name, "-o", a2.to_str().unwrap()]));
            lite.ok(&["restore", a2.to_str().unwrap(), "--as", "acme_again"]);
            let after = {
                let c = lite.open(&lite.tenant_file("acme_again"));
                sqlite_rows(&c, "widgets", "id")
            };
            prop_assert_eq!(before, after);
            Ok(())
        })
        .unwrap();
}

fn restore_force_saves_the_tenant_then_replaces_it(db: &PgDb) {
    db.restore_reference_dump();
    let archive = db.env().root().join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    let original = content(db, "ns_tenant_acme");
    db.sql("DELETE FROM ns_tenant_acme.widgets WHERE name <> 'alpha'");
    let changed = content(db, "ns_tenant_acme");
    // Without --force: refused, nothing changed.
    let out = run(db, &["restore", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(content(db, "ns_tenant_acme"), changed);
    let v: Value = serde_json::from_slice(
        &ok(run(
            db,
            &[
                "--format",
                "json",
                "--yes",
                "restore",
                archive.to_str().unwrap(),
                "--force",
            ],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(v["mode"], "replaced", "{v}");
    assert_eq!(content(db, "ns_tenant_acme"), original);
    // What was replaced is in the trash, as an archive that verifies and restores.
    let saved = v["previous_saved_to"].as_str().expect("saved").to_string();
    assert!(
        saved.starts_with(db.data_dir().join("trash").to_str().unwrap()),
        "{saved}"
    );
    ok(run(db, &["archive", "verify", &saved]));
    ok(run(db, &["restore", &saved, "--as", "acme_before"]));
    assert_eq!(content(db, "ns_tenant_acme_before"), changed);
    // The registry row kept its id.
    let ids: i64 = db.scalar("SELECT count(DISTINCT id) FROM public.tenants WHERE name = 'acme'");
    assert_eq!(ids, 1);
}

fn restore_refuses_a_taken_name_and_changes_nothing(db: &PgDb) {
    db.restore_reference_dump();
    let archive = db.env().root().join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    // The archive's id belongs to acme: another name without --as a new id is refused.
    let schemas_before: i64 =
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ns_tenant_%'");
    let out = run(
        db,
        &["restore", archive.to_str().unwrap(), "--as", "globex"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{}",
        text(&out)
    );
    // A schema left by someone else under the name is not taken over.
    db.sql("CREATE SCHEMA ns_tenant_orphan");
    let out = run(
        db,
        &["restore", archive.to_str().unwrap(), "--as", "orphan"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let n: i64 = db.scalar("SELECT count(*) FROM public.tenants WHERE name = 'orphan'");
    assert_eq!(n, 0);
    let schemas_after: i64 =
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ns_tenant_%'");
    assert_eq!(
        schemas_after,
        schemas_before + 1,
        "only the test's own schema"
    );
    // An archive whose content was changed after it was made: refused, nothing restored.
    let tampered = db.env().root().join("tampered.monk.db");
    std::fs::copy(&archive, &tampered).unwrap();
    rusqlite::Connection::open(&tampered)
        .unwrap()
        .execute_batch("UPDATE widgets SET name = 'changed' WHERE name = 'beta'")
        .unwrap();
    let out = run(
        db,
        &["restore", tampered.to_str().unwrap(), "--as", "tampered"],
    );
    assert_eq!(out.status.code(), Some(15), "{}", text(&out));
    let n: i64 =
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ns_tenant_tampered'");
    assert_eq!(n, 0);
    // A file that is no archive: its own exit code.
    let junk = db.env().root().join("junk.monk.db");
    std::fs::write(&junk, b"not an archive at all, not even close to one......").unwrap();
    let out = run(db, &["restore", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(12), "{}", text(&out));
}

fn bad_values_are_named_by_table_row_and_column_and_leave_nothing(db: &PgDb) {
    db.restore_reference_dump();
    let archive = db.env().root().join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    let lite = Env::new();
    lite.ok(&["init"]);
    lite.ok(&["restore", archive.to_str().unwrap()]);
    let file = lite.tenant_file("acme");
    let cases: &[(&str, &str)] = &[
        (
            "UPDATE widgets SET price = 'abc' WHERE name = 'beta'",
            "column price: 'abc' is not a number",
        ),
        (
            "UPDATE widgets SET meta = '{broken' WHERE name = 'beta'",
            "column meta: '{broken' is not valid JSON",
        ),
        (
            "UPDATE widgets SET active = 7 WHERE name = 'beta'",
            "column active: 7 is not a boolean",
        ),
        (
            "UPDATE widgets SET qty = 99999999999 WHERE name = 'beta'",
            "column qty",
        ),
        (
            "UPDATE widgets SET ref_id = 'not-a-uuid' WHERE name = 'beta'",
            "column ref_id",
        ),
    ];
    for (i, (change, expected)) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        lite.ok(&["restore", archive.to_str().unwrap(), "--as", &name]);
        let c = lite.open(&lite.tenant_file(&name));
        c.execute_batch(change).unwrap();
        let beta: String = c
            .query_row("SELECT id FROM widgets WHERE name = 'beta'", [], |r| {
                r.get(0)
            })
            .unwrap();
        drop(c);
        let bad = lite.root().join(format!("{name}.monk.db"));
        lite.ok(&["extract", &name, "-o", bad.to_str().unwrap()]);
        let out = run(db, &["restore", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(23), "{change}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("table widgets, row {beta}")),
            "{change}: {err}"
        );
        assert!(err.contains(expected), "{change}: {err}");
        // Nothing left on the target.
        let rows: i64 = db.scalar(&format!(
            "SELECT count(*) FROM public.tenants WHERE name = '{name}'"
        ));
        let schemas: i64 = db.scalar(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'ns_tenant_{name}'"
        ));
        assert_eq!((rows, schemas), (0, 0), "{change}");
    }
    let _ = file;
    // A table that is neither the API's, a model's nor a migration's has nowhere to go.
    lite.ok(&["restore", archive.to_str().unwrap(), "--as", "extra"]);
    let c = lite.open(&lite.tenant_file("extra"));
    c.execute_batch(
        "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT); INSERT INTO notes VALUES ('n1', 'x')",
    )
    .unwrap();
    drop(c);
    let extra = lite.root().join("extra.monk.db");
    lite.ok(&["extract", "extra", "-o", extra.to_str().unwrap()]);
    let out = run(db, &["restore", extra.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(23), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table notes:"), "{err}");
    let schemas: i64 =
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ns_tenant_extra'");
    assert_eq!(schemas, 0);
    // A field type the API does not have: named with its column.
    lite.ok(&["restore", archive.to_str().unwrap(), "--as", "oddtype"]);
    let c = lite.open(&lite.tenant_file("oddtype"));
    c.execute_batch(
        "PRAGMA ignore_check_constraints = ON; \
         UPDATE fields SET type = 'money' WHERE model_name = 'widgets' AND field_name = 'price'",
    )
    .unwrap();
    drop(c);
    let odd = lite.root().join("odd.monk.db");
    lite.ok(&["extract", "oddtype", "-o", odd.to_str().unwrap()]);
    let out = run(db, &["restore", odd.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(23), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column price: field type 'money'"), "{err}");
}

fn tenant_copy_moves_a_tenant_between_deployments(db: &PgDb) {
    db.restore_reference_dump();
    let lite = Env::new();
    lite.ok(&["init"]);
    // PostgreSQL to SQLite, under another name; the source stays as it was.
    let before = content(db, "ns_tenant_acme");
    let out = run(
        db,
        &[
            "tenant",
            "copy",
            "acme",
            "--to-data-dir",
            lite.data().to_str().unwrap(),
            "--to",
            "sqlite:monk",
            "--as",
            "acme_lite",
        ],
    );
    ok(out);
    assert_eq!(content(db, "ns_tenant_acme"), before);
    let c = lite.open(&lite.tenant_file("acme_lite"));
    let n: i64 = c
        .query_row("SELECT count(*) FROM widgets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    drop(c);
    // And from SQLite back to PostgreSQL.
    let out = lite
        .cmd()
        .args([
            "tenant",
            "copy",
            "acme_lite",
            "--to",
            db.url(),
            "--as",
            "acme_home",
        ])
        .output()
        .unwrap();
    ok(out);
    assert_eq!(
        content(db, "ns_tenant_acme"),
        content(db, "ns_tenant_acme_home")
    );
    // The archives are kept where each source keeps its own files; neither side has anything
    // for doctor to report.
    let kept = |dir: &Path| std::fs::read_dir(dir.join("copies")).map_or(0, |d| d.count());
    assert_eq!(kept(&db.data_dir()), 1);
    assert_eq!(kept(&lite.data()), 1);
    ok(run(db, &["doctor"]));
    lite.ok(&["doctor"]);
    // A name the target has already: refused before anything is extracted.
    let out = run(
        db,
        &[
            "tenant",
            "copy",
            "acme",
            "--to",
            db.url(),
            "--as",
            "acme_home",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(kept(&db.data_dir()), 1);
}

/// A numeric's text: up to 40 digits before the point and 20 after, trailing zeros kept.
fn numeric_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        "[0-9]{1,40}",
        proptest::option::of("[0-9]{1,20}"),
    )
        .prop_map(|(neg, int, frac)| {
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let sign = if neg { "-" } else { "" };
            match frac {
                Some(f) => format!("{sign}{int}.{f}"),
                None => format!("{sign}{int}"),
            }
        })
}

#[derive(Debug, Clone)]
struct PgWidget {
    name: String,
    price: Option<String>,
    released_at: Option<(i64, u32)>,
    meta: Option<String>,
    tags: Option<Vec<Option<String>>>,
    sizes: Option<Vec<Option<i32>>>,
    blob: Option<Vec<u8>>,
    ratios: Option<Vec<Option<String>>>,
    big: Option<i64>,
}

fn pg_widget() -> impl Strategy<Value = PgWidget> {
    let text = "\\PC{0,10}";
    (
        text,
        proptest::option::of(numeric_text()),
        proptest::option::of((-62_000_000_000i64..200_000_000_000, 0u32..1_000_000)),
        proptest::option::of(prop_oneof![
            Just("{}".to_string()),
            Just("[1.10, 2.000, null, true]".to_string()),
            (text, numeric_text()).prop_map(|(k, n)| format!(
                "{{{}: {n}, \"list\": [{}]}}",
                serde_json::to_string(&k).unwrap(),
                serde_json::to_string(&k).unwrap()
            )),
        ]),
        proptest::option::of(proptest::collection::vec(proptest::option::of(text), 0..4)),
        proptest::option::of(proptest::collection::vec(
            proptest::option::of(any::<i32>()),
            0..4,
        )),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..48)),
        proptest::option::of(proptest::collection::vec(
            proptest::option::of(numeric_text()),
            0..3,
        )),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(name, price, released_at, meta, tags, sizes, blob, ratios, big)| PgWidget {
                name,
                price,
                released_at,
                meta,
                tags,
                sizes,
                blob,
                ratios,
                big,
            },
        )
}

/// Generated values of every kind the API stores on PostgreSQL (including a binary, a
/// numeric[] and a bigint field added to the model) go through an archive and back unchanged.
fn generated_postgres_values_come_back_exactly(db: &PgDb) {
    db.restore_reference_dump();
    db.sql(
        "ALTER TABLE ns_tenant_acme.widgets ADD COLUMN blob bytea, ADD COLUMN ratios numeric[], ADD COLUMN big bigint; \
         INSERT INTO ns_tenant_acme.fields (model_name, field_name, type) VALUES \
           ('widgets', 'blob', 'binary'), ('widgets', 'ratios', 'numeric[]'), ('widgets', 'big', 'bigint')",
    );
    let root = db.env().root().to_path_buf();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let round = std::cell::Cell::new(0);
    runner
        .run(&proptest::collection::vec(pg_widget(), 0..6), |widgets| {
            round.set(round.get() + 1);
            let r = round.get();
            {
                let mut c = db.client();
                c.batch_execute("SET TIME ZONE 'UTC'; DELETE FROM ns_tenant_acme.widgets")
                    .unwrap();
                for w in &widgets {
                    let at = w.released_at.map(|(s, us)| {
                        let t = time::OffsetDateTime::from_unix_timestamp(s).unwrap();
                        format!(
                            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{us:06}",
                            t.year(),
                            u8::from(t.month()),
                            t.day(),
                            t.hour(),
                            t.minute(),
                            t.second()
                        )
                    });
                    c.execute(
                        "INSERT INTO ns_tenant_acme.widgets (name, price, released_at, meta, tags, sizes, blob, ratios, big) \
                         VALUES ($1, $2::text::numeric, $3::text::timestamp, $4::text::jsonb, $5, $6, $7, $8::text[]::numeric[], $9)",
                        &[&w.name, &w.price, &at, &w.meta, &w.tags, &w.sizes, &w.blob, &w.ratios, &w.big],
                    )
                    .unwrap();
                }
            }
            let archive = root.join(format!("gen{r}.monk.db"));
            ok(run(db, &["extract", "acme", "-o", archive.to_str().unwrap()]));
            let name = format!("gen{r}");
            ok(run(db, &["restore", archive.to_str().unwrap(), "--as", &name]));
            let before = content(db, "ns_tenant_acme");
            let after = content(db, &format!("ns_tenant_{name}"));
            let diff = differences(&before, &after);
            prop_assert!(diff.is_empty(), "{:?}", diff);
            Ok(())
        })
        .unwrap();
}

/// A restore killed (kill -9) with everything loaded but not committed, or whose connection the
/// server drops at that moment, leaves neither a schema nor a registry row; with `--force` the
/// tenant it would have replaced is as it was. A retry then succeeds.
fn a_restore_killed_or_cut_off_before_its_commit_leaves_nothing(db: &PgDb) {
    use crate::tenant::{kill9, no_monkctl_session, spawn, wait_paused};
    db.restore_reference_dump();
    let archive = db.env().root().join("acme.monk.db");
    ok(run(
        db,
        &["extract", "acme", "-o", archive.to_str().unwrap()],
    ));
    db.sql("DELETE FROM ns_tenant_acme.widgets WHERE name = 'beta'");
    let acme = content(db, "ns_tenant_acme");
    let schemas = || -> i64 {
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ns_tenant_%'")
    };
    let rows = || -> i64 { db.scalar("SELECT count(*) FROM public.tenants") };
    let before = (schemas(), rows());
    let point = "restore.pg.loaded";
    let a = archive.to_str().unwrap();
    for args in [
        &["restore", a, "--as", "acme2"][..],
        &["--yes", "restore", a, "--force"][..],
    ] {
        // Killed.
        let mut child = spawn(db, args, &[("MONKCTL_PAUSE_AT", point)]);
        let _stderr = wait_paused(&mut child, point);
        kill9(&mut child);
        no_monkctl_session(db);
        assert_eq!((schemas(), rows()), before, "{args:?}");
        assert_eq!(differences(&content(db, "ns_tenant_acme"), &acme), vec![]);
        // Cut off by the server.
        let resume = db.env().root().join("resume");
        let _ = std::fs::remove_file(&resume);
        let mut child = spawn(
            db,
            args,
            &[
                ("MONKCTL_PAUSE_AT", point),
                ("MONKCTL_RESUME_WHEN", resume.to_str().unwrap()),
            ],
        );
        let stderr = wait_paused(&mut child, point);
        db.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'monkctl' AND datname = current_database()",
        );
        std::fs::write(&resume, "").unwrap();
        let status = child.wait().unwrap();
        let err = stderr.join().unwrap();
        assert_eq!(status.code(), Some(22), "{args:?}: {err}");
        no_monkctl_session(db);
        assert_eq!((schemas(), rows()), before, "{args:?}");
        assert_eq!(differences(&content(db, "ns_tenant_acme"), &acme), vec![]);
    }
    // A forced restore killed before its commit may leave its saved copy of the tenant in the
    // trash (one the server cut off removes it): a whole archive of the unchanged tenant.
    let trash = db.data_dir().join("trash");
    let saved: Vec<std::path::PathBuf> = std::fs::read_dir(&trash)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let s = saved[0].to_str().unwrap();
    assert!(s.ends_with(".before-restore.monk.db"), "{s}");
    ok(run(db, &["archive", "verify", s]));
    ok(run(db, &["restore", s, "--as", "acme_saved"]));
    assert_eq!(
        differences(&content(db, "ns_tenant_acme_saved"), &acme),
        vec![]
    );
    // Nothing for doctor to see, and a retry succeeds.
    ok(run(db, &["doctor"]));
    ok(run(db, &["restore", a, "--as", "acme2"]));
    ok(run(db, &["--yes", "restore", a, "--force"]));
    let n: i64 = db.scalar("SELECT count(*) FROM ns_tenant_acme.widgets");
    assert_eq!(n, 3);
}

/// A tenant as `tenant create` makes it on SQLite (its migration history included), through
/// PostgreSQL and back: the same content, checksum for checksum.
fn a_tenant_monkctl_made_on_sqlite_comes_back_from_postgres_unchanged(db: &PgDb) {
    let lite = Env::new();
    lite.ok(&["tenant", "create", "acme", "--owner", "admin"]);
    let a1 = lite.root().join("a1.monk.db");
    let first = lite.json(&["extract", "acme", "-o", a1.to_str().unwrap()]);
    ok(run(db, &["restore", a1.to_str().unwrap()]));
    // A PostgreSQL tenant the API and `migrate` take as one of theirs.
    ok(run(db, &["doctor"]));
    ok(run(db, &["migrate", "status"]));
    let a2 = db.env().root().join("a2.monk.db");
    ok(run(db, &["extract", "acme", "-o", a2.to_str().unwrap()]));
    lite.ok(&["restore", a2.to_str().unwrap(), "--as", "acme_back"]);
    let a3 = lite.root().join("a3.monk.db");
    let back = lite.json(&["extract", "acme_back", "-o", a3.to_str().unwrap()]);
    let sum = |v: &Value| {
        v["results"][0]["result"]["checksum"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (c1, c3) = (
        lite.open(&lite.tenant_file("acme")),
        lite.open(&lite.tenant_file("acme_back")),
    );
    for table in ["users", "models", "fields", "fs", "refinery_schema_history"] {
        assert_eq!(
            sqlite_rows(&c1, table, "_rowid_"),
            sqlite_rows(&c3, table, "_rowid_"),
            "{table}"
        );
    }
    assert_eq!(sum(&first), sum(&back), "{first} {back}");
}
