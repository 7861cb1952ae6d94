//! `monkctl fixture ...`: adapters over `core::fixture`.

use crate::cli::{FixtureCommand, GlobalArgs};
use crate::core::fixture::{self, CheckReport, Deployed, Listed, Shown, Status, Targets};
use crate::core::{exit, Batch, Workspace};
use crate::output::{self, opt, List, Render, Table};

use super::{settings_with, show, show_batch, statement_timeout, Bar, Outcome};
use crate::core::guard;

pub fn run(g: &GlobalArgs, cmd: FixtureCommand) -> Outcome {
    let dir_flag = match &cmd {
        FixtureCommand::List(d) => d.fixtures_dir.clone(),
        FixtureCommand::Show(a) => a.dir.fixtures_dir.clone(),
        FixtureCommand::Check(a) => a.dir.fixtures_dir.clone(),
        FixtureCommand::Deploy(a) => a.dir.fixtures_dir.clone(),
        FixtureCommand::Status(_) => None,
    };
    let ws = Workspace::new(settings_with(g, dir_flag)?)?;
    let dir = ws.settings.fixtures_dir.value.clone();
    match cmd {
        FixtureCommand::List(_) => show(g.format, &List(fixture::list(&dir)?)),
        FixtureCommand::Show(a) => show(g.format, &fixture::show(&dir, &a.name)?),
        FixtureCommand::Check(a) => {
            let report = fixture::check(&ws, &dir, a.name.as_deref(), guard::ANALYSIS_TIMEOUT)?;
            crate::output::print(g.format, &report)?;
            if report.problems.is_empty() {
                Ok(exit::SUCCESS)
            } else {
                for p in &report.problems {
                    eprintln!("error: {}: {}", p.fixture, p.message);
                }
                Ok(exit::USAGE)
            }
        }
        FixtureCommand::Deploy(a) => {
            let targets = Targets {
                tenants: super::picked(&[], &a.pick)?,
                all: a.all,
            };
            let limit = statement_timeout(&a.limit)?;
            let batch =
                fixture::deploy(&ws, &dir, &a.names, &targets, a.force, limit, &Bar::new())?;
            show_batch(g.format, &batch)
        }
        FixtureCommand::Status(a) => show(g.format, &List(fixture::status(&ws, &a.tenant)?)),
    }
}

impl Render for List<Listed> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec![
            "name",
            "version",
            "depends_on",
            "source",
            "description",
        ]);
        for f in &self.0 {
            t.rows.push(vec![
                f.name.clone(),
                f.version
                    .as_deref()
                    .map(output::version)
                    .unwrap_or_default(),
                f.depends_on.join(" "),
                f.source.clone(),
                match &f.error {
                    Some(e) => format!("error: {e}"),
                    None => opt(&f.description),
                },
            ]);
        }
        t
    }
}

impl Render for Shown {
    fn table(&self) -> Table {
        let f = &self.fixture;
        let mut rows = vec![
            ("name", f.name.clone()),
            ("version", f.version.clone()),
            ("description", opt(&f.description)),
            ("depends_on", f.depends_on.join(" ")),
            ("source", f.source.clone()),
        ];
        for d in &self.file_details {
            rows.push((
                "file",
                format!(
                    "{} ({}, {} bytes, {} {})",
                    d.file,
                    d.kind,
                    d.size_bytes,
                    d.items,
                    if d.kind == "sql" {
                        "statements"
                    } else {
                        "rows"
                    }
                ),
            ));
        }
        rows.push(("tables", self.tables.join(" ")));
        Table::fields(rows)
    }
}

impl Render for CheckReport {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["fixture", "problem"]);
        for p in &self.problems {
            t.rows.push(vec![p.fixture.clone(), p.message.clone()]);
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        vec![format!(
            "checked {} fixture(s): {}; {} problem(s)",
            self.checked.len(),
            self.checked.join(" "),
            self.problems.len()
        )]
    }
}

impl Render for Batch<Deployed> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["tenant", "result", "applied", "skipped"]);
        for o in &self.results {
            match &o.result {
                Some(d) => t.row(
                    vec![
                        o.tenant.clone(),
                        if !d.applied.is_empty() {
                            "deployed".into()
                        } else if !d.recorded.is_empty() {
                            // An interrupted deploy had applied them; only the registry lacked them.
                            format!("recorded {}", d.recorded.join(" "))
                        } else {
                            "unchanged".into()
                        },
                        d.applied
                            .iter()
                            .map(|a| format!("{}@{}", a.name, a.version))
                            .collect::<Vec<_>>()
                            .join(" "),
                        d.skipped.join(" "),
                    ],
                    false,
                ),
                None => t.failed(&o.tenant, &o.error),
            }
        }
        t
    }

    fn footer(&self) -> Vec<String> {
        vec![format!(
            "{} succeeded, {} failed",
            self.succeeded, self.failed
        )]
    }
}

impl Render for List<Status> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["fixture", "version", "deployed_at"]);
        for s in &self.0 {
            t.rows.push(vec![
                s.fixture.clone(),
                s.version
                    .as_deref()
                    .map(output::version)
                    .unwrap_or_default(),
                s.deployed_at.clone(),
            ]);
        }
        t
    }
}
