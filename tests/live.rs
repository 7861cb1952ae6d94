//! monkctl beside a live API: a stand-in of the API's request path (`tests/standin`) runs in its
//! own process, about 200 requests a second into one tenant, while a command runs in a loop on
//! the same data directory. A command that only reads must make none of its requests fail.
//!
//! Own harness (`harness = false` in Cargo.toml): this binary re-executes itself as the
//! stand-in, and the cases run one after another, each timing a loop of its own.
//! `cargo test --test live [FILTER]` runs the cases whose name contains FILTER.

mod common;
mod standin;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Env;
use standin::{Plan, Standin, Tally};

/// How long each case runs the stand-in, and at what rate.
const RUN: Duration = Duration::from_secs(3);
const RATE: u32 = 200;

fn main() {
    if standin::main_if_asked() {
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let cases: &[(&str, fn())] = &[
        ("standin_alone_fails_nothing", standin_alone_fails_nothing),
        (
            "control_write_lock_fails_requests",
            control_write_lock_fails_requests,
        ),
        ("tenant_list_fails_nothing", || {
            reads_fail_nothing(&["tenant", "list"])
        }),
        ("tenant_show_fails_nothing", || {
            reads_fail_nothing(&["tenant", "show", "acme"])
        }),
        ("tenant_usage_fails_nothing", || {
            reads_fail_nothing(&["tenant", "usage"])
        }),
        ("doctor_fails_nothing", || reads_fail_nothing(&["doctor"])),
        ("migrate_status_fails_nothing", || {
            reads_fail_nothing(&["migrate", "status"])
        }),
        ("migrate_plan_fails_nothing", || {
            reads_fail_nothing(&["migrate", "plan"])
        }),
        ("fixture_status_fails_nothing", || {
            reads_fail_nothing(&["fixture", "status", "--tenant", "acme"])
        }),
        ("extract_fails_nothing", || {
            reads_fail_nothing(&["extract", "acme", "--force", "-o", "acme.monk.db"])
        }),
        ("archive_verify_fails_nothing", || {
            reads_fail_nothing(&["archive", "verify", "acme.monk.db"])
        }),
        ("archive_inspect_fails_nothing", || {
            reads_fail_nothing(&["archive", "inspect", "acme.monk.db"])
        }),
    ];
    let chosen: Vec<_> = cases
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, case) in &chosen {
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(case);
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.1}s)",
            start.elapsed().as_secs_f64()
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        println!("\ntest result: ok. {} passed\n", chosen.len());
    } else {
        println!(
            "\ntest result: FAILED. {} passed; {} failed: {}\n",
            chosen.len() - failed.len(),
            failed.len(),
            failed.join(", ")
        );
        std::process::exit(101);
    }
}

/// A data directory with the tenant the stand-in serves (`acme`), three more, and an archive
/// of `acme` (`<root>/acme.monk.db`) for the archive commands.
fn deployment() -> Env {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "globex", "initech", "umbrella"]);
    env.ok(&["extract", "acme", "-o", "acme.monk.db"]);
    env
}

fn plan(env: &Env) -> Plan {
    Plan {
        data_dir: env.data(),
        infra: env.infra(),
        tenant: "acme".into(),
        rate: RATE,
        max_requests: u64::from(RATE) * RUN.as_secs() + 1,
        max_time: RUN,
    }
}

fn start_standin(env: &Env) -> Standin {
    let exe = std::env::current_exe().expect("this test binary");
    Standin::spawn(&exe, &[], &plan(env))
}

/// Runs `args` in a loop while the stand-in runs; returns its counts and how many times the
/// command ran. Every run must end as a run with nothing beside it does.
fn beside_standin(env: &Env, args: &[&str]) -> (Tally, u32) {
    let expected = env.run(args).status.code();
    let mut standin = start_standin(env);
    let mut runs = 0;
    while standin.running() {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            expected,
            "monkctl {args:?} beside the API\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        runs += 1;
    }
    (standin.finish(), runs)
}

fn assert_served(t: &Tally) {
    // Each request syncs its commit and its checkpoint, so a loaded machine runs fewer than
    // planned; enough ran to overlap the command many times.
    assert!(
        t.requests >= 50,
        "the stand-in made only {} requests",
        t.requests
    );
}

fn reads_fail_nothing(args: &[&str]) {
    let env = deployment();
    let (t, runs) = beside_standin(&env, args);
    println!(
        "monkctl {}: {runs} runs, requests={} failed={}",
        args.join(" "),
        t.requests,
        t.failed
    );
    assert_served(&t);
    assert!(
        runs >= 2,
        "monkctl {args:?} ran only {runs} times beside the stand-in"
    );
    assert_eq!(
        t.failed, 0,
        "monkctl {args:?} made {} of {} API requests fail: {:?}",
        t.failed, t.requests, t.errors
    );
}

/// The stand-in alone fails nothing: what the other cases count is what monkctl causes.
fn standin_alone_fails_nothing() {
    let env = deployment();
    let t = start_standin(&env).finish();
    assert_served(&t);
    assert_eq!(t.failed, 0, "{:?}", t.errors);
    // Its inserts are there, committed.
    let rows: i64 = env
        .open(&env.tenant_file("acme"))
        .query_row(
            "SELECT count(*) FROM tracked WHERE id LIKE 'standin-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows as u64, t.requests);
}

/// The suite can fail: a process that takes the tenant's write lock for 20 ms out of every
/// 50 ms makes requests fail with "database is locked".
fn control_write_lock_fails_requests() {
    let env = deployment();
    let path = env.tenant_file("acme");
    let mut standin = start_standin(&env);
    while standin.running() {
        hold_write_lock(&path, Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
    }
    let t = standin.finish();
    assert_served(&t);
    assert!(
        t.failed > 0,
        "holding the write lock failed no request: the stand-in cannot see a lock"
    );
    assert!(
        t.errors.iter().any(|e| e.contains("database is locked")),
        "{:?}",
        t.errors
    );
}

fn hold_write_lock(path: &Path, hold: Duration) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::sleep(hold);
    c.execute_batch("COMMIT").unwrap();
}
