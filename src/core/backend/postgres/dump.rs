//! `pg_dump` and `psql` of a tenant schema: the archives of `purge` and the snapshots of
//! `migrate`, and finding the client programs.

use super::*;

/// Writes `schema` with everything in it to `out` (a new file, owner-only) as a `pg_dump`
/// custom-format archive, which `pg_restore` brings back exactly (tables, types, rows). Written
/// beside its place, synced and renamed, so `out` is whole or absent. The password reaches
/// `pg_dump` through its environment, never its command line.
pub fn dump_schema(target: &Target, schema: &str, out: &std::path::Path) -> Result<()> {
    use crate::core::fsutil;
    let pg_dump = find_client("pg_dump").ok_or_else(|| {
        Error::Unsupported(format!(
            "pg_dump was not found (PATH, `pg_config --bindir`, /usr/lib/postgresql/*/bin): install the PostgreSQL client (apt-get install postgresql-client) so that {schema} can be archived before it is dropped; nothing was removed"
        ))
    })?;
    if let Some(dir) = out.parent() {
        fsutil::create_private_dir(dir)?;
    }
    let tmp = fsutil::temp_beside(out);
    let guard = fsutil::TempFile(Some(tmp.clone()));
    drop(fsutil::create_private_file(&tmp)?);
    let c = &target.config;
    let mut cmd = std::process::Command::new(&pg_dump);
    // Rows as INSERT statements with column names, not COPY blocks: monkctl replays the archive
    // in a transaction of its own (`restore_script`, for `migrate undo`), where COPY's inline
    // data cannot go; `pg_restore` reads either.
    cmd.arg("--format=custom")
        .arg(format!("--schema={schema}"))
        .arg("--no-owner")
        .arg("--column-inserts")
        .arg(format!("--file={}", tmp.display()))
        .env_clear()
        .env("PGDATABASE", &target.url.database)
        .env("PGAPPNAME", "monkctl")
        .env(
            "PGSSLMODE",
            match target.url.sslmode.as_str() {
                "disable" => "disable",
                "prefer" => "prefer",
                other => other,
            },
        );
    if let Some(root) = &target.url.sslrootcert {
        cmd.env("PGSSLROOTCERT", root);
    }
    match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => {
            cmd.env("PGHOST", h);
        }
        Some(postgres::config::Host::Unix(p)) => {
            cmd.env("PGHOST", p);
        }
        None => {}
    }
    if let Some(p) = c.get_ports().first() {
        cmd.env("PGPORT", p.to_string());
    }
    if let Some(u) = c.get_user() {
        cmd.env("PGUSER", u);
    }
    if let Some(pw) = c.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).into_owned());
    }
    let output = cmd.output().map_err(|e| Error::io(&pg_dump, e))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Error::Postgres {
            target: target.at(Some(schema)),
            detail: format!(
                "pg_dump ({}) failed, so nothing was removed: {text}",
                pg_dump.display()
            ),
            exit: exit::FAILURE,
        });
    }
    fsutil::sync_file(&tmp)?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    drop(guard);
    if let Some(dir) = out.parent() {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// The SQL that recreates what a `dump_schema` archive holds (`pg_restore -f -`), for running in
/// a transaction of monkctl's own: psql's meta-commands (`\restrict`) are left out.
pub fn restore_script(target: &Target, archive: &std::path::Path) -> Result<String> {
    let pg_restore = find_client("pg_restore").ok_or_else(|| {
        Error::Unsupported(
            "pg_restore was not found (PATH, `pg_config --bindir`, /usr/lib/postgresql/*/bin): install the PostgreSQL client (apt-get install postgresql-client); nothing was restored".into(),
        )
    })?;
    let out = std::process::Command::new(&pg_restore)
        .arg("--no-owner")
        .arg("--file=-")
        .arg(archive)
        .env_clear()
        .output()
        .map_err(|e| Error::io(&pg_restore, e))?;
    if !out.status.success() {
        return Err(Error::Postgres {
            target: target.at(None),
            detail: format!(
                "pg_restore could not read {}: {}; nothing was restored",
                archive.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            exit: exit::CORRUPT,
        });
    }
    let text = String::from_utf8(out.stdout).map_err(|_| Error::Postgres {
        target: target.at(None),
        detail: format!(
            "{} holds text that is not UTF-8; nothing was restored",
            archive.display()
        ),
        exit: exit::CORRUPT,
    })?;
    // pg_dump 15.14 and later frame the script in `\restrict KEY` ... `\unrestrict KEY`, psql
    // meta-commands with a random key of their own; only those two lines are left out (the data
    // are INSERT statements, see `dump_schema`, so no other line is a meta-command).
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("\\restrict "))
        .map(str::to_string);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| match &key {
            Some(k) => *l != format!("\\restrict {k}") && *l != format!("\\unrestrict {k}"),
            None => true,
        })
        .collect();
    Ok(lines.join("\n"))
}

/// A PostgreSQL client program: on the PATH, in `pg_config --bindir`, or the newest
/// `/usr/lib/postgresql/*/bin` (Debian keeps them there).
pub fn find_client(name: &str) -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let bindir = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(p) = bindir.map(|d| d.join(name)).filter(|p| p.is_file()) {
        return Some(p);
    }
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((v, p))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}
