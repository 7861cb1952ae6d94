//! The hidden `generate-docs` command: shell completions and man pages from the clap definition.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Outcome;
use crate::cli::Cli;

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
