//! The JSON vocabulary of the README ("JSON output"), checked against the real output of every
//! command of an operator's session: the rules hold for each document, field by field.

mod common;

use common::{fixture, Env};
use serde_json::Value;

/// Keys that name a list wherever they appear: always an array (or null), or a batch object.
const ARRAYS: &[&str] = &[
    "tables",
    "rows",
    "fixtures",
    "tenants",
    "results",
    "findings",
    "repairs",
    "migrations",
    "files",
];

/// A time as every output prints it: ISO 8601, UTC, `Z`.
fn is_iso(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    s.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && s.ends_with('Z')
        && (s.len() == 20
            || (b[19] == b'.' && s[20..s.len() - 1].bytes().all(|c| c.is_ascii_digit())))
}

/// Whether a text starts like a date and time (either stored form).
fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
}

/// The rules, applied to every member of `v`; `at` is its path (for the message), `stored` is
/// true below a stored record printed as stored (an archive's `metadata`, a template's `meta`).
fn check(v: &Value, at: &str, stored: bool, problems: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                check(x, &format!("{at}[{i}]"), stored, problems);
            }
        }
        Value::Object(map) => {
            // A run over several tenants has one shape.
            if map.contains_key("results") && !stored {
                for k in ["succeeded", "failed"] {
                    if !map.get(k).is_some_and(Value::is_u64) {
                        problems.push(format!("{at}: a batch without a count `{k}`"));
                    }
                }
                for (i, r) in map["results"].as_array().into_iter().flatten().enumerate() {
                    let keys: Vec<&str> = r
                        .as_object()
                        .map(|o| o.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let mut sorted = keys.clone();
                    sorted.sort_unstable();
                    if sorted != ["error", "exit_code", "ok", "result", "tenant"] {
                        problems.push(format!("{at}.results[{i}]: members {keys:?}"));
                    }
                }
            }
            for (k, x) in map {
                let here = format!("{at}.{k}");
                let stored = stored || k == "metadata" || k == "meta";
                if !stored {
                    if k == "tenant" && !x.is_string() && !x.is_null() {
                        problems.push(format!("{here}: `tenant` names a tenant, as text"));
                    }
                    // A list, or a batch of results (`migrate`'s `tenants`).
                    let batch = x.get("results").is_some_and(Value::is_array);
                    if ARRAYS.contains(&k.as_str()) && !x.is_array() && !x.is_null() && !batch {
                        problems.push(format!("{here}: `{k}` is a list; a count is `*_count`"));
                    }
                    if k == "fixture_name" {
                        problems.push(format!("{here}: a fixture is `fixture`"));
                    }
                    if k == "fixtures" {
                        for f in x.as_array().into_iter().flatten() {
                            if !f.get("fixture").is_some_and(Value::is_string) {
                                problems.push(format!("{here}: an entry without `fixture`: {f}"));
                            }
                        }
                    }
                    let sizeish = k == "bytes" || k == "size" || k.contains("bytes");
                    if sizeish && !k.ends_with("_bytes") {
                        problems.push(format!("{here}: a size in bytes is `*_bytes`"));
                    }
                    if x.is_number() && k.ends_with("size") && k != "page_size" {
                        problems.push(format!("{here}: a size in bytes is `*_bytes`"));
                    }
                }
                if k.ends_with("_at") {
                    match x {
                        Value::Null => {}
                        Value::String(s) if is_iso(s) => {}
                        other => problems.push(format!("{here}: not an ISO 8601 time: {other}")),
                    }
                } else if let Value::String(s) = x {
                    if looks_like_time(s) {
                        problems.push(format!("{here}: a time under a key not ending in `_at`"));
                    }
                }
                check(x, &here, stored, problems);
            }
        }
        _ => {}
    }
}

/// Runs `monkctl --format json ARGS`, expecting `code`; returns the document.
fn doc(env: &Env, args: &[&str], code: i32) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {:?}", out.stdout))
}

#[test]
fn every_command_speaks_the_documented_vocabulary() {
    let env = Env::new();
    fixture(
        &env,
        "crm",
        "name = \"crm\"\nversion = \"1\"\nfiles = [\"schema.sql\"]\n",
        &[(
            "schema.sql",
            b"CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\nINSERT INTO notes (body) VALUES ('hello');\n",
        )],
    );
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut run = |args: &[&str], code: i32| {
        docs.push((args.join(" "), doc(&env, args, code)));
    };
    run(&["init"], 0);
    run(&["config"], 0);
    run(
        &["tenant", "create", "acme", "globex", "--fixture", "crm"],
        0,
    );
    run(&["tenant", "create", "solo"], 0);
    run(&["tenant", "create", "acme", "--skip-existing"], 0);
    run(&["tenant", "list"], 0);
    run(&["tenant", "show", "acme"], 0);
    run(&["tenant", "usage"], 0);
    run(&["tenant", "vacuum", "--all"], 0);
    run(&["tenant", "suspend", "acme", "globex"], 0);
    run(&["tenant", "activate", "acme"], 0);
    run(&["fixture", "list"], 0);
    run(&["fixture", "check"], 0);
    run(&["fixture", "deploy", "crm", "--tenant", "solo"], 0);
    run(&["fixture", "status", "--tenant", "solo"], 0);
    run(&["template", "build", "base", "--fixture", "crm"], 0);
    run(&["template", "list"], 0);
    run(&["template", "show", "base"], 0);
    run(&["extract", "acme", "-o", "out/"], 0);
    let archive = std::fs::read_dir(env.root().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".monk.db"))
        .expect("an archive");
    let archive = archive.to_str().unwrap();
    run(&["archive", "inspect", archive], 0);
    run(&["archive", "verify", archive], 0);
    run(&["archive", "list", "out"], 0);
    run(&["restore", archive, "--as", "acme2"], 0);
    run(&["doctor"], 0);
    run(
        &[
            "query",
            "SELECT count(*) AS n FROM models",
            "--all",
            "--summary",
        ],
        0,
    );
    run(&["migrate", "status"], 0);
    run(&["migrate", "plan"], 0);
    run(&["migrate", "up"], 0);
    run(&["migrate", "snapshots", "list"], 0);
    run(&["tenant", "trash", "solo"], 0);
    run(&["tenant", "delete", "solo", "--yes"], 0);
    run(
        &[
            "tenant",
            "purge",
            "--older-than",
            "0s",
            "--dry-run",
            "--yes",
        ],
        0,
    );
    // Errors: one object with the same members every time.
    run(&["tenant", "show", "nobody"], 3);
    run(&["tenant", "create", "acme"], 4);
    run(&["archive", "verify", "missing.monk.db"], 3);
    let mut problems = Vec::new();
    for (cmd, v) in &docs {
        let mut mine = Vec::new();
        check(v, "", false, &mut mine);
        problems.extend(mine.into_iter().map(|p| format!("{cmd}: {p}")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The error documents.
    for (cmd, v) in docs
        .iter()
        .filter(|(_, v)| v.get("error").is_some_and(Value::is_object))
    {
        let e = &v["error"];
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["code", "exit_code", "fix", "message", "path", "tenant"],
            "{cmd}: {v}"
        );
    }
    let not_found = &docs
        .iter()
        .find(|(c, _)| c == "tenant show nobody")
        .unwrap()
        .1["error"];
    assert_eq!(not_found["code"], "not_found");
    assert_eq!(not_found["tenant"], "nobody");
    assert!(not_found["fix"].as_str().unwrap().contains("tenant list"));
    let missing = &docs
        .iter()
        .find(|(c, _)| c.starts_with("archive verify missing"))
        .unwrap()
        .1["error"];
    assert!(
        missing["path"]
            .as_str()
            .unwrap()
            .ends_with("missing.monk.db"),
        "{missing}"
    );
}

/// The checker itself finds what the rules forbid (so a pass above means something).
#[test]
fn the_checker_finds_each_kind_of_violation() {
    let bad = serde_json::json!({
        "tables": 3,
        "bytes": 1,
        "size": 2,
        "updated_at": "2026-12-02 04:46:36",
        "last_change": "2026-12-02T04:46:36.000Z",
        "fixtures": ["crm"],
        "results": [{"tenant": "a", "ok": true}],
        "metadata": {"tables": 3, "fixtures": [{"fixture_name": "x"}]}
    });
    let mut problems = Vec::new();
    check(&bad, "", false, &mut problems);
    for what in [
        ".tables",
        ".bytes",
        ".size",
        ".updated_at",
        ".last_change",
        ".fixtures",
        "a batch",
        ".results[0]",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "{what} not found in {problems:#?}"
        );
    }
    assert!(
        !problems.iter().any(|p| p.contains(".metadata.tables")),
        "a stored record is printed as stored: {problems:#?}"
    );
}
