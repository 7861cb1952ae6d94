//! A full disk: each command that writes fails with exit 19 ("disk full"), names the file it could
//! not write, and changes nothing: live tenants and the registry stay as they were and no
//! temporary file is left. Once space is freed, the same command succeeds.
//!
//! Each test mounts a small tmpfs of its own (we run as root) holding the data directory or the
//! output directory, and fills it with a filler file beside the data directory until only a
//! chosen number of bytes is left, so that the operation runs out of space part-way. Built by
//! anyone but root (see build.rs), the tests are marked ignored, so `cargo test` lists them as
//! not run; as root a mount that fails fails the test.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use common::{snapshot, table_rows, Env};
use serde_json::Value;

const DISK_FULL: i32 = 19;
const PARTIAL: i32 = 8;
/// tmpfs allocates whole pages.
const PAGE: u64 = 4096;
/// What every full-disk message starts with.
const NO_SPACE: &str = "no space left on the device holding";

/// A tmpfs mounted for one test; unmounted when dropped, also when the test panics.
struct Disk {
    dir: PathBuf,
}

impl Disk {
    fn mount(dir: &Path, kib: u64) -> Option<Disk> {
        fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Disk {
            dir: dir.to_path_buf(),
        })
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Fills the disk until exactly `free` bytes (rounded up to whole pages) are left: writes
    /// pages until the file system refuses one, then gives back what is to stay free.
    fn fill_leaving(&self, free: u64) {
        let path = self.filler();
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let page = vec![0xa5u8; PAGE as usize];
        loop {
            match f.write(&page) {
                Ok(n) if n == page.len() => {}
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let len = f.metadata().unwrap().len() / PAGE * PAGE;
        let keep = free.div_ceil(PAGE) * PAGE;
        assert!(
            len >= keep,
            "the disk has less than {free} bytes left already"
        );
        f.set_len(len - keep).unwrap();
    }

    fn free_up(&self) {
        fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.dir)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
    }
}

/// An `Env` whose data directory (`<tmp>/disk/data`) is on a small disk of its own. The disk is
/// the first field so that it is unmounted before the temporary directory is removed.
struct Rig {
    disk: Disk,
    env: Env,
}

fn rig(kib: u64) -> Rig {
    let env = Env::with_data_dir("disk/data");
    let Some(disk) = Disk::mount(&env.root().join("disk"), kib) else {
        panic!("cannot mount a tmpfs although running as root: this test cannot run here");
    };
    env.ok(&["init"]);
    Rig { disk, env }
}

/// Every file of the data directory with its size and modification time, for "nothing changed".
/// Left out besides `-shm` files (see `snapshot`):
/// - `locks/`: every run leaves its empty per-name lock file there, by design;
/// - the registry's `-wal`: a registry transaction that ran out of space may have written frames
///   past the last commit, which SQLite ignores and overwrites; `registry_rows` compares what the
///   registry holds instead;
/// - empty `-wal` files: SQLite creates one when it opens a WAL database and leaves it when the
///   full disk keeps it from setting up its `-shm`; it holds no frame.
fn files(env: &Env) -> Vec<(PathBuf, u64, SystemTime)> {
    let locks = env.data().join("locks");
    let infra_wal = PathBuf::from(format!("{}-wal", env.infra().display()));
    snapshot(&env.data())
        .into_iter()
        .filter(|(p, len, _)| {
            !p.starts_with(&locks)
                && *p != infra_wal
                && !(*len == 0 && p.to_string_lossy().ends_with("-wal"))
        })
        .collect()
}

/// Every committed row of every table of the registry, as text, sorted.
fn registry_rows(env: &Env) -> Vec<String> {
    table_rows(&env.open(&env.infra()))
}

/// monkctl's temporary files (`.monktmp-`) below `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_iter()
        .map(|(p, _, _)| p)
        .filter(|p| p.to_string_lossy().contains(".monktmp-"))
        .collect()
}

fn tenant_size(env: &Env, name: &str) -> u64 {
    fs::metadata(env.tenant_file(name)).unwrap().len()
}

fn tenant_names(env: &Env) -> Vec<String> {
    let v = env.json(&["tenant", "list", "--all"]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs with `--format json`, asserts the exit code, returns stdout parsed and stderr.
fn json_fails(env: &Env, args: &[&str], code: i32) -> (Value, String) {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    let out = env.run(&a);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "monkctl {a:?}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        serde_json::from_slice(&out.stdout).expect("json output"),
        stderr,
    )
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn creating_a_tenant_on_a_full_disk_fails_with_19_and_changes_nothing() {
    let rig = rig(1024);
    let env = &rig.env;
    env.ok(&["tenant", "create", "acme"]);
    let size = tenant_size(env, "acme");
    let (files_before, rows_before) = (files(env), registry_rows(env));
    // Half a tenant file: building the new file runs out of space. A tenant file and a page: the
    // file is built and linked, and the registry transaction that registers it runs out.
    for (free, named) in [
        (size / 2, "db_main/ns_tenant_globex.db"),
        (size + PAGE, "infra/monk.db"),
    ] {
        rig.disk.fill_leaving(free);
        let err = env.fails(&["tenant", "create", "globex"], DISK_FULL);
        assert!(
            err.contains(NO_SPACE) && err.contains(named) && err.contains("free space there"),
            "{free} bytes free: {err}"
        );
        assert!(
            !err.contains(".monktmp-"),
            "a temporary file is named: {err}"
        );
        assert_eq!(files(env), files_before, "{free} bytes free");
        assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new());
        rig.disk.free_up();
        assert_eq!(registry_rows(env), rows_before, "{free} bytes free");
    }
    env.ok(&["tenant", "create", "globex"]);
    assert_eq!(tenant_names(env), ["acme", "globex"]);
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn creating_a_batch_on_a_full_disk_fails_with_19_for_each_tenant() {
    let rig = rig(2048);
    let env = &rig.env;
    env.ok(&["tenant", "create", "acme"]);
    let size = tenant_size(env, "acme");
    let list = env.root().join("tenants.txt");
    fs::write(&list, "one\ntwo alice First\nthree\n").unwrap();
    let list = list.display().to_string();
    let (files_before, rows_before) = (files(env), registry_rows(env));
    // Less than one tenant: every build fails. Room for all three files and a page: the builds
    // succeed (or some run out, depending on how the build threads interleave) and the registry
    // transaction of the batch runs out; either way each tenant reports a full disk.
    for free in [size / 2, 3 * size + PAGE] {
        rig.disk.fill_leaving(free);
        let (v, err) = json_fails(env, &["tenant", "create", "--from-file", &list], DISK_FULL);
        assert_eq!(v["failed"], 3, "{v}");
        for (o, name) in v["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(["one", "two", "three"])
        {
            let e = o["error"].as_str().unwrap_or_default();
            assert_eq!(o["tenant"], name);
            assert_eq!(o["exit_code"], DISK_FULL, "{o}");
            assert!(
                e.starts_with(NO_SPACE)
                    && (e.contains(&format!("ns_tenant_{name}.db")) || e.contains("infra/monk.db")),
                "{free} bytes free: {e}"
            );
        }
        assert!(err.contains(NO_SPACE), "{err}");
        assert_eq!(files(env), files_before, "{free} bytes free");
        assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new());
        rig.disk.free_up();
        assert_eq!(registry_rows(env), rows_before, "{free} bytes free");
    }
    env.ok(&["tenant", "create", "--from-file", &list]);
    assert_eq!(tenant_names(env), ["acme", "one", "three", "two"]);
}

/// Adds a table and about 100 KB of rows to each tenant.
const PAD: &str = "CREATE TABLE pad (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
INSERT INTO pad (data) SELECT randomblob(1000) FROM n;
";

fn mig_dir(env: &Env, sql: &str) -> String {
    let d = env.root().join("mig");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("V2__pad.sql"), sql).unwrap();
    d.display().to_string()
}

/// The tenant's tables and its migration history (empty when it has none).
fn schema_and_history(env: &Env, tenant: &str) -> (Vec<String>, Vec<i64>) {
    let c = env.open(&env.tenant_file(tenant));
    let tables = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap();
    let history = if tables.iter().any(|t| t == "refinery_schema_history") {
        c.prepare("SELECT version FROM refinery_schema_history ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<i64>, _>>()
            .unwrap()
    } else {
        Vec::new()
    };
    (tables, history)
}

fn tenant_files(env: &Env, tenant: &str) -> Vec<(PathBuf, u64, SystemTime)> {
    let f = env.tenant_file(tenant).display().to_string();
    files(env)
        .into_iter()
        .filter(|(p, _, _)| p.display().to_string().starts_with(&f))
        .collect()
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn migrate_up_on_a_full_disk_leaves_failed_tenants_untouched_and_names_them_for_a_retry() {
    let rig = rig(2048);
    let env = &rig.env;
    let tenants = ["t1", "t2", "t3", "t4"];
    let mut args = vec!["tenant", "create"];
    args.extend_from_slice(&tenants);
    env.ok(&args);
    let mig = mig_dir(env, PAD);
    let before: Vec<_> = tenants
        .iter()
        .map(|t| (tenant_files(env, t), schema_and_history(env, t)))
        .collect();
    let rows_before = registry_rows(env);
    // Each migrated tenant keeps about 100 KB more; 300 KB runs out after one or two, one job
    // after the other.
    rig.disk.fill_leaving(300 * 1024);
    let (v, err) = json_fails(
        env,
        &["migrate", "--migrations", &mig, "up", "--jobs", "1"],
        PARTIAL,
    );
    let results = v["tenants"]["results"].as_array().unwrap();
    let failed: Vec<&str> = results
        .iter()
        .filter(|o| o["ok"] == false)
        .map(|o| o["tenant"].as_str().unwrap())
        .collect();
    assert!(
        !failed.is_empty() && failed.len() < tenants.len(),
        "some tenants must be migrated and some run out of space: {v}"
    );
    for o in results.iter().filter(|o| o["ok"] == false) {
        let t = o["tenant"].as_str().unwrap();
        let e = o["error"].as_str().unwrap();
        assert_eq!(o["exit_code"], DISK_FULL, "{o}");
        assert!(
            e.starts_with(NO_SPACE) && e.contains(&format!("ns_tenant_{t}.db")),
            "{e}"
        );
    }
    assert!(
        err.contains("retry with: monkctl --data-dir")
            && err.contains(&format!("migrate up --tenant {}", failed.join(","))),
        "{err}"
    );
    assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new());
    rig.disk.free_up();
    for (t, (files_before, schema_before)) in tenants.iter().zip(&before) {
        if failed.contains(t) {
            assert_eq!(&tenant_files(env, t), files_before, "{t} was changed");
            assert_eq!(
                &schema_and_history(env, t),
                schema_before,
                "{t} was changed"
            );
        } else {
            let (tables, history) = schema_and_history(env, t);
            assert!(tables.contains(&"pad".to_string()), "{t}: {tables:?}");
            assert_eq!(history.last(), Some(&2), "{t}");
        }
    }
    assert_eq!(registry_rows(env), rows_before);

    // The retry line, run as printed, finishes the job.
    let retry = failed.join(",");
    let v = env.json(&["migrate", "--migrations", &mig, "up", "--tenant", &retry]);
    assert_eq!(v["summary"]["failed"], 0, "{v}");
    for t in tenants {
        let (tables, history) = schema_and_history(env, t);
        assert!(tables.contains(&"pad".to_string()), "{t}");
        assert_eq!(history.last(), Some(&2), "{t}");
    }
}

/// A migration larger than SQLite's page cache spills to the WAL while its statement runs, so
/// the full disk surfaces on the statement rather than on COMMIT.
#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn migrate_up_reports_a_statement_that_fills_the_disk_as_disk_full() {
    let rig = rig(8192);
    let env = &rig.env;
    env.ok(&["tenant", "create", "big"]);
    let mig = mig_dir(env, &PAD.replace("i < 100", "i < 3000"));
    let before = (tenant_files(env, "big"), schema_and_history(env, "big"));
    rig.disk.fill_leaving(1024 * 1024);
    let (v, _) = json_fails(env, &["migrate", "--migrations", &mig, "up"], DISK_FULL);
    let e = v["tenants"]["results"][0]["error"].as_str().unwrap();
    assert!(
        e.contains(NO_SPACE) && e.contains("V2__pad.sql") && e.contains("statement 2"),
        "{e}"
    );
    rig.disk.free_up();
    assert_eq!(
        (tenant_files(env, "big"), schema_and_history(env, "big")),
        before
    );
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn extract_to_a_full_disk_fails_with_19_and_leaves_no_file() {
    let rig = rig(1024);
    let env = &rig.env;
    env.ok(&["tenant", "create", "acme"]);
    let size = tenant_size(env, "acme");
    let Some(out) = Disk::mount(&env.root().join("out"), 512) else {
        panic!("cannot mount a second tmpfs although running as root");
    };
    let archive = out.dir.join("x.monk.db");
    let archive_arg = archive.display().to_string();
    let (files_before, rows_before) = (files(env), registry_rows(env));
    // Nothing, half the tenant, and just too little for the tenant and its metadata.
    for free in [0, size / 2, size] {
        out.fill_leaving(free);
        let err = env.fails(&["extract", "acme", "-o", &archive_arg], DISK_FULL);
        assert!(
            err.contains(NO_SPACE) && err.contains(&out.dir.display().to_string()),
            "{free} bytes free: {err}"
        );
        let left: Vec<PathBuf> = snapshot(&out.dir).into_iter().map(|f| f.0).collect();
        assert_eq!(left, vec![out.filler()], "{free} bytes free");
        assert_eq!(files(env), files_before);
        out.free_up();
    }
    assert_eq!(registry_rows(env), rows_before);
    env.ok(&["extract", "acme", "-o", &archive_arg]);
    env.ok(&["archive", "verify", &archive_arg]);
    drop(out);
}

/// An archive of a tenant `acme`, made outside the small disk.
fn archive_of_acme(env: &Env) -> String {
    let archive = env.root().join("acme.monk.db");
    env.ok(&["extract", "acme", "-o", &archive.display().to_string()]);
    archive.display().to_string()
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn restore_as_a_new_tenant_on_a_full_disk_fails_with_19_and_registers_nothing() {
    let rig = rig(1024);
    let env = &rig.env;
    env.ok(&["tenant", "create", "acme"]);
    let size = tenant_size(env, "acme");
    let archive = archive_of_acme(env);
    let (files_before, rows_before) = (files(env), registry_rows(env));
    // No room for the lock's holder record, half the database, the database but not its row.
    for free in [0, size / 2, size + PAGE] {
        rig.disk.fill_leaving(free);
        let err = env.fails(&["restore", &archive, "--as", "copy"], DISK_FULL);
        assert!(err.contains(NO_SPACE), "{free} bytes free: {err}");
        assert!(
            !err.contains(".monktmp-"),
            "a temporary file is named: {err}"
        );
        assert_eq!(files(env), files_before, "{free} bytes free");
        assert!(!env.tenant_file("copy").exists());
        assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new());
        rig.disk.free_up();
        assert_eq!(registry_rows(env), rows_before, "{free} bytes free");
    }
    env.ok(&["restore", &archive, "--as", "copy"]);
    assert_eq!(tenant_names(env), ["acme", "copy"]);
}

/// The rows of the tenant's `users` table, to tell its content apart from the archive's.
fn users(env: &Env, tenant: &str) -> Vec<String> {
    let c = env.open(&env.tenant_file(tenant));
    let mut st = c.prepare("SELECT name FROM users ORDER BY name").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn restore_force_on_a_full_disk_keeps_the_live_tenant_and_its_row() {
    let rig = rig(2048);
    let env = &rig.env;
    env.ok(&["tenant", "create", "acme"]);
    env.open(&env.tenant_file("acme"))
        .execute_batch(
            "CREATE TABLE pad (b BLOB);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 64)
             INSERT INTO pad SELECT randomblob(4000) FROM c;",
        )
        .unwrap();
    let archive = archive_of_acme(env);
    // The live tenant moves on after the archive: a restore would take this user away, and
    // every page of `pad` differs, so the restore has those pages to write.
    env.open(&env.tenant_file("acme"))
        .execute_batch(
            "INSERT INTO users (id, name, auth, access) VALUES ('u-later', 'later', 'later', 'root');
             UPDATE pad SET b = randomblob(4000);",
        )
        .unwrap();
    let size = tenant_size(env, "acme");
    let live_users = users(env, "acme");
    assert!(live_users.contains(&"later".to_string()));
    let trash = env.data().join("trash");
    let (files_before, rows_before) = (files(env), registry_rows(env));
    // Room for less than the copy saved to the trash plus the staged new content (they are
    // written at once): saving or staging runs out. Room for both but not for the pages that
    // differ in the live tenant's WAL: writing them into the live database runs out.
    let live = env.tenant_file("acme").display().to_string();
    let staging = format!(
        "{}/.ns_tenant_acme.db.monktmp-",
        env.data().join("db_main").display()
    );
    for (free, phase) in [
        (size + size / 4, "saving to the trash"),
        (2 * size + 96 * 1024, "writing the new content"),
    ] {
        rig.disk.fill_leaving(free);
        let err = env.fails(&["restore", &archive, "--force", "--yes"], DISK_FULL);
        let saved = snapshot(&trash);
        if phase == "saving to the trash" {
            // The copy to the trash, the staged new content (written at the same time), or the
            // live tenant, which the copy to the trash opens for reading while the staging
            // fills the disk (SQLite then cannot set up its `-shm`).
            assert!(
                err.contains(&format!("{NO_SPACE} {}/", trash.display()))
                    || err.contains(&format!("{NO_SPACE} {staging}"))
                    || err.contains(&format!("{NO_SPACE} {live}:")),
                "{phase}: {err}"
            );
            assert_eq!(saved, Vec::new(), "{phase}");
        } else {
            assert!(
                err.contains(&format!("{NO_SPACE} {live}:")),
                "{phase}: {err}"
            );
            // The copy of the current content saved before is discarded: the live tenant
            // still holds that content.
            assert_eq!(saved, Vec::new(), "{phase}");
        }
        // The live tenant and the registry are as they were; the trash holds nothing, or a
        // whole copy of the live tenant, never a half-written one.
        let kept: Vec<_> = files(env)
            .into_iter()
            .filter(|(p, _, _)| !p.starts_with(&trash))
            .collect();
        assert_eq!(kept, files_before, "{phase}");
        assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new(), "{phase}");
        rig.disk.free_up();
        assert_eq!(registry_rows(env), rows_before, "{phase}");
        assert_eq!(users(env, "acme"), live_users, "{phase}");
        for (copy, _, _) in saved {
            env.ok(&["archive", "verify", &copy.display().to_string()]);
            fs::remove_file(&copy).unwrap();
        }
    }
    env.ok(&["restore", &archive, "--force", "--yes"]);
    assert!(!users(env, "acme").contains(&"later".to_string()));
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn deleting_a_tenant_without_room_for_its_trash_copy_changes_nothing() {
    let rig = rig(1024);
    let env = &rig.env;
    env.ok(&["tenant", "create", "acme"]);
    let size = tenant_size(env, "acme");
    let (files_before, rows_before) = (files(env), registry_rows(env));
    // The deletion is committed before the file is copied to the trash, so the copy's room is
    // checked first: nothing at all, less than the tenant, the tenant but not SQLite's files.
    for free in [0, size / 2, size + PAGE] {
        rig.disk.fill_leaving(free);
        let err = env.fails(&["tenant", "delete", "acme", "--yes"], DISK_FULL);
        assert!(err.contains(NO_SPACE), "{free} bytes free: {err}");
        if free > 0 {
            assert!(
                err.contains("/trash/") && err.contains("copying tenant 'acme' to the trash needs"),
                "{free} bytes free: {err}"
            );
        }
        assert_eq!(files(env), files_before, "{free} bytes free");
        assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new());
        rig.disk.free_up();
        assert_eq!(registry_rows(env), rows_before, "{free} bytes free");
    }
    env.ok(&["tenant", "delete", "acme", "--yes"]);
    assert!(!env.tenant_file("acme").exists());
    let v = env.json(&["tenant", "show", "acme"]);
    assert_eq!(v["status"], "deleted", "{v}");
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn init_on_a_full_disk_fails_with_19_and_a_retry_finishes_it() {
    let env = Env::with_data_dir("disk/data");
    let Some(disk) = Disk::mount(&env.root().join("disk"), 512) else {
        panic!("cannot mount a tmpfs although running as root: this test cannot run here");
    };
    let rig = Rig { disk, env };
    // Nothing left, and room for the file's first pages but not for the registry's tables.
    for free in [0, 64 * 1024] {
        rig.disk.fill_leaving(free);
        let err = rig.env.fails(&["init"], DISK_FULL);
        assert!(
            err.contains(&format!("{NO_SPACE} {}", rig.env.infra().display())),
            "{free} bytes free: {err}"
        );
        rig.disk.free_up();
        // What is left is an unfinished registry, and commands say how to finish it.
        let err = rig.env.fails(&["tenant", "list"], 3);
        assert!(
            err.contains("run `monkctl init`"),
            "{free} bytes free: {err}"
        );
        rig.env.ok(&["init"]);
        assert_eq!(tenant_names(&rig.env), Vec::<String>::new());
        fs::remove_dir_all(rig.env.data()).unwrap();
    }
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn deploying_a_fixture_that_fills_the_disk_fails_with_19_and_applies_nothing() {
    let rig = rig(8192);
    let env = &rig.env;
    env.ok(&["tenant", "create", "acme"]);
    // About 3 MB of rows: more than SQLite's page cache, so the statement itself writes to the
    // WAL and runs out of space, before any COMMIT.
    common::fixture(
        env,
        "big",
        "name = \"big\"\nversion = \"1\"\nfiles = [\"big.sql\"]\n",
        &[("big.sql", PAD.replace("i < 100", "i < 3000").as_bytes())],
    );
    let before = (tenant_files(env, "acme"), schema_and_history(env, "acme"));
    let rows_before = registry_rows(env);
    rig.disk.fill_leaving(1024 * 1024);
    let err = env.fails(&["fixture", "deploy", "big", "--tenant", "acme"], DISK_FULL);
    assert!(
        err.contains(&format!("{NO_SPACE} {}", env.tenant_file("acme").display()))
            && err.contains("big.sql:2: statement failed: database or disk is full"),
        "{err}"
    );
    assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new());
    rig.disk.free_up();
    assert_eq!(
        (tenant_files(env, "acme"), schema_and_history(env, "acme")),
        before
    );
    assert_eq!(registry_rows(env), rows_before);
    env.ok(&["fixture", "deploy", "big", "--tenant", "acme"]);
    let (tables, _) = schema_and_history(env, "acme");
    assert!(tables.contains(&"pad".to_string()), "{tables:?}");
}

/// The pad of each row, to compare a tenant's content across runs.
fn pad_of(env: &Env, tenant: &str) -> Vec<Vec<u8>> {
    let c = env.open(&env.tenant_file(tenant));
    let mut st = c.prepare("SELECT data FROM pad ORDER BY id").unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

#[test]
#[cfg_attr(
    not(monkctl_root),
    ignore = "needs root: mounts a tmpfs of its own (CI runs as root)"
)]
fn migrate_undo_on_a_full_disk_fails_with_19_and_a_retry_restores_the_snapshot() {
    let rig = rig(4096);
    let env = &rig.env;
    env.ok(&["tenant", "create", "t1"]);
    env.open(&env.tenant_file("t1")).execute_batch(PAD).unwrap();
    let original = pad_of(env, "t1");
    // A destructive migration (it deletes rows) that rewrites every row of `pad`: the run takes
    // a snapshot, and undoing it has every page of `pad` to write back.
    let mig = mig_dir(
        env,
        "DELETE FROM pad;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO pad (data) SELECT randomblob(1000) FROM n;",
    );
    env.ok(&[
        "migrate",
        "--migrations",
        &mig,
        "up",
        "--allow-destructive",
        "--yes",
    ]);
    let migrated = pad_of(env, "t1");
    assert_ne!(migrated, original);
    let files_before = tenant_files(env, "t1");

    // Less room than those pages take in the tenant's WAL.
    rig.disk.fill_leaving(48 * 1024);
    let (v, err) = json_fails(env, &["migrate", "undo", "--yes"], DISK_FULL);
    let result = &v["tenants"]["results"][0];
    assert_eq!(result["exit_code"], DISK_FULL, "{v}");
    assert!(
        result["error"].as_str().unwrap().starts_with(NO_SPACE),
        "{v} {err}"
    );
    rig.disk.free_up();
    assert_eq!(
        tenant_files(env, "t1"),
        files_before,
        "the tenant was changed"
    );
    assert_eq!(pad_of(env, "t1"), migrated);
    assert_eq!(temp_files(&env.data()), Vec::<PathBuf>::new());

    // Once there is room, the same undo puts the snapshot back.
    env.ok(&["migrate", "undo", "--yes"]);
    assert_eq!(pad_of(env, "t1"), original);
}
