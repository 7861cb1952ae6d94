//! Fixture and template figures: cloning tenants from the `system` template against the floor of
//! copying and syncing the file and against executing the schema; loading CSV rows against the
//! `sqlite3` shell's `.import`.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::util::{monk, report, run_ok, scratch, time};

const TENANTS: usize = 1_000;
const ROWS: usize = 100_000;

/// Tenants per figure: `MONK_BENCH_TENANTS` (as in the `tenants` suite) for quick runs.
fn tenants() -> usize {
    std::env::var("MONK_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TENANTS)
}

fn names(prefix: &str) -> Vec<String> {
    (0..tenants()).map(|i| format!("{prefix}{i:04}")).collect()
}

pub fn run() {
    clone_vs_copy_vs_execute();
    csv_vs_sqlite3_import();
}

fn clone_vs_copy_vs_execute() {
    let root = scratch("fixtures-clone");
    let data = root.join("data");
    run_ok(monk(&data).args(["template", "build", "system"]));
    let template = data.join("templates/system.db");

    let (cloned, _) = time(|| {
        run_ok(
            monk(&data)
                .args(["tenant", "create", "--template", "system"])
                .args(names("c")),
        )
    });

    // The floor: write the template's bytes to a new file and sync it, 1,000 times.
    let floor_dir = root.join("floor");
    fs::create_dir_all(&floor_dir).unwrap();
    let (floor, _) = time(|| {
        let bytes = fs::read(&template).unwrap();
        for i in 0..tenants() {
            let mut f = fs::File::create(floor_dir.join(format!("t{i}.db"))).unwrap();
            f.write_all(&bytes).unwrap();
            f.sync_all().unwrap();
        }
    });

    let data2 = root.join("data-exec");
    run_ok(monk(&data2).args(["init"]));
    let (executed, _) = time(|| run_ok(monk(&data2).args(["tenant", "create"]).args(names("e"))));

    let n = tenants();
    let figure = format!("{n} tenants cloned from the system template");
    report(
        &figure,
        cloned,
        &format!("copy+sync of the template x{n}"),
        floor,
        "<= 3x",
    );
    report(
        &figure,
        cloned,
        &format!("{n} tenants by executing schema"),
        executed,
        "<= 0.1x",
    );
    let _ = fs::remove_dir_all(&root);
}

fn csv_vs_sqlite3_import() {
    let root = scratch("fixtures-csv");
    let data = root.join("data");
    let fx = root.join("fixtures/big");
    fs::create_dir_all(&fx).unwrap();
    let ddl = "CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, price REAL, qty INTEGER, note TEXT);\n";
    fs::write(fx.join("schema.sql"), ddl).unwrap();
    fs::write(
        fx.join("fixture.toml"),
        "name = \"big\"\nversion = \"1\"\nfiles = [\"schema.sql\", \"items.csv\"]\n",
    )
    .unwrap();
    let mut csv = String::from("id,sku,price,qty,note\n");
    for i in 0..ROWS {
        csv.push_str(&format!(
            "{i},sku-{i:06},{}.{:02},{},\"note, number {i}\"\n",
            i % 1000,
            i % 100,
            i % 50
        ));
    }
    fs::write(fx.join("items.csv"), &csv).unwrap();
    // A headerless copy for the shell, which would otherwise import the header as a row.
    let body = csv.split_once('\n').unwrap().1;
    fs::write(root.join("items-body.csv"), body).unwrap();

    run_ok(monk(&data).args(["tenant", "create", "bench", "baseline"]));
    let fixtures = root.join("fixtures");
    let (deployed, _) = time(|| {
        run_ok(monk(&data).args([
            "fixture",
            "deploy",
            "big",
            "--tenant",
            "bench",
            "--fixtures",
            fixtures.to_str().unwrap(),
        ]))
    });

    // The shell imports into a tenant file of the same kind, table created first, one transaction.
    let target = data.join("db_main/ns_tenant_baseline.db");
    let (imported, _) = time(|| shell_import(&target, ddl, &root.join("items-body.csv")));
    report(
        "100,000 CSV rows deployed to one tenant",
        deployed,
        "sqlite3 .import of the same rows",
        imported,
        "<= 1x",
    );
    let _ = fs::remove_dir_all(&root);
}

fn shell_import(db: &Path, ddl: &str, csv: &Path) {
    let script = format!(
        "PRAGMA synchronous=NORMAL;\n{ddl}.mode csv\n.import {} items\n",
        csv.display()
    );
    let mut c = Command::new("sqlite3");
    c.arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().expect("sqlite3 shell (apt-get install sqlite3)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}
