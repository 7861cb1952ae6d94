//! Templates: build, list, show, rm, and cloning tenants from them.

mod common;

use std::fs;

use common::{fixture, snapshot, Env};
use rusqlite::types::Value;

fn seed(env: &Env) {
    fixture(
        env,
        "shop",
        "name = \"shop\"\nversion = \"3\"\nfiles = [\"schema.sql\", \"items.csv\", \"files.sql\", \"trial.sql\"]\n",
        &[
            (
                "schema.sql",
                b"CREATE TABLE items (id TEXT PRIMARY KEY DEFAULT (monk_uuid()), sku TEXT UNIQUE, price REAL, qty INTEGER);\nINSERT INTO models (id, model_name, status) VALUES (monk_uuid(), 'items', 'active');\nINSERT INTO fields (id, model_name, field_name, type) VALUES (monk_uuid(), 'items', 'sku', 'text');\n",
            ),
            ("items.csv", b"sku,price,qty\na1,1.5,3\nb2,2,\n"),
            (
                "trial.sql",
                b"CREATE TABLE notes (body TEXT);\nINSERT INTO notes VALUES ('keep');\nSAVEPOINT trial;\nINSERT INTO notes VALUES ('undo-me');\nROLLBACK TO trial;\nRELEASE trial;\n",
            ),
            (
                "files.sql",
                b"INSERT INTO fs (id, parent_id, name, path, node_type) SELECT monk_uuid(), id, 'etc', '/etc', 'directory' FROM fs WHERE path = '/';\nINSERT INTO fs (id, parent_id, name, path, node_type) SELECT monk_uuid(), id, 'motd', '/etc/motd', 'file' FROM fs WHERE path = '/etc';\n",
            ),
        ],
    );
}

/// Every row of every table, without ids, references to ids, and timestamps, sorted.
fn content(env: &Env, tenant: &str) -> Vec<(String, Vec<String>)> {
    let conn = env.open(&env.tenant_file(tenant));
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.sort();
    // Ids are fresh per tenant; times differ: when it was made, when a migration (refinery's
    // `applied_on`) or a fixture was recorded in it.
    let skip = [
        "id",
        "parent_id",
        "created_at",
        "updated_at",
        "applied_on",
        "deployed_at",
    ];
    let mut out = Vec::new();
    for t in tables {
        let mut st = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                let mut cells = Vec::new();
                for (i, n) in names.iter().enumerate() {
                    if !skip.contains(&n.as_str()) {
                        cells.push(format!("{n}={:?}", r.get::<_, Value>(i)?));
                    }
                }
                Ok(cells.join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.push((t, rows));
    }
    out
}

fn ids(env: &Env, tenant: &str, table: &str) -> Vec<String> {
    let conn = env.open(&env.tenant_file(tenant));
    let mut st = conn
        .prepare(&format!("SELECT id FROM {table} ORDER BY id"))
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_cloned_tenant_equals_an_executed_one_row_for_row() {
    let env = Env::new();
    seed(&env);
    let meta = env.json(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["fixtures"][0]["fixture"], "shop");
    let tpl = env.data().join("templates/shop_tpl.db");
    assert!(tpl.exists());
    assert!(!env.data().join("templates/shop_tpl.db-wal").exists());

    env.ok(&[
        "tenant",
        "create",
        "built",
        "--fixture",
        "shop",
        "--owner",
        "alice",
    ]);
    env.ok(&[
        "tenant",
        "create",
        "clone1",
        "clone2",
        "--template",
        "shop_tpl",
        "--owner",
        "alice",
    ]);
    for t in ["clone1", "clone2"] {
        assert!(!env.tenant_file(t).with_extension("db-wal").exists());
    }
    // A savepoint rolled back inside a fixture is undone however the tenant is made.
    env.ok(&["tenant", "create", "deployed", "--owner", "alice"]);
    env.ok(&["fixture", "deploy", "shop", "--tenant", "deployed"]);
    let built = content(&env, "built");
    let notes: Vec<&Vec<String>> = built
        .iter()
        .filter(|(t, _)| t == "notes")
        .map(|(_, rows)| rows)
        .collect();
    assert_eq!(notes, [&vec!["body=Text(\"keep\")".to_string()]]);
    assert_eq!(content(&env, "deployed"), built);
    assert!(built
        .iter()
        .any(|(t, rows)| t == "items" && rows.len() == 2));
    assert_eq!(content(&env, "clone1"), built);
    assert_eq!(content(&env, "clone2"), built);

    // Fresh ids per tenant, references rewritten, the file is a WAL database.
    for table in ["models", "fields", "fs"] {
        let a = ids(&env, "clone1", table);
        let b = ids(&env, "clone2", table);
        assert!(a.iter().all(|i| !b.contains(i)), "{table} ids are shared");
    }
    let conn = env.open(&env.tenant_file("clone1"));
    let orphans: i64 = conn
        .query_row("SELECT count(*) FROM fs c WHERE c.path != '/' AND NOT EXISTS (SELECT 1 FROM fs p WHERE p.id = c.parent_id)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orphans, 0);
    let parent: String = conn
        .query_row(
            "SELECT p.path FROM fs c JOIN fs p ON p.id = c.parent_id WHERE c.path = '/etc/motd'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(parent, "/etc");
    let jm: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
    drop(conn);

    // The registry row and the fixtures it holds.
    let show = env.json(&["tenant", "show", "clone1"]);
    assert_eq!(show["source_template"], "shop_tpl");
    assert_eq!(show["template_version"], 1);
    assert_eq!(show["owner_name"], "alice");
    let st = env.json(&["fixture", "status", "--tenant", "clone1"]);
    assert_eq!(st[0]["fixture"], "shop");
    assert_eq!(st[0]["version"], "3");
    assert_eq!(st[1]["fixture"], "system");
}

#[test]
fn the_system_template_is_built_on_first_use_and_rebuilt_when_system_changes() {
    let env = Env::new();
    env.ok(&["tenant", "create", "plain"]);
    env.ok(&["tenant", "create", "cloned", "--template", "system"]);
    assert_eq!(content(&env, "cloned"), content(&env, "plain"));
    let show = env.json(&["template", "show", "system"]);
    assert_eq!(show["checksum_ok"], true);
    assert_eq!(show["meta"]["generation"], 1);
    // A sidecar recording another system fixture makes the next use rebuild it.
    let side = env.data().join("templates/system.toml");
    let text = fs::read_to_string(&side).unwrap();
    let version = show["meta"]["system_version"].as_str().unwrap();
    fs::write(&side, text.replace(version, "0000000000000000")).unwrap();
    env.ok(&["tenant", "create", "again", "--template", "system"]);
    let show = env.json(&["template", "show", "system"]);
    assert_eq!(show["meta"]["generation"], 2);
    assert_eq!(show["meta"]["system_version"], version);
    let list = env.json(&["template", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn a_template_that_fails_its_checksum_is_refused_and_nothing_is_created() {
    let env = Env::new();
    seed(&env);
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    env.ok(&["init"]);
    let tpl = env.data().join("templates/shop_tpl.db");
    let mut bytes = fs::read(&tpl).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    fs::write(&tpl, &bytes).unwrap();
    let before = snapshot(&env.data());
    let err = env.fails(&["tenant", "create", "acme", "--template", "shop_tpl"], 6);
    assert!(
        err.contains("fails its checksum") && err.contains("shop_tpl.db"),
        "{err}"
    );
    assert_eq!(snapshot(&env.data()), before);
    assert_eq!(
        env.json(&["template", "show", "shop_tpl"])["checksum_ok"],
        false
    );
    env.fails(&["tenant", "create", "acme", "--template", "nosuch"], 3);
    assert_eq!(snapshot(&env.data()), before);
}

#[test]
fn rebuild_list_show_and_rm() {
    let env = Env::new();
    seed(&env);
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    let meta = env.json(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    assert_eq!(meta["generation"], 2);
    assert_eq!(meta["schema_version"], 1);
    let names: Vec<String> = fs::read_dir(env.data().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "only the .db and .toml remain: {names:?}");
    let list = env.json(&["template", "list"]);
    assert_eq!(list[0]["name"], "shop_tpl");
    env.fails(&["template", "rm", "shop_tpl"], 2);
    env.ok(&["template", "rm", "shop_tpl", "--yes"]);
    assert!(!env.data().join("templates/shop_tpl.db").exists());
    env.fails(&["template", "rm", "shop_tpl", "--yes"], 3);
    env.fails(&["template", "show", "shop_tpl"], 3);
    env.fails(&["template", "build", "system", "--fixture", "shop"], 2);
}

#[test]
fn create_from_a_template_with_extra_fixtures() {
    let env = Env::new();
    seed(&env);
    fixture(
        &env,
        "more",
        "name = \"more\"\nversion = \"1\"\ndepends_on = [\"shop\"]\nfiles = [\"items.jsonl\"]\n",
        &[(
            "items.jsonl",
            b"{\"sku\":\"c3\",\"price\":9,\"qty\":\"4\"}\n",
        )],
    );
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    env.ok(&[
        "tenant",
        "create",
        "acme",
        "--template",
        "shop_tpl",
        "--fixture",
        "more",
    ]);
    let conn = env.open(&env.tenant_file("acme"));
    let n: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    let qty: i64 = conn
        .query_row("SELECT qty FROM items WHERE sku = 'c3'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(qty, 4);
    let st = env.json(&["fixture", "status", "--tenant", "acme"]);
    let names: Vec<&str> = st
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fixture"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["more", "shop", "system"]);
}

#[test]
fn a_template_from_another_system_or_schema_version_is_refused_until_rebuilt() {
    let env = Env::new();
    seed(&env);
    env.ok(&["init"]);
    let meta = env.json(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    let side = env.data().join("templates/shop_tpl.toml");
    let good = fs::read_to_string(&side).unwrap();
    let system_version = meta["system_version"].as_str().unwrap();
    let schema_line = format!("schema_version = {}", meta["schema_version"]);
    assert!(good.contains(&schema_line), "{good}");
    for stale in [
        good.replace(system_version, "0000000000000000"),
        good.replace(&schema_line, "schema_version = 99"),
    ] {
        fs::write(&side, &stale).unwrap();
        let before = snapshot(&env.data());
        let err = env.fails(&["tenant", "create", "acme", "--template", "shop_tpl"], 7);
        assert!(
            err.contains("template 'shop_tpl' is stale")
                && err.contains("rebuild it with `monkctl template build shop_tpl --fixture shop`"),
            "{err}"
        );
        assert_eq!(snapshot(&env.data()), before);
    }
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    env.ok(&["tenant", "create", "acme", "--template", "shop_tpl"]);
}

#[test]
fn a_rebuild_interrupted_between_its_renames_is_finished_and_damage_is_named() {
    let env = Env::new();
    seed(&env);
    // The state a crash between the two renames leaves: the new database, the old sidecar.
    let interrupt = |name: &str, fixtures: &[&str]| {
        let side = env.data().join(format!("templates/{name}.toml"));
        let old = fs::read(&side).unwrap();
        let mut args = vec!["template", "build", name];
        for f in fixtures {
            args.extend(["--fixture", f]);
        }
        env.ok(&args);
        fs::write(&side, old).unwrap();
        assert_eq!(
            env.json(&["template", "show", name])["checksum_ok"],
            false,
            "{name}"
        );
    };

    env.ok(&["tenant", "create", "first", "--template", "system"]);
    interrupt("system", &[]);
    env.ok(&["tenant", "create", "second", "--template", "system"]);
    let show = env.json(&["template", "show", "system"]);
    assert_eq!(show["checksum_ok"], true);
    assert_eq!(content(&env, "second"), content(&env, "first"));

    // A user template: the pending sidecar a build leaves between its renames finishes the build.
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    let side = env.data().join("templates/shop_tpl.toml");
    let pending = env.data().join("templates/shop_tpl.toml.pending");
    interrupt("shop_tpl", &["shop"]);
    let old = fs::read(&side).unwrap();
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    fs::rename(&side, &pending).unwrap();
    fs::write(&side, &old).unwrap();
    env.ok(&["tenant", "create", "early", "--template", "shop_tpl"]);
    assert!(!pending.exists());
    let show = env.json(&["template", "show", "shop_tpl"]);
    assert_eq!(show["checksum_ok"], true);
    assert_eq!(show["meta"]["generation"], 2);
    assert_eq!(
        env.json(&["tenant", "show", "early"])["template_version"],
        2
    );

    // Without it (a damaged file), it is refused with the command that rebuilds it.
    interrupt("shop_tpl", &["shop"]);
    let before = snapshot(&env.data());
    let err = env.fails(&["tenant", "create", "acme", "--template", "shop_tpl"], 6);
    assert!(
        err.contains("template 'shop_tpl' fails its checksum")
            && err.contains("rebuild it with `monkctl template build shop_tpl --fixture shop`")
            && !err.contains("not a valid SQLite database")
            && !err.contains("backup"),
        "{err}"
    );
    assert_eq!(snapshot(&env.data()), before);
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    env.ok(&["tenant", "create", "acme", "--template", "shop_tpl"]);
}
