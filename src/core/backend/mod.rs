//! The seam between monkctl's rules and where a deployment keeps its data.
//!
//! A deployment keeps its registry (`tenants`, `tenant_fixtures`) and its tenants either in SQLite
//! files (an infra database and a file per tenant) or in one PostgreSQL database (the registry in
//! schema `public`, a schema `ns_tenant_<name>` per tenant). Each driver answers the same small
//! questions: `Store` reads the registry and runs one short write transaction
//! (`RegistryWriter`); the rest of the core (lifecycle rules, batching, exit codes, results)
//! is written once above it. The SQLite driver is `core::registry` and the file code it always
//! had; the PostgreSQL driver is `postgres`.
//!
//! Commands never ask which backend they talk to; core functions whose work differs per backend
//! (placing a tenant, measuring it, removing it) match on `Store` in one place each.

pub mod postgres;
mod tls;

use std::collections::HashMap;

use super::error::{Error, Result};
use super::registry::{FixtureRow, Registry, TenantRow};

/// Which kind of deployment `DATABASE_URL` names.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(std::sync::Arc<postgres::Target>),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }
}

/// Writes inside one open registry transaction, on either backend. The transaction is short:
/// callers do their slow work (building a tenant, copying files) outside it.
pub trait RegistryWriter {
    fn find(&self, name: &str) -> Result<Option<TenantRow>>;

    fn get(&self, name: &str) -> Result<TenantRow> {
        self.find(name)?
            .ok_or_else(|| Error::TenantNotFound(name.to_string()))
    }

    /// Whether any row already claims `<database>/<schema>`.
    fn location_claimed(&self, database: &str, schema: &str) -> Result<bool>;

    /// Inserts a new row: `TenantExists` when the name is taken.
    fn insert(&self, t: &TenantRow) -> Result<()>;

    /// Sets `status`, `is_active`, `trashed_at`, `deleted_at` and `updated_at`.
    fn update_state(&self, t: &TenantRow) -> Result<()>;

    /// Records a deployed fixture (its time updated when already recorded).
    fn record_fixture(&self, tenant_id: &str, fixture: &str, deployed_at: &str) -> Result<()>;

    fn forget_fixture(&self, tenant_id: &str, fixture: &str) -> Result<()>;

    fn set_fixture_version(&self, tenant_id: &str, fixture: &str, version: &str) -> Result<()>;

    /// Sets owner, template and `updated_at` after a tenant's content was replaced.
    fn update_content_info(&self, t: &TenantRow) -> Result<()>;

    fn clear_fixtures(&self, tenant_id: &str) -> Result<()>;
}

/// An open registry of either backend.
pub enum Store {
    Sqlite(Registry),
    Postgres(postgres::Registry),
}

impl Store {
    /// The tenant named `name`, deleted ones included.
    pub fn find(&mut self, name: &str) -> Result<Option<TenantRow>> {
        match self {
            Store::Sqlite(r) => r.find(name),
            Store::Postgres(r) => r.find(name),
        }
    }

    /// The tenant named `name`, or `TenantNotFound`.
    pub fn get(&mut self, name: &str) -> Result<TenantRow> {
        self.find(name)?
            .ok_or_else(|| Error::TenantNotFound(name.to_string()))
    }

    /// Every tenant, by name.
    pub fn all(&mut self) -> Result<Vec<TenantRow>> {
        match self {
            Store::Sqlite(r) => r.all(),
            Store::Postgres(r) => r.all(),
        }
    }

    /// Recorded fixtures of every tenant, by tenant id.
    pub fn all_fixtures(&mut self) -> Result<HashMap<String, Vec<FixtureRow>>> {
        match self {
            Store::Sqlite(r) => r.all_fixtures(),
            Store::Postgres(r) => r.all_fixtures(),
        }
    }

    /// The name of the tenant whose row has id `id`.
    pub fn name_of_id(&mut self, id: &str) -> Result<Option<String>> {
        match self {
            Store::Sqlite(r) => r.name_of_id(id),
            Store::Postgres(r) => r.name_of_id(id),
        }
    }

    pub fn fixtures_of(&mut self, tenant_id: &str) -> Result<Vec<FixtureRow>> {
        match self {
            Store::Sqlite(r) => r.fixtures_of(tenant_id),
            Store::Postgres(r) => r.fixtures_of(tenant_id),
        }
    }

    /// Makes the following commits durable before they return, for writes that files are moved
    /// after (a PostgreSQL commit always is).
    pub fn durable(&self) -> Result<()> {
        match self {
            Store::Sqlite(r) => r.durable(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Runs `f` inside one registry transaction; commits only if it returns `Ok`.
    pub fn write<T>(&mut self, f: impl FnOnce(&dyn RegistryWriter) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite(r) => r.write(|w| f(w)),
            Store::Postgres(r) => r.write(f),
        }
    }
}
