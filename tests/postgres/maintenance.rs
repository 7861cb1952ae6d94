//! `tenant usage` and `tenant vacuum` on PostgreSQL: a tenant's schema measured and vacuumed.

use serde_json::Value;

use crate::PgDb;

cases![
    usage_measures_each_schema,
    vacuum_reclaims_space_of_deleted_rows
];

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

fn usage_measures_each_schema(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "small", "big"])
        .assert()
        .success();
    db.sql(
        "INSERT INTO ns_tenant_big.filters (name, model_name, description) \
         SELECT 'f' || i, 'users', repeat('x', 500) FROM generate_series(1, 2000) i",
    );
    let out = db
        .monkctl()
        .args(["--format", "json", "tenant", "usage", "--sort", "size"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    let rows = v.as_array().expect("a list");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["tenant"], "big", "largest first: {v}");
    assert!(rows[0]["path"].is_null());
    let big = rows[0]["size_bytes"].as_u64().unwrap();
    let small = rows[1]["size_bytes"].as_u64().unwrap();
    assert!(big > small + 1_000_000 / 2, "big {big} small {small}");
    // 7 models + 68 fields + root user + fs root, and the 2000 filters.
    assert_eq!(rows[1]["row_count"], 77);
    assert_eq!(rows[0]["row_count"], 2077);
    // An unknown tenant is exit 3; usage changed nothing.
    let out = db
        .monkctl()
        .args(["tenant", "usage", "nobody"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

fn vacuum_reclaims_space_of_deleted_rows(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "acme"])
        .assert()
        .success();
    db.sql(
        "INSERT INTO ns_tenant_acme.filters (name, model_name, description) \
         SELECT 'f' || i, 'users', repeat('x', 2000) FROM generate_series(1, 3000) i; \
         DELETE FROM ns_tenant_acme.filters",
    );
    let out = db
        .monkctl()
        .args(["--format", "json", "tenant", "vacuum", "acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["succeeded"], 1, "{v}");
    assert_eq!(v["results"][0]["ok"], true);
    assert!(
        v["results"][0]["result"]["size_before_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    // VACUUM (ANALYZE) ran: the statistics say so.
    let analysed: i64 = db.scalar(
        "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'ns_tenant_acme' \
         AND relname = 'filters' AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL",
    );
    assert_eq!(analysed, 1);
    // A tenant whose table another session holds exclusively is skipped, not waited for.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE ns_tenant_acme.users IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let start = std::time::Instant::now();
    let out = db
        .monkctl()
        .args(["--format", "json", "tenant", "vacuum", "--all"])
        .output()
        .unwrap();
    // The only tenant was skipped as busy: the batch's one code, 5.
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    let v = json(&out.stdout);
    assert_eq!(v["failed"], 1, "{v}");
    assert!(
        v["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("skipped"),
        "{v}"
    );
    tx.rollback().unwrap();
}
