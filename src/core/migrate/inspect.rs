//! Where a tenant database stands: its history judged against the set, and the content
//! fingerprint a run records.

use super::*;

pub(super) fn read_history(conn: &Connection) -> rusqlite::Result<Vec<Applied>> {
    if !db::has_table(conn, HISTORY_TABLE)? {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT CAST(version AS INTEGER), coalesce(name, ''), coalesce(CAST(checksum AS TEXT), '') \
         FROM refinery_schema_history ORDER BY version",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Applied {
            version: r.get(0)?,
            name: r.get(1)?,
            checksum: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Where a tenant database stands against the migration set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inspection {
    pub version: i64,
    /// No migration history yet: the baseline it matches would be recorded, nothing run.
    pub adopt: bool,
    pub pending: Vec<i64>,
    /// Applied migrations whose file was edited since (name or checksum differ).
    pub diverged: Vec<String>,
    /// Applied migrations no longer in the set, and migrations below the applied version that
    /// were never applied.
    pub missing: Vec<String>,
}

pub(super) fn inspect(
    conn: &Connection,
    path: &Path,
    set: &MigrationSet,
    target: i64,
) -> Result<Inspection> {
    let hist = read_history(conn).at(path)?;
    let baseline = if hist.is_empty() {
        let v = schema::tenant_version(conn).at(path)?;
        if v == 0 {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                detail: "it has neither a migration history nor the Monk system tables, so it is not a Monk tenant database".into(),
            });
        }
        v
    } else {
        0
    };
    Ok(judge_history(&hist, baseline, set, target, |m| m.checksum))
}

/// Where a tenant stands from its migration history (`hist`), the same on every backend. An
/// empty history is adopted at `baseline` (the version its schema matches). `checksum` is the
/// backend's checksum of a migration.
pub(super) fn judge_history(
    hist: &[Applied],
    baseline: i64,
    set: &MigrationSet,
    target: i64,
    checksum: impl Fn(&Mig) -> u64,
) -> Inspection {
    let mut ins = Inspection::default();
    let mut applied: HashSet<i64> = HashSet::new();
    if hist.is_empty() {
        ins.version = baseline;
        ins.adopt = true;
        applied.extend(
            set.migs
                .iter()
                .map(|m| m.version)
                .filter(|v| *v <= ins.version),
        );
    } else {
        ins.version = hist.iter().map(|a| a.version).max().unwrap_or(0);
        for a in hist {
            applied.insert(a.version);
            match set.get(a.version) {
                None => ins.missing.push(format!(
                    "V{} {} is applied but {} hold no V{}",
                    a.version,
                    a.name,
                    set.origin(),
                    a.version
                )),
                Some(m) if m.name != a.name || checksum(m).to_string() != a.checksum => {
                    ins.diverged.push(format!(
                        "V{} {} was edited after it was applied ({} has checksum {}, the database recorded {} {})",
                        a.version,
                        m.name,
                        m.file,
                        checksum(m),
                        a.name,
                        a.checksum
                    ))
                }
                Some(_) => {}
            }
        }
    }
    for m in &set.migs {
        if applied.contains(&m.version) {
            continue;
        }
        if m.version <= ins.version {
            ins.missing.push(format!(
                "V{} {} ({}) was never applied but the database is already at V{}",
                m.version, m.name, m.file, ins.version
            ));
        } else if m.version <= target {
            ins.pending.push(m.version);
        }
    }
    ins
}

/// The `CREATE` statements of a database, in creation order, for a scratch copy.
pub(super) fn schema_sql(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// FNV-1a, 64 bits: the form of fingerprints recorded before they were tagged (read only).
pub(super) struct Fnv(pub(super) u64);

impl Fnv {
    pub(super) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Length-delimited, so that ("ab","c") and ("a","bc") differ.
        for x in (b.len() as u64).to_le_bytes() {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The tag of `content_hash`'s current form (`core::fingerprint`).
pub(super) const CONTENT_HASH_TAG: &str = "xxh3:";

/// A fingerprint of a database's logical content (schema and every row), independent of how
/// pages sit between the main file and the WAL, and of what only describes the content: the
/// statistics `ANALYZE` keeps (`sqlite_stat*`, written by `tenant vacuum` and the API's
/// `PRAGMA optimize`) and the order pages happen to hold rows in (rows are read in rowid order,
/// or primary-key order for WITHOUT ROWID tables). Tagged `xxh3:`; used by undo to tell whether
/// a tenant changed since the run that migrated it.
pub fn content_hash(conn: &Connection) -> rusqlite::Result<String> {
    let mut h = crate::core::fingerprint::Fingerprint::default();
    let mut field = |b: &[u8]| {
        // Length-delimited, so that ("ab","c") and ("a","bc") differ.
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    let mut tables: Vec<(String, bool)> = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT m.type, m.name, coalesce(m.sql, ''), coalesce(t.wr, 0) FROM sqlite_master m \
             LEFT JOIN pragma_table_list t ON t.schema = 'main' AND t.name = m.name \
             WHERE m.name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\' ORDER BY m.type, m.name",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (t, n, s): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            field(t.as_bytes());
            field(n.as_bytes());
            field(s.as_bytes());
            if t == "table" && !s.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
                tables.push((n, r.get::<_, i64>(3)? != 0));
            }
        }
    }
    for (t, without_rowid) in tables {
        field(t.as_bytes());
        let order = if without_rowid {
            let mut st =
                conn.prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?;
            let pk = st
                .query_map([&t], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            pk.iter()
                .map(|c| db::quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "_rowid_".to_string()
        };
        let mut st = conn.prepare(&format!(
            "SELECT * FROM {} ORDER BY {order}",
            db::quote_ident(&t)
        ))?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..n {
                match r.get_ref(i)? {
                    ValueRef::Null => field(b"n"),
                    ValueRef::Integer(v) => field(&[b"i".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Real(v) => field(&[b"r".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Text(v) => field(&[b"t".as_slice(), v].concat()),
                    ValueRef::Blob(v) => field(&[b"b".as_slice(), v].concat()),
                }
            }
        }
    }
    Ok(h.finish())
}

/// Whether a database's content is what a fingerprint recorded. Fingerprints of runs made
/// before the tag (16 hex digits, FNV over unordered rows and statistics) are compared in
/// their own form, so that those runs can still be undone.
pub(super) fn content_is(conn: &Connection, recorded: &str) -> rusqlite::Result<bool> {
    if recorded.starts_with(CONTENT_HASH_TAG) {
        return Ok(content_hash(conn)? == recorded);
    }
    Ok(legacy_content_hash(conn)? == recorded)
}

/// The untagged fingerprint of runs recorded before `content_hash` was tagged.
pub(super) fn legacy_content_hash(conn: &Connection) -> rusqlite::Result<String> {
    let mut h = Fnv::new();
    let mut tables = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (t, n, s): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            h.bytes(t.as_bytes());
            h.bytes(n.as_bytes());
            h.bytes(s.as_bytes());
            if t == "table" && !s.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
                tables.push(n);
            }
        }
    }
    for t in tables {
        h.bytes(t.as_bytes());
        let mut st = conn.prepare(&format!("SELECT * FROM {}", db::quote_ident(&t)))?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..n {
                match r.get_ref(i)? {
                    ValueRef::Null => h.bytes(b"n"),
                    ValueRef::Integer(v) => h.bytes(&[b"i".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Real(v) => h.bytes(&[b"r".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Text(v) => h.bytes(&[b"t".as_slice(), v].concat()),
                    ValueRef::Blob(v) => h.bytes(&[b"b".as_slice(), v].concat()),
                }
            }
        }
    }
    Ok(format!("{:016x}", h.0))
}
