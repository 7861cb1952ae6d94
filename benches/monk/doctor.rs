//! `doctor` quick checks over 10,000 tenants against SQLite's `quick_check` over the same files,
//! sequentially in one thread, in the same run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use monkctl::core::registry::{Registry, TenantRow};
use monkctl::core::{ids, system, Layout};

use crate::util::{median, monk, report, report_abs, run_ok, scratch, time};

const TENANTS: usize = 10_000;
const ROUNDS: usize = 3;

/// A data directory with `tenants` copies of one built tenant and their registry rows (also
/// the `query` suite's fleet).
pub fn build(data: &Path, tenants: usize) -> Vec<PathBuf> {
    run_ok(monk(data).arg("init"));
    let layout = Layout::detect(data, "monk").unwrap();
    let dir = data.join("db_main");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let template = data.join("template.db.build");
    let owner = system::build(
        &template,
        "root",
        &monkctl::core::migrate::MigrationSet::builtin(),
    )
    .unwrap();
    let now = ids::now_iso();
    let mut files = Vec::with_capacity(tenants);
    let mut rows = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let name = format!("t{i:05}");
        let schema = Layout::schema_for(&name);
        let path = dir.join(format!("{schema}.db"));
        fs::copy(&template, &path).unwrap();
        files.push(path);
        rows.push(TenantRow {
            id: ids::uuid_v4(),
            name,
            db_type: "sqlite".into(),
            database: "db_main".into(),
            schema,
            status: "active".into(),
            template_version: 1,
            description: None,
            source_template: None,
            owner_id: owner.clone(),
            is_active: true,
            created_at: now.clone(),
            updated_at: now.clone(),
            trashed_at: None,
            deleted_at: None,
        });
    }
    fs::remove_file(&template).unwrap();
    let mut reg = Registry::open_for_write(&layout).unwrap();
    reg.write(|w| {
        for r in &rows {
            w.insert(r)?;
            w.record_fixture(&r.id, "system", &now)?;
        }
        Ok(())
    })
    .unwrap();
    files
}

/// The baseline: open each file and run `PRAGMA quick_check`, one after another.
fn sequential_quick_check(files: &[PathBuf]) {
    for f in files {
        let conn = rusqlite::Connection::open(f).unwrap();
        let r: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(r, "ok", "{}", f.display());
    }
}

/// CPU seconds (user + system) of this process and of its waited-for children, from
/// `/proc/self/stat` (clock ticks of 1/100 s): a figure that the load of a shared machine does
/// not distort the way it distorts wall time.
fn cpu_seconds() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = after_comm
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let get = |n: usize| f.get(n - 3).copied().unwrap_or(0.0) / 100.0;
    (get(14) + get(15), get(16) + get(17))
}

pub fn run() {
    let data = scratch("doctor").join("data");
    let (setup, files) = time(|| build(&data, TENANTS));
    report_abs(
        &format!("setup: {TENANTS} tenant files + rows (not a figure)"),
        setup,
        "-",
    );
    let (mut base, mut doc): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    let (mut base_cpu, mut doc_cpu) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let (own0, _) = cpu_seconds();
        base.push(time(|| sequential_quick_check(&files)).0);
        let (own1, kids0) = cpu_seconds();
        base_cpu += own1 - own0;
        let (d, out) = time(|| run_ok(monk(&data).args(["--format", "json", "doctor"])));
        doc_cpu += cpu_seconds().1 - kids0;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["status"],
            "healthy",
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(v["summary"]["tenants_checked"], TENANTS);
        doc.push(d);
    }
    report(
        &format!("doctor (quick checks), {TENANTS} tenants"),
        median(doc),
        "sqlite quick_check, 1 thread",
        median(base),
        "< 1.0x and < 10 s",
    );
    println!(
        "cpu time per run (user + system): doctor {:.1} s, baseline {:.1} s; load average {}",
        doc_cpu / ROUNDS as f64,
        base_cpu / ROUNDS as f64,
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
