//! The deployment as a whole: the operator's migrations are part of it, and every command that
//! creates, judges or changes a tenant's schema reads the same set (create, templates, archives,
//! restore, doctor, migrate), as an operator chains them.

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use serde_json::Value;

/// Writes `V<version>__<name>.sql` files into `<root>/<dir>`.
fn migrations(env: &Env, dir: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = env.root().join(dir);
    std::fs::create_dir_all(&d).unwrap();
    for (name, sql) in files {
        std::fs::write(d.join(name), sql).unwrap();
    }
    d
}

const V100: (&str, &str) = (
    "V100__user_nickname.sql",
    "ALTER TABLE users ADD COLUMN nickname TEXT;\n",
);
const V102: (&str, &str) = (
    "V102__audit.sql",
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT NOT NULL);\n",
);

fn with_set(env: &Env, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--migrations", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    env.run(&full)
}

fn ok_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn versions(env: &Env, name: &str) -> Vec<i64> {
    let c = env.open(&env.tenant_file(name));
    let mut st = c
        .prepare("SELECT version FROM refinery_schema_history ORDER BY version")
        .unwrap();
    let v = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<i64>, _>>()
        .unwrap();
    v
}

#[test]
fn after_migrate_up_every_command_knows_the_operators_migrations() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "--owner", "admin"]);
    // A new tenant records its history: migrate finds nothing to adopt or run.
    assert_eq!(versions(&env, "acme"), vec![1]);
    let st = env.json(&["migrate", "status"]);
    assert_eq!(
        st["tenants"]["results"][0]["result"]["adopt"], false,
        "{st}"
    );
    // An archive made before the operator's migrations, for later.
    let old = env.root().join("acme-v1.monk.db");
    env.ok(&["extract", "acme", "-o", old.to_str().unwrap()]);

    let dir = migrations(&env, "migrations", &[V100, V102]);
    let up = with_set(&env, &dir, &["migrate", "up"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(versions(&env, "acme"), vec![1, 100, 102]);

    // tenant create (plain, --from-file) makes tenants at the set's latest, recorded.
    let list = env.root().join("tenants.txt");
    std::fs::write(&list, "beta\ngamma admin\n").unwrap();
    with_set(&env, &dir, &["tenant", "create", "fresh"]);
    let out = with_set(
        &env,
        &dir,
        &["tenant", "create", "--from-file", list.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in ["fresh", "beta", "gamma"] {
        assert_eq!(versions(&env, t), vec![1, 100, 102], "{t}");
    }
    let st = ok_json(&with_set(
        &env,
        &dir,
        &["--format", "json", "migrate", "status"],
    ));
    for r in st["tenants"]["results"].as_array().unwrap() {
        assert_eq!(r["result"]["version"], 102, "{r}");
        assert_eq!(r["result"]["adopt"], false, "{r}");
        assert_eq!(r["result"]["pending"], serde_json::json!([]), "{r}");
    }

    // The environment and the config file carry the set as well as the flag.
    let cfg = env.root().join("monk.toml");
    std::fs::write(&cfg, "migrations_dir = \"migrations\"\n").unwrap();
    let c = env.json(&["config"]);
    assert_eq!(c["migrations_dir"]["value"], "migrations", "{c}");
    assert_eq!(c["migrations_dir"]["source"]["kind"], "config_file");

    // An archive of a migrated tenant is judged against the set: fine with it ...
    let arch = env.root().join("acme.monk.db");
    env.ok(&["extract", "acme", "-o", arch.to_str().unwrap()]);
    let v = env.json(&["archive", "verify", arch.to_str().unwrap()]);
    assert_eq!(v["schema_version"], 102);
    assert_eq!(v["needs_migration"], false);
    let i = env.json(&["archive", "inspect", arch.to_str().unwrap()]);
    assert_eq!(i["schema"]["version"], 102, "{i}");
    for args in [
        vec!["restore", arch.to_str().unwrap(), "--as", "acme_copy"],
        vec!["restore", arch.to_str().unwrap(), "--force", "--yes"],
        vec![
            "restore",
            arch.to_str().unwrap(),
            "--as",
            "acme_m",
            "--migrate",
        ],
    ] {
        let out = env.run(&[&["--format", "json"][..], &args].concat());
        let r = ok_json(&out);
        assert_eq!(r["schema_version"], 102, "{args:?}: {r}");
        assert_eq!(r["needs_migration"], false, "{args:?}: {r}");
    }
    // ... and doctor is healthy, its drift check against the whole set.
    let d = env.run(&["--format", "json", "doctor"]);
    let dj: Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(d.status.code(), Some(0), "{dj}");
    assert!(
        !dj.to_string().contains("schema_newer"),
        "doctor with the set: {dj}"
    );

    // Without the set (no config file, no flag): versions it lacks are exit 17, named.
    std::fs::remove_file(&cfg).unwrap();
    let e = env.fails(&["archive", "verify", arch.to_str().unwrap()], 17);
    assert!(
        e.contains("V100 user_nickname") && e.contains("V102 audit"),
        "{e}"
    );
    assert!(e.contains("built-in migrations"), "{e}");
    assert!(e.contains("--migrations"), "{e}");
    env.fails(
        &["restore", arch.to_str().unwrap(), "--as", "acme_no_set"],
        17,
    );
    let d = env.run(&["--format", "json", "doctor"]);
    assert!(String::from_utf8_lossy(&d.stdout).contains("schema_newer"));
    // The environment variable works as well.
    let out = env
        .cmd()
        .env("MONK_MIGRATIONS_DIR", &dir)
        .args(["archive", "verify", arch.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The archive made at V1 is behind the set: needs_migration, pending named.
    let v = ok_json(&with_set(
        &env,
        &dir,
        &[
            "--format",
            "json",
            "archive",
            "verify",
            old.to_str().unwrap(),
        ],
    ));
    assert_eq!(v["needs_migration"], true);
    assert_eq!(v["pending_migrations"], serde_json::json!([100, 102]));
    // Restoring it over the newer tenant would roll its schema back: refused, both versions named.
    let out = with_set(
        &env,
        &dir,
        &["restore", old.to_str().unwrap(), "--force", "--yes"],
    );
    assert_eq!(out.status.code(), Some(4));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("schema version 1") && e.contains("version 102") && e.contains("--migrate"),
        "{e}"
    );
    assert_eq!(versions(&env, "acme"), vec![1, 100, 102]);
    // With --migrate it is restored and brought up again.
    let r = ok_json(&with_set(
        &env,
        &dir,
        &[
            "--format",
            "json",
            "restore",
            old.to_str().unwrap(),
            "--force",
            "--yes",
            "--migrate",
        ],
    ));
    assert_eq!(r["schema_version"], 102, "{r}");
    assert_eq!(r["needs_migration"], false);
    assert_eq!(versions(&env, "acme"), vec![1, 100, 102]);

    // An edited migration is exit 17 too, naming the file and the checksums.
    std::fs::write(
        dir.join(V102.0),
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT);\n",
    )
    .unwrap();
    let out = with_set(&env, &dir, &["archive", "verify", arch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(17));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("V102 audit was edited") && e.contains("V102__audit.sql"),
        "{e}"
    );
}

#[test]
fn templates_follow_the_migration_set() {
    let env = Env::new();
    let dir = migrations(&env, "migrations", &[V100]);
    common::fixture(
        &env,
        "crm",
        "name = \"crm\"\nversion = \"1\"\nfiles = [\"01.sql\"]\n",
        &[(
            "01.sql",
            b"CREATE TABLE contacts (id INTEGER PRIMARY KEY, nick TEXT);\n",
        )],
    );
    let b = with_set(
        &env,
        &dir,
        &[
            "--format",
            "json",
            "template",
            "build",
            "crm_t",
            "--fixture",
            "crm",
        ],
    );
    let meta = ok_json(&b);
    assert_eq!(meta["schema_version"], 100, "{meta}");
    let out = with_set(
        &env,
        &dir,
        &["tenant", "create", "one", "--template", "crm_t"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(versions(&env, "one"), vec![1, 100]);
    let out = with_set(
        &env,
        &dir,
        &["tenant", "create", "sys", "--template", "system"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(versions(&env, "sys"), vec![1, 100]);

    // The set moves on: the user template is refused with the command that rebuilds it, the
    // system template is rebuilt.
    migrations(&env, "migrations", &[V102]);
    let out = with_set(
        &env,
        &dir,
        &["tenant", "create", "two", "--template", "crm_t"],
    );
    assert_eq!(out.status.code(), Some(7));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("stale") && e.contains("monkctl template build crm_t --fixture crm"),
        "{e}"
    );
    let out = with_set(
        &env,
        &dir,
        &["tenant", "create", "sys2", "--template", "system"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(versions(&env, "sys2"), vec![1, 100, 102]);
    let out = with_set(
        &env,
        &dir,
        &["template", "build", "crm_t", "--fixture", "crm"],
    );
    assert!(out.status.success());
    let out = with_set(
        &env,
        &dir,
        &["tenant", "create", "two", "--template", "crm_t"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(versions(&env, "two"), vec![1, 100, 102]);
}

#[test]
fn a_retry_line_runs_as_printed() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    env.ok(&["tenant", "create", "beta"]);
    let dir = migrations(
        &env,
        "my migrations",
        &[("V2__drop_filters.sql", "DROP TABLE filters;\n")],
    );
    // Refused as destructive: the retry line names the set and --allow-destructive.
    let out = with_set(&env, &dir, &["migrate", "up"]);
    assert_eq!(out.status.code(), Some(18));
    let e = String::from_utf8_lossy(&out.stderr);
    let line = e
        .lines()
        .find_map(|l| l.split_once("retry with: ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no retry line in {e}"));
    assert!(
        line.contains("--migrations") && line.contains("--allow-destructive"),
        "{line}"
    );
    // Pasted into a shell, it runs.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "PATH={}:$PATH; {line}",
            Path::new(env!("CARGO_BIN_EXE_monkctl"))
                .parent()
                .unwrap()
                .display()
        ))
        .current_dir(env.root())
        .env_remove("MONK_DATA_DIR")
        .env_remove("MONK_MIGRATIONS_DIR")
        .env_remove("DATABASE_URL")
        .env("HOME", env.root())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{line}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for t in ["acme", "beta"] {
        assert_eq!(versions(&env, t), vec![1, 2], "{t}");
    }
}

/// Copies the registry and tenants the Monk API 6.2 wrote into `<data>/<name>/`.
fn api_directory(env: &Env, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.data().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/monk-api-6.2");
    for e in std::fs::read_dir(reference).unwrap().flatten() {
        let to = dir.join(e.file_name());
        std::fs::copy(e.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for d in [env.data(), dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    dir
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn init_layout_api_makes_the_directory_the_api_reads() {
    let env = Env::new();
    let v = env.json(&["init", "--layout", "api"]);
    assert_eq!(v["layout"], "api");
    assert_eq!(v["api_env"]["DATABASE_URL"], "sqlite:monk");
    let abs = v["api_env"]["SQLITE_DATA_DIR"].as_str().unwrap();
    assert!(
        Path::new(abs).is_absolute() && Path::new(abs).ends_with("data"),
        "{abs}"
    );
    assert!(env.data().join("monk/public.db").is_file());
    // Found again without --layout, and new tenants go beside the API's registry.
    env.ok(&["tenant", "create", "acme"]);
    assert!(env.data().join("monk/ns_tenant_acme.db").is_file());
    let c = env.json(&["config"]);
    assert_eq!(c["layout"], "api");
    assert_eq!(c["layout_source"]["kind"], "detected");
    assert_eq!(c["api_env"]["DATABASE_URL"], "sqlite:monk");
    // The design layout stays the default for a new directory, and says the API cannot read it.
    let other = Env::new();
    let out = other.run(&["init"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("design") && text.contains("--layout api"),
        "{text}"
    );
    // init never makes a second registry beside one.
    let e = other.fails(&["init", "--layout", "api"], 4);
    assert!(
        e.contains("already holds a registry") && e.contains("infra/monk.db"),
        "{e}"
    );
    assert!(!other.data().join("monk/public.db").exists());
}

#[test]
fn the_one_api_registry_of_a_directory_is_found_and_two_are_never_guessed_between() {
    let env = Env::new();
    // The API unconfigured writes sqlite:root: found with no DATABASE_URL.
    api_directory(&env, "root");
    let list = env.json(&["tenant", "list"]);
    assert_eq!(names(&list), vec!["acme", "globex"]);
    let c = env.json(&["config"]);
    assert_eq!(c["database_url"]["value"], "sqlite:root", "{c}");
    assert_eq!(c["database_url"]["source"]["kind"], "detected");
    // A second API database: every command refuses to guess, naming both and the setting.
    api_directory(&env, "other");
    for args in [
        vec!["tenant", "list"],
        vec!["tenant", "create", "x"],
        vec!["doctor"],
        vec!["migrate", "status"],
    ] {
        let e = env.fails(&args, 2);
        assert!(
            e.contains("root/public.db")
                && e.contains("other/public.db")
                && e.contains("DATABASE_URL"),
            "{args:?}: {e}"
        );
    }
    assert!(!env.data().join("root/ns_tenant_x.db").exists());
    assert!(!env.data().join("db_main").exists());
    // DATABASE_URL chooses; doctor then reports the other registry.
    let list = env.json(&["--database-url", "sqlite:other", "tenant", "list"]);
    assert_eq!(names(&list), vec!["acme", "globex"]);
    let out = env.run(&[
        "--database-url",
        "sqlite:root",
        "--format",
        "json",
        "doctor",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let second: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "second_registry")
        .collect();
    assert_eq!(second.len(), 1, "{v:#}");
    assert!(second[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("other/public.db"));
}

#[test]
fn both_layouts_in_one_directory_need_the_layout_setting() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    api_directory(&env, "monk");
    let e = env.fails(&["tenant", "list"], 2);
    assert!(
        e.contains("infra/monk.db") && e.contains("monk/public.db") && e.contains("--layout"),
        "{e}"
    );
    // Named explicitly the name alone does not choose either.
    env.fails(&["--database-url", "sqlite:monk", "tenant", "list"], 2);
    let design = env.json(&["--layout", "design", "tenant", "list"]);
    assert_eq!(names(&design), vec!["acme"]);
    let api = env
        .cmd()
        .env("MONK_LAYOUT", "api")
        .args(["--format", "json", "tenant", "list"])
        .output()
        .unwrap();
    assert_eq!(names(&ok_json(&api)), vec!["acme", "globex"]);
    let e = env.fails(&["--layout", "flat", "tenant", "list"], 2);
    assert!(e.contains("flat"), "{e}");
}

#[test]
fn the_first_write_says_it_created_a_data_directory_and_reads_create_nothing() {
    let env = Env::new();
    let out = env.run(&["tenant", "list"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!env.data().exists());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("created a new data directory"));
    let out = env.run(&["tenant", "create", "acme"]);
    assert!(out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("created a new data directory") && e.contains("design layout"),
        "{e}"
    );
    let out = env.run(&["tenant", "create", "beta"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("created a new data directory"));
}

#[test]
fn a_stock_deployment_is_healthy_and_fleet_wide_findings_come_once() {
    let env = Env::new();
    for t in ["acme", "beta", "gamma", "delta"] {
        env.ok(&["tenant", "create", t]);
    }
    env.ok(&["tenant", "create", "epsilon", "--owner", "admin"]);
    let out = env.run(&["--format", "json", "doctor", "--full"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["findings"], serde_json::json!([]), "{v:#}");

    // Four tenants without their fixture records (as the API leaves its own): one finding.
    let reg = env.open(&env.infra());
    reg.execute(
        "DELETE FROM tenant_fixtures WHERE tenant_id IN (SELECT id FROM tenants WHERE name <> 'epsilon')",
        [],
    )
    .unwrap();
    drop(reg);
    let v = env.json(&["doctor"]);
    let found: Vec<&Value> = v["findings"].as_array().unwrap().iter().collect();
    assert_eq!(found.len(), 1, "{v:#}");
    assert_eq!(found[0]["code"], "fixture_unrecorded");
    assert_eq!(found[0]["count"], 4);
    assert_eq!(
        found[0]["tenants"],
        serde_json::json!(["acme", "beta", "delta", "gamma"])
    );
    assert_eq!(found[0]["tenant"], Value::Null);
    let table = env.ok(&["doctor", "--wide"]);
    assert!(table.contains("4 tenants"), "{table}");
    assert_eq!(table.matches("fixture_unrecorded").count(), 1, "{table}");
    // Repair still repairs each one.
    env.ok(&["doctor", "--repair"]);
    let v = env.json(&["doctor"]);
    assert_eq!(v["findings"], serde_json::json!([]), "{v:#}");
}
