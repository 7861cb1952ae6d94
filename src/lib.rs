//! monkctl: tenant administration for Monk API deployments (SQLite and PostgreSQL).
//!
//! `core` is the library every subcommand goes through; `cli`, `commands` and `output` are the
//! command-line front end.

pub mod cli;
pub mod commands;
pub mod core;
pub mod examples;
pub mod output;
