//! `extract`, `archive inspect|verify` and `restore` on real data directories and real files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{snapshot, Env};
use serde_json::Value;

/// Creates `name` and gives it a user table `widgets` with `rows` rows, each with a blob of
/// `blob` bytes, plus one row whose text is easy to find in the file.
fn tenant_with_data(env: &Env, name: &str, rows: usize, blob: usize) {
    env.ok(&["tenant", "create", name]);
    let conn = env.open(&env.tenant_file(name));
    conn.execute_batch(
        "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO widgets (name) VALUES ('NEEDLE-0123456789-NEEDLE')",
        [],
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..rows {
        let data: Vec<u8> = (0..blob).map(|j| ((i * 31 + j) % 251) as u8).collect();
        tx.execute(
            "INSERT INTO widgets (name, data) VALUES (?1, ?2)",
            rusqlite::params![format!("w{i}"), data],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Extracts `name` to `<root>/<file>` and returns the path.
fn extract(env: &Env, name: &str, file: &str) -> PathBuf {
    let p = env.root().join(file);
    env.ok(&["extract", name, "-o", p.to_str().unwrap()]);
    p
}

/// The content checksum of a tenant as it is now (through a fresh extract).
fn checksum_of(env: &Env, name: &str) -> String {
    let p = env.root().join(format!("probe-{}.monk.db", rand_suffix()));
    env.ok(&["extract", name, "-o", p.to_str().unwrap()]);
    let v = env.json(&["archive", "verify", p.to_str().unwrap()]);
    std::fs::remove_file(&p).unwrap();
    v["checksum"].as_str().unwrap().to_string()
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn registry_rows(env: &Env) -> Vec<Vec<String>> {
    let conn = env.open(&env.infra());
    let mut st = conn.prepare("SELECT * FROM tenants ORDER BY name").unwrap();
    let n = st.column_count();
    let rows = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    let mut out: Vec<Vec<String>> = rows.map(|r| r.unwrap()).collect();
    let mut st = conn
        .prepare("SELECT tenant_id || '/' || fixture_name || '/' || deployed_at FROM tenant_fixtures ORDER BY 1")
        .unwrap();
    out.push(
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect(),
    );
    out
}

fn widgets(env: &Env, name: &str) -> Vec<(i64, String)> {
    let conn = env.open(&env.tenant_file(name));
    let mut st = conn
        .prepare("SELECT id, name FROM widgets ORDER BY id")
        .unwrap();
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

fn copy(src: &Path, to: &Path) -> PathBuf {
    std::fs::copy(src, to).unwrap();
    to.to_path_buf()
}

#[test]
fn extract_writes_one_private_file_with_a_default_name_and_never_overwrites() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 3, 100);
    let out = env.json(&["extract", "acme"]);
    let path = PathBuf::from(out["results"][0]["result"]["path"].as_str().unwrap());
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    // acme-20261123T032553Z.monk.db
    assert!(
        name.starts_with("acme-") && name.ends_with(".monk.db"),
        "{name}"
    );
    let stamp = &name["acme-".len()..name.len() - ".monk.db".len()];
    assert_eq!(stamp.len(), 16, "{stamp}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
        "{stamp}"
    );
    let file = env.root().join(&name);
    assert!(file.is_file());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // One self-contained file: rollback journal mode, nothing beside it.
    let head = std::fs::read(&file).unwrap();
    assert_eq!((head[18], head[19]), (1, 1), "not in WAL mode");
    for s in ["-wal", "-shm", "-journal"] {
        assert!(!env.root().join(format!("{name}{s}")).exists());
    }
    let leftovers: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".monktmp-"))
        .collect();
    assert!(leftovers.is_empty());
    // Readable by any sqlite: the widgets and the metadata.
    let conn = env.open(&file);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM widgets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    let tenant: String = conn
        .query_row(
            "SELECT value FROM _monk_archive WHERE key = 'tenant'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tenant.contains("\"name\":\"acme\""), "{tenant}");
    drop(conn);

    // No overwrite without --force.
    let before = std::fs::read(&file).unwrap();
    let err = env.fails(&["extract", "acme", "-o", file.to_str().unwrap()], 4);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    env.ok(&["extract", "acme", "-o", file.to_str().unwrap(), "--force"]);
    env.ok(&["archive", "verify", file.to_str().unwrap()]);
}

#[test]
fn inspect_shows_metadata_and_counts_without_changing_the_file() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 5, 10);
    let file = extract(&env, "acme", "a.monk.db");
    let before = snapshot(env.root());
    let v = env.json(&["archive", "inspect", file.to_str().unwrap()]);
    assert_eq!(v["metadata"]["tenant"]["name"], "acme");
    assert_eq!(v["metadata"]["format_version"], 2);
    assert_eq!(v["metadata"]["schema_version"], 1);
    assert_eq!(v["metadata"]["row_counts"]["widgets"], 6);
    let widgets = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "widgets")
        .unwrap();
    assert_eq!(widgets["row_count"], 6);
    let v = env.json(&["archive", "verify", file.to_str().unwrap()]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["tenant"], "acme");
    assert_eq!(snapshot(env.root()), before);
}

#[test]
fn extract_all_writes_every_tenant_and_the_registry() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "globex", "initech"]);
    env.ok(&["tenant", "delete", "initech", "--yes"]);
    let dir = env.root().join("backup");
    let v = env.json(&[
        "extract",
        "--all",
        "-o",
        dir.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert_eq!(v["succeeded"], 3, "{v}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names[0].starts_with("acme-"));
    assert!(names[1].starts_with("globex-"));
    assert!(names[2].starts_with("infra.monk-"));
    let reg = env.open(&dir.join(&names[2]));
    let n: i64 = reg
        .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    for n in &names[..2] {
        env.ok(&["archive", "verify", dir.join(n).to_str().unwrap()]);
    }
}

#[test]
fn restore_as_a_new_name_and_over_the_same_tenant() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 20, 1000);
    let id = env.json(&["tenant", "show", "acme"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = extract(&env, "acme", "acme.monk.db");
    let original = widgets(&env, "acme");
    let sum = checksum_of(&env, "acme");

    // As a new tenant: new id, same content, the API's WAL mode.
    let v = env.json(&["restore", file.to_str().unwrap(), "--as", "acme_copy"]);
    assert_eq!(v["mode"], "created");
    assert_ne!(v["id"], id.as_str());
    assert_eq!(widgets(&env, "acme_copy"), original);
    assert_eq!(checksum_of(&env, "acme_copy"), sum);
    let head = std::fs::read(env.tenant_file("acme_copy")).unwrap();
    assert_eq!(
        (head[18], head[19]),
        (2, 2),
        "restored tenants are in WAL mode"
    );
    let has_meta: i64 = env
        .open(&env.tenant_file("acme_copy"))
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = '_monk_archive'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has_meta, 0);

    // Over the existing tenant: refused without --force, and without --yes off a terminal.
    env.open(&env.tenant_file("acme"))
        .execute("DELETE FROM widgets WHERE id > 5", [])
        .unwrap();
    let changed = widgets(&env, "acme");
    let before = snapshot(&env.data());
    let rows = registry_rows(&env);
    let err = env.fails(&["restore", file.to_str().unwrap()], 4);
    assert!(err.contains("--force"), "{err}");
    env.fails(&["restore", file.to_str().unwrap(), "--force"], 2);
    assert_eq!(snapshot(&env.data()), before);
    assert_eq!(registry_rows(&env), rows);
    assert_eq!(widgets(&env, "acme"), changed);

    let v = env.json(&["restore", file.to_str().unwrap(), "--force", "--yes"]);
    assert_eq!(v["mode"], "replaced");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(widgets(&env, "acme"), original);
    assert_eq!(checksum_of(&env, "acme"), sum);
    // The replaced content was saved as an archive in the trash.
    let saved = PathBuf::from(v["previous_saved_to"].as_str().unwrap());
    assert!(saved.starts_with(env.data().join("trash")), "{saved:?}");
    env.ok(&["archive", "verify", saved.to_str().unwrap()]);
    let n: i64 = env
        .open(&saved)
        .query_row("SELECT count(*) FROM widgets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, changed.len() as i64);
}

#[test]
fn restore_brings_back_a_lost_tenant_with_its_id() {
    let src = Env::new();
    tenant_with_data(&src, "acme", 3, 10);
    src.ok(&["tenant", "suspend", "acme"]);
    let file = extract(&src, "acme", "acme.monk.db");
    let id = src.json(&["tenant", "show", "acme"])["id"].clone();

    // Another data directory (another host): same id, name, status and content.
    let dst = Env::new();
    dst.ok(&["init"]);
    let v = dst.json(&["restore", file.to_str().unwrap()]);
    assert_eq!(v["mode"], "created");
    assert_eq!(v["id"], id);
    assert_eq!(v["status"], "suspended");
    assert_eq!(widgets(&dst, "acme"), widgets(&src, "acme"));
    assert_eq!(checksum_of(&dst, "acme"), checksum_of(&src, "acme"));
}

/// Every way an archive can be bad: the expected exit code of `verify` and of `restore`, and
/// nothing changed anywhere.
#[test]
fn bad_archives_are_refused_with_distinct_codes_and_change_nothing() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 50, 2000);
    let good = extract(&env, "acme", "good.monk.db");
    let bytes = std::fs::read(&good).unwrap();
    let page_size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let dir = env.root().join("bad");
    std::fs::create_dir(&dir).unwrap();

    let truncated = dir.join("truncated.monk.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let truncated_odd = dir.join("truncated-odd.monk.db");
    std::fs::write(&truncated_odd, &bytes[..bytes.len() - 100]).unwrap();
    let truncated_head = dir.join("truncated-head.monk.db");
    std::fs::write(&truncated_head, &bytes[..40]).unwrap();
    let not_sqlite = dir.join("notes.monk.db");
    std::fs::write(&not_sqlite, "these are my notes, not a database\n").unwrap();
    let empty = dir.join("empty.monk.db");
    std::fs::write(&empty, "").unwrap();

    // A flipped byte inside a row's text: SQLite's own check cannot see it, the checksum does.
    let flipped_data = dir.join("flipped-data.monk.db");
    // Every copy of the row's text is flipped: a page split can leave stale copies of a cell in
    // a page's unused space, which are not content.
    let mut b = bytes.clone();
    let needle = b"NEEDLE-0123456789-NEEDLE";
    let mut found = 0;
    for at in 0..b.len() - needle.len() {
        if &b[at..at + needle.len()] == needle {
            b[at + 10] ^= 0x04;
            found += 1;
        }
    }
    assert!(found > 0, "the needle row is in the file");
    std::fs::write(&flipped_data, &b).unwrap();
    // A flipped byte in a b-tree page header: SQLite's integrity check fails.
    let flipped_page = dir.join("flipped-page.monk.db");
    let mut b = bytes.clone();
    b[page_size + 3] ^= 0xff; // page 2: its cell count
    b[page_size + 5] ^= 0xff; // and its cell content offset
    std::fs::write(&flipped_page, &b).unwrap();

    let newer_format = copy(&good, &dir.join("newer-format.monk.db"));
    env.open(&newer_format)
        .execute(
            "UPDATE _monk_archive SET value = '99' WHERE key = 'format_version'",
            [],
        )
        .unwrap();
    let newer_schema = copy(&good, &dir.join("newer-schema.monk.db"));
    env.open(&newer_schema)
        .execute(
            "UPDATE _monk_archive SET value = '999' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let no_meta = copy(&good, &dir.join("no-meta.monk.db"));
    env.open(&no_meta)
        .execute_batch("DROP TABLE _monk_archive; VACUUM;")
        .unwrap();
    let bad_meta = copy(&good, &dir.join("bad-meta.monk.db"));
    env.open(&bad_meta)
        .execute(
            "UPDATE _monk_archive SET value = '{not json' WHERE key = 'row_counts'",
            [],
        )
        .unwrap();
    let extra_row = copy(&good, &dir.join("extra-row.monk.db"));
    env.open(&extra_row)
        .execute("INSERT INTO widgets (name) VALUES ('sneaked in')", [])
        .unwrap();

    let cases: Vec<(&Path, i32, &str)> = vec![
        (&truncated, 13, "truncated"),
        (&truncated_odd, 13, "truncated"),
        (&truncated_head, 13, "truncated"),
        (&not_sqlite, 12, "not a monkctl archive"),
        (&empty, 12, "empty"),
        (&flipped_data, 15, "checksum"),
        (&flipped_page, 6, "not a valid SQLite database"),
        (&newer_format, 7, "version 99 archive"),
        (&newer_schema, 14, "schema version 999"),
        (&no_meta, 14, "_monk_archive is missing"),
        (&bad_meta, 14, "not valid JSON"),
        (&extra_row, 15, "row counts differ"),
    ];
    // The live tenant is there to be overwritten (--force --yes) if any check let a bad file by.
    let widgets_before = widgets(&env, "acme");
    let rows_before = registry_rows(&env);
    let data_before = snapshot(&env.data());
    for (file, code, words) in &cases {
        let files_before = snapshot(&dir);
        let f = file.to_str().unwrap();
        let err = env.fails(&["archive", "verify", f], *code);
        assert!(err.contains(words), "verify {f}: {err}");
        assert!(err.contains(f), "the error names the file: {err}");
        let err = env.fails(&["restore", f, "--force", "--yes"], *code);
        assert!(err.contains(words), "restore {f}: {err}");
        let err = env.fails(&["restore", f, "--as", "acme_new"], *code);
        assert!(err.contains(words), "restore --as {f}: {err}");
        assert_eq!(snapshot(&dir), files_before, "{f} was changed");
        assert_eq!(snapshot(&env.data()), data_before, "{f}");
        assert_eq!(registry_rows(&env), rows_before, "{f}");
    }
    assert_eq!(widgets(&env, "acme"), widgets_before);
    // inspect still shows what a damaged-but-readable archive holds.
    let v = env.json(&["archive", "inspect", no_meta.to_str().unwrap()]);
    assert!(v["metadata"].is_null());
    assert!(v["metadata_error"].as_str().unwrap().contains("missing"));
    env.fails(&["archive", "verify", "/nonexistent/x.monk.db"], 3);
}

#[test]
fn an_archive_of_another_tenant_is_not_restored_over_a_tenant_of_the_same_name() {
    let other = Env::new();
    tenant_with_data(&other, "acme", 2, 10);
    let file = extract(&other, "acme", "other-acme.monk.db");

    let env = Env::new();
    tenant_with_data(&env, "acme", 7, 10);
    let data_before = snapshot(&env.data());
    let rows_before = registry_rows(&env);
    let err = env.fails(&["restore", file.to_str().unwrap(), "--force", "--yes"], 16);
    assert!(
        err.contains("another tenant") && err.contains("--as"),
        "{err}"
    );
    assert_eq!(snapshot(&env.data()), data_before);
    assert_eq!(registry_rows(&env), rows_before);

    // Its id held by a tenant of another name: a new name is needed too.
    let same = Env::new();
    tenant_with_data(&same, "acme", 1, 10);
    let file = extract(&same, "acme", "acme.monk.db");
    let conn = same.open(&file);
    let t: String = conn
        .query_row(
            "SELECT value FROM _monk_archive WHERE key='tenant'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE _monk_archive SET value = ?1 WHERE key = 'tenant'",
        [t.replace("\"name\":\"acme\"", "\"name\":\"acme_renamed\"")],
    )
    .unwrap();
    drop(conn);
    let data_before = snapshot(&same.data());
    let err = same.fails(&["restore", file.to_str().unwrap()], 16);
    assert!(err.contains("belongs to tenant 'acme'"), "{err}");
    assert_eq!(snapshot(&same.data()), data_before);
    // With --as it is a new tenant beside the first.
    same.ok(&["restore", file.to_str().unwrap(), "--as", "acme_two"]);
    assert_eq!(widgets(&same, "acme_two"), widgets(&same, "acme"));
}

#[test]
fn archive_metadata_cannot_lead_a_restore_outside_the_data_directory() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 1, 10);
    let file = extract(&env, "acme", "acme.monk.db");
    let tenant_json = |conn: &rusqlite::Connection| -> String {
        conn.query_row(
            "SELECT value FROM _monk_archive WHERE key='tenant'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let set = |path: &Path, from: &str, to: &str| {
        let conn = env.open(path);
        let t = tenant_json(&conn);
        assert!(t.contains(from), "{t}");
        conn.execute(
            "UPDATE _monk_archive SET value = ?1 WHERE key = 'tenant'",
            [t.replace(from, to)],
        )
        .unwrap();
    };
    // A name that is a path.
    let evil_name = copy(&file, &env.root().join("evil-name.monk.db"));
    set(&evil_name, "\"name\":\"acme\"", "\"name\":\"../../x\"");
    // An id that is a path (ids name trash files).
    let evil_id = copy(&file, &env.root().join("evil-id.monk.db"));
    let conn = env.open(&evil_id);
    let t: Value = serde_json::from_str(&tenant_json(&conn)).unwrap();
    drop(conn);
    set(
        &evil_id,
        &format!("\"id\":\"{}\"", t["id"].as_str().unwrap()),
        "\"id\":\"../../../tmp/x\"",
    );
    let before_all = snapshot(env.root());
    for f in [&evil_name, &evil_id] {
        let err = env.fails(&["archive", "verify", f.to_str().unwrap()], 14);
        assert!(err.contains("unusable"), "{err}");
        env.fails(&["restore", f.to_str().unwrap(), "--as", "fine_name"], 14);
        env.fails(&["restore", f.to_str().unwrap(), "--force", "--yes"], 14);
    }
    assert_eq!(snapshot(env.root()), before_all);

    // Paths in the metadata (database, schema) are never used (the layout decides where a
    // restore writes), and ones that break the registry's rules make the metadata unusable.
    let evil_paths = copy(&file, &env.root().join("evil-paths.monk.db"));
    set(
        &evil_paths,
        "\"database\":\"db_main\"",
        "\"database\":\"../../outside\"",
    );
    set(
        &evil_paths,
        "\"schema\":\"ns_tenant_acme\"",
        "\"schema\":\"../../../x\"",
    );
    let before_all = snapshot(env.root());
    let err = env.fails(&["archive", "verify", evil_paths.to_str().unwrap()], 14);
    assert!(err.contains("not a plain name"), "{err}");
    env.fails(
        &["restore", evil_paths.to_str().unwrap(), "--as", "acme_b"],
        14,
    );
    assert_eq!(snapshot(env.root()), before_all);
    // A database of another layout (the API's `monk`) is a plain name: restored where the
    // layout says.
    let other_layout = copy(&file, &env.root().join("other-layout.monk.db"));
    set(
        &other_layout,
        "\"database\":\"db_main\"",
        "\"database\":\"monk\"",
    );
    let v = env.json(&["restore", other_layout.to_str().unwrap(), "--as", "acme_b"]);
    assert_eq!(
        PathBuf::from(v["path"].as_str().unwrap()),
        env.tenant_file("acme_b")
    );
    assert_eq!(v["database"], "db_main");
    assert_eq!(v["schema"], "ns_tenant_acme_b");
    assert!(!env.root().join("outside").exists());
    assert!(!env.root().parent().unwrap().join("outside").exists());
}

#[test]
fn extract_while_another_connection_writes_is_a_consistent_snapshot() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let live = env.tenant_file("acme");
    {
        let conn = env.open(&live);
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB);",
        )
        .unwrap();
    }
    // The writer keeps one invariant in every committed transaction: the amounts sum to zero.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let live = live.clone();
        std::thread::spawn(move || {
            let mut conn = rusqlite::Connection::open(&live).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tx = conn.transaction().unwrap();
                for k in 0..50i64 {
                    tx.execute(
                        "INSERT INTO ledger (amount, pad) VALUES (?1, zeroblob(2000))",
                        [k + 1],
                    )
                    .unwrap();
                    tx.execute(
                        "INSERT INTO ledger (amount, pad) VALUES (?1, zeroblob(2000))",
                        [-(k + 1)],
                    )
                    .unwrap();
                }
                tx.commit().unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut sizes = Vec::new();
    for i in 0..5 {
        let f = extract(&env, "acme", &format!("snap{i}.monk.db"));
        env.ok(&["archive", "verify", f.to_str().unwrap()]);
        let conn = env.open(&f);
        let (count, sum): (i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(sum(amount), 0) FROM ledger",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(sum, 0, "a half-committed transaction was copied");
        assert_eq!(count % 100, 0);
        sizes.push(count);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let transactions = writer.join().unwrap();
    assert!(transactions > 0);
    assert!(
        sizes.last() > sizes.first(),
        "the writer ran during the extracts: {sizes:?}"
    );
}

/// Starts `monkctl ARGS` and kills it with SIGKILL after `delay`.
fn kill_after(env: &Env, args: &[&str], delay: Duration) -> bool {
    let mut child: std::process::Child = Command::new(assert_cmd::cargo::cargo_bin("monkctl"))
        .current_dir(env.root())
        .env_remove("MONK_DATA_DIR")
        .env_remove("DATABASE_URL")
        .env_remove("MONK_CONFIG")
        .env("HOME", env.root())
        .arg("--data-dir")
        .arg(env.data())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let killed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// A pseudo-random delay in 0..max_ms (no extra crate: the clock's nanoseconds).
fn jitter(max_ms: u64, i: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis((nanos / 7 + i * 37) % max_ms.max(1))
}

#[test]
fn a_restore_killed_at_any_point_leaves_the_tenant_absent_or_whole() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 300, 64 * 1024);
    let file = extract(&env, "acme", "acme.monk.db");
    let sum = checksum_of(&env, "acme");
    let acme_rows = registry_rows(&env);
    let f = file.to_str().unwrap();
    let mut kills = 0;
    for i in 0..8u64 {
        let name = format!("copy{i}");
        let killed = kill_after(&env, &["restore", f, "--as", &name], jitter(400, i));
        kills += usize::from(killed);
        let row = env
            .json(&["tenant", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == name.as_str());
        if row {
            // Registered means whole.
            assert_eq!(checksum_of(&env, &name), sum, "iteration {i}");
        } else {
            // Absent, and a retry succeeds.
            assert!(killed, "a finished restore must have registered the tenant");
            env.ok(&["restore", f, "--as", &name]);
            assert_eq!(checksum_of(&env, &name), sum, "retry {i}");
        }
        // The other tenant was never touched.
        assert_eq!(registry_rows(&env)[0], acme_rows[0]);
    }
    assert!(
        kills > 0,
        "no restore was killed while running: the tenant is too small"
    );

    // Over an existing tenant: the live content is the old or the new one, never a mix, and the
    // row keeps its id.
    let id = env.json(&["tenant", "show", "acme"])["id"].clone();
    env.open(&env.tenant_file("acme"))
        .execute("DELETE FROM widgets WHERE id % 2 = 0", [])
        .unwrap();
    let old = checksum_of(&env, "acme");
    let mut kills = 0;
    for i in 0..6u64 {
        kills += usize::from(kill_after(
            &env,
            &["restore", f, "--force", "--yes"],
            jitter(600, i),
        ));
        let now = checksum_of(&env, "acme");
        assert!(now == old || now == sum, "iteration {i}: a mixed tenant");
        assert_eq!(env.json(&["tenant", "show", "acme"])["id"], id);
        if now == sum {
            env.open(&env.tenant_file("acme"))
                .execute("DELETE FROM widgets WHERE id % 2 = 0", [])
                .unwrap();
            assert_eq!(checksum_of(&env, "acme"), old);
        }
    }
    assert!(
        kills > 0,
        "no restore over the tenant was killed while running"
    );
    // And a restore that runs to the end still works after all those kills.
    env.ok(&["restore", f, "--force", "--yes"]);
    assert_eq!(checksum_of(&env, "acme"), sum);
    let wal = env.data().join("db_main/ns_tenant_acme.db-wal");
    assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 1 << 20);
}

#[test]
fn an_older_schema_is_reported_and_migrate_brings_it_up_to_date() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let file = extract(&env, "acme", "acme.monk.db");
    let v = env.json(&["archive", "verify", file.to_str().unwrap()]);
    assert_eq!(v["needs_migration"], false);

    // An operator's migration makes the archive older than the fleet: --migrate applies it.
    let migrations = env.root().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("V2__user_nickname.sql"),
        "ALTER TABLE users ADD COLUMN nickname TEXT;\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env("MONK_MIGRATIONS_DIR", &migrations)
        .args([
            "--format",
            "json",
            "restore",
            file.to_str().unwrap(),
            "--as",
            "acme_m",
            "--migrate",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["needs_migration"], false);
    let has: i64 = env
        .open(&env.tenant_file("acme_m"))
        .query_row(
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'nickname'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has, 1);

    // The same archive judged against the deployment's migrations without --migrate: it is
    // behind them, and a restore says so.
    let v: Value = serde_json::from_slice(
        &env.cmd()
            .env("MONK_MIGRATIONS_DIR", &migrations)
            .args([
                "--format",
                "json",
                "archive",
                "verify",
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["needs_migration"], true);
    assert_eq!(v["pending_migrations"], serde_json::json!([2]));
    let out = env
        .cmd()
        .env("MONK_MIGRATIONS_DIR", &migrations)
        .args([
            "--format",
            "json",
            "restore",
            file.to_str().unwrap(),
            "--as",
            "acme_old",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["needs_migration"], true);
    assert_eq!(v["schema_version"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("migrate up --tenant acme_old"));
}

#[test]
fn a_connection_open_during_a_restore_sees_the_old_or_the_new_tenant_never_a_mix() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let live = env.tenant_file("acme");
    let conn = env.open(&live);
    conn.execute_batch(
        "CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pad BLOB);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
         INSERT INTO ledger (amount, pad) SELECT 1, randomblob(4000) FROM c;",
    )
    .unwrap();
    let file = extract(&env, "acme", "acme.monk.db");
    // The archived state: 3000 rows summing to 3000. The live state: 1500 rows summing to 3000 too,
    // so only a consistent read of both numbers tells them apart from a mix.
    conn.execute_batch("DELETE FROM ledger WHERE id % 2 = 0; UPDATE ledger SET amount = 2;")
        .unwrap();
    drop(conn);
    let archived = (3000i64, 3000i64);
    let current = (1500i64, 3000i64);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let live = live.clone();
        std::thread::spawn(move || {
            // Opened before the restore and kept open, as an API process may.
            let mut conn = rusqlite::Connection::open(&live).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut seen = Vec::new();
            loop {
                let done = stop.load(std::sync::atomic::Ordering::Relaxed);
                let tx = conn.transaction().unwrap();
                let n: i64 = tx
                    .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
                    .unwrap();
                let sum: i64 = tx
                    .query_row("SELECT sum(amount) FROM ledger", [], |r| r.get(0))
                    .unwrap();
                tx.commit().unwrap();
                seen.push((n, sum));
                if done {
                    return seen;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    env.ok(&["restore", file.to_str().unwrap(), "--force", "--yes"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().unwrap();
    for s in &seen {
        assert!(
            *s == archived || *s == current,
            "a mixed state was read: {s:?}"
        );
    }
    assert_eq!(seen.first(), Some(&current));
    assert_eq!(
        seen.last(),
        Some(&archived),
        "the open connection sees the restored tenant"
    );
    let n: i64 = env
        .open(&live)
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3000);
}

#[test]
fn restore_over_a_tenant_with_another_page_size_keeps_its_page_size_and_content() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 300, 700);
    let archived = checksum_of(&env, "acme");
    let archive = extract(&env, "acme", "acme.monk.db");
    let rows = widgets(&env, "acme");
    // The live tenant moves to 8 KiB pages (as a hand-tuned deployment might) and changes.
    {
        let conn = env.open(&env.tenant_file("acme"));
        conn.execute_batch(
            "PRAGMA journal_mode=DELETE; PRAGMA page_size=8192; VACUUM; PRAGMA journal_mode=WAL;
             DELETE FROM widgets WHERE id % 2 = 0;",
        )
        .unwrap();
        let ps: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ps, 8192);
    }
    assert_ne!(widgets(&env, "acme"), rows);
    env.ok(&["restore", archive.to_str().unwrap(), "--force", "--yes"]);
    let conn = env.open(&env.tenant_file("acme"));
    let ps: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ps, 8192, "the live file keeps its page size");
    assert_eq!(integrity(&conn), "ok");
    drop(conn);
    assert_eq!(widgets(&env, "acme"), rows);
    assert_eq!(checksum_of(&env, "acme"), archived);
}

/// A tenant whose WAL is empty is copied as its file's bytes, under a read transaction that
/// keeps any checkpoint from writing the file: a writer that commits and checkpoints as hard as
/// it can while the extract runs must not get a half-written state into the archive.
#[test]
fn extract_of_a_quiet_tenant_stays_consistent_while_a_writer_checkpoints() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    let live = env.tenant_file("acme");
    {
        let conn = env.open(&live);
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
             INSERT INTO ledger (amount, pad) SELECT (x % 2) * 2 - 1, zeroblob(3000) FROM c;",
        )
        .unwrap();
    }
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (go, stop, live) = (go.clone(), stop.clone(), live.clone());
        std::thread::spawn(move || {
            let mut conn = rusqlite::Connection::open(&live).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if !go.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let tx = conn.transaction().unwrap();
                for k in 1..=20i64 {
                    for amount in [k, -k] {
                        tx.execute(
                            "INSERT INTO ledger (amount, pad) VALUES (?1, zeroblob(1000))",
                            [amount],
                        )
                        .unwrap();
                    }
                }
                tx.commit().unwrap();
                // Tries to write the WAL back into the file being copied.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                n += 1;
            }
            n
        })
    };
    for i in 0..8 {
        // An empty WAL, so that the extract may copy the file; the writer starts with it.
        go.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        env.open(&live)
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let out = env.root().join(format!("quiet{i}.monk.db"));
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("monkctl"))
            .current_dir(env.root())
            .env_remove("DATABASE_URL")
            .arg("--data-dir")
            .arg(env.data())
            .args(["extract", "acme", "-o", out.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(i * 3));
        go.store(true, Ordering::Relaxed);
        assert!(child.wait().unwrap().success());
        env.ok(&["archive", "verify", out.to_str().unwrap()]);
        let (count, sum): (i64, i64) = env
            .open(&out)
            .query_row(
                "SELECT count(*), coalesce(sum(amount), 0) FROM ledger",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(sum, 0, "a half-committed transaction was copied");
        assert_eq!(count % 40, 0, "{count}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

fn pragma(conn: &rusqlite::Connection, name: &str) -> i64 {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

/// SQLite's integrity check of a database: "ok" when it finds nothing.
fn integrity(conn: &rusqlite::Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Over a tenant that changed little since its archive was made, a restore writes only the pages
/// that differ; whether the tenant grew or shrank since, it ends with exactly the archive's pages
/// and content.
#[test]
fn restore_over_a_tenant_writes_only_what_differs_and_ends_with_the_archived_pages() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 300, 1000);
    let archive = extract(&env, "acme", "acme.monk.db");
    let f = archive.to_str().unwrap();
    let rows = widgets(&env, "acme");
    let sum = checksum_of(&env, "acme");
    // The archive's content as a tenant of its own: the pages the live tenant must end with.
    env.ok(&["restore", f, "--as", "probe"]);
    let probe = env.open(&env.tenant_file("probe"));
    let (pages, page_size) = (pragma(&probe, "page_count"), pragma(&probe, "page_size"));
    drop(probe);

    let check = |what: &str, v: &Value| {
        let live = env.tenant_file("acme");
        let conn = env.open(&live);
        assert_eq!(pragma(&conn, "page_count"), pages, "{what}: page count");
        assert_eq!(integrity(&conn), "ok", "{what}");
        drop(conn);
        assert_eq!(
            std::fs::metadata(&live).unwrap().len(),
            (pages * page_size) as u64,
            "{what}: the file holds the archived pages once checkpointed"
        );
        assert_eq!(widgets(&env, "acme"), rows, "{what}");
        assert_eq!(checksum_of(&env, "acme"), sum, "{what}");
        assert_eq!(v["pages"]["total"], pages, "{what}");
    };

    // Unchanged since the archive: next to nothing is written (the archive's metadata table,
    // dropped, leaves a few free pages the first time), and then only page 1.
    let v = env.json(&["restore", f, "--force", "--yes"]);
    check("first restore", &v);
    let written = v["pages"]["written"].as_i64().unwrap();
    assert!(written >= 1 && written < pages / 10, "{v}");
    let v = env.json(&["restore", f, "--force", "--yes"]);
    check("unchanged", &v);
    assert_eq!(v["pages"]["written"], 1, "{v}");

    // A reader that began before a change and is still reading (as an API request may) keeps
    // the change in the WAL, out of the file: the live pages are then read through SQLite.
    let old_reader = || {
        let reader = env.open(&env.tenant_file("acme"));
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM widgets;")
            .unwrap();
        reader
    };

    // A few rows changed, only in the WAL: a few pages written.
    let reader = old_reader();
    env.open(&env.tenant_file("acme"))
        .execute(
            "UPDATE widgets SET name = name || '!' WHERE id IN (3, 150)",
            [],
        )
        .unwrap();
    let v = env.json(&["restore", f, "--force", "--yes"]);
    drop(reader);
    check("a few rows changed", &v);
    // Page 1 and the two pages holding those rows.
    assert_eq!(v["pages"]["written"], 3, "{v}");

    // Grown well past the archive (in the file, and then only in the WAL): the pages after the
    // archive's last are cut off.
    for in_wal in [false, true] {
        let reader = in_wal.then(old_reader);
        let conn = env.open(&env.tenant_file("acme"));
        conn.execute_batch(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500)
             INSERT INTO widgets (name, data) SELECT 'more', randomblob(2000) FROM c;",
        )
        .unwrap();
        assert!(pragma(&conn, "page_count") > pages + 100);
        drop(conn);
        let v = env.json(&["restore", f, "--force", "--yes"]);
        drop(reader);
        check(if in_wal { "grown, in the WAL" } else { "grown" }, &v);
    }

    // Shrunk well below it (vacuumed): the missing pages are added.
    {
        let conn = env.open(&env.tenant_file("acme"));
        conn.execute_batch("DELETE FROM widgets WHERE id > 10; VACUUM;")
            .unwrap();
        assert!(pragma(&conn, "page_count") < pages / 2);
    }
    let v = env.json(&["restore", f, "--force", "--yes"]);
    check("shrunk", &v);
    assert!(v["pages"]["written"].as_i64().unwrap() > pages / 2, "{v}");
}

/// A connection that stays open across a restore must read the restored schema even when the
/// replaced tenant's schema cookie happens to equal the one the archived content carries: the
/// cookie must change, or that connection would keep using table layouts that no longer exist.
#[test]
fn a_connection_open_across_a_restore_reads_the_restored_schema() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 50, 100);
    let archive = extract(&env, "acme", "acme.monk.db");
    let f = archive.to_str().unwrap();
    // The schema cookie the archived content carries once staged.
    env.ok(&["restore", f, "--as", "probe"]);
    let cookie = pragma(&env.open(&env.tenant_file("probe")), "schema_version");

    // The live tenant gets another schema with that same cookie.
    let live = env.tenant_file("acme");
    {
        let conn = env.open(&live);
        conn.execute_batch(&format!(
            "DROP TABLE widgets; CREATE TABLE gadgets (id INTEGER PRIMARY KEY, label TEXT);
             INSERT INTO gadgets (label) VALUES ('g');
             PRAGMA schema_version = {cookie};"
        ))
        .unwrap();
    }
    let open = rusqlite::Connection::open(&live).unwrap();
    let n: i64 = open
        .query_row("SELECT count(*) FROM gadgets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);

    env.ok(&["restore", f, "--force", "--yes"]);
    let n: i64 = open
        .query_row("SELECT count(*) FROM widgets", [], |r| r.get(0))
        .expect("the open connection reads the restored schema");
    assert_eq!(n, 51);
    let err = open
        .query_row("SELECT count(*) FROM gadgets", [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    assert!(err.to_string().contains("no such table"), "{err}");
    assert_eq!(integrity(&open), "ok");
}

/// A tenant in auto-vacuum mode (never the API's default, but a hand-tuned file may be) cannot
/// take single pages safely, since its commit moves pages: every page is copied instead.
#[test]
fn restore_over_an_auto_vacuum_tenant_copies_every_page() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 200, 1000);
    let archive = extract(&env, "acme", "acme.monk.db");
    let rows = widgets(&env, "acme");
    let sum = checksum_of(&env, "acme");
    {
        let conn = env.open(&env.tenant_file("acme"));
        conn.execute_batch(
            "PRAGMA auto_vacuum = FULL; VACUUM; DELETE FROM widgets WHERE id % 3 = 0;",
        )
        .unwrap();
        assert_eq!(pragma(&conn, "auto_vacuum"), 1);
    }
    let v = env.json(&["restore", archive.to_str().unwrap(), "--force", "--yes"]);
    assert_eq!(v["pages"]["written"], v["pages"]["total"], "{v}");
    let conn = env.open(&env.tenant_file("acme"));
    assert_eq!(integrity(&conn), "ok");
    drop(conn);
    assert_eq!(widgets(&env, "acme"), rows);
    assert_eq!(checksum_of(&env, "acme"), sum);
}

/// A connection that keeps committing while a restore replaces its tenant loses nothing: each
/// of its commits is in the copy of the old content saved to the trash, or was made after the
/// new content was in place and is in the tenant now. (The save is made under the tenant's
/// write lock, which the restore holds until its commit, so no commit falls between the two.)
#[test]
fn commits_made_while_a_restore_runs_are_in_the_saved_copy_or_the_restored_tenant() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let env = Env::new();
    tenant_with_data(&env, "acme", 400, 16 * 1024);
    let live = env.tenant_file("acme");
    env.open(&live)
        .execute_batch("CREATE TABLE log (seq INTEGER PRIMARY KEY);")
        .unwrap();
    let archive = extract(&env, "acme", "acme.monk.db");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, live) = (stop.clone(), live.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&live).unwrap();
            conn.busy_timeout(Duration::from_secs(30)).unwrap();
            let mut committed = Vec::new();
            let mut seq = 1i64;
            // A commit every millisecond or so, as a busy API might.
            while !stop.load(Ordering::Relaxed) {
                conn.execute("INSERT INTO log (seq) VALUES (?1)", [seq])
                    .unwrap();
                committed.push(seq);
                seq += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            committed
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let v = env.json(&["restore", archive.to_str().unwrap(), "--force", "--yes"]);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let committed = writer.join().unwrap();

    let seqs = |path: &Path| -> std::collections::BTreeSet<i64> {
        let conn = env.open(path);
        let mut st = conn.prepare("SELECT seq FROM log").unwrap();
        let rows = st.query_map([], |r| r.get(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    let saved = seqs(Path::new(v["previous_saved_to"].as_str().unwrap()));
    let now = seqs(&live);
    assert!(
        !saved.is_empty() && !now.is_empty(),
        "the writer committed on both sides"
    );
    let lost: Vec<i64> = committed
        .iter()
        .filter(|s| !saved.contains(s) && !now.contains(s))
        .copied()
        .collect();
    assert_eq!(lost, Vec::<i64>::new(), "commits in neither copy");
    // And nothing of the old content is mixed into the new: what the tenant holds now was all
    // committed after everything the saved copy holds.
    assert!(saved.iter().max() < now.iter().min(), "{saved:?} / {now:?}");
}

/// The last commit of a tenant may be only in its WAL, kept out of the file by a reader of an
/// older state (an API request still running): the archive holds that last commit all the same.
#[test]
fn extract_takes_the_last_commit_even_while_an_older_reader_keeps_it_in_the_wal() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 50, 500);
    let live = env.tenant_file("acme");
    let reader = env.open(&live);
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM widgets;")
        .unwrap();
    env.open(&live)
        .execute_batch(
            "DELETE FROM widgets WHERE id > 20; UPDATE widgets SET name = 'latest' WHERE id = 2;",
        )
        .unwrap();
    let wal = env.data().join("db_main/ns_tenant_acme.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let latest = widgets(&env, "acme");
    let file = extract(&env, "acme", "acme.monk.db");
    drop(reader);
    env.ok(&["archive", "verify", file.to_str().unwrap()]);
    let archived: Vec<(i64, String)> = {
        let conn = env.open(&file);
        let mut st = conn
            .prepare("SELECT id, name FROM widgets ORDER BY id")
            .unwrap();
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    assert_eq!(archived, latest);
    assert_eq!(archived.len(), 20);
}

/// Sets `key` of an archive's metadata to `value` through SQLite (the file stays a valid one).
fn set_meta(env: &Env, archive: &Path, key: &str, value: &str) {
    let n = env
        .open(archive)
        .execute(
            "UPDATE _monk_archive SET value = ?2 WHERE key = ?1",
            [key, value],
        )
        .unwrap();
    assert_eq!(n, 1, "{key}");
}

/// Sets one field of the archived registry row (a JSON value).
fn set_tenant_field(env: &Env, archive: &Path, field: &str, value: Value) {
    let text: String = env
        .open(archive)
        .query_row(
            "SELECT value FROM _monk_archive WHERE key = 'tenant'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut t: Value = serde_json::from_str(&text).unwrap();
    t[field] = value;
    set_meta(env, archive, "tenant", &t.to_string());
}

/// Hostile archives: each metadata field set to what the registry's rules or the archive's own
/// content refuse, and each header field set to what SQLite 3 never writes. `verify` and
/// `restore --as` refuse each with the same archive exit code and write nothing.
#[test]
fn every_hostile_metadata_field_and_header_fault_is_refused_alike_by_verify_and_restore() {
    let env = Env::new();
    tenant_with_data(&env, "acme", 3, 100);
    let good = extract(&env, "acme", "good.monk.db");
    let dir = env.root().join("hostile");
    std::fs::create_dir(&dir).unwrap();
    let json = |s: &str| -> Value { serde_json::from_str(s).unwrap() };
    let tenant_cases: Vec<(&str, &str, Value)> = vec![
        (
            "owner-not-a-user",
            "owner_id",
            json("\"11111111-2222-4333-8444-555555555555\""),
        ),
        ("owner-a-path", "owner_id", json("\"../../etc\"")),
        ("status-hacked", "status", json("\"hacked\"")),
        ("negative-template-version", "template_version", json("-1")),
        ("source-template-path", "source_template", json("\"../x\"")),
        ("db-type", "db_type", json("\"postgresql\"")),
        ("schema-path", "schema", json("\"../../x\"")),
        ("created-at", "created_at", json("\"yesterday\"")),
        ("updated-at", "updated_at", json("\"\"")),
        ("trashed-at", "trashed_at", json("\"soon\"")),
        ("deleted-at", "deleted_at", json("\"2026-13-01 00:00:00\"")),
        ("name-path", "name", json("\"../x\"")),
        (
            "description-huge",
            "description",
            json(&format!("\"{}\"", "x".repeat(20_000))),
        ),
    ];
    let mut cases: Vec<(String, PathBuf, i32)> = Vec::new();
    for (label, field, value) in tenant_cases {
        let p = copy(&good, &dir.join(format!("{label}.monk.db")));
        set_tenant_field(&env, &p, field, value);
        cases.push((label.to_string(), p, 14));
    }
    let meta_cases = [
        ("archive-created-at", "created_at", "never".to_string()),
        (
            "archive-created-day-99",
            "created_at",
            "2026-11-99T03:25:53.112Z".to_string(),
        ),
        ("host-control", "host", "web\u{1b}[2J1".to_string()),
        (
            "fixture-deployed-at",
            "fixtures",
            r#"[{"fixture_name":"system","deployed_at":"whenever","version":null}]"#.to_string(),
        ),
        (
            "fixture-twice",
            "fixtures",
            r#"[{"fixture_name":"shop","deployed_at":"2026-11-23 03:25:53","version":"1"},{"fixture_name":"shop","deployed_at":"2026-11-23 03:25:53","version":"2"}]"#.to_string(),
        ),
        (
            "fixture-name-path",
            "fixtures",
            r#"[{"fixture_name":"../x","deployed_at":"2026-11-23 03:25:53","version":null}]"#.to_string(),
        ),
        (
            "negative-row-count",
            "row_counts",
            r#"{"widgets":-4}"#.to_string(),
        ),
    ];
    for (label, key, value) in meta_cases {
        let p = copy(&good, &dir.join(format!("{label}.monk.db")));
        set_meta(&env, &p, key, &value);
        cases.push((label.to_string(), p, 14));
    }
    // Header faults: (offset, value) of one byte.
    let bytes = std::fs::read(&good).unwrap();
    let header_cases: [(&str, usize, u8); 10] = [
        ("page-size-768", 16, 3),
        ("page-size-256", 16, 1),
        ("write-version-3", 18, 3),
        ("read-version-3", 19, 3),
        ("write-version-0", 18, 0),
        ("max-payload-fraction", 21, 65),
        ("min-payload-fraction", 22, 0),
        ("leaf-payload-fraction", 23, 33),
        ("schema-format-9", 47, 9),
        ("text-encoding-7", 59, 7),
    ];
    for (label, at, v) in header_cases {
        let mut b = bytes.clone();
        b[at] = v;
        let p = dir.join(format!("{label}.monk.db"));
        std::fs::write(&p, &b).unwrap();
        cases.push((label.to_string(), p, 12));
    }
    let before = snapshot(&env.data());
    for (label, p, code) in &cases {
        let a = p.to_str().unwrap();
        let err = env.fails(&["archive", "verify", a], *code);
        assert!(!err.contains("permission"), "{label}: {err}");
        let err = env.fails(&["restore", a, "--as", "restored_x"], *code);
        assert!(!err.contains("permission"), "{label}: {err}");
        env.fails(&["restore", a, "--force", "--yes"], *code);
        assert_eq!(snapshot(&env.data()), before, "{label}: nothing written");
    }
    // The untouched archive passes both.
    env.ok(&["archive", "verify", good.to_str().unwrap()]);
    env.ok(&["restore", good.to_str().unwrap(), "--as", "restored_x"]);
}

/// `extract acme globex -o backups/` (the README's example): a trailing `/` or several tenants
/// mean a directory, made (owner-only) when missing; a name that does not exist makes nothing.
#[test]
fn extract_to_a_directory_that_does_not_exist_yet_makes_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    env.ok(&["tenant", "create", "globex"]);
    env.ok(&["extract", "acme", "globex", "-o", "backups"]);
    let listed = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(env.root().join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let names = listed("backups");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("acme-") && names[1].starts_with("globex-"));
    let mode = std::fs::metadata(env.root().join("backups"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    env.ok(&["extract", "acme", "-o", "one/"]);
    assert_eq!(listed("one").len(), 1);
    // Nothing to extract: no directory either.
    env.fails(&["extract", "nobody", "-o", "empty/"], 3);
    assert!(!env.root().join("empty").exists());
}

/// `archive list DIR`: the archives of a directory with tenant, time, size and versions; with
/// `--verify` each checked in full. A bad file is listed with its error and makes the exit 8.
#[test]
fn archive_list_shows_a_directory_of_archives() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    env.ok(&["tenant", "create", "globex"]);
    env.ok(&["extract", "acme", "globex", "-o", "backups/"]);
    let v = env.json(&["archive", "list", "backups", "--verify"]);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["tenant"], "acme");
    assert_eq!(rows[1]["tenant"], "globex");
    for r in rows {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["schema_version"], 1);
        assert!(r["size_bytes"].as_u64().unwrap() > 0);
        assert!(r["created_at"].as_str().is_some());
    }
    let listed = env.json(&["archive", "list", "backups"]);
    assert_eq!(listed[0]["verified"], Value::Null);
    // A damaged one is named, and fails the listing.
    std::fs::write(env.root().join("backups/broken.monk.db"), b"not an archive").unwrap();
    let out = env.run(&["--format", "json", "archive", "list", "backups"]);
    assert_eq!(out.status.code(), Some(8));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let broken = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("broken.monk.db"))
        .unwrap();
    assert!(broken["error"].as_str().is_some(), "{broken}");
    env.fails(&["archive", "list", "nowhere"], 3);
}
