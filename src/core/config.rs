//! Effective settings and where each came from: flag > environment > config file > default.
//!
//! Owns reading the TOML config file and the environment. It does not touch the data directory.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::layout::LayoutKind;

/// Where a setting's value came from, for `monkctl config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Source {
    Flag,
    Env(String),
    ConfigFile(PathBuf),
    Default,
    /// Found from what the data directory holds.
    Detected,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => write!(f, "flag"),
            Source::Env(v) => write!(f, "env {v}"),
            Source::ConfigFile(p) => write!(f, "config {}", p.display()),
            Source::Default => write!(f, "default"),
            Source::Detected => write!(f, "detected"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// Values given on the command line; `None` when the flag was not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub config: Option<PathBuf>,
    pub fixtures_dir: Option<PathBuf>,
    pub migrations_dir: Option<PathBuf>,
    /// Where the API keeps the files of a PostgreSQL registry's SQLite tenants.
    pub sqlite_data_dir: Option<PathBuf>,
    /// `design` or `api`.
    pub layout: Option<String>,
}

/// The keys a config file may hold. Unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    fixtures_dir: Option<PathBuf>,
    migrations_dir: Option<PathBuf>,
    sqlite_data_dir: Option<PathBuf>,
    layout: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    pub data_dir: Setting<PathBuf>,
    pub database_url: Setting<String>,
    /// The name in `sqlite:NAME`, or the PostgreSQL database's name.
    pub database_name: String,
    /// The PostgreSQL deployment `database_url` names; `None` for SQLite. Holds the password:
    /// never serialized, printed only through `PgUrl::redacted`.
    #[serde(skip)]
    pub postgres: Option<PgUrl>,
    pub fixtures_dir: Setting<PathBuf>,
    pub migrations_dir: Setting<Option<PathBuf>>,
    /// On PostgreSQL: the API's `SQLITE_DATA_DIR`, where the registry's `db_type='sqlite'`
    /// tenants live (`<dir>/<tenants.database>/<tenants.schema>.db`).
    pub sqlite_data_dir: Setting<Option<PathBuf>>,
    /// The layout to use; `None`: found from the data directory (`Layout::resolve`).
    pub layout: Setting<Option<LayoutKind>>,
}

pub const ENV_DATA_DIR: &str = "MONK_DATA_DIR";
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
pub const ENV_CONFIG: &str = "MONK_CONFIG";
pub const ENV_FIXTURES_DIR: &str = "MONK_FIXTURES_DIR";
pub const ENV_MIGRATIONS_DIR: &str = "MONK_MIGRATIONS_DIR";
/// The API's own name for the setting, so that one environment serves both.
pub const ENV_SQLITE_DATA_DIR: &str = "SQLITE_DATA_DIR";
pub const ENV_LAYOUT: &str = "MONK_LAYOUT";
pub const DEFAULT_DATABASE_URL: &str = "sqlite:monk";

impl Settings {
    /// Resolves the settings from the flags, the process environment and the config file.
    pub fn resolve(o: &Overrides) -> Result<Settings> {
        Self::resolve_with(o, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn resolve_with(o: &Overrides, env: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let config_file = find_config_file(o.config.clone(), &env)?;
        let file = match &config_file {
            Some(p) => read_config(p)?,
            None => FileConfig::default(),
        };
        let base = config_file
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let from_file =
            |p: Option<PathBuf>| p.map(|p| if p.is_absolute() { p } else { base.join(p) });

        let data_dir = pick(
            o.data_dir.clone(),
            ENV_DATA_DIR,
            &env,
            from_file(file.data_dir),
            &config_file,
            PathBuf::from(".data"),
            PathBuf::from,
        );
        let database_url = pick(
            o.database_url.clone(),
            ENV_DATABASE_URL,
            &env,
            file.database_url,
            &config_file,
            DEFAULT_DATABASE_URL.to_string(),
            |s| s,
        );
        let fixtures_dir = pick(
            o.fixtures_dir.clone(),
            ENV_FIXTURES_DIR,
            &env,
            from_file(file.fixtures_dir),
            &config_file,
            PathBuf::from("fixtures"),
            PathBuf::from,
        );
        let migrations_dir = pick(
            o.migrations_dir.clone().map(Some),
            ENV_MIGRATIONS_DIR,
            &env,
            from_file(file.migrations_dir).map(Some),
            &config_file,
            None,
            |s| Some(PathBuf::from(s)),
        );
        let sqlite_data_dir = pick(
            o.sqlite_data_dir.clone().map(Some),
            ENV_SQLITE_DATA_DIR,
            &env,
            from_file(file.sqlite_data_dir).map(Some),
            &config_file,
            None,
            |s| Some(PathBuf::from(s)),
        );
        let layout = pick(
            o.layout.clone().map(Some),
            ENV_LAYOUT,
            &env,
            file.layout.map(Some),
            &config_file,
            None,
            Some,
        );
        let layout = Setting {
            value: match &layout.value {
                None => None,
                Some(v) => Some(LayoutKind::parse(v).ok_or_else(|| {
                    Error::Usage(format!(
                        "layout '{}' ({}) is not understood: use design or api",
                        v.escape_debug(),
                        layout.source
                    ))
                })?),
            },
            source: layout.source,
        };
        let (database_name, postgres) = match parse_database_url(&database_url.value)? {
            DatabaseUrl::Sqlite(name) => (name, None),
            DatabaseUrl::Postgres(pg) => (pg.database.clone(), Some(pg)),
        };
        Ok(Settings {
            config_file,
            data_dir,
            database_url,
            database_name,
            postgres,
            fixtures_dir,
            migrations_dir,
            sqlite_data_dir,
            layout,
        })
    }
}

fn pick<T>(
    flag: Option<T>,
    env_key: &str,
    env: &impl Fn(&str) -> Option<String>,
    file: Option<T>,
    config_file: &Option<PathBuf>,
    default: T,
    from_env: impl Fn(String) -> T,
) -> Setting<T> {
    if let Some(value) = flag {
        return Setting {
            value,
            source: Source::Flag,
        };
    }
    if let Some(v) = env(env_key) {
        return Setting {
            value: from_env(v),
            source: Source::Env(env_key.to_string()),
        };
    }
    if let (Some(value), Some(p)) = (file, config_file) {
        return Setting {
            value,
            source: Source::ConfigFile(p.clone()),
        };
    }
    Setting {
        value: default,
        source: Source::Default,
    }
}

fn find_config_file(
    explicit: Option<PathBuf>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<PathBuf>> {
    if let Some(p) = explicit.or_else(|| env(ENV_CONFIG).map(PathBuf::from)) {
        if !p.is_file() {
            return Err(Error::FileNotFound {
                what: "config file",
                path: p,
                hint: "check the path given with --config or MONK_CONFIG".into(),
            });
        }
        return Ok(Some(p));
    }
    let local = PathBuf::from("monk.toml");
    if local.is_file() {
        return Ok(Some(local));
    }
    if let Some(dirs) = directories::ProjectDirs::from("", "", "monkctl") {
        let user = dirs.config_dir().join("monk.toml");
        if user.is_file() {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

fn read_config(path: &Path) -> Result<FileConfig> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::BadInput {
        path: path.to_path_buf(),
        line: 0,
        message: format!("the config file is not UTF-8 ({e})"),
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count())
            .unwrap_or(0);
        Error::BadInput {
            path: path.to_path_buf(),
            line,
            message: format!(
                "{}; valid keys are data_dir, database_url, fixtures_dir, migrations_dir, sqlite_data_dir, layout",
                e.message()
            ),
        }
    })
}

/// What `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite:NAME`: the infra database's name.
    Sqlite(String),
    Postgres(PgUrl),
}

/// A `postgresql://` or `postgres://` URL, split into what monkctl needs. `url` holds the
/// password and is handed only to the driver; everything printed uses `redacted`.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// The URL as given, without the TLS parameters monkctl handles itself.
    pub url: String,
    /// The URL with its password replaced by `***`.
    pub redacted: String,
    /// The database named in the URL's path (default `monk`, as the API's default).
    pub database: String,
    /// `sslmode`: `disable`, `prefer` (the default), `require`, `verify-ca` or `verify-full`.
    pub sslmode: String,
    /// `sslrootcert`: a PEM file of the certificates to trust (verify-ca, verify-full).
    pub sslrootcert: Option<PathBuf>,
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgUrl")
            .field("url", &self.redacted)
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

/// The `sslmode` values monkctl understands (libpq's, without `allow`).
pub const SSL_MODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

/// Parses `DATABASE_URL` as the API reads it: `sqlite:NAME`, or a PostgreSQL URL.
pub fn parse_database_url(url: &str) -> Result<DatabaseUrl> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgresql://") || lower.starts_with("postgres://") {
        return parse_postgres_url(url).map(DatabaseUrl::Postgres);
    }
    let Some(name) = url.strip_prefix("sqlite:") else {
        return Err(Error::Usage(format!(
            "DATABASE_URL '{}' is not understood: use sqlite:NAME (default sqlite:monk) or postgresql://USER@HOST[:PORT]/DATABASE",
            redact(url)
        )));
    };
    let name = name.trim_start_matches("//");
    super::names::path_component("database name in DATABASE_URL", name)?;
    Ok(DatabaseUrl::Sqlite(name.to_string()))
}

fn parse_postgres_url(url: &str) -> Result<PgUrl> {
    let bad = |why: String| {
        Error::Usage(format!(
            "DATABASE_URL '{}' is not a valid PostgreSQL URL: {why}; use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require]",
            redact(url)
        ))
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (mut sslmode, mut sslrootcert, mut kept) = ("prefer".to_string(), None, Vec::new());
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => {
                if !SSL_MODES.contains(&v) {
                    return Err(bad(format!(
                        "sslmode '{}' is not one of {}",
                        v.escape_debug(),
                        SSL_MODES.join(", ")
                    )));
                }
                sslmode = v.to_string();
            }
            "sslrootcert" => sslrootcert = Some(PathBuf::from(v)),
            _ => kept.push(pair),
        }
    }
    let rest = &base[base.find("://").map(|i| i + 3).unwrap_or(0)..];
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let database = if path.is_empty() {
        "monk".to_string()
    } else if path.contains('%') || path.contains('/') {
        return Err(bad("the database name must be a plain name".into()));
    } else {
        path.to_string()
    };
    let mut clean = if path.is_empty() {
        format!("{}/{database}", base.trim_end_matches('/'))
    } else {
        base.to_string()
    };
    if !kept.is_empty() {
        clean = format!("{clean}?{}", kept.join("&"));
    }
    clean
        .parse::<postgres::Config>()
        .map_err(|e| bad(e.to_string()))?;
    Ok(PgUrl {
        redacted: redact(&clean),
        url: clean,
        database,
        sslmode,
        sslrootcert,
    })
}

/// A URL without its password (`scheme://user@host...`), for a command line to print: run as
/// printed, it takes the password from `PGPASSWORD`.
pub fn without_password(url: &str) -> String {
    let shown = redact(url);
    shown.replacen(":***@", "@", 1)
}

/// Hides a password in a URL before it is printed (`scheme://user:***@host...`).
pub fn redact(url: &str) -> String {
    let Some(s) = url.find("://") else {
        return url.to_string();
    };
    let auth_end = url[s + 3..]
        .find(['/', '?'])
        .map(|i| s + 3 + i)
        .unwrap_or(url.len());
    let Some(at) = url[..auth_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &url[s + 3..at];
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{}://{user}:***{}", &url[..s], &url[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flag_env_default() {
        let env = |k: &str| (k == ENV_DATA_DIR).then(|| "/from/env".to_string());
        let s = Settings::resolve_with(&Overrides::default(), env).unwrap();
        assert_eq!(s.data_dir.value, PathBuf::from("/from/env"));
        assert_eq!(s.data_dir.source, Source::Env(ENV_DATA_DIR.into()));
        let o = Overrides {
            data_dir: Some("/flag".into()),
            ..Default::default()
        };
        let s = Settings::resolve_with(&o, env).unwrap();
        assert_eq!(s.data_dir.source, Source::Flag);
        assert_eq!(s.database_name, "monk");
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            parse_database_url("sqlite:prod").unwrap(),
            DatabaseUrl::Sqlite("prod".into())
        );
        let DatabaseUrl::Postgres(pg) =
            parse_database_url("postgresql://u:secret@h:5433/db?sslmode=require").unwrap()
        else {
            panic!("a PostgreSQL URL")
        };
        assert_eq!(pg.database, "db");
        assert_eq!(pg.sslmode, "require");
        assert_eq!(pg.redacted, "postgresql://u:***@h:5433/db");
        assert_eq!(without_password(&pg.url), "postgresql://u@h:5433/db");
        assert_eq!(without_password("sqlite:monk"), "sqlite:monk");
        assert!(!format!("{pg:?}").contains("secret"));
        let DatabaseUrl::Postgres(pg) = parse_database_url("postgres://h").unwrap() else {
            panic!("a PostgreSQL URL")
        };
        assert_eq!(pg.database, "monk");
        let e = parse_database_url("postgresql://u:secret@h/db?sslmode=maybe").unwrap_err();
        assert_eq!(e.exit_code(), super::super::error::exit::USAGE);
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(parse_database_url("sqlite:../etc").is_err());
        assert!(parse_database_url("mysql://x").is_err());
    }
}
