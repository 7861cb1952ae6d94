//! Name rules: the only gate between user input and a path or an SQL identifier.
//!
//! Tenant and user names follow the API (`^[a-z][a-z0-9_]*$`, at least 2 characters) and are at
//! most 53 characters so `ns_tenant_<name>` fits PostgreSQL's 63-byte identifier limit.

use super::error::{Error, Result};

pub const MAX_TENANT_NAME: usize = 53;

fn check(what: &'static str, value: &str, max: usize) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::InvalidName {
            what,
            value: value.escape_debug().to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("it is empty; use 2 to 53 characters: a-z, 0-9, _".into());
    }
    if value.len() < 2 {
        return bad("it must be at least 2 characters long".into());
    }
    if value.chars().count() > max {
        return bad(format!("it is longer than {max} characters"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return bad(format!(
            "'{}' is not allowed; use lower-case letters a-z, digits and _",
            c.escape_debug()
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lower-case letter a-z".into());
    }
    Ok(())
}

/// Validates a tenant name (`^[a-z][a-z0-9_]*$`, 2 to 53 characters).
pub fn tenant(name: &str) -> Result<()> {
    check("tenant name", name, MAX_TENANT_NAME)
}

/// Validates a user name: the same rule as tenant names.
pub fn user(name: &str) -> Result<()> {
    check("user name", name, 63)
}

/// Validates a plain name used for a fixture, template or file stem: the tenant rule, but `-` and
/// digits first are tolerated nowhere, so it is safe in a path and in SQL.
pub fn plain(what: &'static str, name: &str) -> Result<()> {
    check(what, name, 63)
}

/// A path component read back from the registry (`tenants.database`, `tenants.schema`): refused
/// when it could leave the data directory, whatever a hand edit put there.
pub fn path_component(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !value.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            value: value.escape_debug().to_string(),
            reason: "it is not a plain file name; fix the tenant's row in the registry".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_api_names() {
        for n in ["ab", "acme", "a_1", "x".repeat(53).as_str()] {
            tenant(n).unwrap();
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "x".repeat(54);
        for n in [
            "", "a", "Acme", "1abc", "_ab", "a-b", "../x", "a/b", "a'b", "a\"b", "é_ab", "ab ",
            &long, "a\0b",
        ] {
            assert!(tenant(n).is_err(), "{n:?} should be refused");
        }
    }

    #[test]
    fn path_components_cannot_escape() {
        for v in ["..", ".", "a/b", "", ".hidden", "a\\b"] {
            assert!(path_component("database", v).is_err(), "{v:?}");
        }
        path_component("database", "db_main").unwrap();
        path_component("schema", "ns_tenant_acme").unwrap();
    }
}
