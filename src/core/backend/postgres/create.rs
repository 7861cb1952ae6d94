//! Creating tenant schemas in batches: each built under a savepoint, the batch's registry rows
//! inserted last, in two statements.

use super::*;

impl Registry {
    /// Creates tenants in one transaction: for each, its schema, tables and seed rows (under a
    /// savepoint, so that one failure leaves the others), then every registry row at the end, so
    /// that `tenants` is locked only for the last moments before the commit. One result per spec.
    /// A tenant whose registry row cannot be inserted has its schema dropped again before the
    /// commit: nothing of it is left.
    pub fn create_batch(
        &mut self,
        specs: &[CreateSpec],
        database: &str,
        set: &MigrationSet,
        fixtures: &[&crate::core::fixture::Loaded],
        limit: Duration,
        template: Option<(&str, i64)>,
    ) -> Result<Vec<Result<TenantRow>>> {
        let target = self.target.clone();
        let schemas = schemas(&mut self.client, &target)?;
        // Names the registry has already: refused without building anything (a statement of
        // its own, before the transaction, so `tenants` is not held while schemas are built).
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let taken: std::collections::HashSet<String> = self
            .client
            .query(
                "SELECT name::text FROM public.tenants WHERE name = ANY($1)",
                &[&names],
            )
            .map_err(|e| target.error(None, e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| target.error(None, e))?;
        let mut results: Vec<Result<TenantRow>> = Vec::with_capacity(specs.len());
        for spec in specs {
            if taken.contains(&spec.name) {
                results.push(Err(Error::TenantExists(spec.name.clone())));
                continue;
            }
            let schema = crate::core::layout::Layout::schema_for(&spec.name);
            let r = build_schema(
                &mut tx,
                &target,
                &schema,
                spec,
                (database, set, &schemas),
                fixtures,
                limit,
            )
            .map(|mut row| {
                if let Some((name, generation)) = template {
                    row.source_template = Some(name.to_string());
                    row.template_version = generation;
                }
                row
            });
            results.push(r);
        }
        crate::core::pause_point("tenant.pg.built");
        tx.batch_execute("SET LOCAL search_path TO public")
            .map_err(|e| target.error(None, e))?;
        // The rows of the batch in two statements: the tenants (a row whose name or schema
        // another creator registered meanwhile is left out, `ON CONFLICT DO NOTHING`, which
        // waits for that creator's transaction), then the fixture rows of those inserted.
        let built: Vec<&TenantRow> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let inserted = insert_rows(&mut tx, &target, &built)?;
        let mut fixture_rows: Vec<(&str, &str, &str, String)> = Vec::new();
        for row in built.iter().filter(|r| inserted.contains(&r.name)) {
            fixture_rows.push((&row.id, "system", &row.created_at, system_version()));
            for l in fixtures.iter().filter(|l| !l.fixture.is_builtin()) {
                fixture_rows.push((
                    &row.id,
                    &l.fixture.name,
                    &row.created_at,
                    l.fixture.version.clone(),
                ));
            }
        }
        insert_fixture_rows(&mut tx, &target, &fixture_rows)?;
        // Those left out: their schemas go, and they are reported as taken.
        for r in results.iter_mut() {
            let Ok(row) = r else { continue };
            if inserted.contains(&row.name) {
                continue;
            }
            tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(&row.schema)))
                .map_err(|e| target.error(Some(&row.schema), e))?;
            let name_taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM public.tenants WHERE name = $1)",
                    &[&row.name],
                )
                .map_err(|e| target.error(None, e))?
                .get(0);
            *r = Err(if name_taken {
                Error::TenantExists(row.name.clone())
            } else {
                Error::Conflict(format!(
                    "another registry row already claims schema {} of tenant '{}'",
                    row.schema, row.name
                ))
            });
        }
        crate::core::pause_point("tenant.pg.registered");
        tx.commit().map_err(|e| target.error(None, e))?;
        // A schema that was there already: a concurrent create of the same name won (its row
        // is registered now), or something left a schema without a row.
        for (spec, r) in specs.iter().zip(results.iter_mut()) {
            if matches!(r, Err(Error::Conflict(m)) if m.starts_with(SCHEMA_EXISTS)) {
                let registered: bool = self
                    .client
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM public.tenants WHERE name = $1)",
                        &[&spec.name],
                    )
                    .map_err(|e| target.error(None, e))?
                    .get(0);
                if registered {
                    *r = Err(Error::TenantExists(spec.name.clone()));
                }
            }
        }
        Ok(results)
    }
}

/// Builds one tenant's schema inside `tx` under a savepoint; the row to register on success.
pub(super) fn build_schema(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    spec: &CreateSpec,
    (database, set, schemas): (&str, &MigrationSet, &[String]),
    fixtures: &[&crate::core::fixture::Loaded],
    limit: Duration,
) -> Result<TenantRow> {
    let err = |e| target.error(Some(schema), e);
    let mut sp = tx.savepoint("tenant").map_err(err)?;
    // The schema and the API's tenant DDL and seed in one round trip.
    let created = sp.batch_execute(&format!(
        "CREATE SCHEMA {s}; SET LOCAL search_path TO {s};\n{SYSTEM_SQL}",
        s = ident(schema)
    ));
    if let Err(e) = created {
        if schema_exists_error(&e) {
            return Err(Error::Conflict(format!(
                "{SCHEMA_EXISTS} {schema} exists already at {} without tenant '{}' in the registry (an interrupted create of the API's); run `monkctl doctor` to see it",
                target.at(None),
                spec.name
            )));
        }
        return Err(err(e));
    }
    let others: Vec<String> = schemas.iter().filter(|s| *s != schema).cloned().collect();
    crate::core::migrate::postgres::execute_later(&mut sp, target, schema, set, &others, limit)?;
    let owner_id = if spec.owner == "root" {
        system::ROOT_USER_ID.to_string()
    } else {
        let id = ids::uuid_v4();
        sp.execute(
            "INSERT INTO users (id, name, auth, access) VALUES ($1::text::uuid, $2, $2, 'root')",
            &[&id, &spec.owner],
        )
        .map_err(err)?;
        id
    };
    if !fixtures.is_empty() {
        crate::core::fixture::postgres::apply_in(&mut sp, target, schema, fixtures, &others, limit)
            .map_err(|e| match e {
                Error::Postgres {
                    target,
                    detail,
                    exit,
                } => Error::Postgres {
                    target,
                    detail: format!("tenant '{}': {detail}", spec.name),
                    exit,
                },
                other => other,
            })?;
    }
    sp.commit().map_err(err)?;
    let now = ids::now_iso();
    Ok(TenantRow {
        id: ids::uuid_v4(),
        name: spec.name.clone(),
        db_type: "postgresql".into(),
        database: database.to_string(),
        schema: schema.to_string(),
        status: "active".into(),
        template_version: 1,
        description: spec.description.clone(),
        source_template: None,
        owner_id,
        is_active: true,
        created_at: now.clone(),
        updated_at: now,
        trashed_at: None,
        deleted_at: None,
    })
}

/// Whether `CREATE SCHEMA` failed because the schema exists: there already, or made meanwhile
/// by a concurrent session (then the catalog's unique index reports it).
pub(crate) fn schema_exists_error(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::DUPLICATE_SCHEMA)
        || (e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
            && e.as_db_error()
                .and_then(|d| d.constraint())
                .is_some_and(|c| c.starts_with("pg_namespace")))
}

/// How the error of a schema that exists already begins (`create_batch` tells the two causes
/// apart after its commit).
pub(super) const SCHEMA_EXISTS: &str = "schema";

/// The registry columns a new row sets, each with the cast its bound (text or integer) value
/// takes.
pub(super) const INSERTED_COLUMNS: [(&str, &str); 15] = [
    ("id", "::text::uuid"),
    ("name", ""),
    ("db_type", ""),
    ("database", ""),
    ("schema", ""),
    ("status", ""),
    ("template_version", "::int8::int4"),
    ("description", ""),
    ("source_template", ""),
    ("owner_id", "::text::uuid"),
    ("is_active", ""),
    ("created_at", "::text::timestamp"),
    ("updated_at", "::text::timestamp"),
    ("trashed_at", "::text::timestamp"),
    ("deleted_at", "::text::timestamp"),
];

/// `INSERT INTO public.tenants (...) VALUES` with `rows` tuples of placeholders.
pub(super) fn insert_tenants_sql(rows: usize) -> String {
    let columns: Vec<&str> = INSERTED_COLUMNS.iter().map(|(c, _)| *c).collect();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let values: Vec<String> = INSERTED_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, (_, cast))| format!("${}{cast}", r * INSERTED_COLUMNS.len() + i + 1))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO public.tenants ({}) VALUES {}",
        columns.join(", "),
        tuples.join(", ")
    )
}

/// The values of `t` for `INSERTED_COLUMNS`, in their order.
pub(super) fn tenant_params(t: &TenantRow) -> [&(dyn postgres::types::ToSql + Sync); 15] {
    let updated = if t.updated_at.is_empty() {
        &t.created_at
    } else {
        &t.updated_at
    };
    [
        &t.id,
        &t.name,
        &t.db_type,
        &t.database,
        &t.schema,
        &t.status,
        &t.template_version,
        &t.description,
        &t.source_template,
        &t.owner_id,
        &t.is_active,
        &t.created_at,
        updated,
        &t.trashed_at,
        &t.deleted_at,
    ]
}

pub(crate) fn insert_row(tx: &mut Transaction<'_>, target: &Target, t: &TenantRow) -> Result<()> {
    tx.execute(&insert_tenants_sql(1), &tenant_params(t))
        .map(|_| ())
        .map_err(|e| insert_error(target, t, e))
}

/// Inserts the registry rows `rows` in one statement, leaving out any that another row's name
/// or schema conflicts with; returns the names inserted.
pub(super) fn insert_rows(
    tx: &mut Transaction<'_>,
    target: &Target,
    rows: &[&TenantRow],
) -> Result<std::collections::HashSet<String>> {
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        rows.iter().flat_map(|t| tenant_params(t)).collect();
    let sql = format!(
        "{} ON CONFLICT DO NOTHING RETURNING name::text",
        insert_tenants_sql(rows.len())
    );
    Ok(tx
        .query(&sql, &params)
        .map_err(|e| target.error(None, e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Inserts `(tenant_id, fixture_name, deployed_at, version)` rows into `tenant_fixtures` in
/// one statement.
pub(crate) fn insert_fixture_rows(
    tx: &mut Transaction<'_>,
    target: &Target,
    rows: &[(&str, &str, &str, String)],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut values = Vec::with_capacity(rows.len());
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::with_capacity(rows.len() * 4);
    for (i, (id, name, at, version)) in rows.iter().enumerate() {
        let b = i * 4;
        values.push(format!(
            "(${}::text::uuid, ${}, ${}::text::timestamp, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4
        ));
        params.extend_from_slice(&[id, name, at, version]);
    }
    tx.execute(
        &format!(
            "INSERT INTO public.tenant_fixtures (tenant_id, fixture_name, deployed_at, version) VALUES {}",
            values.join(", ")
        ),
        &params,
    )
    .map(|_| ())
    .map_err(|e| target.error(None, e))
}

pub(super) fn insert_error(target: &Target, t: &TenantRow, e: postgres::Error) -> Error {
    let constraint = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("");
    match (e.code(), constraint) {
        (Some(c), "tenants_name_key") if *c == postgres::error::SqlState::UNIQUE_VIOLATION => {
            Error::TenantExists(t.name.clone())
        }
        (Some(c), _) if *c == postgres::error::SqlState::UNIQUE_VIOLATION => {
            Error::Conflict(format!(
                "another registry row already claims tenant '{}' or schema {}: {}",
                t.name,
                t.schema,
                e.as_db_error().map(|d| d.message()).unwrap_or_default()
            ))
        }
        _ => target.error(None, e),
    }
}
