//! TLS to PostgreSQL, with libpq's `sslmode` meanings: a private server that accepts only TLS
//! connections (its `pg_hba.conf` has `hostssl` lines alone), with a certificate for
//! 127.0.0.1 signed by a test authority.

use std::path::Path;
use std::process::Command;

use crate::pgdb::PrivateServer;
use crate::PgDb;

cases![sslmodes_as_libpq_means_them];

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (installed with PostgreSQL's ssl-cert) runs");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA, and a server certificate for IP 127.0.0.1 that it signed; and a second CA that signed
/// nothing here.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=monkctl test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=other CA",
            "-keyout",
            "other.key",
            "-out",
            "other.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}

fn sslmodes_as_libpq_means_them(db: &PgDb) {
    let dir = db.env().root().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let server = PrivateServer::start();
    let mut admin = postgres::Client::connect(server.url(), postgres::NoTls).unwrap();
    let data: String = admin.query_one("SHOW data_directory", &[]).unwrap().get(0);
    let mut write = |bytes: Vec<u8>, path: String| {
        let oid: u32 = admin
            .query_one("SELECT lo_from_bytea(0, $1)", &[&bytes])
            .unwrap()
            .get(0);
        admin
            .execute("SELECT lo_export($1, $2)", &[&oid, &path])
            .unwrap();
        admin.execute("SELECT lo_unlink($1)", &[&oid]).unwrap();
    };
    // The server writes the files itself (as its own user, mode 0600), then serves TLS only.
    for name in ["server.crt", "server.key"] {
        write(
            std::fs::read(dir.join(name)).unwrap(),
            format!("{data}/{name}"),
        );
    }
    // lo_export leaves the file readable by all; the server takes a private key only when it is
    // not (and keeps TLS off otherwise).
    {
        use std::os::unix::fs::PermissionsExt;
        let key = format!("{data}/server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    write(
        b"hostssl all all 127.0.0.1/32 scram-sha-256\n".to_vec(),
        format!("{data}/pg_hba.conf"),
    );
    // One statement a message: ALTER SYSTEM may not run inside a (multi-statement) block.
    for sql in [
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "SELECT pg_reload_conf()",
    ] {
        admin.simple_query(sql).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let base = crate::pgdb::with_database(server.url(), "postgres");
    let with = |params: &str| format!("{base}?{params}");
    let run = |url: &str| {
        db.env()
            .cmd()
            .args(["--database-url", url, "init"])
            .output()
            .unwrap()
    };
    let password = crate::pgdb::split_password(server.url())
        .1
        .unwrap_or_default();
    let code = |url: &str| {
        let out = run(url);
        let all = format!("{out:?}");
        assert!(
            !all.contains(&password) || password.is_empty(),
            "the password was printed"
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Without TLS the server refuses the login (no pg_hba line for it): exit 9.
    let (c, err) = code(&with("sslmode=disable"));
    assert_eq!(c, Some(9), "{err}");
    // `prefer` (the default) and `require` encrypt without checking the certificate.
    let ssl: String = admin.query_one("SHOW ssl", &[]).unwrap().get(0);
    assert_eq!(ssl, "on");
    let (c, err) = code(&base);
    assert_eq!(c, Some(0), "prefer: {err}");
    let (c, err) = code(&with("sslmode=require"));
    assert_eq!(c, Some(0), "require: {err}");
    // `verify-full` checks the chain and the name, against sslrootcert.
    let ca = dir.join("ca.crt");
    let other = dir.join("other.crt");
    let (c, err) = code(&with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca.display()
    )));
    assert_eq!(c, Some(0), "verify-full with the right CA: {err}");
    let (c, err) = code(&with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.display()
    )));
    assert_eq!(c, Some(22), "verify-full with another CA: {err}");
    let (c, err) = code(&with(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        other.display()
    )));
    assert_eq!(c, Some(22), "verify-ca with another CA: {err}");
    // By the name `localhost` the certificate (for 127.0.0.1) does not match: verify-full
    // refuses, verify-ca (chain only) accepts.
    let by_name = base.replacen("127.0.0.1", "localhost", 1);
    let (c, err) = code(&format!(
        "{by_name}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ));
    assert_eq!(c, Some(22), "verify-full by another name: {err}");
    let (c, err) = code(&format!(
        "{by_name}?sslmode=verify-ca&sslrootcert={}",
        ca.display()
    ));
    assert_eq!(c, Some(0), "verify-ca by another name: {err}");
    // A root file that is not PEM is a usage error.
    let (c, err) = code(&with("sslmode=verify-full&sslrootcert=/nonexistent.pem"));
    assert_eq!(c, Some(2), "{err}");
    drop(admin);
    server.stop();
}
