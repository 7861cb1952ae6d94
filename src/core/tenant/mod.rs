//! The tenant lifecycle: create, list, show, trash/untrash, suspend/activate, delete, purge.
//!
//! Promises: a tenant appears whole or not at all (its file is built privately, synced, then
//! linked into place while the registry's write lock is held, its directory entry synced, and its
//! row committed in that same transaction; several tenants share these steps in batches, see
//! `create_many`); a tenant's file is never destroyed by `delete` (it is moved to the trash);
//! only `purge` removes files, and only deleted tenants' trash past a retention.
//!
//! The parts: `create` (specs, recipes, the run over both backends), `batch` (SQLite files built
//! in parallel and registered together, or one at a time), `view` (`list`, `show`), `lifecycle`
//! (state changes, delete, undelete) and `purge`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::backend::RegistryWriter;
use super::db;
use super::error::{Context, Error, Result};
use super::fixture;
use super::fsutil;
use super::ids;
use super::layout::Layout;
use super::migrate::MigrationSet;
use super::names;
use super::progress::Progress;
use super::registry::{DeployedFixture, FixtureRow, Registry, TenantRow, Writer};
use super::system;
use super::{Backend, Batch, Store, Workspace};

mod batch;
mod create;
mod lifecycle;
mod purge;
mod view;

pub use batch::*;
pub use create::*;
pub use lifecycle::*;
pub use purge::*;
pub use view::*;
