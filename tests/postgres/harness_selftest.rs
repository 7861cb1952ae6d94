//! The harness itself: each case's database, the reference dump, and the runner's verdicts
//! (by running this test binary again, with cases that exist only for that).

use std::process::Output;

use crate::pgdb::{split_password, PrivateServer};
use crate::{PgDb, REQUIRE_VAR, URL_VAR};

cases![
    fresh_database_is_empty_and_the_cases_own,
    databases_of_cases_are_separate_and_dropped,
    reference_dump_restores_the_api_deployment,
    monkctl_gets_the_case_database_and_hides_its_password,
    a_failing_case_fails_the_run_and_keeps_its_database,
    without_a_server_every_case_is_skipped_never_passed,
    a_required_or_unusable_server_fails_the_run,
    list_and_exact_select_cases_as_libtest_does,
    with_postgres_stops_its_server_however_its_command_ends,
];

/// Set to run `DEMO_CASES` too.
pub const DEMO_VAR: &str = "MONKCTL_PG_HARNESS_DEMO";

pub const DEMO_CASES: &[crate::Case] = &[
    crate::Case {
        path: "postgres::harness_demo::passes",
        run: demo_passes,
    },
    crate::Case {
        path: "postgres::harness_demo::fails",
        run: demo_fails,
    },
];

fn demo_passes(db: &PgDb) {
    db.sql("CREATE TABLE t (x int)");
    println!("demo database: {}", db.name());
}

fn demo_fails(db: &PgDb) {
    db.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    println!("demo database: {}", db.name());
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM t"),
        2,
        "demo failure"
    );
}

/// Names of the non-system schemas and relations of the database.
fn user_objects(db: &PgDb) -> (Vec<String>, i64) {
    let schemas = db
        .client()
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
             AND nspname <> 'information_schema' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let relations = db.scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'",
    );
    (schemas, relations)
}

fn exists(db: &PgDb, database: &str) -> bool {
    db.server()
        .admin_client()
        .unwrap()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&database],
        )
        .unwrap()
        .get(0)
}

fn fresh_database_is_empty_and_the_cases_own(db: &PgDb) {
    assert!(db.name().starts_with("monkctl_test_"), "{}", db.name());
    assert_eq!(db.scalar::<String>("SELECT current_database()"), db.name());
    assert_eq!(user_objects(db), (vec!["public".to_string()], 0));
    assert_eq!(
        db.scalar::<String>("SELECT string_agg(extname, ',') FROM pg_extension"),
        "plpgsql"
    );
    assert!(exists(db, db.name()));
    // Its data directory is the case's alone, and empty.
    assert!(db.data_dir().starts_with(db.env().root()));
    assert!(!db.data_dir().exists());
}

fn databases_of_cases_are_separate_and_dropped(db: &PgDb) {
    db.sql("CREATE TABLE mine (x int); INSERT INTO mine VALUES (7)");
    let other = db.server().fresh_database().unwrap();
    assert_ne!(other.name(), db.name());
    assert_ne!(other.data_dir(), db.data_dir());
    assert_eq!(user_objects(&other), (vec!["public".to_string()], 0));
    other.sql("CREATE TABLE theirs (x int)");
    // Still connected when it is dropped: the drop ends that session.
    let mut open = other.client();
    let name = other.name().to_string();
    other.drop_database().unwrap();
    assert!(
        !exists(db, &name),
        "{name} is still there after drop_database"
    );
    assert!(open.simple_query("SELECT 1").is_err());
    assert_eq!(db.scalar::<i32>("SELECT x FROM mine"), 7);
    assert!(db
        .scalar::<Option<String>>("SELECT to_regclass('theirs')::text")
        .is_none());
}

fn reference_dump_restores_the_api_deployment(db: &PgDb) {
    db.restore_reference_dump();
    assert_eq!(
        db.scalar::<String>(
            "SELECT string_agg(name || ':' || db_type || ':' || schema, ',' ORDER BY name) \
             FROM public.tenants"
        ),
        "acme:postgresql:ns_tenant_acme,globex:postgresql:ns_tenant_globex"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_acme.widgets"),
        3
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM ns_tenant_globex.models"),
        7
    );
    // pgcrypto lands in the schema of the first tenant the API created.
    assert_eq!(
        db.scalar::<String>(
            "SELECT n.nspname::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgcrypto'"
        ),
        "ns_tenant_acme"
    );
    // A data-only dump of the registry names both rows as the reference file does.
    let reference = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/postgres/infra-data.sql"),
    )
    .unwrap();
    for id in db
        .client()
        .query("SELECT id::text FROM public.tenants", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
    {
        assert!(
            reference.contains(&id),
            "tenant id {id} not in infra-data.sql"
        );
    }
}

fn monkctl_gets_the_case_database_and_hides_its_password(db: &PgDb) {
    let out = db.monkctl().arg("config").output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(db.name()),
        "monkctl config does not name the database {}:\n{text}",
        db.name()
    );
    let (_, password) = split_password(db.url());
    let password = password.expect("the test URL has a password");
    assert!(
        !text.contains(&password),
        "monkctl config shows the password:\n{text}"
    );
}

/// This test binary again, with `args`, the demo cases, and the environment changed by `env`.
fn harness(args: &[&str], env: &[(&str, Option<&str>)]) -> (Output, String) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(args).env(DEMO_VAR, "1");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

fn demo_database(stdout: &str, case: &str) -> String {
    // Each demo case prints its database; the failed one's output is in its failure report.
    let printed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("demo database: "))
        .collect();
    let kept = stdout
        .lines()
        .find_map(|l| l.split("kept for inspection: database ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string());
    match case {
        "fails" => kept.expect("the failed case's kept database is named"),
        _ => printed
            .iter()
            .find(|n| Some(n.to_string()) != kept)
            .expect("the passed case printed its database")
            .to_string(),
    }
}

fn a_failing_case_fails_the_run_and_keeps_its_database(db: &PgDb) {
    let (out, stdout) = harness(&["harness_demo::"], &[]);
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert!(
        stdout.contains("test harness_demo::passes ... ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("test harness_demo::fails ... FAILED"),
        "{stdout}"
    );
    assert!(stdout.contains("demo failure"), "{stdout}");
    assert!(
        stdout.contains("test result: FAILED. 1 passed; 1 failed; 0 ignored;"),
        "{stdout}"
    );
    let kept = demo_database(&stdout, "fails");
    let dropped = demo_database(&stdout, "passes");
    assert!(
        !exists(db, &dropped),
        "the passed case's {dropped} was not dropped"
    );
    assert!(exists(db, &kept), "the failed case's {kept} was not kept");
    // The kept database holds what the case left; then it goes.
    let mut admin = db.server().admin_client().unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE \"{kept}\" WITH (FORCE)"))
        .unwrap();
    let dir = stdout
        .lines()
        .find_map(|l| l.split(", data directory ").nth(1))
        .expect("the kept data directory is named");
    let root = std::path::Path::new(dir).parent().unwrap();
    assert!(root.is_dir(), "{dir}");
    std::fs::remove_dir_all(root).unwrap();
}

fn without_a_server_every_case_is_skipped_never_passed(_db: &PgDb) {
    let (out, stdout) = harness(&["harness_"], &[(URL_VAR, None), (REQUIRE_VAR, None)]);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let n = crate::all_cases()
        .iter()
        .filter(|c| c.name().contains("harness_"))
        .count()
        + DEMO_CASES.len();
    let ignored = stdout
        .lines()
        .filter(|l| {
            l.starts_with("test ") && l.ends_with(" ... ignored, skipped: no PostgreSQL server")
        })
        .count();
    assert_eq!(ignored, n, "{stdout}");
    assert!(!stdout.contains("... ok"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "test result: ok. 0 passed; 0 failed; {n} ignored;"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("scripts/with-postgres"), "{stdout}");
}

fn a_required_or_unusable_server_fails_the_run(db: &PgDb) {
    let (out, stdout) = harness(
        &["harness_demo::passes"],
        &[(URL_VAR, None), (REQUIRE_VAR, Some("1"))],
    );
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("MONKCTL_REQUIRE_POSTGRES=1"), "{stdout}");
    assert!(
        stdout.contains("test harness_demo::passes ... FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("test result: FAILED. 0 passed; 1 failed;"),
        "{stdout}"
    );

    // A wrong password fails the run whether or not a server is required, and is not shown.
    let wrong = db.url_with_password("not-the-password");
    assert_ne!(split_password(&wrong).1, split_password(db.url()).1);
    assert_eq!(split_password(&wrong).0, split_password(db.url()).0);
    let (out, stdout) = harness(
        &["harness_demo::passes"],
        &[(URL_VAR, Some(&wrong)), (REQUIRE_VAR, None)],
    );
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert!(
        stdout.contains("password authentication failed"),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-password"), "{stdout}");
    assert!(
        stdout.contains("test result: FAILED. 0 passed; 1 failed;"),
        "{stdout}"
    );
}

fn list_and_exact_select_cases_as_libtest_does(_db: &PgDb) {
    let (out, stdout) = harness(&["--list"], &[(URL_VAR, None)]);
    assert!(out.status.success());
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .collect();
    assert!(listed.contains(&"harness_selftest::reference_dump_restores_the_api_deployment"));
    assert!(listed.contains(&"harness_demo::fails"));
    assert!(stdout.contains(&format!("{} tests, 0 benchmarks", listed.len())));

    let (_, stdout) = harness(
        &[
            "--list",
            "--format",
            "terse",
            "--exact",
            "harness_demo::fails",
        ],
        &[(URL_VAR, None)],
    );
    assert_eq!(stdout, "harness_demo::fails: test\n");
    let (_, stdout) = harness(
        &[
            "--list",
            "--format=terse",
            "harness_demo",
            "--skip",
            "fails",
        ],
        &[(URL_VAR, None)],
    );
    assert_eq!(stdout, "harness_demo::passes: test\n");
    // `cargo bench` runs this binary with --bench: it has no benchmark.
    let (out, stdout) = harness(&["--bench"], &[(URL_VAR, None)]);
    assert!(out.status.success());
    assert!(stdout.contains("running 0 tests"), "{stdout}");
}

/// What a running private server says about itself: its socket directory (inside its temporary
/// directory) and that it answers.
fn socket_dir(server: &PrivateServer) -> std::path::PathBuf {
    let mut c = postgres::Client::connect(server.url(), postgres::NoTls).unwrap();
    let dir: String = c
        .query_one(
            "SELECT setting FROM pg_settings WHERE name = 'unix_socket_directories'",
            &[],
        )
        .unwrap()
        .get(0);
    let listen: String = c
        .query_one(
            "SELECT setting FROM pg_settings WHERE name = 'listen_addresses'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(listen, "127.0.0.1");
    let dir = std::path::PathBuf::from(dir);
    assert!(dir.join("data").is_dir(), "{}", dir.display());
    dir
}

fn assert_gone(url: &str, dir: &std::path::Path) {
    assert!(
        postgres::Client::connect(url, postgres::NoTls).is_err(),
        "the server still answers after its script ended"
    );
    assert!(!dir.exists(), "{} is still there", dir.display());
}

fn with_postgres_stops_its_server_however_its_command_ends(_db: &PgDb) {
    use std::os::unix::process::ExitStatusExt;
    // Three servers side by side, each ending another way.
    let ends = std::thread::scope(|scope| {
        // The command ends by itself: its exit code is the script's.
        let by_itself = scope.spawn(|| {
            let mut server = PrivateServer::start_running("cat >/dev/null; exit 7");
            let (url, dir) = (server.url().to_string(), socket_dir(&server));
            drop(server.stdin().take());
            (server.wait(), url, dir)
        });
        // SIGTERM (`stop`) and SIGINT to the script: passed on to the command, then the
        // server goes.
        let terminated = scope.spawn(|| {
            let server = PrivateServer::start();
            let (url, dir) = (server.url().to_string(), socket_dir(&server));
            (server.stop(), url, dir)
        });
        let interrupted = scope.spawn(|| {
            let server = PrivateServer::start();
            let (url, dir) = (server.url().to_string(), socket_dir(&server));
            (server.signal(libc::SIGINT), url, dir)
        });
        [(by_itself, 7), (terminated, 143), (interrupted, 130)]
            .map(|(h, code)| (h.join().expect("a server's thread"), code))
    });
    for ((status, url, dir), code) in ends {
        assert_eq!(
            status.code(),
            Some(code),
            "{status:?} {:?}",
            status.signal()
        );
        assert_gone(&url, &dir);
    }
}
