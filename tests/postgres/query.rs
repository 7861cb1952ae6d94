//! `monkctl query` on PostgreSQL: one read-only statement over every tenant schema, in tenant
//! order, enforced read-only by the database, bounded in time, refused before anything runs when
//! it reaches outside the tenant.

use serde_json::Value;

use crate::PgDb;

cases![
    rows_of_every_tenant_in_tenant_order,
    what_writes_or_reaches_outside_is_refused_before_any_tenant,
    a_failing_tenant_is_reported_and_the_others_go_on,
    the_time_limit_stops_a_runaway_query,
];

fn lines(out: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(out);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(a)) => a,
        Ok(other) => vec![other],
        Err(e) => panic!("{e}: {text}"),
    }
}

fn rows_of_every_tenant_in_tenant_order(db: &PgDb) {
    db.restore_reference_dump();
    db.monkctl()
        .args(["tenant", "create", "beta", "--owner", "admin"])
        .assert()
        .success();
    let out = db
        .monkctl()
        .args([
            "--format",
            "json",
            "query",
            "SELECT name, access FROM users WHERE name <> $1 ORDER BY name",
            "--param",
            "Root User",
            "--all",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let rows = lines(&out.stdout);
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["tenant"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("acme".into(), "admin".into()),
            ("beta".into(), "admin".into())
        ]
    );
    // Types come through: the API's widgets hold numbers, booleans, json, arrays and uuids.
    let out = db
        .monkctl()
        .args([
            "--format",
            "json",
            "query",
            "SELECT name, qty, price, active, tags FROM widgets ORDER BY name",
            "acme",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let w = lines(&out.stdout);
    assert_eq!(w.len(), 3);
    assert_eq!(w[0]["name"], "alpha");
    assert_eq!(w[0]["qty"], 1);
    assert_eq!(w[0]["price"], 9.99);
    assert_eq!(w[0]["active"], 1);
    assert_eq!(w[0]["tags"], "[\"a\",\"b\"]");
    // CSV has the tenant column first.
    let out = db
        .monkctl()
        .args([
            "--format",
            "csv",
            "query",
            "SELECT count(*) AS n FROM models",
            "--all",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tenant,n\nacme,8\nbeta,7\nglobex,7\n"
    );
}

fn what_writes_or_reaches_outside_is_refused_before_any_tenant(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "acme"])
        .assert()
        .success();
    let before: i64 = db.scalar("SELECT count(*) FROM ns_tenant_acme.users");
    for sql in [
        "DELETE FROM users",
        "UPDATE users SET name = 'x'",
        "WITH d AS (DELETE FROM users RETURNING id) SELECT * FROM d",
        "SELECT * FROM public.tenants",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT current_setting('data_directory')",
        "SELECT 1; SELECT 2",
        "",
        "SELECT $1",
    ] {
        let out = db.monkctl().args(["query", sql, "--all"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{sql}: {out:?}");
    }
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.users"),
        before
    );
    // An unqualified name never reaches the registry in `public`.
    let out = db
        .monkctl()
        .args(["query", "SELECT * FROM tenants", "--all"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{out:?}"
    );
}

fn a_failing_tenant_is_reported_and_the_others_go_on(db: &PgDb) {
    db.restore_reference_dump();
    let out = db
        .monkctl()
        .args([
            "--format",
            "json",
            "query",
            "SELECT count(*) AS n FROM widgets",
            "--all",
            "--summary",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["tenant"], "acme");
    assert_eq!(rows[0]["exit_code"], 0);
    assert_eq!(rows[1]["tenant"], "globex");
    assert_eq!(rows[1]["exit_code"], 1);
    assert!(rows[1]["error"].as_str().unwrap().contains("widgets"));
}

fn the_time_limit_stops_a_runaway_query(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "acme"])
        .assert()
        .success();
    let start = std::time::Instant::now();
    let out = db
        .monkctl()
        .args([
            "query",
            "SELECT count(*) FROM generate_series(1, 1000000000)",
            "--all",
            "--timeout",
            "300ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(20), "{out:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // The server is not still running it.
    let running: i64 = db.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%generate_series(1, 1000000000)%' \
         AND pid <> pg_backend_pid() AND state = 'active'",
    );
    assert_eq!(running, 0);
}
