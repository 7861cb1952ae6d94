//! Adapters from parsed arguments to core calls, and the edge where errors become exit codes.
//!
//! No SQL and no file-system work here: each command builds a core request, calls core, and hands
//! the result to `output`. Prompts and progress bars live here because they need a terminal.

pub mod archive;
pub mod complete;
pub mod docs;
pub mod doctor;
pub mod fixture;
pub mod migrate;
pub mod query;
pub mod template;
pub mod tenant;

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};

use clap::FromArgMatches;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::{Cli, Command, Format, GlobalArgs};
use crate::core::config::{Setting, Source};
use crate::core::{self, exit, Error, Overrides, Settings, Workspace};
use crate::output::{self, Render, Table};

/// Runs monkctl with `args` and returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    crate::core::db::configure_sqlite();
    let args: Vec<OsString> = args.into_iter().collect();
    // A shell asking for completions (`MONKCTL_COMPLETE=SHELL monkctl -- WORDS`, from the
    // script `monkctl completion SHELL` prints): answered before anything else runs.
    if let Some(code) = complete::answer(&args) {
        return code;
    }
    // The maintainers' `generate-docs [--out DIR]` regenerates completions/ and man/. It is no
    // clap subcommand, so that it appears in no completion, help or typo suggestion.
    if args.get(1).is_some_and(|a| a == docs::COMMAND) {
        return match docs::run(&args[2..]) {
            Ok(code) => code,
            Err(e) => report_error(&e),
        };
    }
    let mut command = crate::cli::command();
    // Only `--version` asks SQLite about its build: no start-up work for other commands.
    if args.iter().any(|a| a == "--version") {
        command = command.long_version(&*long_version().leak());
    }
    // `--help` and `--version` are clap "errors" printed on stdout: success.
    let parse_failed = |e: clap::Error| {
        let _ = e.print();
        if e.use_stderr() {
            exit::USAGE
        } else {
            exit::SUCCESS
        }
    };
    let cli = match command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => return parse_failed(e),
    };
    // Ctrl-C: a run over several tenants finishes those in progress, starts no other and
    // reports what it did (exit 130); anything else, or a second Ctrl-C, stops at once.
    let _ = ctrlc::set_handler(|| {
        if crate::core::interrupted() || !crate::core::stoppable_running() {
            std::process::exit(exit::INTERRUPTED);
        }
        crate::core::interrupt();
        eprintln!(
            "interrupted: the tenants in progress finish and no other starts; Ctrl-C again to stop at once"
        );
    });
    let global = cli.global.clone();
    output::set_wide(global.wide);
    output::set_all_rows(global.all_rows);
    output::set_quiet(global.quiet);
    if global.verbose {
        output::set_verbose();
        match settings(&global) {
            Ok(s) => output::trace(&format!(
                "deployment: {} (from {}), data directory {} (from {})",
                crate::core::config::redact(&s.database_url.value),
                s.database_url.source,
                s.data_dir.value.display(),
                s.data_dir.source
            )),
            Err(e) => output::trace(&format!("settings: {e:#}")),
        }
    }
    let existed = settings(&global).is_ok_and(|s| s.data_dir.value.exists());
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = report_error(&e);
            // With `--format json`, a command that ends in an error before it printed its
            // result prints the error as JSON on stdout too, so a script reads one document.
            if global.format == Format::Json && code != exit::SUCCESS && !output::stdout_used() {
                println!(
                    "{}",
                    output::error_json(code, &error_message(&e), e.downcast_ref::<Error>())
                );
            }
            code
        }
    };
    let code = if crate::core::interrupted() {
        exit::INTERRUPTED
    } else {
        code
    };
    output::trace(&format!("exit {code}"));
    // A typo'd --data-dir must not start a new deployment without a word.
    if !existed {
        if let Ok(ws) = workspace(&global) {
            if ws.layout.data_dir.exists() {
                output::note(&format!(
                    "created a new data directory {}: {}",
                    ws.layout.data_dir.display(),
                    ws.layout.describe()
                ));
            }
        }
    }
    code
}

/// `--version`: monkctl's version, the bundled SQLite's, and whether this build restores over a
/// tenant by writing only the pages that differ (`sqlite_dbpage`).
fn long_version() -> String {
    let b = crate::core::db::build_info();
    format!(
        "{}\nSQLite {}\npage-level restore: {}",
        env!("CARGO_PKG_VERSION"),
        b.sqlite_version,
        if b.dbpage {
            "yes (sqlite_dbpage)"
        } else {
            "no: restore --force copies every page (a build without SQLITE_ENABLE_DBPAGE_VTAB)"
        }
    )
}

/// Prints an error on stderr and returns its exit code. A closed stdout is not an error.
/// The text of an error as `report_error` prints it, without the `error: ` prefix.
fn error_message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<Error>() {
        Some(core_err) => core_err.to_string(),
        None => format!("{e:#}"),
    }
}

pub fn report_error(e: &anyhow::Error) -> i32 {
    if let Some(io) = e.downcast_ref::<io::Error>() {
        if io.kind() == io::ErrorKind::BrokenPipe {
            return exit::SUCCESS;
        }
    }
    match e.downcast_ref::<Error>() {
        Some(core_err) => {
            eprintln!("error: {core_err}");
            core_err.exit_code()
        }
        None => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

/// What a command returns: the exit code (non-zero for partial failures already rendered).
pub type Outcome = anyhow::Result<i32>;

pub fn run(cli: Cli) -> Outcome {
    let g = &cli.global;
    match cli.command {
        Command::Completion(a) => {
            let script = complete::registration(a.shell)?;
            let mut out = output::stdout();
            output::reader_gone_is_done(out.write_all(&script).and_then(|_| out.flush()))?;
            Ok(exit::SUCCESS)
        }
        Command::Config => {
            let settings = settings(g)?;
            let ws = Workspace::new(settings)?;
            show(g.format, &ConfigView::from(&ws))
        }
        Command::Init => {
            let ws = workspace(g)?;
            show(g.format, &core::init(&ws)?)
        }
        Command::Tenant(c) => tenant::run(g, c),
        Command::Fixture(c) => fixture::run(g, c),
        Command::Template(c) => template::run(g, c),
        Command::Extract(a) => archive::extract(g, a),
        Command::Archive(c) => archive::run(g, c),
        Command::Restore(a) => archive::restore(g, a),
        Command::Doctor(a) => doctor::run(g, a),
        Command::Migrate(c) => migrate::run(g, c),
        Command::Query(a) => query::run(g, a),
    }
}

pub fn settings(g: &GlobalArgs) -> anyhow::Result<Settings> {
    settings_with(g, None)
}

/// The settings with a `--fixtures DIR` flag taken into account.
pub fn settings_with(
    g: &GlobalArgs,
    fixtures_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<Settings> {
    Ok(Settings::resolve(&Overrides {
        data_dir: g.data_dir.clone(),
        database_url: g.database_url.clone(),
        config: g.config.clone(),
        fixtures_dir,
        migrations_dir: g.migrations.clone(),
        sqlite_data_dir: g.sqlite_data_dir.clone(),
        layout: g.layout.clone(),
    })?)
}

/// The `--statement-timeout` of a command that runs fixtures or migrations on real tenants.
pub fn statement_timeout(a: &crate::cli::StatementTimeout) -> anyhow::Result<std::time::Duration> {
    let d = core::ids::parse_wait(&a.statement_timeout)
        .map_err(|e| Error::Usage(format!("--statement-timeout: {e}")))?;
    if d.is_zero() {
        return Err(Error::Usage(
            "--statement-timeout: give a limit above zero, like 500ms or 5m".into(),
        )
        .into());
    }
    Ok(d)
}

pub fn workspace(g: &GlobalArgs) -> anyhow::Result<Workspace> {
    Ok(Workspace::new(settings(g)?)?)
}

/// A monkctl command line to print for the user to run again (a `retry with:` line): the
/// global settings this run was given as flags, then `args`, each quoted for a POSIX shell, so
/// that the line runs as printed. Settings from the environment or a config file are left to
/// them, as they are where the line is pasted.
pub fn command_line(g: &GlobalArgs, args: &[String]) -> String {
    let mut words: Vec<String> = vec!["monkctl".into()];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            words.push(name.to_string());
            words.push(v);
        }
    };
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    flag("--data-dir", path(&g.data_dir));
    // The password never goes into a printed line: without it the line reads PGPASSWORD.
    flag(
        "--database-url",
        g.database_url
            .as_deref()
            .map(crate::core::config::without_password),
    );
    flag("--config", path(&g.config));
    flag("--migrations", path(&g.migrations));
    flag("--sqlite-data-dir", path(&g.sqlite_data_dir));
    words.extend(args.iter().cloned());
    words
        .iter()
        .map(|w| quoted(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A word as a POSIX shell reads it back: as it is when it holds only characters no shell
/// treats specially (tenant lists `a,b` stay readable), quoted by shlex otherwise.
fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if plain {
        return word.to_string();
    }
    shlex::try_quote(word).map_or_else(|_| word.to_string(), |q| q.into_owned())
}

/// The tenants a command was given: its NAME arguments, each `--tenant` and the names of
/// `--from-file`, each once and in name order (the order every run reports its tenants in).
pub fn picked(names: &[String], pick: &crate::cli::TenantPick) -> anyhow::Result<Vec<String>> {
    let mut all: std::collections::BTreeSet<String> =
        names.iter().chain(&pick.tenants).cloned().collect();
    if let Some(file) = &pick.from_file {
        all.extend(core::tenant::parse_name_file(file)?);
    }
    Ok(all.into_iter().collect())
}

/// Prints `value` and returns success.
pub fn show<T: Render>(format: Format, value: &T) -> Outcome {
    output::print(format, value)?;
    Ok(exit::SUCCESS)
}

/// Asks before a destructive action. On a terminal, a yes/no prompt; without one, `--yes` is
/// required and its absence is a usage error that changes nothing.
pub fn confirm(action: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !can_prompt() {
        return Err(Error::NeedsConfirmation {
            action: action.to_string(),
        }
        .into());
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(format!("{action}?"))
        .default(false)
        .interact()
        // A prompt that cannot be answered (closed, interrupted) is a no.
        .map_err(|_| Error::Cancelled)?;
    if ok {
        Ok(())
    } else {
        Err(Error::Cancelled.into())
    }
}

/// Whether a question can be asked: stdin and stderr are a terminal.
pub fn can_prompt() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// A progress bar on stderr when it is a terminal; nothing otherwise. With `--verbose`, a
/// line per step instead (`output::trace`).
#[derive(Clone)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new() -> Bar {
        Bar(
            (io::stderr().is_terminal() && !output::quiet() && !output::verbose())
                .then(ProgressBar::hidden),
        )
    }

    /// Prints a line on stderr while the bar runs, without drawing over it.
    pub fn note(&self, line: &str) {
        match &self.0 {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl core::progress::Progress for Bar {
    fn start(&self, total: u64, label: &str) {
        if output::verbose() {
            output::trace(&format!("{label}: {total} to do"));
        }
        if let Some(b) = &self.0 {
            if total < 2 {
                return;
            }
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b.set_length(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} ({eta} left) {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
        }
    }
    fn advance(&self, n: u64, item: &str) {
        if output::verbose() {
            output::trace(&format!("done: {item}"));
        }
        if let Some(b) = &self.0 {
            b.inc(n);
            b.set_message(item.to_string());
        }
    }
    fn finish(&self) {
        output::trace("run finished");
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

#[derive(Serialize)]
struct ConfigEntry {
    value: Option<String>,
    source: Source,
}

/// `monkctl config`: each effective setting with its source.
#[derive(Serialize)]
struct ConfigView {
    /// `sqlite` or `postgresql`: where the registry and the tenants live.
    backend: &'static str,
    config_file: Option<String>,
    data_dir: ConfigEntry,
    database_url: ConfigEntry,
    fixtures_dir: ConfigEntry,
    migrations_dir: ConfigEntry,
    sqlite_data_dir: ConfigEntry,
    /// The data directory's layout; `null` on PostgreSQL, where tenants are schemas.
    layout: Option<core::LayoutKind>,
    layout_source: Source,
    /// What the API needs to serve the data directory; `null` for the design layout.
    api_env: Option<std::collections::BTreeMap<String, String>>,
    infra_path: String,
    infra_exists: bool,
}

fn entry<T>(s: &Setting<T>, show: impl Fn(&T) -> Option<String>) -> ConfigEntry {
    ConfigEntry {
        value: show(&s.value),
        source: s.source.clone(),
    }
}

impl From<&Workspace> for ConfigView {
    fn from(ws: &Workspace) -> Self {
        let s = &ws.settings;
        let path = |p: &std::path::PathBuf| Some(p.display().to_string());
        ConfigView {
            backend: ws.backend.name(),
            config_file: s.config_file.as_ref().map(|p| p.display().to_string()),
            data_dir: entry(&s.data_dir, path),
            database_url: if s.database_url.source == Source::Default
                && ws.layout.database_name != s.database_name
            {
                // The one registry of the directory, found under another name.
                ConfigEntry {
                    value: Some(format!("sqlite:{}", ws.layout.database_name)),
                    source: Source::Detected,
                }
            } else {
                // A password is never printed.
                entry(&s.database_url, |v| Some(crate::core::config::redact(v)))
            },
            fixtures_dir: entry(&s.fixtures_dir, path),
            migrations_dir: entry(&s.migrations_dir, |v| {
                v.as_ref().map(|p| p.display().to_string())
            }),
            sqlite_data_dir: entry(&s.sqlite_data_dir, |v| {
                v.as_ref().map(|p| p.display().to_string())
            }),
            layout: match &ws.backend {
                core::Backend::Sqlite => Some(ws.layout.kind),
                core::Backend::Postgres(_) => None,
            },
            layout_source: match s.layout.source {
                Source::Default => Source::Detected,
                ref other => other.clone(),
            },
            api_env: match &ws.backend {
                core::Backend::Sqlite => ws.layout.api_env(),
                core::Backend::Postgres(_) => None,
            },
            infra_path: match &ws.backend {
                core::Backend::Sqlite => ws.layout.infra_path.display().to_string(),
                core::Backend::Postgres(t) => t.at(None),
            },
            infra_exists: match &ws.backend {
                core::Backend::Sqlite => ws.layout.infra_path.exists(),
                core::Backend::Postgres(t) => {
                    core::backend::postgres::Registry::open_existing(t).is_ok()
                }
            },
        }
    }
}

impl Render for ConfigView {
    fn table(&self) -> Table {
        let mut t = Table::new(vec!["setting", "value", "source"]);
        let mut add = |k: &str, e: &ConfigEntry| {
            t.rows.push(vec![
                k.into(),
                e.value.clone().unwrap_or_else(|| "(none)".into()),
                e.source.to_string(),
            ])
        };
        add(
            "backend",
            &ConfigEntry {
                value: Some(self.backend.into()),
                source: Source::Detected,
            },
        );
        add("data_dir", &self.data_dir);
        add("database_url", &self.database_url);
        add("fixtures_dir", &self.fixtures_dir);
        add("migrations_dir", &self.migrations_dir);
        if self.backend == "postgresql" {
            add("sqlite_data_dir", &self.sqlite_data_dir);
        }
        t.rows.push(vec![
            "config_file".into(),
            self.config_file.clone().unwrap_or_else(|| "(none)".into()),
            String::new(),
        ]);
        if let Some(layout) = self.layout {
            t.rows.push(vec![
                "layout".into(),
                layout.as_str().into(),
                self.layout_source.to_string(),
            ]);
        }
        if let Some(env) = &self.api_env {
            for (k, v) in env {
                t.rows.push(vec![
                    format!("api {k}"),
                    v.clone(),
                    "what the API needs".into(),
                ]);
            }
        }
        t.rows.push(vec![
            "infra_path".into(),
            self.infra_path.clone(),
            if self.infra_exists {
                "exists"
            } else {
                "missing"
            }
            .into(),
        ]);
        t
    }
}

impl Render for core::InitReport {
    fn table(&self) -> Table {
        Table::fields(vec![
            ("data_dir", self.data_dir.display().to_string()),
            (
                "layout",
                self.layout
                    .map_or("(none: tenants are PostgreSQL schemas)", |l| l.as_str())
                    .to_string(),
            ),
            ("infra_path", self.infra_path.display().to_string()),
            ("created", self.created.to_string()),
            ("infra_version", self.infra_version.to_string()),
            (
                "api_env",
                match &self.api_env {
                    Some(env) => env
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    None => "(design layout: the Monk API 6 reads only --layout api)".into(),
                },
            ),
        ])
    }
}

/// Renders a batch and turns it into the run's exit code.
pub fn show_batch<T>(format: Format, batch: &core::Batch<T>) -> Outcome
where
    core::Batch<T>: Render,
{
    output::print(format, batch)?;
    Ok(batch_errors(batch))
}

/// Names each failed tenant of a batch already printed, on stderr; returns the batch's exit code.
/// An error shared by several tenants is printed once, with the names of the others.
pub fn batch_errors<T>(batch: &core::Batch<T>) -> i32 {
    let mut errors = output::ErrorGroups::default();
    for o in batch.results.iter().filter(|o| !o.ok) {
        if let Some(line) = errors.add(&o.tenant, o.error.as_deref().unwrap_or("failed")) {
            eprintln!("{line}");
        }
    }
    for line in errors.repeats() {
        eprintln!("{line}");
    }
    if batch.failed > 0 && batch.results.len() > 1 {
        let failed: Vec<&str> = batch
            .results
            .iter()
            .filter(|o| !o.ok)
            .map(|o| o.tenant.as_str())
            .collect();
        eprintln!(
            "{} of {} failed: {}",
            batch.failed,
            batch.results.len(),
            output::some_names(&failed, " ")
        );
    }
    batch.exit_code()
}
