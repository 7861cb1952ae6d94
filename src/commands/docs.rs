//! `monkctl generate-docs [--out DIR]`, for maintainers: shell completions and man pages from
//! the clap definition. Not a clap subcommand (see `commands::main`), so that it shows in no
//! completion, help or typo suggestion.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use clap_complete::{Generator, Shell};

use super::Outcome;
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
    // What `monkctl completion SHELL` prints when `monkctl` is found on the PATH: shell code
    // that asks the installed binary at each Tab (see `commands::complete`).
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::PowerShell,
        Shell::Elvish,
    ] {
        let script = super::complete::script(shell, "monkctl")?;
        fs::write(comp.join(Generator::file_name(&shell, "monkctl")), script)?;
    }
    let mut cmd = crate::cli::definition().disable_help_subcommand(true);
    cmd.build();
    man_pages(&cmd, "", &man)?;
    Ok(0)
}

/// A man page for `cmd` (at `path` below `monkctl`) and each of its visible subcommands, each
/// with the source `monkctl VERSION` in its footer, its EXAMPLES (`crate::examples`, as under
/// `--help`) and an EXIT STATUS section from the one exit-code table.
fn man_pages(cmd: &clap::Command, path: &str, dir: &Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_path = format!("{path} {}", sub.get_name());
        man_pages(sub, sub_path.trim_start(), dir)?;
    }
    let man =
        clap_mangen::Man::new(cmd.clone()).source(format!("monkctl {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)?;
    let mut page = several_marked(cmd, page).into_bytes();
    if let Some(examples) = crate::examples::of(path) {
        page.extend_from_slice(b".SH EXAMPLES\n.nf\n");
        for line in examples.lines() {
            page.extend_from_slice(format!("{}\n", roff_text_keep_marks(line)).as_bytes());
        }
        page.extend_from_slice(b".fi\n");
    }
    page.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    for c in crate::core::error::CODES {
        page.extend_from_slice(
            format!(
                ".TP\n\\fB{}\\fR ({})\n{}\n",
                c.code,
                c.name,
                roff_text(c.meaning)
            )
            .as_bytes(),
        );
    }
    fs::write(dir.join(man.get_filename()), page)
}

/// The page with `...` after each positional argument of the SYNOPSIS that takes several values
/// (`[NAME]...`), which clap_mangen leaves out.
fn several_marked(cmd: &clap::Command, page: Vec<u8>) -> String {
    let mut text = String::from_utf8_lossy(&page).into_owned();
    let Some(start) = text.find(".SH SYNOPSIS\n") else {
        return text;
    };
    let end = text[start + 1..]
        .find("\n.SH ")
        .map_or(text.len(), |e| start + 1 + e);
    let mut synopsis = text[start..end].to_string();
    for a in cmd.get_positionals() {
        let several = a.get_num_args().is_some_and(|r| r.max_values() > 1);
        let Some(name) = a.get_value_names().and_then(|v| v.first()) else {
            continue;
        };
        if !several {
            continue;
        }
        for (open, close) in [("[", "]"), ("<", ">")] {
            let shown = format!("{open}\\fI{name}\\fR{close}");
            if let Some(at) = synopsis.find(&shown) {
                let after = at + shown.len();
                if !synopsis[after..].starts_with("...") {
                    synopsis.insert_str(after, "...");
                }
                break;
            }
        }
    }
    text.replace_range(start..end, &synopsis);
    text
}

/// Text for a roff paragraph: backslashes escaped, no line starting with a control character,
/// Markdown's code marks dropped.
fn roff_text(s: &str) -> String {
    roff_text_keep_marks(&s.replace('`', ""))
}

/// A line for roff as it is (an example's shell quoting kept): backslashes escaped, no line
/// starting with a control character.
fn roff_text_keep_marks(s: &str) -> String {
    let s = s.replace('\\', "\\e");
    if s.starts_with(['.', '\'']) {
        format!("\\&{s}")
    } else {
        s
    }
}
