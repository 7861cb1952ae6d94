//! `tenant vacuum` and `tenant usage` on real tenant files.

mod common;

use std::time::Duration;

use common::{snapshot, Env};
use serde_json::Value;

fn setup() -> Env {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "bravo"]);
    env
}

/// Fills a user table and deletes most of it, leaving free pages behind.
fn churn(env: &Env, name: &str) {
    env.open(&env.tenant_file(name))
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
             INSERT INTO notes (body) SELECT hex(randomblob(500)) FROM n;
             DELETE FROM notes WHERE id > 10;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
}

fn usage_of<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|u| u["tenant"] == name)
        .unwrap_or_else(|| panic!("{name} not in {v:#}"))
}

#[test]
fn vacuum_reclaims_free_pages_and_keeps_rows() {
    let env = setup();
    churn(&env, "acme");
    let u = env.json(&["tenant", "usage"]);
    let free_before = usage_of(&u, "acme")["freelist_count"].as_i64().unwrap();
    assert!(free_before > 100, "{u:#}");
    assert!(usage_of(&u, "acme")["row_count"].as_i64().unwrap() > 10);

    let v = env.json(&["tenant", "vacuum", "acme"]);
    assert_eq!(v["succeeded"], 1, "{v:#}");
    assert_eq!(v["results"][0]["ok"], true);
    let r = &v["results"][0]["result"];
    assert!(r["reclaimed_bytes"].as_u64().unwrap() > 100 * 4096, "{v:#}");
    assert_eq!(
        r["size_before_bytes"].as_u64().unwrap() - r["size_after_bytes"].as_u64().unwrap(),
        r["reclaimed_bytes"].as_u64().unwrap()
    );
    assert_eq!(v["reclaimed_bytes"], r["reclaimed_bytes"], "the total");

    let u = env.json(&["tenant", "usage", "acme"]);
    let acme = usage_of(&u, "acme");
    assert_eq!(acme["freelist_count"], 0);
    let notes = acme["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "notes")
        .unwrap();
    assert_eq!(notes["row_count"], 10);
    // ANALYZE ran.
    let n: i64 = env
        .open(&env.tenant_file("acme"))
        .query_row("SELECT count(*) FROM sqlite_stat1", [], |r| r.get(0))
        .unwrap();
    assert!(n > 0);
}

#[test]
fn vacuum_skips_a_tenant_in_use_and_exits_partial() {
    let env = setup();
    churn(&env, "acme");
    churn(&env, "bravo");
    let acme = env.tenant_file("acme");
    let conn = env.open(&acme);
    conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO notes (body) VALUES ('held');")
        .unwrap();
    let acme_before: Vec<_> = snapshot(&env.data().join("db_main"))
        .into_iter()
        .filter(|(p, _, _)| p.to_string_lossy().contains("acme"))
        .collect();

    // The lock is held until after the run: it ends only because it does not wait for it (the
    // ceiling is there so that a regression fails instead of hanging).
    let out = env
        .cmd()
        .args(["--format", "json", "tenant", "vacuum", "--all"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 1, "{v:#}");
    assert_eq!(v["failed"], 1);
    let res = v["results"].as_array().unwrap();
    let a = res.iter().find(|r| r["tenant"] == "acme").unwrap();
    assert_eq!(a["exit_code"], 5, "busy: {v:#}");
    assert!(a["error"].as_str().unwrap().contains("in use"));
    let b = res.iter().find(|r| r["tenant"] == "bravo").unwrap();
    assert_eq!(b["ok"], true);
    assert!(
        b["result"]["reclaimed_bytes"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("acme"));

    let acme_after: Vec<_> = snapshot(&env.data().join("db_main"))
        .into_iter()
        .filter(|(p, _, _)| p.to_string_lossy().contains("acme"))
        .collect();
    assert_eq!(acme_after, acme_before);
    conn.execute_batch("COMMIT").unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 11);
}

#[test]
fn vacuum_needs_names_or_all_and_known_tenants() {
    let env = setup();
    let before = snapshot(&env.data());
    env.fails(&["tenant", "vacuum"], 2);
    let err = env.fails(&["tenant", "vacuum", "nobody"], 3);
    assert!(err.contains("nobody"), "{err}");
    env.fails(&["tenant", "vacuum", "Bad-Name"], 2);
    assert_eq!(snapshot(&env.data()), before);
}

#[test]
fn usage_reports_sizes_rows_and_sorts() {
    let env = setup();
    env.open(&env.tenant_file("bravo"))
        .execute_batch(
            "CREATE TABLE big (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200)
             INSERT INTO big SELECT randomblob(4000) FROM n;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    let v = env.json(&["tenant", "usage", "--sort", "size"]);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["tenant"], "bravo", "largest first: {v:#}");
    let b = &list[0];
    assert_eq!(
        b["size_bytes"].as_i64().unwrap(),
        b["page_size"].as_i64().unwrap() * b["page_count"].as_i64().unwrap()
    );
    let users = b["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "users")
        .unwrap();
    assert_eq!(users["row_count"], 1);
    assert!(b["last_changed_at"].as_str().unwrap().ends_with('Z'));
    let v = env.json(&["tenant", "usage", "--sort", "size", "--reverse"]);
    assert_eq!(v[0]["tenant"], "acme");

    let csv = env.ok(&["--format", "csv", "tenant", "usage"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "tenant,status,size,wal,page_size,page_count,freelist_count,row_count,last_changed_at,tables"
    );
    assert!(lines.next().unwrap().starts_with("acme,active,"));

    // Deleted tenants only with --all, read in the trash.
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    let v = env.json(&["tenant", "usage"]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    let v = env.json(&["tenant", "usage", "--all"]);
    let a = usage_of(&v, "acme");
    assert_eq!(a["status"], "deleted");
    assert!(a["path"].as_str().unwrap().contains("/trash/"));
    assert!(a["error"].is_null(), "{a:#}");
}

/// Ctrl-C during `tenant vacuum --all`: the tenant in progress finishes, no other starts, each
/// is reported in the batch shape, exit 130.
#[test]
fn ctrl_c_during_vacuum_finishes_the_tenant_in_progress_only() {
    let env = setup();
    env.ok(&["tenant", "create", "carol"]);
    let out = env.interrupted_at(
        "tenant.vacuum.done",
        &["--format", "json", "tenant", "vacuum", "--all"],
    );
    assert_eq!(out.status.code(), Some(130));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 1, "{v:#}");
    assert_eq!(v["failed"], 2, "{v:#}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["tenant"], "acme");
    assert_eq!(results[0]["ok"], true);
    for r in &results[1..] {
        assert_eq!(r["exit_code"], 130, "{v:#}");
        assert!(
            r["error"].as_str().unwrap().contains("not started"),
            "{v:#}"
        );
    }
    // bravo and carol were not vacuumed: ANALYZE never ran there.
    for name in ["bravo", "carol"] {
        let stats: i64 = env
            .open(&env.tenant_file(name))
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stats, 0, "{name} was vacuumed");
    }
}
