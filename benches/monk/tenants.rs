//! Foundation figures: creating tenants (one process, and one process per tenant) against
//! executing the same schema with rusqlite, and listing 100,000 tenants as JSON against the
//! `sqlite3` shell's `-json` output of the same rows: once with the registry alone, once with a
//! file on disk for each tenant (so that monkctl pays for the file sizes it reports).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use monkctl::core::system;
use rusqlite::Connection;

use crate::util::{median, monk, report, report_abs, run_ok, scratch, time};

const CREATE_N: usize = 1_000;
const LIST_N: usize = 100_000;

pub fn run() {
    let n = std::env::var("MONK_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CREATE_N);
    create(n);
    list(
        std::env::var("MONK_BENCH_LIST")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(LIST_N),
    );
}

/// The baseline: a new file per tenant, the system SQL executed in one transaction, closed.
fn baseline_create(dir: &Path, n: usize) -> Duration {
    std::fs::create_dir_all(dir).unwrap();
    time(|| {
        for i in 0..n {
            let conn = Connection::open(dir.join(format!("t{i:05}.db"))).unwrap();
            system::register_functions(&conn).unwrap();
            conn.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
            conn.execute_batch(&format!("BEGIN; {} COMMIT;", system::SYSTEM_SQL))
                .unwrap();
        }
    })
    .0
}

fn create(n: usize) {
    let base = scratch("create");
    let baseline = baseline_create(&base.join("baseline"), n);

    // One process creating n tenants.
    let data = base.join("one");
    run_ok(monk(&data).arg("init"));
    let list = base.join("names.txt");
    let names: Vec<String> = (0..n).map(|i| format!("tenant_{i:05}")).collect();
    std::fs::write(&list, names.join("\n")).unwrap();
    let (one, _) = time(|| {
        run_ok(
            monk(&data)
                .args(["--format", "json", "tenant", "create", "--from-file"])
                .arg(&list),
        )
    });
    report(
        &format!("create {n} tenants, one process"),
        one,
        "rusqlite executing the schema",
        baseline,
        "-",
    );

    // One process per tenant.
    let data = base.join("many");
    run_ok(monk(&data).arg("init"));
    let mut each = Vec::with_capacity(n);
    let (many, _) = time(|| {
        for name in &names {
            let (d, _) = time(|| run_ok(monk(&data).args(["tenant", "create", name])));
            each.push(d);
        }
    });
    report(
        &format!("create {n} tenants, one process each"),
        many,
        "rusqlite executing the schema",
        baseline,
        "-",
    );
    report_abs(
        "one tenant created by a fresh process (median)",
        median(each),
        "< 30 ms",
    );
    let _ = std::fs::remove_dir_all(&base);
}

fn list(n: usize) {
    let base = scratch("list");
    let data = base.join("data");
    run_ok(monk(&data).arg("init"));
    let infra = data.join("infra/monk.db");
    {
        let mut conn = Connection::open(&infra).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO tenants (id, name, database, schema, owner_id, created_at, description) \
                     VALUES (?1, ?2, 'db_main', ?3, '00000000-0000-0000-0000-000000000000', \
                     strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?4)",
                )
                .unwrap();
            for i in 0..n {
                let name = format!("tenant_{i:06}");
                st.execute(rusqlite::params![
                    monkctl::core::ids::uuid_v4(),
                    name,
                    format!("ns_tenant_{name}"),
                    format!("customer {i}")
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    // First the registry alone (the tenants' files elsewhere), then with a file for every row,
    // so that listing pays for the sizes it reports (empty files: the cost is one stat each).
    compare_list(&data, &infra, n, "registry rows only, no files");
    let dir = data.join("db_main");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        std::fs::File::create(dir.join(format!("ns_tenant_tenant_{i:06}.db"))).unwrap();
    }
    compare_list(&data, &infra, n, "a file on disk per tenant");
    let _ = std::fs::remove_dir_all(&base);
}

fn compare_list(data: &Path, infra: &Path, n: usize, what: &str) {
    let runs = 5;
    let mut shell = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..runs {
        let (d, out) = time(|| {
            run_ok(
                Command::new("sqlite3")
                    .arg("-json")
                    .arg(infra)
                    .arg("SELECT * FROM tenants ORDER BY name"),
            )
        });
        assert!(out.stdout.len() > n * 50);
        shell.push(d);
        let (d, out) = time(|| run_ok(monk(data).args(["--format", "json", "tenant", "list"])));
        assert!(out.stdout.len() > n * 50);
        ours.push(d);
    }
    report(
        &format!("list {n} tenants as JSON, {what} (median of {runs})"),
        median(ours),
        "sqlite3 -json, same rows",
        median(shell),
        "<= 1.5x",
    );
}
