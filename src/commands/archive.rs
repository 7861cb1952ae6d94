//! `monkctl extract`, `archive inspect|verify` and `restore`: adapters over `core::archive`.

use crate::cli::{ArchiveCommand, ExtractArgs, GlobalArgs, RestoreArgs};
use crate::core::archive::{
    self, Extracted, Inspection, Output, RestoreOptions, Restored, Verified,
};
use crate::core::Batch;
use crate::output::{self, opt, size, List, Render, Table};

use super::{confirm, show, show_batch, workspace, Bar, Outcome};

pub fn extract(g: &GlobalArgs, a: ExtractArgs) -> Outcome {
    let names = super::picked(&a.names, &a.pick)?;
    let ws = workspace(g)?;
    let jobs = crate::core::pool::jobs(a.jobs, crate::core::pool::Work::Files);
    let batch = if a.all {
        let dir = a.output.clone().expect("clap requires -o with --all");
        archive::extract_all(&ws, &dir, a.force, jobs, &Bar::new())?
    } else {
        // A directory: one that exists, a path written with a trailing `/`, or the place for
        // several tenants' archives (made when missing).
        let out = match &a.output {
            None => Output::Default,
            Some(p)
                if p.is_dir()
                    || p.as_os_str().as_encoded_bytes().ends_with(b"/")
                    || names.len() > 1 =>
            {
                Output::Dir(p.clone())
            }
            Some(p) => Output::File(p.clone()),
        };
        archive::extract_many(&ws, &names, &out, a.force, jobs, &Bar::new())?
    };
    show_batch(g.format, &batch)
}

pub fn run(g: &GlobalArgs, cmd: ArchiveCommand) -> Outcome {
    let ws = workspace(g)?;
    let set = ws.migration_set()?;
    match cmd {
        ArchiveCommand::Inspect(a) => show(g.format, &archive::inspect(&a.file, set)?),
        ArchiveCommand::Verify(a) => show(g.format, &archive::verify(&a.file, set)?),
        ArchiveCommand::List(a) => {
            let listed = archive::list(&a.dir, a.verify, set)?;
            show(g.format, &List(listed.clone()))?;
            // A file that is no good archive (or fails verification) fails the listing's exit.
            Ok(if listed.iter().any(|l| l.error.is_some()) {
                crate::core::exit::PARTIAL
            } else {
                crate::core::exit::SUCCESS
            })
        }
    }
}

impl Render for List<archive::Listed> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec![
            "file", "tenant", "created", "size", "schema", "verified", "error",
        ]);
        for l in &self.0 {
            t.rows.push(vec![
                l.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                opt(&l.tenant),
                opt(&l.created_at),
                size(Some(l.size_bytes)),
                l.schema_version.map(|v| v.to_string()).unwrap_or_default(),
                match (l.verified, &l.error) {
                    // The table's narrow form has no error column: the cell says it.
                    (_, Some(e)) if !output::raw() => format!("error: {e}"),
                    (Some(true), _) => "yes".into(),
                    (Some(false), _) => "FAILED".into(),
                    (None, _) => "-".into(),
                },
                opt(&l.error),
            ]);
        }
        t.narrow(&["file", "tenant", "created", "size", "verified"])
    }
}

pub fn restore(g: &GlobalArgs, a: RestoreArgs) -> Outcome {
    let ws = workspace(g)?;
    if a.force {
        // Ask only when something would be replaced; an unusable archive fails before asking.
        let (name, exists) = archive::restore_target(&ws, &a.file, a.as_name.as_deref())?;
        if exists {
            confirm(
                &format!(
                    "Replace the content of tenant '{name}' with {} (its current database is saved to the trash first)",
                    a.file.display()
                ),
                g.yes,
            )?;
        }
    }
    let r = archive::restore(
        &ws,
        &a.file,
        &RestoreOptions {
            as_name: a.as_name,
            force: a.force,
            migrate: a.migrate,
        },
    )?;
    if r.needs_migration {
        output::note(&format!(
            "tenant '{}' is at schema version {}, behind the deployment's migrations; run `{}` (or restore with --migrate)",
            r.tenant.name,
            r.schema_version,
            super::command_line(g, &["migrate".into(), "up".into(), "--tenant".into(), r.tenant.name.clone()])
        ));
    }
    show(g.format, &r)
}

impl Render for Batch<Extracted> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["tenant", "result", "path", "size", "rows", "checksum"]);
        for o in &self.results {
            match &o.result {
                Some(e) => t.row(
                    vec![
                        o.tenant.clone(),
                        "extracted".into(),
                        e.path.display().to_string(),
                        size(Some(e.size_bytes)),
                        e.rows.to_string(),
                        e.checksum.clone(),
                    ],
                    false,
                ),
                None => t.failed(&o.tenant, &o.error),
            }
        }
        t.narrow(&["tenant", "result", "path", "size"])
    }
}

impl Render for Inspection {
    fn table(&self) -> Table {
        let mut rows = vec![
            ("path", self.path.display().to_string()),
            ("size", size(Some(self.size_bytes))),
        ];
        match &self.metadata {
            Some(m) => {
                rows.extend([
                    ("format_version", m.format_version.to_string()),
                    ("tenant", m.tenant.name.clone()),
                    ("tenant_id", m.tenant.id.clone()),
                    ("status", m.tenant.status.clone()),
                    ("owner_id", m.tenant.owner_id.clone()),
                    ("description", opt(&m.tenant.description)),
                    ("schema_version", m.schema_version.to_string()),
                    ("created_at", m.created_at.clone()),
                    ("host", m.host.clone()),
                    ("monkctl_version", m.monkctl_version.clone()),
                    ("checksum", m.checksum.clone()),
                    (
                        "fixtures",
                        m.fixtures
                            .iter()
                            .map(|f| f.fixture_name.clone())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                ]);
            }
            None => rows.push(("metadata_error", opt(&self.metadata_error))),
        }
        rows.push(("tables", output::table_counts(&self.tables)));
        Table::fields(rows)
    }
}

impl Render for Verified {
    fn table(&self) -> Table {
        Table::fields(vec![
            ("path", self.path.display().to_string()),
            ("result", "ok".into()),
            ("tenant", self.tenant.clone()),
            ("tenant_id", self.tenant_id.clone()),
            ("format_version", self.format_version.to_string()),
            ("schema_version", self.schema_version.to_string()),
            ("needs_migration", self.needs_migration.to_string()),
            ("tables", self.tables.to_string()),
            ("rows", self.rows.to_string()),
            ("checksum", self.checksum.clone()),
        ])
    }
}

impl Render for Restored {
    fn table(&self) -> Table {
        Table::fields(vec![
            ("archive", self.archive.display().to_string()),
            (
                "result",
                match self.mode {
                    archive::RestoreMode::Created => "created",
                    archive::RestoreMode::Replaced => "replaced",
                }
                .into(),
            ),
            ("tenant", self.tenant.name.clone()),
            ("id", self.tenant.id.clone()),
            ("status", self.tenant.status.clone()),
            (
                "path",
                match &self.path {
                    Some(p) => p.display().to_string(),
                    None => format!("schema {}", self.tenant.schema),
                },
            ),
            (
                "previous_saved_to",
                self.previous_saved_to
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "pages_written",
                self.pages
                    .map(|r| format!("{} of {}", r.written, r.total))
                    .unwrap_or_default(),
            ),
            ("schema_version", self.schema_version.to_string()),
            ("needs_migration", self.needs_migration.to_string()),
            ("fixtures", output::fixture_names(&self.fixtures)),
        ])
    }
}
