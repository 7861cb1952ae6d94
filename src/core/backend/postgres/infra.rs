//! The registry's own migrations (`migrations/infra-postgres/`, refinery).

use super::*;

/// The infra migration version the registry is at: the highest in its
/// `public.refinery_schema_history`, 0 without that table (none of monkctl's yet, as on a
/// registry the API made).
pub(super) fn applied_version(target: &Target, client: &mut Client) -> Result<i64> {
    let err = |e| target.error(None, e);
    let has_history: bool = client
        .query_one(
            "SELECT to_regclass('public.refinery_schema_history') IS NOT NULL",
            &[],
        )
        .map_err(err)?
        .get(0);
    if !has_history {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0)::int8 FROM public.refinery_schema_history",
            &[],
        )
        .map_err(err)?;
    Ok(row.get(0))
}

/// Runs monkctl's infra migrations for PostgreSQL (`migrations/infra-postgres`), under an
/// advisory lock so that concurrent processes do not race. A registry already up to date costs
/// one query.
pub(super) fn migrate_infra(target: &Target, client: &mut Client) -> Result<()> {
    let latest = latest_version();
    if applied_version(target, client)? >= latest {
        return Ok(());
    }
    // One key for "monkctl's infra migrations" in this database.
    const LOCK_KEY: i64 = 0x6d6f_6e6b_6374_6c01;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .map_err(|e| target.error(None, e))?;
    let result = (|| {
        if applied_version(target, client)? >= latest {
            return Ok(());
        }
        embedded::migrations::runner()
            .set_grouped(true)
            .set_abort_divergent(true)
            .set_abort_missing(false)
            .run(client)
            .map(|_| ())
            .map_err(|e| Error::Postgres {
                target: target.at(None),
                detail: format!("infra migration failed: {e}; the registry was left as it was"),
                exit: exit::FAILURE,
            })
    })();
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    result
}

/// The newest infra migration of the PostgreSQL registry built into this binary.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}
