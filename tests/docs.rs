//! The committed completions and man pages are what the current CLI definition generates, and the
//! README documents every exit code and the set-up commands CI runs.

use std::fs;
use std::path::Path;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let out = tempfile::tempdir().unwrap();
    assert_cmd::Command::cargo_bin("monkctl")
        .unwrap()
        .args(["generate-docs", "--out"])
        .arg(out.path())
        .assert()
        .success();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["completions", "man"] {
        let fresh = files(&out.path().join(dir));
        let committed = files(&root.join(dir));
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&committed),
            names(&fresh),
            "{dir}/ is stale: run `cargo run -- generate-docs --out .` and commit"
        );
        for (a, b) in committed.iter().zip(&fresh) {
            assert!(
                a.1 == b.1,
                "{dir}/{} is stale: run `cargo run -- generate-docs --out .` and commit",
                a.0
            );
        }
    }
}

/// The man pages say what `--help` says: several names as `NAME...` in the SYNOPSIS, and the
/// examples.
#[test]
fn man_pages_show_several_names_and_the_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("man/monkctl-tenant-trash.1")).unwrap();
    let synopsis = page
        .lines()
        .skip_while(|l| *l != ".SH SYNOPSIS")
        .nth(1)
        .unwrap();
    assert!(synopsis.ends_with("[\\fINAME\\fR]... "), "{synopsis}");
    let page = std::fs::read_to_string(root.join("man/monkctl-tenant-show.1")).unwrap();
    let examples = page
        .split(".SH EXAMPLES\n")
        .nth(1)
        .expect("an EXAMPLES section");
    assert!(
        examples.starts_with(".nf\nmonkctl tenant show acme\n"),
        "{examples}"
    );
    // A command that takes one name says so without `...`.
    let page = std::fs::read_to_string(root.join("man/monkctl-tenant-copy.1")).unwrap();
    assert!(!page.contains("NAME\\fR]...") && !page.contains("NAME\\fR>..."));
}

#[test]
fn readme_lists_every_exit_code_and_ci_runs_its_test_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    // The README's exit-code table is the one table of the code, row for row.
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| exit code | name | meaning |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let expected: Vec<String> = monkctl::core::error::CODES
        .iter()
        .map(|c| format!("| {} | `{}` | {} |", c.code, c.name, c.meaning))
        .collect();
    assert_eq!(
        table, expected,
        "the README's exit-code table differs from error::CODES"
    );
    // Every code the code names is in the table, once.
    let source = fs::read_to_string(root.join("src/core/error.rs")).unwrap();
    let consts = source
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const ") && l.contains(": i32 ="))
        .count();
    assert_eq!(consts, monkctl::core::error::CODES.len());
    let ci = fs::read_to_string(root.join(".ci/run")).unwrap();
    let test_cmd = readme
        .lines()
        .skip_while(|l| !l.starts_with("Run the tests"))
        .find(|l| l.starts_with("    "))
        .expect("README has an indented test command after 'Run the tests'")
        .trim();
    assert!(
        ci.lines().any(|l| l.trim() == test_cmd),
        ".ci/run does not run `{test_cmd}`"
    );
    assert!(ci.contains("cargo fmt --check"));
    assert!(ci.contains("cargo clippy --all-targets -- -D warnings"));
}

#[test]
fn completion_prints_a_script_and_version_names_the_sqlite_build() {
    let bin = || assert_cmd::Command::cargo_bin("monkctl").unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = bin().args(["completion", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        // The script asks the binary at each Tab (tests/completion.rs runs it).
        assert!(script.contains("MONKCTL_COMPLETE"), "{shell}");
        assert!(!script.contains("generate-docs"), "{shell}");
    }
    // The maintainers' generate-docs is no subcommand: never completed or suggested.
    let top = bin()
        .env("MONKCTL_COMPLETE", "fish")
        .args(["--", "monkctl", ""])
        .output()
        .unwrap();
    let top = String::from_utf8(top.stdout).unwrap();
    for c in ["tenant\t", "migrate\t", "completion\t"] {
        assert!(top.lines().any(|l| l.starts_with(c)), "{c} in {top}");
    }
    assert!(!top.contains("generate-docs"), "{top}");
    let typo = bin().arg("generat").output().unwrap();
    assert_eq!(typo.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&typo.stderr).contains("generate-docs"));
    let v = bin().arg("--version").output().unwrap();
    let v = String::from_utf8(v.stdout).unwrap();
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    assert!(v.contains("SQLite 3."), "{v}");
    // The repository's build enables sqlite_dbpage (.cargo/config.toml).
    assert!(v.contains("page-level restore: yes"), "{v}");
}

/// The README's quick start runs as written, line by line, with the binary under test as
/// `monkctl`, from a copy of the repository's `samples/` (`cargo install` is the one line not run:
/// the binary is the one built for the tests).
#[test]
fn the_readme_quick_start_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let lines: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("## Quick start"))
        .skip(1)
        .skip_while(|l| !l.starts_with("    "))
        .take_while(|l| l.starts_with("    "))
        .map(str::trim)
        .filter(|l| !l.starts_with("cargo install"))
        .collect();
    assert!(lines.len() > 8, "{lines:?}");
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    fs::create_dir(&samples).unwrap();
    for e in fs::read_dir(root.join("samples")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), samples.join(e.file_name())).unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_monkctl")).parent().unwrap();
    for line in lines {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(dir.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env_remove("MONK_DATA_DIR")
            .env_remove("DATABASE_URL")
            .env_remove("MONK_CONFIG")
            .env_remove("MONK_MIGRATIONS_DIR")
            .env_remove("MONK_LAYOUT")
            .env("HOME", dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed with {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = fs::read_to_string(samples.join("tenants.txt")).unwrap();
    assert!(list.contains("initech"));
}
