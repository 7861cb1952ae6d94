//! One tenant's visit in a PostgreSQL migrate run: its history, the catalog view before and
//! after each migration, the destructive judgement, and the migration itself.

use super::*;

fn read_history(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<Vec<Applied>> {
    let err = |e| target.error(Some(schema), e);
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I.refinery_schema_history', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .map_err(err)?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            &format!(
                "SELECT version::int8, coalesce(name, '')::text, coalesce(checksum, '')::text \
                 FROM {}.refinery_schema_history ORDER BY version",
                ident(schema)
            ),
            &[],
        )
        .map_err(err)?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            version: r.get(0),
            name: r.get(1),
            checksum: r.get(2),
        })
        .collect())
}

/// The version an API-made schema without history matches: the baseline when it has the
/// API's system tables.
fn baseline_of(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<i64> {
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname IN ('models', 'fields', 'users')",
            &[&schema],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .get(0);
    if n < 3 {
        return Err(Error::Postgres {
            target: target.at(Some(schema)),
            detail: "it has neither a migration history nor the Monk system tables (models, fields, users), so it is not a Monk tenant schema".into(),
            exit: exit::CORRUPT,
        });
    }
    Ok(schema::BASELINE_VERSION)
}

/// Tables and their columns of a schema, and the rows the transaction deleted or updated in
/// each table so far.
#[derive(Default)]
struct View {
    columns: BTreeSet<(String, String)>,
    changed: HashMap<String, (i64, i64)>,
}

fn view(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<View> {
    let err = |e| target.error(Some(schema), e);
    let mut v = View::default();
    for r in tx
        .query(
            "SELECT c.relname::text, coalesce(a.attname::text, '') FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')",
            &[&schema],
        )
        .map_err(err)?
    {
        v.columns.insert((r.get(0), r.get(1)));
    }
    for r in tx
        .query(
            "SELECT relname::text, n_tup_del::int8, n_tup_upd::int8 FROM pg_stat_xact_user_tables \
             WHERE schemaname = $1",
            &[&schema],
        )
        .map_err(err)?
    {
        v.changed.insert(r.get(0), (r.get(1), r.get(2)));
    }
    Ok(v)
}

/// What a migration destroyed, from the views before and after it.
fn destroyed(before: &View, after: &View, version: i64, file: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let tables_after: BTreeSet<&String> = after.columns.iter().map(|(t, _)| t).collect();
    let mut dropped_tables: BTreeSet<&String> = BTreeSet::new();
    for (t, c) in &before.columns {
        if !tables_after.contains(t) {
            if dropped_tables.insert(t) {
                out.push(finding(version, file, "drop_table", t.clone()));
            }
        } else if !c.is_empty() && !after.columns.contains(&(t.clone(), c.clone())) {
            out.push(finding(version, file, "drop_column", format!("{t}.{c}")));
        }
    }
    for (t, (del, upd)) in &after.changed {
        let (del0, upd0) = before.changed.get(t).copied().unwrap_or((0, 0));
        let existed = before.columns.iter().any(|(bt, _)| bt == t);
        if existed && del > &del0 {
            out.push(finding(version, file, "delete_rows", t.clone()));
        }
        if existed && upd > &upd0 {
            out.push(finding(version, file, "update_rows", t.clone()));
        }
    }
    out
}

fn finding(version: i64, file: &str, action: &str, object: String) -> Finding {
    Finding {
        version,
        file: file.to_string(),
        statement: String::new(),
        action: action.to_string(),
        object,
    }
}

/// Visits one tenant on `client`: reads where it stands and, for `Plan` and `Up`, runs what is
/// pending in one transaction.
pub(super) fn visit(cx: &Ctx<'_>, client: &mut Client, t: &TenantRow) -> Result<Visit> {
    let schema = t.schema.as_str();
    names::path_component("tenants.schema", schema)?;
    let target = cx.target;
    let err = |e| target.error(Some(schema), e);
    let mut tx = client.transaction().map_err(err)?;
    if cx.mode == Mode::Up {
        // One run at a time per schema; waits at most the session's lock_timeout.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('monkctl.migrate.' || $1::text))",
            &[&schema],
        )
        .map_err(err)?;
    }
    let hist = read_history(&mut tx, target, schema)?;
    let baseline = if hist.is_empty() {
        baseline_of(&mut tx, target, schema)?
    } else {
        0
    };
    let ins = judge_history(&hist, baseline, cx.set, cx.version, |m| m.pg_checksum);
    let mut up = TenantUp {
        from: ins.version,
        to: ins.version,
        applied: Vec::new(),
        adopted: false,
        snapshot: None,
    };
    if cx.mode == Mode::Status {
        tx.rollback().map_err(err)?;
        return Ok(Visit {
            ins,
            up,
            destructive: Vec::new(),
            would_fail: None,
        });
    }
    if !ins.diverged.is_empty() || !ins.missing.is_empty() {
        let mut all = ins.diverged.clone();
        all.extend(ins.missing.clone());
        return Err(Error::Diverged(format!(
            "tenant '{}': {}; nothing was changed",
            t.name,
            all.join("; ")
        )));
    }
    if ins.pending.is_empty() && !(ins.adopt && cx.mode == Mode::Up) {
        tx.rollback().map_err(err)?;
        return Ok(Visit {
            ins,
            up,
            destructive: Vec::new(),
            would_fail: None,
        });
    }
    let others: Vec<String> = cx
        .schemas
        .iter()
        .filter(|s| s.as_str() != schema)
        .cloned()
        .collect();
    let limit_ms = cx.opts.statement_timeout.as_millis().max(1);
    tx.batch_execute(&format!(
        "SET LOCAL search_path TO {}; SET LOCAL statement_timeout = {limit_ms}",
        ident(schema)
    ))
    .map_err(err)?;
    let mut findings = Vec::new();
    let mut would_fail = None;
    // The run after a snapshot records the tenant in the run's manifest, with its fingerprint
    // before and after, for `undo`.
    let snapshotted = NO_SNAPSHOT.with(|f| f.get());
    let pre_hash = if snapshotted && cx.mode == Mode::Up {
        Some(content_hash(&mut tx, target, schema)?)
    } else {
        None
    };
    let mut before = view(&mut tx, target, schema)?;
    for v in &ins.pending {
        let Some(m) = cx.set.get(*v) else { continue };
        let checked = guard_postgres::check(&m.pg_sql, Path::new(&m.file), schema, &others)?;
        for (i, st) in checked.iter().enumerate() {
            if let Err(e) = tx.batch_execute(&st.sql) {
                let why = match e.code() {
                    Some(c) if *c == postgres::error::SqlState::QUERY_CANCELED => {
                        return Err(Error::StatementTimeout {
                            path: m.file.clone().into(),
                            line: st.line,
                            number: i + 1,
                            limit: cx.opts.statement_timeout,
                            statement: st.sql.clone(),
                        })
                    }
                    _ => e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string()),
                };
                let message = format!(
                    "{}:{} (V{}): statement {} `{}` fails: {why}; nothing was applied, the tenant stays at V{}",
                    m.file,
                    st.line,
                    m.version,
                    i + 1,
                    crate::core::migrate::destructive::shorten(&st.sql),
                    ins.version
                );
                if cx.mode == Mode::Plan {
                    would_fail = Some(message);
                    break;
                }
                return Err(Error::Postgres {
                    target: target.at(Some(schema)),
                    detail: message,
                    exit: exit::FAILURE,
                });
            }
        }
        if would_fail.is_some() {
            break;
        }
        let after = view(&mut tx, target, schema)?;
        findings.extend(destroyed(&before, &after, m.version, &m.file));
        before = after;
        up.applied.push(m.version);
    }
    if cx.mode == Mode::Plan {
        tx.rollback().map_err(err)?;
        return Ok(Visit {
            ins,
            up,
            destructive: findings,
            would_fail,
        });
    }
    if !findings.is_empty() && !cx.opts.allow_destructive {
        return Err(Error::Destructive(format!(
            "tenant '{}' would run destructive statements: {}; nothing was changed; rerun with --allow-destructive (each tenant's schema is written to a snapshot first)",
            t.name,
            crate::core::migrate::destructive::summary(&findings)
        )));
    }
    if !findings.is_empty() && !NO_SNAPSHOT.with(|f| f.get()) {
        // Snapshot the schema as it is before the migration (this transaction changed nothing
        // yet that another session sees), then run the migration again.
        tx.rollback().map_err(err)?;
        let file = cx
            .run_dir
            .join(format!("{}.{}.pgdump", t.database, t.schema));
        crate::core::backend::postgres::dump_schema(target, schema, &file)?;
        let mut again = visit_once_allowed(cx, client, t)?;
        again.up.snapshot = Some(file);
        return Ok(again);
    }
    tx.batch_execute(HISTORY_DDL).map_err(err)?;
    let mut record = |m: &crate::core::migrate::Mig| -> Result<()> {
        super::later::record_history(&mut tx, m).map_err(err)
    };
    if ins.adopt {
        for m in cx.set.migs.iter().filter(|m| m.version <= ins.version) {
            record(m)?;
        }
        up.adopted = true;
    }
    for v in &up.applied {
        if let Some(m) = cx.set.get(*v) {
            record(m)?;
        }
    }
    up.to = up.applied.last().copied().unwrap_or(up.from);
    if let (Some(pre), Some(run)) = (pre_hash, cx.run) {
        run.append(&crate::core::migrate::ManifestLine {
            tenant: t.name.clone(),
            database: t.database.clone(),
            schema: t.schema.clone(),
            snapshot: format!("{}.{}.pgdump", t.database, t.schema),
            from: up.from,
            to: up.to,
            post_hash: content_hash(&mut tx, target, schema)?,
            pre_hash: Some(pre),
            at: ids::now_iso(),
        })?;
    }
    crate::core::pause_point("migrate.pg.before_commit");
    tx.commit().map_err(err)?;
    Ok(Visit {
        ins,
        up,
        destructive: findings,
        would_fail: None,
    })
}

/// `visit` again for a destructive run once its snapshot is taken: the findings are allowed
/// now, and no second snapshot is taken.
fn visit_once_allowed(cx: &Ctx<'_>, client: &mut Client, t: &TenantRow) -> Result<Visit> {
    let opts = RunOptions {
        allow_destructive: true,
        ..cx.opts.clone()
    };
    let again = Ctx {
        run: cx.run,
        ws: cx.ws,
        target: cx.target,
        set: cx.set,
        version: cx.version,
        opts: &opts,
        schemas: cx.schemas.clone(),
        mode: cx.mode,
        run_dir: cx.run_dir.clone(),
    };
    NO_SNAPSHOT.with(|f| f.set(true));
    let r = visit(&again, client, t);
    NO_SNAPSHOT.with(|f| f.set(false));
    r
}

thread_local! {
    /// Set while a tenant is migrated again after its snapshot.
    static NO_SNAPSHOT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
