//! Where files live in a data directory, for both layouts of the compat spec.
//!
//! A tenant's file is always `<data>/<tenants.database>/<tenants.schema>.db`, computed from its
//! registry row and validated so that a hand-edited row cannot point outside the data directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{Error, Result};
use super::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// `<data>/infra/NAME.db`, tenants in `<data>/db_main/`.
    Design,
    /// Monk API 6: `<data>/NAME/public.db`, tenants beside it. The only layout the API reads.
    #[serde(rename = "api")]
    Api6,
}

impl LayoutKind {
    /// The name users give it (`--layout`, `MONK_LAYOUT`, `layout` in the config file).
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutKind::Design => "design",
            LayoutKind::Api6 => "api",
        }
    }

    pub fn parse(s: &str) -> Option<LayoutKind> {
        match s {
            "design" => Some(LayoutKind::Design),
            "api" => Some(LayoutKind::Api6),
            _ => None,
        }
    }
}

/// The database directory name that new tenants get in the design layout.
pub const DESIGN_TENANT_DB: &str = "db_main";

#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub database_name: String,
    pub kind: LayoutKind,
    pub infra_path: PathBuf,
}

impl Layout {
    /// The layout for the infra database `database_name` named explicitly (`DATABASE_URL`):
    /// `resolve` with the name given and the layout detected.
    pub fn detect(data_dir: &Path, database_name: &str) -> Result<Layout> {
        Self::resolve(data_dir, database_name, true, None)
    }

    /// Finds the registry a data directory holds, never guessing between two.
    ///
    /// - `wanted` (`--layout`) decides the layout outright.
    /// - With the name given (`DATABASE_URL` set): its design file `<data>/infra/NAME.db` or its
    ///   API file `<data>/NAME/public.db`, whichever exists; both existing is exit 2.
    /// - Without (`DATABASE_URL` unset, so `database_name` is the default): every registry in the
    ///   directory counts, `<data>/infra/<default>.db` and any `<data>/<NAME>/public.db`. Exactly
    ///   one is used, whatever its name (the API's unconfigured `sqlite:root` included); none
    ///   gives a new design layout; two or more are exit 2, naming each and the setting that
    ///   chooses.
    pub fn resolve(
        data_dir: &Path,
        database_name: &str,
        name_given: bool,
        wanted: Option<LayoutKind>,
    ) -> Result<Layout> {
        let at = |kind: LayoutKind, name: &str| Layout {
            data_dir: data_dir.to_path_buf(),
            database_name: name.to_string(),
            kind,
            infra_path: match kind {
                LayoutKind::Design => Self::design_infra(data_dir, name),
                LayoutKind::Api6 => Self::api_infra(data_dir, name),
            },
        };
        let found: Vec<Layout> = if name_given {
            [LayoutKind::Design, LayoutKind::Api6]
                .into_iter()
                .map(|k| at(k, database_name))
                .filter(|l| l.infra_path.exists())
                .collect()
        } else {
            let mut found: Vec<Layout> = Vec::new();
            let design = at(LayoutKind::Design, database_name);
            if design.infra_path.exists() {
                found.push(design);
            }
            found.extend(
                api_names(data_dir)
                    .into_iter()
                    .map(|n| at(LayoutKind::Api6, &n)),
            );
            found
        };
        let candidates: Vec<&Layout> = found
            .iter()
            .filter(|l| wanted.is_none_or(|k| l.kind == k))
            .collect();
        match candidates.as_slice() {
            [] => Ok(at(wanted.unwrap_or(LayoutKind::Design), database_name)),
            [one] => Ok((*one).clone()),
            many => Err(Error::Usage(format!(
                "{} holds {} registries: {}; monkctl does not guess between them: choose one with {}",
                data_dir.display(),
                many.len(),
                many.iter()
                    .map(|l| format!("{} ({} layout)", l.infra_path.display(), l.kind.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
                if many.iter().all(|l| l.database_name == many[0].database_name) {
                    "--layout design|api (MONK_LAYOUT, or layout in the config file)"
                } else {
                    "DATABASE_URL=sqlite:NAME (or --database-url, or database_url in the config file)"
                }
            ))),
        }
    }

    /// The settings under which the API serves this data directory: only the API layout has
    /// them (`DATABASE_URL=sqlite:NAME`, `SQLITE_DATA_DIR=<data, absolute>`).
    pub fn api_env(&self) -> Option<std::collections::BTreeMap<String, String>> {
        if self.kind != LayoutKind::Api6 {
            return None;
        }
        let dir = std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        Some(
            [
                ("DATABASE_URL", format!("sqlite:{}", self.database_name)),
                ("SQLITE_DATA_DIR", dir.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        )
    }

    /// One line for people: which layout this is and what the API needs to read it.
    pub fn describe(&self) -> String {
        match self.api_env() {
            Some(env) => format!(
                "API layout; the Monk API serves it with {}",
                env.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => "design layout (the Monk API 6 reads only the API layout: see `monkctl init --layout api`)".to_string(),
        }
    }

    /// The registries in the data directory besides this one (for `doctor`): the other layout's
    /// file of the same name and any other `<data>/<NAME>/public.db`.
    pub fn other_registries(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = api_names(&self.data_dir)
            .into_iter()
            .map(|n| Self::api_infra(&self.data_dir, &n))
            .collect();
        out.push(Self::design_infra(&self.data_dir, &self.database_name));
        out.retain(|p| *p != self.infra_path && p.exists());
        out.sort();
        out.dedup();
        out
    }

    pub fn design_infra(data_dir: &Path, name: &str) -> PathBuf {
        data_dir.join("infra").join(format!("{name}.db"))
    }

    pub fn api_infra(data_dir: &Path, name: &str) -> PathBuf {
        data_dir.join(name).join("public.db")
    }

    /// `tenants.database` for a new tenant.
    pub fn new_tenant_database(&self) -> &str {
        match self.kind {
            LayoutKind::Design => DESIGN_TENANT_DB,
            LayoutKind::Api6 => &self.database_name,
        }
    }

    /// `tenants.schema` for a new tenant.
    pub fn schema_for(name: &str) -> String {
        format!("{SCHEMA_PREFIX}{name}")
    }

    /// The live file of a tenant, from its row's `database` and `schema`. Refused unless it is a
    /// tenant location: `schema` is `ns_tenant_<name>` and `database` is not one of the
    /// directories monkctl keeps its own files in, so that no hand edit can make a tenant
    /// command act on the infra database, a template, the trash or a lock.
    pub fn tenant_path(&self, database: &str, schema: &str) -> Result<PathBuf> {
        names::path_component("tenants.database", database)?;
        check_schema(schema)?;
        if RESERVED_DIRS.contains(&database) {
            return Err(Error::InvalidName {
                what: "tenants.database",
                value: database.to_string(),
                reason: format!(
                    "<data>/{database}/ holds monkctl's own files, not tenants; fix the tenant's row in the registry"
                ),
            });
        }
        Ok(self.data_dir.join(database).join(format!("{schema}.db")))
    }

    /// Where `tenant delete` moves a tenant's file.
    pub fn trash_path(&self, schema: &str, id: &str) -> Result<PathBuf> {
        check_schema(schema)?;
        names::path_component("tenants.id", id)?;
        Ok(self.trash_dir().join(format!("{schema}.{id}.db")))
    }

    pub fn trash_dir(&self) -> PathBuf {
        self.data_dir.join("trash")
    }

    /// Where files that no registry row claims are moved; never deleted.
    pub fn orphans_dir(&self) -> PathBuf {
        self.data_dir.join("orphans")
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.data_dir.join("templates")
    }

    /// Copies of tenants taken before destructive migrations, one directory per run.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }

    /// The archives `tenant copy` moves tenants through; kept, never removed by monkctl.
    pub fn copies_dir(&self) -> PathBuf {
        self.data_dir.join("copies")
    }

    /// Lock files (`core::lock`) live here.
    pub fn locks_dir(&self) -> PathBuf {
        self.data_dir.join("locks")
    }

    /// Held by `migrate up`, `undo` and `snapshots prune` for their whole run.
    pub fn migrate_lock(&self) -> PathBuf {
        self.locks_dir().join("migrate.lock")
    }

    /// Waited for while the infra database's own migrations run.
    pub fn infra_migrate_lock(&self) -> PathBuf {
        self.locks_dir()
            .join(format!("infra-{}.migrate.lock", self.database_name))
    }

    /// Waited for while template `name` is built, removed or cloned from.
    pub fn template_lock(&self, name: &str) -> PathBuf {
        self.locks_dir().join(format!("template-{name}.lock"))
    }

    /// Held while tenant `name` is restored (removed when released).
    pub fn restore_lock(&self, name: &str) -> PathBuf {
        self.locks_dir().join(format!("restore-{name}.lock"))
    }
}

/// The names `NAME` of the API registries `<data>/<NAME>/public.db` in a data directory.
fn api_names(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !RESERVED_DIRS.contains(&n.as_str()) && names::path_component("", n).is_ok())
        .filter(|n| Layout::api_infra(data_dir, n).is_file())
        .collect();
    names.sort();
    names
}

/// Directories of the data directory that hold monkctl's own files; never a tenant's database.
pub const RESERVED_DIRS: &[&str] = &[
    "infra",
    "trash",
    "orphans",
    "templates",
    "locks",
    "snapshots",
    "copies",
];

/// `tenants.schema` is `ns_tenant_<tenant name>`, as the API writes it.
fn check_schema(schema: &str) -> Result<()> {
    let ok = schema
        .strip_prefix(SCHEMA_PREFIX)
        .is_some_and(|name| names::tenant(name).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "tenants.schema",
            value: schema.escape_debug().to_string(),
            reason: "a tenant's schema is ns_tenant_<name>; fix the tenant's row in the registry"
                .into(),
        })
    }
}

/// The prefix of every tenant's schema name.
pub const SCHEMA_PREFIX: &str = "ns_tenant_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_paths_come_from_the_row_and_stay_inside() {
        let l = Layout::detect(Path::new("/nonexistent-data"), "monk").unwrap();
        assert_eq!(l.kind, LayoutKind::Design);
        assert_eq!(
            l.tenant_path("db_main", "ns_tenant_acme").unwrap(),
            PathBuf::from("/nonexistent-data/db_main/ns_tenant_acme.db")
        );
        assert!(l.tenant_path("..", "ns_tenant_x").is_err());
        assert!(l.tenant_path("db_main", "../../etc/passwd").is_err());
        // Rows may not point at monkctl's own files, whatever a hand edit wrote.
        assert!(l.tenant_path("infra", "monk").is_err());
        assert!(l.tenant_path("infra", "ns_tenant_monk").is_err());
        assert!(l.tenant_path("monk", "public").is_err());
        assert!(l.tenant_path("templates", "ns_tenant_system").is_err());
        assert!(l.tenant_path("db_main", "ns_tenant_").is_err());
    }
}
