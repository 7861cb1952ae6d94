//! A PostgreSQL registry that also holds SQLite tenants (`db_type='sqlite'`, files under the
//! API's `SQLITE_DATA_DIR`): made by `tenant create --db-type sqlite`, handled through the
//! SQLite side with `--sqlite-data-dir`, and reported, never guessed at, without it.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::PgDb;

cases![
    sqlite_tenants_of_a_postgres_registry_are_made_listed_and_moved,
    without_the_setting_sqlite_tenants_are_reported_not_guessed_at,
];

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(db: &PgDb, lite: Option<&Path>, args: &[&str]) -> Output {
    let mut c = db.monkctl();
    if let Some(dir) = lite {
        c.arg("--sqlite-data-dir").arg(dir);
    }
    c.args(args).output().expect("run monkctl")
}

#[track_caller]
fn ok(out: Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn sqlite_tenants_of_a_postgres_registry_are_made_listed_and_moved(db: &PgDb) {
    let lite = db.env().root().join("api-sqlite");
    std::fs::create_dir_all(&lite).unwrap();
    let l = Some(lite.as_path());
    ok(run(db, None, &["tenant", "create", "big"]));
    let v = ok(run(
        db,
        l,
        &[
            "--format",
            "json",
            "tenant",
            "create",
            "small",
            "--owner",
            "admin",
            "--db-type",
            "sqlite",
        ],
    ));
    let created = &v["results"][0]["result"];
    assert_eq!(created["db_type"], "sqlite", "{v}");
    let database: String = db.scalar("SELECT current_database()::text");
    assert_eq!(created["database"], database.as_str(), "{v}");
    // Where the API serves it from: <SQLITE_DATA_DIR>/<database>/<schema>.db.
    let file = lite.join(&database).join("ns_tenant_small.db");
    assert!(file.is_file(), "{v}");
    assert_eq!(created["path"], file.to_str().unwrap(), "{v}");
    let c = rusqlite::Connection::open(&file).unwrap();
    let owner: String = c
        .query_row(
            "SELECT name FROM users WHERE access = 'root' AND name <> 'Root User'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(owner, "admin");
    drop(c);
    // No schema was made for it; the registry row says SQLite.
    let schemas: i64 =
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ns_tenant_small'");
    assert_eq!(schemas, 0);
    // Listed and shown through its file.
    let list = ok(run(db, l, &["--format", "json", "tenant", "list"]));
    let small = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "small")
        .unwrap()
        .clone();
    assert_eq!(small["path"], file.to_str().unwrap(), "{list}");
    assert!(small["size_bytes"].as_u64().unwrap() > 0);
    let show = ok(run(db, l, &["--format", "json", "tenant", "show", "small"]));
    assert_eq!(show["owner_name"], "admin", "{show}");
    assert!(show["file_error"].is_null(), "{show}");
    // The lifecycle is the registry's.
    ok(run(db, l, &["tenant", "suspend", "small"]));
    ok(run(db, l, &["tenant", "activate", "small"]));
    ok(run(db, l, &["--yes", "tenant", "delete", "small"]));
    ok(run(db, l, &["tenant", "undelete", "small"]));
    assert!(file.is_file());
    // doctor checks its file.
    let report = ok(run(db, l, &["--format", "json", "doctor"]));
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    // Extracted from its file, restored onto PostgreSQL: the same tenant, now a schema.
    let archive = db.env().root().join("small.monk.db");
    ok(run(
        db,
        l,
        &["extract", "small", "-o", archive.to_str().unwrap()],
    ));
    ok(run(
        db,
        l,
        &["restore", archive.to_str().unwrap(), "--as", "small_pg"],
    ));
    let n: i64 = db.scalar("SELECT count(*) FROM ns_tenant_small_pg.users WHERE name = 'admin'");
    assert_eq!(n, 1);
    // restore --force over it replaces its file, saving what was there first.
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch("UPDATE users SET name = 'changed' WHERE name = 'admin'")
        .unwrap();
    let v = ok(run(
        db,
        l,
        &[
            "--format",
            "json",
            "--yes",
            "restore",
            archive.to_str().unwrap(),
            "--force",
        ],
    ));
    assert_eq!(v["mode"], "replaced", "{v}");
    assert!(
        Path::new(v["previous_saved_to"].as_str().unwrap()).is_file(),
        "{v}"
    );
    let c = rusqlite::Connection::open(&file).unwrap();
    let name: String = c
        .query_row("SELECT name FROM users WHERE auth = 'admin'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(name, "admin");
    drop(c);
    let db_type: String =
        db.scalar("SELECT db_type::text FROM public.tenants WHERE name = 'small'");
    assert_eq!(db_type, "sqlite");
    // One migration set for both kinds: `migrate up` runs it on the schema and on the file.
    let migs = db.env().root().join("migrations");
    std::fs::create_dir_all(&migs).unwrap();
    std::fs::write(
        migs.join("V2__nickname.sql"),
        "ALTER TABLE users ADD COLUMN nickname TEXT;\n",
    )
    .unwrap();
    let m = migs.to_str().unwrap();
    let status = ok(run(
        db,
        l,
        &["--migrations", m, "--format", "json", "migrate", "status"],
    ));
    let pending: Vec<(String, Value)> = status["tenants"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|r| {
            (
                r["tenant"].as_str().unwrap().to_string(),
                r["result"]["pending"].clone(),
            )
        })
        .collect();
    assert!(
        pending.contains(&("small".to_string(), serde_json::json!([2]))),
        "{status}"
    );
    assert!(
        pending.contains(&("big".to_string(), serde_json::json!([2]))),
        "{status}"
    );
    let up = ok(run(
        db,
        l,
        &["--migrations", m, "--format", "json", "migrate", "up"],
    ));
    assert_eq!(up["summary"]["failed"], 0, "{up}");
    let c = rusqlite::Connection::open(&file).unwrap();
    let has: i64 = c
        .query_row(
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'nickname'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has, 1, "the file was migrated");
    drop(c);
    let has: i64 = db.scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'ns_tenant_big' AND column_name = 'nickname'",
    );
    assert_eq!(has, 1, "the schema was migrated");
    // A destructive migration: the schema with --allow-destructive, never the file.
    std::fs::write(
        migs.join("V3__drop_nickname.sql"),
        "ALTER TABLE users DROP COLUMN nickname;\n",
    )
    .unwrap();
    let out = run(
        db,
        l,
        &[
            "--migrations",
            m,
            "--yes",
            "migrate",
            "up",
            "--allow-destructive",
        ],
    );
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not apply to a SQLite tenant"),
        "{}",
        text(&out)
    );
    // Fixtures go into the file, recorded in the registry.
    let fx = db.env().root().join("fixtures");
    std::fs::create_dir_all(fx.join("crm")).unwrap();
    std::fs::write(
        fx.join("crm/fixture.toml"),
        "name = \"crm\"\nversion = \"1\"\nfiles = [\"schema.sql\"]\n",
    )
    .unwrap();
    std::fs::write(
        fx.join("crm/schema.sql"),
        "CREATE TABLE crm_notes (id INTEGER PRIMARY KEY, body TEXT);\n",
    )
    .unwrap();
    ok(run(
        db,
        l,
        &[
            "--migrations",
            m,
            "fixture",
            "deploy",
            "crm",
            "--fixtures",
            fx.to_str().unwrap(),
            "--tenant",
            "small",
        ],
    ));
    let c = rusqlite::Connection::open(&file).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'crm_notes'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(c);
    let recorded: i64 = db.scalar(
        "SELECT count(*) FROM public.tenant_fixtures f JOIN public.tenants t ON t.id = f.tenant_id \
         WHERE t.name = 'small' AND f.fixture_name = 'crm'",
    );
    assert_eq!(recorded, 1);
    // A damaged file is found.
    std::fs::write(&file, b"SQLite format 3\0 but nothing after it").unwrap();
    let out = run(db, l, &["--format", "json", "doctor"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["tenant"] == "small" && f["severity"] == "error"),
        "{report:#}"
    );
}

fn without_the_setting_sqlite_tenants_are_reported_not_guessed_at(db: &PgDb) {
    let lite = db.env().root().join("api-sqlite");
    std::fs::create_dir_all(&lite).unwrap();
    // Refused before anything is made.
    let out = run(
        db,
        None,
        &["tenant", "create", "small", "--db-type", "sqlite"],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--sqlite-data-dir"),
        "{}",
        text(&out)
    );
    let registry: i64 = db.scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'tenants'",
    );
    assert_eq!(registry, 0, "nothing was made");
    ok(run(
        db,
        Some(&lite),
        &["tenant", "create", "small", "--db-type", "sqlite"],
    ));
    // Without the setting: listed from the row, shown with what is missing, never opened.
    let list = ok(run(db, None, &["--format", "json", "tenant", "list"]));
    assert_eq!(list[0]["name"], "small", "{list}");
    assert!(list[0]["path"].is_null(), "{list}");
    let show = ok(run(
        db,
        None,
        &["--format", "json", "tenant", "show", "small"],
    ));
    assert!(
        show["file_error"]
            .as_str()
            .unwrap()
            .contains("--sqlite-data-dir"),
        "{show}"
    );
    let out = run(db, None, &["extract", "small", "-o", "small.monk.db"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(!db.env().root().join("small.monk.db").exists());
    let report = ok(run(db, None, &["--format", "json", "doctor"]));
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "sqlite_tenant_in_postgres_registry"),
        "{report:#}"
    );
    // The setting from the environment, under the API's own name.
    let out = db
        .monkctl()
        .env("SQLITE_DATA_DIR", &lite)
        .args(["--format", "json", "tenant", "show", "small"])
        .output()
        .unwrap();
    let show = ok(out);
    assert!(show["file_error"].is_null(), "{show}");
    // Deleted, its row stays and its file with it; purged, the file is archived, then removed.
    let l = Some(lite.as_path());
    ok(run(db, l, &["--yes", "tenant", "delete", "small"]));
    let database: String = db.scalar("SELECT current_database()::text");
    let file = lite.join(&database).join("ns_tenant_small.db");
    assert!(file.is_file());
    // Without the setting, purge leaves it alone.
    let v = ok(run(
        db,
        None,
        &[
            "--format",
            "json",
            "--yes",
            "tenant",
            "purge",
            "--older-than",
            "0",
        ],
    ));
    assert_eq!(v["purged"], serde_json::json!([]), "{v}");
    assert!(file.is_file());
    let v = ok(run(
        db,
        l,
        &[
            "--format",
            "json",
            "--yes",
            "tenant",
            "purge",
            "--older-than",
            "0",
        ],
    ));
    let archive = v["purged"][0]["files"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string();
    assert!(archive.ends_with(".monk.db"), "{v}");
    assert!(!file.exists(), "the file was removed");
    ok(run(db, l, &["archive", "verify", &archive]));
    ok(run(db, l, &["restore", &archive, "--as", "small_back"]));
    let n: i64 = db.scalar("SELECT count(*) FROM ns_tenant_small_back.users");
    assert!(n >= 1);
}
