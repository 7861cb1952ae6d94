//! Crash safety and concurrency of `tenant create`: processes killed with SIGKILL at each step
//! and at random moments, and several processes creating at once.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Env;

fn spawn(env: &Env, args: &[&str], pause_at: Option<&str>) -> Child {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("monkctl"));
    c.current_dir(env.root())
        .env_remove("DATABASE_URL")
        .env_remove("MONK_DATA_DIR")
        .arg("--data-dir")
        .arg(env.data())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(p) = pause_at {
        c.env("MONKCTL_PAUSE_AT", p);
    }
    c.spawn().expect("spawn monkctl")
}

/// Every registered tenant is whole: its file exists where the row says, passes an integrity
/// check and holds the system tables and the owner.
fn assert_registry_whole(env: &Env) -> Vec<String> {
    let infra = env.open(&env.infra());
    let rows: Vec<(String, String, String, String)> = infra
        .prepare("SELECT name, database, schema, owner_id FROM tenants WHERE deleted_at IS NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, db, schema, owner) in &rows {
        let p = env.data().join(db).join(format!("{schema}.db"));
        assert!(p.exists(), "tenant {name} has a row but no file");
        let c = env.open(&p);
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "tenant {name}");
        let n: i64 = c
            .query_row("SELECT count(*) FROM fields", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 68, "tenant {name} is incomplete");
        let owner_rows: i64 = c
            .query_row("SELECT count(*) FROM users WHERE id = ?1", [owner], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(owner_rows, 1, "tenant {name} lacks its owner");
    }
    rows.into_iter().map(|r| r.0).collect()
}

fn temp_leftovers(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".monktmp-"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn killed_at_each_step_of_create_leaves_nothing_that_blocks_a_retry() {
    for point in ["tenant.built", "tenant.placed", "tenant.inserted"] {
        let env = Env::new();
        env.ok(&["tenant", "create", "bystander", "--owner", "keeper"]);
        let bystander = std::fs::read(env.tenant_file("bystander")).unwrap();

        pause_and_kill(
            &env,
            &["tenant", "create", "victim", "--owner", "admin"],
            point,
        );

        // The killed create left no registered tenant and never a half one.
        let names = assert_registry_whole(&env);
        assert_eq!(names, vec!["bystander"], "{point}");
        assert_eq!(
            std::fs::read(env.tenant_file("bystander")).unwrap(),
            bystander
        );

        // A retry succeeds; a file the killed run had already placed is moved aside, not reused.
        let v = env.json(&["tenant", "create", "victim", "--owner", "admin"]);
        assert_eq!(v["succeeded"], 1, "{point}: {v}");
        let moved = v["results"][0]["result"]["moved_aside"]
            .as_array()
            .unwrap()
            .len();
        if point == "tenant.built" {
            assert_eq!(moved, 0, "{point}");
        } else {
            assert_eq!(moved, 1, "{point}");
        }
        let mut names = assert_registry_whole(&env);
        names.sort();
        assert_eq!(names, vec!["bystander", "victim"], "{point}");
    }
}

#[test]
fn random_kills_during_a_batch_never_half_create() {
    let env = Env::new();
    let all: Vec<String> = (0..40).map(|i| format!("batch_{i:02}")).collect();
    let mut delay = 3u64;
    for round in 0..6 {
        let mut args = vec!["tenant", "create"];
        let existing: Vec<String> = assert_registry_whole_if_any(&env);
        let todo: Vec<&String> = all.iter().filter(|n| !existing.contains(n)).collect();
        if todo.is_empty() {
            break;
        }
        args.extend(todo.iter().map(|s| s.as_str()));
        let mut child = spawn(&env, &args, None);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();
        delay = delay * 2 + round;
        assert_registry_whole_if_any(&env);
    }
    // Whatever the kills left, creating the remaining names succeeds and completes the set.
    let existing = assert_registry_whole_if_any(&env);
    let rest: Vec<&str> = all
        .iter()
        .filter(|n| !existing.contains(n))
        .map(String::as_str)
        .collect();
    if !rest.is_empty() {
        let mut args = vec!["tenant", "create"];
        args.extend(rest);
        env.ok(&args);
    }
    let mut names = assert_registry_whole(&env);
    names.sort();
    assert_eq!(names, all);
}

fn assert_registry_whole_if_any(env: &Env) -> Vec<String> {
    let has_registry = env.infra().exists()
        && env
            .open(&env.infra())
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='tenants'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1;
    if has_registry {
        assert_registry_whole(env)
    } else {
        Vec::new()
    }
}

#[test]
fn concurrent_creators_lose_nothing_and_never_double_create() {
    let env = Env::new();
    env.ok(&["init"]);
    // Six processes, each with 12 names; neighbours share 4 names, so 24 names are contested.
    let plans: Vec<Vec<String>> = (0..6)
        .map(|p| {
            (p * 8..p * 8 + 12)
                .map(|i| format!("conc_{i:03}"))
                .collect()
        })
        .collect();
    let children: Vec<Child> = plans
        .iter()
        .map(|names| {
            let mut args = vec!["--format", "json", "tenant", "create"];
            args.extend(names.iter().map(String::as_str));
            let mut c = Command::new(assert_cmd::cargo::cargo_bin("monkctl"));
            c.current_dir(env.root())
                .env_remove("DATABASE_URL")
                .env_remove("MONK_DATA_DIR")
                .arg("--data-dir")
                .arg(env.data())
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut created_by: HashMap<String, usize> = HashMap::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let code = out.status.code().unwrap();
        assert!(
            code == 0 || code == 8,
            "exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for r in v["results"].as_array().unwrap() {
            if r["ok"] == true {
                *created_by
                    .entry(r["tenant"].as_str().unwrap().to_string())
                    .or_default() += 1;
            } else {
                assert_eq!(r["exit_code"], 4, "only 'already exists' may fail: {r}");
            }
        }
    }
    let mut expected: Vec<String> = plans.concat();
    expected.sort();
    expected.dedup();
    assert_eq!(created_by.len(), expected.len(), "every name was created");
    assert!(
        created_by.values().all(|n| *n == 1),
        "a name was created twice: {created_by:?}"
    );
    let mut names = assert_registry_whole(&env);
    names.sort();
    assert_eq!(names, expected);
    assert_eq!(temp_leftovers(&env.data().join("db_main")), 0);
    assert!(
        !env.data().join("orphans").exists(),
        "nothing was moved aside"
    );
}

#[test]
fn killed_between_delete_commit_and_move_is_finished_by_a_second_delete() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    pause_and_kill(
        &env,
        &["tenant", "delete", "acme", "--yes"],
        "tenant.deleted",
    );
    // The API already refuses the tenant (deleted in the registry); its file is still in place.
    let status: String = env
        .open(&env.infra())
        .query_row("SELECT status FROM tenants WHERE name='acme'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "deleted");
    assert!(env.tenant_file("acme").exists());
    let v = env.json(&["tenant", "delete", "acme", "--yes"]);
    assert!(!env.tenant_file("acme").exists());
    assert_eq!(v["moved"].as_array().unwrap().len(), 1);
}

#[test]
fn killed_after_the_trash_copy_a_second_delete_finishes() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    pause_and_kill(
        &env,
        &["tenant", "delete", "acme", "--yes"],
        "tenant.delete.copied",
    );
    // Both copies exist; the live one is still the truth and nothing was lost.
    assert!(env.tenant_file("acme").exists());
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    assert!(!env.tenant_file("acme").exists());
    let trash: Vec<_> = std::fs::read_dir(env.data().join("trash"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(trash.len(), 1, "{trash:?}");
    let c = env.open(&env.data().join("trash").join(&trash[0]));
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn delete_waits_for_a_writer_and_never_moves_a_file_under_it() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    // A connection of the API holding a write transaction for the whole delete.
    let api = env.open(&env.tenant_file("acme"));
    api.execute_batch(
        "PRAGMA journal_mode=WAL; BEGIN IMMEDIATE; \
         INSERT INTO users (id, name, auth, access) VALUES ('w1', 'writer', 'writer', 'read');",
    )
    .unwrap();
    let err = env.fails(&["tenant", "delete", "acme", "--yes"], 5);
    assert!(err.contains("run `monkctl tenant delete` again"), "{err}");
    // The registry already says deleted (the API refuses the tenant); the file did not move.
    assert!(env.tenant_file("acme").exists());
    api.execute_batch("COMMIT").unwrap();
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    assert!(!env.tenant_file("acme").exists());
    // The connection that was open keeps working on the file it has; the trash copy holds the
    // committed row and stays intact whatever that connection does afterwards.
    api.execute(
        "INSERT INTO users (id, name, auth, access) VALUES ('w2', 'late', 'late', 'read')",
        [],
    )
    .unwrap();
    drop(api);
    let trash = std::fs::read_dir(env.data().join("trash"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let c = env.open(&trash);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM users WHERE auth = 'writer'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    assert!(!env.data().join("db_main/ns_tenant_acme.db-wal").exists());
}

fn pause_and_kill(env: &Env, args: &[&str], point: &str) {
    let mut child = spawn(env, args, Some(point));
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.contains(&format!("paused at {point}")),
        "{point}: {line}"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn killed_at_each_step_of_a_batched_create_leaves_nothing_that_blocks_a_retry() {
    let victims = ["v1", "v2", "v3", "v4", "v5"];
    for point in [
        "tenant.batch.built",
        "tenant.batch.synced",
        "tenant.batch.placed",
    ] {
        for template in [false, true] {
            let env = Env::new();
            env.ok(&["tenant", "create", "bystander", "--owner", "keeper"]);
            let bystander = std::fs::read(env.tenant_file("bystander")).unwrap();
            let mut args = vec!["tenant", "create", "--owner", "admin"];
            if template {
                args.extend(["--template", "system"]);
            }
            args.extend(victims);
            pause_and_kill(&env, &args, point);

            // Nothing of the killed batch is registered; what it linked is claimed by no row.
            assert_eq!(assert_registry_whole(&env), vec!["bystander"], "{point}");
            assert_eq!(
                std::fs::read(env.tenant_file("bystander")).unwrap(),
                bystander
            );
            let linked = victims
                .iter()
                .filter(|v| env.tenant_file(v).exists())
                .count();
            let expected = if point == "tenant.batch.placed" { 5 } else { 0 };
            assert_eq!(linked, expected, "{point}");

            // A retry creates them all, moving aside (never reusing) what the killed run linked.
            let mut retry = vec!["--format", "json"];
            retry.extend(&args);
            let out = env.cmd().args(&retry).output().unwrap();
            assert!(out.status.success(), "{point}: {out:?}");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["succeeded"], 5, "{point}: {v}");
            for r in v["results"].as_array().unwrap() {
                let moved = r["result"]["moved_aside"].as_array().unwrap().len();
                assert_eq!(moved, expected / 5, "{point}: {r}");
            }
            let mut names = assert_registry_whole(&env);
            names.sort();
            assert_eq!(
                names,
                ["bystander", "v1", "v2", "v3", "v4", "v5"],
                "{point}"
            );
        }
    }
}

#[test]
fn a_batch_goes_on_past_tenants_that_fail_at_any_phase() {
    let env = Env::new();
    env.ok(&["tenant", "create", "taken"]);
    // The registry refuses one row after its file was linked: that file must go again.
    env.open(&env.infra())
        .execute_batch(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON tenants WHEN NEW.name = 'refused'
             BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;",
        )
        .unwrap();
    // A file left at a final path by an interrupted run (no row claims it) is moved aside.
    std::fs::write(env.tenant_file("stale"), b"half a file").unwrap();

    let out = env
        .cmd()
        .args([
            "--format", "json", "tenant", "create", "aa", "taken", "refused", "stale", "bb",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    let by_name = |n: &str| results.iter().find(|r| r["tenant"] == n).unwrap().clone();
    assert_eq!(v["succeeded"], 3, "{v}");
    assert_eq!(by_name("taken")["exit_code"], 4);
    // A constraint on the row is reported as the name being taken (as for one tenant).
    assert_eq!(by_name("refused")["ok"], false);
    assert_eq!(by_name("refused")["exit_code"], 4);
    assert_eq!(
        by_name("stale")["result"]["moved_aside"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Results come in the order the names were given.
    let order: Vec<&str> = results
        .iter()
        .map(|r| r["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["aa", "taken", "refused", "stale", "bb"]);

    assert!(
        !env.tenant_file("refused").exists(),
        "the refused file stays linked"
    );
    assert_eq!(temp_leftovers(&env.data().join("db_main")), 0);
    let mut names = assert_registry_whole(&env);
    names.sort();
    assert_eq!(names, ["aa", "bb", "stale", "taken"]);
    let orphans: Vec<_> = std::fs::read_dir(env.data().join("orphans"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(orphans.len(), 1);
    assert_eq!(std::fs::read(orphans[0].path()).unwrap(), b"half a file");
}

#[test]
fn more_tenants_than_a_batch_are_all_created_whole() {
    let env = Env::new();
    let names: Vec<String> = (0..300).map(|i| format!("many_{i:03}")).collect();
    let mut args = vec![
        "--format",
        "json",
        "tenant",
        "create",
        "--template",
        "system",
    ];
    args.extend(names.iter().map(String::as_str));
    let out = env.cmd().args(&args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 300);
    let mut got = assert_registry_whole(&env);
    got.sort();
    assert_eq!(got, names);
    assert_eq!(temp_leftovers(&env.data().join("db_main")), 0);
    // Creation times follow the order given, across batches too.
    let by_time: Vec<String> = env
        .open(&env.infra())
        .prepare("SELECT name FROM tenants ORDER BY created_at")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(by_time, names);
    // Each clone is a WAL database (header bytes 18-19 = 2) with no `-wal` beside it.
    let head = std::fs::read(env.tenant_file("many_150")).unwrap();
    assert_eq!(&head[18..20], &[2, 2]);
    assert!(!env
        .data()
        .join("db_main/ns_tenant_many_150.db-wal")
        .exists());
    // Each clone got its own ids.
    let a = env.open(&env.tenant_file("many_000"));
    let b = env.open(&env.tenant_file("many_299"));
    let id = |c: &rusqlite::Connection| -> String {
        c.query_row(
            "SELECT id FROM models ORDER BY model_name LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_ne!(id(&a), id(&b));
}

/// The fixture `items` (a table and a row), for the deploy kill tests.
fn items_fixture(env: &Env) {
    common::fixture(
        env,
        "items",
        "name = \"items\"\nversion = \"3\"\nfiles = [\"items.sql\"]\n",
        &[(
            "items.sql",
            b"CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL);\nINSERT INTO items (label) VALUES ('first');\n",
        )],
    );
}

/// The registry's fixtures of a tenant besides `system` (recorded at creation; the tenant file
/// records only the fixtures deployed on top of it).
fn registry_fixtures(env: &Env, tenant: &str) -> Vec<(String, Option<String>)> {
    env.open(&env.infra())
        .prepare(
            "SELECT f.fixture_name, f.version FROM tenant_fixtures f JOIN tenants t ON t.id = f.tenant_id \
             WHERE t.name = ?1 AND f.fixture_name <> 'system' ORDER BY f.fixture_name",
        )
        .unwrap()
        .query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn tenant_fixtures(env: &Env, tenant: &str) -> Vec<(String, Option<String>)> {
    env.open(&env.tenant_file(tenant))
        .prepare("SELECT name, version FROM _monkctl_fixtures ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn deploy_killed_between_the_tenant_and_registry_commits_is_finished_by_a_retry() {
    let env = Env::new();
    items_fixture(&env);
    env.ok(&["tenant", "create", "acme"]);
    pause_and_kill(
        &env,
        &["fixture", "deploy", "items", "--tenant", "acme"],
        "fixture.deploy.applied",
    );
    // The tenant holds the fixture and says so in the same transaction; the registry lags.
    let items = vec![("items".to_string(), Some("3".to_string()))];
    assert_eq!(tenant_fixtures(&env, "acme"), items);
    assert_eq!(registry_fixtures(&env, "acme"), vec![]);
    // The retry sees the fixture recorded in the tenant, applies nothing and fills the registry.
    let v = env.json(&["fixture", "deploy", "items", "--tenant", "acme"]);
    assert_eq!(v["succeeded"], 1, "{v}");
    let r = &v["results"][0]["result"];
    assert_eq!(r["applied"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(r["recorded"], serde_json::json!(["items"]), "{v}");
    let n: i64 = env
        .open(&env.tenant_file("acme"))
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the fixture ran once");
    assert_eq!(registry_fixtures(&env, "acme"), items);
    // And a third deploy is a no-op.
    let v = env.json(&["fixture", "deploy", "items", "--tenant", "acme"]);
    assert_eq!(
        v["results"][0]["result"]["skipped"],
        serde_json::json!(["items"])
    );
    assert_eq!(v["results"][0]["result"]["recorded"], serde_json::json!([]));
    let out = env.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn doctor_finds_and_repairs_a_deploy_killed_between_its_commits() {
    let env = Env::new();
    items_fixture(&env);
    env.ok(&["tenant", "create", "acme"]);
    pause_and_kill(
        &env,
        &["fixture", "deploy", "items", "--tenant", "acme"],
        "fixture.deploy.applied",
    );
    let out = env.run(&["--format", "json", "doctor"]);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "fixture_not_in_registry")
        .collect();
    assert_eq!(found.len(), 1, "{v:#}");
    assert_eq!(found[0]["tenant"], "acme");
    assert_eq!(found[0]["repairable"], true);

    let v = env.json(&["doctor", "--repair"]);
    assert_eq!(v["status"], "healthy", "{v:#}");
    assert_eq!(
        registry_fixtures(&env, "acme"),
        vec![("items".to_string(), Some("3".to_string()))]
    );
    // The deploy now has nothing to do.
    let v = env.json(&["fixture", "deploy", "items", "--tenant", "acme"]);
    assert_eq!(
        v["results"][0]["result"]["skipped"],
        serde_json::json!(["items"])
    );
}

#[test]
fn doctor_repairs_a_registry_row_for_a_fixture_the_tenant_does_not_hold() {
    let env = Env::new();
    items_fixture(&env);
    common::fixture(
        &env,
        "more",
        "name = \"more\"\nversion = \"1\"\nfiles = [\"more.sql\"]\n",
        &[(
            "more.sql",
            b"CREATE TABLE more_rows (id INTEGER PRIMARY KEY);\n",
        )],
    );
    env.ok(&["tenant", "create", "acme"]);
    env.ok(&["fixture", "deploy", "items", "--tenant", "acme"]);
    // A registry row that the tenant's content does not back (a hand edit, an older backup).
    env.open(&env.infra())
        .execute(
            "INSERT INTO tenant_fixtures (tenant_id, fixture_name) SELECT id, 'more' FROM tenants WHERE name = 'acme'",
            [],
        )
        .unwrap();
    let out = env.run(&["--format", "json", "doctor"]);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "fixture_not_in_tenant" && f["tenant"] == "acme"),
        "{v:#}"
    );
    let v = env.json(&["doctor", "--repair"]);
    assert_eq!(v["status"], "healthy", "{v:#}");
    // The registry follows the tenant; a deploy then applies the fixture for real.
    let v = env.json(&["fixture", "deploy", "more", "--tenant", "acme"]);
    assert_eq!(v["results"][0]["result"]["applied"][0]["fixture"], "more");
    assert_eq!(
        tenant_fixtures(&env, "acme"),
        vec![
            ("items".to_string(), Some("3".to_string())),
            ("more".to_string(), Some("1".to_string()))
        ]
    );
}

#[test]
fn undo_killed_between_tenants_is_finished_by_a_second_undo() {
    let env = Env::new();
    let tenants = ["acme", "beta", "gamma"];
    let mut args = vec!["tenant", "create"];
    args.extend(tenants);
    env.ok(&args);
    for t in tenants {
        env.open(&env.tenant_file(t))
            .execute_batch(
                "INSERT INTO users (id, name, auth, access) VALUES ('u-old', 'old', 'old', 'read')",
            )
            .unwrap();
    }
    let before: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| common::table_rows(&env.open(&env.tenant_file(t))))
        .collect();
    let mig = env.root().join("mig");
    std::fs::create_dir_all(&mig).unwrap();
    std::fs::write(
        mig.join("V2__drop_old.sql"),
        "DELETE FROM users WHERE name = 'old';\n",
    )
    .unwrap();
    let mig = mig.display().to_string();
    env.ok(&[
        "migrate",
        "--migrations",
        &mig,
        "up",
        "--allow-destructive",
        "--yes",
    ]);
    // Killed after the first tenant was restored, before the run's record was written.
    pause_and_kill(&env, &["migrate", "undo", "--yes"], "migrate.undo.restored");
    let restored = tenants
        .iter()
        .zip(&before)
        .filter(|(t, b)| common::table_rows(&env.open(&env.tenant_file(t))) == **b)
        .count();
    assert_eq!(restored, 1, "the killed undo restored one tenant");
    let list = env.json(&["migrate", "snapshots", "list"]);
    assert_eq!(list[0]["to_restore"], 3);

    // Run again: the tenant already restored counts as restored, the others are restored now.
    let v = env.json(&["migrate", "undo", "--yes"]);
    assert_eq!(v["tenants"]["succeeded"], 3, "{v:#}");
    assert_eq!(v["tenants"]["failed"], 0, "{v:#}");
    let already = v["tenants"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["result"]["already"] == true)
        .count();
    assert_eq!(already, 1, "{v:#}");
    for (t, b) in tenants.iter().zip(&before) {
        assert_eq!(
            &common::table_rows(&env.open(&env.tenant_file(t))),
            b,
            "{t} is back as before the run"
        );
    }
    // A third undo has nothing left to undo.
    let err = env.fails(&["migrate", "undo", "--yes"], 3);
    assert!(err.contains("to undo"), "{err}");
    let list = env.json(&["migrate", "snapshots", "list"]);
    assert_eq!(list[0]["undone"], true);
    assert_eq!(list[0]["to_restore"], 0);
}

#[test]
fn extract_killed_leaves_a_temporary_that_the_next_extract_to_that_directory_removes() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "beta"]);
    let out = env.root().join("archives");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.to_str().unwrap();
    pause_and_kill(&env, &["extract", "acme", "-o", o], "extract.copied");
    // The killed run left its temporary (outside the data directory), and no archive.
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let left = names(&out);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains(".monktmp-"), "{left:?}");
    // The next extract to that directory removes it; the directory holds exactly the archives.
    env.ok(&["extract", "acme", "beta", "-o", o]);
    let now = names(&out);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter()
            .all(|n| n.ends_with(".monk.db") && !n.contains(".monktmp-")),
        "{now:?}"
    );
    for n in &now {
        env.ok(&["archive", "verify", out.join(n).to_str().unwrap()]);
    }
}

#[test]
fn random_kills_during_a_deploy_never_block_a_retry() {
    let env = Env::new();
    items_fixture(&env);
    let tenants: Vec<String> = (0..8).map(|i| format!("dep_{i}")).collect();
    let mut args = vec!["tenant", "create"];
    args.extend(tenants.iter().map(String::as_str));
    env.ok(&args);
    let mut delay = 5u64;
    for round in 0..5 {
        let mut child = spawn(&env, &["fixture", "deploy", "items", "--all"], None);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();
        delay = delay * 2 + round;
    }
    // Whatever the kills left, one more deploy succeeds and every tenant holds the fixture once,
    // recorded alike in its file and in the registry.
    let v = env.json(&["fixture", "deploy", "items", "--all"]);
    assert_eq!(v["succeeded"], 8, "{v:#}");
    for t in &tenants {
        let n: i64 = env
            .open(&env.tenant_file(t))
            .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "{t}");
        let items = vec![("items".to_string(), Some("3".to_string()))];
        assert_eq!(tenant_fixtures(&env, t), items, "{t}");
        assert_eq!(registry_fixtures(&env, t), items, "{t}");
    }
    let out = env.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn every_way_a_fixture_reaches_a_tenant_records_it_in_the_file_as_in_the_registry() {
    let env = Env::new();
    items_fixture(&env);
    common::fixture(
        &env,
        "more",
        "name = \"more\"\nversion = \"1\"\nfiles = [\"more.sql\"]\n",
        &[(
            "more.sql",
            b"CREATE TABLE more_rows (id INTEGER PRIMARY KEY);\n",
        )],
    );
    env.ok(&["tenant", "create", "direct", "--fixture", "items"]);
    env.ok(&["template", "build", "tpl", "--fixture", "items"]);
    env.ok(&["tenant", "create", "cloned", "--template", "tpl"]);
    env.ok(&[
        "tenant",
        "create",
        "extra",
        "--template",
        "tpl",
        "--fixture",
        "more",
    ]);
    env.ok(&["fixture", "deploy", "more", "--tenant", "direct"]);
    let without_system = |v: Vec<(String, Option<String>)>| -> Vec<(String, Option<String>)> {
        v.into_iter().filter(|(n, _)| n != "system").collect()
    };
    for (t, want) in [
        ("direct", vec!["items", "more"]),
        ("cloned", vec!["items"]),
        ("extra", vec!["items", "more"]),
    ] {
        let in_file = tenant_fixtures(&env, t);
        let names: Vec<&str> = in_file.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, want, "{t}");
        assert_eq!(without_system(registry_fixtures(&env, t)), in_file, "{t}");
    }
    // A tenant with nothing but `system` has no record table (the API's schema, unchanged).
    env.ok(&["tenant", "create", "plain"]);
    let has: i64 = env
        .open(&env.tenant_file("plain"))
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = '_monkctl_fixtures'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has, 0);
    let out = env.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
