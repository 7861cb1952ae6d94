//! A property test of `archive verify` against `restore --as`: a valid archive mutated thousands
//! of ways (header bytes, any byte, truncation, metadata keys, fields of the archived row) never
//! panics or hangs either, and they agree: what verify accepts restores; what verify refuses
//! restore refuses with the same exit code, leaving the data directory as it was.
//!
//! Runs in-process through the library (the binary per case would take minutes), on a real data
//! directory and real files. `PROPTEST_CASES` changes the number of cases (default 2000, in two
//! halves).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;
use monkctl::core::archive::{self, RestoreOptions};
use monkctl::core::{Overrides, Settings, Workspace};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// Aborts the process when one case runs longer than `limit` (a hang would otherwise last until
/// CI's own timeout, naming nothing).
struct Watchdog {
    state: Arc<Mutex<(Instant, String, bool)>>,
}

impl Watchdog {
    fn start(limit: Duration) -> Watchdog {
        let state = Arc::new(Mutex::new((Instant::now(), String::new(), false)));
        let seen = Arc::clone(&state);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let s = seen.lock().unwrap();
            if s.2 {
                return;
            }
            if s.0.elapsed() > limit {
                eprintln!("a case ran longer than {limit:?} (a hang): {}", s.1);
                std::process::abort();
            }
        });
        Watchdog { state }
    }

    fn case(&self, what: &str) {
        let mut s = self.state.lock().unwrap();
        s.0 = Instant::now();
        s.1 = what.to_string();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.lock().unwrap().2 = true;
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// One byte of the 100-byte SQLite header.
    Header { at: usize, value: u8 },
    /// One byte anywhere (as a fraction of the file's length).
    Byte { at: f64, value: u8 },
    /// The file cut to a fraction of its length.
    Truncate { keep: f64 },
    /// A metadata key set to one of a few hostile or plausible values.
    Meta { key: usize, value: usize },
    /// A field of the archived registry row set to a JSON value.
    Field { field: usize, value: usize },
}

const META_KEYS: &[&str] = &[
    "format",
    "format_version",
    "tenant",
    "fixtures",
    "schema_version",
    "created_at",
    "host",
    "monkctl_version",
    "row_counts",
    "checksum",
];

const META_VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "1",
    "999",
    "null",
    "[]",
    "{}",
    "x",
    "\"hacked\"",
    "2026-11-23T03:25:53.112Z",
    "lanes64:0000000000000000",
    "monkctl-tenant-archive",
    r#"[{"fixture_name":"system","deployed_at":"2026-11-23 03:25:53","version":null}]"#,
    r#"[{"fixture_name":"../x","deployed_at":"2026-11-23 03:25:53","version":null}]"#,
    r#"{"users":-1}"#,
];

const FIELDS: &[&str] = &[
    "id",
    "name",
    "db_type",
    "database",
    "schema",
    "status",
    "template_version",
    "description",
    "source_template",
    "owner_id",
    "is_active",
    "created_at",
    "updated_at",
    "trashed_at",
    "deleted_at",
];

fn field_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(-1),
        json!(0),
        json!(7),
        json!(""),
        json!("../x"),
        json!("hacked"),
        json!("suspended"),
        json!("deleted"),
        json!("pending"),
        json!("2026-11-23 03:25:53"),
        json!("soon"),
        json!(true),
        json!([]),
        json!({}),
        json!("00000000-0000-0000-0000-000000000000"),
        json!("11111111-2222-4333-8444-555555555555"),
        json!("shop_tpl"),
        json!("x".repeat(20_000)),
    ]
}

/// A header byte: mostly the small values and limits SQLite's header fields use, else any.
fn header_value() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 16, 32, 33, 64, 65, 0x7f, 0x80, 0xff]),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let nvalues = field_values().len();
    prop_oneof![
        3 => (0usize..100, header_value()).prop_map(|(at, value)| Mutation::Header { at, value }),
        2 => (0.0f64..1.0, any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        1 => (0.0f64..1.0).prop_map(|keep| Mutation::Truncate { keep }),
        2 => (0..META_KEYS.len(), 0..META_VALUES.len())
            .prop_map(|(key, value)| Mutation::Meta { key, value }),
        3 => (0..FIELDS.len(), 0..nvalues).prop_map(|(field, value)| Mutation::Field { field, value }),
    ]
}

/// Writes `good` with the mutations applied to `to`.
fn mutate(env: &Env, good: &[u8], muts: &[Mutation], to: &Path) {
    // Metadata first (through SQLite, on a valid file), bytes after.
    std::fs::write(to, good).unwrap();
    let values = field_values();
    let c = env.open(to);
    // A scratch copy: no journal, no syncing.
    c.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        .unwrap();
    for m in muts {
        match m {
            Mutation::Meta { key, value } => {
                c.execute(
                    "UPDATE _monk_archive SET value = ?2 WHERE key = ?1",
                    [META_KEYS[*key], META_VALUES[*value]],
                )
                .unwrap();
            }
            Mutation::Field { field, value } => {
                let text: Option<String> = c
                    .query_row(
                        "SELECT value FROM _monk_archive WHERE key = 'tenant'",
                        [],
                        |r| r.get(0),
                    )
                    .ok();
                if let Some(mut t) = text.and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
                    if t.is_object() {
                        t[FIELDS[*field]] = values[*value].clone();
                        c.execute(
                            "UPDATE _monk_archive SET value = ?1 WHERE key = 'tenant'",
                            [t.to_string()],
                        )
                        .unwrap();
                    }
                }
            }
            _ => {}
        }
    }
    drop(c);
    let mut b = std::fs::read(to).unwrap();
    for m in muts {
        match m {
            Mutation::Header { at, value } => b[*at] = *value,
            Mutation::Byte { at, value } => {
                let i = ((b.len() as f64) * at) as usize;
                if i < b.len() {
                    b[i] = *value;
                }
            }
            Mutation::Truncate { keep } => b.truncate(((b.len() as f64) * keep) as usize),
            _ => {}
        }
    }
    std::fs::write(to, &b).unwrap();
}

/// The files of the data directory (without SQLite's `-shm`, which readers write) and the
/// registered tenant names: what a refused restore must leave as it was.
fn state(env: &Env) -> (BTreeSet<PathBuf>, Vec<String>) {
    let files = common::snapshot(&env.data())
        .into_iter()
        .map(|(p, _, _)| p)
        .filter(|p| !p.to_string_lossy().ends_with("-wal"))
        .collect();
    let names = env
        .open(&env.infra())
        .prepare("SELECT name FROM tenants ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (files, names)
}

/// Two halves on their own data directories, run side by side (the cost of a case is mostly the
/// syncs of a successful restore, which overlap).
#[test]
fn verify_and_restore_agree_on_mutated_archives_first_half() {
    agree_on_mutated_archives();
}

#[test]
fn verify_and_restore_agree_on_mutated_archives_second_half() {
    agree_on_mutated_archives();
}

fn agree_on_mutated_archives() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "--owner", "alice"]);
    env.open(&env.tenant_file("acme"))
        .execute_batch(
            "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT, data BLOB);
             INSERT INTO widgets (name, data) VALUES ('a', zeroblob(300)), ('b', randomblob(5000));",
        )
        .unwrap();
    let good_path = env.root().join("good.monk.db");
    env.ok(&["extract", "acme", "-o", good_path.to_str().unwrap()]);
    let good = std::fs::read(&good_path).unwrap();
    let ws = Workspace::new(
        Settings::resolve_with(
            &Overrides {
                data_dir: Some(env.data()),
                ..Overrides::default()
            },
            |_| None,
        )
        .unwrap(),
    )
    .unwrap();
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
        / 2;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let n = AtomicUsize::new(0);
    // No hang: a case that takes longer than this stops the whole test binary, naming the case.
    let watchdog = Watchdog::start(Duration::from_secs(60));
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let work = env.root().join("cases");
    std::fs::create_dir_all(&work).unwrap();
    runner
        .run(&proptest::collection::vec(mutation(), 1..4), |muts| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            watchdog.case(&format!("{muts:?}"));
            let p = work.join(format!("case-{i}.monk.db"));
            mutate(&env, &good, &muts, &p);
            let verified = archive::verify(&p, ws.migration_set().unwrap());
            // Only a refused restore is compared with the state before it.
            let before = verified.is_err().then(|| state(&env));
            let name = format!("r{i}");
            let restored = archive::restore(
                &ws,
                &p,
                &RestoreOptions {
                    as_name: Some(name.clone()),
                    ..RestoreOptions::default()
                },
            );
            match (&verified, &restored) {
                (Ok(_), Ok(r)) => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    prop_assert_eq!(&r.tenant.name, &name);
                    let path = r.path.clone().expect("a SQLite tenant has a file");
                    prop_assert!(path.exists());
                    // Keep the data directory small: the next cases compare it whole.
                    rusqlite::Connection::open(env.infra())
                        .unwrap()
                        .execute("DELETE FROM tenants WHERE name = ?1", [&name])
                        .unwrap();
                    for s in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
                    }
                }
                (Err(v), Err(r)) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    prop_assert_eq!(
                        v.exit_code(),
                        r.exit_code(),
                        "verify: {}\nrestore: {}",
                        v,
                        r
                    );
                    prop_assert_eq!(Some(state(&env)), before, "restore wrote something: {}", r);
                }
                (Ok(_), Err(r)) => {
                    prop_assert!(false, "verify accepted, restore refused: {}", r)
                }
                (Err(v), Ok(_)) => {
                    prop_assert!(false, "verify refused ({}), restore stored it", v)
                }
            }
            std::fs::remove_file(&p).unwrap();
            Ok(())
        })
        .unwrap();
    drop(watchdog);
    let (a, r) = (accepted.into_inner(), refused.into_inner());
    eprintln!("{a} mutated archives restored, {r} refused alike");
    // Both sides were exercised (a generator that only ever broke the file would prove little).
    assert!(a > 0 && r > 0, "accepted {a}, refused {r}");
}
