//! The examples of each command: shown under its `--help` ("Examples:") and in its man page
//! (EXAMPLES). Every line that starts with `monkctl` is parsed by a test against the real
//! command-line definition, so an example cannot name a flag that does not exist.

/// (command path below `monkctl`, examples): a `#` line says what the next lines do.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "",
        "\
# A new deployment in ./.data, then two tenants
monkctl init
monkctl tenant create acme globex
# Everything a script reads is JSON with --format json
monkctl --format json tenant list",
    ),
    ("init", "monkctl init\nmonkctl --data-dir /srv/monk --layout api init"),
    (
        "config",
        "monkctl config\nmonkctl --database-url postgresql://monk@db.internal/monk config",
    ),
    (
        "completion",
        "\
# bash: add to ~/.bashrc
source <(monkctl completion bash)
# zsh: add to ~/.zshrc
source <(monkctl completion zsh)
# fish
monkctl completion fish > ~/.config/fish/completions/monkctl.fish",
    ),
    (
        "tenant",
        "monkctl tenant create acme\nmonkctl tenant list --all\nmonkctl tenant show acme",
    ),
    (
        "tenant create",
        "\
monkctl tenant create acme globex --owner admin
# From a file (NAME [OWNER [DESCRIPTION]] a line); again after a crash
monkctl tenant create --from-file tenants.txt --skip-existing
# With fixtures, or cloned from a template
monkctl tenant create shop1 --fixture crm
monkctl tenant create shop2 --template shop",
    ),
    (
        "tenant list",
        "\
monkctl tenant list
monkctl tenant list --status suspended --sort size --reverse
monkctl --format json tenant list --all",
    ),
    (
        "tenant show",
        "monkctl tenant show acme\nmonkctl --format json tenant show acme globex",
    ),
    (
        "tenant trash",
        "monkctl tenant trash acme\nmonkctl tenant trash --from-file old-tenants.txt",
    ),
    ("tenant untrash", "monkctl tenant untrash acme globex"),
    (
        "tenant suspend",
        "monkctl tenant suspend acme\nmonkctl tenant suspend --tenant acme,globex",
    ),
    (
        "tenant activate",
        "monkctl tenant activate acme\nmonkctl tenant activate --from-file - < suspended.txt",
    ),
    (
        "tenant delete",
        "\
monkctl tenant delete acme
# Without a terminal, --yes is needed
monkctl tenant delete acme globex --yes",
    ),
    ("tenant undelete", "monkctl tenant undelete acme"),
    (
        "tenant purge",
        "monkctl tenant purge --dry-run\nmonkctl tenant purge --older-than 90d --yes",
    ),
    (
        "tenant vacuum",
        "monkctl tenant vacuum acme\nmonkctl tenant vacuum --all",
    ),
    (
        "tenant usage",
        "monkctl tenant usage\nmonkctl tenant usage --sort size --all\nmonkctl --format csv tenant usage > usage.csv",
    ),
    (
        "tenant copy",
        "\
# To a PostgreSQL deployment (the password from PGPASSWORD)
monkctl tenant copy acme --to postgresql://monk@db.internal/monk
# To another SQLite data directory, under a new name
monkctl tenant copy acme --to sqlite:monk --to-data-dir /srv/b --as acme2",
    ),
    (
        "fixture",
        "monkctl fixture list\nmonkctl fixture check\nmonkctl fixture deploy crm --tenant acme",
    ),
    ("fixture list", "monkctl fixture list\nmonkctl fixture list --fixtures ./seed"),
    ("fixture show", "monkctl fixture show crm"),
    (
        "fixture check",
        "\
# In CI: exit 2 when a fixture is wrong (or there is none to check)
monkctl fixture check
monkctl fixture check crm",
    ),
    (
        "fixture deploy",
        "\
monkctl fixture deploy crm --tenant acme,globex
monkctl fixture deploy crm demo-data --all
monkctl fixture deploy crm --from-file tenants.txt --force",
    ),
    ("fixture status", "monkctl fixture status --tenant acme"),
    (
        "template",
        "monkctl template build shop --fixture crm\nmonkctl template list",
    ),
    (
        "template build",
        "monkctl template build shop --fixture crm --fixture demo-data",
    ),
    ("template list", "monkctl template list"),
    ("template show", "monkctl template show shop"),
    ("template rm", "monkctl template rm shop --yes"),
    (
        "migrate",
        "\
monkctl migrate status
monkctl migrate plan --migrations ./migrations
monkctl migrate up --migrations ./migrations",
    ),
    (
        "migrate status",
        "monkctl migrate status\nmonkctl --format json migrate status --tenant acme",
    ),
    (
        "migrate plan",
        "monkctl migrate plan\nmonkctl migrate plan --target 3",
    ),
    (
        "migrate up",
        "\
monkctl migrate up
monkctl migrate up --tenant acme,globex --fail-fast
# Migrations that drop or rewrite data: each tenant is snapshotted first
monkctl migrate up --allow-destructive --yes",
    ),
    ("migrate undo", "monkctl migrate undo\nmonkctl migrate undo --yes"),
    ("migrate snapshots", "monkctl migrate snapshots list"),
    ("migrate snapshots list", "monkctl migrate snapshots list"),
    (
        "migrate snapshots prune",
        "monkctl migrate snapshots prune --keep 3 --yes\nmonkctl migrate snapshots prune --older-than 30d --yes",
    ),
    (
        "extract",
        "\
monkctl extract acme
monkctl extract acme globex -o backups/
monkctl extract --all -o backups/",
    ),
    (
        "archive",
        "monkctl archive list backups/\nmonkctl archive verify backups/acme-20261203T101500Z.monk.db",
    ),
    (
        "archive inspect",
        "monkctl archive inspect backups/acme-20261203T101500Z.monk.db",
    ),
    (
        "archive verify",
        "monkctl archive verify backups/acme-20261203T101500Z.monk.db",
    ),
    (
        "archive list",
        "monkctl archive list backups/\nmonkctl archive list backups/ --verify",
    ),
    (
        "restore",
        "\
# As a new tenant
monkctl restore backups/acme-20261203T101500Z.monk.db --as acme_copy
# Over the tenant itself (the current one is kept in the trash first)
monkctl restore backups/acme-20261203T101500Z.monk.db --force --yes",
    ),
    (
        "doctor",
        "\
monkctl doctor
monkctl doctor --full --tenant acme
monkctl doctor --repair",
    ),
    (
        "query",
        "\
monkctl query \"SELECT count(*) AS n FROM users\" --all
monkctl query \"SELECT name FROM users WHERE auth = ?\" --param root acme
monkctl query \"SELECT count(*) FROM users\" --all --summary --format csv",
    ),
];

/// The examples of the command at `path` (`""` for `monkctl` itself, `"tenant create"`...).
pub fn of(path: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

/// "Examples:" and the examples indented, for under a command's `--help`.
pub fn help_text(examples: &str) -> String {
    let mut s = String::from("Examples:\n");
    for line in examples.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The visible commands below `cmd`, as paths (`"tenant create"`).
    fn paths(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        out.push(path.to_string());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let p = format!("{path} {}", sub.get_name());
            paths(sub, p.trim_start(), out);
        }
    }

    #[test]
    fn every_command_has_examples_that_parse_and_fit() {
        let mut all = Vec::new();
        paths(&crate::cli::command(), "", &mut all);
        for p in &all {
            assert!(of(p).is_some(), "`monkctl {p}` has no examples");
        }
        for (path, text) in EXAMPLES {
            assert!(
                all.iter().any(|p| p == path),
                "examples of an unknown command `{path}`"
            );
            let mut ran = 0;
            for line in text.lines() {
                // Under --help they are indented by two: 78 columns keep them on one line.
                assert!(
                    line.chars().count() <= 76,
                    "too long for 80 columns: {line}"
                );
                if !line.starts_with("monkctl ") {
                    continue;
                }
                let words = shlex::split(line).unwrap_or_else(|| panic!("unquoted: {line}"));
                // What follows a shell redirection or pipe is not monkctl's.
                let words: Vec<String> = words
                    .into_iter()
                    .take_while(|w| !["<", ">", "|"].contains(&w.as_str()))
                    .collect();
                let m = crate::cli::command()
                    .try_get_matches_from(&words)
                    .unwrap_or_else(|e| panic!("`{line}` does not parse: {e}"));
                // The example runs the command it is listed under (or one below it).
                let mut chain = Vec::new();
                let mut at = &m;
                while let Some((name, sub)) = at.subcommand() {
                    chain.push(name);
                    at = sub;
                }
                let chain = chain.join(" ");
                assert!(
                    chain.starts_with(path),
                    "`{line}` runs `{chain}`, listed under `{path}`"
                );
                ran += 1;
            }
            assert!(ran > 0, "`{path}` has no monkctl line");
        }
    }
}
