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
    /// Monk API 6: `<data>/NAME/public.db`, tenants beside it.
    Api6,
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
    /// Finds which layout the data directory holds. A directory with neither infra file gets the
    /// design layout; one the API wrote (`<data>/NAME/public.db`) is used in place.
    pub fn detect(data_dir: &Path, database_name: &str) -> Layout {
        let design = Self::design_infra(data_dir, database_name);
        let api = Self::api_infra(data_dir, database_name);
        let (kind, infra_path) = if !design.exists() && api.exists() {
            (LayoutKind::Api6, api)
        } else {
            (LayoutKind::Design, design)
        };
        Layout {
            data_dir: data_dir.to_path_buf(),
            database_name: database_name.to_string(),
            kind,
            infra_path,
        }
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

    /// Run-wide lock files live here.
    pub fn locks_dir(&self) -> PathBuf {
        self.data_dir.join("locks")
    }
}

/// Directories of the data directory that hold monkctl's own files; never a tenant's database.
pub const RESERVED_DIRS: &[&str] = &[
    "infra",
    "trash",
    "orphans",
    "templates",
    "locks",
    "snapshots",
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
        let l = Layout::detect(Path::new("/nonexistent-data"), "monk");
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
