//! `monkctl query`: one read-only statement across tenants, on real data directories.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{snapshot, Env};
use serde_json::Value;

/// Three tenants (created out of name order); `acme` alone has a table `extra` with one value of
/// each SQLite type.
fn fleet() -> Env {
    let env = Env::new();
    env.ok(&["tenant", "create", "globex", "acme", "initech"]);
    let c = env.open(&env.tenant_file("acme"));
    c.execute_batch(
        "CREATE TABLE extra (x); INSERT INTO extra VALUES (1), (2.5), ('hi, \"there\"'), (x'00ff'), (NULL);",
    )
    .unwrap();
    drop(c);
    env
}

/// Every file below `dir` with its content: "nothing changed" down to the byte.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = snapshot(dir)
        .into_iter()
        .map(|(p, _, _)| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

fn stdout_of(env: &Env, args: &[&str], code: i32) -> (String, String) {
    let out = env.run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "monkctl {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn rows_of_every_tenant_in_name_order_with_the_tenant_column() {
    let env = fleet();
    let before = contents(&env.data());
    let files_before = snapshot(&env.data());
    let v = env.json(&[
        "query",
        "SELECT name, auth FROM users",
        "--all",
        "--jobs",
        "3",
    ]);
    let rows = v.as_array().unwrap();
    let tenants: Vec<&str> = rows.iter().map(|r| r["tenant"].as_str().unwrap()).collect();
    assert_eq!(tenants, ["acme", "globex", "initech"]);
    assert_eq!(rows[0]["auth"], "root");
    // Named tenants, the comma form, duplicates: name order, once each.
    let v = env.json(&[
        "query",
        "SELECT 1 AS one",
        "initech",
        "--tenant",
        "acme,initech",
    ]);
    assert_eq!(
        v,
        serde_json::json!([{"tenant": "acme", "one": 1}, {"tenant": "initech", "one": 1}])
    );
    // Nothing written, no -wal or -shm beside the quiet tenants.
    assert_eq!(contents(&env.data()), before);
    assert_eq!(snapshot(&env.data()), files_before);
    for t in ["acme", "globex", "initech"] {
        let wal = format!("{}-wal", env.tenant_file(t).display());
        let shm = format!("{}-shm", env.tenant_file(t).display());
        assert!(!Path::new(&wal).exists() && !Path::new(&shm).exists());
    }
}

#[test]
fn json_csv_and_table_show_every_type() {
    let env = fleet();
    let v = env.json(&["query", "SELECT x FROM extra", "acme"]);
    assert_eq!(
        v,
        serde_json::json!([
            {"tenant": "acme", "x": 1},
            {"tenant": "acme", "x": 2.5},
            {"tenant": "acme", "x": "hi, \"there\""},
            {"tenant": "acme", "x": "00ff"},
            {"tenant": "acme", "x": null}
        ])
    );
    let csv = env.ok(&[
        "--format",
        "csv",
        "query",
        "SELECT x, 7 AS n FROM extra",
        "acme",
    ]);
    assert_eq!(
        csv,
        "tenant,x,n\nacme,1,7\nacme,2.5,7\nacme,\"hi, \"\"there\"\"\",7\nacme,00ff,7\nacme,,7\n"
    );
    let table = env.ok(&["query", "SELECT x FROM extra WHERE x = 1", "acme"]);
    assert!(
        table.contains("tenant") && table.contains("acme"),
        "{table}"
    );
    // No rows: an empty array, a header alone.
    assert_eq!(
        env.json(&["query", "SELECT 1 WHERE 0", "--all"]),
        serde_json::json!([])
    );
    assert_eq!(
        env.ok(&["--format", "csv", "query", "SELECT 1 AS a WHERE 0", "--all"]),
        "tenant,a\n"
    );
}

#[test]
fn a_tenant_lacking_a_table_fails_alone() {
    let env = fleet();
    let (out, err) = stdout_of(
        &env,
        &[
            "--format",
            "json",
            "query",
            "SELECT count(*) AS n FROM extra",
            "--all",
        ],
        8,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!([{"tenant": "acme", "n": 5}]));
    assert!(err.contains("error: globex: no such table: extra"), "{err}");
    // The same error in another tenant is not printed again: the tenant is named at the end.
    assert!(
        !err.contains("error: initech:")
            && err.contains("the same error as globex for 1 more tenant: initech"),
        "{err}"
    );
    // The summary: one row per tenant.
    let (out, _) = stdout_of(
        &env,
        &[
            "--format",
            "json",
            "query",
            "--summary",
            "SELECT x FROM extra",
            "--all",
        ],
        8,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["tenant"], "acme");
    assert_eq!(rows[0]["row_count"], 5);
    assert_eq!(rows[0]["exit_code"], 0);
    assert!(rows[0]["error"].is_null());
    assert_eq!(rows[1]["tenant"], "globex");
    assert_eq!(rows[1]["row_count"], 0);
    assert_eq!(rows[1]["exit_code"], 1);
    assert!(rows[1]["error"].as_str().unwrap().contains("no such table"));
    let (csv, _) = stdout_of(
        &env,
        &[
            "--format",
            "csv",
            "query",
            "--summary",
            "SELECT x FROM extra",
            "--all",
        ],
        8,
    );
    assert!(
        csv.starts_with("tenant,row_count,ms,error,exit_code\nacme,5,"),
        "{csv}"
    );
    // Every tenant failing with one code: that code.
    env.fails(&["query", "SELECT * FROM nowhere", "--all"], 1);
}

#[test]
fn statements_that_write_or_escape_are_refused_before_any_tenant_runs_them() {
    let env = fleet();
    let before = contents(&env.data());
    for (sql, says) in [
        ("DELETE FROM users", "would write"),
        ("INSERT INTO extra VALUES (9)", "would write"),
        ("UPDATE users SET name = 'x'", "would write"),
        ("CREATE TABLE t (x)", "would write"),
        ("ATTACH 'other.db' AS o", "ATTACH"),
        ("SELECT * FROM sqlite_dbpage", "sqlite_dbpage"),
        ("SELECT * FROM dbstat", "dbstat"),
        ("PRAGMA user_version = 7", "user_version"),
        ("PRAGMA journal_mode = DELETE", "journal_mode"),
        ("PRAGMA writable_schema = ON", "writable_schema"),
        ("SELECT load_extension('x')", "load_extension"),
        ("VACUUM INTO 'copy.db'", "VACUUM"),
    ] {
        let err = env.fails(&["query", sql, "--all"], 2);
        assert!(
            err.contains(says) && err.contains("no tenant ran it"),
            "{sql}: {err}"
        );
    }
    // A write into a table only one tenant has: judged where it prepares.
    env.fails(&["query", "DELETE FROM extra", "--all"], 2);
    assert_eq!(contents(&env.data()), before);
    assert!(!env.root().join("other.db").exists() && !env.root().join("copy.db").exists());
    // Read-only PRAGMAs from the allowlist run.
    let v = env.json(&[
        "query",
        "SELECT name FROM pragma_table_info('users') LIMIT 1",
        "acme",
    ]);
    assert_eq!(v[0]["name"], "id");
}

#[test]
fn an_endless_statement_is_stopped_by_the_time_limit_per_tenant() {
    let env = fleet();
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let err = env.fails(&["query", endless, "acme", "--timeout", "200ms"], 20);
    assert!(
        err.contains("error: acme:") && err.contains("200ms"),
        "{err}"
    );
    // Only where it is endless: the other tenants go on (exit 8).
    let sometimes = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                     WHERE (SELECT count(*) FROM sqlite_master WHERE name = 'extra') = 1 OR x < 3) \
                     SELECT count(*) AS n FROM c";
    let (out, err) = stdout_of(
        &env,
        &[
            "--format",
            "json",
            "query",
            sometimes,
            "--all",
            "--timeout",
            "200ms",
        ],
        8,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"tenant": "globex", "n": 3}, {"tenant": "initech", "n": 3}])
    );
    assert!(err.contains("error: acme:"), "{err}");
    env.fails(&["query", "SELECT 1", "--all", "--timeout", "soon"], 2);
}

#[test]
fn parameters_are_bound_in_order() {
    let env = fleet();
    let v = env.json(&[
        "query",
        "SELECT ?1 AS a, ? AS b",
        "acme",
        "--param",
        "x'; DROP TABLE users; --",
        "--param",
        "2",
    ]);
    assert_eq!(
        v,
        serde_json::json!([{"tenant": "acme", "a": "x'; DROP TABLE users; --", "b": "2"}])
    );
    let v = env.json(&[
        "query",
        "SELECT count(*) AS n FROM users WHERE auth = ?",
        "--all",
        "--param",
        "root",
    ]);
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["n"], 1);
    let err = env.fails(&["query", "SELECT * FROM users WHERE auth = ?", "--all"], 2);
    assert!(err.contains("--param"), "{err}");
    env.fails(&["query", "SELECT 1", "--all", "--param", "extra"], 2);
}

#[test]
fn bad_input_is_refused_before_any_tenant_is_touched() {
    let env = fleet();
    let before = contents(&env.data());
    let err = env.fails(&["query", "SELECT 1; SELECT 2", "--all"], 2);
    assert!(err.contains("2 statements"), "{err}");
    let err = env.fails(&["query", "  ", "--all"], 2);
    assert!(err.contains("empty"), "{err}");
    let err = env.fails(&["query", "--file", "none.sql", "--all"], 3);
    assert!(err.contains("none.sql"), "{err}");
    fs::write(env.root().join("comment.sql"), "-- nothing here\n").unwrap();
    env.fails(&["query", "--file", "comment.sql", "--all"], 2);
    fs::write(env.root().join("nul.sql"), b"SELECT 1\0; DELETE FROM users").unwrap();
    let err = env.fails(&["query", "--file", "nul.sql", "--all"], 2);
    assert!(err.contains("NUL"), "{err}");
    fs::write(env.root().join("latin1.sql"), b"SELECT '\xe9'").unwrap();
    let err = env.fails(&["query", "--file", "latin1.sql", "--all"], 2);
    assert!(err.contains("UTF-8"), "{err}");
    fs::write(
        env.root().join("ok.sql"),
        "-- count\nSELECT count(*) AS n FROM users;\n",
    )
    .unwrap();
    assert_eq!(env.json(&["query", "--file", "ok.sql", "acme"])[0]["n"], 1);
    // Unknown tenant: exit 3, nothing run.
    let err = env.fails(&["query", "SELECT 1", "acme", "nosuch"], 3);
    assert!(err.contains("nosuch"), "{err}");
    // No selection at all.
    env.fails(&["query", "SELECT 1"], 2);
    assert_eq!(contents(&env.data()), before);
}

#[test]
fn status_filter_and_deleted_tenants() {
    let env = fleet();
    env.ok(&["tenant", "suspend", "globex"]);
    let v = env.json(&["query", "SELECT 1 AS one", "--status", "suspended"]);
    assert_eq!(v, serde_json::json!([{"tenant": "globex", "one": 1}]));
    env.ok(&["tenant", "delete", "initech", "--yes"]);
    let v = env.json(&["query", "SELECT 1 AS one", "--all"]);
    let tenants: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "globex"]);
    let err = env.fails(&["query", "SELECT 1", "initech"], 4);
    assert!(err.contains("deleted"), "{err}");
}

#[test]
fn a_closed_stdout_stops_the_output_not_the_exit_code() {
    let env = fleet();
    let bin = assert_cmd::cargo::cargo_bin("monkctl");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' --data-dir '{}' --format csv query 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 200000) SELECT x FROM c' --all | head -n 2; echo \"rc=${{PIPESTATUS[0]}}\"",
            bin.display(),
            env.data().display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "tenant,x\nacme,1\nrc=0\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("error"), "{stderr}");
}

/// Ctrl-C during a query over several tenants: the tenant being queried finishes and its rows
/// are printed, the others are reported as not started, exit 130.
#[test]
fn ctrl_c_during_a_query_reports_the_rest_as_not_started() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "bravo", "carol"]);
    let out = env.interrupted_at(
        "query.tenant.done",
        &[
            "--format",
            "json",
            "query",
            "SELECT count(*) AS n FROM models",
            "--all",
            "-j",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stdout.contains("\"acme\""), "{stdout}");
    assert!(!stdout.contains("\"bravo\""), "{stdout}");
    assert!(
        stderr.contains("bravo") && stderr.contains("not started"),
        "{stderr}"
    );
}
