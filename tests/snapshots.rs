//! What people and scripts read, pinned: the `--help` of every command, and a table (at 80
//! columns), the JSON and the CSV of each command group on a small deployment. A change to any of
//! them shows up as a snapshot diff to review (`cargo insta review`, or compare the `.snap.new`
//! file beside the `.snap`).
//!
//! Values that differ from run to run (times, ids, the temporary directory, checksums) are
//! replaced by placeholders of the same length, so that table columns keep their widths.

mod common;

use common::{fixture, Env};
use regex::Regex;

/// The width the tables and help are made for.
const WIDTH: usize = 80;

/// `text` with what changes between runs made constant, lengths kept.
fn stable(env: &Env, text: &str) -> String {
    let zero_digits = |m: &regex::Captures| m[0].replace(|c: char| c.is_ascii_digit(), "0");
    let time = Regex::new(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?Z?").unwrap();
    let uuid = Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let hash = Regex::new(r"(xxh3|sha256|blake3):[0-9a-f]+").unwrap();
    let root = env.root().display().to_string();
    let text = text.replace(&root, &format!("{:_<1$}", "/ROOT", root.len()));
    let text = time.replace_all(&text, zero_digits);
    let text = uuid.replace_all(&text, "00000000-0000-0000-0000-000000000000");
    hash.replace_all(&text, |m: &regex::Captures| {
        let (tag, hex) = m[0].split_once(':').unwrap();
        format!("{tag}:{}", "0".repeat(hex.len()))
    })
    .into_owned()
}

/// Runs monkctl at `WIDTH` columns and returns its stdout; it must succeed.
fn out(env: &Env, args: &[&str]) -> String {
    let o = env
        .cmd()
        .env("COLUMNS", WIDTH.to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A table fits the width: no line longer than `WIDTH` characters.
fn fits(what: &str, table: &str) {
    for line in table.lines() {
        assert!(
            line.chars().count() <= WIDTH,
            "{what}: a line of {} columns:\n{table}",
            line.chars().count()
        );
    }
}

/// Every command's path below `monkctl`, the hidden ones aside.
fn commands(c: &clap::Command, path: Vec<String>, all: &mut Vec<Vec<String>>) {
    all.push(path.clone());
    for sub in c.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut p = path.clone();
        p.push(sub.get_name().to_string());
        commands(sub, p, all);
    }
}

#[test]
fn the_help_of_every_command() {
    let env = Env::new();
    let mut all = Vec::new();
    commands(&monkctl::cli::command(), Vec::new(), &mut all);
    assert!(all.len() > 40, "{all:?}");
    for path in all {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = out(&env, &args);
        // Help is wrapped to the width (a URL-like word may run over; none does today).
        fits(&format!("{args:?}"), &help);
        let name = if path.is_empty() {
            "help".to_string()
        } else {
            format!("help_{}", path.join("_"))
        };
        insta::assert_snapshot!(name, help);
    }
    // Nothing was made by asking for help.
    assert!(!env.data().exists());
}

/// A deployment with two tenants, a fixture deployed to one, a template, and an archive. Its directory is
/// in `/tmp` whatever `TMPDIR` says, so that the length of the paths shown (and so where a
/// table wraps) is the same on every machine.
fn deployment() -> Env {
    let env = Env::new_in(std::path::Path::new("/tmp"));
    fixture(
        &env,
        "crm",
        "name = \"crm\"\nversion = \"1.2.0\"\nfiles = [\"schema.sql\", \"data.sql\"]\n",
        &[
            (
                "schema.sql",
                b"CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n",
            ),
            (
                "data.sql",
                b"INSERT INTO contacts (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', NULL);\n",
            ),
        ],
    );
    out(&env, &["tenant", "create", "acme", "globex"]);
    out(&env, &["fixture", "deploy", "crm", "--tenant", "acme"]);
    out(&env, &["template", "build", "shop", "--fixture", "crm"]);
    std::fs::create_dir(env.root().join("backups")).unwrap();
    out(
        &env,
        &[
            "extract",
            "acme",
            "-o",
            env.root().join("backups/acme.monk.db").to_str().unwrap(),
        ],
    );
    env
}

/// Each command group's table, JSON and CSV.
#[test]
fn a_table_json_and_csv_of_each_command_group() {
    let env = deployment();
    let backups = env.root().join("backups");
    let backups = backups.to_str().unwrap();
    let groups: [(&str, &[&str]); 10] = [
        ("config", &["config"]),
        ("template_list", &["template", "list"]),
        ("tenant_list", &["tenant", "list"]),
        ("tenant_show", &["tenant", "show", "acme"]),
        ("tenant_usage", &["tenant", "usage"]),
        ("fixture_list", &["fixture", "list"]),
        ("fixture_status", &["fixture", "status", "--tenant", "acme"]),
        ("migrate_status", &["migrate", "status"]),
        ("archive_list", &["archive", "list", backups]),
        (
            "query",
            &[
                "query",
                "SELECT name, email FROM contacts ORDER BY name",
                "acme",
            ],
        ),
    ];
    for (name, args) in groups {
        for format in ["table", "json", "csv"] {
            let mut a = vec!["--format", format];
            a.extend_from_slice(args);
            let text = out(&env, &a);
            match format {
                "table" => fits(name, &text),
                "json" => {
                    serde_json::from_str::<serde_json::Value>(&text)
                        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}):\n{text}"));
                }
                _ => {}
            }
            insta::assert_snapshot!(format!("{name}_{format}"), stable(&env, &text));
        }
    }
    // doctor on a healthy deployment: a table with its verdict, JSON and CSV.
    for format in ["table", "json", "csv"] {
        let text = out(&env, &["--format", format, "doctor"]);
        insta::assert_snapshot!(format!("doctor_{format}"), stable(&env, &text));
    }
}
