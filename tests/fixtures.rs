//! Fixtures: list, show, check, deploy, status, `tenant create --fixture`, and bad input.

mod common;

use std::fs;
use std::path::Path;

use common::{fixture, snapshot, Env};

/// `base` creates a table; `people` (depends on base) loads CSV and JSONL rows into it.
fn people_fixtures(env: &Env) {
    fixture(
        env,
        "base",
        "name = \"base\"\nversion = \"1.0\"\ndescription = \"people table\"\nfiles = [\"schema.sql\"]\n",
        &[(
            "schema.sql",
            b"-- the table\nCREATE TABLE people (\n  id TEXT PRIMARY KEY NOT NULL DEFAULT (monk_uuid()),\n  name TEXT NOT NULL UNIQUE,\n  age INTEGER,\n  score REAL\n);\nINSERT INTO models (id, model_name, status) VALUES (monk_uuid(), 'people', 'active');\n",
        )],
    );
    fixture(
        env,
        "people",
        "name = \"people\"\nversion = \"2\"\ndepends_on = [\"base\"]\nfiles = [\"people.csv\", \"people.jsonl\"]\n",
        &[
            (
                "people.csv",
                b"name,age,score\n\"Smith, Ann\",42,1.5\nBob,,\n\"multi\nline\",7,2\n",
            ),
            (
                "people.jsonl",
                b"{\"name\":\"Jo\",\"age\":3,\"score\":null}\n",
            ),
        ],
    );
}

fn count(env: &Env, tenant: &str, sql: &str) -> i64 {
    env.open(&env.tenant_file(tenant))
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn list_and_show_describe_builtin_and_directory_fixtures() {
    let env = Env::new();
    people_fixtures(&env);
    let list = env.json(&["fixture", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["system", "base", "people"]);
    assert_eq!(list[0]["source"], "built-in");
    assert_eq!(list[2]["depends_on"][0], "base");
    let show = env.json(&["fixture", "show", "people"]);
    assert_eq!(show["version"], "2");
    assert_eq!(show["tables"][0], "people");
    assert_eq!(show["file_details"][0]["items"], 3);
    // The flag wins over the default directory.
    let other = env.root().join("elsewhere");
    fs::create_dir_all(&other).unwrap();
    let list = env.json(&["fixture", "list", "--fixtures", other.to_str().unwrap()]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    env.fails(&["fixture", "show", "nosuch"], 3);
}

#[test]
fn deploy_resolves_dependencies_types_values_and_is_idempotent() {
    let env = Env::new();
    people_fixtures(&env);
    env.ok(&["tenant", "create", "acme", "beta"]);
    // Several tenants as a comma list, as every --tenant takes them.
    let out = env.json(&["fixture", "deploy", "people", "--tenant", "acme,beta"]);
    assert_eq!(out["succeeded"], 2);
    let applied: Vec<&str> = out["results"][0]["result"]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["fixture"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["base", "people"]);
    assert_eq!(count(&env, "acme", "SELECT count(*) FROM people"), 4);
    // Types follow the declared columns; an unquoted empty field is NULL.
    assert_eq!(
        count(
            &env,
            "acme",
            "SELECT age FROM people WHERE name = 'Smith, Ann'"
        ),
        42
    );
    assert_eq!(
        count(
            &env,
            "acme",
            "SELECT typeof(score) = 'real' FROM people WHERE name = 'multi\nline'"
        ),
        1
    );
    assert_eq!(
        count(
            &env,
            "acme",
            "SELECT count(*) FROM people WHERE name = 'Bob' AND age IS NULL"
        ),
        1
    );
    // A created tenant records its `system` fixture first.
    let status = env.json(&["fixture", "status", "--tenant", "acme"]);
    assert_eq!(status[0]["fixture"], "system");
    assert_eq!(status[1]["fixture"], "base");
    assert_eq!(status[1]["version"], "1.0");
    assert_eq!(status[2]["version"], "2");

    // Twice: nothing changes, not even deployed_at.
    let before = snapshot(&env.data().join("db_main"));
    let again = env.json(&["fixture", "deploy", "people", "--all"]);
    assert_eq!(
        again["results"][0]["result"]["applied"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(snapshot(&env.data().join("db_main")), before);
    assert_eq!(env.json(&["fixture", "status", "--tenant", "acme"]), status);
    assert_eq!(count(&env, "acme", "SELECT count(*) FROM people"), 4);
}

#[test]
fn a_failing_fixture_leaves_that_tenant_as_it_was_and_others_go_on() {
    let env = Env::new();
    people_fixtures(&env);
    fixture(
        &env,
        "extra",
        "name = \"extra\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"extra.sql\"]\n",
        &[(
            "extra.sql",
            b"INSERT INTO people (name) VALUES ('Zed');\n\nINSERT INTO people (name)\n  VALUES ('Bob');\n",
        )],
    );
    env.ok(&["tenant", "create", "acme", "beta"]);
    // acme has Bob already, so extra.sql's second statement fails there.
    env.ok(&["fixture", "deploy", "people", "--tenant", "acme"]);
    let out = env.run(&["--format", "json", "fixture", "deploy", "extra", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("extra.sql:3:"), "{stderr}");
    assert!(
        stderr.contains("INSERT INTO people (name) VALUES ('Bob')"),
        "{stderr}"
    );
    // acme: no Zed (the whole fixture rolled back), not recorded.
    assert_eq!(
        count(
            &env,
            "acme",
            "SELECT count(*) FROM people WHERE name = 'Zed'"
        ),
        0
    );
    let st = env.json(&["fixture", "status", "--tenant", "acme"]);
    assert!(st
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["fixture"] != "extra"));
    // beta: base and extra deployed.
    assert_eq!(count(&env, "beta", "SELECT count(*) FROM people"), 2);
    let st = env.json(&["fixture", "status", "--tenant", "beta"]);
    assert_eq!(
        st.as_array().unwrap().len(),
        3,
        "system, base and extra: {st}"
    );
}

#[test]
fn force_redeploys_the_named_fixture_only() {
    let env = Env::new();
    people_fixtures(&env);
    fixture(
        &env,
        "bump",
        "name = \"bump\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"bump.sql\"]\n",
        &[("bump.sql", b"UPDATE people SET age = coalesce(age, 0) + 1;\nINSERT INTO people (name, age) VALUES ('n' || (SELECT count(*) FROM people), 0);\n")],
    );
    env.ok(&["tenant", "create", "acme"]);
    env.ok(&["fixture", "deploy", "bump", "--tenant", "acme"]);
    env.ok(&["fixture", "deploy", "bump", "--tenant", "acme", "--force"]);
    assert_eq!(count(&env, "acme", "SELECT count(*) FROM people"), 2);
}

#[test]
fn tenant_create_with_fixture_deploys_at_creation() {
    let env = Env::new();
    people_fixtures(&env);
    env.ok(&["tenant", "create", "acme", "--fixture", "people"]);
    assert_eq!(count(&env, "acme", "SELECT count(*) FROM people"), 4);
    let st = env.json(&["fixture", "status", "--tenant", "acme"]);
    assert_eq!(
        st.as_array().unwrap().len(),
        3,
        "system and the fixtures: {st}"
    );
    let people = st
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fixture"] == "people")
        .unwrap();
    assert_eq!(people["version"], "2");
    // A broken fixture creates nothing.
    fixture(
        &env,
        "bad",
        "name = \"bad\"\nversion = 1\nfiles = []\n",
        &[],
    );
    let before = snapshot(&env.data());
    env.fails(&["tenant", "create", "beta", "--fixture", "bad"], 2);
    assert_eq!(snapshot(&env.data()), before);
}

#[test]
fn check_reports_failing_statements_and_unknown_columns_and_writes_nothing() {
    let env = Env::new();
    people_fixtures(&env);
    fixture(
        &env,
        "broken",
        "name = \"broken\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"a.sql\", \"people.csv\"]\n",
        &[
            ("a.sql", b"INSERT INTO people (name) VALUES ('ok');\n\nSELEC 1;\nINSERT INTO nosuch VALUES (1);\n"),
            ("people.csv", b"name,height\nx,1\n"),
        ],
    );
    let out = env.run(&["--format", "json", "fixture", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msgs: Vec<String> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(
        msgs[0].contains("a.sql:3:") && msgs[0].contains("SELEC"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains("a.sql:4:") && msgs[1].contains("nosuch"),
        "{msgs:?}"
    );
    assert!(
        msgs[2].contains("people.csv:1:") && msgs[2].contains("height"),
        "{msgs:?}"
    );
    // Good fixtures pass; no data directory was created.
    env.ok(&["fixture", "check", "people"]);
    assert!(!env.data().exists());
}

/// A bad-input case: fixture name, manifest, files, and what the error must say.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static [u8])>,
    &'static str,
);

/// Every bad input: exit code 2 (3 for an unknown fixture), the file and line named, nothing
/// written to the data directory.
#[test]
fn bad_input_is_refused_with_file_and_line_and_changes_nothing() {
    let env = Env::new();
    people_fixtures(&env);
    env.ok(&["tenant", "create", "acme"]);
    let cases: Vec<Case> = vec![
        (
            "toml",
            "name = \"toml\"\nversion = \"1\"\nfiles = [\"a.sql\"\n",
            vec![("a.sql", b"SELECT 1;")],
            "toml/fixture.toml:3:",
        ),
        (
            "missing",
            "name = \"missing\"\nversion = \"1\"\nfiles = [\n  \"a.sql\",\n  \"gone.sql\",\n]\n",
            vec![("a.sql", b"SELECT 1;")],
            "missing/fixture.toml:5:",
        ),
        (
            "wide",
            "name = \"wide\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"people.csv\"]\n",
            vec![("people.csv", b"name,age\nA,1\nB,2,3\n")],
            "wide/people.csv:3:",
        ),
        (
            "internal",
            "name = \"internal\"\nversion = \"1\"\nfiles = [\n  \"sqlite_sequence.csv\",\n]\n",
            vec![("sqlite_sequence.csv", b"name,seq\nusers,99\n")],
            "internal/fixture.toml:4: 'sqlite_sequence.csv': a data file may not fill 'sqlite_sequence'",
        ),
        (
            "escape",
            "name = \"escape\"\nversion = \"1\"\nfiles = [\"../base/schema.sql\"]\n",
            vec![("a.sql", b"SELECT 1;")],
            "escape/fixture.toml:3: '../base/schema.sql' is not a plain file name",
        ),
        (
            "utf",
            "name = \"utf\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
            vec![("a.sql", b"SELECT 1;\nSELECT '\xff\xfe';\n")],
            "utf/a.sql:2:",
        ),
        (
            "cyca",
            "name = \"cyca\"\nversion = \"1\"\ndepends_on = [\"cycb\"]\nfiles = [\"a.sql\"]\n",
            vec![("a.sql", b"SELECT 1;")],
            "cycb/fixture.toml:3: dependency cycle: cyca -> cycb -> cyca",
        ),
        (
            "badnum",
            "name = \"badnum\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"people.csv\"]\n",
            vec![("people.csv", b"name,age\nA,1\nB,2x\n")],
            "badnum/people.csv:3: column 2 ('age', INTEGER): '2x' is not an integer",
        ),
    ];
    fixture(
        &env,
        "cycb",
        "name = \"cycb\"\nversion = \"1\"\ndepends_on = [\"cyca\"]\nfiles = [\"a.sql\"]\n",
        &[("a.sql", b"SELECT 1;")],
    );
    for (name, manifest, files, expected) in &cases {
        fixture(&env, name, manifest, files);
        let before = snapshot(&env.data());
        let err = env.fails(&["fixture", "deploy", name, "--tenant", "acme"], 2);
        assert!(err.contains(expected), "{name}: {err}");
        assert_eq!(
            snapshot(&env.data()),
            before,
            "{name} changed the data directory"
        );
        let err = env.fails(&["tenant", "create", "beta", "--fixture", name], 2);
        assert!(err.contains(expected), "{name}: {err}");
        assert_eq!(
            snapshot(&env.data()),
            before,
            "{name} changed the data directory"
        );
    }
    assert_eq!(
        count(
            &env,
            "acme",
            "SELECT count(*) FROM sqlite_master WHERE name = 'people'"
        ),
        0
    );
    // Names that are not plain never reach a path.
    let before = snapshot(&env.data());
    for args in [
        vec!["fixture", "deploy", "../x", "--tenant", "acme"],
        vec!["fixture", "show", "../x"],
        vec!["fixture", "check", "a/b"],
        vec!["template", "build", "../x"],
        vec!["tenant", "create", "beta", "--template", "../x"],
    ] {
        let err = env.fails(&args, 2);
        assert!(err.contains("is not valid"), "{args:?}: {err}");
    }
    env.fails(&["fixture", "deploy", "nosuch", "--tenant", "acme"], 3);
    env.fails(&["fixture", "deploy", "people", "--tenant", "nosuch"], 3);
    assert_eq!(snapshot(&env.data()), before);
}

#[test]
fn check_reports_cycles_and_missing_dependencies() {
    let env = Env::new();
    people_fixtures(&env);
    for (name, dep) in [("cyca", "cycb"), ("cycb", "cyca"), ("orphan", "nosuch")] {
        fixture(
            &env,
            name,
            &format!("name = \"{name}\"\nversion = \"1\"\ndepends_on = [\"{dep}\"]\nfiles = [\"a.sql\"]\n"),
            &[("a.sql", b"SELECT 1;")],
        );
    }
    let out = env.run(&["--format", "json", "fixture", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report["problems"].to_string();
    assert!(
        text.contains("dependency cycle: cyca -> cycb -> cyca"),
        "{text}"
    );
    assert!(
        text.contains("nosuch") && text.contains("depends_on of 'orphan'"),
        "{text}"
    );
    // The sound fixtures were still checked.
    let checked = report["checked"].to_string();
    assert!(checked.contains("people"), "{checked}");
}

#[test]
fn deploy_without_an_infra_database_creates_nothing() {
    let env = Env::new();
    people_fixtures(&env);
    env.fails(&["fixture", "deploy", "people", "--tenant", "acme"], 3);
    env.fails(&["fixture", "status", "--tenant", "acme"], 3);
    assert!(!env.data().exists());
}

#[test]
fn a_directory_may_not_shadow_the_system_fixture() {
    let env = Env::new();
    fixture(
        &env,
        "system",
        "name = \"system\"\nversion = \"9\"\nfiles = [\"a.sql\"]\n",
        &[("a.sql", b"SELECT 1;")],
    );
    let err = env.fails(&["fixture", "list"], 2);
    assert!(err.contains("shadow the built-in system fixture"), "{err}");
    assert!(Path::new(&env.root().join("fixtures/system/fixture.toml")).exists());
}

#[test]
fn an_api_created_data_directory_is_adopted_and_gets_fixture_versions() {
    let env = Env::new();
    people_fixtures(&env);
    let api = env.data().join("monk");
    fs::create_dir_all(&api).unwrap();
    for e in
        fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/monk-api-6.2")).unwrap()
    {
        let e = e.unwrap();
        fs::copy(e.path(), api.join(e.file_name())).unwrap();
    }
    // Reading works before the infra database has the version column.
    assert_eq!(
        env.json(&["fixture", "status", "--tenant", "acme"]),
        serde_json::json!([])
    );
    let out = env.json(&["fixture", "deploy", "people", "--tenant", "acme"]);
    assert_eq!(out["succeeded"], 1);
    let st = env.json(&["fixture", "status", "--tenant", "acme"]);
    assert_eq!(st[1]["fixture"], "people");
    assert_eq!(st[1]["version"], "2");
    let conn = env.open(&api.join("ns_tenant_acme.db"));
    let n: i64 = conn
        .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    // The API's own columns are untouched; the new one is added beside them.
    let infra = env.open(&api.join("public.db"));
    let cols: Vec<String> = infra
        .prepare("SELECT name FROM pragma_table_info('tenant_fixtures')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        cols,
        ["tenant_id", "fixture_name", "deployed_at", "version"]
    );
}

#[test]
fn a_fixture_cannot_attach_files_or_end_its_transaction() {
    let env = Env::new();
    people_fixtures(&env);
    env.ok(&["tenant", "create", "acme"]);
    let outside = env.root().join("outside.db");
    let attach = format!(
        "INSERT INTO people (name) VALUES ('x');\nATTACH DATABASE '{}' AS o;\n",
        outside.display()
    );
    fixture(
        &env,
        "attach",
        "name = \"attach\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"a.sql\"]\n",
        &[("a.sql", attach.as_bytes())],
    );
    // One forbidden statement per fixture, each on line 2, so that each one is reached.
    let forbidden: [(&str, &str); 5] = [
        ("commit", "COMMIT;"),
        ("journal", "PRAGMA journal_mode = DELETE;"),
        ("nochecks", "PRAGMA ignore_check_constraints = ON;"),
        ("stamp", "PRAGMA user_version = 42;"),
        ("deferfk", "PRAGMA defer_foreign_keys = ON;"),
    ];
    for (name, stmt) in forbidden {
        let sql = format!("INSERT INTO people (name) VALUES ('x');\n{stmt}\n");
        let manifest = format!(
            "name = \"{name}\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"a.sql\"]\n"
        );
        fixture(&env, name, &manifest, &[("a.sql", sql.as_bytes())]);
    }
    let before = snapshot(&env.data());
    for name in ["attach"].into_iter().chain(forbidden.iter().map(|f| f.0)) {
        // Refused by the guard on a scratch copy before any tenant is touched.
        let err = env.fails(&["fixture", "deploy", name, "--tenant", "acme"], 2);
        assert!(
            err.contains("a.sql:2: statement 2 is refused"),
            "{name}: {err}"
        );
        let out = env.run(&["--format", "json", "fixture", "check", name]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            report["problems"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("a.sql:2: statement 2 is refused")),
            "{name}: {report}"
        );
    }
    assert_eq!(snapshot(&env.data()), before);
    let conn = env.open(&env.tenant_file("acme"));
    let uv: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_ne!(uv, 42);
    drop(conn);
    assert!(!outside.exists());
    // Nothing of either fixture stayed: not even the table of their dependency.
    assert_eq!(
        count(
            &env,
            "acme",
            "SELECT count(*) FROM sqlite_master WHERE name = 'people'"
        ),
        0
    );
    // Reading the schema and checking the file are allowed.
    fixture(
        &env,
        "introspect",
        "name = \"introspect\"\nversion = \"1\"\ndepends_on = [\"base\"]\nfiles = [\"a.sql\"]\n",
        &[(
            "a.sql",
            b"PRAGMA table_info(people);\nPRAGMA foreign_key_check;\nPRAGMA user_version;\nPRAGMA integrity_check;\n",
        )],
    );
    env.ok(&["fixture", "check", "introspect"]);
    env.ok(&["fixture", "deploy", "introspect", "--tenant", "acme"]);
}

#[test]
fn concurrent_deploys_to_one_tenant_apply_a_fixture_once() {
    let env = Env::new();
    people_fixtures(&env);
    env.ok(&["tenant", "create", "acme"]);
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("monkctl"))
                .current_dir(env.root())
                .env_remove("MONK_FIXTURES_DIR")
                .args(["--data-dir", env.data().to_str().unwrap()])
                .args(["fixture", "deploy", "people", "--tenant", "acme"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(count(&env, "acme", "SELECT count(*) FROM people"), 4);
}

#[test]
fn a_fixture_leaving_a_deferred_foreign_key_broken_is_named_and_changes_nothing() {
    let env = Env::new();
    fixture(
        &env,
        "dangling",
        "name = \"dangling\"\nversion = \"1\"\nfiles = [\"a.sql\"]\n",
        &[(
            "a.sql",
            b"CREATE TABLE parent (id INTEGER PRIMARY KEY);\nCREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO child VALUES (7, 99);\n",
        )],
    );
    // check finds what COMMIT would refuse, and names the row.
    let out = env.run(&["--format", "json", "fixture", "check", "dangling"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = report["problems"][0]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("table 'child' rowid 7") && msg.contains("'parent'"),
        "{report}"
    );

    env.ok(&["tenant", "create", "acme", "beta"]);
    let before = snapshot(&env.data());
    // One tenant: exit 1 (as for a failing statement), naming the fixture and the table.
    let err = env.fails(&["fixture", "deploy", "dangling", "--tenant", "acme"], 1);
    assert!(
        err.contains("fixture 'dangling'") && err.contains("table 'child'"),
        "{err}"
    );
    // Several tenants, all failing the same way: still 1, each tenant named, the shared error
    // printed once.
    let err = env.fails(
        &[
            "fixture", "deploy", "dangling", "--tenant", "acme", "--tenant", "beta",
        ],
        1,
    );
    assert!(
        err.contains("acme: fixture 'dangling'")
            && err.contains("the same error as acme for 1 more tenant: beta"),
        "{err}"
    );
    assert_eq!(snapshot(&env.data()), before);
    assert_eq!(
        count(
            &env,
            "acme",
            "SELECT count(*) FROM sqlite_master WHERE name = 'child'"
        ),
        0
    );

    // Built with the tenant or a template: the same error, naming the tenant or template and never
    // the temporary file.
    let err = env.fails(&["tenant", "create", "gamma", "--fixture", "dangling"], 1);
    assert!(
        err.contains("fixture 'dangling'") && err.contains("gamma") && !err.contains(".monktmp-"),
        "{err}"
    );
    let err = env.fails(&["template", "build", "tpl", "--fixture", "dangling"], 1);
    assert!(
        err.contains("fixture 'dangling'") && !err.contains(".monktmp-"),
        "{err}"
    );
    env.fails(&["tenant", "show", "gamma"], 3);
    assert!(!env.data().join("templates/tpl.db").exists());
}

/// Checking no fixture is not a pass: a CI job pointed at a missing or empty directory fails.
#[test]
fn fixture_check_of_nothing_fails_instead_of_passing() {
    let env = Env::new();
    let e = env.fails(&["fixture", "check"], 3);
    assert!(
        e.contains("no fixtures directory") && e.contains("--fixtures"),
        "{e}"
    );
    std::fs::create_dir_all(env.root().join("fixtures")).unwrap();
    let e = env.fails(&["fixture", "check"], 3);
    assert!(e.contains("holds no fixture"), "{e}");
}

/// Ctrl-C during a deploy over several tenants: the tenant in progress finishes (applied and
/// recorded), no other starts, the results say so, exit 130.
#[test]
fn ctrl_c_finishes_the_tenant_in_progress_and_starts_no_other() {
    let env = Env::new();
    people_fixtures(&env);
    env.ok(&["tenant", "create", "acme", "beta", "gamma"]);
    let out = env.interrupted_at(
        "fixture.deploy.applied",
        &[
            "--format",
            "json",
            "fixture",
            "deploy",
            "people",
            "--tenant",
            "acme,beta,gamma",
        ],
    );
    assert_eq!(out.status.code(), Some(130));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 1, "{v}");
    assert_eq!(v["results"][0]["tenant"], "acme");
    assert_eq!(v["results"][0]["ok"], true, "{v}");
    for r in &v["results"].as_array().unwrap()[1..] {
        assert_eq!(r["exit_code"], 130, "{v}");
        assert!(r["error"].as_str().unwrap().contains("not started"), "{v}");
    }
    // What was done is whole: acme holds and records the fixture, beta nothing.
    assert_eq!(count(&env, "acme", "SELECT count(*) FROM people"), 4);
    let status = env.json(&["fixture", "status", "--tenant", "beta"]);
    assert!(
        !status.to_string().contains("people"),
        "beta untouched: {status}"
    );
}
