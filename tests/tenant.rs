//! `tenant` commands on real data directories: lifecycle, listing, bad input, layouts.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{snapshot, Env};
use serde_json::Value;

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn read_only_commands_create_nothing_and_say_where_they_looked() {
    let env = Env::new();
    for args in [
        &["tenant", "list"][..],
        &["tenant", "show", "acme"],
        &["tenant", "trash", "acme"],
    ] {
        let err = env.fails(args, 3);
        assert!(
            err.contains("infra/monk.db") && err.contains("monk/public.db"),
            "{err}"
        );
        assert!(err.contains("monkctl init"), "{err}");
    }
    assert!(
        !env.data().exists(),
        "a read-only command created the data directory"
    );
}

#[test]
fn first_write_creates_everything_owner_only() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    for d in [
        env.data(),
        env.data().join("infra"),
        env.data().join("db_main"),
    ] {
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    for f in [env.infra(), env.tenant_file("acme")] {
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    // The tenant file stands alone: no WAL or shared-memory file is left beside it.
    let left: Vec<_> = fs::read_dir(env.data().join("db_main"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec!["ns_tenant_acme.db".to_string()]);
    let conn = env.open(&env.tenant_file("acme"));
    let jm: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
}

#[test]
fn init_is_idempotent_and_reports() {
    let env = Env::new();
    let v = env.json(&["init"]);
    assert_eq!(v["created"], true);
    assert_eq!(v["layout"], "design");
    let v = env.json(&["init"]);
    assert_eq!(v["created"], false);
    assert!(env.infra().exists());
}

#[test]
fn create_writes_row_and_owner_as_the_api_does() {
    let env = Env::new();
    env.ok(&[
        "tenant",
        "create",
        "acme",
        "--owner",
        "admin",
        "--description",
        "Acme Inc",
    ]);
    env.ok(&["tenant", "create", "globex"]);
    let conn = env.open(&env.infra());
    let (db, schema, status, active, owner, desc, created): (
        String,
        String,
        String,
        i64,
        String,
        String,
        String,
    ) = conn
        .query_row(
            "SELECT database, schema, status, is_active, owner_id, description, created_at FROM tenants WHERE name='acme'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap();
    assert_eq!(
        (db.as_str(), schema.as_str()),
        ("db_main", "ns_tenant_acme")
    );
    assert_eq!((status.as_str(), active), ("active", 1));
    assert_eq!(desc, "Acme Inc");
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    let t = env.open(&env.tenant_file("acme"));
    let (name, auth, access): (String, String, String) = t
        .query_row(
            "SELECT name, auth, access FROM users WHERE id = ?1",
            [&owner],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (name.as_str(), auth.as_str(), access.as_str()),
        ("admin", "admin", "root")
    );
    let users: i64 = t
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2);

    let g_owner: String = conn
        .query_row(
            "SELECT owner_id FROM tenants WHERE name='globex'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(g_owner, "00000000-0000-0000-0000-000000000000");
    let g = env.open(&env.tenant_file("globex"));
    let users: i64 = g
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
}

#[test]
fn bad_names_are_refused_before_anything_is_written() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let before = snapshot(&env.data());
    let long = "a".repeat(54);
    for bad in [
        "../evil",
        "a/b",
        "it's",
        "say\"hi\"",
        "café",
        "Acme",
        "1abc",
        "a",
        "",
        &long,
        "a b",
        "-x",
    ] {
        let out = env.run(&["tenant", "create", "--", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tenant name"), "{bad:?}: {err}");
    }
    let bad_owner = env.run(&[
        "tenant",
        "create",
        "fine",
        "--owner",
        "Robert'); DROP TABLE",
    ]);
    assert_eq!(bad_owner.status.code(), Some(2));
    // A bad name among good ones: nothing at all is created.
    env.fails(&["tenant", "create", "good_one", "../bad"], 2);
    assert_eq!(snapshot(&env.data()), before);
    let v = env.json(&["tenant", "list"]);
    assert_eq!(names(&v), vec!["acme"]);
}

#[test]
fn existing_names_are_refused_deleted_ones_included() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "gone"]);
    env.ok(&["tenant", "delete", "gone", "--yes"]);
    let before = snapshot(&env.data());
    let err = env.fails(&["tenant", "create", "acme"], 4);
    assert!(err.contains("already exists"), "{err}");
    env.fails(&["tenant", "create", "gone"], 4);
    assert_eq!(snapshot(&env.data()), before);
    // A batch with one taken name creates the rest and says which failed (exit 8).
    let out = env.run(&["--format", "json", "tenant", "create", "newone", "acme"]);
    assert_eq!(out.status.code(), Some(8));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 1);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["results"][1]["exit_code"], 4);
}

#[test]
fn create_from_file_checks_every_line_first() {
    let env = Env::new();
    let list = env.root().join("tenants.txt");
    fs::write(
        &list,
        "# provisioning list\nalpha admin First customer\n\nbeta\ngamma ops\n",
    )
    .unwrap();
    let v = env.json(&["tenant", "create", "--from-file", list.to_str().unwrap()]);
    assert_eq!(v["succeeded"], 3);
    let shown = env.json(&["tenant", "show", "alpha"]);
    assert_eq!(shown["owner_name"], "admin");
    assert_eq!(shown["description"], "First customer");

    let bad = env.root().join("bad.txt");
    fs::write(&bad, "delta\nepsilon\nBad-Name x\n").unwrap();
    let before = snapshot(&env.data());
    let err = env.fails(
        &["tenant", "create", "--from-file", bad.to_str().unwrap()],
        2,
    );
    assert!(err.contains("bad.txt:3"), "{err}");
    assert_eq!(
        snapshot(&env.data()),
        before,
        "no tenant of a bad file is created"
    );
    let dup = env.root().join("dup.txt");
    fs::write(&dup, "zeta\nzeta\n").unwrap();
    let err = env.fails(
        &["tenant", "create", "--from-file", dup.to_str().unwrap()],
        2,
    );
    assert!(err.contains("dup.txt:2") && err.contains("twice"), "{err}");
    let bin = env.root().join("bin.txt");
    fs::write(&bin, b"eta\n\xff\xfe\n").unwrap();
    let err = env.fails(
        &["tenant", "create", "--from-file", bin.to_str().unwrap()],
        2,
    );
    assert!(err.contains("UTF-8"), "{err}");
}

#[test]
fn list_filters_sorts_and_formats() {
    let env = Env::new();
    env.ok(&["tenant", "create", "charlie", "alpha", "bravo", "delta"]);
    env.ok(&["tenant", "trash", "bravo"]);
    env.ok(&["tenant", "suspend", "charlie"]);
    env.ok(&["tenant", "delete", "delta", "--yes"]);

    assert_eq!(
        names(&env.json(&["tenant", "list"])),
        vec!["alpha", "charlie"]
    );
    assert_eq!(
        names(&env.json(&["tenant", "list", "--trashed"])),
        vec!["alpha", "bravo", "charlie"]
    );
    assert_eq!(
        names(&env.json(&["tenant", "list", "--all"])),
        vec!["alpha", "bravo", "charlie", "delta"]
    );
    assert_eq!(
        names(&env.json(&["tenant", "list", "--status", "suspended"])),
        vec!["charlie"]
    );
    assert_eq!(
        names(&env.json(&["tenant", "list", "--status", "deleted"])),
        vec!["delta"]
    );
    assert_eq!(
        names(&env.json(&["tenant", "list", "--all", "--sort", "created", "--reverse"])),
        vec!["delta", "bravo", "alpha", "charlie"]
    );

    let v = env.json(&["tenant", "list"]);
    let a = &v[0];
    for key in [
        "id",
        "name",
        "status",
        "owner_id",
        "description",
        "created_at",
        "trashed_at",
        "deleted_at",
        "path",
        "size_bytes",
        "fixtures",
    ] {
        assert!(a.get(key).is_some(), "json field {key} missing: {a}");
    }
    assert!(a["size_bytes"].as_u64().unwrap() > 100_000);

    let csv = env.ok(&["--format", "csv", "tenant", "list", "--all"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,name,status,owner_id,created_at,trashed_at,deleted_at,size,fixtures"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4);
    // Raw values: the status alone (trashed_at its own column), the size in bytes.
    let bravo = rows.iter().find(|r| r[1] == "bravo").unwrap();
    assert!(!bravo[2].contains("trashed"), "{bravo:?}");
    assert!(bravo[5].ends_with('Z'), "trashed_at: {bravo:?}");
    assert!(
        bravo[7].parse::<u64>().unwrap() > 100_000,
        "size: {bravo:?}"
    );
    let table = env.ok(&["tenant", "list", "--trashed"]);
    assert!(
        table.contains("bravo") && table.contains("(trashed)"),
        "{table}"
    );
    assert!(table.contains("3 tenant(s)"));
}

#[test]
fn show_reports_file_tables_and_counts() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "--owner", "admin"]);
    let v = env.json(&["tenant", "show", "acme"]);
    assert_eq!(v["name"], "acme");
    assert_eq!(v["file_exists"], true);
    assert_eq!(v["owner_name"], "admin");
    assert!(v["path"]
        .as_str()
        .unwrap()
        .ends_with("db_main/ns_tenant_acme.db"));
    let tables = v["tables"].as_array().unwrap();
    let count = |t: &str| {
        tables
            .iter()
            .find(|x| x["table"] == t)
            .map(|x| x["row_count"].as_i64().unwrap())
    };
    assert_eq!(count("models"), Some(7));
    assert_eq!(count("fields"), Some(68));
    assert_eq!(count("users"), Some(2));
    assert_eq!(count("fs"), Some(1));
    // Reading leaves no -wal or -shm behind.
    assert!(!env.data().join("db_main/ns_tenant_acme.db-shm").exists());
    env.fails(&["tenant", "show", "nobody"], 3);
    env.fails(&["tenant", "show", "../etc"], 2);
}

#[test]
fn trash_suspend_and_back_are_visible_to_the_api_columns() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let v = env.json(&["tenant", "trash", "acme"]);
    assert_eq!(v["changed"], true);
    assert!(v["trashed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(env.json(&["tenant", "trash", "acme"])["changed"], false);
    env.ok(&["tenant", "untrash", "acme"]);
    let conn = env.open(&env.infra());
    let trashed: Option<String> = conn
        .query_row(
            "SELECT trashed_at FROM tenants WHERE name='acme'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(trashed, None);
    env.ok(&["tenant", "suspend", "acme"]);
    let status: String = conn
        .query_row("SELECT status FROM tenants WHERE name='acme'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "suspended");
    env.ok(&["tenant", "activate", "acme"]);
    let status: String = conn
        .query_row("SELECT status FROM tenants WHERE name='acme'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "active");
    for cmd in ["trash", "untrash", "suspend", "activate"] {
        env.fails(&["tenant", cmd, "nobody"], 3);
    }
}

#[test]
fn delete_moves_the_file_to_trash_and_needs_yes_without_terminal() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    // Write something so that the WAL holds data at delete time.
    {
        let c = env.open(&env.tenant_file("acme"));
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; \
             INSERT INTO users (id, name, auth, access) VALUES ('u1', 'late', 'late', 'read');",
        )
        .unwrap();
        std::mem::forget(c); // keep the WAL as a crashed API would leave it
    }
    let before = snapshot(&env.data());
    let err = env.fails(&["tenant", "delete", "acme"], 2);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(snapshot(&env.data()), before);

    let v = env.json(&["tenant", "delete", "acme", "--yes"]);
    assert_eq!(v["status"], "deleted");
    assert_eq!(v["is_active"], false);
    assert!(v["deleted_at"].is_string());
    assert!(!env.tenant_file("acme").exists());
    let id = v["id"].as_str().unwrap();
    let trashed = env.data().join(format!("trash/ns_tenant_acme.{id}.db"));
    assert!(trashed.exists());
    // The late write survived the move: nothing was lost.
    let c = env.open(&trashed);
    let n: i64 = c
        .query_row("SELECT count(*) FROM users WHERE auth='late'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1);
    // Deleting again is a conflict, and an unknown tenant is not found.
    env.fails(&["tenant", "delete", "acme", "--yes"], 4);
    env.fails(&["tenant", "delete", "nobody", "--yes"], 3);
    // A deleted tenant cannot be trashed or activated.
    env.fails(&["tenant", "activate", "acme"], 4);
    let shown = env.json(&["tenant", "show", "acme"]);
    assert_eq!(shown["path"].as_str().unwrap(), trashed.to_str().unwrap());
}

#[test]
fn purge_removes_only_deleted_tenants_past_the_retention() {
    let env = Env::new();
    env.ok(&["tenant", "create", "old", "recent", "alive"]);
    let old = env.json(&["tenant", "delete", "old", "--yes"]);
    let recent = env.json(&["tenant", "delete", "recent", "--yes"]);
    // Age the first deletion by 40 days, in the SQL-default form the API may also write.
    env.open(&env.infra())
        .execute(
            "UPDATE tenants SET deleted_at = datetime('now', '-40 days') WHERE name='old'",
            [],
        )
        .unwrap();
    let old_file = env.data().join(format!(
        "trash/ns_tenant_old.{}.db",
        old["id"].as_str().unwrap()
    ));
    let recent_file = env.data().join(format!(
        "trash/ns_tenant_recent.{}.db",
        recent["id"].as_str().unwrap()
    ));

    let dry = env.json(&["tenant", "purge", "--dry-run"]);
    assert_eq!(dry["purged"].as_array().unwrap().len(), 1);
    assert!(old_file.exists());
    env.fails(&["tenant", "purge"], 2);
    assert!(old_file.exists());

    let v = env.json(&["tenant", "purge", "--older-than", "30d", "--yes"]);
    assert_eq!(v["purged"][0]["name"], "old");
    assert_eq!(v["kept"], 1);
    assert!(!old_file.exists());
    assert!(recent_file.exists());
    assert!(env.tenant_file("alive").exists());
    // The row stays, so the name stays reserved.
    env.fails(&["tenant", "create", "old"], 4);
    env.fails(&["tenant", "purge", "--older-than", "soon", "--yes"], 2);
}

#[test]
fn corrupt_infra_database_is_named_and_left_alone() {
    let env = Env::new();
    fs::create_dir_all(env.data().join("infra")).unwrap();
    fs::write(
        env.infra(),
        b"this is not a database, just text; ".repeat(200),
    )
    .unwrap();
    let before = snapshot(&env.data());
    for args in [&["tenant", "list"][..], &["tenant", "create", "acme"]] {
        let err = env.fails(args, 6);
        assert!(
            err.contains("infra/monk.db") && err.contains("not a valid SQLite"),
            "{err}"
        );
    }
    assert_eq!(snapshot(&env.data()), before);
}

#[test]
fn bad_database_urls_are_refused_and_passwords_never_printed() {
    let env = Env::new();
    // A PostgreSQL URL whose server is not there: exit 22, naming host and database, never the
    // password.
    let err = env.fails(
        &[
            "--database-url",
            "postgresql://u:sekrit@127.0.0.1:1/monk",
            "tenant",
            "list",
        ],
        22,
    );
    assert!(
        err.contains("127.0.0.1:1/monk") && !err.contains("sekrit"),
        "{err}"
    );
    let out = env
        .cmd()
        .env("DATABASE_URL", "postgres://u:sekrit@127.0.0.1:1/y")
        .args(["tenant", "create", "acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(22));
    assert!(!format!("{out:?}").contains("sekrit"));
    // `config` masks it.
    let out = env
        .cmd()
        .args([
            "--database-url",
            "postgresql://u:sekrit@127.0.0.1:1/y",
            "--format",
            "json",
            "config",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("u:***@127.0.0.1:1/y") && !text.contains("sekrit"),
        "{text}"
    );
    env.fails(
        &[
            "--database-url",
            "postgresql://h/db?sslmode=sometimes",
            "tenant",
            "list",
        ],
        2,
    );
    env.fails(&["--database-url", "mysql://x", "tenant", "list"], 2);
    env.fails(&["--database-url", "sqlite:../up", "tenant", "list"], 2);
    assert!(!env.data().exists());
}

/// Makes `dir` read-only for this process: chmod when not root, a read-only bind mount as root.
struct ReadOnly {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl ReadOnly {
    fn new(dir: &std::path::Path) -> Option<ReadOnly> {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let sh = |cmd: &str| {
            std::process::Command::new("sh")
                .args(["-c", cmd])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let d = dir.display();
        let mounted = if root {
            if !sh(&format!(
                "mount --bind '{d}' '{d}' && mount -o remount,bind,ro '{d}' '{d}'"
            )) {
                return None;
            }
            true
        } else {
            sh(&format!("chmod -R a-w '{d}'"));
            false
        };
        Some(ReadOnly {
            dir: dir.to_path_buf(),
            mounted,
        })
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let d = self.dir.display();
        let cmd = if self.mounted {
            format!("umount '{d}'")
        } else {
            format!("chmod -R u+w '{d}'")
        };
        let _ = std::process::Command::new("sh").args(["-c", &cmd]).status();
    }
}

#[test]
fn read_only_data_directory_fails_cleanly() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let before = snapshot(&env.data());
    let Some(_ro) = ReadOnly::new(&env.data()) else {
        panic!("cannot make a read-only directory although running as root (no mount permission)");
    };
    let err = env.fails(&["tenant", "create", "globex"], 9);
    assert!(
        err.contains("permission") || err.contains("read-only"),
        "{err}"
    );
    env.fails(&["tenant", "trash", "acme"], 9);
    drop(_ro);
    assert_eq!(snapshot(&env.data()), before);
    let v = env.json(&["tenant", "list"]);
    assert_eq!(names(&v), vec!["acme"]);
}

#[test]
fn config_precedence_flag_env_file_default() {
    let env = Env::new();
    fs::write(
        env.root().join("monk.toml"),
        "data_dir = \"from-file\"\ndatabase_url = \"sqlite:filedb\"\n",
    )
    .unwrap();
    let mut c = assert_cmd::Command::cargo_bin("monkctl").unwrap();
    let out = c
        .current_dir(env.root())
        .env_remove("MONK_DATA_DIR")
        .env_remove("DATABASE_URL")
        .env("HOME", env.root())
        .args(["--format", "json", "config"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["data_dir"]["value"]
        .as_str()
        .unwrap()
        .ends_with("from-file"));
    assert_eq!(v["data_dir"]["source"]["kind"], "config_file");
    assert_eq!(v["database_url"]["value"], "sqlite:filedb");

    let out = assert_cmd::Command::cargo_bin("monkctl")
        .unwrap()
        .current_dir(env.root())
        .env("MONK_DATA_DIR", "from-env")
        .env_remove("DATABASE_URL")
        .args(["--format", "json", "config"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data_dir"]["value"], "from-env");
    assert_eq!(v["data_dir"]["source"]["kind"], "env");
    assert_eq!(v["database_url"]["source"]["kind"], "config_file");

    let out = assert_cmd::Command::cargo_bin("monkctl")
        .unwrap()
        .current_dir(env.root())
        .env("MONK_DATA_DIR", "from-env")
        .args(["--format", "json", "--data-dir", "from-flag", "config"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data_dir"]["value"], "from-flag");
    assert_eq!(v["data_dir"]["source"]["kind"], "flag");

    // Creating with the file's settings puts the infra database where the file says.
    let out = assert_cmd::Command::cargo_bin("monkctl")
        .unwrap()
        .current_dir(env.root())
        .env_remove("MONK_DATA_DIR")
        .env_remove("DATABASE_URL")
        .args(["tenant", "create", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(env.root().join("from-file/infra/filedb.db").exists());

    // A broken config file names itself and its line.
    fs::write(
        env.root().join("monk.toml"),
        "data_dir = \"x\"\ndata_dri = 3\n",
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("monkctl")
        .unwrap()
        .current_dir(env.root())
        .env_remove("MONK_DATA_DIR")
        .args(["config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("monk.toml:2"), "{err}");
    env.fails(&["--config", "/nonexistent/monk.toml", "config"], 3);
}

#[test]
fn broken_pipe_is_not_an_error() {
    let env = Env::new();
    let names: Vec<String> = (0..60).map(|i| format!("t{i:03}")).collect();
    let mut args = vec!["tenant", "create"];
    args.extend(names.iter().map(String::as_str));
    env.ok(&args);
    let bin = assert_cmd::cargo::cargo_bin("monkctl");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' --data-dir '{}' --format json tenant list | head -c 10 >/dev/null; echo ${{PIPESTATUS:-}}",
            bin.display(),
            env.data().display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn create_from_file_takes_aligned_columns_and_tabs() {
    let env = Env::new();
    let list = env.root().join("aligned.txt");
    fs::write(
        &list,
        "acme     admin    Acme  Inc\nglobex\t\tops\tGlobex\ninitech  \n",
    )
    .unwrap();
    env.ok(&["tenant", "create", "--from-file", list.to_str().unwrap()]);
    let acme = env.json(&["tenant", "show", "acme"]);
    assert_eq!(acme["owner_name"], "admin");
    assert_eq!(acme["description"], "Acme  Inc");
    let globex = env.json(&["tenant", "show", "globex"]);
    assert_eq!(globex["owner_name"], "ops");
    assert_eq!(globex["description"], "Globex");
    let initech = env.json(&["tenant", "show", "initech"]);
    assert_eq!(initech["owner_id"], "00000000-0000-0000-0000-000000000000");
}

#[test]
fn an_absurd_retention_is_refused_not_wrapped() {
    let env = Env::new();
    env.ok(&["tenant", "create", "fresh"]);
    env.ok(&["tenant", "delete", "fresh", "--yes"]);
    let before = snapshot(&env.data());
    for d in ["200000000000000d", "99999999999999999999d"] {
        env.fails(&["tenant", "purge", "--older-than", d, "--yes"], 2);
    }
    assert_eq!(snapshot(&env.data()), before);
    let v = env.json(&["tenant", "purge", "--older-than", "1000w", "--yes"]);
    assert_eq!(v["purged"].as_array().unwrap().len(), 0);
    // A bare number is no duration: it once meant days here and seconds elsewhere.
    let e = env.fails(&["tenant", "purge", "--older-than", "30", "--yes"], 2);
    assert!(e.contains("no unit") && e.contains("30d"), "{e}");
    let e = env.fails(&["migrate", "status", "--busy-timeout", "5"], 2);
    assert!(e.contains("no unit"), "{e}");
    assert_eq!(snapshot(&env.data()), before);
}

/// A confirmation answered no at a terminal is its own exit code (21), not a failure, and
/// changes nothing. The terminal is a pseudo-terminal from util-linux's `script`.
#[test]
fn a_cancelled_confirmation_exits_21_and_changes_nothing() {
    use std::io::Write;
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let before = snapshot(&env.data());
    let cmd = format!(
        "'{}' --data-dir '{}' tenant delete acme",
        env!("CARGO_BIN_EXE_monkctl"),
        env.data().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .current_dir(env.root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` (a pseudo-terminal for the prompt)");
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(21), "{text}");
    assert!(text.contains("cancelled: nothing was changed"), "{text}");
    assert_eq!(snapshot(&env.data()), before);
}

/// After a purge, a deleted tenant is reported as purged (not as a missing file to fix), and a
/// later purge counts it neither as due nor as kept.
#[test]
fn purged_tenants_are_shown_as_purged_and_not_counted_again() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    env.ok(&["tenant", "create", "beta"]);
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    env.ok(&["tenant", "delete", "beta", "--yes"]);
    let v = env.json(&["tenant", "purge", "--older-than", "0s", "--yes"]);
    assert_eq!(v["purged"].as_array().unwrap().len(), 2, "{v}");
    let v = env.json(&["tenant", "purge", "--older-than", "30d", "--dry-run"]);
    assert_eq!(v["kept"], 0, "{v}");
    assert_eq!(v["purged"].as_array().unwrap().len(), 0, "{v}");
    let show = env.json(&["tenant", "show", "acme"]);
    assert_eq!(show["purged"], true, "{show}");
    assert_eq!(show["file_error"], Value::Null, "{show}");
    let (_, code) = {
        let out = env.run(&["--format", "json", "doctor"]);
        (out.stdout, out.status.code())
    };
    assert_eq!(code, Some(0));
    // A live tenant whose file is missing is still an error to fix.
    env.ok(&["tenant", "create", "gamma"]);
    std::fs::remove_file(env.tenant_file("gamma")).unwrap();
    let show = env.json(&["tenant", "show", "gamma"]);
    assert_eq!(show["purged"], false);
    assert!(show["file_error"].as_str().unwrap().contains("missing"));
}

/// The way back from `tenant delete`: `tenant undelete` while the trash copy exists.
#[test]
fn undelete_brings_a_deleted_tenant_back_from_its_trash_copy() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "--owner", "admin"]);
    env.open(&env.tenant_file("acme"))
        .execute(
            "INSERT INTO users (id, name, auth, access) VALUES ('u1', 'kept', 'kept', 'read')",
            [],
        )
        .unwrap();
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    env.fails(&["tenant", "suspend", "acme"], 4);
    let v = env.json(&["tenant", "undelete", "acme"]);
    assert_eq!(v["status"], "active", "{v}");
    assert_eq!(v["deleted_at"], Value::Null);
    let n: i64 = env
        .open(&env.tenant_file("acme"))
        .query_row("SELECT count(*) FROM users WHERE name = 'kept'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(fs::read_dir(env.data().join("trash")).unwrap().count(), 0);
    let out = env.run(&["--format", "json", "doctor"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Only a deleted tenant; never after a purge.
    env.fails(&["tenant", "undelete", "acme"], 4);
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    env.ok(&["tenant", "purge", "--older-than", "0s", "--yes"]);
    let e = env.fails(&["tenant", "undelete", "acme"], 3);
    assert!(e.contains("purged") && e.contains("monkctl restore"), "{e}");
    env.fails(&["tenant", "undelete", "nobody"], 3);
}

/// Killed after the file was put back but before the row changed: the tenant is still deleted
/// and a retry finishes the undelete.
#[test]
fn undelete_killed_before_its_commit_is_finished_by_a_retry() {
    use std::io::BufRead;
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    let mut child = env
        .std_cmd()
        .args(["tenant", "undelete", "acme"])
        .env("MONKCTL_PAUSE_AT", "tenant.undelete.placed")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("paused at tenant.undelete.placed"), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
    let show = env.json(&["tenant", "show", "acme"]);
    assert_eq!(show["status"], "deleted");
    let v = env.json(&["tenant", "undelete", "acme"]);
    assert_eq!(v["status"], "active", "{v}");
    let out = env.run(&["--format", "json", "doctor"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"),
        "{report:#}"
    );
}

/// `tenant create --skip-existing`: a provisioning script run again after an interruption
/// exits 0, leaving the tenants that exist as they are and creating the rest.
#[test]
fn create_skip_existing_makes_provisioning_rerunnable() {
    let env = Env::new();
    let list = env.root().join("tenants.txt");
    fs::write(&list, "acme\nbeta admin\n").unwrap();
    let l = list.to_str().unwrap();
    env.ok(&["tenant", "create", "--from-file", l]);
    env.fails(&["tenant", "create", "--from-file", l], 4);
    let before = snapshot(&env.data());
    let v = env.json(&["tenant", "create", "--from-file", l, "--skip-existing"]);
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["result"]["existed"] == true));
    assert_eq!(snapshot(&env.data()), before);
    fs::write(&list, "acme\nbeta admin\ngamma\n").unwrap();
    let out = env.ok(&["tenant", "create", "--from-file", l, "--skip-existing"]);
    assert!(
        out.contains("1 created, 2 existed already, 0 failed"),
        "{out}"
    );
    // One name, the same; a deleted tenant's name is still refused.
    env.ok(&["tenant", "create", "acme", "--skip-existing"]);
    env.ok(&["tenant", "delete", "gamma", "--yes"]);
    env.fails(&["tenant", "create", "gamma", "--skip-existing"], 4);
}

/// `--yes` is one global flag: commands that never ask accept it, destructive ones take it
/// anywhere on the line.
#[test]
fn yes_is_accepted_by_every_command() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "--yes"]);
    env.ok(&["tenant", "list", "--yes"]);
    env.ok(&["--yes", "doctor"]);
    env.ok(&["-y", "tenant", "delete", "acme"]);
    let show = env.json(&["tenant", "show", "acme", "-y"]);
    assert_eq!(show["status"], "deleted");
}

/// With `--format json`, a command that fails before printing its result prints the error as
/// one JSON object on stdout (the exit code's name, the code, the message), besides the
/// `error:` line on stderr; in table form stdout stays empty.
#[test]
fn json_errors_are_one_object_on_stdout() {
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["tenant", "create", "acme"]);
    let cases: [(&[&str], i32, &str, &str); 3] = [
        (&["tenant", "show", "ghost"], 3, "not_found", "ghost"),
        (&["tenant", "create", "acme"], 4, "conflict", "acme"),
        (&["tenant", "show", "Bad/Name"], 2, "usage", "Bad/Name"),
    ];
    for (args, code, name, names_it) in cases {
        let mut a = vec!["--format", "json"];
        a.extend_from_slice(args);
        let out = env.run(&a);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if args[1] == "create" {
            // A run over several names reports each in its results document instead.
            let v: Value = serde_json::from_str(&stdout).expect("one JSON document");
            assert_eq!(v["failed"], 1, "{v}");
            assert!(v.get("error").is_none(), "{v}");
            continue;
        }
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("{args:?}: stdout is not one JSON document ({e}): {stdout}")
        });
        assert_eq!(v["error"]["code"], name, "{v}");
        assert_eq!(v["error"]["exit_code"], code, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(names_it), "{v}");
        assert!(stderr.contains(&format!("error: {message}")), "{stderr}");
        let table = env.run(args);
        assert_eq!(table.status.code(), Some(code));
        assert!(table.stdout.is_empty(), "table form printed on stdout");
    }
}

#[test]
fn lifecycle_verbs_take_several_names_and_report_each() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "globex", "initech"]);
    // Several names: a batch, each tenant reported, exit 8 when one failed; the others done.
    let out = env.run(&[
        "--format", "json", "tenant", "trash", "acme", "nosuch", "globex",
    ]);
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["succeeded"], 2, "{v}");
    assert_eq!(v["failed"], 1, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["tenant"].as_str().unwrap())
            .collect::<Vec<_>>(),
        // In name order, as every run reports its tenants.
        ["acme", "globex", "nosuch"]
    );
    assert_eq!(results[2]["exit_code"], 3, "{v}");
    assert_eq!(results[0]["result"]["changed"], true, "{v}");
    let listed = env.json(&["tenant", "list", "--trashed"]);
    let trashed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["trashed_at"].is_null())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(trashed, ["acme", "globex"]);
    // All succeed: exit 0; one name keeps the single result.
    env.ok(&["tenant", "untrash", "acme", "globex"]);
    let one = env.json(&["tenant", "suspend", "initech"]);
    assert_eq!(one["name"], "initech", "{one}");
    assert_eq!(one["status"], "suspended", "{one}");
    // delete: an unknown name is refused before the one confirmation; then each is deleted.
    let out = env.run(&["--yes", "tenant", "delete", "acme", "nosuch"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(names(&env.json(&["tenant", "list"])).len(), 3);
    let v = env.json(&["--yes", "tenant", "delete", "acme", "globex"]);
    assert_eq!(v["succeeded"], 2, "{v}");
    assert!(!env.tenant_file("acme").exists());
    let v = env.json(&["tenant", "undelete", "acme", "globex"]);
    assert_eq!(v["succeeded"], 2, "{v}");
    assert!(env.tenant_file("acme").exists());
}

#[test]
fn tables_fit_80_columns_unless_wide_and_csv_has_every_column() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme_corporation_eu", "globex"]);
    for args in [&["tenant", "list"][..], &["tenant", "usage"]] {
        let out = env.ok(args);
        for line in out.lines() {
            assert!(line.chars().count() <= 80, "{args:?}: {line}");
        }
        let wide = env.ok(&[args, &["--wide"][..]].concat());
        assert!(
            wide.lines().any(|l| l.chars().count() > 80),
            "{args:?}: {wide}"
        );
    }
    let list = env.ok(&["tenant", "list"]);
    assert!(!list.contains("owner_id"), "{list}");
    assert!(env.ok(&["tenant", "list", "--wide"]).contains("owner_id"));
    let csv = env.ok(&["--format", "csv", "tenant", "list"]);
    assert_eq!(
        csv.lines().next().unwrap(),
        "id,name,status,owner_id,created_at,trashed_at,deleted_at,size,fixtures"
    );
}

#[test]
fn quiet_prints_the_data_alone() {
    let env = Env::new();
    // A new data directory is announced, but not with -q.
    let out = env.run(&["-q", "tenant", "create", "acme"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loud = env.ok(&["tenant", "list"]);
    assert!(loud.contains("1 tenant(s)"), "{loud}");
    let quiet = env.ok(&["tenant", "list", "--quiet"]);
    assert!(!quiet.contains("tenant(s)"), "{quiet}");
    assert!(quiet.contains("acme"), "{quiet}");
    // Errors still reach stderr, with the same exit code.
    let out = env.run(&["-q", "tenant", "show", "nosuch"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
}

#[test]
fn verbose_times_each_step_on_stderr_and_leaves_stdout_alone() {
    let env = Env::new();
    let out = env.run(&[
        "-v", "--format", "json", "tenant", "create", "acme", "globex",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON alone");
    assert_eq!(v["succeeded"], 2);
    let err = String::from_utf8_lossy(&out.stderr);
    let steps: Vec<&str> = err.lines().filter(|l| l.starts_with('[')).collect();
    assert!(steps[0].contains("deployment: sqlite:monk"), "{err}");
    assert!(
        steps
            .iter()
            .any(|l| l.contains("creating tenants: 2 to do")),
        "{err}"
    );
    assert!(steps.iter().any(|l| l.ends_with("done: acme")), "{err}");
    assert!(steps.iter().any(|l| l.ends_with("done: globex")), "{err}");
    assert!(steps.last().unwrap().ends_with("exit 0"), "{err}");
    assert!(steps.iter().all(|l| l.contains(" ms] ")), "{err}");
    // Quiet and verbose at once is a usage error.
    env.fails(&["-q", "-v", "tenant", "list"], 2);
}

/// A run over many tenants, at a terminal's reading: the summary first, then only the tenants
/// that need attention, those failing the same way in one row and one stderr line.
#[test]
fn a_run_over_many_tenants_lists_only_what_needs_attention() {
    let env = Env::new();
    let many: Vec<String> = (0..60).map(|i| format!("t{i:02}")).collect();
    let mut create = vec!["tenant", "create"];
    create.extend(many.iter().map(String::as_str));
    env.ok(&create);

    // All 60 up to date: the summary, and no row.
    let status = env.ok(&["migrate", "status"]);
    assert!(
        status.contains("0 of 60 tenants need attention") && !status.contains("t00"),
        "{status}"
    );
    assert!(status.find("tenants: 60").unwrap() < status.find("0 of 60").unwrap());
    // --all-rows lists every one, and JSON always has every tenant.
    let all = env.ok(&["--all-rows", "migrate", "status"]);
    assert!(many.iter().all(|t| all.contains(t.as_str())), "{all}");
    let json = env.json(&["migrate", "status"]);
    assert_eq!(json["tenants"]["results"].as_array().unwrap().len(), 60);

    // Three names that do not exist among 60 that do: one row and one error for the three.
    let mut suspend = vec!["tenant", "suspend"];
    suspend.extend(many.iter().map(String::as_str));
    suspend.extend(["nope1", "nope2", "nope3"]);
    let out = env.run(&suspend);
    assert_eq!(out.status.code(), Some(8));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("3 of 63 tenants need attention") && !stdout.contains("t00"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 tenants: nope1, nope2, nope3"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("nope").count(), 3, "{stdout}");
    assert_eq!(stderr.matches("error: nope1:").count(), 1, "{stderr}");
    assert!(!stderr.contains("error: nope2:"), "{stderr}");
    assert!(
        stderr.contains("the same error as nope1 for 2 more tenants: nope2 nope3"),
        "{stderr}"
    );
    // The other 60 were suspended, and a table of a few tenants still lists each one.
    let shown = env.ok(&["tenant", "activate", "t00", "t01"]);
    assert!(shown.contains("t00") && shown.contains("t01"), "{shown}");
    assert_eq!(env.json(&["tenant", "show", "t59"])["status"], "suspended");
}

/// Every command over several tenants takes them the same ways: NAME arguments, `--tenant a,b`,
/// `--from-file FILE` (the `tenant create --from-file` format, `-` for stdin), each once, and
/// reports them in name order.
#[test]
fn every_command_over_tenants_takes_the_same_selection() {
    let env = Env::new();
    env.ok(&["tenant", "create", "alpha", "bravo", "charlie", "delta"]);
    let file = env.root().join("tenants.txt");
    fs::write(&file, "# the fleet\ncharlie  root  Charlie Inc\n\nbravo\n").unwrap();
    let file = file.to_str().unwrap();
    let tenants_of = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|r| r["tenant"].as_str().unwrap().to_string())
            .collect()
    };

    // Names, --tenant and the file together; bravo once; in name order.
    let shown = env.json(&[
        "tenant",
        "show",
        "delta",
        "--tenant",
        "alpha,bravo",
        "--from-file",
        file,
    ]);
    assert_eq!(tenants_of(&shown), ["alpha", "bravo", "charlie", "delta"]);
    assert_eq!(shown["results"][3]["result"]["name"], "delta");

    // Standard input.
    let out = env
        .cmd()
        .args(["--format", "json", "tenant", "suspend", "--from-file", "-"])
        .write_stdin("charlie\nalpha\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tenants_of(&v), ["alpha", "charlie"]);
    assert_eq!(
        env.json(&["tenant", "show", "charlie"])["status"],
        "suspended"
    );
    env.ok(&["tenant", "activate", "--tenant", "alpha,charlie"]);

    // The same file for the other commands over tenants.
    let usage = env.json(&["tenant", "usage", "--from-file", file]);
    let names: Vec<&str> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bravo", "charlie"]);
    let vacuum = env.json(&["tenant", "vacuum", "--from-file", file]);
    assert_eq!(tenants_of(&vacuum).len(), 2);
    let out_dir = env.root().join("backups");
    let extract = env.json(&[
        "extract",
        "--from-file",
        file,
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(tenants_of(&extract), ["bravo", "charlie"]);
    let status = env.json(&["migrate", "status", "--from-file", file]);
    assert_eq!(status["summary"]["tenant_count"], 2);
    let query = env.json(&[
        "query",
        "SELECT count(*) AS n FROM users",
        "--from-file",
        file,
    ]);
    assert_eq!(query.as_array().unwrap().len(), 2);
    let doctor = env.json(&["doctor", "--from-file", file]);
    assert_eq!(doctor["summary"]["tenants_checked"], 2);

    // A bad file: named, with its line, and nothing done.
    fs::write(env.root().join("bad.txt"), "bravo\nNot-A-Name\n").unwrap();
    let before = snapshot(&env.data());
    let err = env.fails(&["tenant", "trash", "--from-file", "bad.txt"], 2);
    assert!(err.contains("bad.txt") && err.contains('2'), "{err}");
    assert_eq!(snapshot(&env.data()), before);
    let err = env.fails(&["tenant", "trash", "--from-file", "missing.txt"], 3);
    assert!(err.contains("missing.txt"), "{err}");
    // Nothing to select at all is a usage error.
    env.fails(&["tenant", "trash"], 2);
}
