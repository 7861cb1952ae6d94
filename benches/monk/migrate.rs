//! Migration figures on a fleet of tenant databases (10,000 by default; `MONK_BENCH_TENANTS`
//! changes it): one pending migration (a column and an index) with `monkctl migrate up` on every
//! core, against the same run on one thread (`--jobs 1`) and against a bare rusqlite loop in this
//! process; a run with nothing pending; peak resident memory of each monkctl run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use monkctl::core::layout::Layout;
use monkctl::core::registry::{Registry, TenantRow};
use monkctl::core::{ids, system};

use crate::util::{monk, report, report_abs, scratch, settle};

const MIGRATION: &str =
    "ALTER TABLE users ADD COLUMN nick TEXT;\nCREATE INDEX users_nick ON users (nick);\n";

/// `n` tenants: one built file copied `n` times, the registry rows in one transaction.
fn populate(data: &Path, template: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(data);
    let dir = data.join("db_main");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        std::fs::copy(template, dir.join(format!("ns_tenant_t{i:05}.db"))).unwrap();
    }
    let layout = Layout::detect(data, "monk").unwrap();
    let mut reg = Registry::open_for_write(&layout).unwrap();
    let now = ids::now_iso();
    reg.write(|w| {
        for i in 0..n {
            w.insert(&TenantRow {
                id: ids::uuid_v4(),
                name: format!("t{i:05}"),
                db_type: "sqlite".into(),
                database: "db_main".into(),
                schema: format!("ns_tenant_t{i:05}"),
                status: "active".into(),
                template_version: 1,
                description: None,
                source_template: None,
                owner_id: system::ROOT_USER_ID.into(),
                is_active: true,
                created_at: now.clone(),
                updated_at: now.clone(),
                trashed_at: None,
                deleted_at: None,
            })?;
        }
        Ok(())
    })
    .unwrap();
}

/// Runs monkctl under `/usr/bin/time` when present; returns the wall time, the peak RSS in MiB
/// and stdout.
fn run_measured(c: Command) -> (Duration, Option<f64>, String) {
    let time_bin = Path::new("/usr/bin/time");
    let mut cmd = if time_bin.exists() {
        let mut t = Command::new(time_bin);
        t.arg("-f").arg("MAXRSS_KB=%M").arg(c.get_program());
        t.args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => t.env(k, v),
                None => t.env_remove(k),
            };
        }
        t
    } else {
        c
    };
    let start = Instant::now();
    let out = cmd.output().expect("spawn monkctl");
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "monkctl failed: {err}");
    let rss = err
        .lines()
        .find_map(|l| l.strip_prefix("MAXRSS_KB="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0);
    (took, rss, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn up(data: &Path, mig: &Path, extra: &[&str]) -> (Duration, Option<f64>, serde_json::Value) {
    let mut c = monk(data);
    c.args(["--format", "json", "migrate", "--migrations"])
        .arg(mig)
        .arg("up")
        .args(extra);
    let (t, rss, out) = run_measured(c);
    (t, rss, serde_json::from_str(&out).expect("json"))
}

fn mib(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.1} MiB"))
        .unwrap_or_else(|| "n/a".into())
}

pub fn run() {
    let n: usize = std::env::var("MONK_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let root = scratch("migrate");
    let template = root.join("template.db");
    system::build(
        &template,
        "root",
        &monkctl::core::migrate::MigrationSet::builtin(),
    )
    .unwrap();
    let mig = root.join("mig");
    std::fs::create_dir_all(&mig).unwrap();
    std::fs::write(mig.join("V2__add_nick.sql"), MIGRATION).unwrap();
    let data = root.join("data");

    populate(&data, &template, n);
    settle();
    let (par, par_rss, v) = up(&data, &mig, &[]);
    assert_eq!(
        v["summary"]["migrated"], n,
        "parallel run did not migrate all"
    );
    settle();
    let (none, none_rss, v) = up(&data, &mig, &[]);
    assert_eq!(v["summary"]["up_to_date"], n);

    populate(&data, &template, n);
    settle();
    let (seq, seq_rss, v) = up(&data, &mig, &["--jobs", "1"]);
    assert_eq!(v["summary"]["migrated"], n);

    // The bare minimum one thread can do: open, one transaction with the two statements, close.
    populate(&data, &template, n);
    settle();
    let start = Instant::now();
    for i in 0..n {
        let p = data.join(format!("db_main/ns_tenant_t{i:05}.db"));
        let mut c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .unwrap();
        let tx = c.transaction().unwrap();
        tx.execute_batch(MIGRATION).unwrap();
        tx.commit().unwrap();
    }
    let bare = start.elapsed();

    // Memory in a run a tenth the size, to see whether it grows with the fleet.
    let small = (n / 10).max(1);
    populate(&data, &template, small);
    let (_, small_rss, _) = up(&data, &mig, &[]);
    let _ = std::fs::remove_dir_all(&data);

    println!("{n} tenants, one pending migration (ADD COLUMN + CREATE INDEX), default jobs");
    report(
        "migrate up, parallel vs the same run on one thread",
        par,
        "migrate up --jobs 1",
        seq,
        "<= 0.59x (1.7x faster), < 20 s",
    );
    report(
        "migrate up, parallel vs a bare rusqlite loop",
        par,
        "bare rusqlite loop, one thread",
        bare,
        "(context)",
    );
    report_abs("migrate up, nothing pending", none, "< 2 s");
    println!(
        "peak RSS: parallel {} | --jobs 1 {} | nothing pending {} | parallel with {small} tenants {}",
        mib(par_rss),
        mib(seq_rss),
        mib(none_rss),
        mib(small_rss)
    );
}
