//! Hostile and careless operator input (issue "one guard for every statement an operator
//! supplies"): every case of `tests/data/hostile/` through the real binary, each refused with
//! its exit code and a message naming the file and line, and nothing changed anywhere: the whole
//! temporary directory (the data directory and the working directory the commands run in) is
//! byte-identical before and after.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{fixture, Env};
use serde_json::Value;

const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hostile");

fn hostile(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(HOSTILE).join(rel)).unwrap()
}

/// Every entry below `dir`: its path, its kind and, for a file, its bytes. A symbolic link is
/// recorded with its target, never followed. `-shm` files are left out (as in
/// `common::snapshot`): SQLite's shared-memory index, rewritten by every reader, holds no data.
fn tree(dir: &Path) -> Vec<(PathBuf, String, Vec<u8>)> {
    fn walk(d: &Path, out: &mut Vec<(PathBuf, String, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((p, format!("link {}", t.display()), Vec::new()));
            } else if ft.is_dir() {
                out.push((p.clone(), "dir".into(), Vec::new()));
                walk(&p, out);
            } else if p.to_string_lossy().ends_with("-shm") {
                continue;
            } else if ft.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, "file".into(), bytes));
            } else {
                out.push((p, "special".into(), Vec::new()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

type Tree = Vec<(PathBuf, String, Vec<u8>)>;

fn assert_unchanged(env: &Env, before: &[(PathBuf, String, Vec<u8>)], what: &str) {
    assert_same(before, &tree(env.root()), what);
}

/// Fails naming the entries that differ (never printing file contents).
fn assert_same(
    before: &[(PathBuf, String, Vec<u8>)],
    after: &[(PathBuf, String, Vec<u8>)],
    what: &str,
) {
    if after != before {
        let names = |t: &[(PathBuf, String, Vec<u8>)]| -> Vec<String> {
            t.iter()
                .map(|(p, k, b)| {
                    let h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
                        (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3)
                    });
                    format!("{} {k} {} {h:016x}", p.display(), b.len())
                })
                .collect()
        };
        let (a, b) = (names(before), names(after));
        let gone: Vec<&String> = a.iter().filter(|x| !b.contains(x)).collect();
        let new: Vec<&String> = b.iter().filter(|x| !a.contains(x)).collect();
        panic!("{what} changed files: gone or different {gone:?}, new or different {new:?}");
    }
}

fn env_with(tenants: &[&str]) -> Env {
    let env = Env::new();
    env.ok(&["init"]);
    let mut args = vec!["tenant", "create"];
    args.extend_from_slice(tenants);
    env.ok(&args);
    env
}

/// `<root>/<dir>/<file>` with the given bytes.
fn put(env: &Env, dir: &str, file: &str, bytes: &[u8]) -> PathBuf {
    let d = env.root().join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(file), bytes).unwrap();
    d
}

/// Runs monkctl with a deadline: a command that hangs fails the test instead of hanging it.
fn run(env: &Env, args: &[&str]) -> (Option<i32>, String, String, Duration) {
    let t = Instant::now();
    let out = env
        .cmd()
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run monkctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

fn expect(env: &Env, args: &[&str], code: i32, needles: &[&str]) -> String {
    let (got, out, err, _) = run(env, args);
    assert_eq!(
        got,
        Some(code),
        "monkctl {args:?}\nstdout: {out}\nstderr: {err}"
    );
    let all = format!("{out}{err}");
    for n in needles {
        assert!(all.contains(n), "monkctl {args:?}: no {n:?} in\n{all}");
    }
    all
}

#[test]
fn migrations_reaching_past_the_guard_are_refused_by_plan_and_up_and_change_nothing() {
    let env = env_with(&["acme", "beta"]);
    // (data file, line of the refused statement, words of the message)
    let cases: [(&str, usize, &str); 7] = [
        ("attach.sql", 1, "ATTACH"),
        ("attach_new_file.sql", 3, "ATTACH"),
        ("dbpage.sql", 2, "sqlite_dbpage"),
        ("writable_schema.sql", 1, "writable_schema"),
        ("vacuum_into.sql", 2, "VACUUM"),
        ("nul.sql", 3, "NUL byte"),
        (
            "trigger_sequence.sql",
            3,
            "a trigger on 'counters' would do this when it runs",
        ),
    ];
    let dirs: Vec<(PathBuf, usize, &str)> = cases
        .iter()
        .map(|(f, line, words)| {
            let d = put(
                &env,
                &format!("mig-{f}"),
                "V2__hostile.sql",
                &hostile(&format!("migrations/{f}")),
            );
            (d, *line, *words)
        })
        .collect();
    let before = tree(env.root());
    for (dir, line, words) in &dirs {
        let d = dir.display().to_string();
        let at = format!("V2__hostile.sql:{line}:");
        for cmd in [
            vec!["migrate", "--migrations", &d, "plan"],
            vec!["migrate", "--migrations", &d, "up"],
            vec![
                "migrate",
                "--migrations",
                &d,
                "up",
                "--allow-destructive",
                "--yes",
            ],
            vec!["migrate", "--migrations", &d, "up", "--dry-run"],
        ] {
            expect(&env, &cmd, 2, &[&at, words]);
        }
        assert_unchanged(&env, &before, &format!("{}", dir.display()));
    }
    // The registry still says every tenant is active.
    let list = env.json(&["tenant", "list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "active"),
        "{list}"
    );
}

#[test]
fn fixtures_reaching_past_the_guard_are_refused_everywhere_they_run() {
    let env = env_with(&["acme"]);
    env.ok(&["template", "build", "system"]);
    for (name, file) in [("dbpage", "dbpage.sql"), ("vacuuminto", "vacuum_into.sql")] {
        fixture(
            &env,
            name,
            &format!("name = \"{name}\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n"),
            &[("a.sql", &hostile(&format!("fixtures/{file}")))],
        );
    }
    let before = tree(env.root());
    for (name, words) in [("dbpage", "sqlite_dbpage"), ("vacuuminto", "VACUUM")] {
        let at = "a.sql:2: statement 2 is refused";
        let out = env.run(&["--format", "json", "fixture", "check", name]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let message = report["problems"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(at) && message.contains(words), "{report}");
        expect(
            &env,
            &["fixture", "deploy", name, "--tenant", "acme"],
            2,
            &[at, words],
        );
        expect(&env, &["fixture", "deploy", name, "--all"], 2, &[at, words]);
        expect(
            &env,
            &["template", "build", "t1", "--fixture", name],
            2,
            &[at, words],
        );
        expect(
            &env,
            &["tenant", "create", "newone", "--fixture", name],
            2,
            &[at, words],
        );
        expect(
            &env,
            &[
                "tenant",
                "create",
                "newtwo",
                "--template",
                "system",
                "--fixture",
                name,
            ],
            2,
            &[at, words],
        );
        assert_unchanged(&env, &before, name);
    }
}

#[test]
fn symbolic_links_fifos_and_nul_bytes_in_operator_files_are_refused() {
    let env = env_with(&["acme"]);
    let elsewhere = put(
        &env,
        "elsewhere",
        "outside.sql",
        &hostile("fixtures/outside.sql"),
    );
    std::fs::write(
        elsewhere.join("fixture.toml"),
        "name = \"linkedmanifest\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
    )
    .unwrap();
    std::fs::write(elsewhere.join("notes.csv"), hostile("fixtures/notes.csv")).unwrap();
    let fx = env.root().join("fixtures");
    // A fixture whose SQL file is a link to a file outside its directory.
    fixture(
        &env,
        "linkedsql",
        "name = \"linkedsql\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
        &[],
    );
    std::os::unix::fs::symlink(elsewhere.join("outside.sql"), fx.join("linkedsql/a.sql")).unwrap();
    // A fixture whose manifest is a link.
    fixture(&env, "linkedmanifest", "", &[("a.sql", b"SELECT 1;\n")]);
    std::fs::remove_file(fx.join("linkedmanifest/fixture.toml")).unwrap();
    std::os::unix::fs::symlink(
        elsewhere.join("fixture.toml"),
        fx.join("linkedmanifest/fixture.toml"),
    )
    .unwrap();
    // A fixture directory that is a link to a complete fixture elsewhere.
    let real = put(
        &env,
        "realdir/linkeddir",
        "a.sql",
        &hostile("fixtures/outside.sql"),
    );
    std::fs::write(
        real.join("fixture.toml"),
        "name = \"linkeddir\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&real, fx.join("linkeddir")).unwrap();
    // A data file that is a link.
    fixture(
        &env,
        "linkedcsv",
        "name = \"linkedcsv\"\nversion = \"1\"\nfiles = [\"a.sql\", \"notes.csv\"]\n",
        &[("a.sql", b"CREATE TABLE notes (body TEXT);\n")],
    );
    std::os::unix::fs::symlink(elsewhere.join("notes.csv"), fx.join("linkedcsv/notes.csv"))
        .unwrap();
    // A FIFO as a fixture's SQL file: reading it would wait for a writer forever.
    fixture(
        &env,
        "fifosql",
        "name = \"fifosql\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
        &[],
    );
    mkfifo(&fx.join("fifosql/a.sql"));
    // Migrations: a link, a FIFO, a NUL byte.
    let mig_link = env.root().join("mig-link");
    std::fs::create_dir_all(&mig_link).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("outside.sql"), mig_link.join("V2__x.sql")).unwrap();
    let mig_fifo = env.root().join("mig-fifo");
    std::fs::create_dir_all(&mig_fifo).unwrap();
    mkfifo(&mig_fifo.join("V2__x.sql"));
    let mig_nul = put(&env, "mig-nul", "V2__x.sql", &hostile("migrations/nul.sql"));

    let before = tree(env.root());
    for (name, needle) in [
        ("linkedsql", "a.sql: is a symbolic link"),
        ("linkedmanifest", "fixture.toml: is a symbolic link"),
        ("linkeddir", "the fixture directory is a symbolic link"),
        ("linkedcsv", "notes.csv: is a symbolic link"),
        ("fifosql", "a.sql: is a FIFO"),
    ] {
        let (code, out, err, took) = run(&env, &["fixture", "check", name]);
        assert_eq!(code, Some(2), "{name}: {out}{err}");
        assert!(format!("{out}{err}").contains(needle), "{name}: {out}{err}");
        assert!(took < Duration::from_secs(20), "{name} took {took:?}");
        expect(
            &env,
            &["fixture", "deploy", name, "--tenant", "acme"],
            2,
            &[needle],
        );
        assert_unchanged(&env, &before, name);
    }
    for (dir, needle) in [
        (&mig_link, "V2__x.sql: is a symbolic link"),
        (&mig_fifo, "V2__x.sql: is a FIFO"),
        (&mig_nul, "V2__x.sql:3: the file holds a NUL byte"),
    ] {
        let d = dir.display().to_string();
        for cmd in ["plan", "up", "status"] {
            let (code, out, err, took) = run(&env, &["migrate", "--migrations", &d, cmd]);
            assert_eq!(code, Some(2), "{d} {cmd}: {out}{err}");
            assert!(
                format!("{out}{err}").contains(needle),
                "{d} {cmd}: {out}{err}"
            );
            assert!(took < Duration::from_secs(20), "{d} {cmd} took {took:?}");
        }
        assert_unchanged(&env, &before, &d);
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn endless_statements_are_stopped_at_their_time_limit() {
    let env = env_with(&["acme"]);
    fixture(
        &env,
        "endless",
        "name = \"endless\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
        &[("a.sql", &hostile("fixtures/endless.sql"))],
    );
    let mig = put(
        &env,
        "mig-endless",
        "V2__spin.sql",
        &hostile("migrations/endless.sql"),
    );
    let d = mig.display().to_string();
    let before = tree(env.root());

    // Analysis stops at its own limit (5s); runs at --statement-timeout.
    let (code, out, err, took) = run(&env, &["fixture", "check", "endless"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("a.sql:2: statement 2 ran longer than its limit of 5s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(30), "check took {took:?}");
    let fast = ["--statement-timeout", "500ms"];
    for args in [
        vec!["fixture", "deploy", "endless", "--tenant", "acme"],
        vec!["template", "build", "spin", "--fixture", "endless"],
        vec!["tenant", "create", "spinner", "--fixture", "endless"],
    ] {
        let mut a = args.clone();
        a.extend_from_slice(&fast);
        expect(
            &env,
            &a,
            20,
            &["a.sql:2: statement 2 ran longer than its limit of 500ms"],
        );
    }
    expect(
        &env,
        &["migrate", "--migrations", &d, "plan"],
        20,
        &["V2__spin.sql:2: statement 2 ran longer than its limit of 5s"],
    );
    expect(
        &env,
        &[
            "migrate",
            "--migrations",
            &d,
            "up",
            "--statement-timeout",
            "500ms",
        ],
        20,
        &["V2__spin.sql:2: statement 2 ran longer than its limit of 500ms"],
    );
    expect(
        &env,
        &[
            "migrate",
            "--migrations",
            &d,
            "up",
            "--statement-timeout",
            "0",
        ],
        2,
        &["--statement-timeout"],
    );
    assert_unchanged(&env, &before, "endless");
}

#[test]
fn renaming_a_table_or_a_column_is_destructive() {
    let env = env_with(&["acme"]);
    for (file, action, object) in [
        ("rename_column.sql", "rename_column", "users.name -> login"),
        (
            "rename_table.sql",
            "rename_table",
            "filters -> saved_filters",
        ),
    ] {
        let dir = put(
            &env,
            &format!("mig-{file}"),
            "V2__rename.sql",
            &hostile(&format!("migrations/{file}")),
        );
        let d = dir.display().to_string();
        let before = tree(env.root());
        let plan = env.json(&["migrate", "--migrations", &d, "plan"]);
        let found = &plan["tenants"]["results"][0]["result"]["destructive"][0];
        assert_eq!(found["action"], action, "{plan}");
        assert_eq!(found["object"], object, "{plan}");
        assert_eq!(
            found["file"]
                .as_str()
                .map(|f| f.ends_with("V2__rename.sql")),
            Some(true)
        );
        // `up` refuses the tenant (nothing changed) after taking the run lock, whose empty file
        // stays by design; everything else is byte-identical.
        expect(&env, &["migrate", "--migrations", &d, "up"], 18, &[action]);
        let lock = env.data().join("locks/migrate.lock");
        let without_lock =
            |t: Tree| -> Tree { t.into_iter().filter(|(p, _, _)| p != &lock).collect() };
        assert_same(&without_lock(before), &without_lock(tree(env.root())), file);
    }
}

#[test]
fn a_killed_fixture_check_leaves_nothing_behind() {
    let env = Env::new();
    fixture(
        &env,
        "endless",
        "name = \"endless\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
        &[("a.sql", &hostile("fixtures/endless.sql"))],
    );
    // The system temporary directory of the child, where scratch directories used to go.
    let tmp = env.root().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let before = tree(env.root());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_monkctl"))
        .current_dir(env.root())
        .env("TMPDIR", &tmp)
        .env_remove("MONK_FIXTURES_DIR")
        .env_remove("MONK_CONFIG")
        .env("HOME", env.root())
        .arg("--data-dir")
        .arg(env.data())
        .args(["fixture", "check", "endless"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The endless statement runs for 5 s: kill the check in the middle of it.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the check ended early");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_unchanged(&env, &before, "a killed fixture check");
}

#[test]
fn a_refused_statement_in_a_migration_every_tenant_applied_does_not_block_the_fleet() {
    let env = env_with(&["acme", "beta"]);
    let dir = put(&env, "mig", "V2__x.sql", b"CREATE TABLE x (a);\n");
    let d = dir.display().to_string();
    env.ok(&["migrate", "--migrations", &d, "up"]);
    // V2 as it was applied long ago, with a statement the guard now refuses (a no-op inside
    // the tenant's transaction): editing it would diverge, so it must stay as it is.
    let old = "PRAGMA foreign_keys = OFF;\nCREATE TABLE x (a);\n";
    std::fs::write(dir.join("V2__x.sql"), old).unwrap();
    let sum = refinery::Migration::unapplied("V2__x", old)
        .unwrap()
        .checksum()
        .to_string();
    for t in ["acme", "beta"] {
        env.open(&env.tenant_file(t))
            .execute(
                "UPDATE refinery_schema_history SET checksum = ?1 WHERE version = 2",
                [&sum],
            )
            .unwrap();
    }
    std::fs::write(dir.join("V3__y.sql"), "CREATE TABLE y (b);\n").unwrap();
    let plan = env.json(&["migrate", "--migrations", &d, "plan"]);
    assert_eq!(plan["summary"]["pending"], 2, "{plan}");
    let up = env.json(&["migrate", "--migrations", &d, "up"]);
    assert_eq!(up["summary"]["migrated"], 2, "{up}");
    // A refused statement in a pending migration still stops everything.
    std::fs::write(dir.join("V4__z.sql"), "CREATE TABLE z (c);\nVACUUM;\n").unwrap();
    expect(
        &env,
        &["migrate", "--migrations", &d, "up"],
        2,
        &["V4__z.sql:2: statement 2 is refused", "VACUUM"],
    );
}
