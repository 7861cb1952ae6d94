//! Schema migrations of the infra database and of every tenant database: status, plan, up, undo
//! and the snapshots that make undo possible.
//!
//! Owns the tenant migration set (embedded `migrations/tenant/` plus an operator directory), the
//! tenant databases' `refinery_schema_history` (written in refinery's own format and checksums,
//! so refinery reads it back), the run lock `<data>/locks/migrate.lock`, the per-database locks
//! and `<data>/snapshots/`. A tenant is migrated in one `BEGIN IMMEDIATE` transaction: it ends
//! fully at the new version or untouched. Snapshots are taken and restored through SQLite (the
//! backup API), never by copying a live file. No printing, no prompts.
//!
//! The parts: `set` (the migration set and building a schema at a version), `inspect` (a
//! tenant's history judged, the content fingerprint), `targets` (selection, the ordered worker
//! pool, analysis on scratch copies), `survey` (`status`, `plan`), `up`, `undo` (and the
//! snapshots' listing and pruning), `destructive` (what a migration drops or rewrites) and
//! `postgres` (all of it on PostgreSQL schemas).

pub mod destructive;
pub(crate) mod postgres;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use self::destructive::{FailKind, Failure, Finding};
use super::db::{self, Mode};
use super::error::{exit, Context, Error, Result};
use super::fsutil;
use super::guard::{self, Kind};
use super::ids;
use super::lock::{self, Holder, Lock, LockState};
use super::names;
use super::progress::Progress;
use super::registry::Registry;
use super::schema::{self, HISTORY_TABLE};
use super::system;
use super::{Batch, Outcome, RunSink, Tally, Workspace};

mod inspect;
mod set;
mod survey;
mod targets;
mod undo;
mod up;

pub use inspect::*;
pub use set::*;
pub use survey::*;
pub use targets::*;
pub use undo::*;
pub use up::*;

/// refinery 0.10's history table, as its rusqlite driver creates it (int4 versions).
pub(crate) const HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS refinery_schema_history(
             version int4 PRIMARY KEY,
             name VARCHAR(255),
             applied_on VARCHAR(255),
             checksum VARCHAR(255));";

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_sort_by_creation_within_one_second_and_after_a_clock_set_back() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = UNIX_EPOCH + Duration::from_secs(1_795_404_353);
        let mut ids: Vec<String> = Vec::new();
        // Random parts that sort against creation order: the sequence must decide.
        for (i, rand) in ["ffffffff", "00000000", "88888888"].iter().enumerate() {
            let id = super::next_run_id(&ids, t + Duration::from_millis(i as u64 * 10), rand);
            ids.push(id);
        }
        assert_eq!(
            ids,
            [
                "20261123T032553Z-0000-ffffffff",
                "20261123T032553Z-0001-00000000",
                "20261123T032553Z-0002-88888888"
            ]
        );
        // The clock went back an hour: the next run still sorts last.
        let back = super::next_run_id(&ids, t - Duration::from_secs(3600), "00000000");
        assert_eq!(back, "20261123T032553Z-0003-00000000");
        // A later second starts again at 0; an older monkctl's id sorts by its stamp.
        let later = super::next_run_id(&ids, t + Duration::from_secs(1), "0");
        assert_eq!(later, "20261123T032554Z-0000-0");
        let legacy = "20261123T032553Z-9abcdef0".to_string();
        let mut all = vec![
            later.clone(),
            legacy.clone(),
            ids[1].clone(),
            ids[0].clone(),
        ];
        all.sort_by(|a, b| super::run_order(a).cmp(&super::run_order(b)));
        assert_eq!(all, [legacy, ids[0].clone(), ids[1].clone(), later]);
        // Stray files in the snapshots directory do not count.
        let stray = vec![".x.monktmp-1-2".to_string(), "notes.txt".to_string()];
        assert_eq!(
            super::next_run_id(&stray, t, "aa"),
            "20261123T032553Z-0000-aa"
        );
    }

    use super::*;

    #[test]
    fn file_names_follow_refinery_rule() {
        assert_eq!(parse_file_name("V2__add_x.sql"), Some((2, "add_x")));
        assert_eq!(parse_file_name("V10__a__b.sql"), Some((10, "a__b")));
        for bad in [
            "v2__x.sql",
            "V2_x.sql",
            "V2__x.SQL",
            "V__x.sql",
            "V0__x.sql",
            "V2__.sql",
            "V2__a-b.sql",
            "U2__x.sql",
            "README.md",
            "V99999999999__x.sql",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn checksums_match_refinery_and_history_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("V2__add_col.sql"),
            "ALTER TABLE users ADD COLUMN nick TEXT;",
        )
        .unwrap();
        let set = MigrationSet::load(Some(dir.path())).unwrap();
        let m = set.get(2).unwrap();
        let rm = refinery::Migration::unapplied("V2__add_col", &m.sql).unwrap();
        assert_eq!(m.checksum, rm.checksum());
        let p = dir.path().join("t.db");
        // A tenant built at the set's latest version runs V2 and records the whole history.
        system::build(&p, "root", &set).unwrap();
        let conn = Connection::open(&p).unwrap();
        let nick: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'nick'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(nick, 1);
        // refinery agrees the database is fully migrated and finds nothing to apply.
        let mut conn = conn;
        let runner = refinery::Runner::new(
            &set.migs
                .iter()
                .map(|m| {
                    refinery::Migration::unapplied(&format!("V{}__{}", m.version, m.name), &m.sql)
                        .unwrap()
                })
                .collect::<Vec<_>>(),
        );
        let applied = runner.get_applied_migrations(&mut conn).unwrap();
        assert_eq!(applied.len(), 2);
        let report = runner.run(&mut conn).unwrap();
        assert!(report.applied_migrations().is_empty());
    }

    #[test]
    fn content_hash_ignores_statistics_and_row_placement_and_reads_old_runs() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (a, b); CREATE INDEX t_a ON t (a);
             CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
             INSERT INTO t VALUES (1, 'x'), (2, 'y'); INSERT INTO w VALUES ('b', 1), ('a', 2);",
        )
        .unwrap();
        let h = content_hash(&c).unwrap();
        assert!(h.starts_with(CONTENT_HASH_TAG), "{h}");
        let legacy = legacy_content_hash(&c).unwrap();
        // ANALYZE (tenant vacuum, the API's PRAGMA optimize) writes statistics, not content.
        c.execute_batch("ANALYZE").unwrap();
        assert_eq!(content_hash(&c).unwrap(), h);
        assert_ne!(legacy_content_hash(&c).unwrap(), legacy);
        // A run recorded before the tag is compared in its own form.
        let c2 = Connection::open_in_memory().unwrap();
        c2.execute_batch("CREATE TABLE t (a); INSERT INTO t VALUES (1);")
            .unwrap();
        let old = legacy_content_hash(&c2).unwrap();
        assert!(content_is(&c2, &old).unwrap());
        c2.execute_batch("UPDATE t SET a = 2").unwrap();
        assert!(!content_is(&c2, &old).unwrap());
    }

    #[test]
    fn content_hash_sees_any_row_change() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a, b); INSERT INTO t VALUES (1, 'x');")
            .unwrap();
        let h1 = content_hash(&c).unwrap();
        assert_eq!(h1, content_hash(&c).unwrap());
        c.execute_batch("UPDATE t SET b = 'y'").unwrap();
        assert_ne!(h1, content_hash(&c).unwrap());
    }
}
