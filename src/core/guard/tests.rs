//! The guard as a whole: files split, run on a scratch database under the rules and the time
//! limit.

use std::time::Duration;

use super::*;

fn run(kind: Kind, setup: &str, sql: &str) -> std::result::Result<Vec<Act>, Fault> {
    let mut c = scratch_baseline().unwrap();
    c.execute_batch(setup).unwrap();
    let g = install(&mut c, kind, Duration::from_millis(300)).unwrap();
    let mut last = Ok(Vec::new());
    for st in split(sql) {
        last = g.run(&c, &st);
        if last.is_err() {
            break;
        }
    }
    last
}

fn refused(sql: &str) -> String {
    match run(Kind::Migration, "", sql) {
        Err(Fault::Refused(r)) => r,
        other => panic!("{sql}: not refused: {other:?}"),
    }
}

#[test]
fn every_escape_is_refused() {
    assert!(refused("ATTACH 'x.db' AS o").contains("ATTACH"));
    assert!(refused("DETACH main").contains("DETACH"));
    assert!(refused("SELECT * FROM sqlite_dbpage").contains("sqlite_dbpage"));
    assert!(refused("SELECT count(*) FROM sqlite_dbpage").contains("sqlite_dbpage"));
    assert!(
        refused("UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2")
            .contains("sqlite_dbpage")
    );
    assert!(refused("SELECT * FROM dbstat").contains("dbstat"));
    assert!(refused("CREATE VIRTUAL TABLE d USING dbstat").contains("dbstat"));
    assert!(refused("PRAGMA writable_schema = ON").contains("writable_schema"));
    assert!(refused("PRAGMA journal_mode = DELETE").contains("journal_mode"));
    assert!(refused("PRAGMA page_size = 1024").contains("page_size"));
    assert!(refused("VACUUM").contains("VACUUM"));
    assert!(refused("VACUUM INTO 'copy.db'").contains("VACUUM"));
    assert!(refused("VACUUM INTO lower('COPY.db')").contains("VACUUM"));
    assert!(refused("VACUUM INTO (SELECT name || '.db' FROM users LIMIT 1)").contains("VACUUM"));
    assert!(refused("SELECT load_extension('x')").contains("load_extension"));
    assert!(refused("BEGIN").contains("BEGIN"));
    assert!(refused("COMMIT").contains("COMMIT"));
    assert!(refused("SAVEPOINT a").contains("savepoint"));
    assert!(refused("DELETE FROM sqlite_sequence").contains("sqlite_sequence"));
    // Stored code is judged when it is created. (SQLite itself refuses raw-page tables in
    // triggers and views: "unsafe use of virtual table".)
    let t = refused(
        "CREATE TABLE t (a); CREATE TRIGGER tr AFTER UPDATE ON t BEGIN DELETE FROM sqlite_sequence; END;",
    );
    assert!(
        t.contains("trigger on 't'") && t.contains("sqlite_sequence"),
        "{t}"
    );
    // SQLite itself refuses this one while preparing it (writable_schema is refused above).
    assert!(run(Kind::Migration, "", "UPDATE sqlite_master SET sql = 'x'").is_err());
    // monkctl's own records of the tenant.
    let history = "CREATE TABLE refinery_schema_history (version int4 PRIMARY KEY, name TEXT, applied_on TEXT, checksum TEXT);";
    for sql in [
        "DELETE FROM refinery_schema_history",
        "INSERT INTO refinery_schema_history VALUES (9, 'x', 'now', '1')",
        "DROP TABLE refinery_schema_history",
        "ALTER TABLE refinery_schema_history ADD COLUMN x",
        "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM refinery_schema_history; END",
    ] {
        assert!(run(Kind::Migration, history, sql).is_err(), "{sql}");
    }
    assert!(run(Kind::Fixture, "", "CREATE TABLE _monkctl_fixtures (name)").is_err());
    assert!(run(
        Kind::Migration,
        history,
        "SELECT count(*) FROM refinery_schema_history"
    )
    .is_ok());
}

#[test]
fn ordinary_statements_pass_and_report_their_actions() {
    let acts = run(Kind::Migration, "", "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, x); INSERT INTO t (x) VALUES (1); PRAGMA table_info(t); DROP TABLE t;").unwrap();
    assert!(acts.contains(&Act::DropTable("t".into())), "{acts:?}");
    assert!(run(
        Kind::Fixture,
        "",
        "CREATE TABLE n (b); SAVEPOINT s; INSERT INTO n VALUES (1); ROLLBACK TO s; RELEASE s;"
    )
    .is_ok());
    assert!(run(
        Kind::Fixture,
        "",
        "CREATE VIRTUAL TABLE f USING fts5 (body);"
    )
    .is_ok());
}

#[test]
fn an_endless_statement_times_out() {
    let r = run(
        Kind::Fixture,
        "",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;",
    );
    assert!(matches!(r, Err(Fault::Timeout(_))), "{r:?}");
}

#[test]
fn a_query_only_reads_and_streams_its_rows() {
    let mut c = scratch_baseline().unwrap();
    c.execute_batch("CREATE TABLE n (x INTEGER); INSERT INTO n VALUES (1), (2), (3);")
        .unwrap();
    let g = install(&mut c, Kind::Query, Duration::from_millis(300)).unwrap();
    let st = |sql: &str| Statement {
        line: 1,
        sql: sql.into(),
    };
    let mut cols = Vec::new();
    let mut seen = Vec::new();
    g.stream_query(
        &c,
        &st("SELECT x FROM n WHERE x >= ? ORDER BY x"),
        &["2".into()],
        &mut |c| cols = c,
        &mut |r| {
            seen.push(r.get::<_, i64>(0).unwrap());
            true
        },
    )
    .unwrap();
    assert_eq!((cols, seen), (vec!["x".to_string()], vec![2, 3]));
    for sql in [
        "DELETE FROM n",
        "INSERT INTO n VALUES (4)",
        "CREATE TABLE m (y)",
        "SAVEPOINT s",
        "ATTACH 'x.db' AS o",
        "PRAGMA user_version = 3",
    ] {
        assert!(
            matches!(g.check_query(&c, &st(sql), 0), Err(Fault::Refused(_))),
            "{sql}"
        );
    }
    assert!(matches!(
        g.check_query(&c, &st("SELECT ?"), 0),
        Err(Fault::Refused(_))
    ));
    assert!(matches!(
        g.check_query(&c, &st("SELECT * FROM nowhere"), 0),
        Err(Fault::Failed(_))
    ));
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let r = g.stream_query(&c, &st(endless), &[], &mut |_| {}, &mut |_| true);
    assert!(matches!(r, Err(Fault::Timeout(_))), "{r:?}");
    // Nothing was written.
    let n: i64 = c
        .query_row("SELECT count(*) FROM n", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}
