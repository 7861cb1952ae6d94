//! Archive figures on one large tenant (1 GiB by default; `MONK_BENCH_ARCHIVE_MIB` for quicker
//! runs): extract, restore into a new name and restore over the existing tenant (unchanged, a
//! tenth rewritten, all rewritten), each against the floor of copying the tenant file and
//! syncing it, with the peak memory of each run.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{measured, median, monk, report, run_ok, scratch, settle};

/// The floor: copy the file and sync it to disk.
fn copy_and_sync(from: &Path, to: &Path) -> Duration {
    let t = Instant::now();
    std::fs::copy(from, to).expect("copy");
    File::open(to).and_then(|f| f.sync_all()).expect("sync");
    let d = t.elapsed();
    std::fs::remove_file(to).expect("remove copy");
    d
}

fn mem(figure: &str, mib: f64) {
    println!("{figure:<58} peak memory {mib:>7.1} MiB | target < 64 MiB");
}

pub fn run() {
    let mib: u64 = std::env::var("MONK_BENCH_ARCHIVE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let root = scratch("archive");
    let data = root.join("data");
    run_ok(monk(&data).args(["tenant", "create", "big"]));
    let live = data.join("db_main/ns_tenant_big.db");
    {
        // Blobs of 1 MiB of random bytes, in one transaction: quick to build, nothing to compress.
        let conn = rusqlite::Connection::open(&live).expect("open");
        conn.execute_batch(&format!(
            "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
             BEGIN;
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {mib})
             INSERT INTO blobs (data) SELECT randomblob(1048576) FROM c;
             COMMIT;
             PRAGMA wal_checkpoint(TRUNCATE);"
        ))
        .expect("fill");
    }
    let size = std::fs::metadata(&live).expect("size").len();
    println!(
        "tenant database: {:.0} MiB (set MONK_BENCH_ARCHIVE_MIB for another size)",
        size as f64 / 1048576.0
    );
    settle();
    let floor_path = root.join("floor.copy");
    let floor = median(
        (0..3)
            .map(|_| {
                let d = copy_and_sync(&live, &floor_path);
                settle();
                d
            })
            .collect(),
    );

    settle();
    let archive = root.join("big.monk.db");
    let (t_extract, m_extract) =
        measured(monk(&data).args(["extract", "big", "-o", archive.to_str().expect("utf-8")]));
    report(
        &format!("extract a {:.0} MiB tenant", size as f64 / 1048576.0),
        t_extract,
        "copy file + fsync (floor)",
        floor,
        "< 1.5x",
    );

    // The same tenant while a connection holds it open with frames in its WAL, as an API
    // writing it would: extract first folds the WAL into the file under the write lock (a
    // passive checkpoint). Then with a reader of an older state keeping the last commit in the
    // WAL, out of the file: SQLite copies the pages.
    let mut busy = Vec::new();
    for (figure, older_reader) in [
        ("extract while the API holds it open (WAL not empty)", false),
        (
            "extract while an older reader keeps frames in the WAL",
            true,
        ),
    ] {
        let reader = rusqlite::Connection::open(&live).expect("open");
        if older_reader {
            reader
                .execute_batch("BEGIN; SELECT count(*) FROM blobs;")
                .expect("read");
        }
        let holder = rusqlite::Connection::open(&live).expect("open");
        holder
            .execute_batch(
                "PRAGMA wal_autocheckpoint=0; CREATE TABLE IF NOT EXISTS note (x); INSERT INTO note VALUES (1);",
            )
            .expect("write");
        settle();
        let out = root.join("big-busy.monk.db");
        let (t, m) =
            measured(monk(&data).args(["extract", "big", "-o", out.to_str().expect("utf-8")]));
        drop(reader);
        holder
            .execute_batch("DROP TABLE note; PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("undo");
        std::fs::remove_file(&out).expect("remove");
        report(figure, t, "copy file + fsync (floor)", floor, "(context)");
        busy.push((figure, m));
    }

    settle();
    let (t_new, m_new) = measured(monk(&data).args([
        "restore",
        archive.to_str().expect("utf-8"),
        "--as",
        "big_copy",
    ]));
    report(
        "restore to a new name (verify included)",
        t_new,
        "copy file + fsync (floor)",
        floor,
        "< 2.5x",
    );

    // Over the existing tenant: unchanged since the archive, then with a tenth of its rows
    // rewritten (a restore after a mistake), then with every row rewritten (every page differs).
    let mut over = Vec::new();
    for (figure, rewrite) in [
        ("restore over the tenant, unchanged since extract", None),
        (
            "restore over the tenant, 10% rewritten since",
            Some("WHERE id % 10 = 0"),
        ),
        ("restore over the tenant, every page rewritten", Some("")),
    ] {
        if let Some(filter) = rewrite {
            let conn = rusqlite::Connection::open(&live).expect("open");
            conn.execute_batch(&format!(
                "UPDATE blobs SET data = randomblob(1048576) {filter};
                 PRAGMA wal_checkpoint(TRUNCATE);"
            ))
            .expect("rewrite");
        }
        settle();
        let (t, m) = measured(monk(&data).args([
            "restore",
            archive.to_str().expect("utf-8"),
            "--force",
            "--yes",
        ]));
        report(figure, t, "copy file + fsync (floor)", floor, "< 2.5x");
        over.push((figure, m));
    }
    mem("extract", m_extract);
    for (figure, m) in busy {
        mem(figure, m);
    }
    mem("restore to a new name", m_new);
    for (figure, m) in over {
        mem(figure, m);
    }
    let _ = std::io::stdout().flush();
    std::fs::remove_dir_all(&root).expect("remove bench data");
}
