//! `monkctl generate-docs [--out DIR]`, for maintainers: shell completions and man pages from
//! the clap definition. Not a clap subcommand (see `commands::main`), so that it shows in no
//! completion, help or typo suggestion.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::Outcome;
use crate::cli::Cli;
use crate::core::Error;

/// The first argument that selects it.
pub const COMMAND: &str = "generate-docs";

/// Runs `generate-docs` with the arguments after it: `[--out DIR]` (default `.`).
pub fn run(args: &[OsString]) -> Outcome {
    let out = match args {
        [] => PathBuf::from("."),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => {
            return Err(Error::Usage(format!("usage: monkctl {COMMAND} [--out DIR]")).into());
        }
    };
    generate(&out)
}

/// Writes `completions/` and `man/` under `out`, replacing what is there.
pub fn generate(out: &Path) -> Outcome {
    let comp = out.join("completions");
    let man = out.join("man");
    for d in [&comp, &man] {
        if d.exists() {
            fs::remove_dir_all(d)?;
        }
        fs::create_dir_all(d)?;
    }
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::PowerShell,
        Shell::Elvish,
    ] {
        clap_complete::generate_to(shell, &mut Cli::command(), "monkctl", &comp)?;
    }
    clap_mangen::generate_to(Cli::command(), &man)?;
    Ok(0)
}
