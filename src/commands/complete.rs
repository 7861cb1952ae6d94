//! Shell completion by the binary itself: `monkctl completion SHELL` prints a few lines of shell
//! code that, at each Tab, run `MONKCTL_COMPLETE=SHELL monkctl -- WORDS...`, and this module
//! answers with the candidates (clap_complete's dynamic engine).
//!
//! Why dynamic and not the static scripts clap_complete can also write: only the binary knows
//! the names of the deployment the command line points at (its tenants, fixtures, templates),
//! and the shell code stays a few lines that cannot go stale against the commands and options,
//! which come from the same binary at each Tab. The price is a process per Tab; answering takes
//! milliseconds on SQLite.
//!
//! What completing may do: resolve the settings as the real command would (flags on the line,
//! the environment, the config file) and read the registry, the fixtures directory and the
//! templates directory, read-only; never create or change anything (no data directory, no
//! registry), never print an error and never take longer than `BUDGET` (a PostgreSQL server
//! that does not answer gives no names, not a hung shell).

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap_complete::engine::{
    ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter,
};
use clap_complete::env::{CompleteEnv, Shells};

use crate::core::registry::TenantRow;
use crate::core::{exit, Overrides, Settings, Workspace};

/// The environment variable that turns a run into a completion request (its value is the
/// shell). monkctl's own name, not clap's usual `COMPLETE`, so that a `COMPLETE` exported for
/// another program never turns a monkctl command into a completion request.
pub const VAR: &str = "MONKCTL_COMPLETE";

/// The longest a completion request waits for names (a PostgreSQL connection, a busy
/// registry); after it, the names are left out and the rest (commands, options) still offered.
const BUDGET: Duration = Duration::from_millis(1500);

/// The words of the command line being completed (after `--`; the first is the program).
static WORDS: OnceLock<Vec<String>> = OnceLock::new();

/// Answers a completion request when `VAR` is set: the candidates for the words after `--`, or
/// without words the registration script. Returns the exit code, or `None` for an ordinary run.
pub fn answer(args: &[OsString]) -> Option<i32> {
    let shell = std::env::var_os(VAR)?;
    if shell.is_empty() || shell == "0" {
        return None;
    }
    let words: Vec<String> = args
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let completing = !words.is_empty();
    if completing {
        // Whatever goes wrong while completing must not land on the user's command line.
        std::panic::set_hook(Box::new(|_| {}));
    }
    let _ = WORDS.set(words);
    let cwd = std::env::current_dir().ok();
    let done = CompleteEnv::with_factory(crate::cli::command)
        .var(VAR)
        .bin("monkctl")
        .try_complete(args.iter().cloned(), cwd.as_deref());
    match done {
        Ok(true) => Some(exit::SUCCESS),
        Ok(false) => None,
        Err(e) => {
            if !completing {
                let _ = e.print();
            }
            Some(exit::USAGE)
        }
    }
}

/// `monkctl completion SHELL`: the registration script `MONKCTL_COMPLETE=SHELL monkctl` prints,
/// calling this program by the name it was run as (a path when run by path), so that the
/// script and the protocol come from one binary. See `script`.
pub fn registration(shell: clap_complete::Shell) -> std::io::Result<Vec<u8>> {
    let program = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("monkctl"));
    let program = if program.components().count() > 1 {
        std::path::absolute(&program).unwrap_or(program)
    } else {
        program
    };
    script(shell, &program.to_string_lossy())
}

/// The registration script for `shell` that runs `program` to complete `monkctl`. For zsh, the
/// script also works as an autoloaded `_monkctl` file of `$fpath` (the committed
/// `completions/_monkctl`): loaded on the first Tab, it completes that Tab too.
pub fn script(shell: clap_complete::Shell, program: &str) -> std::io::Result<Vec<u8>> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let Some(env) = shells.completer(&name) else {
        return Err(std::io::Error::other(format!(
            "no dynamic completion for {name}"
        )));
    };
    let mut out = Vec::new();
    env.write_registration(VAR, "monkctl", "monkctl", program, &mut out)?;
    if shell == clap_complete::Shell::Zsh {
        out.extend_from_slice(ZSH_AUTOLOADED.as_bytes());
    }
    Ok(out)
}

/// Appended to the zsh script: autoloaded from `$fpath` as `_monkctl` on the first Tab, the file
/// runs as that function, which defines the completer and registers it for the next Tab; this
/// completes the first one too. Sourced, it does nothing (`funcstack` is empty).
const ZSH_AUTOLOADED: &str = concat!(
    "if [ \"${funcstack[1]}\" = \"_monkctl\" ]; then\n",
    "    _clap_dynamic_completer_monkctl \"$@\"\n",
    "fi\n",
);

/// Which tenants a name argument offers: those the command accepts and would act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenants {
    /// Every tenant, deleted ones included (`tenant show`, `doctor --tenant`, ...).
    Any,
    /// Tenants that are not deleted.
    Live,
    /// Not deleted and not in the trash (`tenant trash`).
    Untrashed,
    /// In the trash and not deleted (`tenant untrash`).
    Trashed,
    /// Not deleted and not suspended (`tenant suspend`).
    Unsuspended,
    /// Not deleted and not active (`tenant activate`).
    Inactive,
    /// Deleted (`tenant undelete`).
    Deleted,
    /// What `migrate` takes: not deleted, and not trashed unless `--include-trashed` is given.
    Migratable,
    /// `query`'s first positional, a tenant name only with `--file`: live tenants then.
    QueryFile,
}

impl Tenants {
    fn wants(self, t: &TenantRow, words: &[String]) -> bool {
        let live = !t.is_deleted();
        match self {
            Tenants::Any => true,
            Tenants::Live => live,
            Tenants::Untrashed => live && !t.is_trashed(),
            Tenants::Trashed => live && t.is_trashed(),
            Tenants::Unsuspended => live && t.status != "suspended",
            Tenants::Inactive => live && t.status != "active",
            Tenants::Deleted => !live,
            Tenants::Migratable => live && (!t.is_trashed() || given(words, "--include-trashed")),
            Tenants::QueryFile => live,
        }
    }
}

impl ValueCompleter for Tenants {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let words = words();
        if *self == Tenants::QueryFile && !given(words, "--file") {
            return Vec::new();
        }
        let Some(current) = current.to_str() else {
            return Vec::new();
        };
        let Some(rows) = bounded(move || tenant_rows(words)) else {
            return Vec::new();
        };
        let named = named_elsewhere(words, current);
        let want = *self;
        rows.into_iter()
            .filter(|t| t.name.starts_with(current) && want.wants(t, words))
            .filter(|t| !named.contains(&t.name))
            .map(|t| CompletionCandidate::new(t.name.clone()).help(Some(state(&t).into())))
            .collect()
    }
}

/// A tenant's state in a few words: its status, and `trashed` when it is in the trash.
fn state(t: &TenantRow) -> String {
    if t.is_trashed() && !t.is_deleted() {
        format!("{}, trashed", t.status)
    } else {
        t.status.clone()
    }
}

/// Which fixtures a fixture argument offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixtures {
    /// The built-in `system` and every fixture of the directory (`fixture show`, `check`).
    All,
    /// The directory's fixtures: what deploying can add (every tenant holds `system`).
    Deployable,
}

impl ValueCompleter for Fixtures {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let Some(current) = current.to_str() else {
            return Vec::new();
        };
        let words = words();
        let Some(listed) = bounded(move || {
            let settings = settings(words).ok()?;
            crate::core::fixture::list(&settings.fixtures_dir.value).ok()
        }) else {
            return Vec::new();
        };
        let named = named_elsewhere(words, current);
        listed
            .into_iter()
            .filter(|f| f.name.starts_with(current) && f.error.is_none())
            .filter(|f| *self == Fixtures::All || f.name != crate::core::fixture::SYSTEM)
            .filter(|f| !named.contains(&f.name))
            .map(|f| {
                let help = f.description.or(f.version).map(Into::into);
                CompletionCandidate::new(f.name).help(help)
            })
            .collect()
    }
}

/// Which templates a template argument offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Templates {
    /// The templates of `<data>/templates/` (`template show`, `template rm`).
    Built,
    /// Those and the built-in `system` (`tenant create --template`).
    WithSystem,
}

impl ValueCompleter for Templates {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let Some(current) = current.to_str() else {
            return Vec::new();
        };
        let words = words();
        let mut names = bounded(move || {
            let ws = Workspace::new(settings(words).ok()?).ok()?;
            let list = crate::core::template::list(&ws).ok()?;
            Some(list.into_iter().map(|t| t.name).collect::<Vec<_>>())
        })
        .unwrap_or_default();
        if *self == Templates::WithSystem {
            names.insert(0, crate::core::template::SYSTEM.to_string());
        }
        names
            .into_iter()
            .filter(|n| n.starts_with(current))
            .map(CompletionCandidate::new)
            .collect()
    }
}

/// A tenant name argument's completer (see `Tenants`).
pub fn tenants(which: Tenants) -> ArgValueCompleter {
    ArgValueCompleter::new(which)
}

/// A fixture name argument's completer (see `Fixtures`).
pub fn fixtures(which: Fixtures) -> ArgValueCompleter {
    ArgValueCompleter::new(which)
}

/// A template name argument's completer (see `Templates`).
pub fn templates(which: Templates) -> ArgValueCompleter {
    ArgValueCompleter::new(which)
}

/// An archive file argument's completer: `*.monk.db` files, and directories to go into.
pub fn archives() -> ArgValueCompleter {
    ArgValueCompleter::new(PathCompleter::any().filter(|p| {
        p.is_file()
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(crate::core::archive::SUFFIX))
    }))
}

fn words() -> &'static [String] {
    WORDS.get().map_or(&[], Vec::as_slice)
}

/// Runs `f` on a thread of its own and waits for it at most `BUDGET`: a slow answer is no
/// answer (the thread is left behind; the process ends as soon as the candidates are out).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> Option<T> + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("complete".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    rx.recv_timeout(BUDGET).ok().flatten()
}

/// Every tenant row of the registry the line points at, read as `tenant list` reads it: without
/// creating anything (`Workspace::store` opens an existing registry only).
fn tenant_rows(words: &[String]) -> Option<Vec<TenantRow>> {
    let ws = Workspace::new(settings(words).ok()?).ok()?;
    ws.store().ok()?.all().ok()
}

/// The settings the command on the line would run with: its flags, then the environment and
/// the config file, as `commands::settings_with` resolves them.
fn settings(words: &[String]) -> anyhow::Result<Settings> {
    let path = |long: &str| flag(words, long).map(PathBuf::from);
    Ok(Settings::resolve(&Overrides {
        data_dir: path("--data-dir"),
        database_url: flag(words, "--database-url"),
        config: path("--config"),
        fixtures_dir: path("--fixtures"),
        migrations_dir: path("--migrations"),
        sqlite_data_dir: path("--sqlite-data-dir"),
        layout: flag(words, "--layout"),
    })?)
}

/// The value of the last `--long VALUE` or `--long=VALUE` before a `--` (as clap takes it: the
/// last one wins), as the shell will hand it over: quotes removed, a leading `~` expanded.
fn flag(words: &[String], long: &str) -> Option<String> {
    let mut found = None;
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        if w == "--" {
            break;
        }
        if w == long {
            found = it.next().cloned();
        } else if let Some(v) = w.strip_prefix(long).and_then(|r| r.strip_prefix('=')) {
            found = Some(v.to_string());
        }
    }
    found.map(|v| shell_word(&v))
}

/// Whether `--long` is on the line (before a `--`).
fn given(words: &[String], long: &str) -> bool {
    words
        .iter()
        .skip(1)
        .take_while(|w| *w != "--")
        .any(|w| w == long || w.strip_prefix(long).is_some_and(|r| r.starts_with('=')))
}

/// A word as the shell passes it to the program: bash and zsh hand completion the words as
/// typed, quotes and `~` included.
fn shell_word(w: &str) -> String {
    let unquoted = if w.contains(['\'', '"', '\\']) {
        match shlex::split(w).as_deref() {
            Some([one]) => one.clone(),
            _ => w.to_string(),
        }
    } else {
        w.to_string()
    };
    match unquoted.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => match std::env::var_os("HOME") {
            Some(home) => format!("{}{rest}", home.to_string_lossy()),
            None => unquoted,
        },
        _ => unquoted,
    }
}

/// The names already on the line, so that a name is offered once: each word and each part of a
/// comma list, but the word being completed, the words that name subcommands, and the values
/// of options that take no names (`--data-dir DIR`, `-o PATH`, ...).
fn named_elsewhere(words: &[String], current: &str) -> Vec<String> {
    let mut cmd = crate::cli::command();
    cmd.build();
    let mut out = Vec::new();
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        if let Some(sub) = cmd.find_subcommand(w) {
            cmd = sub.clone();
            continue;
        }
        let (option, value) = match w.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (Some(o), Some(v)),
            _ if w.starts_with('-') && w != "-" => (Some(w.as_str()), None),
            _ => (None, Some(w.as_str())),
        };
        let arg = option.and_then(|o| {
            cmd.get_arguments().find(|a| match o.strip_prefix("--") {
                Some(long) => a.get_long() == Some(long),
                None => o.len() == 2 && a.get_short().is_some_and(|s| o.ends_with(s)),
            })
        });
        let names_values = arg.is_some_and(|a| a.get::<ArgValueCompleter>().is_some());
        let value = match (arg, value) {
            (Some(a), None) if a.get_action().takes_values() => it.next().map(String::as_str),
            _ => value,
        };
        if option.is_some() && !names_values {
            continue;
        }
        out.extend(
            value
                .unwrap_or_default()
                .split(',')
                .filter(|n| !n.is_empty() && *n != current)
                .map(String::from),
        );
    }
    out
}
