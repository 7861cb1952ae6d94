//! Shell completion, run as the shells run it: the script `monkctl completion SHELL` prints calls
//! `MONKCTL_COMPLETE=SHELL monkctl -- WORDS...` at each Tab, and the names offered come from the
//! deployment the words (and the environment) point at, read without creating anything.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Env;

/// `monkctl` as a shell runs it to complete: in `dir`, with a clean environment plus `env`.
fn completer(dir: &Path, shell: &str, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_monkctl"));
    c.current_dir(dir)
        .env_remove("MONK_DATA_DIR")
        .env_remove("DATABASE_URL")
        .env_remove("MONK_CONFIG")
        .env_remove("MONK_FIXTURES_DIR")
        .env_remove("MONK_MIGRATIONS_DIR")
        .env_remove("MONK_LAYOUT")
        .env_remove("SQLITE_DATA_DIR")
        .env_remove("COMPLETE")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("MONKCTL_COMPLETE", shell)
        .envs(env.iter().copied());
    c
}

/// The candidates fish would get for `words` (the last is the word under the cursor), with the
/// help after a tab dropped; asserts a silent success, as a shell needs it.
fn fish(dir: &Path, env: &[(&str, &str)], words: &[&str]) -> Vec<String> {
    let out = completer(dir, "fish", env)
        .arg("--")
        .args(words)
        .output()
        .unwrap();
    check_quiet(&out, words);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn check_quiet(out: &Output, words: &[&str]) {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{words:?}: exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The names among the candidates (options left out).
fn names(candidates: Vec<String>) -> BTreeSet<String> {
    candidates
        .into_iter()
        .filter(|c| !c.starts_with('-'))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A deployment with one tenant in each state: acme active, acorn suspended, beta trashed,
/// gamma deleted.
fn deployment() -> Env {
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["tenant", "create", "acme", "acorn", "beta", "gamma"]);
    env.ok(&["tenant", "suspend", "acorn"]);
    env.ok(&["tenant", "trash", "beta"]);
    env.ok(&["-y", "tenant", "delete", "gamma"]);
    env
}

#[test]
fn tenant_names_are_those_each_command_accepts() {
    let env = deployment();
    let data = env.data();
    let data = data.to_str().unwrap();
    let at = |words: &[&str]| {
        let mut line = vec!["monkctl", "--data-dir", data];
        line.extend_from_slice(words);
        names(fish(env.root(), &[], &line))
    };
    let all = set(&["acme", "acorn", "beta", "gamma"]);
    assert_eq!(at(&["tenant", "show", ""]), all);
    assert_eq!(at(&["tenant", "show", "ac"]), set(&["acme", "acorn"]));
    assert_eq!(at(&["tenant", "show", "x"]), set(&[]));
    assert_eq!(at(&["tenant", "trash", ""]), set(&["acme", "acorn"]));
    assert_eq!(at(&["tenant", "untrash", ""]), set(&["beta"]));
    assert_eq!(at(&["tenant", "suspend", ""]), set(&["acme", "beta"]));
    assert_eq!(at(&["tenant", "activate", ""]), set(&["acorn"]));
    assert_eq!(
        at(&["tenant", "delete", ""]),
        set(&["acme", "acorn", "beta"])
    );
    assert_eq!(at(&["tenant", "undelete", ""]), set(&["gamma"]));
    assert_eq!(at(&["tenant", "copy", ""]), set(&["acme", "acorn", "beta"]));
    // A name already on the line is not offered again.
    assert_eq!(
        at(&["tenant", "delete", "acme", ""]),
        set(&["acorn", "beta"])
    );
    assert_eq!(at(&["extract", "acorn", ""]), set(&["acme", "beta"]));
    assert_eq!(at(&["doctor", "--tenant", ""]), all);
    // Comma lists complete their last item.
    assert_eq!(
        at(&["doctor", "--tenant", "acme,a"]),
        set(&["acme,acorn"]),
        "a comma list completes its last name, without the names before it"
    );
    assert_eq!(
        at(&["fixture", "deploy", "x", "--tenant", ""]),
        set(&["acme", "acorn", "beta"])
    );
    assert_eq!(at(&["fixture", "status", "--tenant", "g"]), set(&["gamma"]));
    // Deleted tenants are never migrated; trashed ones only with --include-trashed.
    assert_eq!(
        at(&["migrate", "status", "--tenant", ""]),
        set(&["acme", "acorn"])
    );
    assert_eq!(
        at(&["migrate", "up", "--include-trashed", "--tenant", ""]),
        set(&["acme", "acorn", "beta"])
    );
    assert_eq!(
        at(&["query", "select 1", ""]),
        set(&["acme", "acorn", "beta"])
    );
    assert_eq!(
        at(&["query", "--tenant", "acme", "--tenant", ""]),
        set(&["acorn", "beta"])
    );
    // The first positional is the statement, unless --file gives it.
    assert_eq!(at(&["query", ""]), set(&[]));
    assert_eq!(
        at(&["query", "--file", "q.sql", ""]),
        set(&["acme", "acorn", "beta"])
    );
    // The other name lists.
    assert_eq!(
        at(&["tenant", "vacuum", ""]),
        set(&["acme", "acorn", "beta"])
    );
    assert_eq!(at(&["tenant", "usage", ""]), all);
    // A new name is not completed.
    assert_eq!(at(&["tenant", "create", ""]), set(&[]));
}

#[test]
fn the_deployment_is_the_one_the_command_would_use() {
    let env = deployment();
    let data = env.data();
    let data = data.to_str().unwrap();
    let acme = set(&["acme", "acorn"]);
    let line = ["monkctl", "tenant", "show", "ac"];
    // --data-dir=DIR, and from the environment (a flag after the cursor, which bash hands
    // over, is in bash_and_zsh_scripts_complete_tenant_names).
    let equals = format!("--data-dir={data}");
    let w = ["monkctl", &equals, "tenant", "show", "ac"];
    assert_eq!(names(fish(env.root(), &[], &w)), acme);
    assert_eq!(
        names(fish(env.root(), &[("MONK_DATA_DIR", data)], &line)),
        acme
    );
    // From a config file named on the line, as typed (bash hands over the quotes and the `~`).
    std::fs::write(
        env.root().join("monk.toml"),
        format!("data_dir = {data:?}\n"),
    )
    .unwrap();
    let w = ["monkctl", "--config", "'monk.toml'", "tenant", "show", "ac"];
    assert_eq!(names(fish(env.root(), &[], &w)), acme);
    let w = ["monkctl", "--config", "~/monk.toml", "tenant", "show", "ac"];
    assert_eq!(names(fish(env.root(), &[], &w)), acme);
    // ./monk.toml is found as the real command finds it.
    assert_eq!(names(fish(env.root(), &[], &line)), acme);
    // A flag on the line wins over the environment, as it does for the command.
    let elsewhere = env.root().join("elsewhere");
    let w = [
        "monkctl",
        "--data-dir",
        elsewhere.to_str().unwrap(),
        "tenant",
        "show",
        "ac",
    ];
    assert_eq!(
        names(fish(env.root(), &[("MONK_DATA_DIR", data)], &w)),
        set(&[])
    );
}

#[test]
fn completing_creates_nothing_and_prints_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let w = [
        "monkctl",
        "--data-dir",
        missing.to_str().unwrap(),
        "tenant",
        "show",
        "",
    ];
    assert_eq!(names(fish(dir.path(), &[], &w)), set(&[]));
    assert!(
        !missing.exists(),
        "completing created {}",
        missing.display()
    );
    // The default ./.data, and templates, which also read the data directory.
    let w = ["monkctl", "tenant", "trash", ""];
    assert_eq!(names(fish(dir.path(), &[], &w)), set(&[]));
    let w = ["monkctl", "template", "show", ""];
    assert_eq!(names(fish(dir.path(), &[], &w)), set(&[]));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "completing wrote into the working directory"
    );
    // A config file that does not parse: no names, and not a word on the terminal.
    std::fs::write(dir.path().join("monk.toml"), "data_dir = [").unwrap();
    let w = ["monkctl", "tenant", "show", ""];
    assert_eq!(names(fish(dir.path(), &[], &w)), set(&[]));

    // An existing deployment: reading its registry leaves every file as it was.
    let env = deployment();
    let before = tree(&env.data());
    let data = env.data();
    let w = [
        "monkctl",
        "--data-dir",
        data.to_str().unwrap(),
        "tenant",
        "show",
        "",
    ];
    assert_eq!(names(fish(env.root(), &[], &w)).len(), 4);
    assert_eq!(
        tree(&env.data()),
        before,
        "completing changed the data directory"
    );
}

/// Every path under `dir` with its size and modification time.
fn tree(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        out.push((
            e.path().display().to_string(),
            m.len(),
            m.modified().unwrap(),
        ));
        if m.is_dir() {
            out.extend(tree(&e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn fixtures_templates_and_archives_complete_from_their_directories() {
    let env = deployment();
    let fx = env.root().join("fixtures").join("shop");
    std::fs::create_dir_all(&fx).unwrap();
    std::fs::write(
        fx.join("fixture.toml"),
        "name = \"shop\"\nversion = \"3\"\ndescription = \"Catalogue\"\nfiles = [\"schema.sql\"]\n",
    )
    .unwrap();
    std::fs::write(
        fx.join("schema.sql"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    let data = env.data();
    let data = data.to_str().unwrap();
    let at = |words: &[&str]| {
        let mut line = vec!["monkctl", "--data-dir", data];
        line.extend_from_slice(words);
        names(fish(env.root(), &[], &line))
    };
    assert_eq!(at(&["fixture", "show", ""]), set(&["shop", "system"]));
    assert_eq!(at(&["fixture", "deploy", ""]), set(&["shop"]));
    assert_eq!(
        at(&["tenant", "create", "x", "--fixture", ""]),
        set(&["shop"])
    );
    // The fixtures directory of --fixtures, as the command reads it.
    let other = env.root().join("other");
    std::fs::create_dir_all(&other).unwrap();
    assert_eq!(
        at(&["fixture", "show", "--fixtures", other.to_str().unwrap(), ""]),
        set(&["system"])
    );

    assert_eq!(at(&["template", "show", ""]), set(&[]));
    env.ok(&["template", "build", "shop_tpl", "--fixture", "shop"]);
    assert_eq!(at(&["template", "show", ""]), set(&["shop_tpl"]));
    assert_eq!(at(&["template", "rm", "s"]), set(&["shop_tpl"]));
    assert_eq!(
        at(&["tenant", "create", "x", "--template", ""]),
        set(&["shop_tpl", "system"])
    );

    env.ok(&["extract", "acme", "-o", "archives/"]);
    std::fs::write(env.root().join("archives").join("notes.txt"), "x").unwrap();
    std::fs::create_dir(env.root().join("archives").join("old")).unwrap();
    let archives = at(&["restore", "archives/"]);
    let files: Vec<&String> = archives.iter().filter(|p| !p.ends_with('/')).collect();
    assert_eq!(files.len(), 1, "{archives:?}");
    assert!(
        files[0].starts_with("archives/acme-") && files[0].ends_with(".monk.db"),
        "{archives:?}"
    );
    assert!(archives.contains("archives/old/"), "{archives:?}");
    assert_eq!(at(&["archive", "verify", "archives/"]), archives);
    assert_eq!(at(&["archive", "inspect", "archives/"]), archives);
}

/// The subcommands are offered, the maintainers' generate-docs never.
#[test]
fn commands_complete_and_generate_docs_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let top = fish(dir.path(), &[], &["monkctl", ""]);
    for c in ["tenant", "migrate", "query", "completion"] {
        assert!(top.iter().any(|t| t == c), "{c} missing from {top:?}");
    }
    assert!(!top.iter().any(|t| t.contains("generate")), "{top:?}");
    assert_eq!(
        fish(dir.path(), &[], &["monkctl", "gen"]),
        Vec::<String>::new()
    );
    let tenant = names(fish(dir.path(), &[], &["monkctl", "tenant", "un"]));
    assert_eq!(tenant, set(&["undelete", "untrash"]));
}

/// The bash script, sourced in a real bash, fills COMPREPLY from the deployment; zsh's protocol
/// (index and separator from the script) answers the same names.
#[test]
fn bash_and_zsh_scripts_complete_tenant_names() {
    let env = deployment();
    let out = completer(env.root(), "", &[])
        .env_remove("MONKCTL_COMPLETE")
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = env.root().join("monkctl.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let data = env.data();
    let session = format!(
        "source {script}\n\
         COMP_WORDS=(monkctl --data-dir {data} tenant untrash '')\n\
         COMP_CWORD=5\n\
         COMP_TYPE=9\n\
         _clap_complete_monkctl monkctl '' untrash\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n\
         COMP_WORDS=(monkctl tenant show ac --data-dir {data})\n\
         COMP_CWORD=3\n\
         _clap_complete_monkctl monkctl ac show\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n\
         complete -p monkctl\n",
        script = script.display(),
        data = data.display()
    );
    let run = Command::new("bash")
        .current_dir(env.root())
        .env_remove("MONKCTL_COMPLETE")
        .env_remove("MONK_DATA_DIR")
        .env_remove("DATABASE_URL")
        .env_remove("MONK_CONFIG")
        .env("HOME", env.root())
        .args(["--norc", "--noprofile", "-c", &session])
        .output()
        .expect("bash");
    let text = String::from_utf8(run.stdout).unwrap();
    assert!(
        run.status.success() && run.stderr.is_empty(),
        "{text}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let replies: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('-') && !l.starts_with("complete "))
        .collect();
    assert_eq!(replies, ["beta", "acme", "acorn"], "{text}");
    assert!(
        text.lines().last().is_some_and(
            |l| l.starts_with("complete ") && l.ends_with("-F _clap_complete_monkctl monkctl")
        ),
        "{text}"
    );

    // zsh: the index of the word under the cursor and the separator come from the script.
    let out = completer(
        env.root(),
        "zsh",
        &[("_CLAP_COMPLETE_INDEX", "5"), ("_CLAP_IFS", "\n")],
    )
    .args(["--", "monkctl", "--data-dir"])
    .arg(&data)
    .args(["tenant", "undelete"])
    .output()
    .unwrap();
    check_quiet(&out, &["zsh"]);
    let zsh: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('-'))
        .map(String::from)
        .collect();
    assert_eq!(zsh, set(&["gamma:deleted"]));
}

/// Each shell's script registers the completer for `monkctl` under MONKCTL_COMPLETE, calling
/// the binary it came from; zsh's also completes when autoloaded from $fpath.
#[test]
fn completion_prints_the_registration_of_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_monkctl");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = completer(dir.path(), "", &[])
            .env_remove("MONKCTL_COMPLETE")
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("MONKCTL_COMPLETE"), "{shell}: {script}");
        assert!(script.contains(bin), "{shell}: {script}");
        assert!(script.contains("monkctl"), "{shell}: {script}");
        // The same script as MONKCTL_COMPLETE=SHELL monkctl prints.
        let direct = completer(dir.path(), shell, &[]).output().unwrap();
        assert!(direct.status.success(), "{shell}");
        let direct = String::from_utf8(direct.stdout).unwrap();
        if shell == "zsh" {
            assert!(script.starts_with(&direct), "{shell}");
            assert!(script.contains("\"${funcstack[1]}\" = \"_monkctl\""));
        } else {
            assert_eq!(script, direct, "{shell}");
        }
    }
    // A shell the engine does not know is an error when asked for a script.
    let out = completer(dir.path(), "tcsh", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

/// A PostgreSQL server that accepts the connection and never answers: completing gives up
/// within its budget, silently, and still offers the options.
#[test]
fn a_postgresql_server_that_does_not_answer_does_not_hang_the_shell() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(4) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgresql://monk@127.0.0.1:{port}/monk?sslmode=disable");
    let start = Instant::now();
    let got = fish(
        dir.path(),
        &[("DATABASE_URL", &url)],
        &["monkctl", "tenant", "show", ""],
    );
    let took = start.elapsed();
    // It waited for the server (so it did try), and not for long.
    assert!(took >= Duration::from_secs(1), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(got.iter().any(|c| c == "--data-dir"), "{got:?}");
    assert!(names(got).is_empty());
    drop(held);
}
