//! PostgreSQL archive figures, on the server `MONKCTL_TEST_PG_URL` names (run the suite as
//! `scripts/with-postgres cargo bench --bench monk -- pgarchive`), in a database of its own that
//! is dropped afterwards. One tenant `big` of about 1 GiB (`MONK_BENCH_PGARCHIVE_MIB` for another
//! size): the schema `tenant create` builds, plus a user model `items` added as the API adds one
//! (its `models` and `fields` rows and its table), filled with rows of text, integer, numeric,
//! boolean, timestamp, jsonb, text[] and binary values. Its size is that of the schema's tables
//! with their indexes and TOAST.
//! 1. `extract big -o FILE` (the single-file SQLite archive) against `pg_dump -Fc -n
//!    ns_tenant_big` of the same schema.
//! 2. `restore FILE --as big2` into the same deployment against `pg_restore --no-owner
//!    --exit-on-error` of that dump into a new empty database.
//!
//!    Each side of figures 1 and 2 runs three times, the sides alternating, each after a
//!    checkpoint and a sync; the medians are compared.
//! 3. The peak resident memory (VmHWM, sampled while it runs) of extract and of restore on that
//!    tenant (the highest of the three runs), and of one run of each on a tenant of a quarter
//!    of the size: memory that does not grow with the tenant gives the same figures.
//!
//! Without a server the suite prints a line saying it was skipped; with
//! `MONKCTL_REQUIRE_POSTGRES=1` (set by `scripts/with-postgres`) a server that cannot be used is
//! an error instead.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use monkctl::core::backend::postgres::find_client;

use crate::postgres::{size, split_password, Db, Server, URL_VAR};
use crate::util::{measured, median, report, run_ok, scratch, settle};

/// Rounds of figures 1 and 2, the two sides alternating.
const ROUNDS: usize = 3;
/// Rows of the first batch, from which the rows for the size are worked out.
const PROBE_ROWS: i64 = 20_000;
/// Rows per `INSERT ... SELECT` after it.
const BATCH_ROWS: i64 = 200_000;

/// Stops the run: the server was promised (`MONKCTL_REQUIRE_POSTGRES=1`) but is not usable.
/// Otherwise says why the suite is skipped.
fn skip(why: &str) {
    if std::env::var("MONKCTL_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("pgarchive suite: {why} (MONKCTL_REQUIRE_POSTGRES=1)");
    }
    println!(
        "skipped: {why}; run it as `scripts/with-postgres cargo bench --bench monk -- pgarchive`"
    );
}

fn mem(figure: &str, mib: f64) {
    println!("{figure:<58} peak memory {mib:>7.1} MiB | target flat");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).expect("size").len()
}

/// `pg_dump` or `pg_restore` on the database of `url`: the password in its environment rather
/// than on its command line.
fn pg_tool(tool: &Path, url: &str) -> Command {
    let (url, password) = split_password(url);
    let mut c = Command::new(tool);
    c.arg("-d").arg(url);
    match password {
        Some(p) => c.env("PGPASSWORD", p),
        None => c.env_remove("PGPASSWORD"),
    };
    c
}

/// Before each timed run: what the runs before it wrote (and the files of what they dropped)
/// written out, so that no run pays for another's.
fn quiet(server: &Server) {
    server.sql(&["CHECKPOINT"]);
    settle();
}

/// The tables of `schema` with their indexes and TOAST, in bytes.
fn schema_bytes(db: &Db<'_>, schema: &str) -> i64 {
    db.scalar_i64(&format!(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p')"
    ))
}

/// The user fields of `items` and their column types.
const FIELDS: [(&str, &str, &str, bool); 9] = [
    ("name", "text", "text NOT NULL", true),
    ("qty", "integer", "integer", false),
    ("price", "numeric", "numeric", false),
    ("active", "boolean", "boolean", false),
    ("seen_at", "timestamp", "timestamp", false),
    ("meta", "jsonb", "jsonb", false),
    ("tags", "text[]", "text[]", false),
    ("body", "text", "text", false),
    ("blob", "binary", "bytea", false),
];

/// Rows `from..=to` of `items`: prices of two decimals, timestamps with microseconds, a small
/// jsonb object, a two-element array, some 300 bytes of text and 64 bytes of binary per row.
fn fill_sql(schema: &str, from: i64, to: i64) -> String {
    let body: Vec<String> = (0..9)
        .map(|k| format!("md5((i * 9 + {k})::text)"))
        .collect();
    let blob: Vec<String> = (0..4).map(|k| format!("md5(i::text || '/{k}')")).collect();
    let columns: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
    format!(
        "INSERT INTO {schema}.items ({}) \
         SELECT 'item ' || i, i % 1000, round((i % 100000) / 100.0, 2), i % 3 = 0, \
           timestamp '2020-01-01' + i * interval '1 second' + (i::int8 * 7919 % 1000000) * interval '1 microsecond', \
           jsonb_build_object('n', i, 'kind', 'k' || (i % 17), 'ok', i % 2 = 0), \
           ARRAY['tag' || (i % 10), 'group' || (i % 7)], \
           'body ' || i || ' ' || {}, \
           decode({}, 'hex') \
         FROM generate_series({from}, {to}) AS i",
        columns.join(", "),
        body.join(" || "),
        blob.join(" || "),
    )
}

/// Tenant `name`, with the user model `items` added in SQL as the API adds one and filled to
/// about `target_mib` MiB. Returns its rows and its size in bytes.
fn build(db: &Db<'_>, data: &Path, name: &str, target_mib: u64) -> (i64, i64) {
    run_ok(db.monk(data).args(["tenant", "create", name]));
    let schema = format!("ns_tenant_{name}");
    let mut c = db.client();
    let fields: Vec<String> = FIELDS
        .iter()
        .map(|(f, ty, _, required)| format!("('items', '{f}', '{ty}', {required})"))
        .collect();
    let columns: Vec<String> = FIELDS
        .iter()
        .map(|(f, _, col, _)| format!("{f} {col}"))
        .collect();
    c.batch_execute(&format!(
        "SET TIME ZONE 'UTC'; \
         INSERT INTO {schema}.models (model_name, status, description) VALUES ('items', 'active', 'bench'); \
         INSERT INTO {schema}.fields (model_name, field_name, type, required) VALUES {}; \
         CREATE TABLE {schema}.items (id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY, \
           access_read uuid[] DEFAULT '{{}}'::uuid[], access_edit uuid[] DEFAULT '{{}}'::uuid[], \
           access_full uuid[] DEFAULT '{{}}'::uuid[], access_deny uuid[] DEFAULT '{{}}'::uuid[], \
           created_at timestamp DEFAULT now() NOT NULL, updated_at timestamp DEFAULT now() NOT NULL, \
           trashed_at timestamp, deleted_at timestamp, {})",
        fields.join(", "),
        columns.join(", "),
    ))
    .expect("add the items model");
    let empty = schema_bytes(db, &schema);
    let target = (target_mib * 1048576) as i64;
    c.batch_execute(&fill_sql(&schema, 1, PROBE_ROWS))
        .expect("first rows");
    let per_row = ((schema_bytes(db, &schema) - empty) as f64 / PROBE_ROWS as f64).max(1.0);
    let rows = (((target - empty) as f64 / per_row) as i64).max(PROBE_ROWS);
    let mut done = PROBE_ROWS;
    while done < rows {
        let to = (done + BATCH_ROWS).min(rows);
        c.batch_execute(&fill_sql(&schema, done + 1, to))
            .expect("rows");
        done = to;
    }
    c.batch_execute(&format!("VACUUM ANALYZE {schema}.items"))
        .expect("vacuum");
    (rows, schema_bytes(db, &schema))
}

fn items(db: &Db<'_>, schema: &str) -> i64 {
    db.scalar_i64(&format!("SELECT count(*) FROM {schema}.items"))
}

/// Removes tenant `name` restored by a round: its registry rows and its schema.
fn drop_tenant(db: &Db<'_>, name: &str) {
    db.client()
        .batch_execute(&format!(
            "DELETE FROM public.tenant_fixtures WHERE tenant_id IN \
               (SELECT id FROM public.tenants WHERE name = '{name}'); \
             DELETE FROM public.tenants WHERE name = '{name}'; \
             DROP SCHEMA ns_tenant_{name} CASCADE"
        ))
        .expect("drop the restored tenant");
}

pub fn run() {
    let admin_url = match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => u,
        _ => return skip(&format!("no PostgreSQL server ({URL_VAR} is not set)")),
    };
    let (Some(psql), Some(pg_dump), Some(pg_restore)) = (
        find_client("psql"),
        find_client("pg_dump"),
        find_client("pg_restore"),
    ) else {
        return skip(
            "psql, pg_dump or pg_restore was not found (PATH, `pg_config --bindir`, /usr/lib/postgresql/*/bin)",
        );
    };
    let server = match Server::new(&admin_url, psql) {
        Ok(s) => s,
        Err(e) => return skip(&format!("the server of {URL_VAR} cannot be used: {e}")),
    };
    let full_mib = size("MONK_BENCH_PGARCHIVE_MIB", 1024) as u64;
    let root = scratch("pgarchive");
    let data = root.join("data");
    let db = server.database("pgarch");
    run_ok(db.monk(&data).arg("init"));

    let t = Instant::now();
    let (rows, bytes) = build(&db, &data, "big", full_mib);
    println!(
        "tenant big: {:.0} MiB, {rows} rows in its user model (built in {:.0} s; set MONK_BENCH_PGARCHIVE_MIB for another size)",
        mib(bytes as u64),
        t.elapsed().as_secs_f64()
    );
    let (extract_peak, restore_peak) = compare(
        &server,
        &db,
        &data,
        &root,
        &pg_dump,
        &pg_restore,
        (rows, bytes),
    );

    // Figure 3's second size, in the same deployment.
    let quarter_mib = (full_mib / 4).max(1);
    let (q_rows, q_bytes) = build(&db, &data, "quarter", quarter_mib);
    let q_archive = root.join("quarter.monk.db");
    quiet(&server);
    let (_, q_extract) = measured(
        db.monk(&data)
            .args(["extract", "quarter", "-o"])
            .arg(&q_archive),
    );
    quiet(&server);
    let (_, q_restore) = measured(
        db.monk(&data)
            .arg("restore")
            .arg(&q_archive)
            .args(["--as", "quarter2"]),
    );
    assert_eq!(
        items(&db, "ns_tenant_quarter2"),
        q_rows,
        "restore brought every row"
    );
    let size = |b: i64| format!("a {:.0} MiB tenant", mib(b as u64));
    mem(&format!("extract, {}", size(bytes)), extract_peak);
    mem(
        &format!("extract, {} (a quarter)", size(q_bytes)),
        q_extract,
    );
    mem(&format!("restore --as, {}", size(bytes)), restore_peak);
    mem(
        &format!("restore --as, {} (a quarter)", size(q_bytes)),
        q_restore,
    );

    drop(db);
    std::fs::remove_dir_all(&root).expect("remove bench data");
}

/// Figures 1 and 2 on tenant `big`. Returns the highest peak memory of extract and of restore.
fn compare(
    server: &Server,
    db: &Db<'_>,
    data: &Path,
    root: &Path,
    pg_dump: &Path,
    pg_restore: &Path,
    (rows, bytes): (i64, i64),
) -> (f64, f64) {
    let archive = root.join("big.monk.db");
    let dump = root.join("big.dump");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut extract_peak: f64 = 0.0;
    for round in 0..ROUNDS {
        let _ = std::fs::remove_file(&archive);
        quiet(server);
        let (d, m) = measured(db.monk(data).args(["extract", "big", "-o"]).arg(&archive));
        ours.push(d);
        extract_peak = extract_peak.max(m);
        let _ = std::fs::remove_file(&dump);
        quiet(server);
        let (d, _) = measured(
            pg_tool(pg_dump, &db.url)
                .args(["-Fc", "-n", "ns_tenant_big", "-f"])
                .arg(&dump),
        );
        theirs.push(d);
        println!(
            "  extract round {}: monkctl {:.0} ms, pg_dump {:.0} ms",
            round + 1,
            ours[round].as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3
        );
    }
    println!(
        "archive {:.0} MiB, custom-format dump {:.0} MiB",
        mib(file_size(&archive)),
        mib(file_size(&dump))
    );
    report(
        &format!(
            "extract a {:.0} MiB tenant (median of {ROUNDS})",
            mib(bytes as u64)
        ),
        median(ours),
        "pg_dump -Fc -n of its schema",
        median(theirs),
        "<= 1.0x (no slower)",
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut restore_peak: f64 = 0.0;
    for round in 0..ROUNDS {
        quiet(server);
        let (d, m) = measured(
            db.monk(data)
                .arg("restore")
                .arg(&archive)
                .args(["--as", "big2"]),
        );
        ours.push(d);
        restore_peak = restore_peak.max(m);
        assert_eq!(
            items(db, "ns_tenant_big2"),
            rows,
            "restore brought every row"
        );
        drop_tenant(db, "big2");
        let fresh = server.database("pgrestore");
        quiet(server);
        let (d, _) = measured(
            pg_tool(pg_restore, &fresh.url)
                .args(["--no-owner", "--exit-on-error"])
                .arg(&dump),
        );
        theirs.push(d);
        assert_eq!(
            items(&fresh, "ns_tenant_big"),
            rows,
            "pg_restore brought every row"
        );
        drop(fresh);
        println!(
            "  restore round {}: monkctl {:.0} ms, pg_restore {:.0} ms",
            round + 1,
            ours[round].as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3
        );
    }
    report(
        &format!("restore --as into the same deployment (median of {ROUNDS})"),
        median(ours),
        "pg_restore into a new database",
        median(theirs),
        "<= 1.5x",
    );
    let _ = std::fs::remove_file(&dump);
    (extract_peak, restore_peak)
}
