#!/usr/bin/env bash
# compare-ddl.sh URL
#
# Proves that monkctl's PostgreSQL DDL creates what Monk API 6.2 creates. URL names a PostgreSQL
# (15 or later) server and a database to connect to (postgresql://user@host:port/postgres); the
# user must be allowed to create databases. Three scratch databases are created there and
# dropped again on exit:
#   A  monk.dump (written by the API: tenants acme and globex) restored with pg_restore --no-owner
#   B  migrations/infra-postgres V1+V2, then CREATE SCHEMA ns_tenant_globex, SET LOCAL search_path
#      to it alone and src/core/sql/postgres/system.sql, all in one transaction, in a session
#      whose time zone is not UTC
#   C  V1 alone, then V2
# and compared:
#   1. pg_dump --schema-only of schema ns_tenant_globex of A and B (comments, blank lines and
#      \restrict lines out)
#   2. every row of every table of that schema in A and B, ids and timestamps masked (the
#      all-zero root id is kept), sorted; the state of its sequence
#   3. B's seed timestamps are UTC wall-clock time: one value, within a minute of UTC now
#   4. V1 run on A (a registry the API made) changes nothing in A's schema public; V2 runs on it
#   5. the DDL of public.tenants and public.tenant_fixtures (pg_dump -s -t) of C after V1 and
#      the API's own text of them in monk.dump
#   6. the same DDL of C after V2 and of B
#   7. V1+V2 run a second time on B change nothing
# Exit status: 0 when everything is equal, 1 when something differs (the differences are
# printed), 2 on bad usage or when a step cannot run.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 URL   (for example postgresql://postgres@127.0.0.1:5432/postgres)" >&2
    exit 2
fi
URL=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
DUMP=$HERE/monk.dump
V1=$ROOT/migrations/infra-postgres/V1__tenant_registry.sql
V2=$ROOT/migrations/infra-postgres/V2__fixture_versions.sql
SYSTEM=$ROOT/src/core/sql/postgres/system.sql
SCHEMA=ns_tenant_globex
ROOT_ID=00000000-0000-0000-0000-000000000000

for f in "$DUMP" "$V1" "$V2" "$SYSTEM"; do
    [ -r "$f" ] || { echo "compare-ddl: cannot read $f" >&2; exit 2; }
done
for tool in psql pg_dump pg_restore diff; do
    command -v "$tool" >/dev/null || { echo "compare-ddl: $tool is not on the PATH" >&2; exit 2; }
done

# The URL with its database (the path) replaced; query parameters are kept.
url_for() {
    local url=$1 db=$2 query="" scheme rest authority
    case $url in *\?*) query="?${url#*\?}"; url=${url%%\?*} ;; esac
    scheme=${url%%://*}
    rest=${url#*://}
    authority=${rest%%/*}
    printf '%s://%s/%s%s' "$scheme" "$authority" "$db" "$query"
}

DB_A=monkctl_cmp_a_$$
DB_B=monkctl_cmp_b_$$
DB_C=monkctl_cmp_c_$$
URL_A=$(url_for "$URL" "$DB_A")
URL_B=$(url_for "$URL" "$DB_B")
URL_C=$(url_for "$URL" "$DB_C")
WORK=$(mktemp -d)

psql_on() { # URL, then psql arguments
    local url=$1
    shift
    PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"
}

cleanup() {
    psql_on "$URL" -c "DROP DATABASE IF EXISTS $DB_A WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $DB_B WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $DB_C WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "compare-ddl: the step at line $LINENO failed" >&2; exit 2' ERR

fail_setup() {
    echo "compare-ddl: $1" >&2
    exit 2
}

psql_on "$URL" -c "CREATE DATABASE $DB_A" -c "CREATE DATABASE $DB_B" ||
    fail_setup "cannot create the scratch databases on $URL"

# A: the API's own database.
pg_restore --no-owner --exit-on-error -d "$URL_A" "$DUMP" ||
    fail_setup "pg_restore of $DUMP failed"

# B: what monkctl runs, in one transaction, in a session whose time zone is not UTC (the seed
# must write UTC wall-clock time whatever the session's zone).
{
    echo "BEGIN;"
    echo "SET LOCAL TimeZone = 'America/New_York';"
    cat "$V1" "$V2"
    echo "CREATE SCHEMA $SCHEMA;"
    echo "SET LOCAL search_path TO $SCHEMA;"
    cat "$SYSTEM"
    echo
    echo "COMMIT;"
} >"$WORK/b.sql"
psql_on "$URL_B" -f "$WORK/b.sql" >/dev/null || fail_setup "running the DDL on database B failed"

STATUS=0
report() { # title, left file, right file[, left label, right label]
    if diff -u --label "${4:-the API}: $1" --label "${5:-monkctl}: $1" "$2" "$3" >"$WORK/diff"; then
        echo "same: $1"
    else
        echo "DIFFERENT: $1"
        cat "$WORK/diff"
        STATUS=1
    fi
}

# A pg_dump without what differs between any two dumps of the same thing.
clean_dump() {
    pg_dump --schema-only --no-owner "$@" | grep -v -e '^--' -e '^$' -e '^\\restrict ' -e '^\\unrestrict '
}

# 1. The tenant schema's DDL.
clean_dump -n "$SCHEMA" -d "$URL_A" >"$WORK/a.ddl"
clean_dump -n "$SCHEMA" -d "$URL_B" >"$WORK/b.ddl"
report "pg_dump --schema-only -n $SCHEMA" "$WORK/a.ddl" "$WORK/b.ddl"

# 2. The seed rows. One query per table, made from A's columns: uuids other than the root id
# and every timestamp become constants, every other value is kept.
psql_on "$URL_A" -At >"$WORK/rows.sql" <<SQL
SELECT format('SELECT %L || '': '' || ROW(%s)::text FROM $SCHEMA.%I',
              c.relname,
              string_agg(
                  CASE
                      WHEN a.atttypid = 'uuid'::regtype THEN format(
                          'CASE WHEN %1\$I IS NULL THEN NULL WHEN %1\$I = %2\$L THEN %1\$I::text ELSE ''<uuid>'' END',
                          a.attname, '$ROOT_ID')
                      WHEN a.atttypid IN ('timestamp'::regtype, 'timestamptz'::regtype) THEN format(
                          'CASE WHEN %1\$I IS NULL THEN NULL ELSE ''<timestamp>'' END', a.attname)
                      ELSE format('%I', a.attname)
                  END, ', ' ORDER BY a.attnum),
              c.relname)
       || CASE WHEN row_number() OVER (ORDER BY c.relname) = count(*) OVER () THEN ' ORDER BY 1;'
               ELSE ' UNION ALL' END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = '$SCHEMA' AND c.relkind = 'r'
GROUP BY c.relname
ORDER BY c.relname;
SQL
[ -s "$WORK/rows.sql" ] || fail_setup "no tables found in $SCHEMA of database A"
{
    cat "$WORK/rows.sql"
    echo "SELECT 'sequence tracked_change_id_seq: ' || last_value || ' ' || is_called FROM $SCHEMA.tracked_change_id_seq;"
} >"$WORK/rows-all.sql"
psql_on "$URL_A" -At -f "$WORK/rows-all.sql" >"$WORK/a.rows"
psql_on "$URL_B" -At -f "$WORK/rows-all.sql" >"$WORK/b.rows" 2>&1 || true
report "rows of every table of $SCHEMA (ids and timestamps masked)" "$WORK/a.rows" "$WORK/b.rows"

# 3. B's seed timestamps: the seed rows carry one timestamp (the creating transaction's start),
# and it is UTC wall-clock time: within a minute of the current UTC time, although B was
# created in a session five hours off UTC.
psql_on "$URL_B" -At >"$WORK/b.ts" <<SQL
SELECT count(DISTINCT ts) = 1
       AND bool_and(abs(extract(epoch FROM ts - (now() AT TIME ZONE 'UTC'))) < 60)
FROM (SELECT created_at AS ts FROM $SCHEMA.models UNION ALL SELECT updated_at FROM $SCHEMA.models
      UNION ALL SELECT created_at FROM $SCHEMA.fields UNION ALL SELECT updated_at FROM $SCHEMA.fields
      UNION ALL SELECT created_at FROM $SCHEMA.users UNION ALL SELECT updated_at FROM $SCHEMA.users
      UNION ALL SELECT created_at FROM $SCHEMA.fs UNION ALL SELECT updated_at FROM $SCHEMA.fs) t;
SQL
if [ "$(cat "$WORK/b.ts")" = t ]; then
    echo "same: B's seed timestamps are one UTC wall-clock time"
else
    echo "DIFFERENT: B's seed timestamps are not one UTC wall-clock time of its creation:"
    psql_on "$URL_B" -c "SELECT now() AT TIME ZONE 'UTC' AS utc_now, created_at, model_name FROM $SCHEMA.models"
    STATUS=1
fi

# 4. V1 on the registry the API made changes nothing, and V2 runs on it.
clean_dump -n public -d "$URL_A" >"$WORK/a-public-before.ddl"
psql_on "$URL_A" -1 -f "$V1" || fail_setup "V1 failed on database A"
clean_dump -n public -d "$URL_A" >"$WORK/a-public-after.ddl"
report "schema public of A, the API's registry" "$WORK/a-public-before.ddl" "$WORK/a-public-after.ddl" \
    "before V1" "after V1"
psql_on "$URL_A" -1 -f "$V2" || fail_setup "V2 failed on database A"

# 5. The registry tables V1 makes are the API's: database C gets V1 alone, and its pg_dump of
# them equals the API's own text of them, as monk.dump stores it. (Not compared with A: a
# restored database shows a CHECK over a varchar column differently from the database that
# was dumped, since the dumped expression is parsed again.)
psql_on "$URL" -c "CREATE DATABASE $DB_C" || fail_setup "cannot create the scratch database $DB_C"
psql_on "$URL_C" -1 -f "$V1" || fail_setup "V1 failed on database C"
pg_restore -l "$DUMP" |
    grep -E '^[0-9]+; [0-9]+ [0-9]+ (TABLE|CONSTRAINT|INDEX|FK CONSTRAINT) public (tenants|tenant_fixtures|idx_tenants_[a-z_]+|idx_tenant_fixtures_[a-z_]+) ' \
        >"$WORK/registry.list"
[ "$(wc -l <"$WORK/registry.list")" -eq 13 ] ||
    fail_setup "monk.dump does not list the 13 objects of tenants and tenant_fixtures"
pg_restore --schema-only --no-owner -L "$WORK/registry.list" -f - "$DUMP" |
    grep -v -e '^--' -e '^$' -e '^\\restrict ' -e '^\\unrestrict ' >"$WORK/api-registry.ddl"
clean_dump -t public.tenants -t public.tenant_fixtures -d "$URL_C" >"$WORK/c-registry.ddl"
report "pg_dump --schema-only -t public.tenants -t public.tenant_fixtures after V1" \
    "$WORK/api-registry.ddl" "$WORK/c-registry.ddl"

# 6. V2 then gives C the registry B has (B ran V1+V2 in one transaction with the tenant).
psql_on "$URL_C" -1 -f "$V2" || fail_setup "V2 failed on database C"
clean_dump -t public.tenants -t public.tenant_fixtures -d "$URL_C" >"$WORK/c2-registry.ddl"
clean_dump -t public.tenants -t public.tenant_fixtures -d "$URL_B" >"$WORK/b-registry.ddl"
report "pg_dump --schema-only -t public.tenants -t public.tenant_fixtures after V1+V2" \
    "$WORK/c2-registry.ddl" "$WORK/b-registry.ddl" "C (V1, then V2)" "B (V1+V2 with the tenant)"

# 7. V1+V2 are idempotent.
clean_dump -n public -d "$URL_B" >"$WORK/b-public-before.ddl"
psql_on "$URL_B" -1 -f "$V1" -f "$V2" || fail_setup "V1+V2 failed when run again on B"
clean_dump -n public -d "$URL_B" >"$WORK/b-public-after.ddl"
report "schema public of B" "$WORK/b-public-before.ddl" "$WORK/b-public-after.ddl" \
    "before" "after V1+V2 again"

if [ "$STATUS" -eq 0 ]; then
    echo "compare-ddl: all equal"
else
    echo "compare-ddl: differences found"
fi
exit "$STATUS"
