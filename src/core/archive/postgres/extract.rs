//! `extract` of a PostgreSQL tenant schema into the SQLite archive form.

use super::*;

/// `extract` of the PostgreSQL tenant `t` (with its registry row and `fixtures` as read
/// before) to `final_path`, its schema read in a snapshot of its own. The snapshot's
/// transaction touches nothing of the registry: a lock on `tenants`, held as long as the
/// tenant is read, would make every request of the API wait (it locks `tenants` exclusively at
/// each lookup).
pub(in crate::core::archive) fn extract(
    target: &Arc<Target>,
    set: &MigrationSet,
    t: &TenantRow,
    fixtures: &[FixtureRow],
    final_path: &Path,
    force: bool,
) -> Result<Extracted> {
    let final_path = super::super::output_path(final_path, force)?;
    let mut client = target.connect()?;
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| target.error(None, e))?;
    write_archive(&mut tx, target, set, t, fixtures, &final_path, force)
}

/// Writes the archive of tenant `t` (schema `t.schema`) as `tx` sees it.
pub(super) fn write_archive(
    tx: &mut Transaction<'_>,
    target: &Target,
    set: &MigrationSet,
    t: &TenantRow,
    fixtures: &[FixtureRow],
    final_path: &Path,
    force: bool,
) -> Result<Extracted> {
    let schema = t.schema.as_str();
    let err = |e| target.error(Some(schema), e);
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
        .map_err(err)?;
    let tables = catalog(tx, target, schema)?;
    if !tables.contains_key("models") || !tables.contains_key("users") {
        return Err(Error::Postgres {
            target: target.at(Some(schema)),
            detail: format!(
                "tenant '{}' has no tenant schema here (no tables models and users in {schema}); run `monkctl doctor`",
                t.name
            ),
            exit: crate::core::error::exit::NOT_FOUND,
        });
    }
    // The history, and the version it gives.
    let history: Vec<(i64, String, String, String)> = if tables.contains_key(HISTORY_TABLE) {
        tx.query(
            &format!(
                "SELECT version::int8, coalesce(name, '')::text, coalesce(applied_on, '')::text, \
                 coalesce(checksum, '')::text FROM {}.{HISTORY_TABLE} ORDER BY version",
                ident(schema)
            ),
            &[],
        )
        .map_err(err)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
    } else {
        Vec::new()
    };
    let version = history
        .last()
        .map(|h| h.0)
        .unwrap_or(schema::BASELINE_VERSION);
    if version > set.latest() {
        return Err(Error::Diverged(format!(
            "tenant '{}' is at schema version {version}, newer than the deployment's migrations ({}, latest {}): extract it with the migration set it was migrated with (--migrations)",
            t.name,
            set.origin(),
            set.latest()
        )));
    }

    let (mut tmp, _held) = fsutil::TempFile::held(final_path)?;
    let tmp_path = tmp.path().to_path_buf();
    let shown = final_path.display().to_string();
    let built = (|| -> Result<_> {
        let mut conn = db::open_scratch(&tmp_path)?;
        crate::core::system::register_functions(&conn).at(&tmp_path)?;
        // The deployment's SQLite schema at the tenant's version, without its seed rows.
        // Rows go in table by table, whatever references what (the snapshot is consistent).
        conn.execute_batch("PRAGMA foreign_keys=OFF; BEGIN").at(&tmp_path)?;
        set.execute_schema_to(&mut conn, &tmp_path, version, guard::STATEMENT_TIMEOUT)?;
        let built = sqlite_tables(&conn, &tmp_path)?;
        for name in built.keys() {
            conn.execute_batch(&format!("DELETE FROM {}", db::quote_ident(name)))
                .at(&tmp_path)?;
        }
        if history.is_empty() {
            conn.execute_batch(&format!("DROP TABLE {HISTORY_TABLE}"))
                .at(&tmp_path)?;
        }
        conn.execute_batch(EXACT_DDL).at(&tmp_path)?;
        // A table per user model, as the API's SQLite backend makes it.
        for (table, cols) in tables.iter().filter(|(n, _)| !built.contains_key(*n)) {
            let rows = pg_field_rows(tx, target, schema, table)?;
            if rows.is_empty() && !model_exists(tx, target, schema, table)? {
                return Err(unconvertible(
                    table,
                    "",
                    "",
                    format!(
                        "the table is neither the API's nor a model's (no `models` row) nor made by a migration of the set at version {version}; drop it or add the migration that makes it"
                    ),
                ));
            }
            let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let fields = model_fields(table, &names, &rows, None)?;
            let ddl = crossing::sqlite_model_ddl(table, &fields)
                .map_err(|(c, d)| unconvertible(table, "", &c, d))?;
            conn.execute_batch(&ddl).at(&tmp_path)?;
        }
        let archive_tables = sqlite_tables(&conn, &tmp_path)?;
        for (table, cols) in &tables {
            let acols = &archive_tables[table];
            copy_table_out(tx, target, schema, table, cols, acols, &conn, &tmp_path)?;
        }
        // The history as the SQLite side records it: each version's SQLite checksum when the
        // set has that migration under that name (else as it was, which `verify` reports).
        if !history.is_empty() {
            conn.execute_batch(&format!("DELETE FROM {HISTORY_TABLE}"))
                .at(&tmp_path)?;
            let mut st = conn
                .prepare(&format!(
                    "INSERT INTO {HISTORY_TABLE} (version, name, applied_on, checksum) VALUES (?1, ?2, ?3, ?4)"
                ))
                .at(&tmp_path)?;
            for (v, name, applied, sum) in &history {
                let sum = match set.get(*v) {
                    Some(m) if &m.name == name && sum == &m.pg_checksum.to_string() => {
                        m.checksum.to_string()
                    }
                    _ => sum.clone(),
                };
                st.execute(rusqlite::params![v, name, applied, sum])
                    .at(&tmp_path)?;
            }
        }
        sequences_out(tx, target, schema, &tables, &conn, &tmp_path)?;
        conn.execute_batch("COMMIT").at(&tmp_path)?;
        db::leave_wal(&conn, &tmp_path)?;
        let content = content_of(&conn, &tmp_path)?;
        let schema_version = schema::tenant_version(&conn).at(&tmp_path)?;
        let columns: BTreeMap<String, BTreeMap<String, String>> = tables
            .iter()
            .map(|(t, cols)| {
                (
                    t.clone(),
                    cols.iter().map(|c| (c.name.clone(), c.ty.clone())).collect(),
                )
            })
            .collect();
        let meta = Metadata {
            source_backend: Some("postgresql".into()),
            postgres_columns: Some(columns),
            ..Metadata::made_now(t, fixtures, schema_version, &content)
        };
        write_metadata(&mut conn, &meta, &tmp_path)?;
        conn.close().map_err(|(_, e)| e).at(&tmp_path)?;
        fsutil::sync_file(&tmp_path)?;
        Ok((content, schema_version))
    })()
    .map_err(|e| e.renamed(&tmp_path, &shown));
    let (content, schema_version) = built?;
    place(&tmp_path, final_path, force)?;
    tmp.disarm();
    Ok(Extracted::placed(t, final_path, schema_version, content))
}

pub(super) fn pg_field_rows(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    model: &str,
) -> Result<FieldRows> {
    Ok(tx
        .query(
            &format!(
                "SELECT field_name::text, type::text, coalesce(required, false) FROM {}.fields \
                 WHERE model_name = $1",
                ident(schema)
            ),
            &[&model],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

pub(super) fn model_exists(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    model: &str,
) -> Result<bool> {
    Ok(tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {}.models WHERE model_name = $1)",
                ident(schema)
            ),
            &[&model],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .get(0))
}

/// Copies one table of the snapshot into the archive, row by row (the rows stream from the
/// server; memory stays flat whatever the table's size).
#[allow(clippy::too_many_arguments)]
pub(super) fn copy_table_out(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    table: &str,
    cols: &[PgColumn],
    archive_cols: &[String],
    conn: &Connection,
    path: &Path,
) -> Result<()> {
    if let Some(c) = cols.iter().find(|c| !archive_cols.contains(&c.name)) {
        return Err(unconvertible(
            table,
            "",
            &c.name,
            format!(
                "the SQLite form of the table (the API's, or the SQLite half of the migration set) has no such column ({}); give the migration that adds it a SQLite half",
                c.ty
            ),
        ));
    }
    let select: Vec<String> = cols
        .iter()
        .map(|c| c.kind.select_expr(&ident(&c.name)))
        .collect();
    // `tracked` keeps its change order (its SQLite rowid); other tables in the server's order.
    let order = if table == "tracked" && cols.iter().any(|c| c.name == "change_id") {
        " ORDER BY change_id"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} FROM {}.{}{order}",
        select.join(", "),
        ident(schema),
        ident(table)
    );
    let names: Vec<String> = cols.iter().map(|c| db::quote_ident(&c.name)).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let mut insert = conn
        .prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            db::quote_ident(table),
            names.join(", "),
            marks.join(", ")
        ))
        .at(path)?;
    let mut exact = conn
        .prepare(&format!(
            "INSERT INTO {EXACT_TABLE} (tbl, rid, col, value) VALUES (?1, ?2, ?3, ?4)"
        ))
        .at(path)?;
    let err = |e| target.error(Some(schema), e);
    let mut rows = tx
        .query_raw(
            &sql,
            std::iter::empty::<&(dyn postgres::types::ToSql + Sync)>(),
        )
        .map_err(err)?;
    let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(cols.len());
    let mut exacts: Vec<(usize, String)> = Vec::new();
    while let Some(r) = rows.next().map_err(err)? {
        values.clear();
        exacts.clear();
        for (i, c) in cols.iter().enumerate() {
            use rusqlite::types::Value as V;
            let v = match c.kind {
                Kind::Int => r.get::<_, Option<i64>>(i).map_or(V::Null, V::Integer),
                Kind::Bool => r
                    .get::<_, Option<bool>>(i)
                    .map_or(V::Null, |b| V::Integer(b as i64)),
                Kind::Float => r.get::<_, Option<f64>>(i).map_or(V::Null, V::Real),
                Kind::Bytea => r
                    .get::<_, Option<&[u8]>>(i)
                    .map_or(V::Null, |b| V::Blob(b.to_vec())),
                Kind::Numeric => match r.get::<_, Option<&str>>(i) {
                    None => V::Null,
                    Some(s) => {
                        let (x, same) = crossing::numeric_as_real(s);
                        if !same {
                            exacts.push((i, s.to_string()));
                        }
                        x.map_or(V::Null, V::Real)
                    }
                },
                Kind::Timestamp => r
                    .get::<_, Option<&str>>(i)
                    .map_or(V::Null, |s| V::Text(crossing::api_timestamp(s))),
                Kind::Json => r
                    .get::<_, Option<&str>>(i)
                    .map_or(V::Null, |s| V::Text(crossing::compact_json(s))),
                Kind::Array | Kind::Text => r
                    .get::<_, Option<&str>>(i)
                    .map_or(V::Null, |s| V::Text(s.to_string())),
            };
            values.push(v);
        }
        insert
            .execute(rusqlite::params_from_iter(values.iter()))
            .map_err(|e| unconvertible(table, &row_label(cols, &values), "", e.to_string()))?;
        if !exacts.is_empty() {
            let rid = conn.last_insert_rowid();
            for (i, text) in &exacts {
                exact
                    .execute(rusqlite::params![table, rid, cols[*i].name, text])
                    .at(path)?;
            }
        }
    }
    Ok(())
}

/// How a row is named in a message: its `id`, else its values' start.
pub(super) fn row_label(cols: &[PgColumn], values: &[rusqlite::types::Value]) -> String {
    cols.iter()
        .position(|c| c.name == "id")
        .and_then(|i| match &values[i] {
            rusqlite::types::Value::Text(s) => Some(s.clone()),
            rusqlite::types::Value::Integer(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "(without id)".into())
}

/// Each AUTOINCREMENT table of the archive gets the value of its column's PostgreSQL sequence
/// (`sqlite_sequence`), so that ids handed out after a move continue where they stood.
pub(super) fn sequences_out(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    tables: &BTreeMap<String, Vec<PgColumn>>,
    conn: &Connection,
    path: &Path,
) -> Result<()> {
    for (table, col) in autoincrement_columns(conn, path)? {
        if !tables.contains_key(&table) {
            continue;
        }
        let seq: Option<String> = tx
            .query_one(
                "SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3)",
                &[&schema, &table, &col],
            )
            .map_err(|e| target.error(Some(schema), e))?
            .get(0);
        let Some(seq) = seq else { continue };
        let r = tx
            .query_one(&format!("SELECT last_value, is_called FROM {seq}"), &[])
            .map_err(|e| target.error(Some(schema), e))?;
        let last: i64 = r.get(0);
        let called: bool = r.get(1);
        let value = if called { last } else { last - 1 };
        conn.execute(
            "DELETE FROM sqlite_sequence WHERE name = ?1",
            rusqlite::params![table],
        )
        .at(path)?;
        if value > 0 {
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                rusqlite::params![table, value],
            )
            .at(path)?;
        }
    }
    Ok(())
}

/// The archive's AUTOINCREMENT tables and their INTEGER PRIMARY KEY column.
pub(super) fn autoincrement_columns(
    conn: &Connection,
    path: &Path,
) -> Result<Vec<(String, String)>> {
    if !db::has_table(conn, "sqlite_sequence").at(path)? {
        return Ok(Vec::new());
    }
    let mut st = conn
        .prepare(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.sql LIKE '%AUTOINCREMENT%' AND p.pk = 1 \
             AND upper(p.type) = 'INTEGER'",
        )
        .at(path)?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).at(path)?;
    rows.collect::<rusqlite::Result<_>>().at(path)
}
