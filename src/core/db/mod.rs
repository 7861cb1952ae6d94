//! The one way monkctl opens a SQLite database, with the pragmas the Monk API uses.
//!
//! WAL, foreign keys on, a 5 s busy timeout, synchronous NORMAL. Writes to shared databases take
//! `BEGIN IMMEDIATE` (set as the connection's default transaction behaviour) so monkctl queues
//! behind a running API instead of failing half-way through a transaction.
//!
//! Reads take no lock that a running API's requests need (it connects with busy timeout 0, so
//! any such lock fails a request): `read_quietly` (a quiet file read by `immutable` connections
//! under the shared lock every reader holds, `QuietFile`) and `open_for_inspection` (no
//! checkpoint on close, the API's shared-memory index used read-only, never rebuilt). A read
//! never switches the journal mode. `begin_read_snapshot` lines up two readers without a lock.
//!
//! The parts (everything is used as `db::<item>`):
//! - `open`: opening, and the connection kinds: `open` (a live database, `Mode`),
//!   `open_for_inspection`, `open_immutable` (an archive, a quiet file), `open_build`,
//!   `open_clone` and `finish_build` (a tenant being built), `open_scratch` and `leave_wal` (a
//!   private copy being made); `build_info`, `configure_sqlite`, `file_uri`;
//! - `read`: quiet reading and read snapshots (`QuietFile`, `read_quietly`, `read_once`,
//!   `open_readers`, `begin_read`, `Snapshot`, `begin_read_snapshot`,
//!   `begin_readers_under_lock`);
//! - `wal`: checkpoints (`checkpoint_before_close`, `checkpoint_truncate`, `wal_folded`) and the
//!   file's POSIX locks asked of the operating system (`write_lock_held_elsewhere`);
//! - `copy`: backup and copy (`backup_all`, `backup_checked`, `copy_into_memory`,
//!   `read_main_file`);
//! - `replace`: the page writer and content replacement (`Replacement`, `PageWriter`,
//!   `replace_content`, `replace_whole`);
//! - `sql`: small SQL helpers (`quote_ident`, `user_tables`, `table_counts`, `has_table`,
//!   `has_column`, `history_version`).

mod copy;
mod open;
mod read;
mod replace;
mod sql;
mod wal;

pub use copy::{backup_all, backup_checked, copy_into_memory, read_main_file};
pub use open::{
    build_info, configure_sqlite, file_uri, finish_build, leave_wal, open, open_build, open_clone,
    open_for_inspection, open_immutable, open_scratch, BuildInfo, Mode, BUSY_TIMEOUT,
};
pub use read::{
    begin_read, begin_read_snapshot, begin_readers_under_lock, open_readers, read_once,
    read_quietly, QuietFile, Snapshot,
};
pub use replace::{replace_content, replace_whole, PageWriter, Replaced, Replacement};
pub use sql::{
    has_column, has_table, history_version, quote_ident, table_counts, user_tables, TableCount,
};
pub use wal::{
    checkpoint_before_close, checkpoint_truncate, wal_folded, write_lock_held_elsewhere,
    Checkpointed,
};
