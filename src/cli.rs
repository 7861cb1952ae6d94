//! The command-line interface: clap types only. Doc comments are the help text, and the source of
//! the completions in `completions/` and the man pages in `man/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::complete::{self, Fixtures, Templates, Tenants};

const SETTINGS_HELP: &str = "\
Settings come from flags, then the environment (MONK_DATA_DIR, DATABASE_URL, MONK_CONFIG, \
MONK_MIGRATIONS_DIR, MONK_LAYOUT), then the config file (--config, ./monk.toml, or the user's \
config directory), then the defaults (./.data, sqlite:monk, or the one registry the data \
directory holds). `monkctl config` shows the effective ones.";

/// The whole command-line definition, with each command's examples (`crate::examples`) under
/// its help, and the exit codes from their one table (`core::error::CODES`) under the top-level
/// help: what parsing, `--help` and completions use.
pub fn command() -> clap::Command {
    with_examples(definition(), "")
}

/// The definition without the examples, which man pages show in a section of their own.
pub fn definition() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().after_help(top_extra())
}

/// What the top-level help ends with: the exit codes and where settings come from.
fn top_extra() -> String {
    format!("{}\n\n{SETTINGS_HELP}", crate::core::error::codes_help())
}

/// `cmd` (at `path` below `monkctl`) and its subcommands, each with its examples after its help.
fn with_examples(mut cmd: clap::Command, path: &str) -> clap::Command {
    if let Some(e) = crate::examples::of(path) {
        let text = crate::examples::help_text(e);
        cmd = cmd.after_help(if path.is_empty() {
            format!("{text}\n\n{}", top_extra())
        } else {
            text
        });
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subs {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |s| with_examples(s, &sub_path));
    }
    cmd
}

/// Administer the tenants of a Monk API deployment, SQLite or PostgreSQL: the tenant registry and
/// every tenant's database file or schema, with the API running or not.
#[derive(Debug, Parser)]
#[command(name = "monkctl", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Data directory holding the infra database and tenant files (on PostgreSQL: monkctl's own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The deployment as the API reads it: sqlite:NAME, or postgresql://USER@HOST[:PORT]/DB
    /// (a password as USER:PASSWORD or in PGPASSWORD is never printed; TLS with
    /// ?sslmode=require or ?sslmode=verify-full&sslrootcert=FILE) [env: DATABASE_URL]
    /// [default: sqlite:monk]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of
    /// the deployment, read by every command that creates, judges or changes a tenant's schema
    /// [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]
    #[arg(long, global = true, value_name = "DIR")]
    pub migrations: Option<PathBuf>,

    /// On PostgreSQL: where the API keeps the files of the registry's SQLite tenants (its
    /// SQLITE_DATA_DIR; a tenant's file is <DIR>/<tenants.database>/<tenants.schema>.db);
    /// without it those tenants are listed but not opened [env: SQLITE_DATA_DIR]
    /// [config: sqlite_data_dir]
    #[arg(long, global = true, value_name = "DIR")]
    pub sqlite_data_dir: Option<PathBuf>,

    /// Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api
    /// (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the
    /// directory when not given, and the design layout for a new one [env: MONK_LAYOUT]
    /// [config: layout]
    #[arg(long, global = true, value_name = "LAYOUT", value_parser = ["design", "api"])]
    pub layout: Option<String>,

    /// Do not ask for confirmation: destructive commands need it without a terminal; commands
    /// that never ask accept it
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Output format: table for people, json and csv for scripts
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Tables: every column (by default, wide listings show the columns that fit 80 columns;
    /// JSON and CSV always have every field)
    #[arg(long, global = true)]
    pub wide: bool,
    /// Tables of a run over more than 50 tenants: list every tenant (by default such a table
    /// prints its summary first and lists only the tenants that need attention, identical rows
    /// grouped)
    #[arg(long, global = true)]
    pub all_rows: bool,
    /// Data only: no summary lines under tables, no notes, no progress bars (errors still go
    /// to stderr, and the exit code is the same)
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    /// What each step does, with timings, on stderr: the deployment used, each tenant of a run
    /// as it is done (milliseconds since the start), the exit code and the total time
    #[arg(long, short = 'v', global = true, conflicts_with = "quiet")]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory and the infra database (idempotent)
    Init,

    /// Show the effective settings and where each came from
    Config,

    /// Create, list, inspect and retire tenants
    #[command(subcommand)]
    Tenant(TenantCommand),

    /// Seed tenants with fixtures: named, versioned bundles of SQL, CSV and JSONL files
    #[command(subcommand)]
    Fixture(FixtureCommand),

    /// Prebuilt tenant databases that new tenants are cloned from
    #[command(subcommand)]
    Template(TemplateCommand),

    /// Write tenants to portable archives: one SQLite file each, readable by any sqlite3 (what
    /// interrupted extracts left in the output directory is removed first)
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Live))))]
    Extract(ExtractArgs),

    /// Look into and check archive files
    #[command(subcommand)]
    Archive(ArchiveCommand),

    /// Restore a tenant from an archive: as a new tenant, or over an existing one with --force
    Restore(RestoreArgs),

    /// Check the data directory and every tenant file (or only the tenants chosen with --tenant
    /// or --from-file, without the data-directory checks); repair what is safe with --repair
    Doctor(DoctorArgs),

    /// Schema migrations of the infra database and every tenant database
    Migrate(MigrateArgs),

    /// Run one read-only SQL statement in every selected tenant, in parallel; rows stream in
    /// tenant order with a leading `tenant` column (SQLite files or PostgreSQL schemas)
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Live))))]
    Query(QueryArgs),

    /// Print the shell code that completes monkctl: `source <(monkctl completion bash)`
    ///
    /// At each Tab the shell asks monkctl itself (`MONKCTL_COMPLETE=SHELL monkctl -- WORDS`),
    /// which answers with its commands and options and with the names of the deployment the
    /// line points at (--data-dir, --database-url, --config, then the environment and the
    /// config file, as the command resolves them): the tenants the command accepts (`tenant
    /// untrash` offers trashed ones, `tenant undelete` deleted ones), fixtures, templates, and
    /// *.monk.db archives. Completing only reads: it creates nothing, prints no error, and
    /// gives up on the names after 1.5 s (a PostgreSQL server that does not answer).
    ///
    /// bash: `source <(monkctl completion bash)` in ~/.bashrc. zsh: `source <(monkctl
    /// completion zsh)` in ~/.zshrc after compinit, or the output saved as _monkctl in a
    /// directory of $fpath. fish: `monkctl completion fish | source`, or the output saved as
    /// ~/.config/fish/completions/monkctl.fish. PowerShell and elvish too.
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create tenants: a database file the API serves, then the registry row
    Create(CreateArgs),
    /// List tenants (trashed and deleted ones only on request)
    List(ListArgs),
    /// Show a tenant's row, file, tables and fixtures (several: one row each)
    #[command(mut_arg("names", |a| a.add(complete::tenants(Tenants::Any))))]
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Any))))]
    Show(NamesArg),
    /// Move a tenant to the trash: the API refuses it at once (reversible with untrash)
    #[command(mut_arg("names", |a| a.add(complete::tenants(Tenants::Untrashed))))]
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Untrashed))))]
    Trash(NamesArg),
    /// Take a tenant out of the trash
    #[command(mut_arg("names", |a| a.add(complete::tenants(Tenants::Trashed))))]
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Trashed))))]
    Untrash(NamesArg),
    /// Suspend a tenant: the API refuses logins and requests at once
    #[command(mut_arg("names", |a| a.add(complete::tenants(Tenants::Unsuspended))))]
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Unsuspended))))]
    Suspend(NamesArg),
    /// Make a suspended or pending tenant active
    #[command(mut_arg("names", |a| a.add(complete::tenants(Tenants::Inactive))))]
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Inactive))))]
    Activate(NamesArg),
    /// Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Live))))]
    Delete(DeleteArgs),
    /// Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)
    #[command(mut_arg("names", |a| a.add(complete::tenants(Tenants::Deleted))))]
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Deleted))))]
    Undelete(NamesArg),
    /// Remove the trashed files of tenants deleted longer ago than a retention
    Purge(PurgeArgs),
    /// Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Live))))]
    Vacuum(VacuumArgs),
    /// Show per tenant the file and WAL size, pages, free pages, rows per table, last change
    Usage(UsageArgs),
    /// Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps
    /// in <data>/copies/; the source is left as it was
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The tenant to copy
    #[arg(value_name = "NAME", add = complete::tenants(Tenants::Live))]
    pub name: String,

    /// The target deployment's URL: `sqlite:NAME` (with --to-data-dir) or
    /// `postgresql://...` (a password is better given in PGPASSWORD)
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// The target deployment's data directory [default: this one's]
    #[arg(long, value_name = "DIR")]
    pub to_data_dir: Option<PathBuf>,

    /// The name in the target deployment [default: the same name]
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
}

/// The tenants a command works on, beside its NAME arguments: the same two flags on every
/// command that takes several tenants (with `--all` where the command has one).
#[derive(Debug, Clone, Default, Args)]
pub struct TenantPick {
    /// Tenants (repeatable, or comma-separated: --tenant a,b), with any NAME given
    #[arg(
        long = "tenant",
        value_name = "NAME",
        value_delimiter = ',',
        add = complete::tenants(Tenants::Any)
    )]
    pub tenants: Vec<String>,

    /// Tenants listed in a file, one a line (its first word: `tenant create --from-file` files
    /// work; # comments); `-` reads standard input
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check only these tenants (then the data-directory checks are skipped)
    #[command(flatten)]
    pub pick: TenantPick,

    /// Run integrity_check and foreign_key_check instead of quick_check (slower)
    #[arg(long)]
    pub full: bool,

    /// Repair what is safe (temp leftovers, stale locks, orphans to <data>/orphans/, WAL
    /// checkpoints, permissions, unrecorded fixtures), list each action, then check again
    #[arg(long)]
    pub repair: bool,

    /// Tenant files checked at once, at least 1 [default: one per core, at most 4]
    #[arg(long, short = 'j', value_name = "N", value_parser = jobs)]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Tenants to vacuum
    #[arg(
        value_name = "TENANT",
        required_unless_present_any = ["all", "tenants", "from_file"],
        add = complete::tenants(Tenants::Live)
    )]
    pub names: Vec<String>,

    #[command(flatten)]
    pub pick: TenantPick,

    /// Vacuum every tenant that is not deleted
    #[arg(long, conflicts_with_all = ["names", "tenants", "from_file"])]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageSortBy {
    Name,
    Size,
    Wal,
    Rows,
    Free,
    Changed,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only these tenants (every live, untrashed tenant when none is given)
    #[arg(value_name = "TENANT", add = complete::tenants(Tenants::Any))]
    pub names: Vec<String>,

    #[command(flatten)]
    pub pick: TenantPick,

    /// Include trashed and deleted tenants (a deleted tenant's file is read in the trash)
    #[arg(long, short = 'a', conflicts_with_all = ["names", "tenants", "from_file"])]
    pub all: bool,

    /// Sort key: name ascending; size, wal, rows, free and changed largest or newest first
    #[arg(long, value_enum, default_value_t = UsageSortBy::Name)]
    pub sort: UsageSortBy,

    /// Reverse the order
    #[arg(long, short = 'r')]
    pub reverse: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Names of the tenants to create: a-z first, then a-z, 0-9, _; 2 to 53 characters
    #[arg(value_name = "NAME", required_unless_present = "from_file")]
    pub names: Vec<String>,

    /// Owner user of the new tenants (the API's root user when not given)
    #[arg(long, value_name = "USER", default_value = "root")]
    pub owner: String,

    /// Description stored in the registry
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    /// Read tenants from a file: one `NAME [OWNER [DESCRIPTION]]` a line, # comments; `-`
    /// reads standard input
    #[arg(long, value_name = "FILE", conflicts_with = "names")]
    pub from_file: Option<PathBuf>,

    /// Deploy this fixture (and its dependencies) at creation (repeatable)
    #[arg(long = "fixture", value_name = "NAME", add = complete::fixtures(Fixtures::Deployable))]
    pub fixtures: Vec<String>,

    /// Clone this template instead of executing the schema (`system` is built in)
    #[arg(long, value_name = "NAME", add = complete::templates(Templates::WithSystem))]
    pub template: Option<String>,

    /// A tenant that exists already is left as it is and counts as done (exit 0), so that a
    /// provisioning script can be run again after an interruption
    #[arg(long)]
    pub skip_existing: bool,

    /// What the new tenants are: `sqlite` makes SQLite files even on a PostgreSQL deployment
    /// (under --sqlite-data-dir, registered with db_type 'sqlite', which the API serves from its
    /// SQLITE_DATA_DIR) [default: the deployment's own kind]
    #[arg(long, value_name = "KIND", value_parser = ["sqlite", "postgresql"])]
    pub db_type: Option<String>,

    #[command(flatten)]
    pub dir: FixturesDir,

    #[command(flatten)]
    pub limit: StatementTimeout,
}

/// The time limit of each fixture or migration statement on a real tenant.
#[derive(Debug, Clone, Args)]
pub struct StatementTimeout {
    /// Stop a fixture or migration statement that runs longer than this (a number and a unit: ms, s, m; at most 1h); its tenant is rolled back (exit 20)
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub statement_timeout: String,
}

/// Where fixture directories are read from.
#[derive(Debug, Clone, Args)]
pub struct FixturesDir {
    /// Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]
    #[arg(long = "fixtures", value_name = "DIR")]
    pub fixtures_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum FixtureCommand {
    /// List the built-in and directory fixtures with version, dependencies and source
    List(FixturesDir),
    /// Show a fixture's manifest, files and the tables they touch
    Show(FixtureShowArgs),
    /// Check fixtures against a scratch tenant in memory; creates no file anywhere
    Check(FixtureCheckArgs),
    /// Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that
    /// also records them in the tenant file; a deploy interrupted before the registry recorded
    /// them is finished by running it again
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Live))))]
    Deploy(DeployArgs),
    /// Show what a tenant has deployed, when, and at which version
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct FixtureShowArgs {
    /// Fixture name
    #[arg(value_name = "NAME", add = complete::fixtures(Fixtures::All))]
    pub name: String,
    #[command(flatten)]
    pub dir: FixturesDir,
}

#[derive(Debug, Args)]
pub struct FixtureCheckArgs {
    /// Fixture to check with its dependencies (every fixture when not given)
    #[arg(value_name = "NAME", add = complete::fixtures(Fixtures::All))]
    pub name: Option<String>,
    #[command(flatten)]
    pub dir: FixturesDir,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Fixtures to deploy
    #[arg(value_name = "NAME", required = true, add = complete::fixtures(Fixtures::Deployable))]
    pub names: Vec<String>,

    /// Tenants to deploy to (--tenant, --from-file or --all)
    #[command(flatten)]
    pub pick: TenantPick,

    /// Every active tenant that is neither trashed nor deleted
    #[arg(
        long,
        conflicts_with_all = ["tenants", "from_file"],
        required_unless_present_any = ["tenants", "from_file"]
    )]
    pub all: bool,

    /// Deploy the named fixtures again even where they are recorded as deployed
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub dir: FixturesDir,

    #[command(flatten)]
    pub limit: StatementTimeout,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Tenant name
    #[arg(long = "tenant", value_name = "TENANT", add = complete::tenants(Tenants::Any))]
    pub tenant: String,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)
    Build(TemplateBuildArgs),
    /// List templates with what they hold
    List,
    /// Show a template's metadata and verify its checksum
    Show(TemplateNameArg),
    /// Remove a template (tenants cloned from it are not affected)
    Rm(TemplateRmArgs),
}

#[derive(Debug, Args)]
pub struct TemplateBuildArgs {
    /// Template name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Fixture to include, with its dependencies (repeatable)
    #[arg(long = "fixture", value_name = "FIXTURE", add = complete::fixtures(Fixtures::Deployable))]
    pub fixtures: Vec<String>,

    #[command(flatten)]
    pub dir: FixturesDir,

    #[command(flatten)]
    pub limit: StatementTimeout,
}

#[derive(Debug, Args)]
pub struct TemplateNameArg {
    /// Template name
    #[arg(value_name = "NAME", add = complete::templates(Templates::Built))]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TemplateRmArgs {
    /// Template name
    #[arg(value_name = "NAME", add = complete::templates(Templates::Built))]
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    Name,
    Created,
    Status,
    Size,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Pending,
    Active,
    Suspended,
    Dissolving,
    Deleted,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tenants with this status (repeatable)
    #[arg(long, value_enum, value_name = "STATUS")]
    pub status: Vec<Status>,

    /// Include trashed tenants
    #[arg(long)]
    pub trashed: bool,

    /// Include deleted tenants
    #[arg(long)]
    pub deleted: bool,

    /// Include trashed and deleted tenants
    #[arg(long, short = 'a')]
    pub all: bool,

    /// Sort key
    #[arg(long, value_enum, default_value_t = SortBy::Name)]
    pub sort: SortBy,

    /// Reverse the order
    #[arg(long, short = 'r')]
    pub reverse: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Tenant names (several: one confirmation for all, each reported, exit 8 when some failed)
    #[arg(
        value_name = "NAME",
        required_unless_present_any = ["tenants", "from_file"],
        add = complete::tenants(Tenants::Live)
    )]
    pub names: Vec<String>,

    #[command(flatten)]
    pub pick: TenantPick,
}

#[derive(Debug, Args)]
pub struct NamesArg {
    /// Tenant names (several: each reported in a batch, exit 8 when some failed; one: the
    /// tenant's result alone)
    #[arg(
        value_name = "NAME",
        required_unless_present_any = ["tenants", "from_file"],
        add = complete::tenants(Tenants::Live)
    )]
    pub names: Vec<String>,

    #[command(flatten)]
    pub pick: TenantPick,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Retention: purge tenants deleted longer ago than this (a number and a unit: ms, s, m, h, d, w)
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub older_than: String,

    /// Show what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Tenants to extract
    #[arg(
        value_name = "TENANT",
        required_unless_present_any = ["all", "tenants", "from_file"],
        conflicts_with = "all",
        add = complete::tenants(Tenants::Live)
    )]
    pub names: Vec<String>,

    #[command(flatten)]
    pub pick: TenantPick,

    /// Extract every tenant that is not deleted, and a copy of the infra registry (needs -o DIR)
    #[arg(long, requires = "output", conflicts_with_all = ["tenants", "from_file"])]
    pub all: bool,

    /// Output file (one tenant) or directory (one that exists, a path ending in `/`, or for
    /// several tenants; made when missing) [default: <TENANT>-<UTC time>.monk.db here]
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,

    /// Tenants extracted at once, at least 1 [default: one per core, at most 4]
    #[arg(long, short = 'j', value_name = "N", value_parser = jobs)]
    pub jobs: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Show an archive's metadata, tables and row counts, without changing it
    Inspect(FileArg),
    /// Check an archive: SQLite integrity, metadata, row counts and content checksum
    Verify(FileArg),
    /// List the archives (*.monk.db) in a directory: tenant, time, size, versions
    List(ListArchivesArgs),
}

#[derive(Debug, Args)]
pub struct ListArchivesArgs {
    /// Directory holding archives
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Verify each archive fully, as `archive verify` does (reads every page)
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// Archive file (made by `monkctl extract`)
    #[arg(value_name = "FILE", add = complete::archives())]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Archive file (made by `monkctl extract`)
    #[arg(value_name = "FILE", add = complete::archives())]
    pub file: PathBuf,

    /// Restore under this name (a new tenant id) instead of the archived tenant's name
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,

    /// Replace the content of an existing tenant (its current database is saved to the trash
    /// first; writes to it wait until the new content is in place)
    #[arg(long)]
    pub force: bool,

    /// Bring an older schema up to date after restoring (`migrate up` for this tenant; destructive
    /// migrations are left to `migrate up --allow-destructive`)
    #[arg(long)]
    pub migrate: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: MigrateCommand,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Applied version, pending, diverged and missing migrations of each database
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Migratable))))]
    Status(MigrateSelect),
    /// What `up` would run where, flagging destructive statements; writes nothing
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Migratable))))]
    Plan(MigrateSelect),
    /// Migrate the infra database, then the tenants in parallel, each in one transaction
    #[command(mut_arg("tenants", |a| a.add(complete::tenants(Tenants::Migratable))))]
    Up(UpArgs),
    /// Restore the snapshots of the last run that took any (tenants changed since are skipped);
    /// an interrupted undo is finished by running it again
    Undo(UndoArgs),
    /// List and prune the snapshots taken before destructive migrations
    #[command(subcommand)]
    Snapshots(SnapshotsCommand),
}

#[derive(Debug, Clone, Args)]
pub struct MigrateSelect {
    /// Only these tenants (every one that can be migrated when none is given)
    #[command(flatten)]
    pub pick: TenantPick,

    /// Include trashed tenants (deleted tenants are never migrated)
    #[arg(long)]
    pub include_trashed: bool,

    /// Stop at this version instead of the latest
    #[arg(long, value_name = "N")]
    pub target: Option<i64>,

    /// Tenants handled at once, at least 1 [default: four per core, at most 64]
    #[arg(long, short = 'j', value_name = "N", value_parser = jobs)]
    pub jobs: Option<usize>,

    /// How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_BUSY_TIMEOUT)]
    pub busy_timeout: String,
}

/// `--busy-timeout` when not given.
pub const DEFAULT_BUSY_TIMEOUT: &str = "5s";

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub select: MigrateSelect,

    /// Show the plan instead of migrating (same as `migrate plan`)
    #[arg(long)]
    pub dry_run: bool,

    /// Start no new tenant after the first failure
    #[arg(long)]
    pub fail_fast: bool,

    /// Allow migrations that drop or rewrite data; each such tenant is snapshotted first
    #[arg(long)]
    pub allow_destructive: bool,

    #[command(flatten)]
    pub limit: StatementTimeout,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub busy_timeout: String,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotsCommand {
    /// Runs that took snapshots, newest first
    List,
    /// Remove old runs' snapshots
    Prune(PruneSnapshotsArgs),
}

#[derive(Debug, Args)]
pub struct PruneSnapshotsArgs {
    /// Keep the newest N runs
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// Remove runs older than this (a number and a unit: ms, s, m, h, d, w)
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The statement (one SELECT, or a read-only PRAGMA from the allowlist); with --file, this
    /// is the first tenant name
    #[arg(
        value_name = "SQL",
        required_unless_present = "file",
        add = complete::tenants(Tenants::QueryFile)
    )]
    pub sql: Option<String>,

    /// Tenants to query (or --tenant, or --all)
    #[arg(value_name = "NAME", add = complete::tenants(Tenants::Live))]
    pub names: Vec<String>,

    /// Read the statement from this file (UTF-8, one statement)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub pick: TenantPick,

    /// Query every tenant that is not deleted (trashed ones included)
    #[arg(long, conflicts_with_all = ["names", "tenants", "from_file"])]
    pub all: bool,

    /// Only tenants with this status (active, suspended, pending...); alone, every such tenant
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,

    /// Tenants queried at once, at least 1 [default: four per core, at most 64]
    #[arg(long, short = 'j', value_name = "N", value_parser = jobs)]
    pub jobs: Option<usize>,

    /// Stop the statement in a tenant that runs longer than this (a number and a unit: ms, s, m; at most 1h); that tenant fails with exit 20
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub timeout: String,

    /// A value for the next `?` placeholder, bound as text (repeatable, in order)
    #[arg(long = "param", value_name = "VALUE")]
    pub params: Vec<String>,

    /// One row per tenant instead of the rows: tenant, rows, ms, error, exit_code
    #[arg(long)]
    pub summary: bool,
}

/// `--jobs N`, the same on every command that works on several tenants at once: a whole number
/// of at least 1 (0 is refused rather than read as "all cores" or "one"); the default depends on
/// the kind of work (`core::pool::default_jobs`).
fn jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("give at least 1 (leave --jobs out for the default)".into()),
        Ok(n) if n > 1024 => Err(format!("{n} is more than the 1024 allowed")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}
