//! The content checksum of an archive: what it covers and how it is computed.

use super::*;

/// A streaming 64-bit hash over four independent 64-bit lanes ("lanes64"): the checksum of
/// archives made before `core::fingerprint`, kept to verify them.
///
/// Input is consumed in 32-byte blocks, one little-endian word per lane; each lane steps as
/// `lane = rotl((lane ^ word) * P1, 31) * P2`. Every step is a bijection of the lane for a fixed
/// word and of the word for a fixed lane, so changing any one block changes that lane's state for
/// certain, and no later block can undo it: a flipped byte is always visible in the lanes (the
/// final 64-bit fold can collide only by chance, 2^-64). Four lanes let the CPU run the
/// multiplications in parallel, so hashing runs at memory speed, unlike byte-at-a-time FNV.
/// The tail is zero-padded and the total length is folded in, so padding cannot collide.
#[derive(Clone)]
pub struct Checksum {
    lanes: [u64; 4],
    buf: [u8; 32],
    buf_len: usize,
    total: u64,
}

pub(super) const P1: u64 = 0x9E37_79B9_7F4A_7C15;
pub(super) const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;

pub(super) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum {
            lanes: [
                0x243F_6A88_85A3_08D3,
                0x1319_8A2E_0370_7344,
                0xA409_3822_299F_31D0,
                0x082E_FA98_EC4E_6C89,
            ],
            buf: [0; 32],
            buf_len: 0,
            total: 0,
        }
    }
}

impl Checksum {
    fn block(&mut self, b: &[u8]) {
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let w = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            *lane = ((*lane ^ w).wrapping_mul(P1))
                .rotate_left(31)
                .wrapping_mul(P2);
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (32 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 32 {
                return;
            }
            let b = self.buf;
            self.block(&b);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            self.block(c);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut me = self.clone();
        if me.buf_len > 0 {
            let mut b = [0u8; 32];
            b[..me.buf_len].copy_from_slice(&me.buf[..me.buf_len]);
            me.block(&b);
        }
        let mut h = mix64(me.total ^ P2);
        for lane in me.lanes {
            h = mix64(h ^ mix64(lane)).wrapping_mul(P1);
        }
        mix64(h)
    }

    fn value(&mut self, v: ValueRef<'_>) {
        crate::core::fingerprint::encode(v, |b| self.update(b));
    }
}

/// The algorithm of an archive's checksum: `xxh3` (`core::fingerprint`) for archives made now,
/// `lanes64` (`Checksum`, kept to verify archives made before).
pub(super) enum Digest {
    Xxh3(Box<crate::core::fingerprint::Fingerprint>),
    Lanes64(Checksum),
}

impl Digest {
    /// The digest a checksum's tag names; `None` for an algorithm this monkctl does not know.
    pub(super) fn for_tag(tag: &str) -> Option<Digest> {
        match tag {
            crate::core::fingerprint::TAG => Some(Digest::Xxh3(Default::default())),
            LEGACY_CHECKSUM_ALGORITHM => Some(Digest::Lanes64(Checksum::default())),
            _ => None,
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Digest::Xxh3(f) => f.update(b),
            Digest::Lanes64(c) => c.update(b),
        }
    }

    fn value(&mut self, v: ValueRef<'_>) {
        match self {
            Digest::Xxh3(f) => f.value(v),
            Digest::Lanes64(c) => c.value(v),
        }
    }

    fn finish(&self) -> String {
        match self {
            Digest::Xxh3(f) => f.finish(),
            Digest::Lanes64(c) => format!("{LEGACY_CHECKSUM_ALGORITHM}:{:016x}", c.finish()),
        }
    }
}

/// The content of a tenant database as the checksum and row counts see it.
pub(super) struct Content {
    pub(super) checksum: String,
    pub(super) row_counts: BTreeMap<String, i64>,
}

/// Hashes a tenant database's content in a fixed order: first the `sql` of every schema entry
/// (but the metadata table) ordered by type and name; then each table in name order (byte
/// order), its name and column count, then each row in rowid order (primary-key order for
/// `WITHOUT ROWID` tables), the rowid first, each value as a type tag, a length for text and
/// blobs, and its bytes (integers and reals as 8 little-endian bytes). Reads one row at a time.
pub(super) fn content_of(conn: &Connection, path: &Path) -> Result<Content> {
    content_as(conn, path, CHECKSUM_ALGORITHM)
}

/// `content_of` with the checksum algorithm `tag` (that of the archive being verified).
pub(super) fn content_as(conn: &Connection, path: &Path, tag: &str) -> Result<Content> {
    let mut h = ContentHasher::begin(conn, path, tag)?;
    for (table, without_rowid) in ContentHasher::tables(conn, path)? {
        let mut st = conn
            .prepare(&ContentHasher::select(&table, without_rowid))
            .at(path)?;
        let ncols = st.column_count();
        h.table(&table, ncols);
        let mut rows = st.query([]).at(path)?;
        while let Some(r) = rows.next().at(path)? {
            h.row(r, path)?;
        }
        h.end_table(&table);
    }
    Ok(h.finish())
}

/// The content checksum computed by a reader that goes through the tables itself (a restore
/// into PostgreSQL hashes each row as it loads it): `begin`, then for each of `tables`, in
/// order, `table`, every row of `select`, `end_table`; then `finish`.
pub(super) struct ContentHasher {
    h: Digest,
    ncols: usize,
    rows: i64,
    row_counts: BTreeMap<String, i64>,
}

impl ContentHasher {
    /// Starts with the schema entries, hashed with the algorithm `tag` names.
    pub(super) fn begin(conn: &Connection, path: &Path, tag: &str) -> Result<ContentHasher> {
        let mut h = Digest::for_tag(tag).ok_or_else(|| Error::ArchiveMetadata {
            path: path.to_path_buf(),
            detail: format!("its checksum algorithm '{}' is unknown", tag.escape_debug()),
        })?;
        let mut st = conn
            .prepare(
                "SELECT type, name, coalesce(sql, '') FROM sqlite_master \
                 WHERE name <> ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
            )
            .at(path)?;
        let mut rows = st.query([META_TABLE]).at(path)?;
        while let Some(r) = rows.next().at(path)? {
            for i in 0..3 {
                h.value(r.get_ref(i).at(path)?);
            }
        }
        Ok(ContentHasher {
            h,
            ncols: 0,
            rows: 0,
            row_counts: BTreeMap::new(),
        })
    }

    /// The tables in the order they are hashed, each with whether it is `WITHOUT ROWID`.
    pub(super) fn tables(conn: &Connection, path: &Path) -> Result<Vec<(String, bool)>> {
        let mut st = conn
            .prepare(
                "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
                 AND name <> ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .at(path)?;
        let rows = st
            .query_map([META_TABLE], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
            .at(path)?;
        rows.collect::<rusqlite::Result<_>>().at(path)
    }

    /// How a table is read for the hash: its rowid first (but in a `WITHOUT ROWID` table), then
    /// every column in the table's order, in rowid (primary-key) order.
    pub(super) fn select(table: &str, without_rowid: bool) -> String {
        let q = db::quote_ident(table);
        if without_rowid {
            format!("SELECT * FROM {q}")
        } else {
            format!("SELECT _rowid_, * FROM {q} ORDER BY _rowid_")
        }
    }

    pub(super) fn table(&mut self, table: &str, ncols: usize) {
        self.h.value(ValueRef::Text(table.as_bytes()));
        self.h.update(&(ncols as u64).to_le_bytes());
        self.ncols = ncols;
        self.rows = 0;
    }

    pub(super) fn row(&mut self, r: &rusqlite::Row<'_>, path: &Path) -> Result<()> {
        for i in 0..self.ncols {
            self.h.value(r.get_ref(i).at(path)?);
        }
        self.rows += 1;
        Ok(())
    }

    pub(super) fn end_table(&mut self, table: &str) {
        self.row_counts.insert(table.to_string(), self.rows);
    }

    pub(super) fn finish(self) -> Content {
        Content {
            checksum: self.h.finish(),
            row_counts: self.row_counts,
        }
    }
}
