//! Beside a live API: the API stand-in (`tests/standin`, about 200 requests a second into one
//! tenant, each a new connection with busy timeout 0) runs while one read command loops on the
//! same data directory, and the figure is the requests it failed. The baseline, in the same
//! run: plain `sqlite3` CLI reads of the same two files (`SELECT count(*) FROM tenants` on the
//! registry, `SELECT count(*) FROM tracked` on the tenant) in a loop. Target: 0 for every
//! monkctl command. `MONK_BENCH_MONKCTL` names another monkctl binary to measure (an older
//! build, for a before/after figure; every suite honours it); `MONK_BENCH_LIVE_SECS` the length
//! of each run (5).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::standin::{Plan, Standin, Tally};
use crate::util::{monk as monkctl, run_ok, scratch};

const READS: &[&[&str]] = &[
    &["tenant", "list"],
    &["tenant", "show", "acme"],
    &["tenant", "usage"],
    &["doctor"],
    &["migrate", "status"],
    &["migrate", "plan"],
    &["fixture", "status", "--tenant", "acme"],
    &["extract", "acme", "--force", "-o", "ARCHIVE"],
    &["archive", "verify", "ARCHIVE"],
    &["archive", "inspect", "ARCHIVE"],
];

fn plan(data: &Path, secs: u64) -> Plan {
    Plan {
        data_dir: data.to_path_buf(),
        infra: data.join("infra/monk.db"),
        tenant: "acme".into(),
        rate: 200,
        max_requests: 200 * secs + 1,
        max_time: Duration::from_secs(secs),
    }
}

/// Runs `step` in a loop while the stand-in runs; its counts and the loop's count.
fn beside(data: &Path, secs: u64, step: &mut dyn FnMut()) -> (Tally, u32) {
    let exe = std::env::current_exe().expect("this benchmark binary");
    let mut standin = Standin::spawn(&exe, &[], &plan(data, secs));
    let mut runs = 0;
    while standin.running() {
        step();
        runs += 1;
    }
    (standin.finish(), runs)
}

fn quiet(c: &mut Command) {
    let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn line(figure: &str, t: &Tally, runs: u32, base: &Tally) {
    println!(
        "{figure:<44} failed {:>4} of {:>5} requests ({runs:>4} runs) | sqlite3 reads: failed {:>4} of {:>5} | target 0",
        t.failed, t.requests, base.failed, base.requests
    );
}

pub fn run() {
    let secs: u64 = std::env::var("MONK_BENCH_LIVE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = scratch("live");
    let data = root.join("data");
    run_ok(monkctl(&data).args(["tenant", "create", "acme", "globex", "initech", "umbrella"]));
    let archive: PathBuf = root.join("acme.monk.db");
    run_ok(monkctl(&data).args(["extract", "acme", "-o"]).arg(&archive));
    let tenant = data.join("db_main/ns_tenant_acme.db");
    let infra = data.join("infra/monk.db");

    let have_sqlite3 = Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let base = if have_sqlite3 {
        let mut i = 0u32;
        let (t, _) = beside(&data, secs, &mut || {
            let (file, sql) = if i.is_multiple_of(2) {
                (&infra, "SELECT count(*) FROM tenants")
            } else {
                (&tenant, "SELECT count(*) FROM tracked")
            };
            quiet(Command::new("sqlite3").arg(file).arg(sql));
            i += 1;
        });
        t
    } else {
        println!("(sqlite3 is not installed: `apt-get install sqlite3` for the baseline)");
        Tally::default()
    };
    for args in READS {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if *a == "ARCHIVE" {
                    archive.display().to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let (t, runs) = beside(&data, secs, &mut || quiet(monkctl(&data).args(&args)));
        let shown: Vec<&str> = args
            .iter()
            .map(|a| if a.contains('/') { "FILE" } else { a.as_str() })
            .collect();
        line(&format!("live: {}", shown.join(" ")), &t, runs, &base);
    }
}
