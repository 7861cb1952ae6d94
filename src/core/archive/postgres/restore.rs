//! `restore` of any archive into a PostgreSQL deployment, in one transaction.

use super::*;

/// `restore` into a PostgreSQL deployment (see the module's header).
pub(in crate::core::archive) fn restore(
    ws: &Workspace,
    target: &Arc<Target>,
    archive: &Path,
    opts: &RestoreOptions,
    start: super::super::restore::Start,
) -> Result<Restored> {
    let super::super::restore::Start {
        meta,
        standing,
        archived_name,
        name,
        renamed,
    } = start;
    let set = ws.migration_set()?;
    let mut store = crate::core::Store::Postgres(Registry::open_for_write(target)?);
    let current = super::super::check_target(
        &mut store,
        &name,
        &archived_name,
        renamed,
        opts.force,
        &meta,
        ws,
    )?;
    let crate::core::Store::Postgres(mut reg) = store else {
        unreachable!("opened as PostgreSQL above")
    };
    if let Some(cur) = current.clone().filter(|c| c.db_type != "postgresql") {
        // A SQLite tenant of this registry: replaced in its file, as on a SQLite deployment
        // (saved to the trash first, one transaction of the file), its row updated here.
        if cur.db_type != "sqlite" {
            return Err(Error::Unsupported(format!(
                "tenant '{name}' has db_type '{}', neither 'postgresql' nor 'sqlite'; fix its row",
                cur.db_type
            )));
        }
        let layout = ws.sqlite_layout().map_err(|e| match e {
            Error::Unsupported(m) => Error::Unsupported(format!("tenant '{name}': {m}")),
            other => other,
        })?;
        super::super::refuse_rollback(layout, &cur, &standing, opts.migrate)?;
        let mut store = crate::core::Store::Postgres(reg);
        return super::super::replace_existing(layout, &mut store, archive, &meta, cur, &standing);
    }
    let schema_name = Layout::schema_for(&name);
    let others: Vec<String> = crate::core::backend::postgres::schemas(&mut reg.client, target)?
        .into_iter()
        .filter(|s| *s != schema_name)
        .collect();
    let trash = ws.layout.trash_dir();
    let saved_path = current
        .as_ref()
        .map(|cur| super::super::before_restore_path(&trash, &cur.schema, &cur.id));
    // The replaced tenant's fixtures, for its saved copy: read now, in a statement of its own,
    // so that the restoring transaction touches the registry only at its end.
    let current_fixtures = match &current {
        Some(cur) => reg.fixtures_of(&cur.id)?,
        None => Vec::new(),
    };
    let database = target.url.database.clone();
    let mut tx = reg
        .client
        .transaction()
        .map_err(|e| target.error(None, e))?;
    let err = |e| target.error(Some(&schema_name), e);
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
        .map_err(err)?;
    // The header is checked first (a file cut short is named as such); the content is checked
    // against the recorded checksum and row counts as it is loaded (`load`), so the archive is
    // read once, and the transaction commits only if it matches. (SQLite's integrity check of
    // the archive's indexes is left out here: the load reads none of them.)
    super::super::check_header(archive)?;
    let outcome = {
        let built = (|| -> Result<TenantRow> {
            // What is replaced is saved first, as it is under the lock that keeps writers out.
            if let (Some(cur), Some(saved)) = (&current, &saved_path) {
                let live_version = live_version(&mut tx, target, &cur.schema)?;
                if standing.version < live_version && !opts.migrate {
                    return Err(Error::Conflict(format!(
                        "the archive holds tenant '{}' at schema version {}, older than the tenant here (version {live_version}): restoring it would roll the tenant's schema back; pass --migrate to bring the restored content up to the deployment's migrations, or --as NEW_NAME to restore it beside",
                        cur.name, standing.version
                    )));
                }
                lock_schema(&mut tx, target, &cur.schema)?;
                fsutil::create_private_dir(&trash)?;
                write_archive(&mut tx, target, set, cur, &current_fixtures, saved, false)?;
                tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(&cur.schema)))
                    .map_err(|e| target.error(Some(&cur.schema), e))?;
            }
            load(
                &mut tx,
                target,
                set,
                archive,
                &meta,
                &schema_name,
                &others,
                standing.version,
            )?;
            tx.batch_execute("SET LOCAL search_path TO public")
                .map_err(err)?;
            let row = match &current {
                None => {
                    let now = ids::now_iso();
                    let row = TenantRow {
                        id: if renamed {
                            ids::uuid_v4()
                        } else {
                            meta.tenant.id.clone()
                        },
                        name: name.clone(),
                        db_type: "postgresql".into(),
                        database: database.clone(),
                        schema: schema_name.clone(),
                        status: if meta.tenant.status == "suspended" {
                            "suspended".into()
                        } else {
                            "active".into()
                        },
                        template_version: meta.tenant.template_version,
                        description: meta.tenant.description.clone(),
                        source_template: meta.tenant.source_template.clone(),
                        owner_id: meta.tenant.owner_id.clone(),
                        is_active: true,
                        created_at: if renamed {
                            now.clone()
                        } else {
                            meta.tenant.created_at.clone()
                        },
                        updated_at: now,
                        trashed_at: None,
                        deleted_at: None,
                    };
                    insert_row(&mut tx, target, &row)?;
                    row
                }
                Some(cur) => {
                    let mut row = cur.clone();
                    row.owner_id = meta.tenant.owner_id.clone();
                    row.template_version = meta.tenant.template_version;
                    row.source_template = meta.tenant.source_template.clone();
                    row.updated_at = ids::now_iso();
                    tx.execute(
                        "UPDATE public.tenants SET owner_id = $2::text::uuid, template_version = $3::int8::int4, \
                         source_template = $4, updated_at = $5::text::timestamp WHERE id = $1::text::uuid",
                        &[&row.id, &row.owner_id, &row.template_version, &row.source_template, &row.updated_at],
                    )
                    .map_err(|e| target.error(None, e))?;
                    tx.execute(
                        "DELETE FROM public.tenant_fixtures WHERE tenant_id = $1::text::uuid",
                        &[&row.id],
                    )
                    .map_err(|e| target.error(None, e))?;
                    row
                }
            };
            let fixture_rows: Vec<(&str, &str, &str, String)> = meta
                .fixtures
                .iter()
                .map(|f| {
                    (
                        row.id.as_str(),
                        f.fixture_name.as_str(),
                        f.deployed_at.as_str(),
                        f.version.clone().unwrap_or_default(),
                    )
                })
                .collect();
            insert_fixture_rows(&mut tx, target, &fixture_rows)?;
            Ok(row)
        })();
        built
    };
    let row = match outcome {
        Ok(v) => v,
        Err(e) => {
            drop(tx);
            if let Some(saved) = &saved_path {
                let _ = std::fs::remove_file(saved);
            }
            return Err(e);
        }
    };
    crate::core::pause_point("restore.pg.loaded");
    tx.commit().map_err(|e| {
        if let Some(saved) = &saved_path {
            let _ = std::fs::remove_file(saved);
        }
        target.error(None, e)
    })?;
    let tenant = reg.find(&row.name)?.unwrap_or(row);
    Ok(Restored {
        archive: archive.to_path_buf(),
        mode: if current.is_some() {
            RestoreMode::Replaced
        } else {
            RestoreMode::Created
        },
        tenant,
        path: None,
        previous_saved_to: saved_path,
        pages: None,
        schema_version: standing.version,
        needs_migration: standing.needs_migration,
        fixtures: meta.deployed_fixtures(),
    })
}

/// The schema version of a live tenant schema: its history's highest, else the baseline.
pub(super) fn live_version(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<i64> {
    let err = |e| target.error(Some(schema), e);
    let has: bool = tx
        .query_one(
            &format!("SELECT to_regclass(format('%I.{HISTORY_TABLE}', $1::text)) IS NOT NULL"),
            &[&schema],
        )
        .map_err(err)?
        .get(0);
    if !has {
        return Ok(schema::BASELINE_VERSION);
    }
    let v: Option<i64> = tx
        .query_one(
            &format!(
                "SELECT max(version)::int8 FROM {}.{HISTORY_TABLE}",
                ident(schema)
            ),
            &[],
        )
        .map_err(err)?
        .get(0);
    Ok(v.unwrap_or(schema::BASELINE_VERSION))
}

/// Locks every table of `schema` against writers (readers go on) until the transaction ends.
pub(super) fn lock_schema(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<()> {
    let tables: Vec<String> = catalog(tx, target, schema)?.into_keys().collect();
    if tables.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{}.{}", ident(schema), ident(t)))
        .collect();
    tx.batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", list.join(", ")))
        .map_err(|e| target.error(Some(schema), e))
}

/// Builds schema `schema` and loads the archive's content into it, inside `tx`.
#[allow(clippy::too_many_arguments)]
pub(super) fn load(
    tx: &mut Transaction<'_>,
    target: &Target,
    set: &MigrationSet,
    archive: &Path,
    meta: &Metadata,
    schema_name: &str,
    others: &[String],
    version: i64,
) -> Result<()> {
    let err = |e| target.error(Some(schema_name), e);
    let created = tx.batch_execute(&format!(
        "CREATE SCHEMA {s}; SET LOCAL search_path TO {s};\n{}",
        crate::core::backend::postgres::SYSTEM_SQL,
        s = ident(schema_name)
    ));
    if let Err(e) = created {
        // There already, or made meanwhile by a concurrent create or restore.
        if crate::core::backend::postgres::schema_exists_error(&e) {
            return Err(Error::Conflict(format!(
                "schema {schema_name} exists already at {}: a tenant created or restored meanwhile, or a schema left without a registry row (`monkctl doctor` shows it); nothing was restored",
                target.at(None)
            )));
        }
        return Err(err(e));
    }
    crate::core::migrate::postgres::execute_later_to(
        tx,
        target,
        schema_name,
        set,
        others,
        guard::STATEMENT_TIMEOUT,
        version,
    )?;
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(err)?;
    let src = db::open_immutable(archive)?;
    let atables = sqlite_tables(&src, archive)?;
    // A history the build did not make (a set of the baseline alone makes none on PostgreSQL,
    // while a SQLite tenant always has one): the same table, for the archive's rows.
    if atables.contains_key(HISTORY_TABLE) {
        tx.batch_execute(crate::core::migrate::HISTORY_DDL)
            .map_err(err)?;
    }
    let built = catalog(tx, target, schema_name)?;
    // A table per user model, as the API's PostgreSQL backend makes it.
    for (table, cols) in atables.iter().filter(|(n, _)| !built.contains_key(*n)) {
        let rows = sqlite_field_rows(&src, archive, table)?;
        let has_model: bool = src
            .query_row(
                "SELECT count(*) FROM models WHERE model_name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .at(archive)?
            > 0;
        if !has_model {
            return Err(unconvertible(
                table,
                "",
                "",
                format!(
                    "the archive's table is neither the API's nor a model's (no `models` row) nor made by a migration of this deployment's set at version {version}"
                ),
            ));
        }
        let recorded = meta.postgres_columns.as_ref().and_then(|c| c.get(table));
        let fields = model_fields(table, cols, &rows, recorded)?;
        let ddl = postgres_ddl(table, &fields)?;
        tx.batch_execute(&ddl).map_err(err)?;
    }
    let tables = catalog(tx, target, schema_name)?;
    // Empty what the build seeded (the archive is the whole content), in one statement.
    let list: Vec<String> = tables.keys().map(|t| ident(t)).collect();
    if !list.is_empty() {
        tx.batch_execute(&format!("TRUNCATE {}", list.join(", ")))
            .map_err(err)?;
    }
    if !atables.contains_key(HISTORY_TABLE) && tables.contains_key(HISTORY_TABLE) {
        tx.batch_execute(&format!("DROP TABLE {HISTORY_TABLE}"))
            .map_err(err)?;
    }
    // As pg_restore does: the rows go in without the tables' keys, indexes and foreign keys,
    // which are built once afterwards (faster than row by row, and in any table order).
    let rebuild = set_keys_aside(tx, target, schema_name)?;
    // Every table in the checksum's order, each row hashed as it is loaded: the archive is read
    // once, and the transaction commits only if the content is exactly the one its metadata
    // records.
    let tag = crate::core::fingerprint::algorithm(&meta.checksum).unwrap_or(CHECKSUM_ALGORITHM);
    let mut hasher = ContentHasher::begin(&src, archive, tag)?;
    for (table, without_rowid) in ContentHasher::tables(&src, archive)? {
        let load_into = if table == EXACT_TABLE {
            None
        } else {
            match tables.get(&table) {
                Some(cols) => Some(cols),
                None => {
                    return Err(unconvertible(
                        &table,
                        "",
                        "",
                        format!("the deployment's schema at version {version} has no such table"),
                    ))
                }
            }
        };
        copy_table_in(
            tx,
            target,
            schema_name,
            (&src, archive),
            &table,
            without_rowid,
            &atables.get(&table).cloned().unwrap_or_default(),
            load_into.map(|c| c.as_slice()),
            &mut hasher,
        )?;
    }
    let content = hasher.finish();
    if content.row_counts != meta.row_counts || content.checksum != meta.checksum {
        return Err(Error::ChecksumMismatch {
            path: archive.to_path_buf(),
            detail: format!(
                "recorded {}, read {} while restoring; nothing was restored",
                meta.checksum, content.checksum
            ),
        });
    }
    crate::core::pause_point("restore.pg.keys");
    for sql in rebuild {
        tx.batch_execute(&sql).map_err(|e| {
            let detail = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            match e.code() {
                Some(c) if c.code().starts_with("23") => unconvertible(
                    sql.split_whitespace().nth(2).unwrap_or(""),
                    "",
                    "",
                    format!("the restored rows break a key of the schema: {detail} ({sql})"),
                ),
                _ => err(e),
            }
        })?;
    }
    // The history as the PostgreSQL side records it: the set's PostgreSQL checksums (the
    // archive's history was judged against the set before anything was built).
    if atables.contains_key(HISTORY_TABLE) {
        for m in set.migs.iter().take_while(|m| m.version <= version) {
            tx.execute(
                &format!("UPDATE {HISTORY_TABLE} SET checksum = $2 WHERE version = $1::int8::int4"),
                &[&m.version, &m.pg_checksum.to_string()],
            )
            .map_err(err)?;
        }
    }
    sequences_in(tx, target, schema_name, &tables, &src, archive)?;
    Ok(())
}

pub(super) fn postgres_ddl(table: &str, fields: &[Field]) -> Result<String> {
    crossing::postgres_model_ddl(table, fields).map_err(|(c, d)| unconvertible(table, "", &c, d))
}

pub(super) fn sqlite_field_rows(conn: &Connection, path: &Path, model: &str) -> Result<FieldRows> {
    let mut st = conn
        .prepare("SELECT field_name, type, coalesce(required, 0) FROM fields WHERE model_name = ?1")
        .at(path)?;
    let rows = st
        .query_map([model], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, String>(1)?, r.get::<_, i64>(2)? != 0),
            ))
        })
        .at(path)?;
    rows.collect::<rusqlite::Result<_>>().at(path)
}

/// Takes the keys, unique constraints, indexes and foreign keys off every table of `schema`
/// (inside the transaction) and returns the statements that put them back, in an order that
/// works: keys and unique constraints, indexes, then foreign keys.
fn set_keys_aside(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<Vec<String>> {
    let err = |e| target.error(Some(schema), e);
    let constraints: Vec<(String, String, String, String)> = tx
        .query(
            "SELECT c.relname::text, k.conname::text, k.contype::text, pg_get_constraintdef(k.oid) \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND k.contype IN ('p', 'u', 'f', 'x') ORDER BY k.contype = 'f', c.relname, k.conname",
            &[&schema],
        )
        .map_err(err)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let indexes: Vec<(String, String)> = tx
        .query(
            "SELECT i.relname::text, pg_get_indexdef(x.indexrelid) FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace \
             WHERE n.nspname = $1 AND NOT EXISTS \
               (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')) \
             ORDER BY i.relname",
            &[&schema],
        )
        .map_err(err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut drop = Vec::new();
    // Foreign keys first (they depend on the keys they reference).
    for (table, name, _, _) in constraints.iter().filter(|c| c.2 == "f") {
        drop.push(format!(
            "ALTER TABLE {}.{} DROP CONSTRAINT {}",
            ident(schema),
            ident(table),
            ident(name)
        ));
    }
    for (table, name, _, _) in constraints.iter().filter(|c| c.2 != "f") {
        drop.push(format!(
            "ALTER TABLE {}.{} DROP CONSTRAINT {}",
            ident(schema),
            ident(table),
            ident(name)
        ));
    }
    for (name, _) in &indexes {
        drop.push(format!("DROP INDEX {}.{}", ident(schema), ident(name)));
    }
    if !drop.is_empty() {
        tx.batch_execute(&drop.join("; ")).map_err(err)?;
    }
    let mut rebuild = Vec::new();
    for (table, name, _, def) in constraints.iter().filter(|c| c.2 != "f") {
        rebuild.push(format!(
            "ALTER TABLE {}.{} ADD CONSTRAINT {} {def}",
            ident(schema),
            ident(table),
            ident(name)
        ));
    }
    for (_, def) in &indexes {
        rebuild.push(def.clone());
    }
    for (table, name, _, def) in constraints.iter().filter(|c| c.2 == "f") {
        rebuild.push(format!(
            "ALTER TABLE {}.{} ADD CONSTRAINT {} {def}",
            ident(schema),
            ident(table),
            ident(name)
        ));
    }
    Ok(rebuild)
}

/// Reads one archive table as the checksum reads it (`ContentHasher::select`), hashing every
/// row, and, with `load_into` (the table's PostgreSQL columns), loads it into the schema with
/// `COPY`, each value converted for its column's type; a value that does not fit names its
/// table, row and column.
#[allow(clippy::too_many_arguments)]
pub(super) fn copy_table_in(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    (src, archive): (&Connection, &Path),
    table: &str,
    without_rowid: bool,
    acols: &[String],
    load_into: Option<&[PgColumn]>,
    hasher: &mut ContentHasher,
) -> Result<()> {
    let mut st = src
        .prepare(&ContentHasher::select(table, without_rowid))
        .at(archive)?;
    let ncols = st.column_count();
    hasher.table(table, ncols);
    let mut rows = st.query([]).at(archive)?;
    let Some(cols) = load_into else {
        while let Some(r) = rows.next().at(archive)? {
            hasher.row(r, archive)?;
        }
        hasher.end_table(table);
        return Ok(());
    };
    let mut kinds: Vec<&PgColumn> = Vec::with_capacity(acols.len());
    for c in acols {
        match cols.iter().find(|p| &p.name == c) {
            Some(p) => kinds.push(p),
            None => {
                return Err(unconvertible(
                    table,
                    "",
                    c,
                    "the deployment's PostgreSQL schema has no such column (neither the API's DDL, a model's field nor the PostgreSQL half of a migration makes it)",
                ))
            }
        }
    }
    // The first column read is the rowid, but in a WITHOUT ROWID table.
    let off = usize::from(!without_rowid);
    let id_col = acols.iter().position(|c| c == "id");
    let mut ex = if without_rowid {
        None
    } else {
        src.prepare(&format!(
            "SELECT rid, col, value FROM {EXACT_TABLE} WHERE tbl = ?1 ORDER BY rid"
        ))
        .ok()
    };
    let mut exact_rows = match ex.as_mut() {
        Some(s) => Some(s.query([table]).at(archive)?),
        None => None,
    };
    let next_exact =
        |rows: &mut Option<rusqlite::Rows<'_>>| -> Result<Option<(i64, String, String)>> {
            match rows {
                Some(r) => match r.next().at(archive)? {
                    Some(row) => Ok(Some((
                        row.get(0).at(archive)?,
                        row.get(1).at(archive)?,
                        row.get(2).at(archive)?,
                    ))),
                    None => Ok(None),
                },
                None => Ok(None),
            }
        };
    let mut pending = next_exact(&mut exact_rows)?;
    let cols_sql: Vec<String> = acols.iter().map(|c| ident(c)).collect();
    let copy_sql = format!(
        "COPY {}.{} ({}) FROM STDIN",
        ident(schema),
        ident(table),
        cols_sql.join(", ")
    );
    let err = |e| target.error(Some(schema), e);
    let writer = tx.copy_in(&copy_sql).map_err(err)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 18, writer);
    let mut line = String::with_capacity(4096);
    let mut row_exact: Vec<(String, String)> = Vec::new();
    let mut n: i64 = 0;
    while let Some(r) = rows.next().at(archive)? {
        hasher.row(r, archive)?;
        n += 1;
        let rid: i64 = if without_rowid {
            n
        } else {
            r.get(0).at(archive)?
        };
        row_exact.clear();
        while let Some((erid, col, value)) = pending.take() {
            if erid < rid {
                pending = next_exact(&mut exact_rows)?;
            } else if erid == rid {
                row_exact.push((col, value));
                pending = next_exact(&mut exact_rows)?;
            } else {
                pending = Some((erid, col, value));
                break;
            }
        }
        line.clear();
        for (i, p) in kinds.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            let v = r.get_ref(i + off).at(archive)?;
            let exact = row_exact
                .iter()
                .find(|(c, _)| c == &p.name)
                .map(|(_, v)| v.as_str());
            crossing::copy_field(&p.kind, &p.ty, v, exact, &mut line).map_err(|d| {
                let row = id_col
                    .and_then(|k| r.get_ref(k + off).ok())
                    .and_then(|v| v.as_str().ok().map(str::to_string))
                    .unwrap_or_else(|| format!("#{rid}"));
                unconvertible(table, &row, &p.name, d)
            })?;
        }
        line.push('\n');
        out.write_all(line.as_bytes())
            .map_err(|e| copy_failed(target, schema, table, e))?;
    }
    hasher.end_table(table);
    let writer = out
        .into_inner()
        .map_err(|e| copy_failed(target, schema, table, e.into_error()))?;
    writer.finish().map_err(|e| {
        // The server names the line and column: the line is the row's place in the table.
        let line_no = e
            .as_db_error()
            .and_then(|d| d.where_())
            .and_then(|w| w.split(", line ").nth(1))
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<i64>().ok());
        let column = e
            .as_db_error()
            .and_then(|d| d.where_())
            .and_then(|w| w.split(", column ").nth(1))
            .map(|c| c.split(':').next().unwrap_or("").to_string())
            .unwrap_or_default();
        match (line_no, e.as_db_error()) {
            (Some(n), Some(d)) => {
                let row: Option<String> = id_col.and_then(|k| {
                    src.query_row(
                        &format!(
                            "SELECT {} FROM {} ORDER BY {} LIMIT 1 OFFSET ?1",
                            db::quote_ident(&acols[k]),
                            db::quote_ident(table),
                            if without_rowid { "1" } else { "_rowid_" }
                        ),
                        [n - 1],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .ok()
                    .flatten()
                });
                unconvertible(
                    table,
                    &row.unwrap_or_else(|| format!("#{n}")),
                    &column,
                    format!("{} (SQLSTATE {})", d.message(), d.code().code()),
                )
            }
            _ => err(e),
        }
    })?;
    Ok(())
}

pub(super) fn copy_failed(target: &Target, schema: &str, table: &str, e: std::io::Error) -> Error {
    Error::Postgres {
        target: target.at(Some(schema)),
        detail: format!("loading table {table} failed: {e}"),
        exit: crate::core::error::exit::UNREACHABLE,
    }
}

/// Sets every serial column's sequence of the restored schema: from the archive's
/// `sqlite_sequence` for an AUTOINCREMENT table, else to the column's highest value.
pub(super) fn sequences_in(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    tables: &BTreeMap<String, Vec<PgColumn>>,
    src: &Connection,
    archive: &Path,
) -> Result<()> {
    let err = |e| target.error(Some(schema), e);
    let seqs: HashMap<String, i64> = if autoincrement_columns(src, archive)?.is_empty() {
        HashMap::new()
    } else {
        let mut st = src
            .prepare("SELECT name, seq FROM sqlite_sequence")
            .at(archive)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .at(archive)?;
        rows.collect::<rusqlite::Result<_>>().at(archive)?
    };
    let autoinc: HashSet<(String, String)> =
        autoincrement_columns(src, archive)?.into_iter().collect();
    for (table, cols) in tables {
        for c in cols {
            let seq: Option<String> = tx
                .query_one(
                    "SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3)",
                    &[&schema, table, &c.name],
                )
                .map_err(err)?
                .get(0);
            let Some(seq) = seq else { continue };
            let value: i64 = if autoinc.contains(&(table.clone(), c.name.clone())) {
                seqs.get(table).copied().unwrap_or(0)
            } else {
                tx.query_one(
                    &format!(
                        "SELECT coalesce(max({})::int8, 0) FROM {}.{}",
                        ident(&c.name),
                        ident(schema),
                        ident(table)
                    ),
                    &[],
                )
                .map_err(err)?
                .get(0)
            };
            if value > 0 {
                tx.execute(
                    "SELECT setval($1::text::regclass, $2, true)",
                    &[&seq, &value],
                )
                .map_err(err)?;
            } else {
                tx.execute("SELECT setval($1::text::regclass, 1, false)", &[&seq])
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}
