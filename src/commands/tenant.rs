//! `monkctl tenant ...`: adapters over `core::tenant`.

use crate::cli::{CreateArgs, GlobalArgs, ListArgs, SortBy, Status, TenantCommand, UsageSortBy};
use crate::core::ids;
use crate::core::maintenance::{self, Usage, UsageSort, VacuumReport};
use crate::core::tenant::{
    self, CreateSpec, Created, Deleted, ListFilter, PurgeReport, Recipe, SortKey, StateChange,
    StateResult, TenantDetail, TenantSummary, Undeleted,
};
use crate::core::{exit, fixture, template, Batch, Error, Workspace};
use crate::output::{self, opt, size, List, Render, Table};

use super::{confirm, picked, settings_with, show, show_batch, workspace, Bar, Outcome};

pub fn run(g: &GlobalArgs, cmd: TenantCommand) -> Outcome {
    if let TenantCommand::Create(a) = cmd {
        return create(g, &a);
    }
    if let TenantCommand::Copy(a) = cmd {
        return copy(g, &a);
    }
    let ws = workspace(g)?;
    match cmd {
        TenantCommand::Create(_) | TenantCommand::Copy(_) => unreachable!("handled above"),
        TenantCommand::List(a) => show(g.format, &List(tenant::list(&ws, &list_filter(&a))?)),
        TenantCommand::Show(a) => each(g, &picked(&a.names, &a.pick)?, |n| tenant::show(&ws, n)),
        TenantCommand::Trash(a) => state(g, &ws, &picked(&a.names, &a.pick)?, StateChange::Trash),
        TenantCommand::Untrash(a) => {
            state(g, &ws, &picked(&a.names, &a.pick)?, StateChange::Untrash)
        }
        TenantCommand::Suspend(a) => {
            state(g, &ws, &picked(&a.names, &a.pick)?, StateChange::Suspend)
        }
        TenantCommand::Activate(a) => {
            state(g, &ws, &picked(&a.names, &a.pick)?, StateChange::Activate)
        }
        TenantCommand::Delete(a) => {
            let names = picked(&a.names, &a.pick)?;
            // Fail on a bad or unknown name before asking.
            for n in &names {
                crate::core::names::tenant(n)?;
            }
            let mut store = ws.store()?;
            for n in &names {
                store.get(n)?;
            }
            drop(store);
            confirm(
                &format!(
                    "Delete {} '{}' (the API refuses {} at once; {} to the trash)",
                    if names.len() == 1 {
                        "tenant"
                    } else {
                        "tenants"
                    },
                    names.join("', '"),
                    if names.len() == 1 { "it" } else { "them" },
                    if names.len() == 1 {
                        "its file moves"
                    } else {
                        "their files move"
                    },
                ),
                g.yes,
            )?;
            each(g, &names, |n| tenant::delete(&ws, n))
        }
        TenantCommand::Undelete(a) => {
            each(g, &picked(&a.names, &a.pick)?, |n| tenant::undelete(&ws, n))
        }
        TenantCommand::Vacuum(a) => {
            let names = picked(&a.names, &a.pick)?;
            let report = maintenance::vacuum(&ws, &names, a.all, &Bar::new())?;
            output::print(g.format, &report)?;
            Ok(super::batch_errors(&report.batch))
        }
        TenantCommand::Usage(a) => {
            let sort = match a.sort {
                UsageSortBy::Name => UsageSort::Name,
                UsageSortBy::Size => UsageSort::Size,
                UsageSortBy::Wal => UsageSort::Wal,
                UsageSortBy::Rows => UsageSort::Rows,
                UsageSortBy::Free => UsageSort::Free,
                UsageSortBy::Changed => UsageSort::Changed,
            };
            show(
                g.format,
                &List(maintenance::usage(
                    &ws,
                    &picked(&a.names, &a.pick)?,
                    a.all,
                    sort,
                    a.reverse,
                )?),
            )
        }
        TenantCommand::Purge(a) => {
            let older = ids::parse_duration(&a.older_than).map_err(Error::Usage)?;
            let (due, kept) = tenant::purge_candidates(&ws, older)?;
            if !a.dry_run && !due.is_empty() {
                let names: Vec<&str> = due.iter().map(|p| p.name.as_str()).collect();
                confirm(
                    &format!(
                        "Permanently remove the files of {} deleted tenant(s): {}",
                        due.len(),
                        names.join(", ")
                    ),
                    g.yes,
                )?;
            }
            show(
                g.format,
                &tenant::purge_these(&ws, older, a.dry_run, due, kept)?,
            )
        }
    }
}

/// `tenant create`: executes the schema (plus `--fixture`s), or clones `--template`.
fn create(g: &GlobalArgs, a: &CreateArgs) -> Outcome {
    let ws = Workspace::new(settings_with(g, a.dir.fixtures_dir.clone())?)?;
    let specs = create_specs(a)?;
    tenant::validate_specs(&specs)?;
    let limit = super::statement_timeout(&a.limit)?;
    let on_postgres = matches!(ws.backend, crate::core::Backend::Postgres(_));
    let sqlite_files = match a.db_type.as_deref() {
        Some("sqlite") => on_postgres,
        Some(_) if !on_postgres => {
            return Err(Error::Usage(
                "--db-type postgresql: this deployment is SQLite; name a PostgreSQL one with --database-url".into(),
            )
            .into())
        }
        _ => false,
    };
    if sqlite_files && a.template.is_some() {
        return Err(Error::Usage(
            "--template with --db-type sqlite: the templates of a PostgreSQL deployment build schemas; create SQLite tenants from the schema and --fixture instead".into(),
        )
        .into());
    }
    let fixtures = if a.fixtures.is_empty() {
        Vec::new()
    } else if sqlite_files {
        fixture::prepare(&ws.settings.fixtures_dir.value, &a.fixtures, limit)?
    } else {
        fixture::prepare_for(&ws, &ws.settings.fixtures_dir.value, &a.fixtures, limit)?
    };
    let set = ws.migration_set()?;
    let batch = match &a.template {
        Some(name) => {
            let image = template::load(&ws, name)?;
            tenant::create_many(
                &ws,
                &specs,
                Recipe::Template {
                    image: &image,
                    fixtures: &fixtures,
                    limit,
                },
                a.skip_existing,
                &Bar::new(),
            )?
        }
        None if fixtures.is_empty() => tenant::create_many_as(
            &ws,
            &specs,
            Recipe::System(set),
            a.skip_existing,
            sqlite_files,
            &Bar::new(),
        )?,
        None => tenant::create_many_as(
            &ws,
            &specs,
            Recipe::Fixtures {
                set,
                fixtures: &fixtures,
                limit,
            },
            a.skip_existing,
            sqlite_files,
            &Bar::new(),
        )?,
    };
    show_batch(g.format, &batch)
}

fn create_specs(a: &CreateArgs) -> anyhow::Result<Vec<CreateSpec>> {
    if let Some(file) = &a.from_file {
        return Ok(tenant::parse_create_file(file)?);
    }
    Ok(a.names
        .iter()
        .map(|n| CreateSpec {
            name: n.clone(),
            owner: a.owner.clone(),
            description: a.description.clone(),
        })
        .collect())
}

fn list_filter(a: &ListArgs) -> ListFilter {
    ListFilter {
        statuses: a
            .status
            .iter()
            .map(|s| {
                match s {
                    Status::Pending => "pending",
                    Status::Active => "active",
                    Status::Suspended => "suspended",
                    Status::Dissolving => "dissolving",
                    Status::Deleted => "deleted",
                }
                .to_string()
            })
            .collect(),
        include_trashed: a.trashed || a.all,
        include_deleted: a.deleted || a.all,
        sort: match a.sort {
            SortBy::Name => SortKey::Name,
            SortBy::Created => SortKey::Created,
            SortBy::Status => SortKey::Status,
            SortBy::Size => SortKey::Size,
        },
        reverse: a.reverse,
    }
}

fn state(
    g: &GlobalArgs,
    ws: &crate::core::Workspace,
    names: &[String],
    change: StateChange,
) -> Outcome {
    each(g, names, |n| tenant::change_state(ws, n, change))
}

/// A lifecycle verb over its names: one name shows its result alone (exit as its error); several
/// are a batch, each tenant reported in order, exit 8 when some failed.
fn each<T>(g: &GlobalArgs, names: &[String], f: impl Fn(&str) -> crate::core::Result<T>) -> Outcome
where
    T: Render + serde::Serialize,
    Batch<T>: Render,
{
    if let [one] = names {
        return show(g.format, &f(one)?);
    }
    let mut batch = Batch::default();
    for n in names {
        batch.push(n, f(n));
    }
    show_batch(g.format, &batch)
}

/// The table of a lifecycle verb over several tenants.
macro_rules! lifecycle_batch {
    ($($t:ty),*) => {$(
        impl Render for Batch<$t> {
            fn table(&self) -> Table {
                let mut t = Table::new(vec!["tenant", "result", "status", "error"]);
                for o in &self.results {
                    t.row(vec![
                        o.tenant.clone(),
                        if o.ok { "ok" } else { "failed" }.into(),
                        o.result
                            .as_ref()
                            .map(|r| shown_status(&r.tenant.status, r.tenant.trashed_at.is_some()))
                            .unwrap_or_default(),
                        opt(&o.error),
                    ], !o.ok);
                }
                t
            }
        }
    )*};
}
lifecycle_batch!(StateResult, Deleted, Undeleted);

/// The state a person reads: the status column, with `trashed` shown over it (in CSV, the
/// status alone: `trashed_at` is a column of its own there).
fn shown_status(status: &str, trashed: bool) -> String {
    if trashed && !output::raw() {
        format!("{status} (trashed)")
    } else {
        status.to_string()
    }
}

impl Render for List<TenantSummary> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec![
            "id",
            "name",
            "status",
            "owner_id",
            "created_at",
            "trashed_at",
            "deleted_at",
            "size",
            "fixtures",
        ]);
        for s in &self.0 {
            t.rows.push(vec![
                s.id.clone(),
                s.name.clone(),
                shown_status(&s.status, s.trashed_at.is_some()),
                s.owner_id.clone(),
                s.created_at.clone(),
                opt(&s.trashed_at),
                opt(&s.deleted_at),
                size(s.size_bytes),
                output::fixture_names(&s.fixtures),
            ]);
        }
        t.narrow(&["name", "status", "created_at", "size"])
    }

    fn footer(&self) -> Vec<String> {
        vec![format!("{} tenant(s)", self.0.len())]
    }

    fn write_json(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        crate::output::write_json_lines(out, &self.0)
    }
}

impl Render for TenantDetail {
    fn table(&self) -> Table {
        let t = &self.tenant;
        let mut rows = vec![
            ("id", t.id.clone()),
            ("name", t.name.clone()),
            ("status", shown_status(&t.status, t.trashed_at.is_some())),
            ("is_active", t.is_active.to_string()),
            ("owner_id", t.owner_id.clone()),
            ("owner_name", opt(&self.owner_name)),
            ("description", opt(&t.description)),
            ("database", t.database.clone()),
            ("schema", t.schema.clone()),
            ("template_version", t.template_version.to_string()),
            ("source_template", opt(&t.source_template)),
            ("created_at", t.created_at.clone()),
            ("updated_at", t.updated_at.clone()),
            ("trashed_at", opt(&t.trashed_at)),
            ("deleted_at", opt(&t.deleted_at)),
            (
                "path",
                match &self.path {
                    Some(p) => p.display().to_string(),
                    None => "(none: the tenant is its schema)".into(),
                },
            ),
            ("size", size(self.size_bytes)),
            ("wal_size", size(self.wal_bytes)),
        ];
        if let Some(e) = &self.file_error {
            rows.push(("file_error", e.clone()));
        }
        if self.purged {
            rows.push((
                "purged",
                if self.path.is_some() {
                    "yes: `tenant purge` removed the trash copy; nothing is left to read"
                } else {
                    "yes: `tenant purge` wrote its schema to the trash (a pg_dump archive) and dropped it"
                }
                .into(),
            ));
        }
        rows.push(("tables", output::table_counts(&self.tables)));
        rows.push((
            "fixtures",
            self.fixtures
                .iter()
                .map(|f| match &f.version {
                    Some(v) => format!("{} {} ({})", f.fixture, output::version(v), f.deployed_at),
                    None => format!("{} ({})", f.fixture, f.deployed_at),
                })
                .collect::<Vec<_>>()
                .join(", "),
        ));
        Table::fields(rows)
    }
}

/// `tenant show` of several tenants: a row each (`--format json` has every detail).
impl Render for Batch<TenantDetail> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec![
            "tenant",
            "status",
            "created_at",
            "size",
            "fixtures",
            "error",
        ]);
        for o in &self.results {
            let row = match &o.result {
                Some(d) => vec![
                    o.tenant.clone(),
                    shown_status(&d.tenant.status, d.tenant.trashed_at.is_some()),
                    d.tenant.created_at.clone(),
                    size(d.size_bytes),
                    output::fixture_names(&d.fixtures),
                    opt(&d.file_error),
                ],
                None => vec![
                    o.tenant.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    opt(&o.error),
                ],
            };
            t.row(row, !o.ok);
        }
        t
    }
}

impl Render for Batch<Created> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["tenant", "result", "id", "path"]);
        for o in &self.results {
            match &o.result {
                Some(c) => t.row(
                    vec![
                        o.tenant.clone(),
                        if c.existed { "existed" } else { "created" }.into(),
                        c.tenant.id.clone(),
                        match &c.path {
                            Some(p) => p.display().to_string(),
                            None => format!("schema {}", c.tenant.schema),
                        },
                    ],
                    false,
                ),
                None => t.row(
                    vec![
                        o.tenant.clone(),
                        "failed".into(),
                        String::new(),
                        opt(&o.error),
                    ],
                    true,
                ),
            }
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .results
            .iter()
            .filter_map(|o| o.result.as_ref())
            .flat_map(|c| &c.moved_aside)
            .map(|p| {
                format!(
                    "note: a leftover of an interrupted create was moved to {}",
                    p.display()
                )
            })
            .collect();
        let existed = self
            .results
            .iter()
            .filter(|o| o.result.as_ref().is_some_and(|c| c.existed))
            .count();
        lines.push(if existed > 0 {
            format!(
                "{} created, {existed} existed already, {} failed",
                self.succeeded - existed,
                self.failed
            )
        } else {
            format!("{} created, {} failed", self.succeeded, self.failed)
        });
        lines
    }
}

impl Render for StateResult {
    fn table(&self) -> Table {
        let t = &self.tenant;
        Table::fields(vec![
            ("name", t.name.clone()),
            ("status", shown_status(&t.status, t.trashed_at.is_some())),
            ("trashed_at", opt(&t.trashed_at)),
            ("changed", self.changed.to_string()),
        ])
    }
}

impl Render for Deleted {
    fn table(&self) -> Table {
        let mut rows = vec![
            ("name", self.tenant.name.clone()),
            ("status", self.tenant.status.clone()),
            ("deleted_at", opt(&self.tenant.deleted_at)),
        ];
        for m in &self.moved {
            rows.push(("moved_to", m.to.display().to_string()));
        }
        Table::fields(rows)
    }
}

impl Render for PurgeReport {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["tenant", "deleted_at", "size", "files"]);
        for p in &self.purged {
            t.rows.push(vec![
                p.name.clone(),
                opt(&p.deleted_at),
                size(Some(p.bytes)),
                p.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]);
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        vec![format!(
            "{} {} tenant(s); {} deleted tenant(s) still within the retention",
            if self.dry_run {
                "would purge"
            } else {
                "purged"
            },
            self.purged.len(),
            self.kept
        )]
    }
}

impl Render for VacuumReport {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["tenant", "result", "before", "after", "reclaimed"]);
        for o in &self.batch.results {
            let (before, after, reclaimed) = o.result.as_ref().map_or((None, None, None), |v| {
                (
                    v.size_before_bytes,
                    v.size_after_bytes,
                    Some(v.reclaimed_bytes),
                )
            });
            t.row(
                vec![
                    o.tenant.clone(),
                    match (&o.result, o.exit_code) {
                        (Some(_), _) => "vacuumed",
                        (None, exit::BUSY) => "skipped (in use)",
                        (None, exit::INTERRUPTED) => "not started",
                        (None, _) => "failed",
                    }
                    .into(),
                    size(before),
                    size(after),
                    size(reclaimed),
                ],
                !o.ok,
            );
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        let b = &self.batch;
        let skipped = b
            .results
            .iter()
            .filter(|o| o.exit_code == exit::BUSY)
            .count();
        vec![format!(
            "{} vacuumed, {} skipped (in use), {} failed; {} reclaimed",
            b.succeeded,
            skipped,
            b.failed - skipped,
            size(Some(self.reclaimed_bytes))
        )]
    }
}

impl Render for List<Usage> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec![
            "tenant",
            "status",
            "size",
            "wal",
            "page_size",
            "page_count",
            "freelist_count",
            "row_count",
            "last_changed_at",
            "tables",
        ]);
        for u in &self.0 {
            t.rows.push(vec![
                u.tenant.clone(),
                u.status.clone(),
                size(u.file_bytes),
                size(u.wal_bytes),
                opt(&u.page_size),
                opt(&u.page_count),
                opt(&u.freelist_count),
                opt(&u.total_rows),
                opt(&u.last_change),
                match &u.error {
                    Some(e) => format!("error: {e}"),
                    None => u
                        .tables
                        .iter()
                        .map(|c| format!("{}={}", c.table, c.rows))
                        .collect::<Vec<_>>()
                        .join(" "),
                },
            ]);
        }
        t.narrow(&["tenant", "status", "size", "wal", "row_count"])
    }

    fn footer(&self) -> Vec<String> {
        let total: u64 = self
            .0
            .iter()
            .map(|u| u.file_bytes.unwrap_or(0) + u.wal_bytes.unwrap_or(0))
            .sum();
        vec![format!(
            "{} tenant(s), {} in all",
            self.0.len(),
            size(Some(total))
        )]
    }
}

impl Render for Undeleted {
    fn table(&self) -> Table {
        Table::fields(vec![
            ("tenant", self.tenant.name.clone()),
            ("status", self.tenant.status.clone()),
            ("path", output::opt_path(&self.path)),
            ("from", output::opt_path(&self.from)),
        ])
    }
}

/// `tenant copy`: the target deployment is this one's settings with `--to` (and
/// `--to-data-dir`) in place of the URL (and data directory).
fn copy(g: &GlobalArgs, a: &crate::cli::CopyArgs) -> Outcome {
    let from = workspace(g)?;
    let to_settings = crate::core::config::Settings::resolve(&crate::core::config::Overrides {
        data_dir: a.to_data_dir.clone().or_else(|| g.data_dir.clone()),
        database_url: Some(a.to.clone()),
        config: g.config.clone(),
        fixtures_dir: None,
        migrations_dir: g.migrations.clone(),
        sqlite_data_dir: g.sqlite_data_dir.clone(),
        layout: g.layout.clone(),
    })?;
    let to = Workspace::new(to_settings)?;
    let copied = crate::core::archive::copy(&from, &a.name, &to, a.as_name.as_deref())?;
    show(g.format, &copied)
}

impl Render for crate::core::archive::Copied {
    fn table(&self) -> Table {
        Table::fields(vec![
            ("tenant", self.tenant.clone()),
            ("from", self.from.to_string()),
            ("to", self.to.to_string()),
            ("copied_as", self.restored.tenant.name.clone()),
            ("id", self.restored.tenant.id.clone()),
            (
                "location",
                match &self.restored.path {
                    Some(p) => p.display().to_string(),
                    None => format!("schema {}", self.restored.tenant.schema),
                },
            ),
            ("archive", self.archive.display().to_string()),
        ])
    }
}
