
use builtin;
use str;

set edit:completion:arg-completer[monkctl] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'monkctl'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'monkctl'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Create the data directory and the infra database (idempotent)'
            cand config 'Show the effective settings and where each came from'
            cand tenant 'Create, list, inspect and retire tenants'
            cand fixture 'Seed tenants with fixtures: named, versioned bundles of SQL, CSV and JSONL files'
            cand template 'Prebuilt tenant databases that new tenants are cloned from'
            cand extract 'Write tenants to portable archives: one SQLite file each, readable by any sqlite3 (what interrupted extracts left in the output directory is removed first)'
            cand archive 'Look into and check archive files'
            cand restore 'Restore a tenant from an archive: as a new tenant, or over an existing one with --force'
            cand doctor 'Check the data directory and every tenant file; repair what is safe with --repair'
            cand migrate 'Schema migrations of the infra database and every tenant database'
            cand query 'Run one read-only SQL statement in every selected tenant, in parallel; rows stream in tenant order with a leading `tenant` column (SQLite files or PostgreSQL schemas)'
            cand completion 'Print the completion script for a shell: `source <(monkctl completion bash)`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;init'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;config'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create tenants: a database file the API serves, then the registry row'
            cand list 'List tenants (trashed and deleted ones only on request)'
            cand show 'Show a tenant''s row, file, tables and fixtures'
            cand trash 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
            cand untrash 'Take a tenant out of the trash'
            cand suspend 'Suspend a tenant: the API refuses logins and requests at once'
            cand activate 'Make a suspended or pending tenant active'
            cand delete 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
            cand undelete 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)'
            cand purge 'Remove the trashed files of tenants deleted longer ago than a retention'
            cand vacuum 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
            cand usage 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
            cand copy 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;tenant;create'= {
            cand --owner 'Owner user of the new tenants (the API''s root user when not given)'
            cand --description 'Description stored in the registry'
            cand --from-file 'Read tenants from a file: one `NAME [OWNER [DESCRIPTION]]` a line, # comments'
            cand --fixture 'Deploy this fixture (and its dependencies) at creation (repeatable)'
            cand --template 'Clone this template instead of executing the schema (`system` is built in)'
            cand --db-type 'What the new tenants are: `sqlite` makes SQLite files even on a PostgreSQL deployment (under --sqlite-data-dir, registered with db_type ''sqlite'', which the API serves from its SQLITE_DATA_DIR) [default: the deployment''s own kind]'
            cand --fixtures 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]'
            cand --statement-timeout 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --skip-existing 'A tenant that exists already is left as it is and counts as done (exit 0), so that a provisioning script can be run again after an interruption'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;list'= {
            cand --status 'Only tenants with this status (repeatable)'
            cand --sort 'Sort key'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --trashed 'Include trashed tenants'
            cand --deleted 'Include deleted tenants'
            cand -a 'Include trashed and deleted tenants'
            cand --all 'Include trashed and deleted tenants'
            cand -r 'Reverse the order'
            cand --reverse 'Reverse the order'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;show'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;trash'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;untrash'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;suspend'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;activate'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;delete'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;undelete'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;purge'= {
            cand --older-than 'Retention: purge tenants deleted longer ago than this (a number and a unit: ms, s, m, h, d, w)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --dry-run 'Show what would be removed, remove nothing'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;vacuum'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --all 'Vacuum every tenant that is not deleted'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;usage'= {
            cand --sort 'Sort key: name ascending; size, wal, rows, free and changed largest or newest first'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -a 'Include trashed and deleted tenants (a deleted tenant''s file is read in the trash)'
            cand --all 'Include trashed and deleted tenants (a deleted tenant''s file is read in the trash)'
            cand -r 'Reverse the order'
            cand --reverse 'Reverse the order'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;copy'= {
            cand --to 'The target deployment''s URL: `sqlite:NAME` (with --to-data-dir) or `postgresql://...` (a password is better given in PGPASSWORD)'
            cand --to-data-dir 'The target deployment''s data directory [default: this one''s]'
            cand --as 'The name in the target deployment [default: the same name]'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;tenant;help'= {
            cand create 'Create tenants: a database file the API serves, then the registry row'
            cand list 'List tenants (trashed and deleted ones only on request)'
            cand show 'Show a tenant''s row, file, tables and fixtures'
            cand trash 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
            cand untrash 'Take a tenant out of the trash'
            cand suspend 'Suspend a tenant: the API refuses logins and requests at once'
            cand activate 'Make a suspended or pending tenant active'
            cand delete 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
            cand undelete 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)'
            cand purge 'Remove the trashed files of tenants deleted longer ago than a retention'
            cand vacuum 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
            cand usage 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
            cand copy 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;tenant;help;create'= {
        }
        &'monkctl;tenant;help;list'= {
        }
        &'monkctl;tenant;help;show'= {
        }
        &'monkctl;tenant;help;trash'= {
        }
        &'monkctl;tenant;help;untrash'= {
        }
        &'monkctl;tenant;help;suspend'= {
        }
        &'monkctl;tenant;help;activate'= {
        }
        &'monkctl;tenant;help;delete'= {
        }
        &'monkctl;tenant;help;undelete'= {
        }
        &'monkctl;tenant;help;purge'= {
        }
        &'monkctl;tenant;help;vacuum'= {
        }
        &'monkctl;tenant;help;usage'= {
        }
        &'monkctl;tenant;help;copy'= {
        }
        &'monkctl;tenant;help;help'= {
        }
        &'monkctl;fixture'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List the built-in and directory fixtures with version, dependencies and source'
            cand show 'Show a fixture''s manifest, files and the tables they touch'
            cand check 'Check fixtures against a scratch tenant in memory; creates no file anywhere'
            cand deploy 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again'
            cand status 'Show what a tenant has deployed, when, and at which version'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;fixture;list'= {
            cand --fixtures 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;fixture;show'= {
            cand --fixtures 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;fixture;check'= {
            cand --fixtures 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;fixture;deploy'= {
            cand --tenant 'Tenants to deploy to (repeatable, or comma-separated: --tenant a,b)'
            cand --fixtures 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]'
            cand --statement-timeout 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --all 'Every active tenant that is neither trashed nor deleted'
            cand --force 'Deploy the named fixtures again even where they are recorded as deployed'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;fixture;status'= {
            cand --tenant 'Tenant name'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;fixture;help'= {
            cand list 'List the built-in and directory fixtures with version, dependencies and source'
            cand show 'Show a fixture''s manifest, files and the tables they touch'
            cand check 'Check fixtures against a scratch tenant in memory; creates no file anywhere'
            cand deploy 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again'
            cand status 'Show what a tenant has deployed, when, and at which version'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;fixture;help;list'= {
        }
        &'monkctl;fixture;help;show'= {
        }
        &'monkctl;fixture;help;check'= {
        }
        &'monkctl;fixture;help;deploy'= {
        }
        &'monkctl;fixture;help;status'= {
        }
        &'monkctl;fixture;help;help'= {
        }
        &'monkctl;template'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand build 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)'
            cand list 'List templates with what they hold'
            cand show 'Show a template''s metadata and verify its checksum'
            cand rm 'Remove a template (tenants cloned from it are not affected)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;template;build'= {
            cand --fixture 'Fixture to include, with its dependencies (repeatable)'
            cand --fixtures 'Fixtures directory [env: MONK_FIXTURES_DIR] [default: ./fixtures]'
            cand --statement-timeout 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;template;list'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;template;show'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;template;rm'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;template;help'= {
            cand build 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)'
            cand list 'List templates with what they hold'
            cand show 'Show a template''s metadata and verify its checksum'
            cand rm 'Remove a template (tenants cloned from it are not affected)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;template;help;build'= {
        }
        &'monkctl;template;help;list'= {
        }
        &'monkctl;template;help;show'= {
        }
        &'monkctl;template;help;rm'= {
        }
        &'monkctl;template;help;help'= {
        }
        &'monkctl;extract'= {
            cand -o 'Output file (one tenant) or directory (one that exists, a path ending in `/`, or for several tenants; made when missing) [default: <TENANT>-<UTC time>.monk.db here]'
            cand --output 'Output file (one tenant) or directory (one that exists, a path ending in `/`, or for several tenants; made when missing) [default: <TENANT>-<UTC time>.monk.db here]'
            cand -j 'Tenants extracted at once, at least 1 [default: one per core, at most 4]'
            cand --jobs 'Tenants extracted at once, at least 1 [default: one per core, at most 4]'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --all 'Extract every tenant that is not deleted, and a copy of the infra registry (needs -o DIR)'
            cand --force 'Overwrite an existing output file'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;archive'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand inspect 'Show an archive''s metadata, tables and row counts, without changing it'
            cand verify 'Check an archive: SQLite integrity, metadata, row counts and content checksum'
            cand list 'List the archives (*.monk.db) in a directory: tenant, time, size, versions'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;archive;inspect'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;archive;verify'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;archive;list'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --verify 'Verify each archive fully, as `archive verify` does (reads every page)'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;archive;help'= {
            cand inspect 'Show an archive''s metadata, tables and row counts, without changing it'
            cand verify 'Check an archive: SQLite integrity, metadata, row counts and content checksum'
            cand list 'List the archives (*.monk.db) in a directory: tenant, time, size, versions'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;archive;help;inspect'= {
        }
        &'monkctl;archive;help;verify'= {
        }
        &'monkctl;archive;help;list'= {
        }
        &'monkctl;archive;help;help'= {
        }
        &'monkctl;restore'= {
            cand --as 'Restore under this name (a new tenant id) instead of the archived tenant''s name'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --force 'Replace the content of an existing tenant (its current database is saved to the trash first; writes to it wait until the new content is in place)'
            cand --migrate 'Bring an older schema up to date after restoring (`migrate up` for this tenant; destructive migrations are left to `migrate up --allow-destructive`)'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;doctor'= {
            cand --tenant 'Check only these tenants (repeatable, or comma-separated: --tenant a,b); data-directory checks are skipped'
            cand -j 'Tenant files checked at once, at least 1 [default: one per core, at most 4]'
            cand --jobs 'Tenant files checked at once, at least 1 [default: one per core, at most 4]'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --full 'Run integrity_check and foreign_key_check instead of quick_check (slower)'
            cand --repair 'Repair what is safe (temp leftovers, stale locks, orphans to <data>/orphans/, WAL checkpoints, permissions, unrecorded fixtures), list each action, then check again'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;migrate'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand status 'Applied version, pending, diverged and missing migrations of each database'
            cand plan 'What `up` would run where, flagging destructive statements; writes nothing'
            cand up 'Migrate the infra database, then the tenants in parallel, each in one transaction'
            cand undo 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again'
            cand snapshots 'List and prune the snapshots taken before destructive migrations'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;migrate;status'= {
            cand --tenant 'Only these tenants (repeatable, or comma-separated)'
            cand --target 'Stop at this version instead of the latest'
            cand -j 'Tenants handled at once, at least 1 [default: four per core, at most 64]'
            cand --jobs 'Tenants handled at once, at least 1 [default: four per core, at most 64]'
            cand --busy-timeout 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --include-trashed 'Include trashed tenants (deleted tenants are never migrated)'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;migrate;plan'= {
            cand --tenant 'Only these tenants (repeatable, or comma-separated)'
            cand --target 'Stop at this version instead of the latest'
            cand -j 'Tenants handled at once, at least 1 [default: four per core, at most 64]'
            cand --jobs 'Tenants handled at once, at least 1 [default: four per core, at most 64]'
            cand --busy-timeout 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --include-trashed 'Include trashed tenants (deleted tenants are never migrated)'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;migrate;up'= {
            cand --tenant 'Only these tenants (repeatable, or comma-separated)'
            cand --target 'Stop at this version instead of the latest'
            cand -j 'Tenants handled at once, at least 1 [default: four per core, at most 64]'
            cand --jobs 'Tenants handled at once, at least 1 [default: four per core, at most 64]'
            cand --busy-timeout 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)'
            cand --statement-timeout 'Stop a fixture or migration statement that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); its tenant is rolled back (exit 20)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --include-trashed 'Include trashed tenants (deleted tenants are never migrated)'
            cand --dry-run 'Show the plan instead of migrating (same as `migrate plan`)'
            cand --fail-fast 'Start no new tenant after the first failure'
            cand --allow-destructive 'Allow migrations that drop or rewrite data; each such tenant is snapshotted first'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;migrate;undo'= {
            cand --busy-timeout 'How long to wait for a database another process is writing (a number and a unit: ms, s, m, h; at most 1h)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;migrate;snapshots'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'Runs that took snapshots, newest first'
            cand prune 'Remove old runs'' snapshots'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;migrate;snapshots;list'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;migrate;snapshots;prune'= {
            cand --keep 'Keep the newest N runs'
            cand --older-than 'Remove runs older than this (a number and a unit: ms, s, m, h, d, w)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;migrate;snapshots;help'= {
            cand list 'Runs that took snapshots, newest first'
            cand prune 'Remove old runs'' snapshots'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;migrate;snapshots;help;list'= {
        }
        &'monkctl;migrate;snapshots;help;prune'= {
        }
        &'monkctl;migrate;snapshots;help;help'= {
        }
        &'monkctl;migrate;help'= {
            cand status 'Applied version, pending, diverged and missing migrations of each database'
            cand plan 'What `up` would run where, flagging destructive statements; writes nothing'
            cand up 'Migrate the infra database, then the tenants in parallel, each in one transaction'
            cand undo 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again'
            cand snapshots 'List and prune the snapshots taken before destructive migrations'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;migrate;help;status'= {
        }
        &'monkctl;migrate;help;plan'= {
        }
        &'monkctl;migrate;help;up'= {
        }
        &'monkctl;migrate;help;undo'= {
        }
        &'monkctl;migrate;help;snapshots'= {
            cand list 'Runs that took snapshots, newest first'
            cand prune 'Remove old runs'' snapshots'
        }
        &'monkctl;migrate;help;snapshots;list'= {
        }
        &'monkctl;migrate;help;snapshots;prune'= {
        }
        &'monkctl;migrate;help;help'= {
        }
        &'monkctl;query'= {
            cand --file 'Read the statement from this file (UTF-8, one statement)'
            cand --tenant 'Tenants to query (repeatable, or comma-separated)'
            cand --status 'Only tenants with this status (active, suspended, pending...); alone, every such tenant'
            cand -j 'Tenants queried at once, at least 1 [default: four per core, at most 64]'
            cand --jobs 'Tenants queried at once, at least 1 [default: four per core, at most 64]'
            cand --timeout 'Stop the statement in a tenant that runs longer than this (ms, s, m; a bare number is seconds; at most 1h); that tenant fails with exit 20'
            cand --param 'A value for the next `?` placeholder, bound as text (repeatable, in order)'
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand --all 'Query every tenant that is not deleted (trashed ones included)'
            cand --summary 'One row per tenant instead of the rows: tenant, rows, ms, error, exit_code'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;completion'= {
            cand --data-dir 'Data directory holding the infra database and tenant files (on PostgreSQL: monkctl''s own locks, trash archives and snapshots) [env: MONK_DATA_DIR] [default: ./.data]'
            cand --database-url 'The deployment as the API reads it: sqlite:NAME, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-full&sslrootcert=FILE] (the password is never printed; PGPASSWORD works too) [env: DATABASE_URL] [default: sqlite:monk]'
            cand --config 'Config file (TOML) [env: MONK_CONFIG] [default: ./monk.toml, then the user config directory]'
            cand --migrations 'Operator tenant migrations, V<version>__<name>.sql, added to the built-in ones: part of the deployment, read by every command that creates, judges or changes a tenant''s schema [env: MONK_MIGRATIONS_DIR] [config: migrations_dir]'
            cand --sqlite-data-dir 'On PostgreSQL: where the API keeps the files of the registry''s SQLite tenants (its SQLITE_DATA_DIR; a tenant''s file is <DIR>/<tenants.database>/<tenants.schema>.db); without it those tenants are listed but not opened [env: SQLITE_DATA_DIR] [config: sqlite_data_dir]'
            cand --layout 'Layout of the data directory: design (<data>/infra/NAME.db, tenants in db_main/) or api (<data>/NAME/public.db, tenants beside it: the only one Monk API 6 reads); found from the directory when not given, and the design layout for a new one [env: MONK_LAYOUT] [config: layout]'
            cand --format 'Output format: table for people, json and csv for scripts'
            cand -y 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --yes 'Do not ask for confirmation: destructive commands need it without a terminal; commands that never ask accept it'
            cand --wide 'Tables: every column (by default, wide listings show the columns that fit 80 columns; JSON and CSV always have every field)'
            cand -q 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand --quiet 'Data only: no summary lines under tables, no notes, no progress bars (errors still go to stderr, and the exit code is the same)'
            cand -v 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand --verbose 'What each step does, with timings, on stderr: the deployment used, each tenant of a run as it is done (milliseconds since the start), the exit code and the total time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'monkctl;help'= {
            cand init 'Create the data directory and the infra database (idempotent)'
            cand config 'Show the effective settings and where each came from'
            cand tenant 'Create, list, inspect and retire tenants'
            cand fixture 'Seed tenants with fixtures: named, versioned bundles of SQL, CSV and JSONL files'
            cand template 'Prebuilt tenant databases that new tenants are cloned from'
            cand extract 'Write tenants to portable archives: one SQLite file each, readable by any sqlite3 (what interrupted extracts left in the output directory is removed first)'
            cand archive 'Look into and check archive files'
            cand restore 'Restore a tenant from an archive: as a new tenant, or over an existing one with --force'
            cand doctor 'Check the data directory and every tenant file; repair what is safe with --repair'
            cand migrate 'Schema migrations of the infra database and every tenant database'
            cand query 'Run one read-only SQL statement in every selected tenant, in parallel; rows stream in tenant order with a leading `tenant` column (SQLite files or PostgreSQL schemas)'
            cand completion 'Print the completion script for a shell: `source <(monkctl completion bash)`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'monkctl;help;init'= {
        }
        &'monkctl;help;config'= {
        }
        &'monkctl;help;tenant'= {
            cand create 'Create tenants: a database file the API serves, then the registry row'
            cand list 'List tenants (trashed and deleted ones only on request)'
            cand show 'Show a tenant''s row, file, tables and fixtures'
            cand trash 'Move a tenant to the trash: the API refuses it at once (reversible with untrash)'
            cand untrash 'Take a tenant out of the trash'
            cand suspend 'Suspend a tenant: the API refuses logins and requests at once'
            cand activate 'Make a suspended or pending tenant active'
            cand delete 'Delete a tenant as the API does; its file moves to <data>/trash/, never destroyed'
            cand undelete 'Bring back a deleted tenant from its trash copy (before `tenant purge` removed it)'
            cand purge 'Remove the trashed files of tenants deleted longer ago than a retention'
            cand vacuum 'Checkpoint, VACUUM and ANALYZE tenant files; tenants in use are skipped, not waited for'
            cand usage 'Show per tenant the file and WAL size, pages, free pages, rows per table, last change'
            cand copy 'Copy a tenant to another deployment (SQLite or PostgreSQL) through an archive it keeps in <data>/copies/; the source is left as it was'
        }
        &'monkctl;help;tenant;create'= {
        }
        &'monkctl;help;tenant;list'= {
        }
        &'monkctl;help;tenant;show'= {
        }
        &'monkctl;help;tenant;trash'= {
        }
        &'monkctl;help;tenant;untrash'= {
        }
        &'monkctl;help;tenant;suspend'= {
        }
        &'monkctl;help;tenant;activate'= {
        }
        &'monkctl;help;tenant;delete'= {
        }
        &'monkctl;help;tenant;undelete'= {
        }
        &'monkctl;help;tenant;purge'= {
        }
        &'monkctl;help;tenant;vacuum'= {
        }
        &'monkctl;help;tenant;usage'= {
        }
        &'monkctl;help;tenant;copy'= {
        }
        &'monkctl;help;fixture'= {
            cand list 'List the built-in and directory fixtures with version, dependencies and source'
            cand show 'Show a fixture''s manifest, files and the tables they touch'
            cand check 'Check fixtures against a scratch tenant in memory; creates no file anywhere'
            cand deploy 'Deploy fixtures (and their dependencies) to tenants, each tenant in one transaction that also records them in the tenant file; a deploy interrupted before the registry recorded them is finished by running it again'
            cand status 'Show what a tenant has deployed, when, and at which version'
        }
        &'monkctl;help;fixture;list'= {
        }
        &'monkctl;help;fixture;show'= {
        }
        &'monkctl;help;fixture;check'= {
        }
        &'monkctl;help;fixture;deploy'= {
        }
        &'monkctl;help;fixture;status'= {
        }
        &'monkctl;help;template'= {
            cand build 'Build <data>/templates/NAME.db from `system` plus fixtures (replaces an older build)'
            cand list 'List templates with what they hold'
            cand show 'Show a template''s metadata and verify its checksum'
            cand rm 'Remove a template (tenants cloned from it are not affected)'
        }
        &'monkctl;help;template;build'= {
        }
        &'monkctl;help;template;list'= {
        }
        &'monkctl;help;template;show'= {
        }
        &'monkctl;help;template;rm'= {
        }
        &'monkctl;help;extract'= {
        }
        &'monkctl;help;archive'= {
            cand inspect 'Show an archive''s metadata, tables and row counts, without changing it'
            cand verify 'Check an archive: SQLite integrity, metadata, row counts and content checksum'
            cand list 'List the archives (*.monk.db) in a directory: tenant, time, size, versions'
        }
        &'monkctl;help;archive;inspect'= {
        }
        &'monkctl;help;archive;verify'= {
        }
        &'monkctl;help;archive;list'= {
        }
        &'monkctl;help;restore'= {
        }
        &'monkctl;help;doctor'= {
        }
        &'monkctl;help;migrate'= {
            cand status 'Applied version, pending, diverged and missing migrations of each database'
            cand plan 'What `up` would run where, flagging destructive statements; writes nothing'
            cand up 'Migrate the infra database, then the tenants in parallel, each in one transaction'
            cand undo 'Restore the snapshots of the last run that took any (tenants changed since are skipped); an interrupted undo is finished by running it again'
            cand snapshots 'List and prune the snapshots taken before destructive migrations'
        }
        &'monkctl;help;migrate;status'= {
        }
        &'monkctl;help;migrate;plan'= {
        }
        &'monkctl;help;migrate;up'= {
        }
        &'monkctl;help;migrate;undo'= {
        }
        &'monkctl;help;migrate;snapshots'= {
            cand list 'Runs that took snapshots, newest first'
            cand prune 'Remove old runs'' snapshots'
        }
        &'monkctl;help;migrate;snapshots;list'= {
        }
        &'monkctl;help;migrate;snapshots;prune'= {
        }
        &'monkctl;help;query'= {
        }
        &'monkctl;help;completion'= {
        }
        &'monkctl;help;help'= {
        }
    ]
    $completions[$command]
}
