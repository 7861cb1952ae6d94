//! The migration set outside a run: applied to a schema being created or restored, the schema
//! content fingerprint, and `undo` of one tenant from its snapshot.

use super::*;

/// Brings a schema being created (holding the API's baseline) to the set's latest version inside
/// the creating transaction: every later migration through the guard, bounded by `limit`, then
/// the history of all of them. A set of the baseline alone adds nothing (no history table: the
/// tenant is exactly what the API makes, and `migrate` adopts it like one of the API's).
pub(crate) fn execute_later(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    set: &MigrationSet,
    others: &[String],
    limit: std::time::Duration,
) -> Result<()> {
    execute_later_to(tx, target, schema, set, others, limit, set.latest())
}

/// `execute_later` up to `version` (a restored tenant's schema at its archived version).
pub(crate) fn execute_later_to(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    set: &MigrationSet,
    others: &[String],
    limit: std::time::Duration,
    version: i64,
) -> Result<()> {
    let later: Vec<&crate::core::migrate::Mig> = set
        .migs
        .iter()
        .filter(|m| m.version > schema::BASELINE_VERSION && m.version <= version)
        .collect();
    if later.is_empty() {
        return Ok(());
    }
    let err = |e| target.error(Some(schema), e);
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        limit.as_millis().max(1)
    ))
    .map_err(err)?;
    for m in &later {
        let checked = guard_postgres::check(&m.pg_sql, Path::new(&m.file), schema, others)?;
        for (i, st) in checked.iter().enumerate() {
            tx.batch_execute(&st.sql).map_err(|e| match e.code() {
                Some(c) if *c == postgres::error::SqlState::QUERY_CANCELED => {
                    Error::StatementTimeout {
                        path: m.file.clone().into(),
                        line: st.line,
                        number: i + 1,
                        limit,
                        statement: st.sql.clone(),
                    }
                }
                _ => Error::Postgres {
                    target: target.at(Some(schema)),
                    detail: format!(
                        "{}:{} (V{}): statement {} `{}` fails: {}",
                        m.file,
                        st.line,
                        m.version,
                        i + 1,
                        crate::core::migrate::destructive::shorten(&st.sql),
                        e.as_db_error()
                            .map(|d| d.message().to_string())
                            .unwrap_or_else(|| e.to_string())
                    ),
                    exit: exit::FAILURE,
                },
            })?;
        }
    }
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(err)?;
    tx.batch_execute(HISTORY_DDL).map_err(err)?;
    for m in set.migs.iter().take_while(|m| m.version <= version) {
        record_history(tx, m).map_err(err)?;
    }
    Ok(())
}

/// Records migration `m` as applied now in the schema's `refinery_schema_history` (the
/// `search_path` names the schema), with its PostgreSQL checksum.
pub(super) fn record_history(
    tx: &mut Transaction<'_>,
    m: &crate::core::migrate::Mig,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES ($1::int8::int4, $2, $3, $4)",
        &[
            &m.version,
            &m.name,
            &ids::now_iso(),
            &m.pg_checksum.to_string(),
        ],
    )
    .map(|_| ())
}

/// A fingerprint of a schema's content: every table's rows (in a stable order, as text), by
/// table name, hashed by the server (md5 of each table) and combined here (xxh3). The same
/// content gives the same fingerprint whatever order rows sit in on disk.
pub(crate) fn content_hash(
    client: &mut impl postgres::GenericClient,
    target: &Target,
    schema: &str,
) -> Result<String> {
    let err = |e| target.error(Some(schema), e);
    let tables: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
            &[&schema],
        )
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for t in tables {
        let digest: String = client
            .query_one(
                &format!(
                    "SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM {}.{} x",
                    ident(schema),
                    ident(&t)
                ),
                &[],
            )
            .map_err(err)?
            .get(0);
        h.update(t.as_bytes());
        h.update(b"\0");
        h.update(digest.as_bytes());
        h.update(b"\0");
    }
    Ok(format!("pg-xxh3:{:016x}", h.digest()))
}

/// `undo` of one PostgreSQL tenant: the snapshot (a `pg_dump` archive of its schema) replaces
/// the schema in one transaction, if the tenant is as the run left it; a tenant changed since
/// is left alone (exit 4), one already holding the snapshot's content is not touched again.
pub(in crate::core::migrate) fn restore_one(
    target: &Target,
    run: &Path,
    l: &crate::core::migrate::ManifestLine,
) -> Result<crate::core::migrate::Restored> {
    let snap = run.join(&l.snapshot);
    names::path_component("tenants.schema", &l.schema)?;
    let schema = l.schema.as_str();
    let script = crate::core::backend::postgres::restore_script(target, &snap)?;
    let mut client = target.connect()?;
    let err = |e| target.error(Some(schema), e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('monkctl.migrate.' || $1::text))",
        &[&schema],
    )
    .map_err(err)?;
    let now = content_hash(&mut tx, target, schema)?;
    if l.pre_hash.as_deref() == Some(now.as_str()) {
        tx.rollback().map_err(err)?;
        return Ok(crate::core::migrate::Restored {
            restored_to: l.from,
            was: l.from,
            snapshot: snap,
            already: true,
        });
    }
    if now != l.post_hash {
        return Err(Error::Conflict(format!(
            "tenant '{}' changed since the migration run (its content differs from what the run left), so it was not restored; its snapshot stays at {}",
            l.tenant,
            snap.display()
        )));
    }
    tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(schema)))
        .map_err(err)?;
    tx.batch_execute(&script).map_err(err)?;
    // The script's settings (search_path '') last for the session only; this one ends here.
    crate::core::pause_point("migrate.pg.undo.before_commit");
    tx.commit().map_err(err)?;
    Ok(crate::core::migrate::Restored {
        restored_to: l.from,
        was: l.to,
        snapshot: snap,
        already: false,
    })
}
