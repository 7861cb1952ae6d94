//! `monkctl template ...`: adapters over `core::template`.

use crate::cli::{GlobalArgs, TemplateCommand};
use crate::core::template::{self, Info, Meta, Removed};
use crate::core::Workspace;
use crate::output::{opt, size, List, Render, Table};

use super::{confirm, settings_with, show, Outcome};

pub fn run(g: &GlobalArgs, cmd: TemplateCommand) -> Outcome {
    let dir_flag = match &cmd {
        TemplateCommand::Build(a) => a.dir.fixtures_dir.clone(),
        _ => None,
    };
    let ws = Workspace::new(settings_with(g, dir_flag)?)?;
    match cmd {
        TemplateCommand::Build(a) => {
            let dir = ws.settings.fixtures_dir.value.clone();
            show(
                g.format,
                &template::build(
                    &ws,
                    &dir,
                    &a.name,
                    &a.fixtures,
                    super::statement_timeout(&a.limit)?,
                )?,
            )
        }
        TemplateCommand::List => show(g.format, &List(template::list(&ws)?)),
        TemplateCommand::Show(a) => show(g.format, &template::show(&ws, &a.name)?),
        TemplateCommand::Rm(a) => {
            // Fail on an unknown template before asking.
            template::show(&ws, &a.name)?;
            confirm(&format!("Remove template '{}'", a.name), g.yes)?;
            show(g.format, &template::rm(&ws, &a.name)?)
        }
    }
}

fn fixtures_of(m: &Meta) -> String {
    m.fixtures
        .iter()
        .map(|f| format!("{}@{}", f.name, crate::output::version(&f.version)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Render for Meta {
    fn table(&self) -> Table {
        Table::fields(vec![
            ("name", self.name.clone()),
            ("generation", self.generation.to_string()),
            ("built_at", self.built_at.clone()),
            ("schema_version", self.schema_version.to_string()),
            ("checksum", self.checksum.clone()),
            ("size", size(Some(self.size_bytes))),
            ("system_version", self.system_version.clone()),
            ("fixtures", fixtures_of(self)),
        ])
    }
}

impl Render for List<Info> {
    fn table(&self) -> Table {
        let mut t = Table::new(vec![
            "name",
            "generation",
            "built_at",
            "size",
            "fixtures",
            "error",
        ]);
        for i in &self.0 {
            let m = i.meta.as_ref();
            t.rows.push(vec![
                i.name.clone(),
                m.map(|m| m.generation.to_string()).unwrap_or_default(),
                m.map(|m| m.built_at.clone()).unwrap_or_default(),
                size(m.map(|m| m.size_bytes)),
                m.map(fixtures_of).unwrap_or_default(),
                opt(&i.error),
            ]);
        }
        t
    }
}

impl Render for Info {
    fn table(&self) -> Table {
        let mut rows = vec![
            ("name", self.name.clone()),
            ("path", self.path.display().to_string()),
        ];
        if let Some(m) = &self.meta {
            rows.extend(m.table().rows.into_iter().skip(1).map(|r| {
                let key: &'static str = match r[0].as_str() {
                    "generation" => "generation",
                    "built_at" => "built_at",
                    "schema_version" => "schema_version",
                    "checksum" => "checksum",
                    "size" => "size",
                    "system_version" => "system_version",
                    _ => "fixtures",
                };
                (key, r[1].clone())
            }));
        }
        rows.push((
            "checksum_ok",
            self.checksum_ok.map(|b| b.to_string()).unwrap_or_default(),
        ));
        if let Some(e) = &self.error {
            rows.push(("error", e.clone()));
        }
        Table::fields(rows)
    }
}

impl Render for Removed {
    fn table(&self) -> Table {
        let mut rows = vec![("name", self.name.clone())];
        for p in &self.removed {
            rows.push(("removed", p.display().to_string()));
        }
        Table::fields(rows)
    }
}
