//! monkctl on PostgreSQL: every case gets a fresh database of its own on a real server.
//!
//! The server is the one `MONKCTL_TEST_PG_URL` names (an admin URL, allowed to create
//! databases); `scripts/with-postgres CMD` starts a private one and sets it. Without the
//! variable every case is reported as ignored (skipped, never passed), unless
//! `MONKCTL_REQUIRE_POSTGRES=1` says a server must be there: then the run fails, as it does when
//! the server cannot be used.
//!
//! Own harness (`harness = false` in Cargo.toml), shaped like libtest: the cases are the `CASES`
//! of the group modules below, named `group::case`; `cargo test --test postgres [FILTER...]`
//! runs those whose name contains a filter (`--exact`: equals it, `--skip F` leaves some out,
//! `--list` lists them), on `--test-threads` threads (4 by default). A passed case's database
//! is dropped; a failed case's database and data directory are kept and named.
//!
//! A group of cases is a module beside this file (`tenant.rs`: `mod tenant;` below, and its
//! `CASES` in `all_cases`) whose cases are `fn(&PgDb)`, listed once with `cases![a, b, ...]`.
//! `PgDb` (see `pgdb.rs`) is the case's database: `url()`, `client()`, `sql()`, `scalar()`,
//! `monkctl()`, `data_dir()`, `env()` (the helpers of `tests/common`),
//! `restore_reference_dump()`; `PrivateServer` is a server of the case's own, to stop.

#[path = "../common/mod.rs"]
mod common;

/// `cases![a, b, ...]` in a group module: its `CASES`, each named `module::function`.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        pub const CASES: &[$crate::Case] = &[
            $($crate::Case { path: concat!(module_path!(), "::", stringify!($case)), run: $case }),*
        ];
    };
}

mod archive;
mod doctor;
mod fixture;
mod harness_selftest;
mod maintenance;
mod migrate;
mod mixed;
mod pgdb;
mod query;
mod tenant;
mod tls;

use std::cell::RefCell;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub use pgdb::{PgDb, Server};

/// One test case: a function given a fresh database.
pub struct Case {
    /// `postgres::group::case`, as `module_path!()` gives it.
    pub path: &'static str,
    pub run: fn(&PgDb),
}

impl Case {
    /// The name as libtest would print it: `group::case`.
    pub fn name(&self) -> &'static str {
        self.path
            .split_once("::")
            .map_or(self.path, |(_, rest)| rest)
    }
}

/// Every case, group by group: a new group module adds its `CASES` here.
fn all_cases() -> Vec<&'static Case> {
    let mut groups: Vec<&'static [Case]> = vec![
        archive::CASES,
        doctor::CASES,
        fixture::CASES,
        harness_selftest::CASES,
        maintenance::CASES,
        migrate::CASES,
        mixed::CASES,
        query::CASES,
        tenant::CASES,
        tls::CASES,
    ];
    // Cases that exist only for the harness's own tests, which run this binary with the
    // variable set (one of them fails on purpose).
    if std::env::var_os(harness_selftest::DEMO_VAR).is_some() {
        groups.push(harness_selftest::DEMO_CASES);
    }
    groups.into_iter().flatten().collect()
}

/// The variable naming the server, and the one saying a server must be there.
pub const URL_VAR: &str = "MONKCTL_TEST_PG_URL";
pub const REQUIRE_VAR: &str = "MONKCTL_REQUIRE_POSTGRES";

/// The libtest options this harness honours; the others are accepted and ignored.
#[derive(Default)]
struct Options {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    terse: bool,
    ignored_only: bool,
    bench: bool,
    test: bool,
    threads: Option<usize>,
}

fn options() -> Options {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let value =
            |args: &mut std::iter::Skip<std::env::Args>| inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--exact" => o.exact = true,
            "--list" => o.list = true,
            "--ignored" => o.ignored_only = true,
            "--bench" => o.bench = true,
            "--test" => o.test = true,
            "--skip" => o.skip.extend(value(&mut args)),
            "--format" => o.terse = value(&mut args).as_deref() == Some("terse"),
            "--test-threads" => o.threads = value(&mut args).and_then(|v| v.parse().ok()),
            "--color" | "--logfile" | "--shuffle-seed" | "-Z" => {
                value(&mut args);
            }
            f if f.starts_with('-') => {}
            _ => o.filters.push(arg),
        }
    }
    o
}

fn chosen<'a>(o: &Options, all: &[&'a Case]) -> Vec<&'a Case> {
    let matches = |name: &str, pattern: &str| {
        if o.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    if o.ignored_only || (o.bench && !o.test) {
        // No case is ignored, and none is a benchmark.
        return Vec::new();
    }
    all.iter()
        .copied()
        .filter(|c| o.filters.is_empty() || o.filters.iter().any(|f| matches(c.name(), f)))
        .filter(|c| !o.skip.iter().any(|s| matches(c.name(), s)))
        .collect()
}

fn main() {
    let o = options();
    let all = all_cases();
    let chosen = chosen(&o, &all);
    if o.list {
        for c in &chosen {
            println!("{}: test", c.name());
        }
        if !o.terse {
            println!("\n{} tests, 0 benchmarks", chosen.len());
        }
        return;
    }
    let filtered_out = all.len() - chosen.len();
    let plural = if chosen.len() == 1 { "" } else { "s" };
    println!("\nrunning {} test{plural}", chosen.len());
    let start = Instant::now();
    if chosen.is_empty() {
        summary(0, &[], 0, filtered_out, start.elapsed());
        return;
    }

    let url = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty());
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
    let server = match (url, required) {
        (None, false) => {
            println!(
                "note: {URL_VAR} is not set, so the PostgreSQL tests are skipped: run them with \
                 `scripts/with-postgres cargo test --test postgres` (starts a private server), or \
                 set {URL_VAR}=postgresql://USER:PASSWORD@HOST:PORT/postgres to use a server \
                 that lets USER create databases"
            );
            for c in &chosen {
                println!(
                    "test {} ... ignored, skipped: no PostgreSQL server",
                    c.name()
                );
            }
            summary(0, &[], chosen.len(), filtered_out, start.elapsed());
            return;
        }
        (None, true) => Err(format!(
            "{REQUIRE_VAR}=1 says a PostgreSQL server must be there, but {URL_VAR} is not set"
        )),
        (Some(url), _) => Server::connect(&url),
    };
    let server = match server {
        Ok(s) => Arc::new(s),
        Err(e) => {
            println!("error: {e}");
            let names: Vec<_> = chosen.iter().map(|c| c.name()).collect();
            for n in &names {
                println!("test {n} ... FAILED");
            }
            summary(0, &names, 0, filtered_out, start.elapsed());
            std::process::exit(101);
        }
    };

    install_panic_hook();
    let threads = o
        .threads
        .or_else(|| {
            std::env::var("RUST_TEST_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(4)
        .clamp(1, chosen.len());
    let next = Arc::new(AtomicUsize::new(0));
    let cases: Arc<Vec<&'static Case>> = Arc::new(chosen);
    let (tx, rx) = mpsc::channel::<Outcome>();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (next, cases, tx, server) =
                (next.clone(), cases.clone(), tx.clone(), server.clone());
            std::thread::Builder::new()
                .name(format!("pg-case-{i}"))
                .spawn(move || {
                    while let Some(case) = cases.get(next.fetch_add(1, Ordering::SeqCst)) {
                        if tx.send(run_case(&server, case)).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawn a test thread")
        })
        .collect();
    drop(tx);

    let mut passed = 0;
    let mut failures: Vec<Outcome> = Vec::new();
    for outcome in rx {
        let verdict = if outcome.failure.is_none() {
            "ok"
        } else {
            "FAILED"
        };
        println!("test {} ... {verdict}", outcome.name);
        let _ = std::io::stdout().flush();
        if outcome.failure.is_some() {
            failures.push(outcome);
        } else {
            passed += 1;
        }
    }
    for w in workers {
        w.join().expect("a test thread panicked outside a case");
    }
    if !failures.is_empty() {
        println!("\nfailures:\n");
        for f in &failures {
            println!("---- {} stdout ----", f.name);
            println!("{}\n", f.failure.as_deref().unwrap_or_default());
        }
    }
    let names: Vec<_> = failures.iter().map(|f| f.name).collect();
    summary(passed, &names, 0, filtered_out, start.elapsed());
    if !failures.is_empty() {
        std::process::exit(101);
    }
}

/// The closing lines in libtest's own form, so that whatever reads test output counts these.
fn summary(passed: usize, failed: &[&str], ignored: usize, filtered_out: usize, took: Duration) {
    if !failed.is_empty() {
        println!("\nfailures:");
        for n in failed {
            println!("    {n}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored; 0 measured; \
         {filtered_out} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        took.as_secs_f64()
    );
}

struct Outcome {
    name: &'static str,
    /// What went wrong (the panic, and what was kept), for a failed case.
    failure: Option<String>,
}

fn run_case(server: &Arc<Server>, case: &'static Case) -> Outcome {
    let name = case.name();
    let db = match server.fresh_database() {
        Ok(db) => db,
        Err(e) => {
            return Outcome {
                name,
                failure: Some(format!("could not create the case's database: {e}")),
            }
        }
    };
    CURRENT.with(|c| *c.borrow_mut() = Some((name, Vec::new())));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| (case.run)(&db)));
    let panics = CURRENT
        .with(|c| c.borrow_mut().take())
        .map(|(_, p)| p)
        .unwrap_or_default();
    let failure = match result {
        Ok(()) => db
            .drop_database()
            .err()
            .map(|e| format!("the case passed, but its database could not be dropped: {e}")),
        Err(_) => Some(format!("{}\n{}", panics.join("\n"), db.keep())),
    };
    Outcome { name, failure }
}

thread_local! {
    /// The case running on this thread and the panic messages it gave.
    static CURRENT: RefCell<Option<(&'static str, Vec<String>)>> = const { RefCell::new(None) };
}

/// Panics inside a case are kept for its failure report (threads run side by side, so printing
/// them as they happen would mix cases); any other panic is printed as usual.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let kept = CURRENT.with(|c| {
            let Ok(mut c) = c.try_borrow_mut() else {
                return false;
            };
            let Some((name, panics)) = c.as_mut() else {
                return false;
            };
            let mut msg = format!("thread '{name}' {info}");
            let bt = std::backtrace::Backtrace::capture();
            if bt.status() == std::backtrace::BacktraceStatus::Captured {
                msg.push_str(&format!("\nstack backtrace:\n{bt}"));
            }
            panics.push(msg);
            true
        });
        if !kept {
            default(info);
        }
    }));
}
