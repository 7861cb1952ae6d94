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
use standin::{Holds, LockWatch, Plan, Standin, Tally};

/// Each case runs the stand-in for `REQUESTS` requests at `RATE` a second (3 s), or for at
/// most `RUN` on a machine too loaded to keep the pace (each request syncs twice).
const REQUESTS: u64 = 600;
const RATE: u32 = 200;
const RUN: Duration = Duration::from_secs(10);

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
        ("query_fails_nothing", || {
            // A query streams its rows and cannot read a tenant twice: when the API's
            // checkpoint changes the file under a quiet read, that tenant is reported busy
            // ("run again", exit 8 for the run) instead. Its own exit may say so; the API's
            // requests must still all succeed.
            reads_fail_nothing_but(
                &[
                    "query",
                    "SELECT count(*) FROM tracked",
                    "--all",
                    "--summary",
                ],
                Some("checkpointed while it was read"),
            )
        }),
        (
            "writes_elsewhere_fail_no_tenant_request",
            writes_elsewhere_fail_no_tenant_request,
        ),
        (
            "writes_to_the_tenant_hold_its_lock_per_transaction",
            writes_to_the_tenant,
        ),
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
    // The closing line in libtest's own form, so that whatever reads test output counts these.
    if failed.is_empty() {
        println!(
            "\ntest result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
            chosen.len()
        );
    } else {
        println!("\nfailures: {}", failed.join(", "));
        println!(
            "\ntest result: FAILED. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
            chosen.len() - failed.len(),
            failed.len()
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
        max_requests: REQUESTS,
        max_time: RUN,
    }
}

fn start_standin(env: &Env) -> Standin {
    let exe = std::env::current_exe().expect("this test binary");
    Standin::spawn(&exe, &[], &plan(env))
}

/// Runs `args` in a loop while the stand-in runs; returns its counts and how many times the
/// command ran. Every run must end as a run with nothing beside it does.
fn beside_standin(env: &Env, args: &[&str], run_again: Option<&str>) -> (Tally, u32) {
    let expected = env.run(args).status.code();
    let mut standin = start_standin(env);
    let mut runs = 0;
    while standin.running() {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        // Every error line is the one the command may give beside a writer: a partial run.
        let told_to_run_again = run_again.is_some_and(|note| {
            out.status.code() == Some(8)
                && err
                    .lines()
                    .filter(|l| l.starts_with("error: "))
                    .all(|l| l.contains(note))
        });
        assert!(
            told_to_run_again || out.status.code() == expected,
            "monkctl {args:?} beside the API exited {:?}, not {expected:?}\nstdout: {}\nstderr: {err}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
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
    reads_fail_nothing_but(args, None)
}

/// `reads_fail_nothing` for a command that may end a run by asking to be run again (its
/// stderr error lines all holding `run_again`), as long as no API request fails.
fn reads_fail_nothing_but(args: &[&str], run_again: Option<&str>) {
    let env = deployment();
    let (t, runs) = beside_standin(&env, args, run_again);
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

/// The command of a write case's `i`th run, or none to stop.
type Step<'a> = Box<dyn Fn(u32) -> Option<Vec<String>> + 'a>;

/// What a write command did beside the stand-in.
struct WriteRun {
    tally: Tally,
    runs: u32,
    /// The longest single run of the command.
    longest_run: Duration,
    /// Write-lock holds of the stand-in's tenant and of the registry by anyone but the stand-in.
    tenant: Holds,
    registry: Holds,
}

/// Runs the command `step(i)` gives for its `i`th run (until it gives none) while the stand-in
/// runs, watching who holds the write locks of `acme` and of the registry.
fn write_beside_standin(env: &Env, step: &dyn Fn(u32) -> Option<Vec<String>>) -> WriteRun {
    let mut standin = start_standin(env);
    let tenant = LockWatch::start(&env.tenant_file("acme"), standin.pid());
    let registry = LockWatch::start(&env.infra(), standin.pid());
    let (mut runs, mut longest_run) = (0, Duration::ZERO);
    while standin.running() {
        let Some(args) = step(runs) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let start = Instant::now();
        let out = env.run(&args);
        longest_run = longest_run.max(start.elapsed());
        // Spaced out, so that the requests each run fails can be told from the next run's.
        std::thread::sleep(Duration::from_millis(250));
        // A vacuum skips a tenant in use (and says so): not a failure here.
        let skipped = String::from_utf8_lossy(&out.stdout).contains("skipped (in use)");
        assert!(
            out.status.success() || skipped,
            "monkctl {args:?} beside the API\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        runs += 1;
    }
    WriteRun {
        tally: standin.finish(),
        runs,
        longest_run,
        tenant: tenant.finish(),
        registry: registry.finish(),
    }
}

fn report(what: &str, w: &WriteRun) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "monkctl {what}: {} runs (longest {:.0} ms), requests={} failed={}; tenant lock held {} times, {:.1} ms in all, longest {:.1} ms; registry lock held {} times, {:.1} ms in all, longest {:.1} ms; {:?}",
        w.runs,
        ms(w.longest_run),
        w.tally.requests,
        w.tally.failed,
        w.tenant.count,
        ms(w.tenant.total),
        ms(w.tenant.longest),
        w.registry.count,
        ms(w.registry.total),
        ms(w.registry.longest),
        w.tally.by_step
    );
}

fn args(a: &[&str]) -> Option<Vec<String>> {
    Some(a.iter().map(|s| s.to_string()).collect())
}

/// Write commands about other tenants never hold the stand-in's tenant: its requests fail at
/// most on the registry, whose write lock each holds for its own short transactions (the
/// figures are printed: how many holds, how long).
fn writes_elsewhere_fail_no_tenant_request() {
    let env = deployment();
    env.ok(&["tenant", "create", "t1", "t2", "t3", "t4", "t5", "t6"]);
    let others = [
        "globex", "initech", "umbrella", "t1", "t2", "t3", "t4", "t5", "t6",
    ];
    let with = |head: &[&str]| -> Vec<String> {
        head.iter()
            .chain(others.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let cases: Vec<(&str, Step<'_>)> = vec![
        (
            "tenant create (3 tenants a run)",
            Box::new(|i| {
                let names: Vec<String> = (0..3).map(|k| format!("n{i}_{k}")).collect();
                let mut a = vec!["tenant".to_string(), "create".to_string()];
                a.extend(names);
                Some(a)
            }),
        ),
        (
            "tenant trash / untrash (1 tenant)",
            Box::new(|i| {
                let verb = if i % 2 == 0 { "trash" } else { "untrash" };
                args(&["tenant", verb, "globex"])
            }),
        ),
        (
            "tenant suspend / activate (1 tenant)",
            Box::new(|i| {
                let verb = if i % 2 == 0 { "suspend" } else { "activate" };
                args(&["tenant", verb, "globex"])
            }),
        ),
        (
            "tenant vacuum (9 tenants)",
            Box::new(|_| Some(with(&["tenant", "vacuum"]))),
        ),
        (
            "doctor --repair",
            Box::new(|_| args(&["doctor", "--repair"])),
        ),
    ];
    for (what, step) in &cases {
        let w = write_beside_standin(&env, step.as_ref());
        report(what, &w);
        assert_served(&w.tally);
        assert!(w.runs >= 1);
        assert_eq!(
            w.tenant.count, 0,
            "{what} held the lock of a tenant it does not name"
        );
        let tenant_failures: Vec<&String> = w
            .tally
            .by_step
            .keys()
            .filter(|step| step.starts_with("tenant "))
            .collect();
        assert!(tenant_failures.is_empty(), "{what}: {tenant_failures:?}");
    }
}

/// Write commands into the stand-in's tenant: each holds its write lock for its own
/// transactions only. Requests that arrive during one fail, which is what a single
/// transaction costs; the figures say how long.
fn writes_to_the_tenant() {
    let env = deployment();
    let rows: String = (0..5000).map(|i| format!("item{i},{i}\n")).collect();
    common::fixture(
        &env,
        "items",
        "name = \"items\"\nversion = \"1\"\nfiles = [\"schema.sql\", \"items.csv\"]\n",
        &[
            (
                "schema.sql",
                b"CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY NOT NULL, n INTEGER);\nDELETE FROM items;\n",
            ),
            ("items.csv", format!("name,n\n{rows}").as_bytes()),
        ],
    );
    let mig = env.root().join("mig");
    std::fs::create_dir_all(&mig).unwrap();
    std::fs::write(
        mig.join("V2__add_nick.sql"),
        "ALTER TABLE users ADD COLUMN nick TEXT;\nCREATE INDEX users_nick ON users (nick);\n",
    )
    .unwrap();
    let mig = mig.display().to_string();
    let cases: Vec<(&str, Step<'_>)> = vec![
        (
            "fixture deploy, 5000 rows into the tenant",
            Box::new(|_| args(&["fixture", "deploy", "items", "--tenant", "acme", "--force"])),
        ),
        (
            "tenant vacuum acme",
            Box::new(|_| args(&["tenant", "vacuum", "acme"])),
        ),
        (
            "restore --force acme",
            Box::new(|_| args(&["restore", "--force", "--yes", "acme.monk.db"])),
        ),
        (
            "migrate up (4 tenants, once)",
            Box::new(move |i| {
                (i == 0).then(|| {
                    ["migrate", "--migrations", &mig, "up"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                })
            }),
        ),
    ];
    for (what, step) in &cases {
        let w = write_beside_standin(&env, step.as_ref());
        report(what, &w);
        assert_served(&w.tally);
        assert!(w.runs >= 1);
    }
}
