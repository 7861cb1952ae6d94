//! Fixtures on PostgreSQL: one fixture directory for both backends (per-backend SQL beside
//! backend-neutral data files typed by the columns), deployed in one transaction per tenant,
//! through the PostgreSQL guard.

use crate::common;
use crate::PgDb;

cases![
    one_directory_serves_both_backends,
    a_bad_row_or_statement_changes_nothing,
    a_deploy_killed_between_its_two_commits_is_finished_by_the_next,
    check_runs_in_a_scratch_schema_that_is_never_committed,
    templates_freeze_their_fixtures,
];

const MANIFEST: &str =
    "name = \"shop\"\nversion = \"1\"\nfiles = [\"schema.sql\", \"items.csv\", \"events.jsonl\"]\n";
const LITE: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, tags TEXT, active INTEGER);\n\
CREATE TABLE events (id TEXT PRIMARY KEY, item INTEGER REFERENCES items(id), meta TEXT, at TEXT);\n";
const PG: &str = "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price numeric, tags text[] DEFAULT '{}', active boolean);\n\
CREATE TABLE events (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), item integer REFERENCES items(id), meta jsonb, at timestamp);\n";
const ITEMS: &str = "id,name,price,tags,active\n1,apple,1.5,\"[\"\"red\"\",\"\"fruit\"\"]\",true\n2,\"pear, green\",2,[],false\n3,nothing,,,\n";
const EVENTS: &str = "{\"item\": 1, \"meta\": {\"k\": [1,2]}, \"at\": \"2026-01-02T03:04:05Z\"}\n{\"id\": \"11111111-1111-4111-8111-111111111111\", \"item\": 2, \"meta\": null}\n";

fn shop(db: &PgDb, items: &str, pg: &str) {
    common::fixture(
        db.env(),
        "shop",
        MANIFEST,
        &[
            ("schema.sql", LITE.as_bytes()),
            ("schema.postgres.sql", pg.as_bytes()),
            ("items.csv", items.as_bytes()),
            ("events.jsonl", EVENTS.as_bytes()),
        ],
    );
}

fn one_directory_serves_both_backends(db: &PgDb) {
    shop(db, ITEMS, PG);
    let fixtures = db.env().root().join("fixtures");
    db.monkctl()
        .args(["tenant", "create", "aa", "bb"])
        .assert()
        .success();
    db.monkctl()
        .args(["fixture", "deploy", "shop", "--tenant", "aa", "--fixtures"])
        .arg(&fixtures)
        .assert()
        .success();
    // Typed by the columns: numeric, text[], boolean, uuid, jsonb, timestamp.
    assert_eq!(
        db.scalar::<String>(
            "SELECT string_agg(format('%s|%s|%s|%s', name, price, tags, active), ';' ORDER BY id) FROM ns_tenant_aa.items"
        ),
        "apple|1.5|{red,fruit}|t;pear, green|2|{}|f;nothing|||"
    );
    assert_eq!(
        db.scalar::<String>("SELECT meta::text FROM ns_tenant_aa.events WHERE item = 1"),
        "{\"k\": [1, 2]}"
    );
    assert_eq!(
        db.scalar::<String>("SELECT at::text FROM ns_tenant_aa.events WHERE item = 1"),
        "2026-01-02 03:04:05"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_aa.events WHERE id = '11111111-1111-4111-8111-111111111111'"),
        1
    );
    // Recorded in the tenant and in the registry with its version; a second deploy changes nothing.
    assert_eq!(
        db.scalar::<String>("SELECT name || '@' || version FROM ns_tenant_aa._monkctl_fixtures"),
        "shop@1"
    );
    let out = db
        .monkctl()
        .args([
            "--format",
            "json",
            "fixture",
            "deploy",
            "shop",
            "--all",
            "--fixtures",
        ])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.replace([' ', '\n'], "")
            .contains("\"skipped\":[\"shop\"]"),
        "{text}"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_aa.items"),
        3
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_bb.items"),
        3
    );
    let status = db
        .monkctl()
        .args(["--format", "json", "fixture", "status", "--tenant", "bb"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("\"shop\""),
        "{status:?}"
    );
    // tenant create --fixture: schema, rows and the registry's record in one transaction.
    db.monkctl()
        .args(["tenant", "create", "cc", "--fixture", "shop", "--fixtures"])
        .arg(&fixtures)
        .assert()
        .success();
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_cc.items"),
        3
    );
    assert_eq!(
        db.scalar::<i64>(
            "SELECT count(*) FROM public.tenant_fixtures f JOIN public.tenants t ON t.id = f.tenant_id \
             WHERE t.name = 'cc' AND f.fixture_name = 'shop' AND f.version = '1'"
        ),
        1
    );
    // The same directory on a SQLite deployment takes schema.sql and the same data files.
    let lite = db
        .env()
        .cmd()
        .args([
            "tenant",
            "create",
            "lite",
            "--fixture",
            "shop",
            "--fixtures",
        ])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(lite.status.code(), Some(0), "{lite:?}");
    let q = db
        .env()
        .cmd()
        .args([
            "--format",
            "csv",
            "query",
            "SELECT name, tags, active FROM items ORDER BY id",
            "lite",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&q.stdout),
        "tenant,name,tags,active\nlite,apple,\"[\"\"red\"\",\"\"fruit\"\"]\",1\nlite,\"pear, green\",[],0\nlite,nothing,,\n"
    );
}

fn a_bad_row_or_statement_changes_nothing(db: &PgDb) {
    db.monkctl()
        .args(["tenant", "create", "aa"])
        .assert()
        .success();
    let fixtures = db.env().root().join("fixtures");
    // A value that does not fit its column: exit 2, naming file and line; nothing applied.
    shop(
        db,
        "id,name,price,tags,active\n1,apple,1.5,[],true\n2,pear,2x,[],false\n",
        PG,
    );
    let out = db
        .monkctl()
        .args(["fixture", "deploy", "shop", "--tenant", "aa", "--fixtures"])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("items.csv:3"), "{err}");
    assert_eq!(
        db.scalar::<Option<String>>("SELECT to_regclass('ns_tenant_aa.items')::text"),
        None,
        "the tenant was rolled back"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM public.tenant_fixtures WHERE fixture_name = 'shop'"),
        0
    );
    // A statement that reaches the registry is refused before any tenant is touched.
    shop(db, ITEMS, &format!("{PG}DELETE FROM public.tenants;\n"));
    let out = db
        .monkctl()
        .args(["fixture", "deploy", "shop", "--tenant", "aa", "--fixtures"])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("schema.postgres.sql"),
        "{out:?}"
    );
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM public.tenants"), 1);
    assert_eq!(
        db.scalar::<Option<String>>("SELECT to_regclass('ns_tenant_aa.items')::text"),
        None
    );
}

fn a_deploy_killed_between_its_two_commits_is_finished_by_the_next(db: &PgDb) {
    shop(db, ITEMS, PG);
    let fixtures = db.env().root().join("fixtures");
    db.monkctl()
        .args(["tenant", "create", "aa"])
        .assert()
        .success();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("monkctl"))
        .arg("--data-dir")
        .arg(db.data_dir())
        .arg("--database-url")
        .arg(db.url())
        .args(["fixture", "deploy", "shop", "--tenant", "aa", "--fixtures"])
        .arg(&fixtures)
        .env("MONKCTL_PAUSE_AT", "fixture.deploy.applied")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("paused at fixture.deploy.applied") {
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        assert!(n > 0, "the deploy ended before its pause point: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The tenant's transaction committed (rows and its own record), the registry's did not.
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_aa.items"),
        3
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM public.tenant_fixtures WHERE fixture_name = 'shop'"),
        0
    );
    // The next deploy applies nothing again and records what the tenant holds.
    let out = db
        .monkctl()
        .args([
            "--format",
            "json",
            "fixture",
            "deploy",
            "shop",
            "--tenant",
            "aa",
            "--fixtures",
        ])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).replace([' ', '\n'], "");
    assert!(text.contains("\"recorded\":[\"shop\"]"), "{text}");
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_aa.items"),
        3
    );
    assert_eq!(
        db.scalar::<String>(
            "SELECT version FROM public.tenant_fixtures WHERE fixture_name = 'shop'"
        ),
        "1"
    );
}

fn check_runs_in_a_scratch_schema_that_is_never_committed(db: &PgDb) {
    shop(db, ITEMS, PG);
    let fixtures = db.env().root().join("fixtures");
    let schemas = |db: &PgDb| -> i64 { db.scalar("SELECT count(*) FROM pg_namespace") };
    let before = schemas(db);
    let out = db
        .monkctl()
        .args(["fixture", "check", "--fixtures"])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A value that does not fit and a refused statement are both reported (exit 2).
    common::fixture(
        db.env(),
        "bad",
        "name = \"bad\"\nversion = \"1\"\ndepends_on = [\"shop\"]\nfiles = [\"more.sql\", \"items.csv\"]\n",
        &[
            ("more.sql", b"CREATE TABLE extra (x int);\n"),
            ("items.csv", b"id,name,price\n9,nine,lots\n"),
        ],
    );
    common::fixture(
        db.env(),
        "evil",
        "name = \"evil\"\nversion = \"1\"\nfiles = [\"x.sql\"]\n",
        &[("x.sql", b"DELETE FROM public.tenants;\n")],
    );
    let out = db
        .monkctl()
        .args(["--format", "json", "fixture", "check", "--fixtures"])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("items.csv:2"), "{text}");
    assert!(text.contains("public.tenants"), "{text}");
    // Nothing of the scratch tenant was committed.
    assert_eq!(schemas(db), before);
}

fn templates_freeze_their_fixtures(db: &PgDb) {
    shop(db, ITEMS, PG);
    let fixtures = db.env().root().join("fixtures");
    let out = db
        .monkctl()
        .args([
            "template",
            "build",
            "shop_t",
            "--fixture",
            "shop",
            "--fixtures",
        ])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The trial run left nothing in the database.
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'monkctl\\_%'"),
        0
    );
    // The fixtures directory changes afterwards; the template does not.
    shop(db, "id,name,price,tags,active\n7,other,1,[],true\n", PG);
    db.monkctl()
        .args(["tenant", "create", "aa", "bb", "--template", "shop_t"])
        .assert()
        .success();
    for t in ["aa", "bb"] {
        assert_eq!(
            db.scalar::<String>(&format!(
                "SELECT string_agg(name, ',' ORDER BY id) FROM ns_tenant_{t}.items"
            )),
            "apple,pear, green,nothing"
        );
        assert_eq!(
            db.scalar::<String>(&format!(
                "SELECT source_template || ':' || template_version FROM public.tenants WHERE name = '{t}'"
            )),
            "shop_t:1"
        );
    }
    assert_eq!(
        db.scalar::<i64>(
            "SELECT count(*) FROM public.tenant_fixtures f JOIN public.tenants t ON t.id = f.tenant_id \
             WHERE t.name = 'aa' AND f.fixture_name = 'shop'"
        ),
        1
    );
    let show = db
        .monkctl()
        .args(["--format", "json", "template", "show", "shop_t"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout).replace([' ', '\n'], "");
    assert!(text.contains("\"checksum_ok\":true"), "{text}");
    // A damaged recipe is refused (exit 6) and creates nothing.
    let recipe = db.data_dir().join("templates/shop_t.pgrecipe.json");
    let mut bytes = std::fs::read(&recipe).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&recipe, &bytes).unwrap();
    let out = db
        .monkctl()
        .args(["tenant", "create", "cc", "--template", "shop_t"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM public.tenants WHERE name = 'cc'"),
        0
    );
    // `system` is the API's tenant alone; `template rm` removes the recipe and its sidecar.
    db.monkctl()
        .args(["tenant", "create", "dd", "--template", "system"])
        .assert()
        .success();
    db.monkctl()
        .args(["template", "rm", "shop_t", "--yes"])
        .assert()
        .success();
    assert!(!recipe.exists());
    // A template whose fixture fails is not built: exit 2, no file.
    shop(db, "id,name,price\n1,x,notanumber\n", PG);
    let out = db
        .monkctl()
        .args([
            "template",
            "build",
            "bad_t",
            "--fixture",
            "shop",
            "--fixtures",
        ])
        .arg(&fixtures)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!db.data_dir().join("templates/bad_t.toml").exists());
}
