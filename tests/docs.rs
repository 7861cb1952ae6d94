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

#[test]
fn readme_lists_every_exit_code_and_ci_runs_its_test_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let codes = fs::read_to_string(root.join("src/core/error.rs")).unwrap();
    for line in codes.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub const ") {
            let value = rest.split('=').nth(1).unwrap().trim().trim_end_matches(';');
            assert!(
                readme.contains(&format!("| {value} |")),
                "exit code {value} ({rest}) is not in the README's exit-code table"
            );
        }
    }
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
