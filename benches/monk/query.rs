//! `monkctl query` over 10,000 tenants (default jobs) against the same statement run by one
//! thread opening each file in turn with rusqlite, in the same run. `MONK_BENCH_TENANTS` sets
//! another fleet size (for a quick figure by hand).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::util::{median, monk, report, report_abs, run_ok, scratch, settle, time};

const ROUNDS: usize = 3;

const STATEMENTS: [(&str, &str); 2] = [
    ("count(*) FROM users", "SELECT count(*) FROM users"),
    (
        "join models/fields",
        "SELECT m.model_name, count(f.id) FROM models m JOIN fields f ON f.model_name = m.model_name GROUP BY m.model_name",
    ),
];

fn tenants() -> usize {
    std::env::var("MONK_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// The baseline: each file opened read-only in turn, the statement run to its last row.
fn sequential(files: &[PathBuf], sql: &str) -> u64 {
    let mut rows = 0;
    for f in files {
        let conn = Connection::open_with_flags(
            f,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        let mut st = conn.prepare(sql).unwrap();
        let mut r = st.raw_query();
        while r.next().unwrap().is_some() {
            rows += 1;
        }
    }
    rows
}

/// Largest resident memory of any child waited for so far, in MiB.
fn children_peak_mib() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

fn monk_query(data: &Path, sql: &str) -> u64 {
    let out = run_ok(monk(data).args(["--format", "csv", "query", sql, "--all"]));
    // Lines less the header.
    out.stdout.iter().filter(|b| **b == b'\n').count() as u64 - 1
}

pub fn run() {
    let n = tenants();
    let data = scratch("query").join("data");
    let (setup, files) = time(|| crate::doctor::build(&data, n));
    report_abs(
        &format!("setup: {n} tenant files + rows (not a figure)"),
        setup,
        "-",
    );
    settle();
    for (label, sql) in STATEMENTS {
        let (mut base, mut ours): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let (d, base_rows) = time(|| sequential(&files, sql));
            base.push(d);
            let (d, our_rows) = time(|| monk_query(&data, sql));
            ours.push(d);
            assert_eq!(our_rows, base_rows, "{label}: row counts differ");
        }
        let (m, b) = (median(ours), median(base));
        report(
            &format!("query {label}, {n} tenants"),
            m,
            "rusqlite, 1 thread, file by file",
            b,
            "faster by >= 1.7x (ratio <= 0.59)",
        );
        println!(
            "  speed-up {:.2}x; peak memory of any monkctl child so far {:.1} MiB",
            b.as_secs_f64() / m.as_secs_f64().max(1e-9),
            children_peak_mib()
        );
    }
}
